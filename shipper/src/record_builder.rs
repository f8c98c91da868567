//! Log lines to Kafka records: redaction, file-name metadata, cluster and node, the topic,
//! field transforms. The only place records are built, for the tailer and for `check` alike.

use std::path::Path;
use std::sync::Arc;

use bitesize_record::Record;

use crate::config::Config;
use crate::file_name::ContainerFile;
use crate::kubernetes::PodCache;
use crate::line::LogLine;
use crate::metrics::Metrics;
use crate::transform::{FieldTransforms, Redactor};
use crate::{OutgoingRecord, Result};

/// The compiled redaction rules and field transforms; swapped whole on a config reload.
#[derive(Debug, Default)]
pub struct Transforms {
    pub redactor: Redactor,
    pub fields: FieldTransforms,
}

impl Transforms {
    pub fn new(config: &Config) -> Result<Transforms> {
        Ok(Transforms {
            redactor: Redactor::new(&config.redact)?,
            fields: FieldTransforms::new(&config.transforms)?,
        })
    }
}

/// What a file's records share: its container and its topic.
#[derive(Debug, Clone)]
pub struct Source {
    pub container: ContainerFile,
    pub topic: String,
    /// From the link target's directory (`/var/log/pods/<ns>_<pod>_<uid>/...`), when there.
    pub pod_uid: Option<String>,
}

#[derive(Clone)]
pub struct RecordBuilder {
    cluster: Option<String>,
    node_name: String,
    topic_template: String,
    transforms: Arc<Transforms>,
    /// Pod metadata from the Kubernetes API, when enabled.
    pods: Option<PodCache>,
    metrics: Arc<Metrics>,
}

impl RecordBuilder {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<RecordBuilder> {
        Ok(RecordBuilder {
            cluster: config.cluster.clone(),
            node_name: config.node_name.clone().unwrap_or_default(),
            topic_template: config.topic_template.clone(),
            transforms: Arc::new(Transforms::new(config)?),
            pods: None,
            metrics,
        })
    }

    /// Enriches records from `pods` (the Kubernetes API watch).
    pub fn with_pods(mut self, pods: PodCache) -> RecordBuilder {
        self.pods = Some(pods);
        self
    }

    /// Uses new redaction rules and field transforms from the next record on.
    pub fn set_transforms(&mut self, transforms: Arc<Transforms>) {
        self.transforms = transforms;
    }

    /// The source of a file from its (kubelet) name; an error says why it is not one.
    pub fn source(&self, path: &Path) -> std::result::Result<Source, String> {
        let container = ContainerFile::parse(path).ok_or_else(|| {
            "not a container log file name (<pod>_<namespace>_<container>-<64 hex id>.log)"
                .to_owned()
        })?;
        let topic = bitesize_record::topic_for(&self.topic_template, &container.namespace)
            .map_err(|e| format!("no valid topic: {e}"))?;
        // Behind the kubelet's link, the pod's log directory is named with its uid: the key
        // that keeps each pod's lines in order, and `pod_id` without asking the API.
        let pod_uid = std::fs::canonicalize(path)
            .ok()
            .and_then(|target| crate::file_name::pod_uid_from_target(&target, &container));
        Ok(Source {
            container,
            topic,
            pod_uid,
        })
    }

    pub fn build(&self, source: &Source, mut line: LogLine) -> OutgoingRecord {
        // Before `fields` are parsed from it, so they are redacted too.
        let metrics = &self.metrics;
        self.transforms
            .redactor
            .redact(&mut line.message, |rule| metrics.redacted(rule));
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
        if let Some(uid) = &source.pod_uid {
            record.kubernetes.pod_id.clone_from(uid);
        }
        record.merge_json_log();
        let extra = self.enrich(&mut record);
        let payload = if self.transforms.fields.is_empty() && extra.is_empty() {
            record.encode()
        } else {
            let mut object = match serde_json::to_value(&record) {
                Ok(serde_json::Value::Object(object)) => object,
                _ => unreachable!("a record serialises to an object"),
            };
            if let Some(serde_json::Value::Object(kubernetes)) = object.get_mut("kubernetes") {
                kubernetes.extend(extra);
            }
            self.transforms.fields.apply(&mut object);
            serde_json::to_vec(&object).expect("a JSON object always serialises")
        };
        OutgoingRecord {
            topic: source.topic.clone(),
            // Each pod's lines stay in order on one partition.
            key: source
                .pod_uid
                .clone()
                .unwrap_or_else(|| source.container.pod.clone()),
            payload,
        }
    }

    /// Adds the pod's metadata from the cache; returns the `kubernetes` fields the record
    /// type has no place for (annotations, owner, namespace labels, the unavailable mark).
    fn enrich(&self, record: &mut Record) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::{json, Value};
        let mut extra = serde_json::Map::new();
        let Some(pods) = &self.pods else {
            return extra;
        };
        let k8s = &mut record.kubernetes;
        let found = pods.get(&k8s.namespace_name, &k8s.pod_name);
        match &found.pod {
            Some(pod) => {
                self.metrics.pod_cache_hits.inc();
                k8s.pod_id.clone_from(&pod.uid);
                k8s.labels.clone_from(&pod.labels);
                if let Some(image) = pod.images.get(&k8s.container_name) {
                    k8s.container_image.clone_from(image);
                }
                if !pod.node_name.is_empty() {
                    k8s.host.clone_from(&pod.node_name);
                }
                if !pod.annotations.is_empty() {
                    extra.insert("annotations".into(), json!(pod.annotations));
                }
                if let Some((kind, name)) = &pod.owner {
                    extra.insert("owner".into(), json!({"kind": kind, "name": name}));
                }
            }
            None => {
                self.metrics.pod_cache_misses.inc();
                extra.insert("metadata_unavailable".into(), Value::Bool(true));
            }
        }
        if let Some(labels) = &found.namespace_labels {
            extra.insert("namespace_labels".into(), json!(**labels));
        }
        extra
    }
}
