//! The shipper's metrics (Prometheus, through `prometheus-client`) and readiness. Each stage
//! updates its own numbers; the status endpoint encodes them on every scrape.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bitesize_record::Mark;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::fingerprint::FileId;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    pub lines_read: Counter,
    pub bytes_read: Counter,
    pub records_produced: Counter,
    pub records_acked: Counter,
    pub dead_letters: Counter,
    marks: Family<Labels, Counter>,
    redactions: Family<Labels, Counter>,
    pub pod_cache_hits: Counter,
    pub pod_cache_misses: Counter,
    pub kubernetes_api_up: Gauge,
    pub files_followed: Gauge,
    /// Paths the globs match that cannot be read (permissions, a symlink loop, ...).
    pub files_unreadable: Gauge,
    pub in_flight_batches: Gauge,
    /// 1 while the last attempt to save the checkpoint file failed (a full disk, ...).
    pub checkpoint_save_failing: Gauge,
    pub checkpoint_save_errors: Counter,
    /// The version in the `config-version` file next to the config file (written by the
    /// server's fleet manager) of the config running; 0 when there is none.
    pub config_version: Gauge,
    checkpoint_lag: Family<Labels, Gauge>,
    /// Bytes read and bytes checkpointed per file, turned into `checkpoint_lag` on scrape.
    offsets: Mutex<HashMap<FileId, FileOffsets>>,
    kafka_ready: AtomicBool,
    tailer_running: AtomicBool,
}

#[derive(Debug, Default)]
struct FileOffsets {
    path: String,
    read: u64,
    checkpointed: u64,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("bitesize_shipper");
        let metrics = Metrics {
            registry: Registry::default(),
            lines_read: Counter::default(),
            bytes_read: Counter::default(),
            records_produced: Counter::default(),
            records_acked: Counter::default(),
            dead_letters: Counter::default(),
            marks: Family::default(),
            redactions: Family::default(),
            pod_cache_hits: Counter::default(),
            pod_cache_misses: Counter::default(),
            kubernetes_api_up: Gauge::default(),
            files_followed: Gauge::default(),
            files_unreadable: Gauge::default(),
            in_flight_batches: Gauge::default(),
            checkpoint_save_failing: Gauge::default(),
            checkpoint_save_errors: Counter::default(),
            config_version: Gauge::default(),
            checkpoint_lag: Family::default(),
            offsets: Mutex::new(HashMap::new()),
            kafka_ready: AtomicBool::new(false),
            tailer_running: AtomicBool::new(false),
        };
        registry.register(
            "lines_read",
            "Lines read from log files",
            metrics.lines_read.clone(),
        );
        registry.register(
            "bytes_read",
            "Bytes read from log files",
            metrics.bytes_read.clone(),
        );
        registry.register(
            "records_produced",
            "Records handed to the Kafka producer",
            metrics.records_produced.clone(),
        );
        registry.register(
            "records_acknowledged",
            "Records Kafka acknowledged",
            metrics.records_acked.clone(),
        );
        registry.register(
            "dead_letters",
            "Records Kafka refused for good, written to the dead-letter file",
            metrics.dead_letters.clone(),
        );
        registry.register(
            "marked_records",
            "Records not a clean copy of the line, by mark (parse_error, invalid_utf8, split)",
            metrics.marks.clone(),
        );
        registry.register(
            "redactions",
            "Records a redaction rule changed, by rule",
            metrics.redactions.clone(),
        );
        registry.register(
            "pod_cache_hits",
            "Records enriched from the Kubernetes pod cache",
            metrics.pod_cache_hits.clone(),
        );
        registry.register(
            "pod_cache_misses",
            "Records whose pod was not in the Kubernetes pod cache (shipped with file-name metadata)",
            metrics.pod_cache_misses.clone(),
        );
        registry.register(
            "kubernetes_api_up",
            "1 while the watch on the Kubernetes API is established",
            metrics.kubernetes_api_up.clone(),
        );
        registry.register(
            "files_followed",
            "Files being read",
            metrics.files_followed.clone(),
        );
        registry.register(
            "files_unreadable",
            "Paths the globs match that cannot be read (permissions, symlink loop); the log names each once",
            metrics.files_unreadable.clone(),
        );
        registry.register(
            "in_flight_batches",
            "Batches read but not yet acknowledged and checkpointed",
            metrics.in_flight_batches.clone(),
        );
        registry.register(
            "checkpoint_save_failing",
            "1 while the checkpoint file cannot be saved (e.g. a full disk): shipping goes on, the saved positions do not move",
            metrics.checkpoint_save_failing.clone(),
        );
        registry.register(
            "checkpoint_save_errors",
            "Failed attempts to save the checkpoint file",
            metrics.checkpoint_save_errors.clone(),
        );
        registry.register(
            "config_version",
            "Version of the running config (the config-version file next to the config file; 0 when absent)",
            metrics.config_version.clone(),
        );
        registry.register(
            "checkpoint_lag_bytes",
            "Bytes read from a file but not yet checkpointed",
            metrics.checkpoint_lag.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts the marks of one record.
    pub fn marked(&self, marks: &[Mark]) {
        for mark in marks {
            let kind = serde_json::to_value(mark)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            self.marks.get_or_create(&vec![("kind", kind)]).inc();
        }
    }

    /// Counts one record changed by redaction rule `rule`.
    pub fn redacted(&self, rule: &str) {
        self.redactions
            .get_or_create(&vec![("rule", rule.to_owned())])
            .inc();
    }

    pub fn file_read(&self, id: FileId, path: &Path, read: u64) {
        let mut offsets = self.offsets.lock().expect("metrics lock");
        let entry = offsets.entry(id).or_default();
        if entry.path.is_empty() {
            entry.path = path.display().to_string();
        }
        entry.read = read;
    }

    pub fn file_checkpointed(&self, id: FileId, offset: u64) {
        let mut offsets = self.offsets.lock().expect("metrics lock");
        if let Some(entry) = offsets.get_mut(&id) {
            entry.checkpointed = offset;
        }
    }

    pub fn file_forgotten(&self, id: FileId) {
        self.offsets.lock().expect("metrics lock").remove(&id);
    }

    pub fn set_kafka_ready(&self, ready: bool) {
        self.kafka_ready.store(ready, Ordering::SeqCst);
    }

    pub fn set_tailer_running(&self, running: bool) {
        self.tailer_running.store(running, Ordering::SeqCst);
    }

    /// Ready to ship: Kafka answered a metadata request, the tailer runs and checkpoints
    /// can be saved.
    pub fn ready(&self) -> bool {
        self.kafka_ready.load(Ordering::SeqCst)
            && self.tailer_running.load(Ordering::SeqCst)
            && self.checkpoint_save_failing.get() == 0
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        self.checkpoint_lag.clear();
        for file in self.offsets.lock().expect("metrics lock").values() {
            let lag = file.read.saturating_sub(file.checkpointed);
            self.checkpoint_lag
                .get_or_create(&vec![("path", file.path.clone())])
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric_and_the_lag_per_file() {
        let metrics = Metrics::new();
        metrics.lines_read.inc_by(3);
        metrics.marked(&[Mark::ParseError, Mark::InvalidUtf8]);
        let id = FileId { dev: 1, inode: 2 };
        metrics.file_read(id, Path::new("/logs/a.log"), 100);
        metrics.file_checkpointed(id, 40);
        let text = metrics.encode();
        for expected in [
            "bitesize_shipper_lines_read_total 3",
            "bitesize_shipper_marked_records_total{kind=\"parse_error\"} 1",
            "bitesize_shipper_marked_records_total{kind=\"invalid_utf8\"} 1",
            "bitesize_shipper_checkpoint_lag_bytes{path=\"/logs/a.log\"} 60",
            "bitesize_shipper_in_flight_batches 0",
            "bitesize_shipper_config_version 0",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
        metrics.file_forgotten(id);
        assert!(!metrics.encode().contains("a.log"));
        assert!(!metrics.ready());
        metrics.config_version.set(42);
        assert!(metrics.encode().contains(
            "# TYPE bitesize_shipper_config_version gauge\nbitesize_shipper_config_version 42\n"
        ));
    }
}
