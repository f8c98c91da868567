//! The archive against the real broker and the real `bitesize` binary: every record produced
//! to Kafka ends up in the archive exactly once even when the server is killed with SIGKILL
//! mid-archive; the listing shows a viewer only their namespaces; archive → retention →
//! rehydrate gives back exactly the original records, and a second rehydrate adds nothing;
//! `bitesize rehydrate` through the running server (with its progress lines) and on the
//! data directory of a stopped one.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bitesize_server::archive::line::ArchivedRecord;
use bitesize_server::archive::object_name::ObjectName;
use common::{create_topic, producer, unique, Server};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Produces `count` records numbered from `first` (`log` = `{tag} #{n}`), `age` old, keyed
/// by number so they spread over the partitions.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    tag: &str,
    first: usize,
    count: usize,
    age: chrono::Duration,
) {
    let now = chrono::Utc::now();
    let sends = (first..first + count).map(|n| {
        // Spread over three hours so objects are split by hour.
        let time = (now - age - chrono::Duration::minutes((n % 3) as i64 * 61))
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let payload = format!(
            r#"{{"time":"{time}","stream":"stdout","log":"{tag} #{n}","kubernetes":{{"pod_name":"pod-{}","container_name":"app"}},"fields":{{"n":{n}}}}}"#,
            n % 7
        );
        let key = n.to_string();
        async move {
            producer
                .send(
                    FutureRecord::to(topic).payload(&payload).key(&key),
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
        }
    });
    futures::future::join_all(sends).await;
}

/// Settings that make the archive write small objects often.
fn archive_settings(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut settings = vec![
        ("BITESIZE_ARCHIVE__FLUSH_INTERVAL_SECS", "1"),
        ("BITESIZE_ARCHIVE__FLUSH_BYTES", "65536"),
    ];
    settings.extend_from_slice(extra);
    settings
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Every archive object under `dir` (the default store: `archive/` in the data directory).
fn archive_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".ndjson.zst") {
                files.push(path);
            }
        }
    }
    files
}

/// The objects of the archive at `dir` and their lines.
fn read_archive(dir: &Path) -> Vec<(ObjectName, Vec<ArchivedRecord>)> {
    archive_files(dir)
        .into_iter()
        .map(|file| {
            let relative = file
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let name = ObjectName::parse(&object_store::path::Path::from(relative.as_str()))
                .unwrap_or_else(|| panic!("{relative} is not an archive object name"));
            let ndjson = zstd::stream::decode_all(std::fs::File::open(&file).unwrap()).unwrap();
            let lines: Vec<ArchivedRecord> = ndjson
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            assert_eq!(lines.len() as u64, name.records, "{relative}");
            (name, lines)
        })
        .collect()
}

/// Records `GET /api/v1/archive` lists for `namespace` (complete spans only).
async fn archived_records(server: &Server, namespace: &str) -> u64 {
    let (status, body) = server
        .get_json(&format!("/api/v1/archive?namespace={namespace}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["records"].as_u64().unwrap()
}

async fn wait_archived(server: &Server, namespace: &str, count: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let archived = archived_records(server, namespace).await;
        if archived >= count || Instant::now() > deadline {
            return archived;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn total(server: &Server, namespace: &str) -> u64 {
    let (_, body) = server
        .get_json(&format!("/api/v1/search?namespace={namespace}&limit=1"))
        .await;
    body["total"].as_u64().unwrap_or(0)
}

async fn wait_total(server: &Server, namespace: &str, expected: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let now = total(server, namespace).await;
        if now == expected || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every record of `namespace` through export, as JSON lines sorted.
async fn export_sorted(server: &Server, namespace: &str) -> Vec<String> {
    let (status, body) = server
        .get_text(&format!("/api/v1/export?namespace={namespace}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut lines: Vec<String> = body.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_is_archived_exactly_once_across_sigkill() {
    const BATCHES: usize = 30;
    const PER_BATCH: usize = 2_000;
    let namespace = format!("ar-{}", unique());
    let topic = format!("logs.{namespace}");
    create_topic(&topic, 3).await;
    let producer = producer();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut server = Server::start_with_settings(
        &data,
        &format!("^logs\\.{namespace}$"),
        None,
        &archive_settings(&[]),
    );
    let archive_dir = data.join("archive");
    let mut kills = 0;
    for batch in 0..BATCHES {
        produce(
            &producer,
            &topic,
            "kill",
            batch * PER_BATCH,
            PER_BATCH,
            chrono::Duration::zero(),
        )
        .await;
        if batch % 8 == 4 {
            // Kill while objects are being written: wait for a few new ones first.
            let before = archive_files(&archive_dir).len();
            let deadline = Instant::now() + Duration::from_secs(20);
            while archive_files(&archive_dir).len() < before + 3 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            server.kill();
            kills += 1;
            eprintln!(
                "killed with {} objects written",
                archive_files(&archive_dir).len()
            );
            server.restart();
        }
    }
    assert!(kills >= 3, "the server was killed mid-archive ({kills})");
    let expected = (BATCHES * PER_BATCH) as u64;
    let archived = wait_archived(&server, &namespace, expected, Duration::from_secs(180)).await;
    assert_eq!(archived, expected, "the listing counts every record once");

    // The objects themselves: each record once (by partition and offset, and by content),
    // every object part of a complete span, objects split by the hour of their records.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let objects = read_archive(&archive_dir);
    let mut by_span: BTreeMap<(i32, i64, i64), Vec<&ObjectName>> = BTreeMap::new();
    let mut origins = HashSet::new();
    let mut logs = HashSet::new();
    let mut count = 0;
    for (name, lines) in &objects {
        by_span
            .entry((name.partition, name.first, name.last))
            .or_default()
            .push(name);
        for line in lines {
            count += 1;
            assert_eq!((line.partition, &line.topic), (name.partition, &topic));
            assert!((name.first..=name.last).contains(&line.offset), "{name:?}");
            let hour = line.time_nanos().unwrap().div_euclid(3_600_000_000_000);
            assert_eq!(hour, name.hour, "a record is in its hour's object");
            assert_eq!(line.record.kubernetes.namespace_name, namespace);
            origins.insert((line.partition, line.offset));
            logs.insert(line.record.log.clone());
        }
    }
    assert_eq!(count, expected, "no record archived twice, none lost");
    assert_eq!(origins.len() as u64, expected, "offsets unique");
    assert_eq!(logs.len() as u64, expected, "contents unique");
    for (span, parts) in &by_span {
        assert_eq!(
            parts.len() as u32,
            parts[0].parts,
            "span {span:?}: every part is there, and only once"
        );
    }
    let mut per_partition: HashMap<i32, Vec<(i64, i64)>> = HashMap::new();
    for (partition, first, last) in by_span.keys() {
        per_partition
            .entry(*partition)
            .or_default()
            .push((*first, *last));
    }
    for spans in per_partition.values() {
        for pair in spans.windows(2) {
            assert!(pair[0].1 < pair[1].0, "spans never overlap: {pair:?}");
        }
    }
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(
        metrics.contains(&format!(
            "bitesize_archive_objects_total{{namespace=\"{namespace}\"}}"
        )),
        "{metrics}"
    );
}

/// The `bitesize` CLI with the server's settings; returns (success, stdout, stderr).
fn bitesize(
    env: &HashMap<String, String>,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bitesize"))
        .args(args)
        .envs(env)
        .envs(extra_env.iter().copied())
        .output()
        .expect("run bitesize");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Old records (40 days) and recent ones: the archive keeps all, retention (30 days by
/// default, 365 at first so the originals can be exported) removes the old ones from the
/// index; rehydrate brings exactly those back, once.
struct RoundTrip {
    namespace: String,
    server: Server,
    originals: Vec<String>,
    old: u64,
    recent: u64,
    _root: tempfile::TempDir,
}

async fn archived_then_expired(database_url: Option<&str>) -> RoundTrip {
    let namespace = format!("rh-{}", unique());
    let topic = format!("logs.{namespace}");
    create_topic(&topic, 2).await;
    let producer = producer();
    let (old, recent) = (300usize, 200usize);
    produce(&producer, &topic, "old", 0, old, chrono::Duration::days(40)).await;
    produce(
        &producer,
        &topic,
        "recent",
        old,
        recent,
        chrono::Duration::zero(),
    )
    .await;
    let root = tempfile::tempdir().unwrap();
    let server = Server::start_with_settings(
        &root.path().join("data"),
        &format!("^logs\\.{namespace}$"),
        database_url,
        &archive_settings(&[
            ("BITESIZE_RETENTION__CHECK_INTERVAL_SECS", "1"),
            ("BITESIZE_RETENTION__DEFAULT_DAYS", "365"),
        ]),
    );
    let all = (old + recent) as u64;
    assert_eq!(
        wait_total(&server, &namespace, all, Duration::from_secs(60)).await,
        all
    );
    let originals = export_sorted(&server, &namespace).await;
    assert_eq!(originals.len() as u64, all);
    assert_eq!(
        wait_archived(&server, &namespace, all, Duration::from_secs(60)).await,
        all
    );
    // Retention 30 days for the namespace: the old records leave the index.
    common::cli(
        &server.env,
        &["namespace", "set-retention", &namespace, "30"],
        None,
    );
    assert_eq!(
        wait_total(&server, &namespace, recent as u64, Duration::from_secs(30)).await,
        recent as u64,
        "retention removed the 40-day-old records"
    );
    RoundTrip {
        namespace,
        server,
        originals,
        old: old as u64,
        recent: recent as u64,
        _root: root,
    }
}

async fn rehydrate_job(server: &Server, namespace: &str, token: &str) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/archive/rehydrate"))
        .bearer_auth(token)
        .json(&serde_json::json!({"namespace": namespace, "from": "now-60d", "to": "now-20d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: serde_json::Value = response.json().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = server
            .get_json(&format!("/api/v1/archive/rehydrate/{}", job["id"]))
            .await;
        assert_eq!(status, 200, "{body}");
        if body["state"] == "done" || body["state"] == "failed" {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "rehydrate did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn round_trip(database_url: Option<&str>) {
    let t = archived_then_expired(database_url).await;
    let (server, namespace) = (&t.server, &t.namespace);

    let job = rehydrate_job(server, namespace, &server.admin_token).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["records_added"], t.old, "{job}");
    assert_eq!(job["records_already_indexed"], 0, "{job}");
    assert_eq!(job["objects_done"], job["objects_total"], "{job}");
    assert_eq!(total(server, namespace).await, t.old + t.recent);
    assert_eq!(
        export_sorted(server, namespace).await,
        t.originals,
        "the index holds exactly the original records again"
    );

    let again = rehydrate_job(server, namespace, &server.admin_token).await;
    assert_eq!(again["state"], "done", "{again}");
    assert_eq!(again["records_added"], 0, "{again}");
    assert_eq!(again["records_already_indexed"], t.old, "{again}");
    assert_eq!(
        export_sorted(server, namespace).await,
        t.originals,
        "nothing duplicated"
    );

    // Retention passes every second: the rehydrated range is kept.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(total(server, namespace).await, t.old + t.recent, "kept");

    let (_, audit) = server
        .get_json(&format!(
            "/api/v1/audit?namespace={namespace}&action=archive.rehydrate"
        ))
        .await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 2, "{audit}");
    let (_, ends) = server
        .get_json(&format!(
            "/api/v1/audit?namespace={namespace}&action=archive.rehydrate.end"
        ))
        .await;
    // Newest first: the second event is the end of the first rehydrate.
    let detail: serde_json::Value =
        serde_json::from_str(ends["events"][1]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["outcome"]["records_added"], t.old, "{ends}");
}

#[tokio::test(flavor = "multi_thread")]
async fn archive_retention_rehydrate_round_trip_on_sqlite() {
    round_trip(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn archive_retention_rehydrate_round_trip_on_postgres() {
    let url = common::fresh_postgres_database().await;
    round_trip(Some(&url)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_shows_a_viewer_only_their_namespaces() {
    let url = common::fresh_postgres_database().await;
    let (a, b) = (format!("va-{}", unique()), format!("vb-{}", unique()));
    let producer = producer();
    for namespace in [&a, &b] {
        let topic = format!("logs.{namespace}");
        create_topic(&topic, 1).await;
        produce(
            &producer,
            &topic,
            namespace,
            0,
            50,
            chrono::Duration::zero(),
        )
        .await;
    }
    let root = tempfile::tempdir().unwrap();
    let server = Server::start_with_settings(
        &root.path().join("data"),
        &format!("^logs\\.({a}|{b})$"),
        Some(&url),
        &archive_settings(&[]),
    );
    for namespace in [&a, &b] {
        assert_eq!(
            wait_archived(&server, namespace, 50, Duration::from_secs(60)).await,
            50
        );
    }
    let (_, everything) = server.get_json("/api/v1/archive").await;
    let listed: HashSet<&str> = everything["hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["namespace"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(a.as_str()) && listed.contains(b.as_str()),
        "{everything}"
    );

    common::cli(&server.env, &["user", "add", "vera"], None);
    common::cli(
        &server.env,
        &[
            "binding",
            "add",
            "--user",
            "vera",
            "--role",
            "viewer",
            "--pattern",
            &a,
        ],
        None,
    );
    let token = common::cli(
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
    )
    .lines()
    .last()
    .unwrap()
    .to_owned();
    for query in [
        "",
        "?namespace=",
        "?namespace=B",
        "?namespace=A,B",
        "?from=now-1d",
    ] {
        let query = query.replace('A', &a).replace('B', &b);
        let (status, body) = server
            .get_json_as(&format!("/api/v1/archive{query}"), Some(&token))
            .await;
        assert_eq!(status, 200, "{query}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains(&b),
            "{query}: a viewer of A sees nothing of B: {text}"
        );
        if query.contains(&a) || query.is_empty() || query == "?namespace=" {
            assert_eq!(body["records"], 50, "{query}: {body}");
        }
    }
    // Viewers do not rehydrate; the rehydrates of B are not theirs to see.
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/archive/rehydrate"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"namespace": a, "from": "now-1h", "to": "now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let job = rehydrate_job(&server, &b, &server.admin_token).await;
    assert_eq!(job["state"], "done", "{job}");
    let (status, _) = server
        .get_json_as(
            &format!("/api/v1/archive/rehydrate/{}", job["id"]),
            Some(&token),
        )
        .await;
    assert_eq!(
        status, 404,
        "a rehydrate of B is not shown to a viewer of A"
    );

    let (_, audit) = server
        .get_json("/api/v1/audit?actor=vera&action=archive.list")
        .await;
    assert!(
        !audit["events"].as_array().unwrap().is_empty(),
        "the viewer's listings are audited: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_rehydrates_on_a_stopped_server_and_through_a_running_one() {
    let mut t = archived_then_expired(None).await;
    let namespace = t.namespace.clone();
    let range = [
        "--namespace",
        &namespace,
        "--from",
        "now-60d",
        "--to",
        "now-20d",
    ];
    let args: Vec<&str> = ["rehydrate"].iter().chain(range.iter()).copied().collect();

    // With the server running, the data directory is not the CLI's to write.
    let (ok, _, stderr) = bitesize(&t.server.env, &args, &[]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("--server"),
        "the error says what to do: {stderr}"
    );

    // Stopped: the CLI rehydrates on the data directory itself.
    t.server.kill();
    let (ok, stdout, stderr) = bitesize(&t.server.env, &args, &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("objects"), "progress lines: {stderr}");
    assert!(
        stdout.contains(&format!("{} records added, 0 already indexed", t.old)),
        "{stdout}"
    );
    t.server.restart();
    tokio::time::sleep(Duration::from_secs(3)).await; // ingest resumes, retention passes
    assert_eq!(
        total(&t.server, &namespace).await,
        t.old + t.recent,
        "kept, nothing twice"
    );
    assert_eq!(export_sorted(&t.server, &namespace).await, t.originals);

    // Running: through its API, with its job status as the progress.
    let mut through = args.clone();
    let url = t.server.url("");
    through.extend(["--server", url.as_str()]);
    let (ok, _, stderr) = bitesize(&t.server.env, &through, &[]);
    assert!(!ok && stderr.contains("BITESIZE_TOKEN"), "{stderr}");
    let (ok, stdout, stderr) = bitesize(
        &t.server.env,
        &through,
        &[("BITESIZE_TOKEN", t.server.admin_token.as_str())],
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("objects"),
        "the server's job status as progress: {stderr}"
    );
    assert!(
        stdout.contains(&format!("0 records added, {} already indexed", t.old)),
        "{stdout}"
    );
    assert_eq!(export_sorted(&t.server, &namespace).await, t.originals);
}
