//! The archive stage: every record of the namespace topics, per namespace and hour, as
//! NDJSON compressed with zstd in the object store, beside ingest and independent of it.
//!
//! It has its own consumer group (`archive.group_id`), polls on its own thread with
//! auto-commit off and buffers per partition a *span* (the offsets read since the last
//! flush), split by the hour of each record's time. A span is written when it reaches
//! `flush_bytes`, when its first record has waited `flush_interval_secs`, when all buffers
//! together pass `max_buffered_bytes` (largest first), and at a clean stop: one object per
//! hour, named by topic, partition and the span's offsets (see `object_name`). Only after
//! every object of a span is written are the partition's offsets committed to Kafka.
//!
//! The object listing is the truth about progress, as the commit payload is for the index:
//! on every partition assignment the stage lists the namespace's objects, deletes the
//! objects of a span a crash cut short (and any span after it), and seeks to the offset
//! after the last complete span (or Kafka's committed offset when that is further: records
//! of namespaces not archived are skipped and committed). A crash at any point therefore
//! neither loses nor repeats a record in the archive; writing an object again under the
//! same name gives the same object.
//!
//! Whether a namespace is archived is the registry's `archive` column for registry entries
//! and `archive.by_default` for namespaces the registry does not manage, read every 10 s.
//! Switching it on archives from then on; records read while it was off are not archived.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use sea_orm::DatabaseConnection;

use super::catalog::Catalog;
use super::line::{resolve, rfc3339_nanos, ArchivedRecord};
use super::object_name::{hour_of, ObjectName};
use super::store::ArchiveStore;
use crate::config::Config;
use crate::metrics::{Metrics, NamespaceLabel};
use crate::{db, Error, Result};

const SETTINGS_EVERY: Duration = Duration::from_secs(10);
const LAG_EVERY: Duration = Duration::from_secs(15);
const TICK: Duration = Duration::from_millis(500);
const RESTART_AFTER: Duration = Duration::from_secs(5);

/// The records of one partition read since its last flush.
struct Span {
    first: i64,
    last: i64,
    opened: Instant,
    /// NDJSON bytes buffered (before compression).
    bytes: u64,
    /// Hour → that hour's lines.
    hours: BTreeMap<i64, HourLines>,
}

#[derive(Default)]
struct HourLines {
    ndjson: Vec<u8>,
    records: u64,
}

struct PartitionState {
    namespace: String,
    /// The next offset to read: below it, everything is archived, skipped or buffered.
    next: Option<i64>,
    span: Option<Span>,
    /// The offset last committed to Kafka.
    committed: Option<i64>,
}

impl PartitionState {
    /// What may be committed: the start of the open span, else the next offset.
    fn committable(&self) -> Option<i64> {
        self.span.as_ref().map(|s| s.first).or(self.next)
    }
}

/// The assigned partitions (topic → partition → state), shared with the rebalance callback.
#[derive(Default)]
struct Partitions {
    topics: HashMap<String, HashMap<i32, PartitionState>>,
    buffered_bytes: u64,
    /// Set by the rebalance callback when it could not find where to resume; the stage
    /// stops and starts over rather than archive from a guess.
    failed: Option<String>,
}

struct ArchiveContext {
    partitions: Mutex<Partitions>,
    store: Arc<ArchiveStore>,
    runtime: tokio::runtime::Handle,
    topic_template: String,
}

impl ClientContext for ArchiveContext {}

impl ConsumerContext for ArchiveContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Err(e) = self.resume(consumer, tpl) {
                    tracing::error!(error = %e, "archive cannot find where to resume");
                    self.partitions.lock().expect("partitions lock").failed = Some(e.to_string());
                }
                tracing::info!(partitions = tpl.count(), "archive partitions assigned");
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "archive assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Buffered spans are dropped: their offsets were not committed, so whoever
                // gets the partition next reads them again.
                let mut partitions = self.partitions.lock().expect("partitions lock");
                for element in tpl.elements() {
                    if let Some(topic) = partitions.topics.get_mut(element.topic()) {
                        topic.remove(&element.partition());
                    }
                }
                partitions.buffered_bytes = partitions
                    .topics
                    .values()
                    .flat_map(|t| t.values())
                    .filter_map(|p| p.span.as_ref().map(|s| s.bytes))
                    .sum();
                tracing::info!(partitions = tpl.count(), "archive partitions revoked");
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "archive unassign failed");
                }
            }
            other => tracing::error!(error = ?other, "archive rebalance failed"),
        }
    }
}

impl ArchiveContext {
    /// Sets each assigned partition's start: after its last complete span, or Kafka's
    /// committed offset when that is further; deletes the objects of cut-short spans.
    fn resume(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) -> Result<()> {
        let committed = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "archive: committed offsets unknown, resuming from the archive alone");
                TopicPartitionList::new()
            }
        };
        let mut catalogs: HashMap<String, Catalog> = HashMap::new();
        let mut partitions = self.partitions.lock().expect("partitions lock");
        for element in tpl.clone().elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let Some(namespace) =
                bitesize_record::namespace_from_topic(&self.topic_template, topic)
            else {
                continue;
            };
            if !catalogs.contains_key(&namespace) {
                let catalog = self.runtime.block_on(self.store.catalog(&namespace))?;
                catalogs.insert(namespace.clone(), catalog);
            }
            let resume = catalogs[&namespace].resume(topic, partition);
            for path in &resume.stale {
                tracing::info!(object = %path, "deleting an archive object of a span cut short");
                self.runtime.block_on(self.store.delete(path))?;
            }
            let kafka = committed
                .find_partition(topic, partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            let start = resume.next_offset.max(kafka);
            if let Some(start) = start {
                tpl.set_partition_offset(topic, partition, Offset::Offset(start))?;
            }
            tracing::debug!(topic, partition, ?start, "archive resumes");
            partitions
                .topics
                .entry(topic.to_owned())
                .or_default()
                .insert(
                    partition,
                    PartitionState {
                        namespace,
                        next: start,
                        span: None,
                        committed: kafka,
                    },
                );
        }
        Ok(())
    }
}

/// Which namespaces are archived (the registry's `archive`, else `archive.by_default`).
struct NamespaceSwitches {
    by_default: bool,
    registry: HashMap<String, bool>,
    read_at: Option<Instant>,
}

impl NamespaceSwitches {
    fn archived(&self, namespace: &str) -> bool {
        self.registry
            .get(namespace)
            .copied()
            .unwrap_or(self.by_default)
    }
}

/// The archive stage (see the module docs).
pub struct Archiver {
    config: Config,
    store: Arc<ArchiveStore>,
    db: DatabaseConnection,
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
}

impl Archiver {
    pub fn new(
        config: Config,
        store: Arc<ArchiveStore>,
        db: DatabaseConnection,
        metrics: Arc<Metrics>,
    ) -> Archiver {
        Archiver {
            config,
            store,
            db,
            runtime: tokio::runtime::Handle::current(),
            metrics,
        }
    }

    /// Archives until `shutdown` is set; blocking, run it on its own thread. A failure
    /// (object store or Kafka) is logged and the stage starts over from the listing after
    /// a pause: ingest goes on meanwhile.
    pub fn run(self, shutdown: Arc<AtomicBool>) {
        while !shutdown.load(Ordering::SeqCst) {
            let result = self.run_once(&shutdown);
            self.metrics.archive.running.set(0);
            match result {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, "archive stage failed; starting over in 5 s");
                    let deadline = Instant::now() + RESTART_AFTER;
                    while Instant::now() < deadline && !shutdown.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        }
        tracing::info!("archive stopped");
    }

    fn run_once(&self, shutdown: &AtomicBool) -> Result<()> {
        let kafka = &self.config.kafka;
        let consumer: BaseConsumer<ArchiveContext> = crate::kafka::client_config(kafka)?
            .set("group.id", self.config.archive_group_id())
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1500")
            .create_with_context(ArchiveContext {
                partitions: Mutex::new(Partitions::default()),
                store: self.store.clone(),
                runtime: self.runtime.clone(),
                topic_template: kafka.topic_template.clone(),
            })?;
        consumer.subscribe(&[&kafka.topic_pattern])?;
        tracing::info!(pattern = %kafka.topic_pattern, store = %self.store.url(), "archiving");
        self.metrics.archive.running.set(1);
        let mut switches = NamespaceSwitches {
            by_default: self.config.archive.by_default,
            registry: HashMap::new(),
            read_at: None,
        };
        let mut last_tick = Instant::now();
        let mut last_lag: Option<Instant> = None;
        let mut last_error: Option<Instant> = None;
        while !shutdown.load(Ordering::SeqCst) {
            if switches
                .read_at
                .is_none_or(|at| at.elapsed() >= SETTINGS_EVERY)
            {
                self.read_switches(&mut switches);
            }
            let polled = consumer.poll(Duration::from_millis(100));
            let context = consumer.context();
            let mut partitions = context.partitions.lock().expect("partitions lock");
            if let Some(e) = partitions.failed.take() {
                return Err(Error::Internal(format!("resuming the archive: {e}")));
            }
            match polled {
                Some(Ok(message)) => self.take(&mut partitions, &message, &switches),
                Some(Err(e)) => {
                    if last_error.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                        tracing::warn!(error = %e, "archive consume error");
                        last_error = Some(Instant::now());
                    }
                    // A short pause only: librdkafka paces its retries, and the errors it
                    // queued during an outage must be taken quickly when the broker is back,
                    // or the group rejoin (served by polls) waits behind them.
                    drop(partitions);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                None => {}
            }
            let due_by_time = last_tick.elapsed() >= TICK;
            if due_by_time {
                last_tick = Instant::now();
            }
            // Commit after a write, and on every tick for records skipped meanwhile.
            if self.flush_due(&mut partitions, due_by_time, false)? || due_by_time {
                self.commit(&consumer, &mut partitions, CommitMode::Async);
            }
            if last_lag.is_none_or(|at| at.elapsed() >= LAG_EVERY) {
                self.measure_lag(&consumer, &partitions);
                last_lag = Some(Instant::now());
            }
        }
        let context = consumer.context();
        let mut partitions = context.partitions.lock().expect("partitions lock");
        self.flush_due(&mut partitions, true, true)?;
        self.commit(&consumer, &mut partitions, CommitMode::Sync);
        Ok(())
    }

    fn read_switches(&self, switches: &mut NamespaceSwitches) {
        match self.runtime.block_on(db::namespaces::all(&self.db)) {
            Ok(rows) => {
                switches.registry = rows
                    .into_iter()
                    .filter(|row| row.managed)
                    .map(|row| (row.name, row.archive))
                    .collect();
            }
            Err(e) => {
                tracing::warn!(error = %e, "archive: namespace settings not read; keeping the last ones")
            }
        }
        switches.read_at = Some(Instant::now());
    }

    /// Buffers one message in its partition's span (or skips it: already archived, or its
    /// namespace is not archived).
    fn take(
        &self,
        partitions: &mut Partitions,
        message: &BorrowedMessage<'_>,
        switches: &NamespaceSwitches,
    ) {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        let Some(state) = partitions
            .topics
            .get_mut(topic)
            .and_then(|t| t.get_mut(&partition))
        else {
            return; // a topic that does not follow the template, or no longer assigned
        };
        if state.next.is_some_and(|next| offset < next) {
            return; // archived already: Kafka delivered it again
        }
        state.next = Some(offset + 1);
        if !switches.archived(&state.namespace) {
            if let Some(span) = &mut state.span {
                span.last = offset;
            }
            return;
        }
        let resolved = resolve(
            message.payload().unwrap_or_default(),
            &state.namespace,
            message.timestamp().to_millis(),
        );
        let line = ArchivedRecord {
            topic: topic.to_owned(),
            partition,
            offset,
            time: rfc3339_nanos(resolved.time_nanos),
            record: resolved.record,
        };
        let span = state.span.get_or_insert_with(|| Span {
            first: offset,
            last: offset,
            opened: Instant::now(),
            bytes: 0,
            hours: BTreeMap::new(),
        });
        span.last = offset;
        let hour = span.hours.entry(hour_of(resolved.time_nanos)).or_default();
        let before = hour.ndjson.len();
        serde_json::to_writer(&mut hour.ndjson, &line).expect("a record always serialises");
        hour.ndjson.push(b'\n');
        hour.records += 1;
        let added = (hour.ndjson.len() - before) as u64;
        span.bytes += added;
        partitions.buffered_bytes += added;
        self.metrics
            .archive
            .buffered_bytes
            .set(partitions.buffered_bytes as i64);
    }

    /// Writes the spans that are due (all of them when `all`); returns whether any was.
    fn flush_due(&self, partitions: &mut Partitions, check_age: bool, all: bool) -> Result<bool> {
        let settings = &self.config.archive;
        let max_age = Duration::from_secs(settings.flush_interval_secs);
        let mut due: Vec<(String, i32, u64)> = Vec::new();
        let mut open: Vec<(String, i32, u64)> = Vec::new();
        for (topic, states) in &partitions.topics {
            for (&partition, state) in states {
                let Some(span) = &state.span else { continue };
                let key = (topic.clone(), partition, span.bytes);
                if all
                    || span.bytes >= settings.flush_bytes
                    || (check_age && span.opened.elapsed() >= max_age)
                {
                    due.push(key);
                } else {
                    open.push(key);
                }
            }
        }
        // Past the memory bound, the largest open spans go early.
        let mut buffered = partitions
            .buffered_bytes
            .saturating_sub(due.iter().map(|d| d.2).sum::<u64>());
        open.sort_by_key(|k| std::cmp::Reverse(k.2));
        for key in open {
            if buffered <= settings.max_buffered_bytes {
                break;
            }
            buffered -= key.2;
            due.push(key);
        }
        if due.is_empty() {
            return Ok(false);
        }
        let mut writes = Vec::new();
        for (topic, partition, _) in &due {
            let state = partitions
                .topics
                .get_mut(topic)
                .and_then(|t| t.get_mut(partition))
                .expect("a due span's partition");
            let span = state.span.take().expect("a due span");
            partitions.buffered_bytes -= span.bytes;
            writes.push(self.seal(&state.namespace, topic, *partition, span)?);
        }
        self.metrics
            .archive
            .buffered_bytes
            .set(partitions.buffered_bytes as i64);
        let objects: Vec<(ObjectName, Vec<u8>)> = writes.into_iter().flatten().collect();
        let written: Vec<(String, u64, u64)> = objects
            .iter()
            .map(|(name, bytes)| (name.namespace.clone(), name.records, bytes.len() as u64))
            .collect();
        let store = &self.store;
        let uploads = objects
            .into_iter()
            .map(|(name, bytes)| async move { store.put(&name, bytes).await });
        self.runtime
            .block_on(futures::future::try_join_all(uploads))?;
        for (namespace, records, bytes) in written {
            let label = NamespaceLabel { namespace };
            let archive = &self.metrics.archive;
            archive.records.get_or_create(&label).inc_by(records);
            archive.objects.get_or_create(&label).inc();
            archive.bytes.get_or_create(&label).inc_by(bytes);
        }
        Ok(true)
    }

    /// Compresses a span into its objects, one per hour.
    fn seal(
        &self,
        namespace: &str,
        topic: &str,
        partition: i32,
        span: Span,
    ) -> Result<Vec<(ObjectName, Vec<u8>)>> {
        let parts = span.hours.len() as u32;
        let mut objects = Vec::with_capacity(span.hours.len());
        for (i, (hour, lines)) in span.hours.into_iter().enumerate() {
            let compressed = zstd::bulk::compress(&lines.ndjson, self.config.archive.zstd_level)
                .map_err(|e| Error::Io("compressing an archive object".into(), e))?;
            let name = ObjectName {
                namespace: namespace.to_owned(),
                hour,
                topic: topic.to_owned(),
                partition,
                first: span.first,
                last: span.last,
                part: i as u32 + 1,
                parts,
                records: lines.records,
            };
            objects.push((name, compressed));
        }
        Ok(objects)
    }

    /// Commits, per partition, the offset everything below which is archived or skipped.
    fn commit(
        &self,
        consumer: &BaseConsumer<ArchiveContext>,
        partitions: &mut Partitions,
        mode: CommitMode,
    ) {
        let mut list = TopicPartitionList::new();
        for (topic, states) in &mut partitions.topics {
            for (&partition, state) in states.iter_mut() {
                let Some(offset) = state.committable() else {
                    continue;
                };
                if state.committed != Some(offset) {
                    if let Err(e) =
                        list.add_partition_offset(topic, partition, Offset::Offset(offset))
                    {
                        tracing::warn!(error = %e, "archive commit list");
                        continue;
                    }
                    state.committed = Some(offset);
                }
            }
        }
        if list.count() == 0 {
            return;
        }
        if let Err(e) = consumer.commit(&list, mode) {
            // The listing is the truth; Kafka's copy only tells where skipped records end.
            tracing::warn!(error = %e, "archive kafka offset commit failed");
        }
    }

    /// Records not yet archived, per namespace: end offset minus what is committed.
    fn measure_lag(&self, consumer: &BaseConsumer<ArchiveContext>, partitions: &Partitions) {
        let mut lag: HashMap<&str, i64> = HashMap::new();
        for (topic, states) in &partitions.topics {
            for (&partition, state) in states {
                let Ok((low, high)) =
                    consumer.fetch_watermarks(topic, partition, Duration::from_secs(2))
                else {
                    continue;
                };
                let at = state.committable().unwrap_or(low).max(low);
                *lag.entry(state.namespace.as_str()).or_default() += (high - at).max(0);
            }
        }
        for (namespace, records) in lag {
            self.metrics
                .archive
                .lag_records
                .get_or_create(&NamespaceLabel {
                    namespace: namespace.to_owned(),
                })
                .set(records);
        }
    }
}
