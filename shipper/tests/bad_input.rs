//! The shipper's half of the bad-input catalogue (`docs/bad-input.md`): one test per case,
//! each asserting the documented outcome — a marked record or a clear error, no crash, and
//! nothing else lost. Cases where only the records matter go through `bitesize-shipper
//! check`; cases where delivery matters run `bitesize-shipper run` against the real
//! Kafka-protocol broker (`TEST_KAFKA_BOOTSTRAP`, which `./scripts/test` sets) and count what
//! arrives. Every test has a namespace, and so a topic, of its own.
//!
//! Two cases need root's powers to set up honestly: the unreadable file runs the shipper as
//! another user (`setpriv` from util-linux; root would read any file), and the full disk
//! mounts a 1 MiB tmpfs as the checkpoint directory and fills it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

const CONTAINER_ID: &str = "3a38a5c2e1f44b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e";
const TIME: &str = "2026-11-25T10:00:00.000000000Z";
/// The user the unreadable-file test runs the shipper as (`nobody`).
const NOBODY: u32 = 65534;

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
        std::fs::create_dir_all(root.path().join("checkpoints")).unwrap();
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

    fn checkpoints(&self) -> PathBuf {
        self.root.path().join("checkpoints")
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
                 listen: 127.0.0.1:{}\npoll_interval_ms: 50\nrescan_interval_ms: 200\n{extra}\
                 kafka:\n  brokers: {}\n",
                self.logs().display(),
                self.checkpoints().display(),
                self.port,
                kafka_bootstrap()
            ),
        )
        .unwrap();
        path
    }

    fn start_shipper(&self, extra: &str) -> Shipper {
        self.start_shipper_as(&[], extra)
    }

    /// Runs the shipper through `wrapper` (e.g. `setpriv ...`), when not empty.
    fn start_shipper_as(&self, wrapper: &[&str], extra: &str) -> Shipper {
        let config = self.config(extra);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("shipper.log"))
            .unwrap();
        let binary = env!("CARGO_BIN_EXE_bitesize-shipper");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
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

    fn metric(&self, name: &str) -> f64 {
        let body = self.get("/metrics").map(|(_, b)| b).unwrap_or_default();
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The checkpointed offset of the file whose path contains `pod`, if saved.
    fn checkpoint_of(&self, pod: &str) -> Option<u64> {
        let text = std::fs::read_to_string(self.checkpoints().join("checkpoints.json")).ok()?;
        let saved: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("checkpoints.json is not JSON ({e}): {text}"));
        saved["positions"]
            .as_array()?
            .iter()
            .find(|p| p["path"].as_str().is_some_and(|path| path.contains(pod)))
            .and_then(|p| p["offset"].as_u64())
    }

    /// `bitesize-shipper check` on `files` with this scene's config.
    fn check(&self, files: &[&Path]) -> (Output, Vec<serde_json::Value>) {
        let config = self.config("");
        let output = Command::new(env!("CARGO_BIN_EXE_bitesize-shipper"))
            .args(["check", "--config"])
            .arg(&config)
            .args(files)
            .output()
            .unwrap();
        let records = String::from_utf8(output.stdout.clone())
            .expect("check prints UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
            .collect();
        (output, records)
    }
}

struct Shipper {
    child: Child,
}

impl Shipper {
    /// Still running (it did not stop on the bad input).
    fn assert_running(&mut self, scene: &Scene) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the shipper stopped; its log:\n{}",
            scene.shipper_log()
        );
    }

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
    format!("{TIME} stdout F {message}\n")
}

fn numbered(i: usize) -> String {
    format!("line-{i:07} the quick brown fox jumps over the lazy dog")
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn write_numbered(path: &Path, range: std::ops::Range<usize>) {
    let text: String = range.map(|i| cri(&numbered(i))).collect();
    append(path, text.as_bytes());
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every record of the scene's topic, read from the beginning until `done` says enough
/// arrived, then 2 s longer so duplicates would show. Panics after `timeout`.
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
    let mut records = Vec::new();
    let mut settled_at: Option<Instant> = None;
    let mut last_check = Instant::now();
    loop {
        match settled_at {
            Some(at) if at.elapsed() > Duration::from_secs(2) => return records,
            Some(_) => {}
            // `done` looks at every record: not after each one.
            None if last_check.elapsed() > Duration::from_millis(250) => {
                last_check = Instant::now();
                if done(&records) {
                    settled_at = Some(Instant::now());
                }
            }
            None => {}
        }
        assert!(
            Instant::now() < deadline,
            "timed out with {} records; shipper log:\n{}",
            records.len(),
            scene.shipper_log()
        );
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let message = result.expect("consume");
            records.push(
                serde_json::from_slice(message.payload().unwrap_or_default())
                    .expect("a JSON record"),
            );
        }
    }
}

fn logs_of(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["log"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// How often each `log` arrived.
fn counts(records: &[serde_json::Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for log in logs_of(records) {
        *counts.entry(log).or_default() += 1;
    }
    counts
}

/// Waits for the numbered lines `range` plus `others`; asserts each arrived exactly once
/// and nothing else arrived.
fn expect_exactly(scene: &Scene, range: std::ops::Range<usize>, others: &[&str]) {
    let expected: Vec<String> = range
        .map(numbered)
        .chain(others.iter().map(|s| s.to_string()))
        .collect();
    let records = consume(scene, Duration::from_secs(120), |r| {
        let counts = counts(r);
        expected.iter().all(|l| counts.contains_key(l))
    });
    let counts = counts(&records);
    let missing: Vec<&String> = expected
        .iter()
        .filter(|l| !counts.contains_key(*l))
        .collect();
    assert!(missing.is_empty(), "missing {missing:?}");
    let repeated: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(repeated.is_empty(), "repeated {repeated:?}");
    assert_eq!(
        counts.len(),
        expected.len(),
        "unexpected records: {:?}",
        counts
            .keys()
            .filter(|l| !expected.contains(l))
            .collect::<Vec<_>>()
    );
}

#[test]
fn invalid_utf8_is_replaced_and_marked() {
    let scene = Scene::new("utf8");
    let path = scene.log_file("web-1");
    let mut bytes = cri("before").into_bytes();
    // A Latin-1 é and a lone continuation byte in the message.
    bytes.extend_from_slice(format!("{TIME} stdout F ").as_bytes());
    bytes.extend_from_slice(b"caf\xe9 \x80 ok\n");
    // Invalid bytes in the runtime's prefix: the line does not parse either.
    bytes.extend_from_slice(b"2026-11-25T10:00:00\xff stdout F broken prefix\n");
    bytes.extend_from_slice(cri("after").as_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let (output, records) = scene.check(&[&path]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        logs_of(&records),
        [
            "before",
            "caf\u{fffd} \u{fffd} ok",
            "2026-11-25T10:00:00\u{fffd} stdout F broken prefix",
            "after"
        ]
    );
    assert!(records[0].get("marks").is_none(), "{}", records[0]);
    assert_eq!(records[1]["marks"], serde_json::json!(["invalid_utf8"]));
    assert_eq!(
        records[2]["marks"],
        serde_json::json!(["parse_error", "invalid_utf8"])
    );
    assert!(records[3].get("marks").is_none(), "{}", records[3]);
}

#[test]
fn nul_bytes_are_kept_and_a_nul_filled_hole_is_marked() {
    let scene = Scene::new("nul");
    let path = scene.log_file("web-1");
    let mut bytes = cri("a\0b").into_bytes();
    // A crash can leave a run of NULs where a write never landed (a hole); the runtime's next
    // line follows it on the same "line".
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    bytes.extend_from_slice(cri("after the hole").as_bytes());
    bytes.extend_from_slice(cri("clean").as_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let (output, records) = scene.check(&[&path]);
    assert!(output.status.success(), "{output:?}");
    let logs = logs_of(&records);
    assert_eq!(logs.len(), 3, "{logs:?}");
    // NUL inside a message is kept as it is (JSON writes it as \u0000).
    assert_eq!(logs[0], "a\0b");
    assert!(records[0].get("marks").is_none());
    // The hole and the line after it: kept whole, raw, marked.
    assert_eq!(
        logs[1],
        format!("{}{}", "\0".repeat(4096), cri("after the hole").trim_end())
    );
    assert_eq!(records[1]["marks"], serde_json::json!(["parse_error"]));
    assert_eq!(logs[2], "clean");
}

#[test]
fn a_deeply_nested_json_message_is_kept_as_text() {
    let scene = Scene::new("deep");
    let path = scene.log_file("web-1");
    let nested = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    std::fs::write(
        &path,
        format!(
            "{}{}{}",
            cri(&nested(10_000)),
            cri(&nested(100)),
            cri("after")
        ),
    )
    .unwrap();
    let (output, records) = scene.check(&[&path]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        logs_of(&records),
        [nested(10_000), nested(100), "after".to_owned()]
    );
    // Too deep to be parsed into `fields` (serde_json stops at 128 levels, no deep
    // recursion): the message is kept as text, unmarked.
    assert!(records[0].get("fields").is_none() && records[0].get("marks").is_none());
    // 100 levels are parsed.
    let mut value = &records[1]["fields"];
    for _ in 0..99 {
        value = &value["a"];
    }
    assert_eq!(value["a"], serde_json::json!(1));
}

#[test]
fn a_10_mb_line_arrives_as_marked_pieces_in_order() {
    let scene = Scene::new("huge");
    let path = scene.log_file("web-1");
    // Text that compresses like logs do, with a counter so any misplaced piece shows.
    let mut message = String::with_capacity(10_000_100);
    let mut i = 0u64;
    while message.len() < 10_000_000 {
        message.push_str(&format!("word{i} "));
        i += 1;
    }
    message.truncate(10_000_000);
    let mut shipper = scene.start_shipper("");
    append(
        &path,
        format!("{}{}{}", cri("before"), cri(&message), cri("after")).as_bytes(),
    );
    let records = consume(&scene, Duration::from_secs(180), |r| {
        logs_of(r).iter().any(|l| l == "after")
    });
    shipper.assert_running(&scene);
    let logs = logs_of(&records);
    let max_line_bytes = 1024 * 1024; // the default
    let pieces = message.len().div_ceil(max_line_bytes);
    assert_eq!(logs.len(), pieces + 2, "records: {}", logs.len());
    assert_eq!(logs[0], "before");
    assert_eq!(logs[pieces + 1], "after");
    for record in &records[1..=pieces] {
        assert_eq!(record["marks"], serde_json::json!(["split"]));
        assert!(record["log"].as_str().unwrap().len() <= max_line_bytes);
    }
    assert!(
        logs[1..=pieces].concat() == message,
        "the pieces, in order, are the line"
    );
    let dead_letters = scene.checkpoints().join("dead-letter.ndjson");
    assert!(!dead_letters.exists(), "no piece was refused by Kafka");
}

#[test]
fn a_last_line_without_newline_waits_for_its_end_even_across_a_restart() {
    let scene = Scene::new("eof");
    let path = scene.log_file("web-1");
    let first = cri("first");
    append(&path, format!("{first}{TIME} stdout F half").as_bytes());
    let shipper = scene.start_shipper("");
    consume(&scene, Duration::from_secs(60), |r| {
        logs_of(r).contains(&"first".to_owned())
    });
    // The unfinished line is neither shipped nor checkpointed.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        scene.metric("bitesize_shipper_lines_read_total"),
        1.0,
        "only the finished line was read as a line"
    );
    wait_until(
        "checkpoint of the first line",
        Duration::from_secs(10),
        || scene.checkpoint_of("web-1") == Some(first.len() as u64),
    );
    // Killed and restarted while the line is unfinished, then the writer finishes it.
    shipper.kill_9();
    let mut shipper = scene.start_shipper("");
    std::thread::sleep(Duration::from_secs(2));
    append(&path, format!("-done\n{}", cri("last")).as_bytes());
    let records = consume(&scene, Duration::from_secs(60), |r| {
        logs_of(r).contains(&"last".to_owned())
    });
    shipper.assert_running(&scene);
    assert_eq!(logs_of(&records), ["first", "half-done", "last"]);
    assert!(records.iter().all(|r| r.get("marks").is_none()));
}

#[test]
fn a_file_truncated_in_place_is_read_again_from_the_start() {
    let scene = Scene::new("trunc");
    let path = scene.log_file("web-1");
    write_numbered(&path, 0..2_000);
    let mut shipper = scene.start_shipper("");
    wait_until(
        "the first lines acknowledged",
        Duration::from_secs(60),
        || scene.metric("bitesize_shipper_records_acknowledged_total") >= 2_000.0,
    );
    // Truncated with no copy kept (`: > file`), then written again; shorter than before.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    write_numbered(&path, 2_000..2_500);
    expect_exactly(&scene, 0..2_500, &[]);
    shipper.assert_running(&scene);
    assert!(
        scene.shipper_log().contains("file truncated"),
        "{}",
        scene.shipper_log()
    );
}

#[test]
fn a_file_replaced_by_a_directory_is_finished_and_the_directory_ignored() {
    let scene = Scene::new("dir");
    let path = scene.log_file("web-1");
    write_numbered(&path, 0..1_000);
    let mut shipper = scene.start_shipper("");
    wait_until(
        "the first lines acknowledged",
        Duration::from_secs(60),
        || scene.metric("bitesize_shipper_records_acknowledged_total") >= 1_000.0,
    );
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside.log"), cri("inside the directory")).unwrap();
    // Another file appears afterwards: the shipper is still following the directory.
    write_numbered(&scene.log_file("web-2"), 1_000..2_000);
    expect_exactly(&scene, 0..2_000, &[]);
    shipper.assert_running(&scene);
    assert_eq!(scene.get("/healthz").map(|(c, _)| c), Some(200));
    // `check` on the directory names it and fails.
    let (output, records) = scene.check(&[&path]);
    assert!(!output.status.success());
    assert!(records.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains("directory"),
        "{stderr}"
    );
}

#[test]
fn a_symlink_loop_is_reported_once_and_other_files_ship() {
    let scene = Scene::new("loop");
    let a = scene.log_file("loop-a");
    let b = scene.log_file("loop-b");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    write_numbered(&scene.log_file("web-1"), 0..1_000);
    let mut shipper = scene.start_shipper("");
    expect_exactly(&scene, 0..1_000, &[]);
    // Many rescans later (every 200 ms here), each looping path was reported once.
    std::thread::sleep(Duration::from_secs(2));
    shipper.assert_running(&scene);
    let log = scene.shipper_log();
    for path in [&a, &b] {
        let name = path.file_name().unwrap().to_str().unwrap();
        let reports = log
            .lines()
            .filter(|l| l.contains(name) && l.contains("cannot read"))
            .count();
        assert_eq!(reports, 1, "{name} reported once:\n{log}");
    }
    assert!(log.contains("symbolic links"), "{log}");
    assert_eq!(scene.metric("bitesize_shipper_files_unreadable"), 2.0);
    // `check` names the looping file and fails; the good file is still printed.
    let (output, records) = scene.check(&[&a, &scene.log_file("web-1")]);
    assert!(!output.status.success());
    assert_eq!(records.len(), 1_000);
    assert!(String::from_utf8_lossy(&output.stderr).contains("symbolic links"));
}

#[test]
fn a_pod_directory_removed_mid_read_is_finished_from_the_open_handle() {
    let scene = Scene::new("gone");
    let uid = "0f3c2a1e-1b2c-4d5e-8f90-123456789abc";
    let pod_dir = scene
        .root
        .path()
        .join(format!("pods/{}_web-1_{uid}", scene.namespace));
    std::fs::create_dir_all(pod_dir.join("app")).unwrap();
    let target = pod_dir.join("app/0.log");
    let link = scene.log_file("web-1");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let total = 30_000;
    write_numbered(&target, 0..total);
    // A small in-flight budget keeps the reader just ahead of the acknowledgements.
    let mut shipper = scene.start_shipper("batch_records: 100\nin_flight_batches: 1\n");
    wait_until("reading started", Duration::from_secs(60), || {
        scene.metric("bitesize_shipper_records_acknowledged_total") > 0.0
    });
    // The kubelet removes a deleted pod's log directory and its link.
    std::fs::remove_dir_all(&pod_dir).unwrap();
    std::fs::remove_file(&link).unwrap();
    let acked = scene.metric("bitesize_shipper_records_acknowledged_total");
    assert!(acked < total as f64, "removed too late to test anything");
    eprintln!("removed after {acked} of {total} records were acknowledged");
    expect_exactly(&scene, 0..total, &[]);
    shipper.assert_running(&scene);
    // Lines read after the removal still carry the pod uid from the link's old target.
    let records = consume(&scene, Duration::from_secs(30), |r| r.len() >= total);
    assert!(records
        .iter()
        .all(|r| r["kubernetes"]["pod_id"] == serde_json::json!(uid)));
}

#[test]
fn an_unreadable_file_is_reported_once_and_shipped_once_readable() {
    let scene = Scene::new("perm");
    // The shipper runs as `nobody`: it can enter the directories and write its checkpoints,
    // and read every file but one.
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode(scene.root.path(), 0o755);
    std::os::unix::fs::chown(scene.checkpoints(), Some(NOBODY), Some(NOBODY)).unwrap();
    let readable = scene.log_file("web-1");
    let secret = scene.log_file("secret-1");
    write_numbered(&readable, 0..500);
    write_numbered(&secret, 500..1_000);
    mode(&secret, 0o600);
    let nobody = NOBODY.to_string();
    let (uid, gid) = (format!("--reuid={nobody}"), format!("--regid={nobody}"));
    let mut shipper = scene.start_shipper_as(
        &["setpriv", uid.as_str(), gid.as_str(), "--clear-groups"],
        "",
    );
    // It really runs as nobody (root would read the file regardless of its mode).
    let pid = shipper.child.id();
    wait_until("the shipper's process", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|s| s.contains(&format!("Uid:\t{nobody}\t{nobody}")))
    });
    expect_exactly(&scene, 0..500, &[]);
    std::thread::sleep(Duration::from_secs(1));
    shipper.assert_running(&scene);
    let log = scene.shipper_log();
    let name = secret.file_name().unwrap().to_str().unwrap();
    let reports: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(name) && l.contains("cannot read"))
        .collect();
    assert_eq!(reports.len(), 1, "reported once:\n{log}");
    assert!(reports[0].contains("Permission denied"), "{}", reports[0]);
    assert_eq!(scene.metric("bitesize_shipper_files_unreadable"), 1.0);
    // Made readable: picked up at the next scan, nothing lost.
    mode(&secret, 0o644);
    expect_exactly(&scene, 0..1_000, &[]);
    wait_until("the gauge clears", Duration::from_secs(10), || {
        scene.metric("bitesize_shipper_files_unreadable") == 0.0
    });
}

/// A small tmpfs mounted over a directory for the life of the value.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "bitesize-test",
            ])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "this test fills a small tmpfs mounted as the checkpoint directory and needs \
             root's right to mount one: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs {
            dir: dir.to_owned(),
        }
    }

    /// Writes a file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = File::create(&path).unwrap();
        for size in [64 * 1024, 1] {
            let chunk = vec![b'x'; size];
            loop {
                match file.write_all(&chunk) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling {}: {e}", self.dir.display()),
                }
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[test]
fn a_full_checkpoint_disk_is_reported_shipping_goes_on_and_checkpoints_catch_up() {
    let scene = Scene::new("full");
    let disk = Tmpfs::mount(&scene.checkpoints(), "1m");
    let path = scene.log_file("web-1");
    write_numbered(&path, 0..1_000);
    let written = std::fs::metadata(&path).unwrap().len();
    let mut shipper = scene.start_shipper("");
    wait_until("a checkpoint at the end", Duration::from_secs(60), || {
        scene.checkpoint_of("web-1") == Some(written)
    });
    wait_until("ready", Duration::from_secs(20), || {
        scene.get("/readyz").is_some_and(|(c, _)| c == 200)
    });

    let filler = disk.fill();
    write_numbered(&path, 1_000..2_000);
    let grown = std::fs::metadata(&path).unwrap().len();
    // Shipping goes on; the failure shows in the metrics, /readyz and the log.
    wait_until(
        "the new lines acknowledged",
        Duration::from_secs(60),
        || scene.metric("bitesize_shipper_records_acknowledged_total") >= 2_000.0,
    );
    wait_until("the failure reported", Duration::from_secs(20), || {
        scene.metric("bitesize_shipper_checkpoint_save_failing") == 1.0
    });
    assert!(scene.metric("bitesize_shipper_checkpoint_save_errors_total") >= 1.0);
    let (code, body) = scene.get("/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("checkpoint"), "{body}");
    let log = scene.shipper_log();
    assert!(
        log.contains("cannot save checkpoints") && log.contains("No space left on device"),
        "{log}"
    );
    // The saved checkpoint stays where it was: intact, not advanced.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(scene.checkpoint_of("web-1"), Some(written));
    shipper.assert_running(&scene);

    // Space returns: the checkpoint catches up without new lines to ship.
    std::fs::remove_file(filler).unwrap();
    wait_until("the checkpoint catches up", Duration::from_secs(20), || {
        scene.checkpoint_of("web-1") == Some(grown)
    });
    wait_until("the failure clears", Duration::from_secs(20), || {
        scene.metric("bitesize_shipper_checkpoint_save_failing") == 0.0
            && scene.get("/readyz").is_some_and(|(c, _)| c == 200)
    });
    assert!(scene.shipper_log().contains("checkpoints saved again"));
    expect_exactly(&scene, 0..2_000, &[]);
    shipper.assert_running(&scene);
    drop(shipper);
    drop(disk);
}
