//! The Kafka message format of Bitesize and the naming rules for namespaces and topics.
//!
//! One JSON object per Kafka message. The layout keeps the field names of the fluentd
//! `kubernetes_metadata` filter, so consumers written for the old pipeline keep working and
//! topics written by the old pipeline can be indexed too.

mod naming;
mod write;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use naming::{
    namespace_from_topic, topic_for, validate_namespace, validate_topic, DEFAULT_TOPIC_TEMPLATE,
};
pub use write::{json_object, RecordParts};

/// Errors of this crate: names that break Kubernetes or Kafka rules, records that do not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid namespace {name:?}: {reason}")]
    InvalidNamespace { name: String, reason: &'static str },
    #[error("invalid topic {name:?}: {reason}")]
    InvalidTopic { name: String, reason: &'static str },
    #[error("invalid topic template {template:?}: {reason}")]
    InvalidTemplate {
        template: String,
        reason: &'static str,
    },
    #[error("record is not a JSON object: {0}")]
    Decode(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One log line as it travels through Kafka.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339 with nanoseconds, as written by the container runtime. Absent in some
    /// records of the original pipeline; readers then fall back to the Kafka timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `stdout` or `stderr`.
    #[serde(default)]
    pub stream: String,
    /// The message itself.
    #[serde(default)]
    pub log: String,
    #[serde(default)]
    pub docker: Docker,
    #[serde(default)]
    pub kubernetes: Kubernetes,
    /// The message parsed as JSON when it is a JSON object (fluent-bit's `Merge_Log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// The cluster the line came from, so one platform can serve many clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Marks put on a record that could not be read cleanly: it is kept, never dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
    /// Any other top-level field (added by the shipper's `transforms`, or by another
    /// producer), kept as it came so nothing is lost on the way to the index.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Docker {
    #[serde(default)]
    pub container_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kubernetes {
    #[serde(default)]
    pub namespace_name: String,
    #[serde(default)]
    pub pod_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_id: String,
    #[serde(default)]
    pub container_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_image: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Any other metadata (`annotations`, `owner`, `namespace_labels`,
    /// `metadata_unavailable`, ...), kept as it came.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Why a record is not a clean copy of what the container wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// The line did not follow the runtime's log format; `log` holds the raw text.
    ParseError,
    /// The line was not valid UTF-8; invalid bytes were replaced with U+FFFD.
    InvalidUtf8,
    /// The line was longer than the configured limit and was split; this is one piece.
    Split,
    /// The Kafka message was not a JSON record; `log` holds its raw text.
    NotJson,
}

impl Record {
    /// Sets `fields` from `log` when the message is a JSON object.
    pub fn merge_json_log(&mut self) {
        if let Some(object) = json_object(&self.log) {
            self.fields = serde_json::from_str(object).ok();
        }
    }

    /// Decodes a Kafka message value. Accepts the original fluentd layout too (`log` with a
    /// trailing newline, `time` absent).
    pub fn decode(bytes: &[u8]) -> Result<Record> {
        let mut record: Record =
            serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))?;
        if record.log.ends_with('\n') {
            record.log.pop();
            if record.log.ends_with('\r') {
                record.log.pop();
            }
        }
        Ok(record)
    }

    /// The record as the JSON bytes of one Kafka message.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_fluentd_kubernetes_metadata() {
        let mut record = Record {
            time: Some("2026-11-25T10:00:00.123456789Z".into()),
            stream: "stdout".into(),
            log: r#"{"level":"info","latency_ms":12}"#.into(),
            ..Default::default()
        };
        record.docker.container_id = "3a38".into();
        record.kubernetes.namespace_name = "shop".into();
        record.kubernetes.pod_name = "web-7d9c".into();
        record.kubernetes.container_name = "web".into();
        record.merge_json_log();
        let json: serde_json::Value = serde_json::from_slice(&record.encode()).unwrap();
        assert_eq!(json["kubernetes"]["namespace_name"], "shop");
        assert_eq!(json["docker"]["container_id"], "3a38");
        assert_eq!(json["fields"]["latency_ms"], 12);
        assert!(json.get("marks").is_none(), "clean records carry no marks");
    }

    #[test]
    fn decodes_original_pipeline_records() {
        let raw = br#"{"log":"hello\n","stream":"stderr","docker":{"container_id":"ab"},
            "kubernetes":{"namespace_name":"shop","pod_name":"p","container_name":"c","labels":{"app":"x"}}}"#;
        let record = Record::decode(raw).unwrap();
        assert_eq!(record.log, "hello");
        assert_eq!(record.time, None);
        assert_eq!(record.kubernetes.labels["app"], "x");
    }

    #[test]
    fn fields_this_crate_does_not_name_survive_a_round_trip() {
        let raw = br#"{"log":"x","stream":"stdout","team":"payments",
            "kubernetes":{"namespace_name":"shop","pod_name":"p","container_name":"c",
            "annotations":{"a":"1"},"owner":{"kind":"ReplicaSet","name":"web-1"},
            "metadata_unavailable":true}}"#;
        let record = Record::decode(raw).unwrap();
        assert_eq!(record.extra["team"], "payments");
        assert_eq!(record.kubernetes.extra["owner"]["kind"], "ReplicaSet");
        let again: serde_json::Value = serde_json::from_slice(&record.encode()).unwrap();
        assert_eq!(again["team"], "payments");
        assert_eq!(again["kubernetes"]["annotations"]["a"], "1");
        assert_eq!(again["kubernetes"]["metadata_unavailable"], true);
        assert_eq!(again["kubernetes"]["namespace_name"], "shop");
    }

    #[test]
    fn non_object_is_a_decode_error() {
        assert!(matches!(
            Record::decode(b"plain text"),
            Err(Error::Decode(_))
        ));
    }

    #[test]
    fn non_object_json_log_has_no_fields() {
        let mut record = Record {
            log: "[1,2]".into(),
            ..Default::default()
        };
        record.merge_json_log();
        assert_eq!(record.fields, None);
    }
}
