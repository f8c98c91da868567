//! File positions that survive a crash. A position moves only after Kafka acknowledged every
//! record before it; the file is versioned JSON written to a temp file, fsynced and renamed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::producer::DeliveryFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Receiver;

use crate::{Error, Result};

const FILE_NAME: &str = "checkpoints.json";
const VERSION: u32 = 1;
const SAVE_INTERVAL: Duration = Duration::from_millis(500);

/// How far a file has been shipped: every byte before `offset` is in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub path: PathBuf,
    pub dev: u64,
    pub inode: u64,
    pub offset: u64,
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

    /// The saved positions by path; empty on first start.
    pub fn load(&self) -> Result<HashMap<PathBuf, Position>> {
        let bytes = match std::fs::read(self.path()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(self.error(e)),
        };
        let file: CheckpointFile = serde_json::from_slice(&bytes).map_err(|e| self.error(e))?;
        if file.version != VERSION {
            return Err(self.error(format!("unknown version {}", file.version)));
        }
        Ok(file
            .positions
            .into_iter()
            .map(|p| (p.path.clone(), p))
            .collect())
    }

    /// Writes all positions atomically: temp file, fsync, rename, fsync of the directory.
    pub fn save(&self, positions: &HashMap<PathBuf, Position>) -> Result<()> {
        let mut sorted: Vec<Position> = positions.values().cloned().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
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
    pub positions: Vec<Position>,
}

/// The last stage: waits for Kafka's acknowledgements in order and saves positions.
pub struct Checkpointer {
    store: CheckpointStore,
    dead_letter: PathBuf,
    positions: HashMap<PathBuf, Position>,
}

impl Checkpointer {
    pub fn new(store: CheckpointStore, dir: &Path) -> Checkpointer {
        let positions = store.load().unwrap_or_default();
        Checkpointer {
            store,
            dead_letter: dir.join("dead-letter.ndjson"),
            positions,
        }
    }

    pub async fn run(mut self, mut rx: Receiver<PendingBatch>) -> Result<()> {
        let mut last_save = Instant::now();
        let mut dirty = false;
        while let Some(batch) = rx.recv().await {
            for delivery in batch.deliveries {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((error, message))) => self.dead_letter(&error.to_string(), &message)?,
                    Err(_canceled) => {
                        // The producer was dropped before delivery: nothing after this point
                        // is known to be in Kafka, so stop without moving positions.
                        return Err(Error::Stage("producer went away before delivery".into()));
                    }
                }
            }
            for position in batch.positions {
                self.positions.insert(position.path.clone(), position);
            }
            dirty = true;
            if last_save.elapsed() >= SAVE_INTERVAL {
                self.store.save(&self.positions)?;
                last_save = Instant::now();
                dirty = false;
            }
        }
        if dirty {
            self.store.save(&self.positions)?;
        }
        Ok(())
    }

    /// A record Kafka refused for good (e.g. too large): kept locally, never lost.
    fn dead_letter(&self, error: &str, message: &rdkafka::message::OwnedMessage) -> Result<()> {
        use rdkafka::Message;
        tracing::error!(topic = message.topic(), %error, "record rejected by Kafka, written to dead-letter file");
        let line = serde_json::json!({
            "topic": message.topic(),
            "error": error,
            "payload": String::from_utf8_lossy(message.payload().unwrap_or_default()),
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
        assert!(store.load().unwrap().is_empty());
        let position = Position {
            path: "/a.log".into(),
            dev: 1,
            inode: 2,
            offset: 42,
        };
        let positions = HashMap::from([(position.path.clone(), position.clone())]);
        store.save(&positions).unwrap();
        assert_eq!(store.load().unwrap(), positions);
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
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
