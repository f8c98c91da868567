//! Log lines to Kafka records: redaction, file-name metadata, cluster and node, the topic,
//! field transforms. The only place records are built, for the tailer and for `check` alike.

use std::path::Path;
use std::sync::Arc;

use bitesize_record::RecordParts;

use crate::config::Config;
use crate::file_name::ContainerFile;
use crate::kubernetes::{Lookup, PodCache};
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
        // Before `fields` are taken from it, so they are redacted too.
        let metrics = &self.metrics;
        self.transforms
            .redactor
            .redact(&mut line.message, |rule| metrics.redacted(rule));
        let container = &source.container;
        let mut parts = RecordParts {
            time: Some(&line.time),
            stream: &line.stream,
            log: &line.message,
            container_id: &container.container_id,
            namespace_name: &container.namespace,
            pod_name: &container.pod,
            pod_id: source.pod_uid.as_deref().unwrap_or_default(),
            container_name: &container.container,
            host: &self.node_name,
            merge_json_log: true,
            cluster: self.cluster.as_deref(),
            marks: &line.marks,
            ..Default::default()
        };
        let lookup = self.pods.as_ref().map(|pods| {
            let lookup = pods.get(&container.namespace, &container.pod);
            let extra = self.enrich(&lookup);
            (lookup, extra)
        });
        if let Some((lookup, extra)) = &lookup {
            if let Some(pod) = &lookup.pod {
                parts.pod_id = &pod.uid;
                parts.labels = Some(&pod.labels);
                if let Some(image) = pod.images.get(&container.container) {
                    parts.container_image = image;
                }
                if !pod.node_name.is_empty() {
                    parts.host = &pod.node_name;
                }
            }
            parts.kubernetes_extra = Some(extra);
        }
        let mut payload = parts.to_vec();
        if !self.transforms.fields.is_empty() {
            let mut object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&payload).expect("a record is a JSON object");
            self.transforms.fields.apply(&mut object);
            payload = serde_json::to_vec(&object).expect("a JSON object always serialises");
        }
        OutgoingRecord {
            topic: source.topic.clone(),
            // Each pod's lines stay in order on one partition.
            key: source
                .pod_uid
                .clone()
                .unwrap_or_else(|| container.pod.clone()),
            payload,
        }
    }

    /// Counts the pod cache lookup; returns the `kubernetes` fields the record type has no
    /// place for (annotations, owner, namespace labels, the unavailable mark).
    fn enrich(&self, found: &Lookup) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::{json, Value};
        let mut extra = serde_json::Map::new();
        match &found.pod {
            Some(pod) => {
                self.metrics.pod_cache_hits.inc();
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
