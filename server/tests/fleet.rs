//! The fleet manager against a FAKE Kubernetes API server (`bitesize-fake-kube`): no real
//! apiserver can run in the test environment, so this in-process fake stands in for it
//! (list/watch/get/server-side-apply/delete, JSON only). Everything else is real: the
//! database (SQLite, and PostgreSQL through the server process), a real shipper process
//! whose `/metrics` the status scrapes, the `bitesize serve` process for the API test.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitesize_fake_kube::{start, Availability, FakeKube, RecordedRequest};
use bitesize_server::config::{Config, LocalShipper};
use bitesize_server::fleet::render::NAME;
use bitesize_server::fleet::settings::FleetSettingsUpdate;
use bitesize_server::fleet::Fleet;
use common::{cri, kafka_bootstrap, unique, LogDir};
use serde_json::{json, Value};

const NS: &str = "bitesize-system";

/// A kubeconfig with one context per fake (plain HTTP, no credentials).
fn kubeconfig(dir: &Path, fakes: &[(&str, &FakeKube)]) -> std::path::PathBuf {
    let mut text = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
    for (name, fake) in fakes {
        text += &format!("- name: {name}\n  cluster:\n    server: {}\n", fake.url());
    }
    text += "contexts:\n";
    for (name, _) in fakes {
        text += &format!("- name: {name}\n  context:\n    cluster: {name}\n    user: nobody\n");
    }
    text += &format!(
        "users:\n- name: nobody\n  user: {{}}\ncurrent-context: {}\n",
        fakes[0].0
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

struct Setup {
    _dir: tempfile::TempDir,
    fakes: Vec<FakeKube>,
    fleet: Arc<Fleet>,
}

async fn setup(clusters: &[&str], tweak: impl FnOnce(&mut Config)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut fakes = Vec::new();
    for _ in clusters {
        fakes.push(start().await);
    }
    let named: Vec<(&str, &FakeKube)> = clusters.iter().copied().zip(fakes.iter()).collect();
    let mut config = Config::default();
    config.kafka.brokers = "kafka.example:9092".into();
    config.fleet.contexts = clusters.iter().map(|c| c.to_string()).collect();
    config.fleet.kubeconfig = Some(kubeconfig(dir.path(), &named));
    config.fleet.namespace = NS.into();
    tweak(&mut config);
    let db = bitesize_server::db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("fleet.db").display()
    ))
    .await
    .unwrap();
    let fleet = Arc::new(Fleet::new(&config, db).await);
    Setup {
        _dir: dir,
        fakes,
        fleet,
    }
}

/// The stored object without what the API server adds.
fn without_server_fields(mut object: Value) -> Value {
    let meta = object["metadata"].as_object_mut().unwrap();
    for field in [
        "resourceVersion",
        "uid",
        "generation",
        "creationTimestamp",
        "managedFields",
    ] {
        meta.remove(field);
    }
    object
}

fn writes(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn labels() -> Value {
    json!({
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/component": "shipper",
        "app.kubernetes.io/part-of": "bitesize",
        "app.kubernetes.io/managed-by": "bitesize",
    })
}

#[tokio::test]
async fn applied_objects_equal_the_expected_manifests_in_every_cluster() {
    let s = setup(&["east", "west"], |_| {}).await;
    s.fleet.reconcile().await.unwrap();
    let manifests = s.fleet.manifests().await.unwrap();
    let expected_config = "# Shipper config (managed by the Bitesize server; edit it there).\ntopic_template: \"logs.{namespace}\"\nkafka:\n  brokers: \"kafka.example:9092\"\n";
    for fake in &s.fakes {
        // Written out by hand: what the cluster must hold.
        let get = |plural: &str, namespaced: bool| {
            let object = fake
                .get(plural, namespaced.then_some(NS), NAME)
                .unwrap_or_else(|| panic!("{plural} applied"));
            without_server_fields(object)
        };
        assert_eq!(
            get("serviceaccounts", true),
            json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": NAME, "namespace": NS, "labels": labels() } })
        );
        assert_eq!(
            get("clusterroles", false),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": { "name": NAME, "labels": labels() },
                "rules": [{ "apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"] }],
            })
        );
        assert_eq!(
            get("clusterrolebindings", false),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": { "name": NAME, "labels": labels() },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME },
                "subjects": [{ "kind": "ServiceAccount", "name": NAME, "namespace": NS }],
            })
        );
        assert_eq!(
            get("configmaps", true),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": NAME, "namespace": NS, "labels": labels(), "annotations": { "bitesize.io/config-version": "1" } },
                "data": { "shipper.yaml": expected_config, "config-version": "1" },
            })
        );
        let ds = get("daemonsets", true);
        assert_eq!(ds, manifests.daemon_set);
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["image"],
            format!(
                "ghcr.io/bitesize/bitesize-shipper:{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(pod["serviceAccountName"], NAME);
        assert_eq!(
            ds["spec"]["selector"]["matchLabels"],
            json!({ "app.kubernetes.io/name": NAME })
        );
        assert_eq!(
            ds["spec"]["template"]["metadata"]["annotations"]["bitesize.io/config-version"],
            "1"
        );

        // Five server-side applies by the field manager `bitesize`, nothing else written.
        let requests = fake.take_requests();
        let applies: Vec<&RecordedRequest> = requests.iter().filter(|r| r.is_write()).collect();
        assert_eq!(applies.len(), 5, "{:?}", writes(&requests));
        for apply in applies {
            assert!(apply.is_apply(), "{apply:?}");
            assert_eq!(
                apply.content_type.as_deref(),
                Some("application/apply-patch+yaml")
            );
            assert_eq!(apply.param("fieldManager").as_deref(), Some("bitesize"));
            assert_eq!(apply.param("force").as_deref(), Some("true"));
        }
    }
    // In agreement: nothing to do the second time.
    s.fleet.reconcile().await.unwrap();
    for fake in &s.fakes {
        assert_eq!(writes(&fake.take_requests()), Vec::<String>::new());
    }
    let status = s.fleet.status().await.unwrap();
    assert!(status.enabled);
    let names: Vec<&str> = status.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["east", "west"]);
    assert!(status
        .clusters
        .iter()
        .all(|c| c.reachable && c.last_applied.is_empty()));
}

/// Decision: a config change patches only the ConfigMap (new data and a new
/// `bitesize.io/config-version` on it); the pod template keeps the config version of the
/// last rollout, so the shippers are not restarted — they reload the mounted file. A
/// change of image, version, resources or tolerations rolls out and records the config
/// version on the pod template.
#[tokio::test]
async fn a_config_change_patches_only_the_config_map() {
    let s = setup(&["one"], |_| {}).await;
    let fake = &s.fakes[0];
    s.fleet.reconcile().await.unwrap();
    let ds_before = fake.get("daemonsets", Some(NS), NAME).unwrap();
    fake.take_requests();

    let config =
        "topic_template: \"team.{namespace}\"\nkafka:\n  brokers: \"kafka.example:9092\"\n";
    let change = FleetSettingsUpdate {
        config: Some(config.into()),
        ..Default::default()
    };
    let (settings, changed) = s.fleet.update(change, "alice").await.unwrap();
    assert_eq!(changed.fields, ["config"]);
    assert_eq!(
        (settings.config_version, settings.template_config_version),
        (2, 1)
    );
    s.fleet.reconcile().await.unwrap();
    assert_eq!(
        writes(&fake.take_requests()),
        [format!("PATCH /api/v1/namespaces/{NS}/configmaps/{NAME}")]
    );
    let cm = fake.get("configmaps", Some(NS), NAME).unwrap();
    assert_eq!(cm["data"]["shipper.yaml"], config);
    assert_eq!(cm["data"]["config-version"], "2");
    assert_eq!(
        cm["metadata"]["annotations"]["bitesize.io/config-version"],
        "2"
    );
    assert_eq!(
        fake.get("daemonsets", Some(NS), NAME).unwrap(),
        ds_before,
        "no rollout"
    );

    // A bad config is refused, naming the key, and nothing changes.
    let bad = FleetSettingsUpdate {
        config: Some("kafka:\n  brokerz: x\n".into()),
        ..Default::default()
    };
    let error = s.fleet.update(bad, "alice").await.unwrap_err().to_string();
    assert!(error.contains("brokerz"), "{error}");
    assert_eq!(s.fleet.settings().await.unwrap().config, config);

    // A new version rolls out: only the DaemonSet, with the current config version on the
    // pod template.
    let change = FleetSettingsUpdate {
        version: Some("9.9.9".into()),
        ..Default::default()
    };
    s.fleet.update(change, "alice").await.unwrap();
    s.fleet.reconcile().await.unwrap();
    assert_eq!(
        writes(&fake.take_requests()),
        [format!(
            "PATCH /apis/apps/v1/namespaces/{NS}/daemonsets/{NAME}"
        )]
    );
    let ds = fake.get("daemonsets", Some(NS), NAME).unwrap();
    let template = &ds["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["bitesize.io/config-version"],
        "2"
    );
    assert_eq!(
        template["metadata"]["annotations"]["bitesize.io/shipper-version"],
        "9.9.9"
    );
    assert!(template["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .ends_with(":9.9.9"));
}

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn drift_is_repaired_on_schedule_and_changes_apply_at_once() {
    let s = setup(&["one"], |c| {
        c.fleet.reconcile_interval_secs = 1;
        c.fleet.status_interval_secs = 1;
    })
    .await;
    let fake = &s.fakes[0];
    let shutdown = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(s.fleet.clone().run(shutdown.clone()));
    eventually("first apply", Duration::from_secs(10), || {
        fake.get("daemonsets", Some(NS), NAME).is_some()
    })
    .await;
    let original = fake.get("daemonsets", Some(NS), NAME).unwrap();

    // Someone deletes the ConfigMap and the ClusterRole, and edits the DaemonSet: a
    // changed image, a label of their own.
    fake.remove("configmaps", Some(NS), NAME);
    fake.remove("clusterroles", None, NAME);
    let mut edited = original.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil/shipper:latest");
    edited["metadata"]["labels"]["team"] = json!("theirs");
    fake.upsert(edited);
    eventually("drift repaired", Duration::from_secs(10), || {
        let ds = fake.get("daemonsets", Some(NS), NAME).unwrap();
        fake.get("configmaps", Some(NS), NAME).is_some()
            && fake.get("clusterroles", None, NAME).is_some()
            && ds["spec"]["template"]["spec"]["containers"][0]["image"]
                == original["spec"]["template"]["spec"]["containers"][0]["image"]
    })
    .await;
    // Server-side apply leaves fields other managers own alone.
    let ds = fake.get("daemonsets", Some(NS), NAME).unwrap();
    assert_eq!(ds["metadata"]["labels"]["team"], "theirs");

    // A change is applied without waiting for the schedule.
    let change = FleetSettingsUpdate {
        tolerations: Some(
            json!([{ "key": "dedicated", "operator": "Exists", "effect": "NoSchedule" }]),
        ),
        ..Default::default()
    };
    s.fleet.update(change, "alice").await.unwrap();
    eventually("change applied", Duration::from_secs(5), || {
        fake.get("daemonsets", Some(NS), NAME).unwrap()["spec"]["template"]["spec"]["tolerations"]
            [0]["key"]
            == "dedicated"
    })
    .await;
    shutdown.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

/// A real shipper process serving `/metrics` on 127.0.0.1:`port`.
struct RealShipper {
    child: std::process::Child,
}

impl Drop for RealShipper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_shipper(root: &Path, port: u16) -> RealShipper {
    let logs = LogDir::new(root);
    let namespace = format!("fleet{}", unique());
    let file = logs.file("web-1", &namespace, "app");
    let lines: Vec<String> = (0..50)
        .map(|i| cri("stdout", "F", &format!("line {i}")))
        .collect();
    logs.append(&file, &lines);
    let config = root.join("shipper.yaml");
    std::fs::write(
        &config,
        format!(
            "include: [\"{}/*.log\"]\nlisten: 127.0.0.1:{port}\ncheckpoint_dir: {}\nnode_name: node-1\nkafka:\n  brokers: {}\n",
            logs.path.display(),
            root.join("checkpoints").display(),
            kafka_bootstrap()
        ),
    )
    .unwrap();
    let binary =
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_bitesize")).with_file_name("bitesize-shipper");
    assert!(
        binary.is_file(),
        "{} missing: cargo build -p bitesize-shipper",
        binary.display()
    );
    let log = std::fs::File::create(root.join("shipper.log")).unwrap();
    let child = std::process::Command::new(binary)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    RealShipper { child }
}

fn shipper_pod(
    name: &str,
    node: &str,
    ip: Option<&str>,
    phase: &str,
    ready: bool,
    restarts: i32,
) -> Value {
    let mut status = json!({
        "phase": phase,
        "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
        "containerStatuses": [{
            "name": "shipper", "ready": ready, "restartCount": restarts, "image": "img:1.0.0", "imageID": "",
        }],
    });
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": NS, "labels": labels(),
            "annotations": { "bitesize.io/config-version": "1", "bitesize.io/shipper-version": "1.0.0" },
        },
        "spec": { "nodeName": node, "containers": [{ "name": "shipper", "image": "ghcr.io/x/shipper:1.0.0" }] },
        "status": status,
    })
}

async fn wait_for_metrics(port: u16) {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status().is_success()
                && r.text()
                    .await
                    .unwrap()
                    .contains("bitesize_shipper_lines_read_total 50")
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the shipper did not read its 50 lines"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn status_aggregates_per_node_and_survives_the_api_going_down() {
    let root = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _shipper = start_shipper(root.path(), port);
    let s = setup(&["one"], |_| {}).await;
    let fake = &s.fakes[0];
    // The fleet's config names the port the shippers listen on: the status scrapes it.
    let config = format!(
        "listen: \"0.0.0.0:{port}\"\nkafka:\n  brokers: \"{}\"\n",
        kafka_bootstrap()
    );
    s.fleet
        .update(
            FleetSettingsUpdate {
                config: Some(config),
                ..Default::default()
            },
            "alice",
        )
        .await
        .unwrap();
    s.fleet.reconcile().await.unwrap();
    // Pods as the kubelet would report them (the fake has no kubelet).
    fake.upsert(shipper_pod(
        "bitesize-shipper-a",
        "node-1",
        Some("127.0.0.1"),
        "Running",
        true,
        2,
    ));
    // Nothing listens on 127.0.0.2: its metrics cannot be read.
    fake.upsert(shipper_pod(
        "bitesize-shipper-b",
        "node-2",
        Some("127.0.0.2"),
        "Running",
        true,
        0,
    ));
    fake.upsert(shipper_pod(
        "bitesize-shipper-c",
        "node-3",
        None,
        "Pending",
        false,
        0,
    ));
    // Not a shipper: ignored.
    let mut other = shipper_pod("web-0", "node-1", Some("127.0.0.1"), "Running", true, 7);
    other["metadata"]["labels"] = json!({ "app": "web" });
    fake.upsert(other);
    wait_for_metrics(port).await;

    s.fleet.refresh_status().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.fleet.refresh_status().await.unwrap();
    let status = s.fleet.status().await.unwrap();
    let cluster = &status.clusters[0];
    assert!(cluster.reachable, "{cluster:?}");
    assert_eq!(cluster.config_version_applied, Some(2));
    let nodes: Vec<(&str, &str, bool, i64)> = cluster
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.phase.as_str(), n.ready, n.restarts))
        .collect();
    assert_eq!(
        nodes,
        [
            ("node-1", "Running", true, 2),
            ("node-2", "Running", true, 0),
            ("node-3", "Pending", false, 0)
        ]
    );
    let n1 = &cluster.nodes[0];
    assert_eq!(n1.metrics_error, None);
    assert_eq!(n1.errors, Some(0));
    assert_eq!(
        n1.lines_per_second,
        Some(0.0),
        "all 50 lines were read before the first scrape"
    );
    assert_eq!(
        (n1.config_version, n1.config_version_source.as_deref()),
        (Some(1), Some("pod-template"))
    );
    assert_eq!(n1.shipper_version.as_deref(), Some("1.0.0"));
    assert!(n1.last_seen.is_some());
    assert!(cluster.nodes[1]
        .metrics_error
        .as_deref()
        .unwrap()
        .contains("127.0.0.2"));
    assert_eq!(
        cluster.nodes[2].metrics_error, None,
        "a pending pod is not scraped"
    );
    assert_eq!(
        (
            cluster.totals.nodes,
            cluster.totals.ready,
            cluster.totals.restarts
        ),
        (3, 2, 2)
    );

    // The API server goes away: the status says so and keeps the nodes as last seen.
    fake.set_availability(Availability::ServiceUnavailable);
    s.fleet.refresh_status().await.unwrap();
    s.fleet.reconcile().await.unwrap();
    let cluster = s.fleet.status().await.unwrap().clusters.remove(0);
    assert!(!cluster.reachable);
    assert!(
        cluster.error.as_deref().unwrap().contains("503")
            || cluster.error.as_deref().unwrap().contains("unavailable"),
        "{:?}",
        cluster.error
    );
    assert_eq!(cluster.nodes.len(), 3);
    fake.set_availability(Availability::CloseConnections);
    s.fleet.refresh_status().await.unwrap();
    s.fleet.reconcile().await.unwrap();
    assert!(!s.fleet.status().await.unwrap().clusters[0].reachable);
    fake.set_availability(Availability::Up);
    s.fleet.refresh_status().await.unwrap();
    let cluster = s.fleet.status().await.unwrap().clusters.remove(0);
    assert!(cluster.reachable && cluster.error.is_none(), "{cluster:?}");
}

#[tokio::test]
async fn without_a_cluster_the_fleet_is_off_or_the_local_shipper() {
    let dir = tempfile::tempdir().unwrap();
    let db = bitesize_server::db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("f.db").display()
    ))
    .await
    .unwrap();
    let fleet = Fleet::new(&Config::default(), db.clone()).await;
    fleet.refresh_status().await.unwrap();
    let status = fleet.status().await.unwrap();
    assert!(!status.enabled);
    assert!(status.clusters.is_empty());

    let root = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _shipper = start_shipper(root.path(), port);
    wait_for_metrics(port).await;
    let mut config = Config::default();
    config.fleet.local_shipper = Some(LocalShipper {
        node_name: "demo-node".into(),
        metrics_url: Some(format!("http://127.0.0.1:{port}/metrics")),
    });
    let fleet = Fleet::new(&config, db).await;
    fleet.refresh_status().await.unwrap();
    let status = fleet.status().await.unwrap();
    assert!(!status.enabled);
    let local = &status.clusters[0];
    assert_eq!(local.nodes.len(), 1);
    assert_eq!(
        (local.nodes[0].node.as_str(), local.nodes[0].ready),
        ("demo-node", true)
    );
}

/// Through the `bitesize serve` process: admin API, validation, audit.
#[tokio::test]
async fn the_admin_api_validates_audits_and_applies() {
    let fake = start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), &[("prod", &fake)]);
    let database = common::fresh_postgres_database().await;
    let settings = [
        ("BITESIZE_FLEET__CONTEXTS".to_owned(), "[prod]".to_owned()),
        (
            "BITESIZE_FLEET__KUBECONFIG".to_owned(),
            path.display().to_string(),
        ),
        ("BITESIZE_FLEET__NAMESPACE".to_owned(), NS.to_owned()),
        (
            "BITESIZE_FLEET__RECONCILE_INTERVAL_SECS".to_owned(),
            "60".to_owned(),
        ),
    ];
    let server = common::Server::start_with_settings(
        &dir.path().join("data"),
        &format!("^nothing{}$", unique()),
        Some(&database),
        &settings,
    );
    let client = reqwest::Client::new();
    let put = |body: Value| {
        client
            .put(server.url("/api/v1/admin/fleet/config"))
            .bearer_auth(&server.admin_token)
            .json(&body)
            .send()
    };
    let (code, config) = server.get_json("/api/v1/admin/fleet/config").await;
    assert_eq!(code, 200);
    assert_eq!(config["config_version"], 1);

    let response = put(json!({ "config": "kafka:\n  brokers: \"x:1\"\n  compresion: zstd\n" }))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("compresion"),
        "{body}"
    );
    let response = put(json!({ "resources": { "limits": { "memory": "lots" } } }))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("resources.limits.memory"),
        "{body}"
    );
    let response = put(json!({ "imag": "x" })).await.unwrap();
    assert_eq!(response.status(), 400);

    let new_config = "kafka:\n  brokers: \"kafka.internal:9093\"\n  properties:\n    sasl.password: \"s3cret\"\n";
    let response = put(json!({ "config": new_config })).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["config_version"], 2);
    assert_eq!(body["updated_by"], "admin");
    // Applied at once, not at the next scheduled check.
    let deadline = Instant::now() + Duration::from_secs(15);
    while fake
        .get("configmaps", Some(NS), NAME)
        .is_none_or(|cm| cm["data"]["shipper.yaml"] != new_config)
    {
        assert!(Instant::now() < deadline, "the ConfigMap was not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, status) = server.get_json("/api/v1/fleet").await;
    assert_eq!(code, 200);
    assert_eq!(status["enabled"], true);
    assert_eq!(status["clusters"][0]["name"], "prod");
    assert_eq!(status["desired"]["config_version"], 2);

    // Audited, without the config's secrets.
    let (code, audit) = server.get_json("/api/v1/audit?limit=1000").await;
    assert_eq!(code, 200);
    let text = audit.to_string();
    assert!(text.contains("fleet.config.update"), "{text}");
    assert!(!text.contains("s3cret"));
    // Anonymous callers and non-admins are refused.
    let (code, _) = server.get_json_as("/api/v1/fleet", None).await;
    assert_eq!(code, 401);
    common::cli(&server.env, &["user", "add", "aude"], None);
    common::cli(
        &server.env,
        &["binding", "add", "--user", "aude", "--role", "auditor"],
        None,
    );
    let out = common::cli(
        &server.env,
        &["token", "create", "--subject", "aude", "--role", "auditor"],
        None,
    );
    let auditor = out.lines().last().unwrap().to_owned();
    for path in ["/api/v1/fleet", "/api/v1/admin/fleet/config"] {
        let (code, _) = server.get_json_as(path, Some(&auditor)).await;
        assert_eq!(code, 403, "{path}");
    }
    let response = client
        .put(server.url("/api/v1/admin/fleet/config"))
        .bearer_auth(&auditor)
        .json(&json!({ "version": "6.6.6" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        server.get_json("/api/v1/admin/fleet/config").await.1["version"],
        env!("CARGO_PKG_VERSION")
    );
}
