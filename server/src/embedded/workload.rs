//! The demo's sample workload: realistic container logs for a few namespaces, written in the
//! CRI format into a directory laid out like `/var/log/containers`, at a modest rate so the
//! demo can run for days (files rotate by rename + create, as the kubelet does).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

/// Lines per second across all containers.
const LINES_PER_SECOND: u32 = 25;
const TICK: Duration = Duration::from_millis(200);
const ROTATE_BYTES: u64 = 20 * 1024 * 1024;

/// The namespaces the demo fills.
pub const NAMESPACES: [&str; 3] = ["shop", "payments", "auth"];

#[derive(Clone, Copy)]
enum Kind {
    Access,
    JsonApp,
    Java,
}

struct Container {
    pod: &'static str,
    namespace: &'static str,
    name: &'static str,
    kind: Kind,
}

const CONTAINERS: [Container; 4] = [
    Container {
        pod: "web-7d9c4b-x2kfp",
        namespace: "shop",
        name: "web",
        kind: Kind::Access,
    },
    Container {
        pod: "cart-5c8f7d-q7tzn",
        namespace: "shop",
        name: "cart",
        kind: Kind::JsonApp,
    },
    Container {
        pod: "api-6b4f9c-m2hvd",
        namespace: "payments",
        name: "api",
        kind: Kind::JsonApp,
    },
    Container {
        pod: "idp-0",
        namespace: "auth",
        name: "idp",
        kind: Kind::Java,
    },
];

/// Writes container logs under `dir` until `shutdown` is set.
pub struct Workload {
    dir: PathBuf,
}

impl Workload {
    pub fn new(dir: &Path) -> Workload {
        Workload {
            dir: dir.to_owned(),
        }
    }

    pub fn run(self, shutdown: Arc<AtomicBool>) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut rng = rand::rng();
        let per_tick = (LINES_PER_SECOND as u128 * TICK.as_millis() / 1000) as usize;
        let mut tick: u64 = 0;
        while !shutdown.load(Ordering::SeqCst) {
            for _ in 0..per_tick {
                let container = &CONTAINERS[rng.random_range(0..CONTAINERS.len())];
                let lines = lines_for(container.kind, &mut rng, tick);
                self.append(container, &lines)?;
            }
            tick += 1;
            std::thread::sleep(TICK);
        }
        Ok(())
    }

    fn path(&self, container: &Container) -> PathBuf {
        let id = container_id(container);
        self.dir.join(format!(
            "{}_{}_{}-{id}.log",
            container.pod, container.namespace, container.name
        ))
    }

    fn append(&self, container: &Container, lines: &[(&str, bool, String)]) -> std::io::Result<()> {
        let path = self.path(container);
        if std::fs::metadata(&path)
            .map(|m| m.len() > ROTATE_BYTES)
            .unwrap_or(false)
        {
            std::fs::rename(&path, path.with_extension("log.1"))?;
        }
        let mut file: File = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut text = String::new();
        for (stream, partial, message) in lines {
            let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let tag = if *partial { "P" } else { "F" };
            text.push_str(&format!("{time} {stream} {tag} {message}\n"));
        }
        file.write_all(text.as_bytes())
    }
}

/// A stable 64-hex container id derived from the container's names.
fn container_id(container: &Container) -> String {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    let mut id = String::with_capacity(64);
    for round in 0..4u64 {
        for byte in container
            .pod
            .bytes()
            .chain(container.name.bytes())
            .chain(round.to_le_bytes())
        {
            state ^= byte as u64;
            state = state.wrapping_mul(0x0100_0000_01b3);
        }
        id.push_str(&format!("{state:016x}"));
    }
    id
}

/// One event's lines: (stream, partial, message).
fn lines_for(kind: Kind, rng: &mut impl Rng, tick: u64) -> Vec<(&'static str, bool, String)> {
    match kind {
        Kind::Access => {
            const PATHS: [&str; 6] = [
                "/",
                "/cart",
                "/checkout",
                "/products/42",
                "/api/search?q=shoes",
                "/static/app.js",
            ];
            let path = PATHS[rng.random_range(0..PATHS.len())];
            let status = [200, 200, 200, 200, 201, 304, 404, 500][rng.random_range(0..8)];
            let bytes = rng.random_range(120..40_000);
            let ms = rng.random_range(1..900);
            let client = format!(
                "10.42.{}.{}",
                rng.random_range(0..4),
                rng.random_range(2..250)
            );
            let method = if path == "/checkout" { "POST" } else { "GET" };
            let stream = if status >= 500 { "stderr" } else { "stdout" };
            vec![(stream, false, format!(
                "{client} - - \"{method} {path} HTTP/1.1\" {status} {bytes} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" {ms}ms"
            ))]
        }
        Kind::JsonApp => {
            let roll = rng.random_range(0..100);
            let (level, msg) = match roll {
                0..=69 => ("info", "payment authorised"),
                70..=84 => ("debug", "cache lookup"),
                85..=94 => ("warn", "retrying upstream call"),
                _ => ("error", "card network timeout"),
            };
            let line = serde_json::json!({
                "level": level,
                "msg": msg,
                "order_id": format!("o-{}", rng.random_range(10_000..99_999)),
                "amount_cents": rng.random_range(100..50_000),
                "latency_ms": rng.random_range(2..1500),
                "tick": tick,
            });
            vec![(
                if level == "error" { "stderr" } else { "stdout" },
                false,
                line.to_string(),
            )]
        }
        Kind::Java => {
            if rng.random_range(0..10) == 0 {
                // A stack trace, one runtime line per source line.
                vec![
                    (
                        "stderr",
                        false,
                        "ERROR [main] c.e.auth.TokenService - token signing failed".to_owned(),
                    ),
                    (
                        "stderr",
                        false,
                        "java.lang.IllegalStateException: signing key not loaded".to_owned(),
                    ),
                    (
                        "stderr",
                        false,
                        "\tat com.example.auth.TokenService.sign(TokenService.java:88)".to_owned(),
                    ),
                    (
                        "stderr",
                        false,
                        "\tat com.example.auth.LoginController.login(LoginController.java:41)"
                            .to_owned(),
                    ),
                    (
                        "stderr",
                        false,
                        "\tat java.base/java.lang.Thread.run(Thread.java:1583)".to_owned(),
                    ),
                ]
            } else if rng.random_range(0..20) == 0 {
                // A long line the runtime split in two (P then F).
                let claims = "x".repeat(rng.random_range(50..200));
                vec![
                    (
                        "stdout",
                        true,
                        format!(
                            "INFO [http-{}] c.e.auth.Audit - issued token with claims {claims}",
                            rng.random_range(1..9)
                        ),
                    ),
                    ("stdout", false, " (end of claims)".to_owned()),
                ]
            } else {
                let user = ["alice", "bob", "carol", "dave"][rng.random_range(0..4)];
                vec![(
                    "stdout",
                    false,
                    format!(
                        "INFO [http-{}] c.e.auth.LoginController - login ok user={user}",
                        rng.random_range(1..9)
                    ),
                )]
            }
        }
    }
}
