//! Log lines to Kafka records: file-name metadata, cluster and node, the topic. The only
//! place records are built, for the tailer and for `check` alike.

use std::path::Path;

use bitesize_record::Record;

use crate::config::Config;
use crate::file_name::ContainerFile;
use crate::line::LogLine;
use crate::OutgoingRecord;

/// What a file's records share: its container and its topic.
#[derive(Debug, Clone)]
pub struct Source {
    pub container: ContainerFile,
    pub topic: String,
}

#[derive(Debug, Clone)]
pub struct RecordBuilder {
    cluster: Option<String>,
    node_name: String,
    topic_template: String,
}

impl RecordBuilder {
    pub fn new(config: &Config) -> RecordBuilder {
        RecordBuilder {
            cluster: config.cluster.clone(),
            node_name: config.node_name.clone().unwrap_or_default(),
            topic_template: config.topic_template.clone(),
        }
    }

    /// The source of a file from its (kubelet) name; an error says why it is not one.
    pub fn source(&self, path: &Path) -> Result<Source, String> {
        let container = ContainerFile::parse(path).ok_or_else(|| {
            "not a container log file name (<pod>_<namespace>_<container>-<64 hex id>.log)"
                .to_owned()
        })?;
        let topic = bitesize_record::topic_for(&self.topic_template, &container.namespace)
            .map_err(|e| format!("no valid topic: {e}"))?;
        Ok(Source { container, topic })
    }

    pub fn build(&self, source: &Source, line: LogLine) -> OutgoingRecord {
        let mut record = Record {
            time: Some(line.time),
            stream: line.stream,
            log: line.message,
            cluster: self.cluster.clone(),
            marks: line.marks,
            ..Default::default()
        };
        record.docker.container_id = source.container.container_id.clone();
        record.kubernetes.namespace_name = source.container.namespace.clone();
        record.kubernetes.pod_name = source.container.pod.clone();
        record.kubernetes.container_name = source.container.container.clone();
        record.kubernetes.host = self.node_name.clone();
        record.merge_json_log();
        OutgoingRecord {
            topic: source.topic.clone(),
            key: source.container.pod.clone(),
            payload: record.encode(),
        }
    }
}
