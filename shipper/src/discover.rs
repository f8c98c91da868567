//! Which files to follow: the `include` globs minus the `exclude` globs, symlinks followed;
//! and when to look again: inotify events (through the `notify` crate) wake the tailer at
//! once, and a periodic rescan is the safety net for whatever inotify misses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use glob::{MatchOptions, Pattern};
use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};

use crate::{Error, Result};

/// `*` and `?` never cross a `/`, as in a shell.
const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// The configured globs.
#[derive(Debug, Clone)]
pub struct Globs {
    include: Vec<String>,
    include_patterns: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl Globs {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Globs> {
        let exclude = exclude
            .iter()
            .enumerate()
            .map(|(i, g)| {
                Pattern::new(g).map_err(|e| Error::Config(format!("exclude[{i}]: {g:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let include_patterns = include
            .iter()
            .enumerate()
            .map(|(i, g)| {
                Pattern::new(g).map_err(|e| Error::Config(format!("include[{i}]: {g:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Globs {
            include: include.to_vec(),
            include_patterns,
            exclude,
        })
    }

    pub fn include(&self) -> &[String] {
        &self.include
    }

    /// True when the globs select `path`.
    pub fn matches(&self, path: &Path) -> bool {
        self.include_patterns
            .iter()
            .any(|p| p.matches_path_with(path, MATCH))
            && self.keeps(path)
    }

    /// True when `path` is not excluded.
    pub fn keeps(&self, path: &Path) -> bool {
        !self
            .exclude
            .iter()
            .any(|p| p.matches_path_with(path, MATCH))
    }

    /// Every existing path the include globs match and the exclude globs do not, sorted.
    pub fn expand(&self) -> BTreeSet<PathBuf> {
        let mut found = BTreeSet::new();
        for include in &self.include {
            let Ok(paths) = glob::glob_with(include, MATCH) else {
                continue; // validated at start-up
            };
            for path in paths.flatten() {
                if self.keeps(&path) {
                    found.insert(path);
                }
            }
        }
        found
    }

    /// The directories holding the include globs' matches: the part of each glob before its
    /// first wildcard component, watched for files appearing.
    pub fn base_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for include in &self.include {
            let mut base = PathBuf::new();
            for component in Path::new(include).components() {
                let text = component.as_os_str().to_string_lossy();
                if text.contains(['*', '?', '[']) {
                    break;
                }
                base.push(component);
            }
            if base == Path::new(include) {
                // A literal file name: watch its directory.
                base.pop();
            }
            if !dirs.contains(&base) {
                dirs.push(base);
            }
        }
        dirs
    }
}

/// What the file system said since the last look.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Wake {
    /// Something was created, removed or renamed: expand the globs again.
    pub rescan: bool,
    /// Renames seen, `(from, to)`: a file can be created and rotated away between two
    /// scans, and this is how the tailer still learns where it went.
    pub renamed: Vec<(PathBuf, PathBuf)>,
}

/// inotify watches on directories; events arrive on a channel the tailer waits on.
pub struct FileEvents {
    watcher: Option<notify::RecommendedWatcher>,
    events: Receiver<notify::Result<notify::Event>>,
    watched: BTreeSet<PathBuf>,
}

impl FileEvents {
    /// Without inotify (no watcher could be made) the tailer still polls and rescans.
    pub fn new() -> FileEvents {
        let (tx, events) = std::sync::mpsc::channel();
        let watcher = match notify::recommended_watcher(tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "no inotify; relying on polling and rescans");
                None
            }
        };
        FileEvents {
            watcher,
            events,
            watched: BTreeSet::new(),
        }
    }

    /// Watches exactly `dirs` (non-recursively) from now on. A directory that cannot be
    /// watched yet (it does not exist) is tried again on the next call.
    pub fn watch(&mut self, dirs: &BTreeSet<PathBuf>) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for gone in self.watched.difference(dirs).cloned().collect::<Vec<_>>() {
            let _ = watcher.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for dir in dirs {
            if self.watched.contains(dir) {
                continue;
            }
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir.clone());
                }
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "cannot watch yet"),
            }
        }
    }

    /// Waits up to `timeout` for events, then takes every event already queued.
    pub fn wait(&self, timeout: Duration) -> Wake {
        let mut wake = Wake::default();
        let first = match self.events.recv_timeout(timeout) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return wake,
        };
        for event in std::iter::once(first).chain(self.events.try_iter()) {
            match event {
                Ok(event) => {
                    if let (EventKind::Modify(ModifyKind::Name(RenameMode::Both)), [from, to]) =
                        (event.kind, event.paths.as_slice())
                    {
                        wake.renamed.push((from.clone(), to.clone()));
                    }
                    if matches!(
                        event.kind,
                        EventKind::Create(_)
                            | EventKind::Remove(_)
                            | EventKind::Modify(ModifyKind::Name(_))
                            | EventKind::Any
                            | EventKind::Other
                    ) {
                        wake.rescan = true;
                    }
                }
                // The kernel queue overflowed: some events are lost, look at everything.
                Err(_) => wake.rescan = true,
            }
        }
        wake
    }
}

impl Default for FileEvents {
    fn default() -> Self {
        FileEvents::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    #[test]
    fn include_minus_exclude_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let containers = root.join("containers");
        let pods = root.join("pods/ns_pod_uid/app");
        touch(&pods.join("0.log"));
        touch(&containers.join("keep.log"));
        touch(&containers.join("drop-me.log"));
        touch(&containers.join("keep.log.1"));
        touch(&containers.join("sub/deeper.log"));
        std::os::unix::fs::symlink(pods.join("0.log"), containers.join("linked.log")).unwrap();

        let globs = Globs::new(
            &[format!("{}/*.log", containers.display())],
            &["**/drop-*".to_owned()],
        )
        .unwrap();
        let found: Vec<String> = globs
            .expand()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, ["keep.log", "linked.log"]);
        assert!(globs.matches(&containers.join("new.log")));
        assert!(!globs.matches(&containers.join("drop-new.log")));
        assert!(!globs.matches(&containers.join("keep.log.1")));
        assert!(!globs.matches(&containers.join("sub/deeper.log")));
        assert_eq!(globs.base_dirs(), vec![containers.clone()]);
    }

    #[test]
    fn base_dir_of_a_literal_path_is_its_directory() {
        let globs = Globs::new(&["/a/b/c.log".to_owned(), "/x/*/y/*.log".to_owned()], &[]).unwrap();
        assert_eq!(
            globs.base_dirs(),
            [PathBuf::from("/a/b"), PathBuf::from("/x")]
        );
    }

    #[test]
    fn bad_glob_names_its_key() {
        let err = Globs::new(&["/ok/*.log".to_owned()], &["[".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("exclude[0]"), "{err}");
    }

    #[test]
    fn inotify_reports_new_and_renamed_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut events = FileEvents::new();
        events.watch(&BTreeSet::from([dir.path().to_owned()]));
        touch(&dir.path().join("new.log"));
        std::fs::rename(dir.path().join("new.log"), dir.path().join("new.log.1")).unwrap();
        let mut wake = Wake::default();
        for _ in 0..20 {
            let next = events.wait(Duration::from_millis(100));
            wake.rescan |= next.rescan;
            wake.renamed.extend(next.renamed);
            if !wake.renamed.is_empty() {
                break;
            }
        }
        assert!(wake.rescan);
        assert_eq!(
            wake.renamed,
            [(dir.path().join("new.log"), dir.path().join("new.log.1"))]
        );
    }
}
