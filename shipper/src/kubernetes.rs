//! Pod metadata from the Kubernetes API. [`PodWatcher`] watches the pods on this node (a
//! kube-rs watcher on `spec.nodeName`, re-listing by itself after a `410 Gone`) and keeps
//! [`PodCache`] trimmed to what records use: uid, labels, the opted-in annotations, each
//! container's image, the node and the controlling owner; namespace labels when asked for.
//!
//! Shipping never waits for the API: the record builder only reads the cache. A pod that is
//! not in it (API unreachable, not yet listed) is shipped with file-name metadata and
//! `kubernetes.metadata_unavailable: true`. Deleted pods stay for a grace period so the
//! last lines of short-lived pods still get their metadata.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::utils::Backoff;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::watch;

use crate::config::KubernetesConfig;
use crate::metrics::Metrics;
use crate::{Error, Result};

/// What records use of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Only the annotations listed in `kubernetes.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Container name → image (init and ephemeral containers included).
    pub images: HashMap<String, String>,
    pub node_name: String,
    /// The controlling owner (kind, name), e.g. (`ReplicaSet`, `web-7d9c`).
    pub owner: Option<(String, String)>,
}

impl PodMeta {
    /// Trims a pod from the API to what is used.
    pub fn from_pod(pod: &Pod, annotations: &[String]) -> PodMeta {
        let meta = &pod.metadata;
        let mut images = HashMap::new();
        if let Some(spec) = &pod.spec {
            let all = spec
                .init_containers
                .iter()
                .flatten()
                .chain(spec.containers.iter());
            for container in all {
                if let Some(image) = &container.image {
                    images.insert(container.name.clone(), image.clone());
                }
            }
            for container in spec.ephemeral_containers.iter().flatten() {
                if let Some(image) = &container.image {
                    images.insert(container.name.clone(), image.clone());
                }
            }
        }
        let owners = meta.owner_references.iter().flatten();
        let owner = owners
            .clone()
            .find(|o| o.controller == Some(true))
            .or_else(|| owners.clone().next())
            .map(|o| (o.kind.clone(), o.name.clone()));
        PodMeta {
            uid: meta.uid.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta
                .annotations
                .iter()
                .flatten()
                .filter(|(key, _)| annotations.contains(key))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            images,
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
            owner,
        }
    }
}

type PodKey = (String, String);

/// The shared cache: the watcher writes, the record builder reads.
#[derive(Clone)]
pub struct PodCache {
    state: Arc<RwLock<CacheState>>,
    grace: Duration,
    synced: watch::Receiver<bool>,
}

struct CacheState {
    pods: HashMap<PodKey, Arc<PodMeta>>,
    /// Pods deleted, kept until the grace period ends.
    deleted: HashMap<PodKey, Instant>,
    namespace_labels: HashMap<String, Arc<BTreeMap<String, String>>>,
}

/// A cache lookup: the pod (if known) and its namespace's labels (if watched).
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pub pod: Option<Arc<PodMeta>>,
    pub namespace_labels: Option<Arc<BTreeMap<String, String>>>,
}

impl PodCache {
    fn new(grace: Duration) -> (PodCache, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let cache = PodCache {
            state: Arc::new(RwLock::new(CacheState {
                pods: HashMap::new(),
                deleted: HashMap::new(),
                namespace_labels: HashMap::new(),
            })),
            grace,
            synced: rx,
        };
        (cache, tx)
    }

    pub fn get(&self, namespace: &str, pod: &str) -> Lookup {
        let state = self.state.read().expect("pod cache lock");
        let key = (namespace.to_owned(), pod.to_owned());
        let expired = state
            .deleted
            .get(&key)
            .is_some_and(|at| at.elapsed() >= self.grace);
        Lookup {
            pod: if expired {
                None
            } else {
                state.pods.get(&key).cloned()
            },
            namespace_labels: state.namespace_labels.get(namespace).cloned(),
        }
    }

    /// Waits until the first list of pods is in (or `timeout` passes); true when it is.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut synced = self.synced.clone();
        tokio::time::timeout(timeout, synced.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState> {
        self.state.write().expect("pod cache lock")
    }

    fn apply(&self, key: PodKey, meta: PodMeta) {
        let mut state = self.write();
        state.deleted.remove(&key);
        state.pods.insert(key, Arc::new(meta));
    }

    fn delete(&self, key: PodKey) {
        let mut state = self.write();
        if state.pods.contains_key(&key) {
            state.deleted.entry(key).or_insert_with(Instant::now);
        }
    }

    /// After a (re-)list: pods not listed were deleted meanwhile.
    fn relisted(&self, listed: &HashSet<PodKey>) {
        let mut state = self.write();
        let gone: Vec<PodKey> = state
            .pods
            .keys()
            .filter(|key| !listed.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            state.deleted.entry(key).or_insert_with(Instant::now);
        }
    }

    /// Forgets deleted pods whose grace period is over.
    fn sweep(&self) {
        let grace = self.grace;
        let mut state = self.write();
        let expired: Vec<PodKey> = state
            .deleted
            .iter()
            .filter(|(_, at)| at.elapsed() >= grace)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            state.deleted.remove(&key);
            state.pods.remove(&key);
        }
    }

    fn set_namespace_labels(&self, namespace: String, labels: Option<BTreeMap<String, String>>) {
        let mut state = self.write();
        match labels {
            Some(labels) => state.namespace_labels.insert(namespace, Arc::new(labels)),
            None => state.namespace_labels.remove(&namespace),
        };
    }
}

/// Retries of a failed watch: doubling from 250 ms up to `max`; reset by a success.
struct RetryBackoff {
    next: Duration,
    max: Duration,
}

impl Iterator for RetryBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        Some(now)
    }
}

impl Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.next = Duration::from_millis(250);
    }
}

/// The watches on pods (and namespaces) that fill a [`PodCache`].
pub struct PodWatcher {
    client: kube::Client,
    node_name: Option<String>,
    annotations: Vec<String>,
    namespace_labels: bool,
    retry_max: Duration,
    cache: PodCache,
    synced: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl PodWatcher {
    /// Connects the client (kubeconfig file, or the in-cluster service account); an error
    /// names the key. `node_name` narrows the watch to this node's pods (`None`: all pods,
    /// for `check`).
    pub async fn new(
        config: &KubernetesConfig,
        node_name: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Result<PodWatcher> {
        let client_config = match &config.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    Error::Config(format!(
                        "kubernetes.kubeconfig: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .map_err(|e| {
                        Error::Config(format!("kubernetes.kubeconfig: {}: {e}", path.display()))
                    })?
            }
            None => kube::Config::incluster().map_err(|e| {
                Error::Config(format!(
                    "kubernetes.enabled: not running in a pod with a service account ({e}); \
                     set kubernetes.kubeconfig or kubernetes.enabled: false"
                ))
            })?,
        };
        let client = kube::Client::try_from(client_config)
            .map_err(|e| Error::Config(format!("kubernetes: cannot build a client: {e}")))?;
        let (cache, synced) = PodCache::new(Duration::from_secs(config.deleted_pod_grace_secs));
        Ok(PodWatcher {
            client,
            node_name,
            annotations: config.annotations.clone(),
            namespace_labels: config.namespace_labels,
            retry_max: Duration::from_millis(config.retry_max_ms.max(1)),
            cache,
            synced,
            metrics,
        })
    }

    pub fn cache(&self) -> PodCache {
        self.cache.clone()
    }

    fn backoff(&self) -> RetryBackoff {
        RetryBackoff {
            next: Duration::from_millis(250),
            max: self.retry_max,
        }
    }

    /// Watches until dropped (abort the task); errors are logged and retried.
    pub async fn run(self) {
        let mut wc = watcher::Config::default();
        if let Some(node) = &self.node_name {
            wc = wc.fields(&format!("spec.nodeName={node}"));
        }
        let pods = watcher(Api::<Pod>::all(self.client.clone()), wc).backoff(self.backoff());
        let namespaces = if self.namespace_labels {
            Some(
                watcher(
                    Api::<Namespace>::all(self.client.clone()),
                    watcher::Config::default(),
                )
                .backoff(self.backoff()),
            )
        } else {
            None
        };
        let namespace_task = namespaces.map(|stream| {
            let cache = self.cache.clone();
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(watcher::Event::Apply(ns) | watcher::Event::InitApply(ns)) => {
                            let name = ns.metadata.name.clone().unwrap_or_default();
                            cache.set_namespace_labels(
                                name,
                                Some(ns.metadata.labels.unwrap_or_default()),
                            );
                        }
                        Ok(watcher::Event::Delete(ns)) => {
                            cache.set_namespace_labels(ns.metadata.name.unwrap_or_default(), None)
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "namespace watch failed; retrying"),
                    }
                }
            })
        });
        let mut pods = std::pin::pin!(pods);
        let mut sweep = tokio::time::interval(Duration::from_secs(5));
        let mut listing: Option<HashSet<PodKey>> = None;
        let mut was_up = None;
        loop {
            let event = tokio::select! {
                event = pods.next() => event,
                _ = sweep.tick() => {
                    self.cache.sweep();
                    continue;
                }
            };
            let Some(event) = event else { break };
            // Up once a list is complete (or a watch event arrives); down on an error.
            let up = match &event {
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => was_up,
                Ok(_) => Some(true),
                Err(_) => Some(false),
            };
            if up.is_some() && was_up != up {
                match &event {
                    Ok(_) => tracing::info!("Kubernetes API watch established"),
                    Err(e) => {
                        tracing::warn!(error = %e, "Kubernetes API unreachable; shipping with file-name metadata")
                    }
                }
                was_up = up;
                self.metrics
                    .kubernetes_api_up
                    .set(i64::from(up == Some(true)));
            }
            match event {
                Ok(watcher::Event::Init) => listing = Some(HashSet::new()),
                Ok(watcher::Event::InitApply(pod)) => {
                    let key = self.apply(&pod);
                    if let (Some(listing), Some(key)) = (&mut listing, key) {
                        listing.insert(key);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(listed) = listing.take() {
                        self.cache.relisted(&listed);
                    }
                    self.synced.send_replace(true);
                }
                Ok(watcher::Event::Apply(pod)) => {
                    self.apply(&pod);
                }
                Ok(watcher::Event::Delete(pod)) => {
                    if let Some(key) = key_of(&pod) {
                        self.cache.delete(key);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "pod watch error"),
            }
        }
        if let Some(task) = namespace_task {
            task.abort();
        }
    }

    fn apply(&self, pod: &Pod) -> Option<PodKey> {
        let key = key_of(pod)?;
        self.cache
            .apply(key.clone(), PodMeta::from_pod(pod, &self.annotations));
        Some(key)
    }
}

fn key_of(pod: &Pod) -> Option<PodKey> {
    Some((pod.metadata.namespace.clone()?, pod.metadata.name.clone()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name, "uid": "u-1",
                "labels": {"app": "web"},
                "annotations": {"team": "a", "secret": "no"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "x"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "y", "controller": true}
                ]},
            "spec": {"nodeName": "node-a",
                "initContainers": [{"name": "init", "image": "busybox:1"}],
                "containers": [{"name": "web", "image": "shop/web:2"}]}
        }))
        .unwrap()
    }

    #[test]
    fn pods_are_trimmed_to_what_records_use() {
        let meta = PodMeta::from_pod(&pod("shop", "web"), &["team".to_owned()]);
        assert_eq!(meta.uid, "u-1");
        assert_eq!(meta.labels["app"], "web");
        assert_eq!(
            meta.annotations,
            BTreeMap::from([("team".to_owned(), "a".to_owned())])
        );
        assert_eq!(meta.images["web"], "shop/web:2");
        assert_eq!(meta.images["init"], "busybox:1");
        assert_eq!(meta.node_name, "node-a");
        assert_eq!(meta.owner, Some(("ReplicaSet".into(), "web-1".into())));
    }

    #[test]
    fn deleted_pods_stay_for_the_grace_period() {
        let (cache, _synced) = PodCache::new(Duration::from_millis(50));
        let key = ("shop".to_owned(), "web".to_owned());
        cache.apply(key.clone(), PodMeta::from_pod(&pod("shop", "web"), &[]));
        cache.delete(key.clone());
        assert!(cache.get("shop", "web").pod.is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get("shop", "web").pod.is_none());
        // Recreated under the same name (a StatefulSet pod): known again.
        cache.apply(key.clone(), PodMeta::default());
        cache.sweep();
        assert!(cache.get("shop", "web").pod.is_some());
        // A re-list without it: deleted meanwhile.
        cache.relisted(&HashSet::new());
        std::thread::sleep(Duration::from_millis(60));
        cache.sweep();
        assert!(cache.get("shop", "web").pod.is_none());
        assert!(cache.state.read().unwrap().pods.is_empty());
    }
}
