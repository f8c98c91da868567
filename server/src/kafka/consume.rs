//! Reading a namespace's topic for the consume endpoint: a consumer outside any group (it
//! assigns partitions itself, never joins, and commits nothing), started at the earliest or latest
//! offsets, at a time, or at a cursor. The cursor is the next offset of every partition
//! (`0:15,1:7,2:0`): a client that reconnects with the cursor of the last line it received
//! gets every later record once, and no earlier one.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(10);

/// librdkafka assigns partitions only to a consumer with a group id. Readers that `assign`
/// (never `subscribe`) and commit nothing never join it: the broker sees no member and no
/// offsets under this name.
pub const UNJOINED_GROUP: &str = "bitesize-unjoined-reader";

/// The next offset to send of each partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(pub BTreeMap<i32, i64>);

impl Cursor {
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(p, o)| format!("{p}:{o}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn decode(text: &str) -> Result<Cursor> {
        let bad = || {
            Error::BadRequest(format!(
                "cursor {text:?}: expected partition:offset pairs like 0:15,1:7 (the cursor of the last line received)"
            ))
        };
        let mut map = BTreeMap::new();
        for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (p, o) = pair.trim().split_once(':').ok_or_else(bad)?;
            let p: i32 = p.parse().map_err(|_| bad())?;
            let o: i64 = o.parse().map_err(|_| bad())?;
            if p < 0 || o < 0 || map.insert(p, o).is_some() {
                return Err(bad());
            }
        }
        if map.is_empty() {
            return Err(bad());
        }
        Ok(Cursor(map))
    }
}

/// Where a stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    /// Milliseconds since the epoch: the first record at or after it, per partition.
    Time(i64),
    /// Exactly after what the client has; partitions the cursor lacks (new since) start at
    /// their beginning.
    Cursor(Cursor),
}

/// An open reader of one topic, positioned at `position`.
pub struct TopicReader {
    pub consumer: BaseConsumer,
    pub topic: String,
    /// Next offset per partition: the cursor after the last record handed out.
    pub position: Cursor,
    /// End offsets when the reader opened (for streams that stop when caught up).
    pub end_at_open: BTreeMap<i32, i64>,
    /// Partitions where records the cursor asked for had already been removed by retention:
    /// (partition, asked, first still there).
    pub gaps: Vec<(i32, i64, i64)>,
}

impl TopicReader {
    /// Opens `topic` at `start` (blocking: call it off the async runtime).
    pub fn open(kafka: &KafkaConfig, topic: &str, start: &Start) -> Result<TopicReader> {
        let consumer: BaseConsumer = super::client_config(kafka)?
            .set("group.id", UNJOINED_GROUP)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .create()?;
        let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(Error::NotFound(format!(
                "topic {topic:?} does not exist in Kafka"
            )));
        }
        let mut watermarks = BTreeMap::new();
        for &p in &partitions {
            watermarks.insert(p, consumer.fetch_watermarks(topic, p, TIMEOUT)?);
        }
        let mut position = BTreeMap::new();
        let mut gaps = Vec::new();
        match start {
            Start::Earliest => {
                for (&p, &(low, _)) in &watermarks {
                    position.insert(p, low);
                }
            }
            Start::Latest => {
                for (&p, &(_, high)) in &watermarks {
                    position.insert(p, high);
                }
            }
            Start::Cursor(cursor) => {
                if let Some((&p, _)) = cursor.0.iter().find(|(p, _)| !watermarks.contains_key(p)) {
                    return Err(Error::BadRequest(format!(
                        "cursor names partition {p}, which topic {topic:?} does not have"
                    )));
                }
                for (&p, &(low, high)) in &watermarks {
                    let asked = cursor.0.get(&p).copied().unwrap_or(low);
                    if asked > high {
                        return Err(Error::BadRequest(format!(
                            "cursor is ahead of partition {p} (at {asked}, end {high}): it is not from this topic"
                        )));
                    }
                    if asked < low {
                        gaps.push((p, asked, low));
                    }
                    position.insert(p, asked.max(low));
                }
            }
            Start::Time(ms) => {
                let mut query = TopicPartitionList::new();
                for &p in &partitions {
                    query.add_partition_offset(topic, p, Offset::Offset(*ms))?;
                }
                let found = consumer.offsets_for_times(query, TIMEOUT)?;
                for (&p, &(_, high)) in &watermarks {
                    let offset = found
                        .find_partition(topic, p)
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        })
                        .unwrap_or(high);
                    position.insert(p, offset);
                }
            }
        }
        let mut assignment = TopicPartitionList::new();
        for (&p, &o) in &position {
            assignment.add_partition_offset(topic, p, Offset::Offset(o))?;
        }
        consumer.assign(&assignment)?;
        Ok(TopicReader {
            consumer,
            topic: topic.to_owned(),
            position: Cursor(position),
            end_at_open: watermarks.iter().map(|(&p, &(_, h))| (p, h)).collect(),
            gaps,
        })
    }

    /// Whether every partition has reached the end it had when the reader opened.
    pub fn caught_up(&self) -> bool {
        self.end_at_open
            .iter()
            .all(|(p, end)| self.position.0.get(p).is_some_and(|at| at >= end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor([(0, 15), (1, 7), (2, 0)].into());
        assert_eq!(cursor.encode(), "0:15,1:7,2:0");
        assert_eq!(Cursor::decode("0:15,1:7,2:0").unwrap(), cursor);
        for bad in ["", "x", "0:", ":1", "0:1,0:2", "-1:3", "0:-3", "0:1;1:2"] {
            let err = Cursor::decode(bad).unwrap_err().to_string();
            assert!(err.contains("cursor"), "{bad}: {err}");
        }
    }
}
