//! Kafka → index, exactly once.
//!
//! The consumer polls on its own thread (off the async runtime) with auto-commit off. Each
//! record goes to its namespace's index; every commit interval each changed index commits
//! with the offsets it now holds in its payload, and only then are those offsets committed
//! to Kafka. On start, and on every partition assignment, the consumer seeks to the offsets
//! in the index payloads, and records below those offsets are skipped: a crash at any point
//! neither loses nor repeats a record.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitesize_record::{Mark, Record};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::db;
use crate::metrics::{Metrics, NamespaceLabel};
use crate::search::schema::{document, Origin};
use crate::search::{IndexRegistry, Offsets};
use crate::Result;

/// The offsets the indexes hold (committed or waiting for the next commit), shared with the
/// rebalance callback so an assignment resumes exactly where the index is.
type Positions = Arc<Mutex<Offsets>>;

struct IngestContext {
    positions: Positions,
}

impl ClientContext for IngestContext {}

impl ConsumerContext for IngestContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let positions = self.positions.lock().expect("positions lock");
                for element in tpl.clone().elements() {
                    let stored = positions
                        .get(element.topic())
                        .and_then(|p| p.get(&element.partition()));
                    if let Some(&offset) = stored {
                        if let Err(e) = tpl.set_partition_offset(
                            element.topic(),
                            element.partition(),
                            Offset::Offset(offset),
                        ) {
                            tracing::error!(error = %e, "cannot set assigned offset");
                        }
                    }
                }
                tracing::info!(partitions = tpl.count(), "partitions assigned");
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = tpl.count(), "partitions revoked");
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => tracing::error!(error = ?other, "rebalance failed"),
        }
    }
}

/// The ingest stage: one consumer thread feeding every namespace's index writer.
pub struct Ingest {
    config: Config,
    registry: Arc<IndexRegistry>,
    db: DatabaseConnection,
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
}

impl Ingest {
    pub fn new(
        config: Config,
        registry: Arc<IndexRegistry>,
        db: DatabaseConnection,
        metrics: Arc<Metrics>,
    ) -> Ingest {
        Ingest {
            config,
            registry,
            db,
            runtime: tokio::runtime::Handle::current(),
            metrics,
        }
    }

    /// Consumes and indexes until `shutdown` is set; blocking, run it on its own thread.
    pub fn run(self, shutdown: Arc<AtomicBool>) -> Result<()> {
        let positions: Positions = Arc::new(Mutex::new(self.registry.committed_offsets()?));
        let consumer: BaseConsumer<IngestContext> =
            crate::kafka::client_config(&self.config.kafka)?
                .set("group.id", &self.config.kafka.group_id)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest")
                .set("topic.metadata.refresh.interval.ms", "1000")
                .set("partition.assignment.strategy", "range")
                // A crashed indexer's partitions move on after 6 s, not Kafka's default 45 s.
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "1500")
                .create_with_context(IngestContext {
                    positions: positions.clone(),
                })?;
        consumer.subscribe(&[&self.config.kafka.topic_pattern])?;
        tracing::info!(pattern = %self.config.kafka.topic_pattern, "consuming");
        self.metrics.ingest_running.store(true, Ordering::SeqCst);
        let result = self.consume(&consumer, &positions, &shutdown);
        self.metrics.ingest_running.store(false, Ordering::SeqCst);
        result
    }

    fn consume(
        &self,
        consumer: &BaseConsumer<IngestContext>,
        positions: &Positions,
        shutdown: &AtomicBool,
    ) -> Result<()> {
        let interval = Duration::from_millis(self.config.ingest.commit_interval_ms);
        let mut dirty: HashSet<String> = HashSet::new();
        let mut known_namespaces: HashSet<String> = self.registry.names().into_iter().collect();
        let mut last_commit = Instant::now();
        let mut errors = ConsumeErrors::default();
        while !shutdown.load(Ordering::SeqCst) {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    errors.recovered();
                    if let Some(namespace) =
                        self.index_message(&message, positions, &mut known_namespaces)?
                    {
                        dirty.insert(namespace);
                    }
                }
                Some(Err(e)) => std::thread::sleep(errors.failed(&e.to_string())),
                None => {}
            }
            if last_commit.elapsed() >= interval {
                self.commit(consumer, positions, &mut dirty)?;
                last_commit = Instant::now();
            }
        }
        self.commit(consumer, positions, &mut dirty)?;
        tracing::info!("ingest stopped");
        Ok(())
    }

    /// Adds one message to its namespace's index; returns the namespace when it was added.
    fn index_message(
        &self,
        message: &BorrowedMessage<'_>,
        positions: &Positions,
        known_namespaces: &mut HashSet<String>,
    ) -> Result<Option<String>> {
        let topic = message.topic();
        let (partition, offset) = (message.partition(), message.offset());
        let Some(namespace) =
            bitesize_record::namespace_from_topic(&self.config.kafka.topic_template, topic)
        else {
            tracing::warn!(topic, "topic does not follow the topic template, skipped");
            return Ok(None);
        };
        {
            let positions = positions.lock().expect("positions lock");
            let next = positions
                .get(topic)
                .and_then(|p| p.get(&partition))
                .copied()
                .unwrap_or(0);
            if offset < next {
                // Already in the index: Kafka redelivered after a restart or rebalance.
                self.metrics.redelivered.inc();
                return Ok(None);
            }
        }
        let payload = message.payload().unwrap_or_default();
        let label = NamespaceLabel {
            namespace: namespace.clone(),
        };
        let mut record = Record::decode(payload).unwrap_or_else(|_| {
            self.metrics.not_json.get_or_create(&label).inc();
            Record {
                log: String::from_utf8_lossy(payload).into_owned(),
                marks: vec![Mark::NotJson],
                ..Default::default()
            }
        });
        record.kubernetes.namespace_name.clone_from(&namespace);
        let time_nanos = record
            .time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .and_then(|t| t.timestamp_nanos_opt())
            .or_else(|| message.timestamp().to_millis().map(|ms| ms * 1_000_000))
            .unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0));
        if record.time.is_none() {
            record.time = Some(
                chrono::DateTime::from_timestamp_nanos(time_nanos)
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            );
        }
        let index = self.registry.get_or_create(&namespace)?;
        if known_namespaces.insert(namespace.clone()) {
            self.runtime
                .block_on(db::namespaces::register(&self.db, &namespace, topic))?;
        }
        index.add(document(
            &index.fields,
            &record,
            time_nanos,
            Origin { partition, offset },
        ))?;
        self.metrics.indexed.get_or_create(&label).inc();
        positions
            .lock()
            .expect("positions lock")
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, offset + 1);
        Ok(Some(namespace))
    }

    /// Commits each changed index with its offsets, then those offsets to Kafka.
    fn commit(
        &self,
        consumer: &BaseConsumer<IngestContext>,
        positions: &Positions,
        dirty: &mut HashSet<String>,
    ) -> Result<()> {
        // Retention deletes are committed here too, with the offsets, by the one committer.
        for name in self.registry.names() {
            if self
                .registry
                .get(&name)
                .is_some_and(|index| index.take_pending_deletes())
            {
                dirty.insert(name);
            }
        }
        if dirty.is_empty() {
            return Ok(());
        }
        let snapshot = positions.lock().expect("positions lock").clone();
        let mut kafka_offsets = TopicPartitionList::new();
        for namespace in dirty.drain() {
            let index = self.registry.get_or_create(&namespace)?;
            let own: Offsets = snapshot
                .iter()
                .filter(|(topic, _)| {
                    bitesize_record::namespace_from_topic(&self.config.kafka.topic_template, topic)
                        .as_deref()
                        == Some(namespace.as_str())
                })
                .map(|(topic, partitions)| (topic.clone(), partitions.clone()))
                .collect();
            // Keep offsets of topics this index holds from earlier commits.
            let mut offsets: Offsets = index.committed_offsets()?;
            for (topic, partitions) in own {
                offsets.entry(topic).or_default().extend(partitions);
            }
            index.commit(&offsets)?;
            self.metrics.commits.inc();
            for (topic, partitions) in &offsets {
                for (&partition, &offset) in partitions {
                    kafka_offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
                }
            }
        }
        if let Err(e) = consumer.commit(&kafka_offsets, CommitMode::Async) {
            // The index is the source of truth; Kafka's copy only speeds up a fresh group.
            tracing::warn!(error = %e, "kafka offset commit failed");
        }
        Ok(())
    }
}

/// Consume errors that repeat (a broker that is down, a TLS handshake that keeps failing)
/// are logged once and then every 30 s with a count, and polling backs off from 100 ms to
/// 5 s, instead of a log line and a retry per poll.
#[derive(Default)]
struct ConsumeErrors {
    last: Option<String>,
    repeats: u64,
    logged_at: Option<Instant>,
    backoff: Duration,
}

impl ConsumeErrors {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
    const LOG_EVERY: Duration = Duration::from_secs(30);

    /// Records a failed poll; returns how long to wait before the next.
    fn failed(&mut self, error: &str) -> Duration {
        let same = self.last.as_deref() == Some(error);
        let due = self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Self::LOG_EVERY);
        if !same || due {
            tracing::warn!(error, repeats = self.repeats, "consume error");
            self.logged_at = Some(Instant::now());
            self.repeats = 0;
        } else {
            self.repeats += 1;
        }
        self.last = Some(error.to_owned());
        self.backoff = (self.backoff * 2).clamp(Self::FIRST, Self::MAX);
        self.backoff
    }

    fn recovered(&mut self) {
        if self.last.take().is_some() {
            tracing::info!("consuming again");
        }
        self.backoff = Duration::ZERO;
        self.repeats = 0;
        self.logged_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_consume_errors_back_off_and_reset_on_success() {
        let mut errors = ConsumeErrors::default();
        let waits: Vec<Duration> = (0..8).map(|_| errors.failed("ssl handshake")).collect();
        assert_eq!(waits[0], Duration::from_millis(100));
        assert_eq!(waits[1], Duration::from_millis(200));
        assert_eq!(*waits.last().unwrap(), Duration::from_secs(5));
        assert_eq!(errors.repeats, 7, "one log line, seven repeats counted");
        errors.failed("another error");
        assert_eq!(errors.repeats, 0, "a new error is logged at once");
        errors.recovered();
        assert_eq!(errors.failed("ssl handshake"), Duration::from_millis(100));
    }
}
