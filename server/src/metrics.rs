//! The server's Prometheus metrics (`/metrics`, through `prometheus-client`) and readiness
//! (`/readyz`). Ingest counts what it indexes, skips and cannot decode, per namespace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabel {
    pub namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub namespace: String,
    pub partition: i32,
}

/// The Kafka side of each registered namespace (set by `kafka::registry` when it looks).
#[derive(Default)]
pub struct KafkaMetrics {
    pub partitions: Family<NamespaceLabel, Gauge>,
    pub end_offset: Family<PartitionLabel, Gauge>,
    pub lag_records: Family<NamespaceLabel, Gauge>,
    pub lag_seconds: Family<NamespaceLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// 1 for a registry entry whose topic is missing in Kafka.
    pub topic_missing: Family<NamespaceLabel, Gauge>,
    /// Records sent by the consume endpoint.
    pub streamed: Family<NamespaceLabel, Counter>,
}

/// The archive stage and rehydrates (set by `archive`).
#[derive(Default)]
pub struct ArchiveMetrics {
    /// Records written to the archive.
    pub records: Family<NamespaceLabel, Counter>,
    pub objects: Family<NamespaceLabel, Counter>,
    /// Compressed bytes written.
    pub bytes: Family<NamespaceLabel, Counter>,
    /// Records in a namespace's topic not yet archived (end offset minus what is written).
    pub lag_records: Family<NamespaceLabel, Gauge>,
    /// NDJSON bytes read and waiting to be written.
    pub buffered_bytes: Gauge,
    /// 1 while the archive stage consumes.
    pub running: Gauge,
}

/// Every metric the server exports, shared by the stages that update them.
pub struct Metrics {
    registry: Registry,
    /// Records added to a namespace's index.
    pub indexed: Family<NamespaceLabel, Counter>,
    /// Bytes of the Kafka messages added to a namespace's index.
    pub indexed_bytes: Family<NamespaceLabel, Counter>,
    /// Records searchable in a namespace's index, and its size on disk (set when looked at:
    /// each `/metrics` scrape, the namespaces page and API).
    pub index_documents: Family<NamespaceLabel, Gauge>,
    pub index_bytes: Family<NamespaceLabel, Gauge>,
    /// Kafka messages that were not a JSON record: indexed as raw text, marked `not_json`.
    pub not_json: Family<NamespaceLabel, Counter>,
    /// Messages already in the index that Kafka delivered again (after a restart or a
    /// rebalance) and that were skipped.
    pub redelivered: Counter,
    /// Index commits (each carries the Kafka offsets it holds).
    pub commits: Counter,
    /// Set while the ingest thread runs.
    pub ingest_running: AtomicBool,
    pub kafka: KafkaMetrics,
    pub archive: ArchiveMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bitesize");
        let indexed = Family::<NamespaceLabel, Counter>::default();
        let not_json = Family::<NamespaceLabel, Counter>::default();
        let indexed_bytes = Family::<NamespaceLabel, Counter>::default();
        let index_documents = Family::<NamespaceLabel, Gauge>::default();
        let index_bytes = Family::<NamespaceLabel, Gauge>::default();
        registry.register(
            "ingest_bytes",
            "Bytes of the Kafka messages added to a namespace's index",
            indexed_bytes.clone(),
        );
        registry.register(
            "index_documents",
            "Records searchable in a namespace's index",
            index_documents.clone(),
        );
        registry.register(
            "index_disk_bytes",
            "Size of a namespace's index on disk",
            index_bytes.clone(),
        );
        let redelivered = Counter::default();
        let commits = Counter::default();
        registry.register(
            "ingest_records",
            "Records added to a namespace's index",
            indexed.clone(),
        );
        registry.register(
            "ingest_not_json",
            "Messages that were not a JSON record, kept as raw text",
            not_json.clone(),
        );
        registry.register(
            "ingest_redelivered",
            "Messages already indexed that Kafka delivered again, skipped",
            redelivered.clone(),
        );
        registry.register(
            "index_commits",
            "Index commits, each with the Kafka offsets it holds",
            commits.clone(),
        );
        let kafka = KafkaMetrics::default();
        registry.register(
            "kafka_partitions",
            "Partitions of a namespace's topic",
            kafka.partitions.clone(),
        );
        registry.register(
            "kafka_end_offset",
            "Next offset of each partition of a namespace's topic",
            kafka.end_offset.clone(),
        );
        registry.register(
            "kafka_lag_records",
            "Records in a namespace's topic not yet indexed by this server",
            kafka.lag_records.clone(),
        );
        registry.register(
            "kafka_lag_seconds",
            "Age of the oldest record in a namespace's topic not yet indexed",
            kafka.lag_seconds.clone(),
        );
        registry.register(
            "kafka_topic_missing",
            "1 when a registered namespace's topic does not exist in Kafka",
            kafka.topic_missing.clone(),
        );
        registry.register(
            "stream_records",
            "Records sent by the consume endpoint",
            kafka.streamed.clone(),
        );
        let archive = ArchiveMetrics::default();
        registry.register(
            "archive_records",
            "Records written to the archive",
            archive.records.clone(),
        );
        registry.register(
            "archive_objects",
            "Objects written to the archive",
            archive.objects.clone(),
        );
        registry.register(
            "archive_bytes",
            "Compressed bytes written to the archive",
            archive.bytes.clone(),
        );
        registry.register(
            "archive_lag_records",
            "Records in a namespace's topic not yet archived",
            archive.lag_records.clone(),
        );
        registry.register(
            "archive_buffered_bytes",
            "NDJSON bytes read by the archive stage and not yet written",
            archive.buffered_bytes.clone(),
        );
        registry.register(
            "archive_running",
            "1 while the archive stage consumes",
            archive.running.clone(),
        );
        Metrics {
            registry,
            indexed,
            indexed_bytes,
            index_documents,
            index_bytes,
            not_json,
            redelivered,
            commits,
            ingest_running: AtomicBool::new(false),
            kafka,
            archive,
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String");
        text
    }

    /// Sets the index gauges of every namespace from its index now.
    pub fn observe_indexes(&self, indexes: &crate::search::IndexRegistry) {
        for name in indexes.names() {
            if let Some(Ok(stats)) = indexes.get(&name).map(|index| index.stats()) {
                self.observe_index(&name, stats);
            }
        }
    }

    pub fn observe_index(&self, namespace: &str, stats: crate::search::IndexStats) {
        let label = NamespaceLabel {
            namespace: namespace.to_owned(),
        };
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.index_documents
            .get_or_create(&label)
            .set(clamp(stats.documents));
        self.index_bytes
            .get_or_create(&label)
            .set(clamp(stats.bytes));
    }

    pub fn ingest_is_running(&self) -> bool {
        self.ingest_running.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_the_exposition() {
        let metrics = Metrics::new();
        metrics
            .indexed
            .get_or_create(&NamespaceLabel {
                namespace: "shop".into(),
            })
            .inc_by(3);
        metrics
            .not_json
            .get_or_create(&NamespaceLabel {
                namespace: "shop".into(),
            })
            .inc();
        let text = metrics.encode();
        assert!(
            text.contains(r#"bitesize_ingest_records_total{namespace="shop"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bitesize_ingest_not_json_total{namespace="shop"} 1"#),
            "{text}"
        );
        assert!(text.contains("bitesize_index_commits_total 0"), "{text}");
    }
}
