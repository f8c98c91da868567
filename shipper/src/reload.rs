//! Config file changes picked up without a restart. [`ConfigWatcher`] watches the config
//! file's directory with inotify (a Kubernetes ConfigMap is updated by swapping a symlink
//! there) and also looks at the file every few seconds; when its content changes it loads
//! it again, with the same checks as at start. A file that does not load is logged and the
//! running config stays.
//!
//! What changes live: `redact`, `transforms`, `include`, `exclude` (sent to the tailer as
//! [`LiveSettings`]). Every other changed key is logged as needing a restart.
//!
//! The version of the running config, from a [`CONFIG_VERSION_FILE`] next to the config file
//! (the fleet manager's ConfigMap has that key), is the gauge `bitesize_shipper_config_version`:
//! read at start and at every accepted reload; 0 when there is no such file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::config::Config;
use crate::discover::Globs;
use crate::metrics::Metrics;
use crate::record_builder::Transforms;

/// Keys applied without a restart.
pub const LIVE_KEYS: [&str; 4] = ["redact", "transforms", "include", "exclude"];
/// How often the file is read even without an inotify event.
const POLL: Duration = Duration::from_secs(2);
/// The file next to the config file holding its version (a whole number).
pub const CONFIG_VERSION_FILE: &str = "config-version";

/// The version in the [`CONFIG_VERSION_FILE`] next to `config_file`; 0 when there is none
/// (a config not managed by the fleet), or when it is not a whole number (logged).
pub fn read_config_version(config_file: &Path) -> i64 {
    let path = config_file.with_file_name(CONFIG_VERSION_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "config version is not a whole number; reporting 0");
            0
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the config version; reporting 0");
            0
        }
    }
}

/// What the tailer takes from a reloaded config.
pub struct LiveSettings {
    pub transforms: Arc<Transforms>,
    pub globs: Globs,
}

pub struct ConfigWatcher {
    path: PathBuf,
    current: Config,
    tx: Sender<LiveSettings>,
    metrics: Arc<Metrics>,
}

impl ConfigWatcher {
    /// `current`: the config loaded from `path` at start; its version goes to `metrics`.
    pub fn new(
        path: &Path,
        current: Config,
        tx: Sender<LiveSettings>,
        metrics: Arc<Metrics>,
    ) -> ConfigWatcher {
        metrics.config_version.set(read_config_version(path));
        ConfigWatcher {
            path: path.to_owned(),
            current,
            tx,
            metrics,
        }
    }

    /// Watches until `shutdown` is set or the tailer is gone (blocking).
    pub fn run(mut self, shutdown: Arc<AtomicBool>) {
        let (events_tx, events) = std::sync::mpsc::channel();
        let _watcher = notify::recommended_watcher(events_tx).and_then(|mut w| {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            w.watch(dir, RecursiveMode::NonRecursive).map(|_| w)
        });
        if let Err(e) = &_watcher {
            tracing::warn!(error = %e, "no inotify on the config directory; polling it");
        }
        let mut last = std::fs::read(&self.path).ok();
        let name = self.path.file_name().map(|n| n.to_owned());
        // The file itself, or a ConfigMap's `..data` / `..<timestamp>` entries.
        let relevant = |event: &notify::Event| {
            event.paths.iter().any(|p| {
                p.file_name().is_some_and(|n| {
                    Some(n) == name.as_deref() || n.to_string_lossy().starts_with("..")
                })
            })
        };
        let mut last_look = std::time::Instant::now();
        while !shutdown.load(Ordering::SeqCst) {
            let wait = POLL.saturating_sub(last_look.elapsed());
            let changed = match events.recv_timeout(wait) {
                Ok(Ok(event)) => relevant(&event),
                Ok(Err(_)) | Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(wait); // no inotify: polling only
                    false
                }
            };
            if changed {
                // Editors and ConfigMap updates write in several steps: let them finish.
                std::thread::sleep(Duration::from_millis(200));
                while events.try_recv().is_ok() {}
            } else if last_look.elapsed() < POLL {
                continue;
            }
            last_look = std::time::Instant::now();
            let Ok(content) = std::fs::read(&self.path) else {
                continue; // between a delete and a create
            };
            if last.as_ref() == Some(&content) {
                continue;
            }
            last = Some(content);
            if !self.reload() {
                return;
            }
        }
    }

    /// Loads the file again; false when the tailer is gone.
    fn reload(&mut self) -> bool {
        let new = match Config::load(Some(&self.path)) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "config change rejected; the running config stays");
                return true;
            }
        };
        // Read with the config (a ConfigMap swaps both at once), reported once it is applied.
        let version = read_config_version(&self.path);
        let (live, restart) = changed_keys(&self.current, &new);
        for key in &restart {
            tracing::warn!(key = %key, "config changed; takes effect after a restart");
        }
        if !live.is_empty() {
            let settings = crate::record_builder::Transforms::new(&new).and_then(|transforms| {
                Ok(LiveSettings {
                    transforms: Arc::new(transforms),
                    globs: Globs::new(&new.include, &new.exclude)?,
                })
            });
            match settings {
                Ok(settings) => {
                    tracing::info!(keys = ?live, "config reloaded");
                    if self.tx.send(settings).is_err() {
                        return false;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "config change rejected; the running config stays");
                    return true;
                }
            }
        }
        // Keys needing a restart keep their running values, so they are reported again
        // until the restart.
        let mut applied = self.current.clone();
        applied.redact = new.redact;
        applied.transforms = new.transforms;
        applied.include = new.include;
        applied.exclude = new.exclude;
        self.current = applied;
        self.metrics.config_version.set(version);
        true
    }
}

/// Top-level keys that differ: (applied live, needing a restart).
pub fn changed_keys(old: &Config, new: &Config) -> (Vec<String>, Vec<String>) {
    let as_map = |c: &Config| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (as_map(old), as_map(new));
    let mut live = Vec::new();
    let mut restart = Vec::new();
    for (key, value) in &new {
        if old.get(key) != Some(value) {
            if LIVE_KEYS.contains(&key.as_str()) {
                live.push(key.clone());
            } else {
                restart.push(key.clone());
            }
        }
    }
    (live, restart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_restart_keys_are_told_apart() {
        let old = Config::default();
        let mut new = old.clone();
        new.exclude = vec!["**/x*".into()];
        new.redact.presets = vec!["emails".into()];
        new.batch_records = 7;
        new.kafka.brokers = "elsewhere:9092".into();
        let (live, restart) = changed_keys(&old, &new);
        assert_eq!(live, ["exclude", "redact"]);
        assert_eq!(restart, ["batch_records", "kafka"]);
    }

    fn version(metrics: &Metrics) -> String {
        metrics
            .encode()
            .lines()
            .find(|l| l.starts_with("bitesize_shipper_config_version "))
            .expect("the config version gauge")
            .to_owned()
    }

    /// The config version is read at start and at every reload that is applied; a
    /// rejected config keeps the version of the running one; no file means 0.
    #[test]
    fn config_version_follows_the_applied_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shipper.yaml");
        let versions = dir.path().join(CONFIG_VERSION_FILE);
        std::fs::write(&path, "include: [\"/logs/*.log\"]\n").unwrap();
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = std::sync::mpsc::channel();

        // Without the file (a config not managed by the fleet): 0.
        let config = Config::load(Some(&path)).unwrap();
        ConfigWatcher::new(&path, config.clone(), tx.clone(), metrics.clone());
        assert_eq!(version(&metrics), "bitesize_shipper_config_version 0");

        std::fs::write(&versions, "7\n").unwrap();
        let mut watcher = ConfigWatcher::new(&path, config, tx, metrics.clone());
        assert_eq!(version(&metrics), "bitesize_shipper_config_version 7");

        // A live change with version 8: applied, and reported.
        std::fs::write(
            &path,
            "include: [\"/logs/*.log\"]\nexclude: [\"/logs/x*\"]\n",
        )
        .unwrap();
        std::fs::write(&versions, "8").unwrap();
        assert!(watcher.reload());
        assert!(rx.try_recv().is_ok(), "the tailer gets the live change");
        assert_eq!(version(&metrics), "bitesize_shipper_config_version 8");

        // A config that does not load: the running one (8) stays.
        std::fs::write(&path, "include: []\n").unwrap();
        std::fs::write(&versions, "9").unwrap();
        assert!(watcher.reload());
        assert!(rx.try_recv().is_err());
        assert_eq!(version(&metrics), "bitesize_shipper_config_version 8");

        // A version that is not a number: 0, not a stale one.
        std::fs::write(&path, "include: [\"/logs/*.log\"]\n").unwrap();
        std::fs::write(&versions, "ten").unwrap();
        assert!(watcher.reload());
        assert_eq!(version(&metrics), "bitesize_shipper_config_version 0");
    }
}
