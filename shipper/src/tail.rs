//! The first stage: finds container log files, reads new lines and builds records. Runs on
//! a blocking thread; when the next stage is full it blocks, so reading pauses instead of
//! buffering without bound.
//!
//! Files are known by identity ([`FileId`] plus a [`Head`] fingerprint), not by path:
//! - rename + create: the old file is read to its end from the open handle, then let go once
//!   idle for [`ROTATED_IDLE`]; the new file at the path starts at the beginning;
//! - copytruncate: the rest of the old content is read from the copy (found beside the file
//!   by its fingerprint), then the file is read again from the start;
//! - deletion: the file is finished from its open handle;
//! - restart: a checkpointed file that moved out of the globs (`x.log` → `x.log.1`) is
//!   looked for by fingerprint in its directory and finished from its checkpoint.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::Sender;

use crate::checkpoint::{Position, Progress};
use crate::config::{Config, ReadFrom};
use crate::decode::{DecoderSettings, FileDecoder};
use crate::discover::{FileEvents, Globs};
use crate::fingerprint::{find_in_dirs, rotation_dirs, FileId, Head, Wanted};
use crate::line::LogLine;
use crate::metrics::Metrics;
use crate::record_builder::{RecordBuilder, Source};
use crate::{Batch, Error, Result};

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 256 * 1024;
/// Reads of one file per pass, so one busy file cannot starve the others.
const CHUNKS_PER_PASS: usize = 16;
/// A file no longer at its path (rotated away, deleted) is let go after it has given no new
/// bytes for this long: writers may still append briefly after a rename.
const ROTATED_IDLE: Duration = Duration::from_secs(2);
/// How long a finished file is remembered (see [`Tailer::renamed_unseen`]).
const FINISHED_MEMORY: Duration = Duration::from_secs(60);
/// How far back `read_from: end` looks for the last complete line.
const TAIL_SCAN: u64 = 64 * 1024;

pub struct Tailer {
    globs: Globs,
    events: FileEvents,
    poll_interval: Duration,
    rescan_interval: Duration,
    batch_records: usize,
    decoders: DecoderSettings,
    read_from: ReadFrom,
    builder: RecordBuilder,
    /// No checkpoint file existed: files found by the first scan follow `read_from`.
    first_start: bool,
    /// Saved positions not yet matched to a file; emptied by the end of the first scan.
    saved: HashMap<FileId, Position>,
    files: HashMap<FileId, TailedFile>,
    /// Glob path → the file currently followed there.
    at_path: HashMap<PathBuf, FileId>,
    /// Paths the globs match that are not container log files (warned once).
    ignored: HashSet<PathBuf>,
    /// Paths the globs match that could not be read at the last scan (warned once each,
    /// tried again at every scan).
    unreadable: HashSet<PathBuf>,
    /// Files let go lately: a late rename event must not bring them back.
    finished: HashMap<FileId, Instant>,
    batch: Batch,
    metrics: Arc<Metrics>,
    chunk: Vec<u8>,
    lines: Vec<LogLine>,
    /// Settings from a reloaded config file.
    reload: Option<std::sync::mpsc::Receiver<crate::reload::LiveSettings>>,
    /// Files opened for the first time, told to the checkpointer at once (see
    /// [`crate::checkpoint::Checkpointer::with_registrations`]).
    registrations: Option<tokio::sync::mpsc::UnboundedSender<Position>>,
}

/// A file being read, and how far.
struct TailedFile {
    id: FileId,
    /// The glob path it was found at: its name gave `source`.
    path: PathBuf,
    /// Where `path` linked to, when it is a symlink.
    target: Option<PathBuf>,
    source: Source,
    file: File,
    head: Head,
    decoder: FileDecoder,
    /// Since when the path no longer leads here (renamed away or deleted).
    rotated: Option<Instant>,
    /// When the path was last looked at (rotation, truncation): at most once per
    /// `poll_interval`, not on every pass of a busy loop; never yet when `None`.
    path_checked: Option<Instant>,
    last_data: Instant,
    /// Read since the last batch: its position goes into the next one.
    touched: bool,
}

impl TailedFile {
    fn position(&self) -> Position {
        Position {
            path: self.path.clone(),
            target: self.target.clone(),
            dev: self.id.dev,
            inode: self.id.inode,
            head_len: self.head.len,
            head_hash: self.head.hash,
            offset: self.decoder.safe_offset(),
        }
    }
}

/// What a look at a followed file's path found.
enum PathState {
    Same,
    /// The path leads elsewhere or nowhere: the file was renamed away or deleted.
    Moved,
    /// Same inode, but shorter than what was read or with other first bytes.
    Truncated,
}

impl Tailer {
    /// `saved` are the checkpointed positions; `first_start` says no checkpoint file existed.
    pub fn new(
        config: &Config,
        saved: HashMap<FileId, Position>,
        first_start: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Tailer> {
        Ok(Tailer {
            globs: Globs::new(&config.include, &config.exclude)?,
            events: FileEvents::new(),
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            rescan_interval: Duration::from_millis(config.rescan_interval_ms),
            batch_records: config.batch_records,
            decoders: DecoderSettings::new(config)?,
            read_from: config.read_from,
            builder: RecordBuilder::new(config, metrics.clone())?,
            first_start,
            saved,
            files: HashMap::new(),
            at_path: HashMap::new(),
            ignored: HashSet::new(),
            unreadable: HashSet::new(),
            finished: HashMap::new(),
            batch: Batch::default(),
            metrics,
            chunk: vec![0; READ_CHUNK],
            lines: Vec::new(),
            reload: None,
            registrations: None,
        })
    }

    /// Enriches records from the Kubernetes API's pod cache.
    pub fn with_pods(mut self, pods: crate::kubernetes::PodCache) -> Tailer {
        self.builder = self.builder.with_pods(pods);
        self
    }

    /// Takes new transforms and globs from `reload` while running.
    /// Tells `registrations` of every file opened for the first time, before any of it is
    /// acknowledged, so a restart finds it even if it rotated away in between.
    pub fn with_registrations(
        mut self,
        registrations: tokio::sync::mpsc::UnboundedSender<Position>,
    ) -> Tailer {
        self.registrations = Some(registrations);
        self
    }

    fn register(&self, file: &TailedFile) {
        if let Some(tx) = &self.registrations {
            // Closed only when the checkpointer has stopped, and then nothing is saved anyway.
            let _ = tx.send(file.position());
        }
    }

    pub fn with_reload(
        mut self,
        reload: std::sync::mpsc::Receiver<crate::reload::LiveSettings>,
    ) -> Tailer {
        self.reload = Some(reload);
        self
    }

    /// Applies the latest reloaded settings, if any: records built from now on use the new
    /// transforms; the new globs apply from the next scan, and followed files they exclude
    /// now are finished (what they hold is shipped) and let go. True when applied.
    fn apply_reload(&mut self) -> bool {
        let Some(live) = self.reload.as_ref().and_then(|rx| rx.try_iter().last()) else {
            return false;
        };
        self.builder.set_transforms(live.transforms);
        self.globs = live.globs;
        self.ignored.clear();
        let excluded: Vec<FileId> = self
            .files
            .values()
            .filter(|f| f.rotated.is_none() && !self.globs.matches(&f.path))
            .map(|f| f.id)
            .collect();
        for id in excluded {
            tracing::info!(path = %self.files[&id].path.display(), "excluded by the new config");
            self.finish(id);
        }
        true
    }

    /// Reads until `shutdown` is set; hands batches to `tx`.
    pub fn run(mut self, tx: Sender<Batch>, shutdown: Arc<AtomicBool>) -> Result<()> {
        self.metrics.set_tailer_running(true);
        let result = self.follow(&tx, &shutdown);
        self.metrics.set_tailer_running(false);
        result
    }

    fn follow(&mut self, tx: &Sender<Batch>, shutdown: &AtomicBool) -> Result<()> {
        tracing::info!(include = ?self.globs.include(), "tailing");
        self.scan();
        self.recover_moved_while_down();
        self.first_start = false;
        let mut last_scan = Instant::now();
        let mut rescan = false;
        while !shutdown.load(Ordering::SeqCst) {
            rescan |= self.apply_reload();
            if rescan || last_scan.elapsed() >= self.rescan_interval {
                self.scan();
                last_scan = Instant::now();
                rescan = false;
            }
            let (read_any, moved) = self.pass(tx)?;
            rescan |= moved;
            // Idle: hand on what is batched and sleep until inotify or the poll interval
            // wakes us. Busy: only take the queued events, so they cannot pile up.
            let wait = if read_any {
                Duration::ZERO
            } else {
                self.send(tx)?;
                self.poll_interval
            };
            let wake = self.events.wait(wait);
            rescan |= wake.rescan;
            for (from, to) in wake.renamed {
                self.renamed_unseen(&from, &to);
            }
        }
        self.send(tx)
    }

    /// Expands the globs and starts following files not followed yet.
    fn scan(&mut self) {
        let mut watch: BTreeSet<PathBuf> = self.globs.base_dirs().into_iter().collect();
        let mut unreadable = HashSet::new();
        for path in self.globs.expand() {
            if self.ignored.contains(&path) {
                continue;
            }
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                // A dangling link, or gone already.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                // A symlink loop, a directory we may not enter, ...
                Err(e) => {
                    self.report_unreadable(&path, &e, &mut unreadable);
                    continue;
                }
            };
            if !meta.is_file() {
                continue;
            }
            let id = FileId::of(&meta);
            if self.at_path.get(&path) == Some(&id) {
                continue;
            }
            if let Some(file) = self.files.get_mut(&id) {
                // A followed file renamed to another path the globs match.
                file.path = path.clone();
                file.rotated = None;
                self.at_path.insert(path, id);
                continue;
            }
            let source = match self.builder.source(&path) {
                Ok(source) => source,
                Err(why) => {
                    tracing::warn!(path = %path.display(), %why, "ignored");
                    self.ignored.insert(path);
                    continue;
                }
            };
            match self.open_found(&path, id, source) {
                Ok(Some(file)) => {
                    tracing::info!(path = %path.display(), offset = file.decoder.read_offset(), "following file");
                    self.register(&file);
                    self.at_path.insert(path, id);
                    self.files.insert(id, file);
                }
                Ok(None) => {} // replaced between the listing and the open: next scan
                Err(e) => self.report_unreadable(&path, &e, &mut unreadable),
            }
        }
        self.unreadable = unreadable;
        self.metrics
            .files_unreadable
            .set(self.unreadable.len() as i64);
        for file in self.files.values() {
            if let Some(dir) = file.target.as_deref().and_then(Path::parent) {
                watch.insert(dir.to_owned());
            }
        }
        self.events.watch(&watch);
        self.metrics.files_followed.set(self.files.len() as i64);
    }

    /// Notes a path that cannot be read in this scan; logged only when it was readable (or
    /// absent) at the scan before, so a file that stays unreadable is reported once.
    fn report_unreadable(
        &self,
        path: &Path,
        error: &std::io::Error,
        unreadable: &mut HashSet<PathBuf>,
    ) {
        if !self.unreadable.contains(path) {
            tracing::warn!(path = %path.display(), %error, "cannot read this file; trying again at every scan");
        }
        unreadable.insert(path.to_owned());
    }

    /// A file renamed from a glob path to a path outside the globs, never seen at its glob
    /// path (created and rotated away between two scans): read it whole, as rotated.
    fn renamed_unseen(&mut self, from: &Path, to: &Path) {
        if !self.globs.matches(from) || self.globs.matches(to) {
            return; // not leaving the globs: the next scan sees it where it is
        }
        let Ok(file) = File::open(to) else {
            return;
        };
        let Ok(meta) = file.metadata() else {
            return;
        };
        let id = FileId::of(&meta);
        if self.files.contains_key(&id) || self.finished.contains_key(&id) || !meta.is_file() {
            return; // followed already (the usual case)
        }
        let Ok(source) = self.builder.source(from) else {
            return;
        };
        let Ok(head) = Head::read(&file) else {
            return;
        };
        let decoder = self.decoders.decoder(0, &source.container);
        tracing::info!(path = %to.display(), was = %from.display(), "reading a file rotated away before it was seen");
        let file = TailedFile {
            id,
            path: from.to_owned(),
            target: None,
            source,
            file,
            head,
            decoder,
            rotated: Some(Instant::now()),
            path_checked: None,
            last_data: Instant::now(),
            touched: true,
        };
        self.register(&file);
        self.files.insert(id, file);
        self.metrics.files_followed.set(self.files.len() as i64);
    }

    /// Opens a file the globs found, at its checkpoint, or where a new file starts.
    fn open_found(
        &mut self,
        path: &Path,
        id: FileId,
        source: Source,
    ) -> std::io::Result<Option<TailedFile>> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if FileId::of(&meta) != id {
            return Ok(None);
        }
        let target = match std::fs::symlink_metadata(path) {
            Ok(link) if link.file_type().is_symlink() => std::fs::canonicalize(path).ok(),
            _ => None,
        };
        let start = match self.saved.remove(&id) {
            Some(saved) if saved.offset <= meta.len() && saved.head().matches(&file)? => {
                saved.offset
            }
            Some(saved) => {
                // Same inode, other content: truncated while we were down (copytruncate),
                // or the inode was reused. The rest of the old content may be in a copy.
                tracing::info!(path = %path.display(), "content changed since the checkpoint, reading from the start");
                let dirs = rotation_dirs(path, target.as_deref());
                let decoder = self.decoders.decoder(saved.offset, &source.container);
                self.follow_copy(&dirs, id, saved.head(), decoder, path, &target, &source)?;
                0
            }
            None if self.first_start && self.read_from == ReadFrom::End => {
                end_of_last_line(&file, meta.len())?
            }
            None => 0,
        };
        file.seek(SeekFrom::Start(start))?;
        let decoder = self.decoders.decoder(start, &source.container);
        Ok(Some(TailedFile {
            id,
            path: path.to_owned(),
            target,
            source,
            head: Head::read(&file)?,
            file,
            decoder,
            rotated: None,
            path_checked: None,
            last_data: Instant::now(),
            touched: true,
        }))
    }

    /// Checkpointed files the globs no longer find: a rotation by rename while the shipper
    /// was down. Finished from their checkpoint when still beside their old path; forgotten
    /// when gone. Then the rotations of the same path that came after them and were never
    /// seen (see [`Tailer::read_unseen_rotations`]).
    fn recover_moved_while_down(&mut self) {
        // Glob path → its link target and the newest last write of its rotated files found.
        let mut newest: HashMap<PathBuf, (Option<PathBuf>, SystemTime)> = HashMap::new();
        for (id, saved) in std::mem::take(&mut self.saved) {
            let dirs = rotation_dirs(&saved.path, saved.target.as_deref());
            let found = find_in_dirs(&dirs, saved.head(), saved.offset, Wanted::Renamed(id));
            let source = self.builder.source(&saved.path);
            match (found, source) {
                (Some((path, mut file)), Ok(source)) if !self.files.contains_key(&id) => {
                    if let Err(e) = file.seek(SeekFrom::Start(saved.offset)) {
                        tracing::warn!(path = %path.display(), error = %e, "cannot resume");
                        self.batch.progress.push(Progress::Done(id));
                        continue;
                    }
                    tracing::info!(path = %path.display(), was = %saved.path.display(), offset = saved.offset, "finishing a file rotated while stopped");
                    if let Ok(modified) = file.metadata().and_then(|m| m.modified()) {
                        let entry = newest
                            .entry(saved.path.clone())
                            .or_insert((saved.target.clone(), modified));
                        entry.1 = entry.1.max(modified);
                    }
                    let decoder = self.decoders.decoder(saved.offset, &source.container);
                    self.files.insert(
                        id,
                        TailedFile {
                            id,
                            path: saved.path.clone(),
                            target: saved.target.clone(),
                            source,
                            file,
                            head: saved.head(),
                            decoder,
                            rotated: Some(Instant::now()),
                            path_checked: None,
                            last_data: Instant::now(),
                            touched: true,
                        },
                    );
                }
                _ => {
                    tracing::info!(path = %saved.path.display(), "checkpointed file is gone, forgetting it");
                    self.batch.progress.push(Progress::Done(id));
                }
            }
        }
        for (path, (target, after)) in newest {
            self.read_unseen_rotations(&path, target, after);
        }
        self.metrics.files_followed.set(self.files.len() as i64);
    }

    /// Rotations of `path` (`x.log.1`, kubelet's `0.log.20261201-101500`; not compressed
    /// ones) last written after `after` that no position knows: created and rotated away
    /// while the shipper was down, or while it was too far behind to notice before being
    /// killed. Every file the shipper opened is in the checkpoint (registered when opened,
    /// forgotten only once finished), so a rotation newer than the newest one it knew was
    /// never read: read whole.
    fn read_unseen_rotations(&mut self, path: &Path, target: Option<PathBuf>, after: SystemTime) {
        let bases: Vec<String> = [Some(path), target.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(|p| Some(format!("{}.", p.file_name()?.to_str()?)))
            .collect();
        let Ok(source) = self.builder.source(path) else {
            return;
        };
        for dir in rotation_dirs(path, target.as_deref()) {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !bases
                    .iter()
                    .any(|b| name.starts_with(b.as_str()) && name.len() > b.len())
                    || name.ends_with(".gz")
                {
                    continue;
                }
                let rotated = entry.path();
                let Ok(file) = File::open(&rotated) else {
                    continue;
                };
                let Ok(meta) = file.metadata() else { continue };
                let id = FileId::of(&meta);
                let newer = meta.modified().is_ok_and(|m| m > after);
                if !meta.is_file() || !newer || self.files.contains_key(&id) {
                    continue;
                }
                let Ok(head) = Head::read(&file) else {
                    continue;
                };
                tracing::info!(path = %rotated.display(), was = %path.display(), "reading a file rotated away before it was seen, while stopped");
                let file = TailedFile {
                    id,
                    path: path.to_owned(),
                    target: target.clone(),
                    source: source.clone(),
                    file,
                    head,
                    decoder: self.decoders.decoder(0, &source.container),
                    rotated: Some(Instant::now()),
                    path_checked: None,
                    last_data: Instant::now(),
                    touched: true,
                };
                self.register(&file);
                self.files.insert(id, file);
            }
        }
    }

    /// Looks beside a truncated file for the copy copytruncate made, and follows it from
    /// where `decoder` stands; without a copy, finishes what `decoder` holds.
    #[allow(clippy::too_many_arguments)]
    fn follow_copy(
        &mut self,
        dirs: &[PathBuf],
        truncated: FileId,
        head: Head,
        mut decoder: FileDecoder,
        path: &Path,
        target: &Option<PathBuf>,
        source: &Source,
    ) -> std::io::Result<()> {
        let offset = decoder.read_offset();
        let copy = find_in_dirs(dirs, head, offset, Wanted::CopyOf(truncated))
            .and_then(|(copy_path, file)| {
                Some((copy_path, FileId::of(&file.metadata().ok()?), file))
            })
            .filter(|(_, id, _)| !self.files.contains_key(id));
        let Some((copy_path, copy_id, mut file)) = copy else {
            tracing::info!(path = %path.display(), "no copy of the truncated content found");
            decoder.finish(&mut self.lines);
            emit(
                &self.builder,
                &self.metrics,
                source,
                &mut self.lines,
                &mut self.batch,
            );
            return Ok(());
        };
        file.seek(SeekFrom::Start(offset))?;
        tracing::info!(path = %path.display(), copy = %copy_path.display(), offset, "reading the rest of the truncated content from its copy");
        self.files.insert(
            copy_id,
            TailedFile {
                id: copy_id,
                path: path.to_owned(),
                target: target.clone(),
                source: source.clone(),
                file,
                head,
                decoder,
                rotated: Some(Instant::now()),
                path_checked: None,
                last_data: Instant::now(),
                touched: true,
            },
        );
        Ok(())
    }

    /// One round over every file, files rotated away first (their lines came before the
    /// new file's). Returns whether anything was read, and whether a path moved.
    fn pass(&mut self, tx: &Sender<Batch>) -> Result<(bool, bool)> {
        let mut order: Vec<(bool, FileId)> = self
            .files
            .values()
            .map(|f| (f.rotated.is_none(), f.id))
            .collect();
        order.sort();
        let (mut read_any, mut moved) = (false, false);
        for (_, id) in order {
            if !self.files.contains_key(&id) {
                continue;
            }
            let file = &self.files[&id];
            // Reads need no look at the path: each read checks the file's head itself.
            let look = file.rotated.is_none()
                && file
                    .path_checked
                    .is_none_or(|at| at.elapsed() >= self.poll_interval);
            if look {
                match self.path_state(id)? {
                    PathState::Same => {}
                    PathState::Moved => moved = true,
                    PathState::Truncated => self.truncated(id)?,
                }
            }
            let read = self.read_available(id, tx)?;
            read_any |= read;
            self.flush_expired(id);
            let file = &self.files[&id];
            if !read
                && file
                    .rotated
                    .is_some_and(|since| since.elapsed() >= ROTATED_IDLE)
                && file.last_data.elapsed() >= ROTATED_IDLE
            {
                self.finish(id);
            }
        }
        Ok((read_any, moved))
    }

    fn path_state(&mut self, id: FileId) -> Result<PathState> {
        let file = self.files.get_mut(&id).expect("known file");
        file.path_checked = Some(Instant::now());
        match std::fs::metadata(&file.path) {
            Ok(meta) if FileId::of(&meta) == id => {
                let check =
                    |file: &TailedFile| -> std::io::Result<bool> {
                        Ok(meta.len() < file.decoder.read_offset()
                            || !file.head.matches(&file.file)?)
                    };
                if check(file).map_err(|e| io(&file.path, e))? {
                    return Ok(PathState::Truncated);
                }
                if !file.head.is_complete() && meta.len() > file.head.len {
                    file.head = Head::read(&file.file).map_err(|e| io(&file.path, e))?;
                }
                Ok(PathState::Same)
            }
            Ok(_) => Ok(self.moved(id, "rotated")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self.moved(id, "removed")),
            Err(_) => Ok(PathState::Same),
        }
    }

    fn moved(&mut self, id: FileId, how: &str) -> PathState {
        let file = self.files.get_mut(&id).expect("known file");
        tracing::info!(path = %file.path.display(), how, "path moved on; reading the old file to its end");
        file.rotated = Some(Instant::now());
        if self.at_path.get(&file.path) == Some(&id) {
            self.at_path.remove(&file.path);
        }
        PathState::Moved
    }

    /// The file was truncated (copytruncate): its old content continues in the copy, if
    /// one is found; the file itself is read again from the start.
    fn truncated(&mut self, id: FileId) -> Result<()> {
        let file = self.files.get_mut(&id).expect("known file");
        tracing::info!(path = %file.path.display(), "file truncated, reading from the start");
        let fresh = self.decoders.decoder(0, &file.source.container);
        let old_decoder = std::mem::replace(&mut file.decoder, fresh);
        let old_head = file.head;
        file.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| io(&file.path, e))?;
        file.head = Head::read(&file.file).map_err(|e| io(&file.path, e))?;
        file.touched = true;
        let (path, target, source) = (file.path.clone(), file.target.clone(), file.source.clone());
        let dirs = rotation_dirs(&path, target.as_deref());
        self.follow_copy(&dirs, id, old_head, old_decoder, &path, &target, &source)
            .map_err(|e| io(&path, e))
    }

    /// Reads what is new in one file, up to [`CHUNKS_PER_PASS`] reads.
    fn read_available(&mut self, id: FileId, tx: &Sender<Batch>) -> Result<bool> {
        let mut read_any = false;
        for _ in 0..CHUNKS_PER_PASS {
            let n = {
                let Tailer {
                    files,
                    chunk,
                    lines,
                    builder,
                    metrics,
                    batch,
                    ..
                } = self;
                let file = files.get_mut(&id).expect("known file");
                let n = file.file.read(chunk).map_err(|e| io(&file.path, e))?;
                if n == 0 {
                    break;
                }
                // Truncated while we read (copytruncate)? Then these bytes may be new
                // content at an old offset: drop them; the old content's rest is in the
                // copy, the new content is read again from the start.
                let still_same = file.rotated.is_some()
                    || file
                        .head
                        .matches(&file.file)
                        .map_err(|e| io(&file.path, e))?;
                if still_same {
                    file.last_data = Instant::now();
                    file.touched = true;
                    metrics.bytes_read.inc_by(n as u64);
                    let completed = file.decoder.feed(&chunk[..n], lines);
                    metrics.lines_read.inc_by(completed as u64);
                    metrics.file_read(id, &file.path, file.decoder.read_offset());
                    emit(builder, metrics, &file.source, lines, batch);
                    Some(n)
                } else {
                    None
                }
            };
            read_any = true;
            let Some(n) = n else {
                self.truncated(id)?;
                continue;
            };
            if self.batch.records.len() >= self.batch_records {
                self.send(tx)?;
            }
            if n < self.chunk.len() {
                break;
            }
        }
        Ok(read_any)
    }

    /// Hands on the multi-line messages of a file that timed out.
    fn flush_expired(&mut self, id: FileId) {
        let file = self.files.get_mut(&id).expect("known file");
        if file.decoder.flush_expired(Instant::now(), &mut self.lines) {
            file.touched = true;
            emit(
                &self.builder,
                &self.metrics,
                &file.source,
                &mut self.lines,
                &mut self.batch,
            );
        }
    }

    /// Lets go of a file that was read to its end after it left its path.
    fn finish(&mut self, id: FileId) {
        let mut file = self.files.remove(&id).expect("known file");
        let completed = file.decoder.finish(&mut self.lines);
        self.metrics.lines_read.inc_by(completed as u64);
        emit(
            &self.builder,
            &self.metrics,
            &file.source,
            &mut self.lines,
            &mut self.batch,
        );
        // No last position: the file is forgotten once every record of it is acknowledged.
        self.batch.progress.push(Progress::Done(id));
        self.finished.retain(|_, at| at.elapsed() < FINISHED_MEMORY);
        self.finished.insert(id, Instant::now());
        if self.at_path.get(&file.path) == Some(&id) {
            self.at_path.remove(&file.path);
        }
        self.metrics.files_followed.set(self.files.len() as i64);
        tracing::info!(path = %file.path.display(), "file finished");
    }

    /// Hands the current batch on, with the positions its records make safe.
    fn send(&mut self, tx: &Sender<Batch>) -> Result<()> {
        for file in self.files.values_mut().filter(|f| f.touched) {
            file.touched = false;
            self.metrics
                .file_read(file.id, &file.path, file.decoder.read_offset());
            self.batch.progress.push(Progress::At(file.position()));
        }
        if self.batch.records.is_empty() && self.batch.progress.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.metrics.in_flight_batches.inc();
        tx.blocking_send(batch)
            .map_err(|_| Error::Stage("producer stopped".into()))
    }
}

/// Builds the records of finished `lines` into `batch`.
fn emit(
    builder: &RecordBuilder,
    metrics: &Metrics,
    source: &Source,
    lines: &mut Vec<LogLine>,
    batch: &mut Batch,
) {
    for line in lines.drain(..) {
        metrics.marked(&line.marks);
        batch.records.push(builder.build(source, line));
    }
}

/// Where `read_from: end` starts: after the last newline (a line being written is read
/// whole once it is complete).
fn end_of_last_line(file: &File, len: u64) -> std::io::Result<u64> {
    let from = len.saturating_sub(TAIL_SCAN);
    let mut tail = vec![0u8; (len - from) as usize];
    file.read_exact_at(&mut tail, from)?;
    Ok(match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => len,
    })
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("reading {}", path.display()), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const ID: &str = "3a38a5c2e1f44b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e";

    fn line(text: &str) -> String {
        format!("2026-11-25T10:00:00.000000001Z stdout F {text}\n")
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn tailer(dir: &Path, read_from: ReadFrom, saved: HashMap<FileId, Position>) -> Tailer {
        let config = Config {
            include: vec![format!("{}/*.log", dir.display())],
            read_from,
            ..Config::default()
        };
        let first_start = saved.is_empty();
        Tailer::new(&config, saved, first_start, Arc::new(Metrics::new())).unwrap()
    }

    /// One scan and pass; the `log` of every record built.
    fn messages(tailer: &mut Tailer) -> Vec<String> {
        tailer.scan();
        pass(tailer)
    }

    /// One pass; the `log` of every record built.
    fn pass(tailer: &mut Tailer) -> Vec<String> {
        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        tailer.pass(&tx).unwrap();
        tailer
            .batch
            .records
            .drain(..)
            .map(|r| {
                let record: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
                record["log"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn read_from_end_skips_existing_content_at_first_start_only() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(format!("a_ns_c-{ID}.log"));
        append(
            &old,
            &(line("old-1") + &line("old-2") + "2026-11-25T10:00:00Z stdout F half"),
        );
        let mut tailer = tailer(dir.path(), ReadFrom::End, HashMap::new());
        // The first scan applies read_from; the partly written line is read once complete.
        assert_eq!(messages(&mut tailer), Vec::<String>::new());
        tailer.first_start = false;
        append(&old, "-done\n");
        let new = dir.path().join(format!("b_ns_c-{ID}.log"));
        append(&new, &line("new-1"));
        let mut got = messages(&mut tailer);
        got.sort();
        assert_eq!(got, ["half-done", "new-1"]);
    }

    #[test]
    fn read_from_beginning_ships_existing_content() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join(format!("a_ns_c-{ID}.log")), &line("old-1"));
        let mut tailer = tailer(dir.path(), ReadFrom::Beginning, HashMap::new());
        assert_eq!(messages(&mut tailer), ["old-1"]);
    }

    #[test]
    fn excluded_and_foreign_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join(format!("a_ns_c-{ID}.log")), &line("kept"));
        append(
            &dir.path().join(format!("b_ns_c-{ID}.log")),
            &line("excluded"),
        );
        append(&dir.path().join("not-a-container.log"), &line("foreign"));
        let config = Config {
            include: vec![format!("{}/*.log", dir.path().display())],
            exclude: vec!["**/b_*".to_owned()],
            ..Config::default()
        };
        let mut tailer =
            Tailer::new(&config, HashMap::new(), true, Arc::new(Metrics::new())).unwrap();
        assert_eq!(messages(&mut tailer), ["kept"]);
    }

    #[test]
    fn resumes_at_a_checkpoint_only_when_the_fingerprint_matches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("a_ns_c-{ID}.log"));
        append(&path, &(line("one") + &line("two")));
        let file = File::open(&path).unwrap();
        let id = FileId::of(&file.metadata().unwrap());
        let head = Head::read(&file).unwrap();
        let saved = |head: Head| {
            HashMap::from([(
                id,
                Position {
                    path: path.clone(),
                    target: None,
                    dev: id.dev,
                    inode: id.inode,
                    head_len: head.len,
                    head_hash: head.hash,
                    offset: line("one").len() as u64,
                },
            )])
        };
        let mut resumed = tailer(dir.path(), ReadFrom::Beginning, saved(head));
        assert_eq!(messages(&mut resumed), ["two"]);
        // Same inode, other content (reused inode): read from the start.
        let other = Head {
            len: head.len,
            hash: head.hash ^ 1,
        };
        let mut restarted = tailer(dir.path(), ReadFrom::Beginning, saved(other));
        assert_eq!(messages(&mut restarted), ["one", "two"]);
    }

    #[test]
    fn rotations_newer_than_the_known_ones_are_read_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("a_ns_c-{ID}.log"));
        let rotated = |n: u32| path.with_extension(format!("log.{n}"));
        let pause = || std::thread::sleep(Duration::from_millis(20));
        // Shipped and forgotten long ago.
        append(&rotated(0), &line("zero"));
        pause();
        // Known: checkpointed after "one", then rotated away while the shipper was down.
        append(&path, &(line("one") + &line("two")));
        let file = File::open(&path).unwrap();
        let id = FileId::of(&file.metadata().unwrap());
        let head = Head::read(&file).unwrap();
        std::fs::rename(&path, rotated(1)).unwrap();
        pause();
        // Never seen: created and rotated away before the restart.
        append(&path, &line("three"));
        std::fs::rename(&path, rotated(2)).unwrap();
        pause();
        append(&path, &line("four"));
        let saved = HashMap::from([(
            id,
            Position {
                path: path.clone(),
                target: None,
                dev: id.dev,
                inode: id.inode,
                head_len: head.len,
                head_hash: head.hash,
                offset: line("one").len() as u64,
            },
        )]);
        let mut tailer = tailer(dir.path(), ReadFrom::Beginning, saved);
        tailer.scan();
        tailer.recover_moved_while_down();
        let mut got = pass(&mut tailer);
        got.sort();
        assert_eq!(got, ["four", "three", "two"]);
    }

    #[test]
    fn end_of_last_line_backs_up_to_a_line_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        append(&path, "a\nbc");
        let file = File::open(&path).unwrap();
        assert_eq!(end_of_last_line(&file, 4).unwrap(), 2);
        assert_eq!(end_of_last_line(&file, 0).unwrap(), 0);
    }
}
