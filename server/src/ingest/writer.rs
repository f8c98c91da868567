//! One namespace's index writer: a stage on its own thread that decodes the Kafka messages
//! the consumer hands it (in batches, over a bounded channel), adds them to the namespace's
//! Tantivy index, and every commit interval commits the index with the offsets it now
//! holds in the commit payload. Only after that commit does it report those offsets back,
//! so the consumer commits to Kafka exactly what the index made durable.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitesize_record::{Mark, Record};
use prometheus_client::metrics::counter::Counter;

use crate::metrics::{Metrics, NamespaceLabel};
use crate::search::schema::{document, Origin};
use crate::search::{NamespaceIndex, Offsets};
use crate::Result;

/// A Kafka message, copied off the consumer so the consumer can poll on while it is indexed.
pub struct Incoming {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka timestamp, used when the record has no `time`.
    pub timestamp_ms: Option<i64>,
    pub payload: Vec<u8>,
}

/// What a writer tells the consumer.
pub enum Report {
    /// The index committed; these offsets (of its own topics) may go to Kafka.
    Committed(Offsets),
    /// The writer stopped on an error; ingest must stop (the index is the truth, and it
    /// can no longer advance).
    Failed { namespace: String, error: String },
}

pub struct NamespaceWriter {
    index: Arc<NamespaceIndex>,
    /// Next offset per topic and partition that the index holds (committed or added since).
    offsets: Offsets,
    commit_interval: Duration,
    indexed: Counter,
    indexed_bytes: Counter,
    not_json: Counter,
    metrics: Arc<Metrics>,
}

impl NamespaceWriter {
    pub fn new(
        index: Arc<NamespaceIndex>,
        commit_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<NamespaceWriter> {
        let offsets = index.committed_offsets()?;
        let label = NamespaceLabel {
            namespace: index.name.clone(),
        };
        let indexed = metrics.indexed.get_or_create(&label).clone();
        let indexed_bytes = metrics.indexed_bytes.get_or_create(&label).clone();
        let not_json = metrics.not_json.get_or_create(&label).clone();
        Ok(NamespaceWriter {
            indexed,
            indexed_bytes,
            not_json,
            index,
            offsets,
            commit_interval,
            metrics,
        })
    }

    /// Indexes batches until the consumer closes the channel, then commits a last time.
    /// Blocking: run it on its own thread.
    pub fn run(mut self, batches: Receiver<Vec<Incoming>>, reports: Sender<Report>) {
        let namespace = self.index.name.clone();
        if let Err(e) = self.index_until_closed(&batches, &reports) {
            tracing::error!(namespace = %namespace, error = %e, "index writer failed");
            let _ = reports.send(Report::Failed {
                namespace,
                error: e.to_string(),
            });
        }
    }

    fn index_until_closed(
        &mut self,
        batches: &Receiver<Vec<Incoming>>,
        reports: &Sender<Report>,
    ) -> Result<()> {
        let mut changed: Offsets = Offsets::new();
        let mut next_commit = Instant::now() + self.commit_interval;
        loop {
            let wait = next_commit.saturating_duration_since(Instant::now());
            let closed = match batches.recv_timeout(wait) {
                Ok(batch) => {
                    self.add_batch(batch, &mut changed)?;
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            if closed || Instant::now() >= next_commit {
                // Retention deletes (and other queued changes) ride on the next commit.
                let queued = self.index.take_pending_changes();
                if !changed.is_empty() || queued {
                    self.index.commit(&self.offsets)?;
                    self.metrics.commits.inc();
                    let done = std::mem::take(&mut changed);
                    if !done.is_empty() && reports.send(Report::Committed(done)).is_err() {
                        // The consumer is gone (stopping): the index holds the truth.
                        return Ok(());
                    }
                }
                next_commit = Instant::now() + self.commit_interval;
            }
            if closed {
                return Ok(());
            }
        }
    }

    fn add_batch(&mut self, batch: Vec<Incoming>, changed: &mut Offsets) -> Result<()> {
        for message in batch {
            let next = self.next_offset(&message.topic, message.partition);
            if message.offset < next {
                // Already in the index: Kafka delivered it again after a restart or rebalance.
                self.metrics.redelivered.inc();
                continue;
            }
            let (record, time_nanos) = self.decode(&message);
            self.index.add(document(
                &self.index.fields,
                &record,
                time_nanos,
                Origin {
                    partition: message.partition,
                    offset: message.offset,
                },
            ))?;
            self.indexed.inc();
            self.indexed_bytes.inc_by(message.payload.len() as u64);
            let next = message.offset + 1;
            set_offset(&mut self.offsets, &message.topic, message.partition, next);
            set_offset(changed, &message.topic, message.partition, next);
        }
        Ok(())
    }

    fn next_offset(&self, topic: &str, partition: i32) -> i64 {
        self.offsets
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied()
            .unwrap_or(0)
    }

    /// The record in a message, with its namespace and time resolved: a message that is not
    /// a JSON record is kept as raw text, marked and counted, never dropped.
    fn decode(&self, message: &Incoming) -> (Record, i64) {
        let mut record = Record::decode(&message.payload).unwrap_or_else(|_| {
            self.not_json.inc();
            Record {
                log: String::from_utf8_lossy(&message.payload).into_owned(),
                marks: vec![Mark::NotJson],
                ..Default::default()
            }
        });
        record
            .kubernetes
            .namespace_name
            .clone_from(&self.index.name);
        let time_nanos = record
            .time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .and_then(|t| t.timestamp_nanos_opt())
            .or_else(|| message.timestamp_ms.map(|ms| ms * 1_000_000))
            .unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0));
        if record.time.is_none() {
            record.time = Some(
                chrono::DateTime::from_timestamp_nanos(time_nanos)
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            );
        }
        (record, time_nanos)
    }
}

fn set_offset(offsets: &mut Offsets, topic: &str, partition: i32, next: i64) {
    match offsets.get_mut(topic) {
        Some(partitions) => {
            partitions.insert(partition, next);
        }
        None => {
            offsets.insert(topic.to_owned(), BTreeMap::from([(partition, next)]));
        }
    }
}
