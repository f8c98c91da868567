//! The shipper binary against the real Kafka-protocol broker (`TEST_KAFKA_BOOTSTRAP`, which
//! `./scripts/test` sets): lines are written the way runtimes and logrotate write them, and
//! what arrives in Kafka is counted by unique line content. Every test namespace is unique,
//! so every test has its own topic (`logs.<namespace>`, created by the shipper).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

const CONTAINER_ID: &str = "3a38a5c2e1f44b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e";
/// Every line carries some weight, so a test moves a few megabytes.
const PADDING: &str = "the quick brown fox jumps over the lazy dog, again and again";

fn kafka_bootstrap() -> String {
    std::env::var("TEST_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "TEST_KAFKA_BOOTSTRAP is not set: these tests need the Kafka-protocol broker \
             (nisshi). Run ./scripts/test, which starts one, or point TEST_KAFKA_BOOTSTRAP \
             at a running broker (host:port)"
        )
    })
}

/// One test's world: a log directory, a checkpoint directory, a namespace of its own.
struct Scene {
    root: tempfile::TempDir,
    namespace: String,
    port: u16,
}

impl Scene {
    fn new(prefix: &str) -> Scene {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let namespace = format!(
            "{prefix}-{:x}{:x}",
            std::process::id(),
            nanos & 0xff_ffff_ffff
        );
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("containers")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Scene {
            root,
            namespace,
            port,
        }
    }

    fn logs(&self) -> PathBuf {
        self.root.path().join("containers")
    }

    /// The kubelet's name for the log of container `app` in pod `pod`.
    fn log_file(&self, pod: &str) -> PathBuf {
        self.logs()
            .join(format!("{pod}_{}_app-{CONTAINER_ID}.log", self.namespace))
    }

    fn topic(&self) -> String {
        format!("logs.{}", self.namespace)
    }

    fn config(&self, extra: &str) -> PathBuf {
        let path = self.root.path().join("shipper.yaml");
        std::fs::write(
            &path,
            format!(
                "include: ['{}/*.log']\ncheckpoint_dir: {}\nnode_name: test-node\n\
                 listen: 127.0.0.1:{}\npoll_interval_ms: 50\nkafka:\n  brokers: {}\n{extra}",
                self.logs().display(),
                self.root.path().join("checkpoints").display(),
                self.port,
                kafka_bootstrap()
            ),
        )
        .unwrap();
        path
    }

    fn start_shipper(&self, extra: &str) -> Shipper {
        let config = self.config(extra);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("shipper.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_bitesize-shipper"))
            .args(["run", "--config"])
            .arg(&config)
            .env("BITESIZE_LOG", "info,bitesize_shipper=debug")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start bitesize-shipper");
        Shipper { child }
    }

    fn shipper_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("shipper.log")).unwrap_or_default()
    }

    /// GET on the shipper's status listener: (status code, body).
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n")?.1.to_owned();
        Some((code, body))
    }
}

struct Shipper {
    child: Child,
}

impl Shipper {
    /// SIGKILL: no chance to flush or save anything.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cri(message: &str) -> String {
    format!("2026-11-25T10:00:00.000000000Z stdout F {message}\n")
}

fn numbered(i: usize) -> String {
    format!("line-{i:07} {PADDING}")
}

/// Appends lines `range` to `file`, pausing briefly every `pace` lines when given.
fn write_lines(file: &mut File, range: std::ops::Range<usize>, pace: Option<usize>) {
    let mut text = String::new();
    for i in range {
        text.push_str(&cri(&numbered(i)));
        if pace.is_some_and(|p| i % p == p - 1) {
            file.write_all(text.as_bytes()).unwrap();
            text.clear();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    file.write_all(text.as_bytes()).unwrap();
}

fn append_to(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// Every message of `topic` (read from the beginning), until `done` says enough arrived,
/// then a little longer so duplicates would show. Panics after `timeout`.
fn consume(
    scene: &Scene,
    timeout: Duration,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let topic = scene.topic();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", format!("test-{}", scene.namespace))
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    // The shipper creates the topic when its first line appears.
    let partitions = loop {
        assert!(
            Instant::now() < deadline,
            "topic {topic} never appeared; shipper log:\n{}",
            scene.shipper_log()
        );
        if let Ok(metadata) = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5)) {
            if let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) {
                if t.error().is_none() && !t.partitions().is_empty() {
                    break t.partitions().len();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(&topic, p as i32, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut messages = Vec::new();
    let mut settled_at: Option<Instant> = None;
    let mut last_check = Instant::now();
    loop {
        if let Some(at) = settled_at {
            if at.elapsed() > Duration::from_secs(3) {
                return messages;
            }
        } else if last_check.elapsed() > Duration::from_millis(250) {
            // `done` looks at every message: not after each one.
            last_check = Instant::now();
            if done(&messages) {
                settled_at = Some(Instant::now());
            }
        }
        if Instant::now() > deadline {
            // The caller says what is missing.
            eprintln!("timed out with {} messages", messages.len());
            return messages;
        }
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let message = result.expect("consume");
            let payload = message.payload().unwrap_or_default();
            messages.push(serde_json::from_slice(payload).expect("a JSON record"));
        }
    }
}

/// How often each `log` arrived.
fn counts(messages: &[serde_json::Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in messages {
        *counts
            .entry(m["log"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    counts
}

/// Waits for lines `0..n` and checks each arrived; returns how many arrived more than once.
fn expect_all_lines(scene: &Scene, name: &str, n: usize) -> usize {
    let messages = consume(scene, Duration::from_secs(180), |m| {
        counts(m).keys().filter(|l| l.starts_with("line-")).count() >= n
    });
    let counts = counts(&messages);
    let missing: Vec<usize> = (0..n)
        .filter(|i| !counts.contains_key(&numbered(*i)))
        .collect();
    let duplicated = counts.values().filter(|c| **c > 1).count();
    let foreign = counts
        .keys()
        .filter(|l| !l.starts_with("line-"))
        .cloned()
        .collect::<Vec<_>>();
    eprintln!(
        "{name}: {n} lines written, {} records received, {} distinct, {} missing, {duplicated} duplicated",
        messages.len(),
        counts.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{name}: {} lines missing, first {:?}; shipper log:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        scene.shipper_log()
    );
    assert!(
        foreign.is_empty(),
        "{name}: unexpected records {foreign:?}; shipper log:\n{}",
        scene.shipper_log()
    );
    duplicated
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn rotation_by_rename_under_write_load_loses_and_repeats_nothing() {
    let scene = Scene::new("rot");
    let _shipper = scene.start_shipper("");
    let path = scene.log_file("web-1");
    let (total, per_file) = (40_000, 8_000);
    let mut file = append_to(&path);
    for start in (0..total).step_by(per_file) {
        write_lines(&mut file, start..start + per_file, Some(500));
        // kubelet / logrotate style: rename away, the writer reopens a new file.
        std::fs::rename(&path, path.with_extension(format!("log.{start}"))).unwrap();
        file = append_to(&path);
    }
    let duplicated = expect_all_lines(&scene, "rename rotation", total);
    assert_eq!(duplicated, 0, "rename rotation repeated lines");

    // The endpoints tell the same story.
    let (code, _) = scene.get("/healthz").expect("healthz answers");
    assert_eq!(code, 200);
    wait_until("readyz", Duration::from_secs(20), || {
        scene.get("/readyz").is_some_and(|(c, _)| c == 200)
    });
    wait_until("acknowledged count", Duration::from_secs(20), || {
        let (_, body) = scene.get("/metrics").unwrap();
        metric(&body, "bitesize_shipper_records_acknowledged_total") >= total as f64
    });
    let (_, body) = scene.get("/metrics").unwrap();
    assert!(
        metric(&body, "bitesize_shipper_lines_read_total") >= total as f64,
        "{body}"
    );
    assert!(metric(&body, "bitesize_shipper_records_produced_total") >= total as f64);
    assert!(
        body.contains("bitesize_shipper_checkpoint_lag_bytes{path="),
        "{body}"
    );
    assert!(
        body.contains("bitesize_shipper_in_flight_batches"),
        "{body}"
    );
    assert!(body.contains("bitesize_shipper_files_followed"), "{body}");
}

#[test]
fn copytruncate_under_write_load_loses_and_repeats_nothing() {
    let scene = Scene::new("ctr");
    let _shipper = scene.start_shipper("");
    let path = scene.log_file("web-1");
    let (total, per_file) = (40_000, 8_000);
    // O_APPEND, as runtimes write: after the truncation writes land at the new end.
    let mut file = append_to(&path);
    for start in (0..total).step_by(per_file) {
        write_lines(&mut file, start..start + per_file, Some(500));
        // Rotations are far apart compared with the shipper's polling: it has seen each
        // generation of the file, though not necessarily read all of it (the rest is then
        // read from the copy). A generation written, copied and truncated before the
        // shipper saw any of it is lost (see docs/architecture.md).
        wait_until(
            "the shipper saw this generation",
            Duration::from_secs(30),
            || {
                scene.get("/metrics").is_some_and(|(_, b)| {
                    metric(&b, "bitesize_shipper_lines_read_total") > start as f64
                })
            },
        );
        // logrotate copytruncate. It runs between two writes of this writer: lines written
        // between logrotate's copy and its truncate would be lost by logrotate itself.
        std::fs::copy(&path, path.with_extension(format!("log.{start}"))).unwrap();
        file.set_len(0).unwrap();
    }
    let duplicated = expect_all_lines(&scene, "copytruncate", total);
    assert_eq!(duplicated, 0, "copytruncate repeated lines");
}

#[test]
fn kill_9_mid_stream_and_rotation_while_down_lose_nothing() {
    let scene = Scene::new("kill");
    let shipper = scene.start_shipper("");
    let path = scene.log_file("web-1");
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || write_lines(&mut append_to(&path), 0..30_000, Some(200)))
    };
    // Kill -9 once shipping is well under way and the writer still writes.
    let checkpoints = scene.root.path().join("checkpoints/checkpoints.json");
    wait_until("a checkpoint of the file", Duration::from_secs(60), || {
        std::fs::read_to_string(&checkpoints).is_ok_and(|c| c.contains("web-1"))
            && scene.get("/metrics").is_some_and(|(_, b)| {
                metric(&b, "bitesize_shipper_records_acknowledged_total") > 2000.0
            })
    });
    shipper.kill_9();
    writer.join().unwrap();
    // While the shipper is down the file rotates by rename: the old file (now outside the
    // globs) must be finished from its checkpoint, the new one read from the start.
    std::fs::rename(&path, path.with_extension("log.1")).unwrap();
    write_lines(&mut append_to(&path), 30_000..40_000, None);
    let _shipper = scene.start_shipper("");
    let duplicated = expect_all_lines(&scene, "kill -9 and restart", 40_000);
    // At-least-once: records acknowledged after the last checkpoint save (every 500 ms)
    // are sent again after a kill -9.
    eprintln!("kill -9 and restart: {duplicated} duplicates (allowed: acknowledged after the last checkpoint save)");
    let log = scene.shipper_log();
    assert!(
        log.contains("finishing a file rotated while stopped"),
        "{log}"
    );
}

#[test]
fn file_deleted_mid_read_is_finished_from_its_open_handle() {
    let scene = Scene::new("del");
    let path = scene.log_file("web-1");
    let total = 30_000;
    write_lines(&mut append_to(&path), 0..total, None);
    // A small in-flight budget keeps the reader just ahead of the acknowledgements.
    let _shipper = scene.start_shipper("batch_records: 100\nin_flight_batches: 1\n");
    wait_until("reading started", Duration::from_secs(60), || {
        scene
            .get("/metrics")
            .is_some_and(|(_, b)| metric(&b, "bitesize_shipper_records_acknowledged_total") > 0.0)
    });
    let (_, body) = scene.get("/metrics").unwrap();
    let acked = metric(&body, "bitesize_shipper_records_acknowledged_total");
    std::fs::remove_file(&path).unwrap();
    eprintln!("deleted after {acked} of {total} records were acknowledged");
    assert!(acked < total as f64, "deleted too late to test anything");
    let duplicated = expect_all_lines(&scene, "deleted mid-read", total);
    assert_eq!(duplicated, 0, "deletion repeated lines");
    // The file is forgotten once finished.
    wait_until(
        "checkpoint forgets the file",
        Duration::from_secs(20),
        || {
            let saved =
                std::fs::read_to_string(scene.root.path().join("checkpoints/checkpoints.json"))
                    .unwrap_or_default();
            saved.contains("\"version\": 2") && !saved.contains("web-1")
        },
    );
}

#[test]
fn check_prints_exactly_what_the_shipper_ships() {
    let scene = Scene::new("chk");
    let path = scene.log_file("web-1");
    let docker = r#"{"log":"docker line\n","stream":"stderr","time":"2026-11-25T10:00:01.5Z"}"#;
    let mut file = append_to(&path);
    file.write_all(cri(r#"{"level":"info","msg":"json message"}"#).as_bytes())
        .unwrap();
    file.write_all(b"2026-11-25T10:00:00.1Z stdout P joined \n")
        .unwrap();
    file.write_all(cri("together").as_bytes()).unwrap();
    file.write_all(format!("{docker}\n").as_bytes()).unwrap();
    file.write_all(b"not a runtime line at all\n").unwrap();
    file.write_all(b"2026-11-25T10:00:02Z stdout F caf\xe9\n")
        .unwrap();
    drop(file);

    let config = scene.config("cluster: test-cluster\n");
    let output = Command::new(env!("CARGO_BIN_EXE_bitesize-shipper"))
        .args(["check", "--config"])
        .arg(&config)
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let checked: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let logs: Vec<&str> = checked.iter().map(|r| r["log"].as_str().unwrap()).collect();
    assert_eq!(
        logs,
        [
            r#"{"level":"info","msg":"json message"}"#,
            "joined together",
            "docker line",
            "not a runtime line at all",
            "caf\u{fffd}",
        ]
    );
    assert_eq!(checked[0]["fields"]["level"], "info");
    assert_eq!(checked[3]["marks"][0], "parse_error");
    assert_eq!(checked[4]["marks"][0], "invalid_utf8");
    assert_eq!(checked[1]["kubernetes"]["namespace_name"], scene.namespace);
    assert_eq!(checked[1]["cluster"], "test-cluster");

    // The same file through the shipper and the broker gives the same records (a line that
    // does not parse is stamped with the time it was read, which naturally differs).
    let _shipper = scene.start_shipper("cluster: test-cluster\n");
    let shipped = consume(&scene, Duration::from_secs(60), |m| {
        m.len() >= checked.len()
    });
    let without_read_time =
        |records: &[serde_json::Value]| -> Vec<BTreeMap<String, serde_json::Value>> {
            records
                .iter()
                .map(|r| {
                    let mut r: BTreeMap<String, serde_json::Value> =
                        serde_json::from_value(r.clone()).unwrap();
                    if r.get("marks")
                        .is_some_and(|m| m.to_string().contains("parse_error"))
                    {
                        r.remove("time");
                    }
                    r
                })
                .collect()
        };
    assert_eq!(without_read_time(&shipped), without_read_time(&checked));

    // A file that is not a container log is named, and the exit status says so.
    let output = Command::new(env!("CARGO_BIN_EXE_bitesize-shipper"))
        .args(["check", "--config"])
        .arg(&config)
        .arg(scene.logs().join("other.log"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("other.log"));
}
