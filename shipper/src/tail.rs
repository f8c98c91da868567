//! The first stage: finds container log files, reads new lines, parses them and builds
//! records. Runs on a blocking thread; when the next stage is full it blocks, so reading
//! pauses instead of buffering without bound.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitesize_record::Record;
use tokio::sync::mpsc::Sender;

use crate::checkpoint::Position;
use crate::config::Config;
use crate::file_name::ContainerFile;
use crate::line::{parse_line, LogLine, PartialJoiner};
use crate::{Batch, Error, OutgoingRecord, Result};

/// Bytes read from one file before moving to the next, so one busy file cannot starve others.
const READ_CHUNK: usize = 256 * 1024;

pub struct Tailer {
    log_dir: PathBuf,
    poll_interval: Duration,
    batch_records: usize,
    max_line_bytes: usize,
    topic_template: String,
    cluster: Option<String>,
    node_name: String,
    saved: HashMap<PathBuf, Position>,
    files: HashMap<PathBuf, TailedFile>,
    ignored: HashSet<PathBuf>,
    batch: Batch,
}

/// A file being read, and how far.
struct TailedFile {
    path: PathBuf,
    container: ContainerFile,
    topic: String,
    file: File,
    dev: u64,
    inode: u64,
    /// File offset of the first byte in `buf`.
    buf_offset: u64,
    /// Bytes read but not yet ending in a newline.
    buf: Vec<u8>,
    /// Offset after the last line whose record is complete: safe to checkpoint.
    safe_offset: u64,
    joiner: PartialJoiner,
    touched: bool,
}

impl Tailer {
    pub fn new(config: &Config, saved: HashMap<PathBuf, Position>) -> Tailer {
        Tailer {
            log_dir: config.log_dir.clone(),
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            batch_records: config.batch_records,
            max_line_bytes: config.max_line_bytes,
            topic_template: config.topic_template.clone(),
            cluster: config.cluster.clone(),
            node_name: config.node_name.clone().unwrap_or_default(),
            saved,
            files: HashMap::new(),
            ignored: HashSet::new(),
            batch: Batch::default(),
        }
    }

    /// Reads until `shutdown` is set; hands batches to `tx`.
    pub fn run(mut self, tx: Sender<Batch>, shutdown: Arc<AtomicBool>) -> Result<()> {
        tracing::info!(dir = %self.log_dir.display(), "tailing");
        while !shutdown.load(Ordering::SeqCst) {
            let read_any = self.pass(&tx)?;
            if !read_any {
                self.send(&tx)?;
                std::thread::sleep(self.poll_interval);
            }
        }
        self.send(&tx)
    }

    /// One round over every file; true when anything was read.
    fn pass(&mut self, tx: &Sender<Batch>) -> Result<bool> {
        self.discover();
        let mut read_any = false;
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        for path in paths {
            read_any |= self.read_file(&path, tx)?;
        }
        Ok(read_any)
    }

    /// Opens files that appeared since the last pass.
    fn discover(&mut self) {
        let entries = match std::fs::read_dir(&self.log_dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(dir = %self.log_dir.display(), error = %e, "cannot list log directory");
                return;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if self.files.contains_key(&path) || self.ignored.contains(&path) {
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "log") {
                continue;
            }
            let Some(container) = ContainerFile::parse(&path) else {
                tracing::warn!(path = %path.display(), "not a container log file name, ignored");
                self.ignored.insert(path);
                continue;
            };
            let topic = match bitesize_record::topic_for(&self.topic_template, &container.namespace)
            {
                Ok(topic) => topic,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "no valid topic, ignored");
                    self.ignored.insert(path);
                    continue;
                }
            };
            match self.open(&path, container, topic) {
                Ok(file) => {
                    tracing::info!(path = %path.display(), offset = file.safe_offset, "following file");
                    self.files.insert(path, file);
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot open"),
            }
        }
    }

    fn open(
        &mut self,
        path: &Path,
        container: ContainerFile,
        topic: String,
    ) -> std::io::Result<TailedFile> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let start = match self.saved.remove(path) {
            Some(p) if p.dev == meta.dev() && p.inode == meta.ino() && p.offset <= meta.len() => {
                p.offset
            }
            _ => 0,
        };
        file.seek(SeekFrom::Start(start))?;
        Ok(TailedFile {
            path: path.to_owned(),
            container,
            topic,
            file,
            dev: meta.dev(),
            inode: meta.ino(),
            buf_offset: start,
            buf: Vec::new(),
            safe_offset: start,
            joiner: PartialJoiner::new(self.max_line_bytes),
            touched: false,
        })
    }

    /// Reads what is new in one file, following rotation, truncation and deletion.
    fn read_file(&mut self, path: &Path, tx: &Sender<Batch>) -> Result<bool> {
        let mut read_any = self.read_available(path, tx)?;
        let state = match std::fs::metadata(path) {
            Ok(meta) => {
                let file = &self.files[path];
                if meta.ino() != file.inode || meta.dev() != file.dev {
                    FileState::Replaced
                } else if meta.len() < file.buf_offset + file.buf.len() as u64 {
                    FileState::Truncated
                } else {
                    FileState::Same
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileState::Gone,
            Err(_) => FileState::Same,
        };
        match state {
            FileState::Same => {}
            FileState::Truncated => {
                tracing::info!(path = %path.display(), "file truncated, reading from the start");
                let file = self.files.get_mut(path).expect("known file");
                file.file
                    .seek(SeekFrom::Start(0))
                    .map_err(|e| io(path, e))?;
                file.buf.clear();
                file.buf_offset = 0;
                file.safe_offset = 0;
                file.touched = true;
                read_any |= self.read_available(path, tx)?;
            }
            FileState::Replaced | FileState::Gone => {
                // Finish the old file from its open handle, then let discovery open the new one.
                read_any |= self.read_available(path, tx)?;
                let mut file = self.files.remove(path).expect("known file");
                if let Some(line) = file.joiner.flush() {
                    let record = self.build(&file, line);
                    self.batch.records.push(record);
                }
                tracing::info!(path = %path.display(), rotated = matches!(state, FileState::Replaced), "file finished");
                if matches!(state, FileState::Replaced) {
                    // The new file under this path starts from the beginning.
                    self.saved.remove(path);
                }
                file.touched = false;
            }
        }
        Ok(read_any)
    }

    /// Reads up to [`READ_CHUNK`] bytes repeatedly until the end of the file.
    fn read_available(&mut self, path: &Path, tx: &Sender<Batch>) -> Result<bool> {
        let mut read_any = false;
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let file = self.files.get_mut(path).expect("known file");
            let n = file.file.read(&mut chunk).map_err(|e| io(path, e))?;
            if n == 0 {
                return Ok(read_any);
            }
            read_any = true;
            file.buf.extend_from_slice(&chunk[..n]);
            file.touched = true;
            self.take_lines(path);
            if self.batch.records.len() >= self.batch_records {
                self.send(tx)?;
            }
            if n < chunk.len() {
                return Ok(read_any);
            }
        }
    }

    /// Turns every complete line in the file's buffer into records.
    fn take_lines(&mut self, path: &Path) {
        let file = self.files.get_mut(path).expect("known file");
        let mut consumed = 0;
        let mut lines = Vec::new();
        while let Some(newline) = file.buf[consumed..].iter().position(|&b| b == b'\n') {
            let line = parse_line(&file.buf[consumed..consumed + newline]);
            consumed += newline + 1;
            for done in file.joiner.push(line) {
                lines.push(done);
            }
            if !file.joiner.has_pending() {
                file.safe_offset = file.buf_offset + consumed as u64;
            }
        }
        file.buf.drain(..consumed);
        file.buf_offset += consumed as u64;
        let file = &self.files[path];
        let records: Vec<OutgoingRecord> = lines
            .into_iter()
            .map(|line| self.build(file, line))
            .collect();
        self.batch.records.extend(records);
    }

    fn build(&self, file: &TailedFile, line: LogLine) -> OutgoingRecord {
        let mut record = Record {
            time: Some(line.time),
            stream: line.stream,
            log: line.message,
            cluster: self.cluster.clone(),
            marks: line.marks,
            ..Default::default()
        };
        record.docker.container_id = file.container.container_id.clone();
        record.kubernetes.namespace_name = file.container.namespace.clone();
        record.kubernetes.pod_name = file.container.pod.clone();
        record.kubernetes.container_name = file.container.container.clone();
        record.kubernetes.host = self.node_name.clone();
        record.merge_json_log();
        OutgoingRecord {
            topic: file.topic.clone(),
            key: file.container.pod.clone(),
            payload: record.encode(),
        }
    }

    /// Hands the current batch on, with the positions its records make safe.
    fn send(&mut self, tx: &Sender<Batch>) -> Result<()> {
        for file in self.files.values_mut().filter(|f| f.touched) {
            file.touched = false;
            self.batch.positions.push(Position {
                path: file.path.clone(),
                dev: file.dev,
                inode: file.inode,
                offset: file.safe_offset,
            });
        }
        if self.batch.records.is_empty() && self.batch.positions.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        tx.blocking_send(batch)
            .map_err(|_| Error::Stage("producer stopped".into()))
    }
}

enum FileState {
    Same,
    Truncated,
    Replaced,
    Gone,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("reading {}", path.display()), e)
}
