//! Ingest straight from Kafka (records produced by the test, not the shipper): the original
//! fluentd pipeline's layout, payloads that are not JSON, and exactly-once indexing of
//! 200 000 records while the server is killed with SIGKILL again and again; an export of a
//! million records that streams in fixed memory.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{create_topic, producer, unique, Server};
use rdkafka::producer::{FutureRecord, Producer};

/// All records of `namespace` through the export endpoint (no 10 000 cap).
async fn export_logs(server: &Server, namespace: &str) -> Vec<String> {
    let (status, body) = server
        .get_text(&format!("/api/v1/export?namespace={namespace}"))
        .await;
    assert_eq!(status, 200);
    body.lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["log"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fluentd_layout_and_non_json_records_are_indexed_and_marked() {
    let namespace = format!("fl-{}", unique());
    let topic = format!("logs.{namespace}");
    create_topic(&topic, 1).await;
    let producer = producer();
    let kafka_time_ms = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    let payloads: Vec<Vec<u8>> = vec![
        // The original pipeline: `log` ends in a newline, no `time`.
        br#"{"log":"fluentd line\n","stream":"stderr","docker":{"container_id":"abc"},"kubernetes":{"namespace_name":"old","pod_name":"legacy-1","container_name":"app","labels":{"app":"legacy"}}}"#.to_vec(),
        br#"{"time":"2026-01-01T00:00:05.5Z","log":"our layout","stream":"stdout","kubernetes":{"pod_name":"new-1"}}"#.to_vec(),
        b"plain text, not json".to_vec(),
        b"[1,2,3]".to_vec(),
        b"caf\xe9 broken utf-8".to_vec(),
    ];
    for payload in &payloads {
        producer
            .send(
                FutureRecord::<(), _>::to(&topic)
                    .payload(payload)
                    .timestamp(kafka_time_ms),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("data"), &namespace, None);
    assert_eq!(
        server
            .wait_total(&namespace, 5, Duration::from_secs(60))
            .await,
        5
    );

    let (_, body) = server
        .get_json(&format!(
            "/api/v1/search?namespace={namespace}&q=pod:legacy-1"
        ))
        .await;
    let old = &body["hits"][0];
    assert_eq!(old["log"], "fluentd line", "trailing newline removed");
    assert_eq!(
        old["time"], "2026-01-01T00:00:00.000000000Z",
        "Kafka timestamp when time is absent"
    );
    assert_eq!(
        old["kubernetes"]["namespace_name"], namespace,
        "namespace from the topic"
    );
    let (_, body) = server
        .get_json(&format!(
            "/api/v1/search?namespace={namespace}&q=labels.app:legacy"
        ))
        .await;
    assert_eq!(body["total"], 1, "labels of old records are searchable");

    let (_, body) = server
        .get_json(&format!(
            "/api/v1/search?namespace={namespace}&q=%22not%20json%22"
        ))
        .await;
    assert_eq!(body["hits"][0]["marks"], serde_json::json!(["not_json"]));
    assert_eq!(body["hits"][0]["log"], "plain text, not json");
    let (_, body) = server
        .get_json(&format!("/api/v1/search?namespace={namespace}&q=broken"))
        .await;
    assert_eq!(body["hits"][0]["log"], "caf\u{fffd} broken utf-8");
    assert_eq!(body["hits"][0]["marks"], serde_json::json!(["not_json"]));
    let (_, body) = server
        .get_json(&format!(
            "/api/v1/search?namespace={namespace}&q=%22our%20layout%22"
        ))
        .await;
    assert_eq!(body["hits"][0]["time"], "2026-01-01T00:00:05.5Z");

    // Counted: three messages were not JSON records; ready while ingest runs.
    let (status, metrics) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(&format!(
            "bitesize_ingest_not_json_total{{namespace=\"{namespace}\"}} 3"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "bitesize_ingest_records_total{{namespace=\"{namespace}\"}} 5"
        )),
        "{metrics}"
    );
    // Volume: five records searchable, their bytes counted, the index's size on disk.
    assert!(
        metrics.contains(&format!(
            "bitesize_index_documents{{namespace=\"{namespace}\"}} 5\n"
        )),
        "{metrics}"
    );
    let figure = |name: &str| -> u64 {
        let prefix = format!("{name}{{namespace=\"{namespace}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} of {namespace} in {metrics}"))
    };
    assert!(figure("bitesize_ingest_bytes_total") > 100);
    assert!(figure("bitesize_index_disk_bytes") > 1000);
    let (status, ready) = server.get_json_as("/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    let (status, _) = server.get_json_as("/metrics", None).await;
    assert_eq!(status, 401, "metrics are not public");
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_across_repeated_kill_9_with_200k_records() {
    const RECORDS: usize = 200_000;
    let namespace = format!("eo-{}", unique());
    let topic = format!("logs.{namespace}");
    create_topic(&topic, 3).await;
    let producer = producer();
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(RECORDS);
    // Recent times: older records would be (rightly) removed by retention at each restart.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for i in 0..RECORDS {
        let payload = format!(r#"{{"time":"{now}","log":"record {i}","stream":"stdout"}}"#);
        let key = format!("pod-{}", i % 7);
        loop {
            match producer.send_result(FutureRecord::to(&topic).key(&key).payload(&payload)) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((_, _)) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    for delivery in deliveries {
        delivery.await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    eprintln!("produced {RECORDS} in {:?}", started.elapsed());

    let root = tempfile::tempdir().unwrap();
    let mut server = Server::start(&root.path().join("data"), &namespace, None);
    // Kill it three times while it indexes, each time once more has been indexed.
    let mut kills = 0;
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while kills < 3 && Instant::now() < deadline {
        let total = server
            .wait_total(&namespace, last + 20_000, Duration::from_secs(120))
            .await;
        if total >= RECORDS as u64 {
            break;
        }
        server.kill();
        server.restart();
        kills += 1;
        last = total;
        eprintln!("killed at {total} indexed records");
    }
    assert!(kills >= 2, "the kills happened mid-ingest ({kills})");
    let total = server
        .wait_total(&namespace, RECORDS as u64, Duration::from_secs(300))
        .await;
    assert_eq!(total, RECORDS as u64);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let logs = export_logs(&server, &namespace).await;
    assert_eq!(logs.len(), RECORDS, "export holds every record once");
    let unique_logs: HashSet<&String> = logs.iter().collect();
    assert_eq!(unique_logs.len(), RECORDS, "no record indexed twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_what_is_old_and_nothing_else() {
    let namespace = format!("rt-{}", unique());
    let topic = format!("logs.{namespace}");
    create_topic(&topic, 1).await;
    let producer = producer();
    let now = chrono::Utc::now();
    for (age_days, count) in [(40i64, 10), (10, 5), (1, 10)] {
        for i in 0..count {
            let time = (now - chrono::Duration::days(age_days))
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let payload =
                format!(r#"{{"time":"{time}","log":"aged {age_days} #{i}","stream":"stdout"}}"#);
            producer
                .send(
                    FutureRecord::<(), _>::to(&topic).payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    }
    let root = tempfile::tempdir().unwrap();
    let settings = [(
        "BITESIZE_RETENTION__CHECK_INTERVAL_SECS".to_owned(),
        "1".to_owned(),
    )];
    let server = Server::start_with_settings(
        &root.path().join("data"),
        &format!("^logs\\.{namespace}$"),
        None,
        &settings,
    );

    // Default retention (30 days): the 40-day-old records go, the rest stay.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut total = 0;
    while Instant::now() < deadline {
        let (_, body) = server
            .get_json(&format!("/api/v1/search?namespace={namespace}&limit=1"))
            .await;
        total = body["total"].as_u64().unwrap_or(0);
        if total == 15 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(total, 15, "records older than 30 days deleted");
    let logs = export_logs(&server, &namespace).await;
    assert!(logs.iter().all(|l| !l.starts_with("aged 40")), "{logs:?}");

    // The namespace's own retention, set on the command line, applies at the next pass.
    let out = common::cli(
        &server.env,
        &["namespace", "set-retention", &namespace, "7"],
        None,
    );
    assert!(out.contains("7 days"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && total != 10 {
        let (_, body) = server
            .get_json(&format!("/api/v1/search?namespace={namespace}&limit=1"))
            .await;
        total = body["total"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut logs = export_logs(&server, &namespace).await;
    logs.sort();
    let expected: Vec<String> = (0..10).map(|i| format!("aged 1 #{i}")).collect();
    assert_eq!(logs, expected, "only the records within 7 days are left");
}

/// The resident memory of a process and its peak so far, in KiB (`/proc/<pid>/status`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread")]
async fn export_of_a_million_records_streams_in_fixed_memory() {
    const RECORDS: usize = 1_000_000;
    let namespace = format!("export-{}", unique());
    let topic = format!("logs.{namespace}");
    create_topic(&topic, 3).await;
    let producer = producer();
    let started = Instant::now();
    let now = chrono::Utc::now();
    let mut deliveries = Vec::with_capacity(10_000);
    for i in 0..RECORDS {
        // One record per 10 µs, newest last, so the export walks a long time range.
        let time = (now - chrono::Duration::microseconds(10 * (RECORDS - i) as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let payload = format!(
            r#"{{"time":"{time}","log":"GET /cart/{i} 200 12ms user=u{} trace=0123456789abcdef","stream":"stdout","kubernetes":{{"pod_name":"web-{}","container_name":"web","namespace_name":"{namespace}"}}}}"#,
            i % 977,
            i % 13
        );
        loop {
            match producer.send_result(FutureRecord::to(&topic).key("k").payload(&payload)) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((_, _)) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        if deliveries.len() == 10_000 {
            for delivery in deliveries.drain(..) {
                delivery.await.unwrap().unwrap();
            }
        }
    }
    for delivery in deliveries {
        delivery.await.unwrap().unwrap();
    }
    eprintln!("produced {RECORDS} in {:?}", started.elapsed());

    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("data"), &namespace, None);
    let started = Instant::now();
    let total = server
        .wait_total(&namespace, RECORDS as u64, Duration::from_secs(900))
        .await;
    assert_eq!(total, RECORDS as u64);
    eprintln!("indexed {RECORDS} in {:?}", started.elapsed());

    let (before, _) = memory_kib(server.pid());
    let started = Instant::now();
    let mut response = server
        .get_as(
            &format!("/api/v1/export?namespace={namespace}&from=now-1d"),
            Some(&server.admin_token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (mut lines, mut bytes, mut peak) = (0usize, 0usize, before);
    let mut last_seen: Option<u64> = None;
    let mut ordered = true;
    let mut partial: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        partial.extend_from_slice(&chunk);
        let complete = partial
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        for line in partial[..complete]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let record: serde_json::Value = serde_json::from_slice(line).unwrap();
            let log = record["log"].as_str().unwrap();
            let i: u64 = log
                .strip_prefix("GET /cart/")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected record {log}"));
            // Newest first: the sequence number only goes down.
            ordered &= last_seen.is_none_or(|last| i < last);
            last_seen = Some(i);
            lines += 1;
        }
        partial.drain(..complete);
        if lines % 50_000 < 200 {
            peak = peak.max(memory_kib(server.pid()).0);
        }
    }
    let (after, _) = memory_kib(server.pid());
    peak = peak.max(after);
    let took = started.elapsed();
    eprintln!(
        "exported {lines} records ({} MiB) in {took:?}; server RSS {} MiB before, {} MiB peak during the export",
        bytes / (1 << 20),
        before / 1024,
        peak / 1024
    );
    assert_eq!(lines, RECORDS, "every record exported once");
    assert!(ordered, "newest first, no repeats");
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64 && (grown_mib as usize) < bytes / (1 << 20) / 4,
        "the export must stream: the server grew {grown_mib} MiB for a {} MiB export",
        bytes / (1 << 20)
    );
}
