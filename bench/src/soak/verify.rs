//! The soak's accounting, once everything has stopped: every record of the run's topics is
//! read from Kafka (outside any consumer group) and every document from the server's
//! indexes (Tantivy, read here directly: the API does not show a document's Kafka offset).
//! A line is known by its marker (file, seq); a Kafka record by (topic, partition, offset),
//! which each document carries in its `partition` and `offset` fields (the schema of
//! `bitesize_query::schema`).
//!
//! - Kafka may hold a line more than once: the shipper is at-least-once, and a SIGKILL
//!   before its checkpoint repeats lines (reported as duplicated in Kafka, not a failure).
//! - The index must hold every Kafka record exactly once: a document whose Kafka offset is
//!   already indexed is a duplicate, a Kafka record without a document is not indexed, and
//!   the document at an offset must carry the same marker as the Kafka record there.
//! - Lost: a line written that no document carries.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use tantivy::schema::Value;
use tantivy::{Index, TantivyDocument};

use super::writer::find_marker;

/// A packed (file, seq): file in the top 24 bits, seq in the low 40.
type Packed = u64;
const NOT_READ: Packed = u64::MAX;
const NO_MARKER: Packed = u64::MAX - 1;

fn pack(file: usize, seq: u64) -> Packed {
    ((file as u64) << 40) | seq
}

fn unpack(p: Packed) -> (usize, u64) {
    ((p >> 40) as usize, p & ((1 << 40) - 1))
}

/// The records of one partition, by offset.
struct Partition {
    low: i64,
    markers: Vec<Packed>,
    /// Documents per offset.
    indexed: Vec<u8>,
}

/// What Kafka holds for the run's topics, by (topic, partition).
pub struct KafkaContent {
    partitions: BTreeMap<(String, i32), Partition>,
    pub records: u64,
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Reads every record of `topics` from the start to the high watermark.
pub fn read_kafka(brokers: &str, topics: &[String]) -> anyhow::Result<KafkaContent> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // Needed by librdkafka to assign; never joined (assign, no subscribe) nor committed.
        .set("group.id", "bitesize-soak-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()?;
    let mut partitions = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0u64;
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
        for t in metadata.topics() {
            if t.error().is_some() {
                continue; // never created: nothing was shipped for it
            }
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(topic, p.id(), TIMEOUT)?;
                if high > low {
                    assignment.add_partition_offset(topic, p.id(), Offset::Offset(low))?;
                    remaining += (high - low) as u64;
                }
                partitions.insert(
                    (topic.clone(), p.id()),
                    Partition {
                        low,
                        markers: vec![NOT_READ; (high - low).max(0) as usize],
                        indexed: vec![0; (high - low).max(0) as usize],
                    },
                );
            }
        }
    }
    if remaining > 0 {
        consumer.assign(&assignment)?;
    }
    let mut records = 0u64;
    let mut idle = std::time::Instant::now();
    while remaining > 0 {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            anyhow::ensure!(
                idle.elapsed() < Duration::from_secs(60),
                "reading Kafka: nothing for 60 s with {remaining} records still to read"
            );
            continue;
        };
        let message = message?;
        idle = std::time::Instant::now();
        let key = (message.topic().to_owned(), message.partition());
        let Some(partition) = partitions.get_mut(&key) else {
            continue;
        };
        let Some(slot) = usize::try_from(message.offset() - partition.low)
            .ok()
            .and_then(|i| partition.markers.get_mut(i))
        else {
            continue; // beyond the watermark read at the start: nothing is writing now
        };
        if *slot == NOT_READ {
            *slot = match message.payload().and_then(find_marker) {
                Some((file, seq)) => pack(file, seq),
                None => NO_MARKER,
            };
            records += 1;
            remaining -= 1;
        }
    }
    Ok(KafkaContent {
        partitions,
        records,
    })
}

/// What the indexes hold, checked against Kafka and the lines written.
#[derive(Debug, Default, Clone)]
pub struct Accounting {
    pub written: u64,
    /// Records in the run's topics.
    pub in_kafka: u64,
    /// Distinct lines in Kafka.
    pub kafka_unique_lines: u64,
    /// Extra copies of lines in Kafka (the shipper's at-least-once redeliveries).
    pub duplicated_in_kafka: u64,
    /// Lines written that no Kafka record carries.
    pub missing_from_kafka: u64,
    /// Kafka records without a marker of a written line (a line cut in two, or corrupted).
    pub kafka_without_marker: u64,
    /// Documents in the indexes.
    pub indexed: u64,
    /// Documents whose Kafka record (topic, partition, offset) is indexed more than once.
    pub duplicated: u64,
    /// Kafka records the indexes lack.
    pub not_indexed: u64,
    /// Documents whose offset Kafka does not hold.
    pub indexed_outside_kafka: u64,
    /// Documents whose marker differs from their Kafka record's (or has none).
    pub content_mismatch: u64,
    /// Lines written that no document carries.
    pub lost: u64,
    /// Up to 10 examples of each problem, for the report.
    pub examples: BTreeMap<&'static str, Vec<String>>,
}

impl Accounting {
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.not_indexed == 0
            && self.indexed_outside_kafka == 0
            && self.content_mismatch == 0
            && self.kafka_without_marker == 0
    }

    fn example(&mut self, what: &'static str, text: String) {
        let list = self.examples.entry(what).or_default();
        if list.len() < 10 {
            list.push(text);
        }
    }
}

/// Reads every document of the indexes under `index_dir` (one per namespace, topic
/// `logs.<namespace>`) and does the accounting against `kafka` and `written` (lines per file).
pub fn account(
    index_dir: &Path,
    mut kafka: KafkaContent,
    written: &[u64],
) -> anyhow::Result<Accounting> {
    let mut acc = Accounting {
        written: written.iter().sum(),
        in_kafka: kafka.records,
        ..Accounting::default()
    };
    // Copies per line, in Kafka and in the index.
    let mut in_kafka: Vec<Vec<u8>> = written.iter().map(|&n| vec![0; n as usize]).collect();
    let mut in_index: Vec<Vec<u8>> = in_kafka.clone();
    let line_slot = |copies: &mut Vec<Vec<u8>>, p: Packed| -> Option<usize> {
        let (file, seq) = unpack(p);
        let slot = copies.get_mut(file)?.get_mut(seq as usize)?;
        *slot = slot.saturating_add(1);
        Some(*slot as usize)
    };
    let mut kafka_examples = Vec::new();
    for ((topic, partition), content) in &kafka.partitions {
        for (i, &p) in content.markers.iter().enumerate() {
            if p == NOT_READ {
                continue;
            }
            if p == NO_MARKER || line_slot(&mut in_kafka, p).is_none() {
                acc.kafka_without_marker += 1;
                kafka_examples.push(format!("{topic}/{partition}@{}", content.low + i as i64));
            }
        }
    }
    for example in kafka_examples.into_iter().take(10) {
        acc.example("kafka_without_marker", example);
    }

    let (schema, fields) = bitesize_query::schema::schema();
    let mut dirs: Vec<_> = std::fs::read_dir(index_dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("meta.json").exists())
        .collect();
    dirs.sort_by_key(|e| e.file_name());
    for entry in dirs {
        let namespace = entry.file_name().to_string_lossy().into_owned();
        let topic = format!("logs.{namespace}");
        let index = Index::open_in_dir(entry.path())?;
        let reader = index.reader()?;
        let searcher = reader.searcher();
        for segment in searcher.segment_readers() {
            let fast = segment.fast_fields();
            let partitions = fast
                .u64(schema.get_field_name(fields.partition))?
                .first_or_default_col(u64::MAX);
            let offsets = fast
                .u64(schema.get_field_name(fields.offset))?
                .first_or_default_col(u64::MAX);
            let store = segment.get_store_reader(8)?;
            let docs = store.iter::<TantivyDocument>(segment.alive_bitset());
            for (doc_id, doc) in segment.doc_ids_alive().zip(docs) {
                let doc = doc?;
                acc.indexed += 1;
                let marker = doc
                    .get_first(fields.record)
                    .and_then(|v| v.as_str())
                    .and_then(|text| find_marker(text.as_bytes()))
                    .map(|(file, seq)| pack(file, seq));
                if let Some(p) = marker {
                    line_slot(&mut in_index, p);
                }
                let (partition, offset) = (partitions.get_val(doc_id), offsets.get_val(doc_id));
                let at = format!("{topic}/{partition}@{offset}");
                let kafka_slot = kafka
                    .partitions
                    .get_mut(&(topic.clone(), partition as i32))
                    .and_then(|part| {
                        let i = usize::try_from(offset as i64 - part.low).ok()?;
                        (part.markers.get(i)? != &NOT_READ).then_some((part, i))
                    });
                let Some((part, i)) = kafka_slot else {
                    acc.indexed_outside_kafka += 1;
                    acc.example("indexed_outside_kafka", at);
                    continue;
                };
                part.indexed[i] = part.indexed[i].saturating_add(1);
                if part.indexed[i] > 1 {
                    acc.duplicated += 1;
                    acc.example("duplicated", at.clone());
                }
                if marker.unwrap_or(NO_MARKER) != part.markers[i] {
                    acc.content_mismatch += 1;
                    acc.example(
                        "content_mismatch",
                        format!(
                            "{at}: index {:?}, Kafka {:?}",
                            marker.map(unpack),
                            unpack(part.markers[i])
                        ),
                    );
                }
            }
        }
    }

    for ((topic, partition), part) in &kafka.partitions {
        for (i, (&marker, &count)) in part.markers.iter().zip(&part.indexed).enumerate() {
            if marker != NOT_READ && count == 0 {
                acc.not_indexed += 1;
                acc.example(
                    "not_indexed",
                    format!("{topic}/{partition}@{}", part.low + i as i64),
                );
            }
        }
    }
    let mut missing_examples = Vec::new();
    let mut lost_examples = Vec::new();
    for (file, (kafka_copies, index_copies)) in in_kafka.iter().zip(&in_index).enumerate() {
        for (seq, (&k, &x)) in kafka_copies.iter().zip(index_copies).enumerate() {
            if k == 0 {
                acc.missing_from_kafka += 1;
                missing_examples.push(super::writer::marker(file, seq as u64));
            } else {
                acc.kafka_unique_lines += 1;
                acc.duplicated_in_kafka += u64::from(k) - 1;
            }
            if x == 0 {
                acc.lost += 1;
                lost_examples.push(super::writer::marker(file, seq as u64));
            }
        }
    }
    for example in missing_examples.into_iter().take(10) {
        acc.example("missing_from_kafka", example);
    }
    for example in lost_examples.into_iter().take(10) {
        acc.example("lost", example);
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_file_and_sequence() {
        let p = pack(19, 123_456_789);
        assert_eq!(unpack(p), (19, 123_456_789));
        assert_ne!(p, NOT_READ);
        assert_ne!(p, NO_MARKER);
    }

    /// Kafka holds lines 0..4 of file 0 at offsets 0..5 (line 2 twice: a shipper
    /// redelivery) and the index has offset 0 twice, lacks offset 3 and holds another
    /// line at offset 4.
    #[test]
    fn counts_duplicates_by_offset_and_losses_by_line() {
        let markers = [pack(0, 0), pack(0, 1), pack(0, 2), pack(0, 2), pack(0, 3)];
        let mut partitions = BTreeMap::new();
        partitions.insert(
            ("logs.shop".to_owned(), 0),
            Partition {
                low: 0,
                markers: markers.to_vec(),
                indexed: vec![0; markers.len()],
            },
        );
        let kafka = KafkaContent {
            partitions,
            records: markers.len() as u64,
        };

        let dir = std::env::temp_dir().join(format!("bitesize-soak-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let index_dir = dir.join("shop");
        std::fs::create_dir_all(&index_dir).unwrap();
        // Documents as the server builds them.
        let (schema, fields) = bitesize_query::schema::schema();
        let index = Index::create_in_dir(&index_dir, schema).unwrap();
        let mut writer = index.writer(15_000_000).unwrap();
        for (offset, line) in [(0, 0), (0, 0), (1, 1), (2, 2), (4, 1)] {
            let record = bitesize_record::Record {
                log: format!("{{\"soak\":\"{}\"}}", super::super::writer::marker(0, line)),
                ..Default::default()
            };
            let origin = bitesize_query::schema::Origin {
                partition: 0,
                offset,
            };
            let doc = bitesize_query::schema::document(&fields, &record, 0, origin);
            writer.add_document(doc).unwrap();
        }
        writer.commit().unwrap();

        // Lines 0..5 written: line 4 never reached Kafka.
        let acc = account(&dir, kafka, &[5]).unwrap();
        assert_eq!(acc.written, 5);
        assert_eq!(acc.in_kafka, 5);
        assert_eq!(acc.kafka_unique_lines, 4);
        assert_eq!(acc.duplicated_in_kafka, 1);
        assert_eq!(acc.missing_from_kafka, 1);
        assert_eq!(acc.indexed, 5);
        assert_eq!(acc.duplicated, 1, "offset 0 twice");
        assert_eq!(acc.not_indexed, 1, "offset 3");
        assert_eq!(
            acc.content_mismatch, 1,
            "offset 4 holds line 3 in Kafka, line 1 in the index"
        );
        assert_eq!(acc.indexed_outside_kafka, 0);
        assert_eq!(acc.lost, 2, "line 3 (in Kafka only at offset 4) and line 4");
        assert!(!acc.passed());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
