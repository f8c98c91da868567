//! End to end, with real parts: CRI files → `bitesize-shipper` → the Kafka-protocol broker
//! → `bitesize serve` (ingest, Tantivy, SQLite or PostgreSQL) → the search API and page.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{cri, unique, LogDir, Server, Shipper};

/// Writes `n` distinct lines over three files and two pods, plus one partial pair and one
/// malformed line; returns the `log` of every record the index must end up with.
fn write_workload(logs: &LogDir, namespace: &str, n: usize) -> Vec<String> {
    let files = [
        logs.file("web-6f9d-a1", namespace, "web"),
        logs.file("web-6f9d-a1", namespace, "sidecar"),
        logs.file("worker-0", namespace, "worker"),
    ];
    let mut expected = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let lines: Vec<String> = (0..n / 3 + usize::from(i < n % 3))
            .map(|j| format!("line {i}-{j} of {namespace} with some words"))
            .collect();
        let stream = if i == 1 { "stderr" } else { "stdout" };
        logs.append(
            file,
            &lines
                .iter()
                .map(|l| cri(stream, "F", l))
                .collect::<Vec<_>>(),
        );
        expected.extend(lines);
    }
    logs.append(
        &files[0],
        &[
            cri("stdout", "P", "joined "),
            cri("stdout", "F", "partial line"),
        ],
    );
    expected.push("joined partial line".to_owned());
    logs.append(&files[2], &["this is not a CRI line".to_owned()]);
    expected.push("this is not a CRI line".to_owned());
    expected
}

async fn assert_exactly(server: &Server, namespace: &str, expected: &[String]) {
    let total = server
        .wait_total(namespace, expected.len() as u64, Duration::from_secs(90))
        .await;
    assert_eq!(total, expected.len() as u64, "records in the index");
    // Give a straggler (a duplicate) the chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (total, logs) = server.all_logs(namespace).await;
    assert_eq!(total, expected.len() as u64);
    let unique_logs: HashSet<&String> = logs.iter().collect();
    assert_eq!(unique_logs.len(), logs.len(), "no record indexed twice");
    let wanted: HashSet<&String> = expected.iter().collect();
    assert_eq!(unique_logs, wanted, "exactly the lines written, by content");
}

async fn pipeline(database_url: Option<String>) {
    let root = tempfile::tempdir().unwrap();
    let namespace = format!("e2e-{}", unique());
    let logs = LogDir::new(root.path());
    let expected = write_workload(&logs, &namespace, 3000);

    let server = Server::start(
        &root.path().join("data"),
        &namespace,
        database_url.as_deref(),
    );
    let _shipper = Shipper::start(root.path(), &logs);
    assert_exactly(&server, &namespace, &expected).await;

    let (_, body) = server.get_json("/api/v1/namespaces").await;
    assert!(
        body["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == namespace.as_str()),
        "{body}"
    );

    // Newest first, the query narrows, metadata from the file name, marks on bad lines.
    let (_, body) = server
        .get_json(&format!(
            "/api/v1/search?namespace={namespace}&q=worker&limit=5"
        ))
        .await;
    assert_eq!(
        body["total"], 0,
        "bare words search the message only: {body}"
    );
    let (_, body) = server
        .get_json(&format!(
            "/api/v1/search?namespace={namespace}&q=pod:worker-0&limit=5000"
        ))
        .await;
    assert_eq!(body["total"], 1001, "{}", body["total"]);
    let hits = body["hits"].as_array().unwrap();
    let times: Vec<&str> = hits.iter().map(|h| h["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let bad = hits
        .iter()
        .find(|h| h["log"] == "this is not a CRI line")
        .expect("malformed line kept");
    assert_eq!(bad["marks"], serde_json::json!(["parse_error"]));
    assert_eq!(bad["kubernetes"]["container_name"], "worker");
    assert_eq!(bad["kubernetes"]["host"], "test-node");

    let (_, body) = server
        .get_json(&format!(
            "/api/v1/search?namespace={namespace}&q=%22partial%20line%22"
        ))
        .await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["hits"][0]["log"], "joined partial line");

    let (status, body) = server
        .get_json(&format!("/api/v1/search?namespace={namespace}&q=(unclosed"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "bad_request");

    let (status, html) = server
        .get_text(&format!("/search?namespace={namespace}&q=%22line%200-7%22"))
        .await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("line 0-7 of {namespace} with some words")),
        "dashboard shows the hit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_line_is_searchable_exactly_once_on_sqlite() {
    pipeline(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_line_is_searchable_exactly_once_on_postgres() {
    pipeline(Some(common::fresh_postgres_database().await)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_killed_mid_ingest_still_holds_each_line_once() {
    let root = tempfile::tempdir().unwrap();
    let namespace = format!("e2e-{}", unique());
    let logs = LogDir::new(root.path());
    let file = logs.file("api-0", &namespace, "api");
    let mut server = Server::start(&root.path().join("data"), &namespace, None);
    let _shipper = Shipper::start(root.path(), &logs);

    // Lines keep arriving while the server is killed and restarted.
    let writer_logs = LogDir {
        path: logs.path.clone(),
    };
    let writer_ns = namespace.clone();
    let writer = std::thread::spawn(move || {
        let mut expected = Vec::new();
        for chunk in 0..40 {
            let lines: Vec<String> = (0..200)
                .map(|i| format!("restart {writer_ns} {chunk}-{i}"))
                .collect();
            writer_logs.append(
                &file,
                &lines
                    .iter()
                    .map(|l| cri("stdout", "F", l))
                    .collect::<Vec<_>>(),
            );
            expected.extend(lines);
            std::thread::sleep(Duration::from_millis(100));
        }
        expected
    });

    let seen = server
        .wait_total(&namespace, 1000, Duration::from_secs(60))
        .await;
    assert!(seen >= 1000, "ingest started before the kill ({seen})");
    server.kill();
    server.restart();
    let expected = writer.join().unwrap();
    assert!(seen < expected.len() as u64, "the kill happened mid-ingest");
    assert_exactly(&server, &namespace, &expected).await;
}
