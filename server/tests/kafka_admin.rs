//! Kafka governance against the real broker: the namespace registry creates, changes and
//! deletes topics (checked in Kafka itself), adopts existing topics and flags missing ones;
//! lag figures match what was produced and indexed; owners change only their retention;
//! the ACL plan and its apply; TLS/SASL configuration errors name their key, and SASL/SCRAM
//! logs in to a broker that requires it (its own nisshi, `--authentication`); TLS reaches a
//! broker that only speaks TLS (its own nisshi, `--cert`) and a wrong CA fails in bounded time.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{cli, kafka_bootstrap, own_broker, sasl_broker, unique, Server};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap()
}

/// Partitions and retention of `topic` as Kafka itself reports them (`None`: no topic).
async fn in_kafka(topic: &str) -> Option<(usize, Option<String>, Option<String>)> {
    let admin = admin();
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())?
        .partitions()
        .len();
    let configs = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = configs[0].as_ref().unwrap();
    let value = |key: &str| resource.get(key).and_then(|e| e.value.clone());
    Some((partitions, value("retention.ms"), value("retention.bytes")))
}

async fn wait_gone(topic: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if in_kafka(topic).await.is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn start(prefix: &str, settings: &[(String, String)]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_settings(
        &dir.path().join("data"),
        &format!("^logs\\.{prefix}.*"),
        None,
        settings,
    );
    (dir, server)
}

/// A token for `user` with `role` over `namespaces`, made on the command line.
fn token_for(server: &Server, user: &str, role: &str, namespaces: &str) -> String {
    cli(&server.env, &["user", "add", user], None);
    let out = cli(
        &server.env,
        &[
            "token",
            "create",
            "--subject",
            user,
            "--role",
            role,
            "--namespaces",
            namespaces,
        ],
        None,
    );
    out.lines().last().unwrap().to_owned()
}

async fn audit_actions(server: &Server, namespace: &str) -> Vec<String> {
    let (status, body) = server
        .get_json(&format!("/api/v1/audit?namespace={namespace}&limit=1000"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_creates_changes_and_deletes_topics_in_kafka() {
    let prefix = format!("k6a{}", unique());
    let (_dir, server) = start(&prefix, &[]);
    let token = server.admin_token.clone();
    let name = format!("{prefix}-shop");
    let topic = format!("logs.{name}");
    let post = reqwest::Method::POST;

    let (status, body) = send(
        &server,
        post.clone(),
        "/api/v1/admin/namespaces",
        &token,
        Some(json!({"name": name, "partitions": 2, "retention_ms": 3_600_000, "owner_group": "shop-team"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["topic"], topic);
    assert_eq!(body["kafka"]["partitions"], 2);
    assert_eq!(body["topic_missing"], false);
    let (partitions, ms, bytes) = in_kafka(&topic).await.expect("the topic exists in Kafka");
    assert_eq!(partitions, 2);
    assert_eq!(ms.as_deref(), Some("3600000"));
    assert_eq!(bytes.as_deref(), Some("-1"), "the configured default");

    // A second create, and bad input: 400 with the reason.
    let (status, body) = send(
        &server,
        post.clone(),
        "/api/v1/admin/namespaces",
        &token,
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("already in the registry"),
        "{body}"
    );
    for (request, needle) in [
        (json!({"name": "Shop_X"}), "invalid namespace"),
        (
            json!({"name": format!("{prefix}-x"), "partitions": 0}),
            "partitions",
        ),
        (
            json!({"name": format!("{prefix}-x"), "retention_ms": 0}),
            "retention_ms",
        ),
        (
            json!({"name": format!("{prefix}-x"), "colour": "blue"}),
            "unknown field",
        ),
        (json!({"name": "other-prefix"}), "topic_pattern"),
    ] {
        let (status, body) = send(
            &server,
            post.clone(),
            "/api/v1/admin/namespaces",
            &token,
            Some(request.clone()),
        )
        .await;
        assert_eq!(status, 400, "{request}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(needle),
            "{request}: {body}"
        );
    }

    // Alter: retention and partitions reach Kafka; partitions only grow.
    let path = format!("/api/v1/admin/namespaces/{name}");
    let patch = reqwest::Method::PATCH;
    let (status, body) = send(
        &server,
        patch.clone(),
        &path,
        &token,
        Some(json!({"retention_ms": 7_200_000, "retention_bytes": 1_073_741_824})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retention_ms"], 7_200_000);
    let (partitions, ms, bytes) = in_kafka(&topic).await.unwrap();
    assert_eq!(
        (partitions, ms.as_deref(), bytes.as_deref()),
        (2, Some("7200000"), Some("1073741824"))
    );
    // Growing needs CreatePartitions, which not every broker has (the test broker does
    // not): either it grows in Kafka, or the answer says the broker cannot.
    let (status, body) = send(
        &server,
        patch.clone(),
        &path,
        &token,
        Some(json!({"partitions": 3})),
    )
    .await;
    let grown = if status == 200 {
        assert_eq!(body["partitions"], 3);
        3
    } else {
        assert_eq!(status, 400, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("does not support CreatePartitions"),
            "{body}"
        );
        2
    };
    assert_eq!(in_kafka(&topic).await.unwrap().0, grown);
    let (status, body) = send(
        &server,
        patch.clone(),
        &path,
        &token,
        Some(json!({"partitions": 1})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("partitions can only grow"),
        "{body}"
    );
    let (status, body) = send(
        &server,
        patch.clone(),
        &path,
        &token,
        Some(json!({"replication_factor": 3})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(in_kafka(&topic).await.unwrap().0, grown, "nothing changed");

    // Delete: the name typed again.
    let delete = reqwest::Method::DELETE;
    let (status, body) = send(
        &server,
        delete.clone(),
        &path,
        &token,
        Some(json!({"confirm": "shop"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("confirm"),
        "{body}"
    );
    assert!(in_kafka(&topic).await.is_some());
    let (status, _) = send(
        &server,
        delete.clone(),
        &path,
        &token,
        Some(json!({"confirm": name})),
    )
    .await;
    assert_eq!(status, 204);
    assert!(wait_gone(&topic).await, "the topic is deleted in Kafka");
    let (status, _) = server.get_json(&path).await;
    assert_eq!(status, 404);

    let actions = audit_actions(&server, &name).await;
    for action in ["namespace.create", "namespace.update", "namespace.delete"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} audited: {actions:?}"
        );
    }
    let (_, verify) = server.get_json("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_topics_are_discovered_adopted_and_missing_ones_flagged() {
    let prefix = format!("k6b{}", unique());
    let (_dir, server) = start(&prefix, &[]);
    let token = server.admin_token.clone();
    let name = format!("{prefix}-legacy");
    let topic = format!("logs.{name}");
    let created =
        admin()
            .create_topics(
                [&NewTopic::new(&topic, 2, TopicReplication::Fixed(1))
                    .set("retention.ms", "86400000")],
                &AdminOptions::new(),
            )
            .await
            .unwrap();
    assert!(created[0].is_ok(), "{created:?}");

    let (status, list) = server.get_json("/api/v1/admin/namespaces").await;
    assert_eq!(status, 200, "{list}");
    let found = list["discovered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["topic"] == topic)
        .cloned();
    let found = found.unwrap_or_else(|| panic!("{topic} discovered: {list}"));
    assert_eq!(found["namespace"], name);
    assert_eq!(found["adoptable"], true);
    assert_eq!(found["partitions"], 2);

    // Creating over it is refused with the way out; adopting takes it as it is.
    let post = reqwest::Method::POST;
    let (status, body) = send(
        &server,
        post.clone(),
        "/api/v1/admin/namespaces",
        &token,
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("adopt"), "{body}");
    let (status, body) = send(
        &server,
        post.clone(),
        "/api/v1/admin/namespaces",
        &token,
        Some(json!({"name": name, "adopt": true, "retention_ms": 5})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(
        &server,
        post.clone(),
        "/api/v1/admin/namespaces",
        &token,
        Some(json!({"name": name, "adopt": true, "archive": true})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["partitions"], 2);
    assert_eq!(body["retention_ms"], 86_400_000);
    assert_eq!(body["archive"], true);
    let (status, body) = send(
        &server,
        post.clone(),
        "/api/v1/admin/namespaces",
        &token,
        Some(json!({"name": format!("{prefix}-nothing"), "adopt": true})),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let (_, list) = server.get_json("/api/v1/admin/namespaces").await;
    assert!(
        !list["discovered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["topic"] == topic),
        "{list}"
    );
    let entry = list["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
        .unwrap();
    assert_eq!(entry["topic_missing"], false);

    // The topic disappears behind the registry's back: the entry is flagged.
    admin()
        .delete_topics(&[topic.as_str()], &AdminOptions::new())
        .await
        .unwrap();
    assert!(wait_gone(&topic).await);
    let (_, list) = server.get_json("/api/v1/admin/namespaces").await;
    let entry = list["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
        .unwrap();
    assert_eq!(entry["topic_missing"], true, "{entry}");
    assert!(entry.get("lag").is_none());
    let metrics = server.get_text("/metrics").await.1;
    assert!(
        metrics.contains(&format!(
            "bitesize_kafka_topic_missing{{namespace=\"{name}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(audit_actions(&server, &name)
        .await
        .iter()
        .any(|a| a == "namespace.adopt"));
}

async fn produce(topic: &str, count: usize, tag: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    for i in 0..count {
        let payload = json!({"stream": "stdout", "log": format!("{tag} {i}"), "kubernetes": {"pod_name": "p", "container_name": "c"}}).to_string();
        let key = i.to_string();
        producer
            .send(
                FutureRecord::to(topic).payload(&payload).key(&key),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

fn lag_of(list: &Value, name: &str) -> Value {
    list["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()["lag"]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_figures_match_what_was_produced_and_indexed() {
    // Indexing (and so searching) is committed only every 10 minutes here: whatever is
    // produced stays lag.
    let prefix = format!("k6c{}", unique());
    let slow = [(
        "BITESIZE_INGEST__COMMIT_INTERVAL_MS".to_owned(),
        "600000".to_owned(),
    )];
    let (_dir, server) = start(&prefix, &slow);
    let name = format!("{prefix}-lagging");
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/admin/namespaces",
        &server.admin_token,
        Some(json!({"name": name, "partitions": 3})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    produce(&format!("logs.{name}"), 40, "slow").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, list) = server.get_json("/api/v1/admin/namespaces").await;
    let lag = lag_of(&list, &name);
    let ends: i64 = lag["end_offsets"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(ends, 40, "{lag}");
    assert_eq!(lag["records"], 40, "{lag}");
    assert_eq!(lag["lag_records"], 40, "{lag}");
    let seconds = lag["lag_seconds"].as_f64().unwrap();
    assert!(seconds > 0.5 && seconds < 120.0, "{lag}");
    let metrics = server.get_text("/metrics").await.1;
    assert!(
        metrics.contains(&format!(
            "bitesize_kafka_lag_records{{namespace=\"{name}\"}} 40"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "bitesize_kafka_partitions{{namespace=\"{name}\"}} 3"
        )),
        "{metrics}"
    );

    // A server that indexes as usual: once the records are searchable, no lag.
    let prefix = format!("k6d{}", unique());
    let (_dir2, server) = start(&prefix, &[]);
    let name = format!("{prefix}-fresh");
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/admin/namespaces",
        &server.admin_token,
        Some(json!({"name": name, "partitions": 2})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    produce(&format!("logs.{name}"), 30, "fresh").await;
    assert_eq!(
        server.wait_total(&name, 30, Duration::from_secs(60)).await,
        30
    );
    let (_, list) = server.get_json("/api/v1/admin/namespaces").await;
    let lag = lag_of(&list, &name);
    assert_eq!(lag["records"], 30, "{lag}");
    assert_eq!(lag["lag_records"], 0, "{lag}");
    assert_eq!(lag["lag_seconds"], 0.0, "{lag}");
    produce(&format!("logs.{name}"), 10, "more").await;
    assert_eq!(
        server.wait_total(&name, 40, Duration::from_secs(60)).await,
        40
    );
    let (_, list) = server.get_json("/api/v1/admin/namespaces").await;
    let lag = lag_of(&list, &name);
    assert_eq!(
        (lag["records"].as_i64(), lag["lag_records"].as_i64()),
        (Some(40), Some(0)),
        "{lag}"
    );
    assert!(
        lag["rate_per_second"].as_f64().is_some(),
        "a second look measures the rate: {lag}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_change_only_their_retention_within_bounds() {
    let prefix = format!("k6e{}", unique());
    let (_dir, server) = start(&prefix, &[]);
    let name = format!("{prefix}-team");
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/admin/namespaces",
        &server.admin_token,
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let owner = token_for(&server, "olivia", "owner", &name);
    let viewer = token_for(&server, "victor", "viewer", &name);
    let path = format!("/api/v1/admin/namespaces/{name}");
    let patch = reqwest::Method::PATCH;

    let (status, body) = send(
        &server,
        patch.clone(),
        &path,
        &owner,
        Some(json!({"retention_ms": 2 * 86_400_000, "retention_days": 14})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        in_kafka(&format!("logs.{name}"))
            .await
            .unwrap()
            .1
            .as_deref(),
        Some("172800000")
    );
    assert_eq!(body["retention_days"], 14);
    for (request, needle) in [
        (
            json!({"retention_ms": 365_i64 * 86_400_000}),
            "owner_max_retention_ms",
        ),
        (json!({"retention_ms": 1000}), "owner_min_retention_ms"),
        (json!({"partitions": 6}), "only retention"),
        (json!({"owner_group": "mine"}), "only retention"),
    ] {
        let (status, body) =
            send(&server, patch.clone(), &path, &owner, Some(request.clone())).await;
        assert_eq!(status, 403, "{request}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(needle),
            "{request}: {body}"
        );
    }
    let (status, _) = send(
        &server,
        patch.clone(),
        &path,
        &viewer,
        Some(json!({"retention_ms": 2 * 86_400_000})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = server.get_json_as(&path, Some(&owner)).await;
    assert_eq!(status, 200, "owners see their entry");
    let (status, _) = server.get_json_as(&path, Some(&viewer)).await;
    assert_eq!(status, 403);
    let (status, _) = server
        .get_json_as("/api/v1/admin/namespaces", Some(&owner))
        .await;
    assert_eq!(status, 403, "the list is for admins");
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        &path,
        &owner,
        Some(json!({"confirm": name})),
    )
    .await;
    assert_eq!(status, 403);
    let (_, events) = server
        .get_json(&format!(
            "/api/v1/audit?namespace={name}&action=namespace.update"
        ))
        .await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "olivia"),
        "{events}"
    );
}

fn bitesize(env: &HashMap<String, String>, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bitesize"))
        .args(args)
        .envs(env)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn acl_plan_is_shown_and_applied_through_create_acls() {
    let prefix = format!("k6f{}", unique());
    let (_dir, server) = start(&prefix, &[]);
    let name = format!("{prefix}-shop");
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/admin/namespaces",
        &server.admin_token,
        Some(json!({"name": name, "owner_group": "shop-team"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, plan) = server.get_json("/api/v1/admin/kafka/acls").await;
    assert_eq!(status, 200, "{plan}");
    let has = |principal: &str, resource: &str, op: &str| {
        plan["acls"].as_array().unwrap().iter().any(|a| {
            a["principal"] == principal && a["resource_name"] == resource && a["operation"] == op
        })
    };
    assert!(has("User:bitesize-shipper", "logs.", "WRITE"), "{plan}");
    assert!(has("User:bitesize-server", "logs.", "READ"), "{plan}");
    assert!(
        has("User:shop-team", &format!("logs.{name}"), "READ"),
        "{plan}"
    );
    let commands = plan["commands"].as_array().unwrap();
    assert_eq!(commands.len(), plan["acls"].as_array().unwrap().len());

    let (ok, stdout, _) = bitesize(&server.env, &["kafka", "acls"]);
    assert!(ok);
    assert!(
        stdout.contains("kafka-acls --bootstrap-server")
            && stdout.contains(&format!("logs.{name}")),
        "{stdout}"
    );
    // Apply goes through CreateAcls: a broker with an authorizer takes every ACL; one
    // without (the test broker) refuses, and the command says so and fails.
    let (ok, stdout, stderr) = bitesize(&server.env, &["kafka", "acls", "--apply"]);
    assert!(
        stdout.contains("kafka-acls"),
        "the plan is shown either way"
    );
    if ok {
        let count = plan["acls"].as_array().unwrap().len();
        assert!(
            stderr.contains(&format!("applied {count} ACLs")),
            "{stderr}"
        );
    } else {
        assert!(
            stderr.contains("refused every ACL") && stderr.contains("authorizer"),
            "{stderr}"
        );
    }
}

#[test]
fn tls_and_sasl_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = HashMap::from([
        (
            "BITESIZE_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        ("BITESIZE_KAFKA__BROKERS".to_owned(), kafka_bootstrap()),
    ]);
    let with = |pairs: &[(&str, &str)]| {
        let mut env = base.clone();
        env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let missing_ca = dir.path().join("no-ca.pem").display().to_string();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "kafka-secret-value\n").unwrap();
    let password_file = password_file.display().to_string();
    for (env, needle) in [
        (
            with(&[
                ("BITESIZE_KAFKA__SASL__MECHANISM", "GSSAPI"),
                ("BITESIZE_KAFKA__SASL__USERNAME", "u"),
                ("BITESIZE_KAFKA__SASL__PASSWORD", "pw"),
            ]),
            "kafka.sasl.mechanism",
        ),
        (
            with(&[
                ("BITESIZE_KAFKA__SASL__MECHANISM", "PLAIN"),
                ("BITESIZE_KAFKA__SASL__USERNAME", "u"),
            ]),
            "kafka.sasl.password",
        ),
        (
            with(&[
                ("BITESIZE_KAFKA__SASL__MECHANISM", "SCRAM-SHA-256"),
                ("BITESIZE_KAFKA__SASL__USERNAME", "u"),
                ("BITESIZE_KAFKA__SASL__PASSWORD_FILE", "/nonexistent/pw"),
            ]),
            "kafka.sasl.password_file",
        ),
        (
            with(&[("BITESIZE_KAFKA__TLS__CA_FILE", &missing_ca)]),
            "kafka.tls.ca_file",
        ),
        (
            with(&[("BITESIZE_KAFKA__TLS__CERT_FILE", &password_file)]),
            "kafka.tls.key_file",
        ),
        (with(&[("BITESIZE_KAFKA__TLS__CA_FILEZ", "x")]), "ca_filez"),
    ] {
        let (ok, _, stderr) = bitesize(&env, &["migrate"]);
        assert!(!ok, "{needle}: should fail");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    // A good SASL setting loads, and the password never shows.
    let env = with(&[
        ("BITESIZE_KAFKA__SASL__MECHANISM", "SCRAM-SHA-512"),
        ("BITESIZE_KAFKA__SASL__USERNAME", "u"),
        ("BITESIZE_KAFKA__SASL__PASSWORD_FILE", &password_file),
        ("BITESIZE_LOG", "debug"),
    ]);
    let (ok, stdout, stderr) = bitesize(&env, &["migrate"]);
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("kafka-secret-value") && !stderr.contains("kafka-secret-value"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_scram_reaches_a_broker_that_requires_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = sasl_broker(dir.path(), "bitesize", "sasl-test-password");

    let password_file = dir.path().join("kafka-password");
    std::fs::write(&password_file, "sasl-test-password\n").unwrap();
    let prefix = format!("k6g{}", unique());
    let settings = [
        ("BITESIZE_KAFKA__BROKERS", format!("127.0.0.1:{port}")),
        (
            "BITESIZE_KAFKA__SASL__MECHANISM",
            "SCRAM-SHA-256".to_owned(),
        ),
        ("BITESIZE_KAFKA__SASL__USERNAME", "bitesize".to_owned()),
        (
            "BITESIZE_KAFKA__SASL__PASSWORD_FILE",
            password_file.display().to_string(),
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let (_data, server) = start(&prefix, &settings);
    let name = format!("{prefix}-secure");
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/admin/namespaces",
        &server.admin_token,
        Some(json!({"name": name, "partitions": 1})),
    )
    .await;
    assert_eq!(status, 201, "the admin client logs in: {body}");
    let (status, body) = server
        .get_text(&format!(
            "/api/v1/namespaces/{name}/stream?from=earliest&follow=false"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("caught_up"),
        "the stream reader logs in: {body}"
    );
    let (_, list) = server.get_json("/api/v1/admin/namespaces").await;
    assert_eq!(lag_of(&list, &name)["records"], 0, "{list}");

    // With a wrong password nothing gets through.
    std::fs::write(&password_file, "not-the-password\n").unwrap();
    let (ok, _, stderr) = bitesize(&server.env, &["kafka", "acls", "--apply"]);
    assert!(!ok);
    assert!(
        !stderr.contains("refused every ACL"),
        "the broker never answered: {stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}

/// Runs the `openssl` command line in `dir`; panics with its output when it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command line (needed to make test certificates)");
    assert!(output.status.success(), "openssl {args:?}: {output:?}");
}

/// A self-signed CA `{name}.pem` / `{name}.key` in `dir`.
fn test_ca(dir: &std::path::Path, name: &str) {
    let (cert, key, subject) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("/CN=Bitesize test {name}"),
    );
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", &key, "-out",
            &cert, "-subj", &subject,
        ],
    );
}

/// A certificate `{name}.pem` signed by the CA `ca`, for `usage` (serverAuth or
/// clientAuth), with its key `{name}.key`, encrypted with `password` when given.
fn test_cert(dir: &std::path::Path, ca: &str, name: &str, usage: &str, password: Option<&str>) {
    let (cert, key, csr, ext) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    let mut genkey = vec!["genpkey", "-algorithm", "RSA", "-out", &key];
    let pass = password.map(|p| format!("pass:{p}"));
    if let Some(pass) = &pass {
        genkey.extend(["-aes256", "-pass", pass]);
    }
    openssl(dir, &genkey);
    let subject = format!("/CN={name}");
    let mut request = vec!["req", "-new", "-key", &key, "-out", &csr, "-subj", &subject];
    if let Some(pass) = &pass {
        request.extend(["-passin", pass]);
    }
    openssl(dir, &request);
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
        ),
    )
    .unwrap();
    let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &cert,
            "-extfile",
            &ext,
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_reaches_a_broker_that_requires_it_and_a_wrong_ca_fails_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path();
    test_ca(certs, "ca");
    test_ca(certs, "other-ca");
    test_cert(certs, "ca", "server", "serverAuth", None);
    // A client certificate with an encrypted key: the server must unlock it with
    // kafka.tls.key_password to make its clients at all.
    test_cert(
        certs,
        "ca",
        "client",
        "clientAuth",
        Some("tls-key-password"),
    );
    let port = common::free_port();
    let _broker = own_broker(
        certs,
        port,
        &["--cert", "server.pem", "--key", "server.key"],
    );
    let file = |name: &str| certs.join(name).display().to_string();

    let prefix = format!("k6t{}", unique());
    let settings = [
        ("BITESIZE_KAFKA__BROKERS", format!("127.0.0.1:{port}")),
        ("BITESIZE_KAFKA__TLS__CA_FILE", file("ca.pem")),
        ("BITESIZE_KAFKA__TLS__CERT_FILE", file("client.pem")),
        ("BITESIZE_KAFKA__TLS__KEY_FILE", file("client.key")),
        (
            "BITESIZE_KAFKA__TLS__KEY_PASSWORD",
            "tls-key-password".to_owned(),
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let (_data, server) = start(&prefix, &settings);
    let name = format!("{prefix}-tls");
    let topic = format!("logs.{name}");
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/admin/namespaces",
        &server.admin_token,
        Some(json!({"name": name, "partitions": 1})),
    )
    .await;
    assert_eq!(status, 201, "the admin client speaks TLS: {body}");

    // Records produced over TLS (trusting only the test CA) are streamed back, indexed
    // and counted in the lag figures: every Kafka client of the server speaks TLS.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", file("ca.pem"))
        .create()
        .unwrap();
    for i in 0..5 {
        let payload = json!({"stream": "stdout", "log": format!("over-tls {i}"), "kubernetes": {"pod_name": "p", "container_name": "c"}}).to_string();
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let (status, body) = server
        .get_text(&format!(
            "/api/v1/namespaces/{name}/stream?from=earliest&follow=false"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("over-tls 0") && body.contains("over-tls 4") && body.contains("caught_up"),
        "the stream reader speaks TLS: {body}"
    );
    assert_eq!(
        server.wait_total(&name, 5, Duration::from_secs(60)).await,
        5,
        "the ingest consumer speaks TLS"
    );
    let (_, list) = server.get_json("/api/v1/admin/namespaces").await;
    assert_eq!(lag_of(&list, &name)["records"], 5, "{list}");

    drop(server);

    // A server trusting another CA refuses the broker's certificate: creating a topic and
    // streaming end with an error within the Kafka timeout, not a hang.
    let mut wrong = settings.to_vec();
    wrong.retain(|(k, _)| !k.starts_with("BITESIZE_KAFKA__TLS__"));
    wrong.push((
        "BITESIZE_KAFKA__TLS__CA_FILE".to_owned(),
        file("other-ca.pem"),
    ));
    let (_data, server) = start(&prefix, &wrong);
    let refused = format!("{prefix}-refused");
    let started = Instant::now();
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/admin/namespaces",
        &server.admin_token,
        Some(json!({"name": refused, "partitions": 1})),
    )
    .await;
    let took = started.elapsed();
    assert!(status >= 500, "{status}: {body}");
    assert!(took < Duration::from_secs(45), "took {took:?}: {body}");
    eprintln!("wrong CA, create: {status} after {took:?}: {body}");
    let started = Instant::now();
    let (status, body) = server
        .get_text(&format!(
            "/api/v1/namespaces/{name}/stream?from=earliest&follow=false"
        ))
        .await;
    let took = started.elapsed();
    assert!(!body.contains("over-tls"), "{status}: {body}");
    assert!(took < Duration::from_secs(45), "took {took:?}: {body}");
    eprintln!("wrong CA, stream: {status} after {took:?}: {body}");
    // The server log says why: the broker's certificate, and the setting to check.
    let log = std::fs::read_to_string(_data.path().join("data.server.log")).unwrap();
    assert!(
        log.contains("certificate verify failed") && log.contains("ssl.ca.location"),
        "{log}"
    );
    eprintln!(
        "wrong CA, server log: {} lines, {} naming the certificate",
        log.lines().count(),
        log.matches("certificate verify failed").count()
    );

    // Trusting only the system's CAs, the command line fails the same way.
    let mut env = server.env.clone();
    env.remove("BITESIZE_KAFKA__TLS__CA_FILE");
    env.insert("BITESIZE_KAFKA__TLS__VERIFY_HOSTNAME".into(), "true".into());
    let started = Instant::now();
    let (ok, stdout, stderr) = bitesize(&env, &["kafka", "acls", "--apply"]);
    let took = started.elapsed();
    assert!(!ok, "{stdout}{stderr}");
    assert!(took < Duration::from_secs(45), "took {took:?}: {stderr}");
    assert!(
        !stderr.contains("refused every ACL") && !stderr.contains("applied"),
        "the broker never answered: {stderr}"
    );
    eprintln!("system CAs, acls --apply: failed after {took:?}: {stderr}");

    // A wrong key password stops the Kafka clients from being made, and is never shown.
    let mut env = server.env.clone();
    env.insert("BITESIZE_KAFKA__TLS__CERT_FILE".into(), file("client.pem"));
    env.insert("BITESIZE_KAFKA__TLS__KEY_FILE".into(), file("client.key"));
    env.insert("BITESIZE_KAFKA__TLS__KEY_PASSWORD".into(), "not-it".into());
    let (ok, _, stderr) = bitesize(&env, &["kafka", "acls", "--apply"]);
    assert!(!ok);
    assert!(stderr.contains("ssl.key.location"), "{stderr}");
    assert!(!stderr.contains("not-it"), "{stderr}");
}
