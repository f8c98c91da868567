//! Rehydrate: load an archived time range of a namespace back into its index, without
//! duplicating what the index holds.
//!
//! The objects of complete spans whose hour overlaps the range are read one by one; a line
//! is loaded when its time is in the range and its offset is below where ingest stands in
//! its partition (the index's commit payload; for a partition the index never held, where
//! the indexers' consumer group would start: its committed offset, else the partition's
//! first offset). Records at or past that point are left to ingest, which indexes them
//! from Kafka itself. Records already in the index (same partition and offset) are
//! replaced rather than skipped: a delete of exactly those documents is queued before they
//! are added again, so a retention delete still waiting for its commit cannot take them
//! away afterwards. Each record therefore ends up in the index exactly once.
//!
//! Commits keep the commit payload true. With the server running, the changes are queued
//! in the namespace's writer and its ingest writer commits them with its own offsets (as
//! retention does); the rehydrate waits for that commit. With the server stopped
//! (`bitesize rehydrate` on the data directory), nothing else writes, and the rehydrate
//! commits itself with the payload as it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tantivy::collector::DocSetCollector;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::Term;

use super::catalog::{overlaps, ArchivedObject};
use super::line::ArchivedRecord;
use super::object_name::ObjectName;
use super::store::ArchiveStore;
use crate::config::KafkaConfig;
use crate::search::schema::{document, Origin};
use crate::search::{NamespaceIndex, Offsets};
use crate::{Error, Result};

/// How long a rehydrate waits for the ingest writer to commit what it queued.
const COMMIT_WAIT: Duration = Duration::from_secs(120);

/// Where a rehydrate stands (shared with whoever watches it).
#[derive(Default)]
pub struct Progress {
    state: Mutex<&'static str>,
    error: Mutex<Option<String>>,
    pub objects_total: AtomicU64,
    pub objects_done: AtomicU64,
    pub bytes_total: AtomicU64,
    pub bytes_done: AtomicU64,
    pub added: AtomicU64,
    pub present: AtomicU64,
    pub left_to_ingest: AtomicU64,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        let progress = Progress::default();
        *progress.state.lock().expect("state lock") = "queued";
        Arc::new(progress)
    }

    pub fn set_state(&self, state: &'static str) {
        *self.state.lock().expect("state lock") = state;
    }

    pub fn state(&self) -> &'static str {
        *self.state.lock().expect("state lock")
    }

    pub fn fail(&self, error: String) {
        *self.error.lock().expect("error lock") = Some(error);
        self.set_state("failed");
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().expect("error lock").clone()
    }
}

/// A rehydrate as `POST /api/v1/archive/rehydrate` and `GET .../{id}` show it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub id: i64,
    pub namespace: String,
    /// The range, RFC 3339: `[from, to)`.
    pub from: String,
    pub to: String,
    /// Until then retention keeps the range's records in the index.
    pub keep_until: String,
    pub requested_by: String,
    /// `queued`, `running`, `committing` (waiting for the index commit), `done` or `failed`.
    pub state: String,
    pub objects_total: u64,
    pub objects_done: u64,
    /// Compressed bytes of the objects to read, and read so far.
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Records that were not in the index and now are.
    pub records_added: u64,
    /// Records that were in the index already (written again in place, not duplicated).
    pub records_already_indexed: u64,
    /// Records ingest has not reached yet: it indexes them from Kafka itself.
    pub records_left_to_ingest: u64,
    pub error: Option<String>,
}

impl JobStatus {
    pub fn finished(&self) -> bool {
        self.state == "done" || self.state == "failed"
    }

    /// One line for people: `3/10 objects, 1.2/4.0 MB, 500 added, 20 already indexed`.
    pub fn progress_line(&self) -> String {
        format!(
            "{} {}: {}/{} objects, {:.1}/{:.1} MB, {} added, {} already indexed, {} left to ingest",
            self.state,
            self.namespace,
            self.objects_done,
            self.objects_total,
            self.bytes_done as f64 / 1e6,
            self.bytes_total as f64 / 1e6,
            self.records_added,
            self.records_already_indexed,
            self.records_left_to_ingest
        )
    }
}

/// How the rehydrated records get committed.
#[derive(Debug, Clone, Copy)]
pub enum Commit {
    /// The server runs: its ingest writer commits them with its own offsets.
    ByIngest,
    /// Nothing else writes the index: commit with the payload as it is.
    Own,
}

/// One rehydrate of `range` (nanoseconds, `[from, to)`) into `index`.
pub struct Rehydration {
    pub store: Arc<ArchiveStore>,
    pub index: Arc<NamespaceIndex>,
    pub kafka: KafkaConfig,
    pub range: (i64, i64),
    pub commit: Commit,
    pub progress: Arc<Progress>,
}

impl Rehydration {
    pub async fn run(&self) -> Result<()> {
        self.progress.set_state("running");
        let (from, to) = self.range;
        let catalog = self.store.catalog(&self.index.name).await?;
        let objects: Vec<ArchivedObject> = catalog
            .complete_objects()
            .filter(|o| overlaps(o.name.hour, Some(from), Some(to)))
            .cloned()
            .collect();
        let progress = &self.progress;
        progress
            .objects_total
            .store(objects.len() as u64, Ordering::SeqCst);
        progress
            .bytes_total
            .store(objects.iter().map(|o| o.size).sum(), Ordering::SeqCst);
        let partitions: HashSet<(String, i32)> = objects
            .iter()
            .map(|o| (o.name.topic.clone(), o.name.partition))
            .collect();
        let bounds = Arc::new(self.ingest_bounds(partitions).await?);
        let mut last_op: Option<u64> = None;
        for object in objects {
            let bytes = self.store.get(&object.name).await?;
            let (index, bounds, shared) =
                (self.index.clone(), bounds.clone(), self.progress.clone());
            let name = object.name.clone();
            let range = self.range;
            let op = tokio::task::spawn_blocking(move || {
                load_object(&index, &name, &bytes, range, &bounds, &shared)
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
            last_op = last_op.max(op);
            progress.objects_done.fetch_add(1, Ordering::SeqCst);
            progress.bytes_done.fetch_add(object.size, Ordering::SeqCst);
        }
        self.progress.set_state("committing");
        match (self.commit, last_op) {
            (_, None) => {}
            (Commit::Own, Some(_)) => {
                let index = self.index.clone();
                tokio::task::spawn_blocking(move || index.commit(&index.committed_offsets()?))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??;
            }
            (Commit::ByIngest, Some(op)) => self.wait_for_commit(op).await?,
        }
        self.progress.set_state("done");
        Ok(())
    }

    /// Waits until the index's last commit covers operation `op`.
    async fn wait_for_commit(&self, op: u64) -> Result<()> {
        let deadline = Instant::now() + COMMIT_WAIT;
        loop {
            let committed = self.index.tantivy_index().load_metas()?.opstamp;
            if committed > op {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Internal(format!(
                    "the records are queued in {}'s index, but its ingest writer did not commit them within {} s (is ingest running for this namespace?)",
                    self.index.name,
                    COMMIT_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Per topic and partition, the first offset ingest indexes (or indexed) itself.
    async fn ingest_bounds(&self, partitions: HashSet<(String, i32)>) -> Result<Offsets> {
        let mut bounds = self.index.committed_offsets()?;
        let missing: Vec<(String, i32)> = partitions
            .into_iter()
            .filter(|(t, p)| bounds.get(t).and_then(|ps| ps.get(p)).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(bounds);
        }
        let kafka = self.kafka.clone();
        let starts = tokio::task::spawn_blocking(move || ingest_starts(&kafka, &missing))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        for ((topic, partition), start) in starts {
            bounds.entry(topic).or_default().insert(partition, start);
        }
        Ok(bounds)
    }
}

/// Where the indexers' consumer group starts in partitions the index holds no offsets for:
/// its committed offset, else the partition's first; a topic gone from Kafka is never
/// ingested again (`i64::MAX`).
fn ingest_starts(
    kafka: &KafkaConfig,
    partitions: &[(String, i32)],
) -> Result<HashMap<(String, i32), i64>> {
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = crate::kafka::client_config(kafka)?
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let mut starts = HashMap::new();
    for (topic, wanted) in by_topic {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        let mut list = TopicPartitionList::new();
        for &partition in &wanted {
            list.add_partition(topic, partition);
        }
        let committed = if exists {
            consumer.committed_offsets(list, timeout)?
        } else {
            TopicPartitionList::new()
        };
        for partition in wanted {
            let start = if !exists {
                i64::MAX
            } else {
                let (low, _) = consumer.fetch_watermarks(topic, partition, timeout)?;
                match committed
                    .find_partition(topic, partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) => o.max(low),
                    _ => low,
                }
            };
            starts.insert((topic.to_owned(), partition), start);
        }
    }
    Ok(starts)
}

/// Loads one object's lines in the range; returns the opstamp of the last change queued.
fn load_object(
    index: &NamespaceIndex,
    name: &ObjectName,
    bytes: &[u8],
    (from, to): (i64, i64),
    bounds: &Offsets,
    progress: &Progress,
) -> Result<Option<u64>> {
    let path = name.path();
    let ndjson = zstd::stream::decode_all(bytes)
        .map_err(|e| Error::Internal(format!("archive object {path}: not zstd: {e}")))?;
    let bound = bounds
        .get(&name.topic)
        .and_then(|p| p.get(&name.partition))
        .copied()
        .unwrap_or(i64::MAX);
    let mut wanted: Vec<(ArchivedRecord, i64)> = Vec::new();
    for (number, line) in ndjson.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let record: ArchivedRecord = serde_json::from_slice(line).map_err(|e| {
            Error::Internal(format!("archive object {path}, line {}: {e}", number + 1))
        })?;
        let time = record.time_nanos().ok_or_else(|| {
            Error::Internal(format!(
                "archive object {path}, line {}: time {:?} is not RFC 3339",
                number + 1,
                record.time
            ))
        })?;
        if time < from || time >= to {
            continue;
        }
        if record.offset >= bound {
            progress.left_to_ingest.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        wanted.push((record, time));
    }
    if wanted.is_empty() {
        return Ok(None);
    }
    let offsets: Vec<u64> = wanted.iter().map(|(r, _)| r.offset.max(0) as u64).collect();
    let fields = &index.fields;
    let same_records = || -> Box<dyn Query> {
        Box::new(BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(fields.partition, name.partition.max(0) as u64),
                    IndexRecordOption::Basic,
                )),
            ),
            (
                Occur::Must,
                Box::new(TermSetQuery::new(
                    offsets
                        .iter()
                        .map(|&o| Term::from_field_u64(fields.offset, o)),
                )),
            ),
        ]))
    };
    let searcher = index.searcher();
    let present = searcher.search(&*same_records(), &DocSetCollector)?.len() as u64;
    let mut last = None;
    if present > 0 {
        last = Some(index.queue_delete(same_records())?);
    }
    for (record, time) in &wanted {
        let origin = Origin {
            partition: record.partition,
            offset: record.offset,
        };
        last = Some(index.queue_add(document(fields, &record.record, *time, origin))?);
    }
    progress.present.fetch_add(present, Ordering::SeqCst);
    progress
        .added
        .fetch_add(wanted.len() as u64 - present, Ordering::SeqCst);
    Ok(last)
}
