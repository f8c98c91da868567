//! Fleet status: per node (the shipper pod on it) and per cluster, from the pods the API
//! server lists and the shippers' `/metrics`.

use std::collections::HashMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use super::render::{CONFIG_VERSION_ANNOTATION, SHIPPER_VERSION_ANNOTATION};

/// `GET /api/v1/fleet`.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct FleetStatus {
    /// Whether this server manages a fleet (a cluster is configured).
    pub enabled: bool,
    /// The desired state the clusters are reconciled to.
    pub desired: Option<DesiredSummary>,
    pub clusters: Vec<ClusterStatus>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct DesiredSummary {
    pub image: String,
    pub version: String,
    pub config_version: i64,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    pub name: String,
    /// Whether the last call to its API server succeeded.
    pub reachable: bool,
    /// The last error talking to it.
    pub error: Option<String>,
    /// When its API server last answered (RFC 3339).
    pub last_contact: Option<String>,
    /// When the objects were last checked for drift, and what was re-applied then
    /// (`Kind/name`).
    pub last_reconcile: Option<String>,
    pub last_applied: Vec<String>,
    /// The config version in the cluster's ConfigMap.
    pub config_version_applied: Option<i64>,
    pub nodes: Vec<NodeStatus>,
    pub totals: Totals,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub nodes: usize,
    pub ready: usize,
    pub restarts: i64,
    /// Sum over the nodes whose metrics were scraped.
    pub lines_per_second: f64,
    pub errors: u64,
}

/// The shipper on one node.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct NodeStatus {
    pub node: String,
    pub pod: String,
    /// `Pending`, `Running`, `Failed`, … (the pod's phase).
    pub phase: String,
    pub ready: bool,
    pub restarts: i64,
    pub image: Option<String>,
    pub shipper_version: Option<String>,
    /// The config version the shipper runs: reported in its metrics
    /// (`bitesize_shipper_config_version`), else the one its pod started with.
    pub config_version: Option<i64>,
    /// `metrics` or `pod-template`.
    pub config_version_source: Option<String>,
    /// Lines read per second between the last two scrapes.
    pub lines_per_second: Option<f64>,
    /// Records Kafka refused for good (dead letters), since the shipper started.
    pub errors: Option<u64>,
    /// Why `/metrics` could not be read, when it could not.
    pub metrics_error: Option<String>,
    /// When the shipper last answered (metrics) or was last seen ready (RFC 3339).
    pub last_seen: Option<String>,
}

/// Counters from one scrape, to turn the next one into rates.
#[derive(Debug, Clone, Copy)]
pub struct Scrape {
    pub at: Instant,
    pub lines: f64,
}

/// Sums of the samples of each metric in a Prometheus text exposition (labels ignored).
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut sums = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let rest = match line[name_end..].strip_prefix('{') {
            Some(labelled) => labelled.rsplit_once('}').map_or("", |(_, v)| v),
            None => &line[name_end..],
        };
        if let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *sums.entry(name.to_owned()).or_insert(0.0) += value;
        }
    }
    sums
}

/// A node's row from its pod (metrics filled in later).
pub fn node_from_pod(pod: &Pod) -> NodeStatus {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let restarts = status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| i64::from(c.restart_count)).sum());
    let image = spec
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone());
    let config_version = annotations
        .get(CONFIG_VERSION_ANNOTATION)
        .and_then(|v| v.parse().ok());
    NodeStatus {
        node: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        pod: pod.metadata.name.clone().unwrap_or_default(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into()),
        ready,
        restarts,
        shipper_version: annotations
            .get(SHIPPER_VERSION_ANNOTATION)
            .cloned()
            .or_else(|| {
                image
                    .as_deref()
                    .and_then(|i| i.rsplit_once(':'))
                    .map(|(_, tag)| tag.to_owned())
            }),
        image,
        config_version,
        config_version_source: config_version.map(|_| "pod-template".to_owned()),
        ..NodeStatus::default()
    }
}

impl NodeStatus {
    /// Fills in what a scrape of the shipper's `/metrics` says; `previous` gives the rate.
    pub fn apply_metrics(&mut self, text: &str, previous: Option<Scrape>, now: Instant) -> Scrape {
        let metrics = parse_metrics(text);
        let lines = metrics
            .get("bitesize_shipper_lines_read_total")
            .copied()
            .unwrap_or(0.0);
        self.errors = Some(
            metrics
                .get("bitesize_shipper_dead_letters_total")
                .copied()
                .unwrap_or(0.0) as u64,
        );
        // 0 means the shipper found no `config-version` file: it does not know its version.
        if let Some(version) = metrics
            .get("bitesize_shipper_config_version")
            .filter(|v| **v > 0.0)
        {
            self.config_version = Some(*version as i64);
            self.config_version_source = Some("metrics".into());
        }
        if let Some(previous) = previous {
            let seconds = now.duration_since(previous.at).as_secs_f64();
            if seconds > 0.0 && lines >= previous.lines {
                self.lines_per_second =
                    Some(((lines - previous.lines) / seconds * 100.0).round() / 100.0);
            }
        }
        Scrape { at: now, lines }
    }
}

impl ClusterStatus {
    pub fn total(&mut self) {
        self.nodes
            .sort_by(|a, b| a.node.cmp(&b.node).then(a.pod.cmp(&b.pod)));
        self.totals = Totals {
            nodes: self.nodes.len(),
            ready: self.nodes.iter().filter(|n| n.ready).count(),
            restarts: self.nodes.iter().map(|n| n.restarts).sum(),
            lines_per_second: self.nodes.iter().filter_map(|n| n.lines_per_second).sum(),
            errors: self.nodes.iter().filter_map(|n| n.errors).sum(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_over_labels() {
        let text = "# HELP x y\n# TYPE bitesize_shipper_lines_read counter\nbitesize_shipper_lines_read_total 10\nbitesize_shipper_marked_records_total{mark=\"split\"} 2\nbitesize_shipper_marked_records_total{mark=\"a b\"} 3\n";
        let m = parse_metrics(text);
        assert_eq!(m["bitesize_shipper_lines_read_total"], 10.0);
        assert_eq!(m["bitesize_shipper_marked_records_total"], 5.0);
    }
}
