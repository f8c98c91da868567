//! Kafka → index, exactly once.
//!
//! The consumer polls on its own thread (off the async runtime) with auto-commit off and
//! routes each message, in batches over a bounded channel, to its namespace's writer
//! ([`writer::NamespaceWriter`], one thread per namespace, the index's only writer). Every
//! commit interval each writer commits its index with the offsets it now holds in the
//! commit payload, and only then are those offsets committed to Kafka. On start, and on
//! every partition assignment, the consumer seeks to the offsets the indexes hold, and a
//! writer skips records below its offsets: a crash at any point neither loses nor repeats a
//! record. A writer that falls behind fills its channel and the consumer waits
//! (backpressure), so memory stays bounded.

mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::db;
use crate::metrics::Metrics;
use crate::search::{IndexRegistry, Offsets};
use crate::{Error, Result};
use writer::{Incoming, NamespaceWriter, Report};

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

/// The ingest stage: one consumer thread that routes messages, in batches over a bounded
/// channel, to one [`NamespaceWriter`] thread per namespace.
pub struct Ingest {
    config: Config,
    registry: Arc<IndexRegistry>,
    db: DatabaseConnection,
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
}

/// A batch is handed to its writer at this many messages, or when the consumer idles.
const BATCH_MESSAGES: usize = 1024;
/// How long an idle poll waits.
const POLL_WAIT: Duration = Duration::from_millis(20);
/// How long a partly filled batch may wait for more messages.
const BATCH_WAIT: Duration = Duration::from_millis(50);
/// How often indexes that ingest has not written to are looked for (see
/// `Router::start_idle_writers`).
const INDEX_LOOK_INTERVAL: Duration = Duration::from_secs(1);

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
        let (reports_tx, reports) = mpsc::channel();
        let mut router = Router {
            ingest: &self,
            positions,
            reports_tx,
            topics: HashMap::new(),
            writers: HashMap::new(),
        };
        let consumed = self.consume(&consumer, &mut router, &reports, &shutdown);
        // Closing the channels makes every writer commit what it holds and stop.
        let writers = router.close();
        let mut result = consumed;
        for (namespace, thread) in writers {
            if thread.join().is_err() && result.is_ok() {
                result = Err(Error::Internal(format!(
                    "index writer of {namespace} panicked"
                )));
            }
        }
        if let Err(e) = drain_reports(&consumer, &reports, CommitMode::Sync) {
            result = result.and(Err(e));
        }
        self.metrics.ingest_running.store(false, Ordering::SeqCst);
        tracing::info!("ingest stopped");
        result
    }

    fn consume(
        &self,
        consumer: &BaseConsumer<IngestContext>,
        router: &mut Router<'_>,
        reports: &Receiver<Report>,
        shutdown: &AtomicBool,
    ) -> Result<()> {
        let mut errors = ConsumeErrors::default();
        let mut oldest_pending: Option<Instant> = None;
        let mut looked_for_indexes: Option<Instant> = None;
        // How long a poll waits for something to happen: longer after failed polls.
        let mut wait = POLL_WAIT;
        while !shutdown.load(Ordering::SeqCst) {
            if looked_for_indexes.is_none_or(|at| at.elapsed() >= INDEX_LOOK_INTERVAL) {
                router.start_idle_writers()?;
                looked_for_indexes = Some(Instant::now());
            }
            match consumer.poll(wait) {
                Some(Ok(message)) => {
                    errors.recovered();
                    wait = POLL_WAIT;
                    if router.route(&message)? {
                        oldest_pending.get_or_insert_with(Instant::now);
                    }
                }
                // Not a sleep: librdkafka paces its own retries, and the errors it queued
                // during a broker outage must be taken at once when the broker is back,
                // or the group rejoin (served by polls) waits behind them (1.7 minutes
                // after a 30 s outage when each error cost up to 5 s of sleep).
                Some(Err(e)) => wait = errors.failed(&e.to_string()).max(POLL_WAIT),
                None => {
                    // Idle: hand over what waits, so a quiet topic is searchable quickly.
                    router.flush_all()?;
                    oldest_pending = None;
                }
            }
            if oldest_pending.is_some_and(|at| at.elapsed() >= BATCH_WAIT) {
                router.flush_all()?;
                oldest_pending = None;
            }
            drain_reports(consumer, reports, CommitMode::Async)?;
        }
        router.flush_all()
    }
}

/// The consumer's side of the writers: which namespace a topic feeds, each namespace's
/// batch in the making and the channel to its writer thread.
struct Router<'a> {
    ingest: &'a Ingest,
    /// Offsets handed to the writers, for the rebalance callback.
    positions: Positions,
    reports_tx: Sender<Report>,
    /// Topic → namespace, or `None` for a topic that does not follow the template.
    topics: HashMap<String, Option<Arc<str>>>,
    writers: HashMap<Arc<str>, WriterHandle>,
}

struct WriterHandle {
    batch: Vec<Incoming>,
    /// The topic shared by the batch's messages (one allocation per topic, not per message).
    topic: Option<Arc<str>>,
    sender: SyncSender<Vec<Incoming>>,
    thread: std::thread::JoinHandle<()>,
}

impl Router<'_> {
    /// Queues a message for its namespace's writer; returns whether it was queued.
    fn route(&mut self, message: &BorrowedMessage<'_>) -> Result<bool> {
        let topic = message.topic();
        let namespace = match self.topics.get(topic) {
            Some(namespace) => namespace.clone(),
            None => {
                let namespace = bitesize_record::namespace_from_topic(
                    &self.ingest.config.kafka.topic_template,
                    topic,
                )
                .map(Arc::<str>::from);
                if namespace.is_none() {
                    tracing::warn!(topic, "topic does not follow the topic template, skipped");
                }
                self.topics.insert(topic.to_owned(), namespace.clone());
                namespace
            }
        };
        let Some(namespace) = namespace else {
            return Ok(false);
        };
        if !self.writers.contains_key(&namespace) {
            // First sight of a namespace without an index: record it, then index it.
            let ingest = self.ingest;
            ingest
                .runtime
                .block_on(db::namespaces::register(&ingest.db, &namespace, topic))?;
            self.start_writer(&namespace)?;
        }
        let writer = self
            .writers
            .get_mut(&namespace)
            .expect("writer just started");
        let shared_topic = match &writer.topic {
            Some(t) if &**t == topic => t.clone(),
            _ => {
                let t: Arc<str> = Arc::from(topic);
                writer.topic = Some(t.clone());
                t
            }
        };
        writer.batch.push(Incoming {
            topic: shared_topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            payload: message.payload().unwrap_or_default().to_vec(),
        });
        if writer.batch.len() >= BATCH_MESSAGES {
            let batch = std::mem::take(&mut writer.batch);
            Self::send(&self.positions, &namespace, writer, batch)?;
        }
        Ok(true)
    }

    /// Starts a writer for every index that has none yet: indexes opened at start, or made
    /// since by something other than ingest (rehydrate), also get their retention deletes
    /// and queued changes committed when their topic is quiet.
    fn start_idle_writers(&mut self) -> Result<()> {
        for namespace in self.ingest.registry.names() {
            if !self.writers.contains_key(namespace.as_str()) {
                self.start_writer(&namespace)?;
            }
        }
        Ok(())
    }

    /// Opens the namespace's index and starts its writer thread.
    fn start_writer(&mut self, namespace: &str) -> Result<()> {
        let ingest = self.ingest;
        let index = ingest.registry.get_or_create(namespace)?;
        let writer = NamespaceWriter::new(
            index,
            Duration::from_millis(ingest.config.ingest.commit_interval_ms),
            ingest.metrics.clone(),
        )?;
        let (sender, batches) = mpsc::sync_channel(ingest.config.ingest.queued_batches);
        let reports = self.reports_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("index-{namespace}"))
            .spawn(move || writer.run(batches, reports))
            .map_err(|e| Error::Io(format!("starting the index writer of {namespace}"), e))?;
        tracing::debug!(namespace, "index writer started");
        self.writers.insert(
            Arc::from(namespace),
            WriterHandle {
                batch: Vec::new(),
                topic: None,
                sender,
                thread,
            },
        );
        Ok(())
    }

    fn flush_all(&mut self) -> Result<()> {
        for (namespace, writer) in &mut self.writers {
            if !writer.batch.is_empty() {
                let batch = std::mem::take(&mut writer.batch);
                Self::send(&self.positions, namespace, writer, batch)?;
            }
        }
        Ok(())
    }

    /// Hands a batch to its writer, waiting while the writer's queue is full (backpressure:
    /// the consumer stops polling rather than buffer without bound).
    fn send(
        positions: &Positions,
        namespace: &str,
        writer: &WriterHandle,
        batch: Vec<Incoming>,
    ) -> Result<()> {
        {
            let mut positions = positions.lock().expect("positions lock");
            for message in &batch {
                positions
                    .entry(message.topic.to_string())
                    .or_default()
                    .insert(message.partition, message.offset + 1);
            }
        }
        writer
            .sender
            .send(batch)
            .map_err(|_| Error::Internal(format!("the index writer of {namespace} stopped")))
    }

    /// Drops every channel (writers commit and stop) and returns their threads.
    fn close(self) -> Vec<(Arc<str>, std::thread::JoinHandle<()>)> {
        self.writers
            .into_iter()
            .map(|(namespace, writer)| (namespace, writer.thread))
            .collect()
    }
}

/// Commits to Kafka the offsets the writers have committed to their indexes; a writer that
/// failed stops ingest.
fn drain_reports(
    consumer: &BaseConsumer<IngestContext>,
    reports: &Receiver<Report>,
    mode: CommitMode,
) -> Result<()> {
    let mut committed = TopicPartitionList::new();
    while let Ok(report) = reports.try_recv() {
        match report {
            Report::Committed(offsets) => {
                for (topic, partitions) in &offsets {
                    for (&partition, &offset) in partitions {
                        committed.add_partition_offset(topic, partition, Offset::Offset(offset))?;
                    }
                }
            }
            Report::Failed { namespace, error } => {
                return Err(Error::Internal(format!(
                    "the index writer of {namespace} failed: {error}"
                )));
            }
        }
    }
    if committed.count() > 0 {
        if let Err(e) = consumer.commit(&committed, mode) {
            // The index is the source of truth; Kafka's copy only speeds up a fresh group.
            tracing::warn!(error = %e, "kafka offset commit failed");
        }
    }
    Ok(())
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

    /// Records a failed poll; returns how long the next poll may wait for an event.
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
