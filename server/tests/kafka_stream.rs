//! The consume endpoint against the real broker: every record exactly once across
//! reconnects by cursor (a server-ended stream, a client that drops the connection, SSE's
//! Last-Event-ID), the query filter, start by time, scopes (403, audited) and the
//! per-principal stream limit.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{cli, kafka_bootstrap, unique, Server};
use futures::StreamExt;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

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

async fn create_namespace(server: &Server, name: &str, partitions: i32) {
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/admin/namespaces"))
        .bearer_auth(&server.admin_token)
        .json(&json!({"name": name, "partitions": partitions}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await.unwrap()
    );
}

/// Produces `logs` (keyed by position, so they spread over the partitions).
async fn produce(topic: &str, logs: &[String]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    for (i, log) in logs.iter().enumerate() {
        let payload = json!({"stream": "stdout", "log": log, "kubernetes": {"pod_name": "web-1", "container_name": "app"}}).to_string();
        let key = format!("{log}-{i}");
        producer
            .send(
                FutureRecord::to(topic).payload(&payload).key(&key),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

/// Reads NDJSON lines from `path` until the server ends the stream or `stop_after` record
/// lines arrived (then the connection is dropped). Returns all lines.
async fn read_lines(
    server: &Server,
    path: &str,
    token: &str,
    stop_after: Option<usize>,
) -> Vec<Value> {
    let response = server.get_as(path, Some(token)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path}");
    let mut body = response.bytes_stream();
    let (mut buffer, mut lines, mut records) = (Vec::new(), Vec::new(), 0);
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), body.next())
        .await
        .expect("the stream goes on")
    {
        buffer.extend_from_slice(&chunk.unwrap());
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let value: Value = serde_json::from_slice(&line).unwrap();
            if value.get("record").is_some() {
                records += 1;
            }
            lines.push(value);
            if stop_after == Some(records) {
                return lines; // dropping the response closes the connection
            }
        }
    }
    lines
}

fn records(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l["record"]["log"].as_str().map(str::to_owned))
        .collect()
}

fn last_cursor(lines: &[Value]) -> String {
    lines
        .iter()
        .rev()
        .find(|l| l.get("record").is_some())
        .unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn resuming_by_cursor_gives_every_record_exactly_once() {
    let prefix = format!("k6s{}", unique());
    let (_dir, server) = start(&prefix, &[]);
    let name = format!("{prefix}-shop");
    create_namespace(&server, &name, 3).await;
    let topic = format!("logs.{name}");
    let first: Vec<String> = (0..300).map(|i| format!("line {i:04}")).collect();
    produce(&topic, &first).await;
    let token = server.admin_token.clone();
    let base = format!("/api/v1/namespaces/{name}/stream");

    // 1: the server ends the stream after 120 records.
    let lines = read_lines(
        &server,
        &format!("{base}?from=earliest&limit=120"),
        &token,
        None,
    )
    .await;
    let mut seen = records(&lines);
    assert_eq!(seen.len(), 120);
    assert_eq!(lines.last().unwrap()["end"], "limit");
    let cursor = last_cursor(&lines);
    assert_eq!(lines.last().unwrap()["cursor"], cursor.as_str());

    // More records arrive while no one is connected.
    let second: Vec<String> = (300..400).map(|i| format!("line {i:04}")).collect();
    produce(&topic, &second).await;

    // 2: the client drops the connection after 100 records of a following stream.
    let lines = read_lines(
        &server,
        &format!("{base}?cursor={cursor}"),
        &token,
        Some(100),
    )
    .await;
    seen.extend(records(&lines));
    let cursor = last_cursor(&lines);

    // 3: the rest, ending when caught up.
    let lines = read_lines(
        &server,
        &format!("{base}?cursor={cursor}&follow=false"),
        &token,
        None,
    )
    .await;
    assert_eq!(lines.last().unwrap()["end"], "caught_up");
    seen.extend(records(&lines));

    let mut expected: Vec<String> = first.into_iter().chain(second).collect();
    expected.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got.len(), 400, "every record once, none twice");
    assert_eq!(got, expected);

    // Per partition the offsets only go up, and each line's cursor is past its record.
    let lines = read_lines(
        &server,
        &format!("{base}?from=earliest&follow=false"),
        &token,
        None,
    )
    .await;
    let mut last: HashMap<i64, i64> = HashMap::new();
    for line in lines.iter().filter(|l| l.get("record").is_some()) {
        let (p, o) = (
            line["partition"].as_i64().unwrap(),
            line["offset"].as_i64().unwrap(),
        );
        assert!(
            last.get(&p).is_none_or(|&prev| o == prev + 1),
            "partition {p}: {o} after {:?}",
            last.get(&p)
        );
        last.insert(p, o);
        assert!(line["cursor"]
            .as_str()
            .unwrap()
            .contains(&format!("{p}:{}", o + 1)));
    }
    assert_eq!(last.len(), 3, "all partitions");

    // The stream's start and end are audited with the records sent.
    let (_, events) = server
        .get_json(&format!("/api/v1/audit?namespace={name}&action=stream.end"))
        .await;
    let hits: Vec<i64> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["hits"].as_i64())
        .collect();
    assert!(hits.contains(&120) && hits.contains(&400), "{events}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_resumes_with_last_event_id_and_filters_with_the_query_language() {
    let prefix = format!("k6t{}", unique());
    let (_dir, server) = start(&prefix, &[]);
    let name = format!("{prefix}-api");
    create_namespace(&server, &name, 2).await;
    let logs: Vec<String> = (0..60)
        .map(|i| {
            if i % 3 == 0 {
                format!("error timeout {i}")
            } else {
                format!("info fine {i}")
            }
        })
        .collect();
    produce(&format!("logs.{name}"), &logs).await;
    let base = format!("/api/v1/namespaces/{name}/stream");

    let sse = |path: String, last_event_id: Option<String>| {
        let mut request = server
            .get_as(&path, Some(&server.admin_token))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            assert!(response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream"));
            let text = tokio::time::timeout(Duration::from_secs(30), response.text())
                .await
                .unwrap()
                .unwrap();
            // (event, id, data) of each event.
            text.split("\n\n")
                .filter(|e| !e.trim().is_empty())
                .map(|e| {
                    let field = |name: &str| {
                        e.lines()
                            .find_map(|l| l.strip_prefix(name))
                            .unwrap_or_default()
                            .to_owned()
                    };
                    (field("event: "), field("id: "), field("data: "))
                })
                .collect::<Vec<_>>()
        }
    };
    let events = sse(format!("{base}?from=earliest&limit=25"), None).await;
    let first: Vec<&(String, String, String)> = events.iter().filter(|e| e.0 == "record").collect();
    assert_eq!(first.len(), 25);
    let id = first.last().unwrap().1.clone();
    let events = sse(format!("{base}?follow=false"), Some(id)).await;
    let rest: Vec<&(String, String, String)> = events.iter().filter(|e| e.0 == "record").collect();
    assert_eq!(events.last().unwrap().0, "end");
    let mut all: Vec<String> = first
        .iter()
        .chain(rest.iter())
        .map(|e| {
            serde_json::from_str::<Value>(&e.2).unwrap()["record"]["log"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    all.sort();
    let mut expected = logs.clone();
    expected.sort();
    assert_eq!(all, expected);

    // The filter: the search language, evaluated per record.
    let token = server.admin_token.clone();
    let lines = read_lines(
        &server,
        &format!("{base}?from=earliest&follow=false&q=error%20AND%20timeout"),
        &token,
        None,
    )
    .await;
    let mut filtered = records(&lines);
    filtered.sort();
    let mut errors: Vec<String> = logs
        .iter()
        .filter(|l| l.starts_with("error"))
        .cloned()
        .collect();
    errors.sort();
    assert_eq!(filtered, errors);
    let response = server
        .get_as(&format!("{base}?q=pod:%22unclosed"), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let response = server
        .get_as(&format!("{base}?cursor=garbage"), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let response = server
        .get_as(&format!("{base}?from=yesterday-ish"), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    // Start by time: only what was produced after it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later: Vec<String> = (0..5).map(|i| format!("later {i}")).collect();
    produce(&format!("logs.{name}"), &later).await;
    let lines = read_lines(
        &server,
        &format!("{base}?from={since}&follow=false"),
        &token,
        None,
    )
    .await;
    let mut got = records(&lines);
    got.sort();
    assert_eq!(got, later);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_of_a_cannot_stream_b_and_streams_are_limited_per_principal() {
    let prefix = format!("k6u{}", unique());
    let limit = [(
        "BITESIZE_KAFKA__STREAM__MAX_CONCURRENT_PER_PRINCIPAL".to_owned(),
        "1".to_owned(),
    )];
    let (_dir, server) = start(&prefix, &limit);
    let (a, b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    create_namespace(&server, &a, 1).await;
    create_namespace(&server, &b, 1).await;
    produce(&format!("logs.{b}"), &["secret of b".to_owned()]).await;
    cli(&server.env, &["user", "add", "vera"], None);
    let out = cli(
        &server.env,
        &[
            "token",
            "create",
            "--subject",
            "vera",
            "--role",
            "viewer",
            "--namespaces",
            &a,
        ],
        None,
    );
    let vera = out.lines().last().unwrap().to_owned();

    let response = server
        .get_as(
            &format!("/api/v1/namespaces/{b}/stream?from=earliest&follow=false"),
            Some(&vera),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body = response.text().await.unwrap();
    assert!(!body.contains("secret of b"), "{body}");
    let (_, events) = server
        .get_json("/api/v1/audit?actor=vera&action=stream.denied")
        .await;
    let denied = events["events"].as_array().unwrap();
    assert_eq!(denied.len(), 1, "{events}");
    assert!(
        denied[0]["namespaces"].as_str().unwrap().contains(&b),
        "{events}"
    );
    let response = server
        .get_as(&format!("/api/v1/namespaces/{b}/stream"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    // Her own namespace streams; a second stream at once is over her limit, and the slot
    // comes back when the first ends.
    let open = server
        .get_as(&format!("/api/v1/namespaces/{a}/stream"), Some(&vera))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status().as_u16(), 200);
    let second = server
        .get_as(&format!("/api/v1/namespaces/{a}/stream"), Some(&vera))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status().as_u16(), 429);
    let others = server
        .get_as(
            &format!("/api/v1/namespaces/{a}/stream?follow=false"),
            Some(&server.admin_token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(others.status().as_u16(), 200, "the limit is per principal");
    drop(open);
    let mut freed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = server
            .get_as(
                &format!("/api/v1/namespaces/{a}/stream?follow=false"),
                Some(&vera),
            )
            .send()
            .await
            .unwrap();
        if again.status().as_u16() == 200 {
            freed = true;
            break;
        }
    }
    assert!(freed, "the slot is freed once the client leaves");
    let (_, events) = server
        .get_json("/api/v1/audit?actor=vera&action=stream.start")
        .await;
    assert!(!events["events"].as_array().unwrap().is_empty(), "{events}");
}
