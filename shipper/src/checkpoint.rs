//! File positions that survive a crash. A position moves only after Kafka acknowledged every
//! record before it; the file is versioned JSON written to a temp file, fsynced and renamed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::DeliveryFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};

use crate::fingerprint::{FileId, Head};
use crate::metrics::Metrics;
use crate::{Error, Result};

const FILE_NAME: &str = "checkpoints.json";
/// Version 2 adds the content fingerprint (`head_len`, `head_hash`) and the link target;
/// version 1 files are still read (their positions match by device and inode alone).
const VERSION: u32 = 2;
const SAVE_INTERVAL: Duration = Duration::from_millis(500);

/// How far a file has been shipped: every byte before `offset` is in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The path the globs found it at (its name carries the container metadata).
    pub path: PathBuf,
    /// Where that path linked to, when it is a symlink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
    pub dev: u64,
    pub inode: u64,
    /// How many leading bytes `head_hash` covers; 0 when unknown.
    #[serde(default)]
    pub head_len: u64,
    #[serde(default)]
    pub head_hash: u64,
    pub offset: u64,
}

impl Position {
    pub fn id(&self) -> FileId {
        FileId {
            dev: self.dev,
            inode: self.inode,
        }
    }

    pub fn head(&self) -> Head {
        Head {
            len: self.head_len,
            hash: self.head_hash,
        }
    }
}

/// A change of saved progress, applied once every record before it is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    At(Position),
    /// The file was read to its end and let go (rotated away or deleted): forget it.
    Done(FileId),
}

#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    positions: Vec<Position>,
}

/// The checkpoint file in the checkpoint directory.
pub struct CheckpointStore {
    dir: PathBuf,
}

/// The saved positions, and whether a checkpoint file existed at all (on the very first
/// start it does not, and `read_from` applies).
#[derive(Debug)]
pub struct Loaded {
    pub positions: HashMap<FileId, Position>,
    pub existed: bool,
}

impl CheckpointStore {
    pub fn open(dir: &Path) -> Result<CheckpointStore> {
        Ok(CheckpointStore {
            dir: dir.to_owned(),
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn error(&self, reason: impl ToString) -> Error {
        Error::Checkpoint {
            path: self.path().display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// The saved positions by file; empty on first start.
    pub fn load(&self) -> Result<Loaded> {
        let bytes = match std::fs::read(self.path()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    positions: HashMap::new(),
                    existed: false,
                })
            }
            Err(e) => return Err(self.error(e)),
        };
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let versioned: Versioned = serde_json::from_slice(&bytes).map_err(|e| self.error(e))?;
        if !(1..=VERSION).contains(&versioned.version) {
            return Err(self.error(format!("unknown version {}", versioned.version)));
        }
        // Version 1 positions are version 2 positions without fingerprint or target; the
        // serde defaults fill those in.
        let file: CheckpointFile = serde_json::from_slice(&bytes).map_err(|e| self.error(e))?;
        Ok(Loaded {
            positions: file.positions.into_iter().map(|p| (p.id(), p)).collect(),
            existed: true,
        })
    }

    /// Writes all positions atomically: temp file, fsync, rename, fsync of the directory.
    pub fn save(&self, positions: &HashMap<FileId, Position>) -> Result<()> {
        let mut sorted: Vec<Position> = positions.values().cloned().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path).then(a.inode.cmp(&b.inode)));
        let json = serde_json::to_vec_pretty(&CheckpointFile {
            version: VERSION,
            positions: sorted,
        })
        .map_err(|e| self.error(e))?;
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            std::fs::rename(&tmp, self.path())?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| self.error(e))
    }
}

/// Deliveries of one batch and the positions they make safe.
pub struct PendingBatch {
    pub deliveries: Vec<DeliveryFuture>,
    /// Records the producer refused before sending (larger than `message.max.bytes`): they
    /// go to the dead-letter file like records Kafka refuses.
    pub refused: Vec<Refused>,
    pub progress: Vec<Progress>,
}

/// A record that will never be in Kafka, and why.
pub struct Refused {
    pub error: String,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// The last stage: waits for Kafka's acknowledgements in order and saves positions.
pub struct Checkpointer {
    store: CheckpointStore,
    dead_letter: PathBuf,
    positions: HashMap<FileId, Position>,
    metrics: Arc<Metrics>,
    registrations: Option<UnboundedReceiver<Position>>,
}

impl Checkpointer {
    /// `positions` are the ones the store held at start.
    pub fn new(
        store: CheckpointStore,
        dir: &Path,
        positions: HashMap<FileId, Position>,
        metrics: Arc<Metrics>,
    ) -> Checkpointer {
        Checkpointer {
            store,
            dead_letter: dir.join("dead-letter.ndjson"),
            positions,
            metrics,
            registrations: None,
        }
    }

    /// Files the tailer opened for the first time: saved at once at the position reading
    /// starts from, without waiting for the acknowledgements of earlier batches (minutes
    /// behind when Kafka is slow or down). A file that is created and rotated away while
    /// its first records wait, and the shipper is killed then, is found again on restart
    /// only through a saved position. A position already held is never moved back.
    pub fn with_registrations(mut self, registrations: UnboundedReceiver<Position>) -> Self {
        self.registrations = Some(registrations);
        self
    }

    /// Holds `first` and every registration already sent, then saves once if any was new.
    fn register(&mut self, first: Position, rx: &mut UnboundedReceiver<Position>) {
        let mut new = false;
        let mut next = Some(first);
        while let Some(position) = next {
            if !self.positions.contains_key(&position.id()) {
                self.metrics
                    .file_checkpointed(position.id(), position.offset);
                self.positions.insert(position.id(), position);
                new = true;
            }
            next = rx.try_recv().ok();
        }
        if new {
            self.try_save();
        }
    }

    /// Awaits `work`, saving registrations that arrive meanwhile.
    async fn registering<F: std::future::Future>(
        &mut self,
        registrations: &mut Option<UnboundedReceiver<Position>>,
        work: F,
    ) -> F::Output {
        tokio::pin!(work);
        loop {
            let Some(rx) = registrations.as_mut() else {
                return work.await;
            };
            tokio::select! {
                biased;
                registration = rx.recv() => match registration {
                    Some(position) => self.register(position, rx),
                    None => *registrations = None,
                },
                output = &mut work => return output,
            }
        }
    }

    /// Applies the registrations already sent: the tailer sends a file's registration
    /// before any batch with its progress, so this keeps them in order.
    fn drain_registrations(&mut self, registrations: &mut Option<UnboundedReceiver<Position>>) {
        if let Some(rx) = registrations.as_mut() {
            if let Ok(first) = rx.try_recv() {
                self.register(first, rx);
            }
        }
    }

    /// A save that fails (a full disk, a read-only mount) stops nothing: shipping goes on,
    /// the saved file keeps its old positions, the failure is logged and shown by
    /// `checkpoint_save_failing` and `/readyz`, and saving is tried again every
    /// [`SAVE_INTERVAL`] until it works.
    pub async fn run(mut self, mut rx: Receiver<PendingBatch>) -> Result<()> {
        let mut last_save = Instant::now();
        let mut dirty = false;
        let mut registrations = self.registrations.take();
        loop {
            let batch = if dirty {
                let wait = SAVE_INTERVAL.saturating_sub(last_save.elapsed());
                match self
                    .registering(&mut registrations, tokio::time::timeout(wait, rx.recv()))
                    .await
                {
                    Ok(batch) => batch,
                    Err(_idle) => {
                        dirty = !self.try_save();
                        last_save = Instant::now();
                        continue;
                    }
                }
            } else {
                self.registering(&mut registrations, rx.recv()).await
            };
            let Some(batch) = batch else { break };
            let mut new_file = false;
            for delivery in batch.deliveries {
                match self.registering(&mut registrations, delivery).await {
                    Ok(Ok(_)) => {
                        self.metrics.records_acked.inc();
                    }
                    Ok(Err((error, message))) => {
                        use rdkafka::Message;
                        let payload = message.payload().unwrap_or_default();
                        self.dead_letter(&error.to_string(), message.topic(), payload)?
                    }
                    Err(_canceled) => {
                        // The producer was dropped before delivery: nothing after this point
                        // is known to be in Kafka, so stop without moving positions.
                        return Err(Error::Stage("producer went away before delivery".into()));
                    }
                }
            }
            for refused in &batch.refused {
                self.dead_letter(&refused.error, &refused.topic, &refused.payload)?;
            }
            self.drain_registrations(&mut registrations);
            for progress in batch.progress {
                match progress {
                    Progress::At(position) => {
                        // A file saved for the first time is saved at once: if it rotates
                        // away while we are down, only a saved position finds it again.
                        new_file |= !self.positions.contains_key(&position.id());
                        self.metrics
                            .file_checkpointed(position.id(), position.offset);
                        self.positions.insert(position.id(), position);
                    }
                    Progress::Done(id) => {
                        self.metrics.file_forgotten(id);
                        self.positions.remove(&id);
                    }
                }
            }
            self.metrics.in_flight_batches.dec();
            dirty = true;
            if new_file || last_save.elapsed() >= SAVE_INTERVAL {
                dirty = !self.try_save();
                last_save = Instant::now();
            }
        }
        if dirty {
            self.store.save(&self.positions)?;
        }
        Ok(())
    }

    /// Saves the positions; a failure is reported (logged when it starts and when it ends),
    /// not returned. True when saved.
    fn try_save(&self) -> bool {
        let failing = self.metrics.checkpoint_save_failing.get() != 0;
        match self.store.save(&self.positions) {
            Ok(()) => {
                if failing {
                    tracing::info!("checkpoints saved again");
                    self.metrics.checkpoint_save_failing.set(0);
                }
                true
            }
            Err(e) => {
                self.metrics.checkpoint_save_errors.inc();
                if !failing {
                    tracing::error!(error = %e, "cannot save checkpoints; shipping goes on, the saved positions stay where they are until saving works again (a restart now repeats what was shipped since)");
                    self.metrics.checkpoint_save_failing.set(1);
                }
                false
            }
        }
    }

    /// A record Kafka refused for good (e.g. too large): kept locally, never lost.
    fn dead_letter(&self, error: &str, topic: &str, payload: &[u8]) -> Result<()> {
        tracing::error!(topic, %error, "record rejected by Kafka, written to dead-letter file");
        self.metrics.dead_letters.inc();
        let line = serde_json::json!({
            "topic": topic,
            "error": error,
            "payload": String::from_utf8_lossy(payload),
        });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.dead_letter)
            .map_err(|e| Error::Io(format!("opening {}", self.dead_letter.display()), e))?;
        writeln!(file, "{line}")
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::Io(format!("writing {}", self.dead_letter.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert!(loaded.positions.is_empty() && !loaded.existed);
        let position = Position {
            path: "/a.log".into(),
            target: Some("/pods/a/0.log".into()),
            dev: 1,
            inode: 2,
            head_len: 1024,
            head_hash: u64::MAX,
            offset: 42,
        };
        let positions = HashMap::from([(position.id(), position.clone())]);
        store.save(&positions).unwrap();
        let loaded = store.load().unwrap();
        assert!(loaded.existed);
        assert_eq!(loaded.positions, positions);
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    #[test]
    fn version_1_files_are_read_without_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            br#"{"version":1,"positions":[{"path":"/a.log","dev":1,"inode":2,"offset":42}]}"#,
        )
        .unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        let id = FileId { dev: 1, inode: 2 };
        let position = &loaded.positions[&id];
        assert_eq!(
            (position.offset, position.head(), position.target.as_deref()),
            (42, Head::default(), None)
        );
        // Saving writes version 2.
        store.save(&loaded.positions).unwrap();
        let saved = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(saved.contains(r#""version": 2"#), "{saved}");
        std::fs::write(
            dir.path().join(FILE_NAME),
            br#"{"version":3,"positions":[]}"#,
        )
        .unwrap();
        assert!(store.load().is_err());
    }

    #[test]
    fn corrupt_checkpoint_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let err = CheckpointStore::open(dir.path())
            .unwrap()
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("checkpoints.json"), "{err}");
    }
}
