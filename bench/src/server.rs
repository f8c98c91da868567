//! The server under bench: `bitesize serve` (a release build) on its own data directory and
//! SQLite database, an admin API token made through the CLI as an operator would, and a
//! keep-alive HTTP client for its API. Shared by the ingest and search benchmarks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process;

/// The settings the ingest and search benches share: where they work, the broker, the
/// server binary, and the generated records.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Scratch directory: the server's data, the bare loop's indexes, the shipper's files.
    #[arg(long)]
    pub work_dir: PathBuf,
    /// Kafka bootstrap servers.
    #[arg(long)]
    pub brokers: String,
    /// The `bitesize` server binary (a release build).
    #[arg(long)]
    pub server_bin: PathBuf,
    /// Container log files the records come from (spread over 5 namespaces).
    #[arg(long, default_value_t = 10)]
    pub files: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Index writer memory per namespace, for the server (`ingest.writer_memory_mb`) and
    /// the bare loop alike (50: the server's default).
    #[arg(long, default_value_t = 50)]
    pub writer_memory_mb: usize,
}

pub struct BenchServer {
    bin: PathBuf,
    env: Vec<(String, String)>,
    pub port: u16,
    token: String,
    child: Option<Child>,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// An answer of the API.
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl BenchServer {
    /// Prepares a server on `data_dir` (its database and a token made now, before the clock
    /// of any run starts); `env` adds `BITESIZE_*` settings. Not started yet.
    pub fn new(bin: &Path, data_dir: &Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut all = vec![
            (
                "BITESIZE_DATA_DIR".to_owned(),
                data_dir.display().to_string(),
            ),
            ("BITESIZE_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            ("BITESIZE_LOG".to_owned(), "warn".to_owned()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let mut server = BenchServer {
            bin: bin.to_owned(),
            env: all,
            port,
            token: String::new(),
            child: None,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        };
        server.cli(&["user", "add", "bench"])?;
        let out = server.cli(&["token", "create", "--subject", "bench", "--role", "admin"])?;
        server.token = out
            .lines()
            .last()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("token create printed nothing"))?;
        Ok(server)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        // Only the bench's settings: none of the caller's BITESIZE_* may leak in.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("BITESIZE_")) {
            command.env_remove(key);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.command().args(args).stdin(Stdio::null()).output()?;
        anyhow::ensure!(
            output.status.success(),
            "bitesize {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Starts `bitesize serve`; its log goes to `log`.
    pub fn start(&mut self, log: &Path) -> anyhow::Result<()> {
        let out = std::fs::File::create(log)?;
        let child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails when the server has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("the server exited ({status}); see its log");
            }
        }
        Ok(())
    }

    /// Waits until the API answers.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            self.ensure_running()?;
            if matches!(self.get("/healthz"), Ok(Answer { status: 200, .. })) {
                return Ok(());
            }
            anyhow::ensure!(
                start.elapsed() < timeout,
                "the server did not answer in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` with the admin token; the body parsed as JSON (`null` when it is not).
    pub fn get(&self, path: &str) -> anyhow::Result<Answer> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let request = self.client.get(url).bearer_auth(&self.token);
        self.runtime.block_on(async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            Ok(Answer {
                status,
                body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            })
        })
    }

    /// `total` of a search (`query` already URL-encoded, `&`-joined parameters).
    pub fn search_total(&self, query: &str) -> anyhow::Result<u64> {
        let answer = self.get(&format!("/api/v1/search?limit=1&{query}"))?;
        anyhow::ensure!(
            answer.status == 200,
            "search {query}: {} {}",
            answer.status,
            answer.body
        );
        answer.body["total"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("search {query}: no total in {}", answer.body))
    }

    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        process::peak_rss_mib(self.pid().ok_or_else(|| anyhow::anyhow!("not started"))?)
    }

    /// SIGTERM, then SIGKILL after 30 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// URL-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The value at quantile `q` (0..=1) of `sorted`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
