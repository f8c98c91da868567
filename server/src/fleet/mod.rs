//! The shipper fleet manager: the desired state in the database ([`settings`]) rendered
//! into a ServiceAccount, ClusterRole and binding, ConfigMap and DaemonSet ([`render`]),
//! applied with server-side apply under the field manager `bitesize` to every configured
//! cluster (kubeconfig contexts and/or in-cluster); drift is looked for on a schedule and
//! on every change, and only objects that differ from the desired state are re-applied (a
//! config change therefore patches only the ConfigMap: shippers reload it without a
//! restart). The status ([`status`]) lists the shipper pod of every node with what its
//! `/metrics` say. Without a cluster the manager is off; the demo's local shipper is then
//! shown as the one node.

pub mod api;
pub mod render;
pub mod settings;
pub mod status;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use sea_orm::DatabaseConnection;
use serde_json::Value;
use tokio::sync::Notify;

use crate::config::{Config, FleetConfig};
use crate::Result;
use render::{Manifests, NAME};
use settings::FleetSettings;
use status::{ClusterStatus, DesiredSummary, FleetStatus, NodeStatus, Scrape};

/// The server-side apply field manager of every object the fleet manager writes.
pub const FIELD_MANAGER: &str = "bitesize";
/// Longest one cluster's reconcile or status refresh may take.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a shipper's `/metrics` may take to answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// One managed cluster; its client could not be built when `client` is an error.
struct Cluster {
    name: String,
    client: std::result::Result<kube::Client, String>,
}

#[derive(Default)]
struct Observed {
    clusters: HashMap<String, ClusterStatus>,
    scrapes: HashMap<String, Scrape>,
    local: Option<ClusterStatus>,
}

/// The fleet manager, shared by the API handlers and its loop ([`Fleet::run`]).
pub struct Fleet {
    db: DatabaseConnection,
    config: FleetConfig,
    brokers: String,
    topic_template: String,
    clusters: Vec<Cluster>,
    changed: Notify,
    observed: Mutex<Observed>,
    http: reqwest::Client,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn connect(config: &FleetConfig) -> Vec<Cluster> {
    let mut clusters = Vec::new();
    for context in &config.contexts {
        let client = async {
            let kubeconfig = match &config.kubeconfig {
                Some(path) => Kubeconfig::read_from(path),
                None => Kubeconfig::read(),
            }
            .map_err(|e| format!("kubeconfig: {e}"))?;
            let options = KubeConfigOptions {
                context: Some(context.clone()),
                ..Default::default()
            };
            let kube_config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| format!("kubeconfig context {context}: {e}"))?;
            kube::Client::try_from(kube_config).map_err(|e| format!("client for {context}: {e}"))
        }
        .await;
        if let Err(e) = &client {
            tracing::error!(cluster = %context, error = %e, "fleet: cluster not usable");
        }
        clusters.push(Cluster {
            name: context.clone(),
            client,
        });
    }
    if config.in_cluster {
        let client = kube::Config::incluster()
            .map_err(|e| format!("in-cluster config: {e}"))
            .and_then(|c| kube::Client::try_from(c).map_err(|e| format!("in-cluster client: {e}")));
        if let Err(e) = &client {
            tracing::error!(error = %e, "fleet: in-cluster not usable");
        }
        clusters.push(Cluster {
            name: config.in_cluster_name.clone(),
            client,
        });
    }
    clusters
}

/// Applies `desired` when the live object lacks or differs in a field it sets; returns
/// whether it applied.
async fn ensure(
    api: &Api<DynamicObject>,
    desired: &Value,
) -> std::result::Result<bool, kube::Error> {
    if let Some(live) = api.get_opt(NAME).await? {
        let live = serde_json::to_value(&live).unwrap_or(Value::Null);
        if render::contains(&live, desired) {
            return Ok(false);
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(NAME, &params, &Patch::Apply(desired)).await?;
    Ok(true)
}

impl Fleet {
    /// Builds the clients of the configured clusters (a cluster that cannot be reached or
    /// configured is reported in the status, not fatal).
    pub async fn new(config: &Config, db: DatabaseConnection) -> Fleet {
        Fleet {
            db,
            config: config.fleet.clone(),
            brokers: config.kafka.brokers.clone(),
            topic_template: config.kafka.topic_template.clone(),
            clusters: connect(&config.fleet).await,
            changed: Notify::new(),
            observed: Mutex::new(Observed::default()),
            http: reqwest::Client::builder()
                .timeout(SCRAPE_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// Whether a cluster is configured.
    pub fn enabled(&self) -> bool {
        !self.clusters.is_empty()
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The desired state (database row or defaults).
    pub async fn settings(&self) -> Result<FleetSettings> {
        settings::load(&self.db, &self.brokers, &self.topic_template).await
    }

    /// Stores a change and wakes the loop to apply it.
    pub async fn update(
        &self,
        change: settings::FleetSettingsUpdate,
        actor: &str,
    ) -> Result<(FleetSettings, settings::Changed)> {
        let current = self.settings().await?;
        let updated = settings::update(&self.db, current, change, actor).await?;
        if !updated.1.fields.is_empty() {
            self.changed.notify_one();
        }
        Ok(updated)
    }

    /// The rendered objects, as applied to every cluster.
    pub async fn manifests(&self) -> Result<Manifests> {
        Ok(Manifests::render(
            &self.settings().await?,
            &self.config.namespace,
        ))
    }

    /// Checks every cluster's objects and re-applies those that drifted.
    pub async fn reconcile(&self) -> Result<()> {
        let manifests = self.manifests().await?;
        for cluster in &self.clusters {
            let outcome = match &cluster.client {
                Err(e) => Err(e.clone()),
                Ok(client) => tokio::time::timeout(
                    CLUSTER_TIMEOUT,
                    self.reconcile_cluster(client, &manifests),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(format!("no answer within {} s", CLUSTER_TIMEOUT.as_secs()))
                }),
            };
            let mut observed = self.observed();
            let status = observed.clusters.entry(cluster.name.clone()).or_default();
            status.name = cluster.name.clone();
            match outcome {
                Ok(applied) => {
                    if !applied.is_empty() {
                        tracing::info!(cluster = %cluster.name, ?applied, "fleet: applied");
                    }
                    status.reachable = true;
                    status.error = None;
                    status.last_contact = Some(now_rfc3339());
                    status.last_reconcile = Some(now_rfc3339());
                    status.last_applied = applied;
                }
                Err(e) => {
                    tracing::warn!(cluster = %cluster.name, error = %e, "fleet: reconcile failed");
                    status.reachable = false;
                    status.error = Some(e);
                }
            }
        }
        Ok(())
    }

    async fn reconcile_cluster(
        &self,
        client: &kube::Client,
        manifests: &Manifests,
    ) -> std::result::Result<Vec<String>, String> {
        let mut applied = Vec::new();
        for (kind, manifest) in manifests.in_order() {
            let (group, version) = match manifest["apiVersion"]
                .as_str()
                .unwrap_or("v1")
                .split_once('/')
            {
                Some((g, v)) => (g.to_owned(), v.to_owned()),
                None => (
                    String::new(),
                    manifest["apiVersion"].as_str().unwrap_or("v1").to_owned(),
                ),
            };
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, kind));
            let api: Api<DynamicObject> = if manifest["metadata"].get("namespace").is_some() {
                Api::namespaced_with(client.clone(), &self.config.namespace, &resource)
            } else {
                Api::all_with(client.clone(), &resource)
            };
            if ensure(&api, manifest)
                .await
                .map_err(|e| format!("{kind}/{NAME}: {e}"))?
            {
                applied.push(format!("{kind}/{NAME}"));
            }
        }
        Ok(applied)
    }

    /// Lists the shipper pods of every cluster and scrapes their metrics.
    pub async fn refresh_status(&self) -> Result<()> {
        let settings = self.settings().await?;
        let port = settings.shipper().port;
        for cluster in &self.clusters {
            let outcome = match &cluster.client {
                Err(e) => Err(e.clone()),
                Ok(client) => tokio::time::timeout(
                    CLUSTER_TIMEOUT,
                    self.observe_cluster(&cluster.name, client, port),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(format!("no answer within {} s", CLUSTER_TIMEOUT.as_secs()))
                }),
            };
            let mut observed = self.observed();
            let status = observed.clusters.entry(cluster.name.clone()).or_default();
            status.name = cluster.name.clone();
            match outcome {
                Ok((nodes, config_version)) => {
                    status.reachable = true;
                    status.error = None;
                    status.last_contact = Some(now_rfc3339());
                    status.config_version_applied = config_version;
                    status.nodes = nodes;
                }
                Err(e) => {
                    // The nodes as last seen stay, with their last_seen times.
                    status.reachable = false;
                    status.error = Some(e);
                }
            }
            status.total();
        }
        if !self.enabled() {
            if let Some(local) = &self.config.local_shipper {
                let mut node = NodeStatus {
                    node: local.node_name.clone(),
                    pod: "bitesize-shipper (local process)".into(),
                    phase: "Unknown".into(),
                    shipper_version: Some(env!("CARGO_PKG_VERSION").into()),
                    ..NodeStatus::default()
                };
                self.scrape_into(&mut node, "local", local.metrics_url.as_deref())
                    .await;
                if node.metrics_error.is_none() && local.metrics_url.is_some() {
                    node.phase = "Running".into();
                    node.ready = true;
                }
                let mut status = ClusterStatus {
                    name: "local".into(),
                    reachable: true,
                    nodes: vec![node],
                    ..ClusterStatus::default()
                };
                status.total();
                self.observed().local = Some(status);
            }
        }
        Ok(())
    }

    async fn observe_cluster(
        &self,
        cluster: &str,
        client: &kube::Client,
        port: u16,
    ) -> std::result::Result<(Vec<NodeStatus>, Option<i64>), String> {
        let namespace = &self.config.namespace;
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(&render::pod_selector()))
            .await
            .map_err(|e| format!("listing shipper pods: {e}"))?;
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let config_version = config_maps
            .get_opt(NAME)
            .await
            .map_err(|e| format!("reading the ConfigMap: {e}"))?
            .and_then(|cm| cm.metadata.annotations)
            .and_then(|a| {
                a.get(render::CONFIG_VERSION_ANNOTATION)
                    .and_then(|v| v.parse().ok())
            });
        let previous: HashMap<String, Option<String>> = self
            .observed()
            .clusters
            .get(cluster)
            .map(|c| {
                c.nodes
                    .iter()
                    .map(|n| (n.pod.clone(), n.last_seen.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let previous = &previous;
        let scrapes = list.items.iter().map(|pod| async move {
            let mut node = status::node_from_pod(pod);
            node.last_seen = previous.get(&node.pod).cloned().flatten();
            let url = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .map(|ip| {
                    format!(
                        "http://{}/metrics",
                        std::net::SocketAddr::new(ip.parse().unwrap_or([0, 0, 0, 0].into()), port)
                    )
                });
            if node.phase == "Running" {
                self.scrape_into(&mut node, cluster, url.as_deref()).await;
            }
            if node.ready && node.metrics_error.is_some() {
                node.last_seen = Some(now_rfc3339());
            }
            node
        });
        Ok((futures::future::join_all(scrapes).await, config_version))
    }

    /// Reads a shipper's `/metrics` into its row; the previous scrape gives rates.
    async fn scrape_into(&self, node: &mut NodeStatus, cluster: &str, url: Option<&str>) {
        let Some(url) = url else {
            node.metrics_error = Some("no address".into());
            return;
        };
        let text = async {
            let response = self.http.get(url).send().await?.error_for_status()?;
            response.text().await
        }
        .await;
        match text {
            Ok(text) => {
                let key = format!("{cluster}/{}", node.pod);
                let previous = self.observed().scrapes.get(&key).copied();
                let scrape = node.apply_metrics(&text, previous, Instant::now());
                self.observed().scrapes.insert(key, scrape);
                node.last_seen = Some(now_rfc3339());
            }
            Err(e) => node.metrics_error = Some(format!("{url}: {e}")),
        }
    }

    /// The latest status.
    pub async fn status(&self) -> Result<FleetStatus> {
        let settings = self.settings().await?;
        let observed = self.observed();
        let mut clusters: Vec<ClusterStatus> = self
            .clusters
            .iter()
            .map(|c| {
                observed
                    .clusters
                    .get(&c.name)
                    .cloned()
                    .unwrap_or_else(|| ClusterStatus {
                        name: c.name.clone(),
                        error: c.client.as_ref().err().cloned(),
                        ..ClusterStatus::default()
                    })
            })
            .collect();
        if !self.enabled() {
            clusters.extend(observed.local.clone());
        }
        Ok(FleetStatus {
            enabled: self.enabled(),
            desired: Some(DesiredSummary {
                image: settings.image,
                version: settings.version,
                config_version: settings.config_version,
            }),
            clusters,
        })
    }

    /// Reconciles on every change and every `reconcile_interval_secs`, refreshes the status
    /// every `status_interval_secs`, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: Arc<AtomicBool>) {
        if !self.enabled() && self.config.local_shipper.is_none() {
            return;
        }
        let reconcile_every = Duration::from_secs(self.config.reconcile_interval_secs);
        let status_every = Duration::from_secs(self.config.status_interval_secs);
        let (mut next_reconcile, mut next_status) = (Instant::now(), Instant::now());
        while !shutdown.load(Ordering::SeqCst) {
            let mut reconciled = false;
            if self.enabled() && Instant::now() >= next_reconcile {
                if let Err(e) = self.reconcile().await {
                    tracing::warn!(error = %e, "fleet: reconcile failed");
                }
                next_reconcile = Instant::now() + reconcile_every;
                reconciled = true;
            }
            if reconciled || Instant::now() >= next_status {
                if let Err(e) = self.refresh_status().await {
                    tracing::warn!(error = %e, "fleet: status refresh failed");
                }
                next_status = Instant::now() + status_every;
            }
            let wait = next_reconcile
                .min(next_status)
                .saturating_duration_since(Instant::now());
            tokio::select! {
                _ = self.changed.notified() => next_reconcile = Instant::now(),
                _ = tokio::time::sleep(wait.min(Duration::from_millis(250))) => {}
            }
        }
    }
}
