//! `bitesize demo` as a user runs it: the embedded broker (real nisshi), workload, shipper
//! and server on one machine; every demo namespace searchable within 10 s; Ctrl-C stops
//! everything, the broker included; a second start resumes with the data kept.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEMO_TOKEN: &str = "demo-admin-token-for-the-demo-test";

fn broker_bin() -> String {
    std::env::var("BITESIZE_BROKER_BIN").unwrap_or_else(|_| {
        panic!("this test needs the nisshi broker binary: run ./scripts/test, or set BITESIZE_BROKER_BIN")
    })
}

/// Starts the demo; its log (stderr) goes to `<data_dir>.log`, its console (stdout: the
/// banner) to `<data_dir>.console`.
fn start_demo(data_dir: &std::path::Path, port: u16) -> std::process::Child {
    let open = |extension: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension(extension))
            .unwrap()
    };
    Command::new(env!("CARGO_BIN_EXE_bitesize"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .env("BITESIZE_BROKER_BIN", broker_bin())
        .env("BITESIZE_DEMO_ADMIN_TOKEN", DEMO_TOKEN)
        .stdout(Stdio::from(open("console")))
        .stderr(Stdio::from(open("log")))
        .spawn()
        .expect("start bitesize demo")
}

async fn totals(port: u16) -> Vec<u64> {
    let mut totals = Vec::new();
    for namespace in ["shop", "payments", "auth"] {
        let url = format!("http://127.0.0.1:{port}/api/v1/search?namespace={namespace}&limit=1");
        let total = match reqwest::Client::new()
            .get(&url)
            .bearer_auth(DEMO_TOKEN)
            .send()
            .await
        {
            Ok(response) => response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|b| b["total"].as_u64())
                .unwrap_or(0),
            Err(_) => 0,
        };
        totals.push(total);
    }
    totals
}

fn interrupt_and_wait(child: &mut std::process::Child, log: &std::path::Path) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    // Generous: on a loaded 2-core machine the shipper and broker each get a grace period.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "demo did not stop within 60 s of Ctrl-C; last log lines:\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn broker_running(data_dir: &std::path::Path) -> bool {
    let dir = data_dir.join("broker");
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read_link(entry.path().join("cwd"))
            .map(|cwd| cwd == dir)
            .unwrap_or(false)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_serves_every_namespace_within_ten_seconds_and_stops_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let port = common::free_port();
    let started = Instant::now();
    let mut demo = start_demo(&data_dir, port);

    let mut seen = vec![0; 3];
    while started.elapsed() < Duration::from_secs(10) && seen.contains(&0) {
        seen = totals(port).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !seen.contains(&0),
        "every demo namespace searchable within 10 s of start: {seen:?}"
    );
    let (status, body) = {
        let response = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(status, 200, "{body}");

    // No cluster in the demo: the fleet status shows its local shipper as the one node,
    // ready, with lines/s scraped from the shipper's /metrics.
    let deadline = Instant::now() + Duration::from_secs(30);
    let fleet = loop {
        let fleet: serde_json::Value = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/v1/fleet"))
            .bearer_auth(DEMO_TOKEN)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let node = &fleet["clusters"][0]["nodes"][0];
        if node["ready"] == true && node["lines_per_second"].as_f64().is_some_and(|l| l > 0.0) {
            break fleet;
        }
        assert!(
            Instant::now() < deadline,
            "the demo's shipper ready with lines/s in /api/v1/fleet within 30 s: {fleet:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let clusters = fleet["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1, "{fleet:#}");
    let nodes = clusters[0]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "one node: {fleet:#}");
    assert_eq!(nodes[0]["node"], "demo-node", "{fleet:#}");
    assert_eq!(nodes[0]["phase"], "Running", "{fleet:#}");
    assert!(nodes[0]["metrics_error"].is_null(), "{fleet:#}");
    assert_eq!(clusters[0]["totals"]["ready"], 1, "{fleet:#}");

    interrupt_and_wait(&mut demo, &data_dir.with_extension("log"));
    assert!(demo.wait().unwrap().success(), "demo exits 0 on Ctrl-C");
    assert!(
        !broker_running(&data_dir),
        "the embedded broker stops with the demo"
    );

    // A second start resumes: what was indexed is still there, and more arrives.
    let before = seen.iter().sum::<u64>();
    let mut demo = start_demo(&data_dir, port);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = 0;
    while Instant::now() < deadline && after <= before {
        after = totals(port).await.iter().sum();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        after > before,
        "second start keeps the data and goes on ({before} → {after})"
    );
    interrupt_and_wait(&mut demo, &data_dir.with_extension("log"));

    // The demo's accounts: each password is on the console banner (for the person who
    // started it) and in no log, the server's or the shipper's; nor is the admin token.
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).unwrap();
    let logins = read(data_dir.join("demo-logins.txt"));
    let passwords: Vec<&str> = logins
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert!(passwords.len() >= 3, "{logins}");
    let console = read(data_dir.with_extension("console"));
    let log = read(data_dir.with_extension("log"));
    let shipper_log = read(data_dir.join("logs").join("shipper.log"));
    assert!(log.contains("INFO"), "the log was captured: {log:.300}");
    for password in passwords {
        assert!(console.contains(password), "the banner shows {password}");
        assert!(!log.contains(password), "a demo password in the demo's log");
        assert!(
            !shipper_log.contains(password),
            "a demo password in the shipper's log"
        );
    }
    assert!(!log.contains(DEMO_TOKEN) && !shipper_log.contains(DEMO_TOKEN));
}
