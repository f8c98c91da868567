//! One line of an archive object: a Kafka message's record as the index holds it, with
//! where it came from. The record is resolved exactly as ingest resolves it (namespace from
//! the topic, time from the record or else the Kafka timestamp, a message that is not a
//! JSON record kept as raw text and marked), so rehydrating a line rebuilds the very
//! document ingest made.
//!
//! ```json
//! {"topic":"logs.shop","partition":0,"offset":1234,"time":"2026-11-30T10:00:00.123456789Z",
//!  "record":{"time":"2026-11-30T10:00:00.123456789Z","stream":"stdout","log":"GET /cart 200", ...}}
//! ```
//! `jq -c .record` turns an object back into plain records.

use bitesize_record::{Mark, Record};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The time the record is indexed under (RFC 3339, nanoseconds).
    pub time: String,
    pub record: Record,
}

/// A Kafka message's record with its namespace and time resolved.
pub struct Resolved {
    pub record: Record,
    pub time_nanos: i64,
    /// The message was not a JSON record: `log` holds its text, marked `not_json`.
    pub not_json: bool,
}

/// Resolves a message the way ingest does: a message that is not a JSON record is kept as
/// raw text with a mark, never dropped; `time` falls back to the Kafka timestamp.
pub fn resolve(payload: &[u8], namespace: &str, kafka_timestamp_ms: Option<i64>) -> Resolved {
    let (mut record, not_json) = match Record::decode(payload) {
        Ok(record) => (record, false),
        Err(_) => (
            Record {
                log: String::from_utf8_lossy(payload).into_owned(),
                marks: vec![Mark::NotJson],
                ..Default::default()
            },
            true,
        ),
    };
    namespace.clone_into(&mut record.kubernetes.namespace_name);
    let time_nanos = record
        .time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .or_else(|| kafka_timestamp_ms.map(|ms| ms.saturating_mul(1_000_000)))
        .unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0));
    if record.time.is_none() {
        record.time = Some(rfc3339_nanos(time_nanos));
    }
    Resolved {
        record,
        time_nanos,
        not_json,
    }
}

pub fn rfc3339_nanos(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl ArchivedRecord {
    /// The time in nanoseconds, or `None` when the line was tampered with.
    pub fn time_nanos(&self) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(&self.time)
            .ok()?
            .timestamp_nanos_opt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_ingest() {
        let kafka_ms = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        let fluentd = br#"{"log":"line\n","kubernetes":{"namespace_name":"other"}}"#;
        let r = resolve(fluentd, "shop", Some(kafka_ms));
        assert!(!r.not_json);
        assert_eq!(r.record.log, "line");
        assert_eq!(r.record.kubernetes.namespace_name, "shop");
        assert_eq!(r.time_nanos, kafka_ms * 1_000_000);
        assert_eq!(
            r.record.time.as_deref(),
            Some("2026-01-01T00:00:00.000000000Z")
        );

        let odd_time = br#"{"time":"yesterday","log":"x"}"#;
        let r = resolve(odd_time, "shop", Some(kafka_ms));
        assert_eq!(
            r.time_nanos,
            kafka_ms * 1_000_000,
            "unreadable time: Kafka's"
        );
        assert_eq!(
            r.record.time.as_deref(),
            Some("yesterday"),
            "kept as it came"
        );

        let r = resolve(b"caf\xe9 plain", "shop", Some(kafka_ms));
        assert!(r.not_json);
        assert_eq!(r.record.marks, vec![Mark::NotJson]);
        assert_eq!(r.record.log, "caf\u{fffd} plain");
    }

    #[test]
    fn lines_round_trip() {
        let r = resolve(
            br#"{"time":"2026-11-30T10:00:00.5Z","log":"hi","extra":{"a":1}}"#,
            "shop",
            None,
        );
        let line = ArchivedRecord {
            topic: "logs.shop".into(),
            partition: 1,
            offset: 7,
            time: rfc3339_nanos(r.time_nanos),
            record: r.record,
        };
        let text = serde_json::to_string(&line).unwrap();
        let back: ArchivedRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, line);
        assert_eq!(back.time_nanos(), Some(r.time_nanos));
        assert_eq!(back.record.extra["extra"]["a"], 1);
    }
}
