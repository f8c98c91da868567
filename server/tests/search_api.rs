//! The read API over real ingest (shipper → broker → server): time ranges, cursor paging
//! that neither repeats nor skips while records keep arriving, histogram, facets, export
//! and live tail.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{unique, LogDir, Server, Shipper};
use futures::StreamExt;

/// 2026-01-01T00:00:00Z plus `seconds`, as the runtime writes it.
fn at(seconds: u64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
    (base + chrono::Duration::seconds(seconds as i64))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// 1000 lines one second apart (every other one a JSON app log), then 50 lines sharing one
/// timestamp, to exercise ties in the order.
fn seed(logs: &LogDir, namespace: &str) -> Vec<String> {
    let web = logs.file("web-1", namespace, "web");
    let api = logs.file("api-1", namespace, "api");
    let mut expected = Vec::new();
    let (mut web_lines, mut api_lines) = (Vec::new(), Vec::new());
    for i in 0..1000u64 {
        if i % 2 == 0 {
            let message = format!("GET /item/{i} 200");
            web_lines.push(format!("{} stdout F {message}", at(i)));
            expected.push(message);
        } else {
            let level = if i % 10 == 1 { "error" } else { "info" };
            let message = format!(r#"{{"level":"{level}","latency_ms":{i},"msg":"call {i}"}}"#);
            api_lines.push(format!("{} stdout F {message}", at(i)));
            expected.push(message);
        }
    }
    for j in 0..50 {
        let message = format!("tie {j}");
        web_lines.push(format!("{} stdout F {message}", at(2000)));
        expected.push(message);
    }
    logs.append(&web, &web_lines);
    logs.append(&api, &api_lines);
    expected
}

async fn json(server: &Server, path: &str) -> serde_json::Value {
    let (status, body) = server.get_json(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn read_api_over_real_ingest() {
    let root = tempfile::tempdir().unwrap();
    let ns = format!("api-{}", unique());
    let logs = LogDir::new(root.path());
    let expected = seed(&logs, &ns);
    let server = Server::start(&root.path().join("data"), &ns, None);
    let _shipper = Shipper::start(root.path(), &logs);
    assert_eq!(
        server.wait_total(&ns, 1050, Duration::from_secs(60)).await,
        1050
    );

    // Time range: from inclusive, to exclusive.
    let body = json(
        &server,
        &format!(
            "/api/v1/search?namespace={ns}&from={}&to={}&limit=1",
            at(100),
            at(200)
        ),
    )
    .await;
    assert_eq!(body["total"], 100);
    assert_eq!(body["total_exact"], true);
    assert!(body["took_ms"].is_u64());

    // Paging with a cursor while newer records keep arriving: every seeded record exactly once.
    let extra = logs.file("late-1", &ns, "late");
    let writer_logs = LogDir {
        path: logs.path.clone(),
    };
    let writer = std::thread::spawn(move || {
        for i in 0..20 {
            writer_logs.append(&extra, &[common::cri("stdout", "F", &format!("late {i}"))]);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut seen = Vec::new();
    let mut times = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!(
            "/api/v1/search?namespace={ns}&to={}&limit=37&cursor={cursor}",
            at(3000)
        );
        let body = json(&server, &path).await;
        for hit in body["hits"].as_array().unwrap() {
            seen.push(hit["log"].as_str().unwrap().to_owned());
            times.push(hit["time"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    writer.join().unwrap();
    assert_eq!(seen.len(), expected.len(), "no record repeated or skipped");
    assert_eq!(
        seen.iter().collect::<HashSet<_>>(),
        expected.iter().collect::<HashSet<_>>()
    );
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first across pages"
    );

    // Histogram: fixed buckets over the range, counts add up.
    let body = json(
        &server,
        &format!(
            "/api/v1/histogram?namespace={ns}&from={}&to={}&bucket_ms=100000",
            at(0),
            at(1000)
        ),
    )
    .await;
    let counts: Vec<u64> = body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![100; 10], "{body}");
    assert_eq!(body["buckets"][0]["start"], at(0));
    let body = json(
        &server,
        &format!("/api/v1/histogram?namespace={ns}&to={}", at(3000)),
    )
    .await;
    assert_eq!(
        body["total"], 1050,
        "without from, the range of the data: {body}"
    );

    // Facets: metadata fields always, a JSON field on request.
    let body = json(
        &server,
        &format!(
            "/api/v1/facets?namespace={ns}&to={}&field=fields.level",
            at(3000)
        ),
    )
    .await;
    let pods = &body["facets"]["pod"];
    assert_eq!(
        pods[0],
        serde_json::json!({"value": "web-1", "count": 550}),
        "{body}"
    );
    assert_eq!(pods[1], serde_json::json!({"value": "api-1", "count": 500}));
    assert_eq!(
        body["facets"]["fields.level"][0],
        serde_json::json!({"value": "info", "count": 400}),
        "{body}"
    );
    assert_eq!(
        body["facets"]["fields.level"][1],
        serde_json::json!({"value": "error", "count": 100})
    );

    // Export: every matching record, streamed, in NDJSON and CSV.
    let (status, ndjson) = server
        .get_text(&format!(
            "/api/v1/export?namespace={ns}&to={}&format=ndjson",
            at(3000)
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(ndjson.lines().count(), 1050);
    assert!(ndjson
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    let (_, csv) = server
        .get_text(&format!(
            "/api/v1/export?namespace={ns}&q=%22call%20999%22&format=csv"
        ))
        .await;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "time,namespace,pod,container,stream,log");
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[1].contains(r#""{""level"":""info"",""latency_ms"":999,""msg"":""call 999""}""#),
        "{csv}"
    );

    // Live tail: a line written after the tail started arrives within 3 s.
    let response = server
        .get_as(
            &format!("/api/v1/tail?namespace={ns}&q=fresh"),
            Some(&server.admin_token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = response.bytes_stream();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = Instant::now();
    logs.append(
        &logs.file("web-1", &ns, "web"),
        &[common::cri("stdout", "F", "fresh line for the tail")],
    );
    let mut received = String::new();
    while !received.contains("fresh line for the tail") {
        let chunk = tokio::time::timeout(
            Duration::from_secs(3).saturating_sub(written.elapsed()),
            events.next(),
        )
        .await
        .expect("tail delivers within 3 s")
        .expect("stream open")
        .unwrap();
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("event: record"), "{received}");
    assert!(
        !received.contains("late 0"),
        "tail starts from now, not from the past: {received}"
    );

    // Bad parameters are 400s that say what is wrong.
    for (path, needle) in [
        (
            format!("/api/v1/search?namespace={ns}&from=yesterday"),
            "from",
        ),
        (
            format!("/api/v1/search?namespace={ns}&cursor=garbage"),
            "cursor",
        ),
        (format!("/api/v1/search?namespace={ns}&limit=0"), "limit"),
        (
            format!(
                "/api/v1/histogram?namespace={ns}&from={}&to={}&bucket_ms=1",
                at(0),
                at(1000)
            ),
            "buckets",
        ),
        (
            format!("/api/v1/facets?namespace={ns}&field=bogus"),
            "bogus",
        ),
        (
            format!("/api/v1/export?namespace={ns}&format=xml"),
            "format",
        ),
        (format!("/api/v1/tail?namespace={ns}&q=(unclosed"), "query"),
        ("/api/v1/search?namespace=Not_Valid".to_owned(), "namespace"),
    ] {
        let (status, body) = server.get_json(&path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
}
