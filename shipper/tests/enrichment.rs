//! Enrichment from the Kubernetes API. THE API SERVER HERE IS A FAKE written in this project
//! (`fake-kube/`, crate `bitesize-fake-kube`): no real apiserver can run in the test
//! environment. It answers list and watch requests as kube-rs expects, can be made
//! unavailable, and can answer a watch with `410 Gone`. Everything else is real: the
//! shipper's kube-rs watcher, its pod cache, and the record builder behind
//! `bitesize-shipper check` (the same builder the tailer uses).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitesize_fake_kube::{Availability, FakeKube};
use bitesize_shipper::config::{Config, KubernetesConfig};
use bitesize_shipper::kubernetes::{PodCache, PodWatcher};
use bitesize_shipper::line::parse_line;
use bitesize_shipper::metrics::Metrics;
use bitesize_shipper::record_builder::RecordBuilder;
use serde_json::{json, Value};

const CONTAINER_ID: &str = "3a38a5c2e1f44b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e";
const NODE: &str = "node-a";

fn pod(namespace: &str, name: &str, node: &str, uid: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace, "uid": uid,
            "labels": {"app": name, "tier": "web"},
            "annotations": {"team": "payments", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-rs"), "uid": "rs-1", "controller": true}]
        },
        "spec": {"nodeName": node, "containers": [
            {"name": "app", "image": format!("registry.example/{name}:1.2")},
            {"name": "sidecar", "image": "envoy:1"}
        ]}
    })
}

/// The kubeconfig a user would point `kubernetes.kubeconfig` at.
fn kubeconfig(dir: &Path, fake: &FakeKube) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n\
             current-context: fake\nusers:\n- name: nobody\n  user: {{}}\n",
            fake.url()
        ),
    )
    .unwrap();
    path
}

struct World {
    fake: FakeKube,
    dir: tempfile::TempDir,
    config: Config,
    cache: PodCache,
    metrics: Arc<Metrics>,
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl World {
    async fn start(grace_secs: u64) -> World {
        World::start_with(grace_secs, true).await
    }

    async fn start_with(grace_secs: u64, namespace_labels: bool) -> World {
        let fake = bitesize_fake_kube::start().await;
        fake.upsert(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"env": "prod"}}}));
        fake.upsert(pod("shop", "web-1", NODE, "uid-web-1"));
        fake.upsert(pod("shop", "elsewhere", "node-b", "uid-elsewhere"));
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            node_name: Some(NODE.into()),
            kubernetes: KubernetesConfig {
                enabled: true,
                kubeconfig: Some(kubeconfig(dir.path(), &fake)),
                annotations: vec!["team".into()],
                namespace_labels,
                deleted_pod_grace_secs: grace_secs,
                retry_max_ms: 500,
            },
            ..Config::default()
        };
        let metrics = Arc::new(Metrics::new());
        let watcher = PodWatcher::new(&config.kubernetes, Some(NODE.into()), metrics.clone())
            .await
            .unwrap();
        let cache = watcher.cache();
        let watch = tokio::spawn(watcher.run());
        assert!(
            cache.wait_synced(Duration::from_secs(10)).await,
            "first list"
        );
        World {
            fake,
            dir,
            config,
            cache,
            metrics,
            watch,
        }
    }

    /// The record `check` builds for one line of `pod`'s container `container`.
    fn record(&self, pod: &str, container: &str) -> Value {
        let path = self
            .dir
            .path()
            .join(format!("{pod}_shop_{container}-{CONTAINER_ID}.log"));
        std::fs::write(&path, "2026-11-25T10:00:00Z stdout F hello\n").unwrap();
        let mut out = Vec::new();
        let failures = bitesize_shipper::check::check(
            &self.config,
            Some(self.cache.clone()),
            &[path],
            &mut out,
        )
        .unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        serde_json::from_slice(&out).unwrap()
    }

    fn enriched(&self, pod: &str) -> bool {
        self.record(pod, "app")["kubernetes"]
            .get("pod_id")
            .is_some()
    }

    async fn wait_until(&self, what: &str, check: impl Fn(&World) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn metric(&self, name: &str) -> f64 {
        let text = self.metrics.encode();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(-1.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_uid_image_owner_and_opted_in_annotations_are_added() {
    let world = World::start(300).await;
    let record = world.record("web-1", "app");
    let k8s = &record["kubernetes"];
    assert_eq!(k8s["pod_id"], "uid-web-1");
    assert_eq!(k8s["pod_name"], "web-1");
    assert_eq!(k8s["namespace_name"], "shop");
    assert_eq!(k8s["container_name"], "app");
    assert_eq!(k8s["container_image"], "registry.example/web-1:1.2");
    assert_eq!(k8s["host"], NODE);
    assert_eq!(k8s["labels"], json!({"app": "web-1", "tier": "web"}));
    assert_eq!(
        k8s["annotations"],
        json!({"team": "payments"}),
        "only the listed one"
    );
    assert_eq!(
        k8s["owner"],
        json!({"kind": "ReplicaSet", "name": "web-1-rs"})
    );
    assert_eq!(k8s["namespace_labels"], json!({"env": "prod"}));
    assert!(k8s.get("metadata_unavailable").is_none());
    assert_eq!(record["docker"]["container_id"], CONTAINER_ID);
    // The image is the one of the file's container.
    assert_eq!(
        world.record("web-1", "sidecar")["kubernetes"]["container_image"],
        "envoy:1"
    );
    // Only this node's pods are watched (the watch's field selector).
    let other = world.record("elsewhere", "app");
    assert_eq!(other["kubernetes"]["metadata_unavailable"], true);
    assert!(other["kubernetes"].get("pod_id").is_none());
    let watches: Vec<String> = world
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/pods"))
        .filter_map(|r| r.param("fieldSelector"))
        .collect();
    assert!(
        !watches.is_empty() && watches.iter().all(|f| f == "spec.nodeName=node-a"),
        "{watches:?}"
    );
    // A pod that appears later is added by the watch.
    world.fake.upsert(pod("shop", "web-2", NODE, "uid-web-2"));
    world
        .wait_until("web-2 in the cache", |w| w.enriched("web-2"))
        .await;
    assert_eq!(world.metric("bitesize_shipper_kubernetes_api_up"), 1.0);
    // Cache hits and misses are counted by the builder the tailer uses.
    let builder = RecordBuilder::new(&world.config, world.metrics.clone())
        .unwrap()
        .with_pods(world.cache.clone());
    for pod in ["web-1", "web-2", "elsewhere"] {
        let path = format!("/logs/{pod}_shop_app-{CONTAINER_ID}.log");
        let source = builder.source(Path::new(&path)).unwrap();
        builder.build(&source, parse_line(b"2026-11-25T10:00:00Z stdout F x"));
    }
    assert_eq!(world.metric("bitesize_shipper_pod_cache_hits_total"), 2.0);
    assert_eq!(world.metric("bitesize_shipper_pod_cache_misses_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_pods_keep_their_metadata_for_the_grace_period() {
    let world = World::start(3).await;
    assert!(world.enriched("web-1"));
    world.fake.remove("pods", Some("shop"), "web-1");
    let deleted_at = Instant::now();
    // Its last lines still get metadata...
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(world.enriched("web-1"), "within the grace period");
    // ...until the grace period is over.
    world
        .wait_until("grace over", |w| !w.enriched("web-1"))
        .await;
    let after = deleted_at.elapsed();
    assert!(after >= Duration::from_secs(3), "dropped after {after:?}");
    assert_eq!(
        world.record("web-1", "app")["kubernetes"]["metadata_unavailable"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_down_then_back_lines_flow_marked_then_enrichment_resumes() {
    let world = World::start(300).await;
    world
        .fake
        .set_availability(Availability::ServiceUnavailable);
    world
        .wait_until("the watch to notice", |w| {
            w.metric("bitesize_shipper_kubernetes_api_up") == 0.0
        })
        .await;
    // Known pods keep their metadata; a pod created meanwhile is shipped marked.
    assert!(world.enriched("web-1"));
    world.fake.upsert(pod("shop", "web-3", NODE, "uid-web-3"));
    let record = world.record("web-3", "app");
    assert_eq!(record["kubernetes"]["metadata_unavailable"], true);
    assert_eq!(
        record["kubernetes"]["pod_name"], "web-3",
        "file-name metadata"
    );
    assert_eq!(record["log"], "hello");
    // Still down a while: the builder never waits for the API.
    let started = Instant::now();
    world.record("web-3", "app");
    assert!(started.elapsed() < Duration::from_secs(1));

    world.fake.set_availability(Availability::Up);
    world
        .wait_until("enrichment resumes", |w| w.enriched("web-3"))
        .await;
    assert_eq!(world.metric("bitesize_shipper_kubernetes_api_up"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_restarts_with_a_new_list_after_410_gone() {
    // No namespace watch: the 410 is for the pod watch.
    let world = World::start_with(1, false).await;
    world.fake.take_requests();
    // The next watch request is answered 410 Gone; end the open one so it is made now.
    world.fake.expire_next_watch();
    world.fake.set_availability(Availability::CloseConnections);
    world
        .wait_until("the watch to end", |w| {
            w.metric("bitesize_shipper_kubernetes_api_up") == 0.0
        })
        .await;
    // Changes while no watch is open: one pod added, one deleted.
    world.fake.upsert(pod("shop", "web-4", NODE, "uid-web-4"));
    world.fake.remove("pods", Some("shop"), "web-1");
    world.fake.set_availability(Availability::Up);
    world
        .wait_until("web-4 from the new list", |w| w.enriched("web-4"))
        .await;
    // web-1 was not in the new list: deleted, and gone after its grace period.
    world
        .wait_until("web-1 gone", |w| !w.enriched("web-1"))
        .await;
    let requests = world.fake.requests();
    let pod_requests: Vec<String> = requests
        .iter()
        .filter(|r| r.path.ends_with("/pods"))
        .map(|r| r.query.clone())
        .collect();
    let expired_watch = pod_requests.iter().position(|q| q.contains("watch=true"));
    let list_after = expired_watch.and_then(|i| {
        pod_requests[i + 1..]
            .iter()
            .position(|q| !q.contains("watch=true"))
    });
    let all: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert!(
        list_after.is_some(),
        "a watch, then a fresh list after the 410: {all:#?}"
    );
}
