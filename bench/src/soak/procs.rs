//! The processes under test: the broker (nisshi on on-disk storage, PostgreSQL or SQLite, so
//! topics, records and committed offsets survive a stop), the server (`bitesize serve` on
//! PostgreSQL) and the shipper, each started, killed and restarted on the same ports and
//! directories. Every exit is reaped with `wait4`, whose resource usage gives the peak RSS
//! and CPU time of each incarnation, killed ones included.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one process (over all its incarnations) cost.
#[derive(Debug, Default, Clone)]
pub struct Usage {
    pub starts: u32,
    pub peak_rss_mib: f64,
    pub cpu_seconds: f64,
    /// Exits the soak did not cause: (seconds into the run, how it ended).
    pub unexpected_exits: Vec<String>,
}

/// Usage per process name.
pub type UsageBook = BTreeMap<&'static str, Usage>;

/// A running child; reaped by [`Proc::try_reap`] or [`Proc::reap`], and killed when
/// dropped unreaped (so an early return of the soak leaves nothing running).
pub struct Proc {
    pub name: &'static str,
    pub pid: i32,
    reaped: Cell<bool>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped.get() {
            self.signal(libc::SIGKILL);
            self.reap();
        }
    }
}

/// How a process ended.
pub struct Exit {
    pub status: String,
    pub peak_rss_mib: f64,
    pub cpu_seconds: f64,
}

impl Proc {
    pub fn spawn(name: &'static str, mut command: Command, log: &Path) -> anyhow::Result<Proc> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {name}: {e}"))?;
        // Reaped with wait4 below, not through `Child` (which does nothing when dropped).
        Ok(Proc {
            name,
            pid: child.id() as i32,
            reaped: Cell::new(false),
        })
    }

    pub fn signal(&self, signal: i32) {
        if self.reaped.get() {
            return; // the pid may belong to another process by now
        }
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet (so not reused).
        unsafe { libc::kill(self.pid, signal) };
    }

    /// The exit, if the process has ended.
    pub fn try_reap(&self) -> Option<Exit> {
        self.wait4(libc::WNOHANG)
    }

    /// Waits for the exit.
    pub fn reap(&self) -> Exit {
        loop {
            if let Some(exit) = self.wait4(0) {
                return exit;
            }
            if self.reaped.get() {
                return Exit {
                    status: "already reaped".into(),
                    peak_rss_mib: 0.0,
                    cpu_seconds: 0.0,
                };
            }
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit.
    pub fn stop(&self, grace: Duration) -> Exit {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(exit) = self.try_reap() {
                return exit;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal(libc::SIGKILL);
        self.reap()
    }

    fn wait4(&self, options: i32) -> Option<Exit> {
        if self.reaped.get() {
            return None;
        }
        let mut status = 0;
        // SAFETY: rusage is plain data, filled by the kernel.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child with valid pointers.
        let pid = unsafe { libc::wait4(self.pid, &mut status, options, &mut usage) };
        if pid != self.pid {
            return None;
        }
        self.reaped.set(true);
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let described = if libc::WIFEXITED(status) {
            format!("exit code {}", libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            format!("signal {}", libc::WTERMSIG(status))
        } else {
            format!("status {status}")
        };
        Some(Exit {
            status: described,
            // ru_maxrss is in KiB on Linux.
            peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
            cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        })
    }
}

impl Usage {
    pub fn record(&mut self, exit: &Exit) {
        self.peak_rss_mib = self.peak_rss_mib.max(exit.peak_rss_mib);
        self.cpu_seconds += exit.cpu_seconds;
    }
}

/// A command for `bin` without the caller's BITESIZE_* variables: the children read their
/// own keys, and none of the soak's environment may leak in.
pub fn command(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("BITESIZE_")) {
        command.env_remove(key);
    }
    command
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// The Kafka-protocol broker, always on the same port and storage.
pub struct Broker {
    bin: PathBuf,
    dir: PathBuf,
    storage: String,
    pub port: u16,
    log: PathBuf,
}

impl Broker {
    /// `storage` is nisshi's `--storage-engine` URL; a relative `sqlite://` path is in the
    /// broker's directory under `work`.
    pub fn new(bin: &Path, work: &Path, storage: &str) -> anyhow::Result<Broker> {
        anyhow::ensure!(
            storage.starts_with("postgres://") || storage.starts_with("sqlite://"),
            "--broker-storage {storage:?}: the soak stops and starts the broker, so its storage \
             must be on disk: postgres://... or sqlite://..."
        );
        let dir = work.join("broker");
        fs::create_dir_all(&dir)?;
        Ok(Broker {
            bin: bin.to_owned(),
            dir,
            storage: storage.to_owned(),
            port: free_port()?,
            log: work.join("broker.log"),
        })
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker and waits until it accepts connections.
    pub fn start(&self) -> anyhow::Result<Proc> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut command = command(&self.bin);
        command
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage])
            .args(["--group-initial-rebalance-delay", "0s"])
            .current_dir(&self.dir);
        let proc = Proc::spawn("broker", command, &self.log)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !accepts(self.port) {
            if let Some(exit) = proc.try_reap() {
                anyhow::bail!(
                    "the broker exited at start ({}); see {}",
                    exit.status,
                    self.log.display()
                );
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the broker did not accept connections on port {} within 60 s; see {}",
                self.port,
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(proc)
    }
}

/// `bitesize serve` on PostgreSQL, always on the same port and data directory.
pub struct Server {
    bin: PathBuf,
    env: Vec<(String, String)>,
    pub port: u16,
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl Server {
    pub fn new(
        bin: &Path,
        work: &Path,
        database_url: &str,
        brokers: &str,
    ) -> anyhow::Result<Server> {
        let data_dir = work.join("server");
        fs::create_dir_all(&data_dir)?;
        let port = free_port()?;
        let env = vec![
            ("BITESIZE_DATA_DIR".into(), data_dir.display().to_string()),
            ("BITESIZE_LISTEN".into(), format!("127.0.0.1:{port}")),
            ("BITESIZE_DATABASE_URL".into(), database_url.to_owned()),
            ("BITESIZE_KAFKA__BROKERS".into(), brokers.to_owned()),
            // Tantivy logs every commit at info.
            ("BITESIZE_LOG".into(), "info,tantivy=warn".into()),
        ];
        Ok(Server {
            bin: bin.to_owned(),
            env,
            port,
            data_dir,
            log: work.join("server.log"),
        })
    }

    fn command(&self) -> Command {
        let mut command = command(&self.bin);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// An admin API token for the load client, made through the CLI (`user add`, then
    /// `token create`), as an operator would.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        let run = |args: &[&str]| -> anyhow::Result<String> {
            let output = self.command().args(args).stdin(Stdio::null()).output()?;
            anyhow::ensure!(
                output.status.success(),
                "bitesize {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
            Ok(String::from_utf8(output.stdout)?)
        };
        run(&["user", "add", "soak"])?;
        let out = run(&["token", "create", "--subject", "soak", "--role", "admin"])?;
        out.lines()
            .last()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("token create printed nothing"))
    }

    pub fn start(&self) -> anyhow::Result<Proc> {
        let mut command = self.command();
        command.arg("serve");
        Proc::spawn("server", command, &self.log)
    }

    /// True when `GET /healthz` answers 200.
    pub fn healthy(&self) -> bool {
        matches!(http_get(self.port, "/healthz", None), Ok((200, _)))
    }

    /// Waits until `proc` (this server) answers `/healthz`; fails with the end of its log
    /// when it exits first or takes longer than `within`.
    pub fn wait_healthy(&self, proc: &Proc, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while !self.healthy() {
            if let Some(exit) = proc.try_reap() {
                anyhow::bail!(
                    "the server exited ({}) before answering /healthz; the end of {}:\n{}",
                    exit.status,
                    self.log.display(),
                    log_tail(&self.log, 15)
                );
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server did not answer /healthz within {within:?}; see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}

/// The shipper over the workload's directory, with its checkpoints in the work directory.
pub struct Shipper {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    pub checkpoint_dir: PathBuf,
}

impl Shipper {
    pub fn new(
        bin: &Path,
        work: &Path,
        logs: &Path,
        brokers: &str,
        partitions: u32,
    ) -> anyhow::Result<Shipper> {
        let checkpoint_dir = work.join("shipper");
        fs::create_dir_all(&checkpoint_dir)?;
        let config = serde_json::json!({
            "include": [format!("{}/*.log", logs.display())],
            "read_from": "beginning",
            "listen": "127.0.0.1:0",
            "checkpoint_dir": checkpoint_dir,
            "node_name": "soak-node",
            "kafka": {"brokers": brokers, "topic_partitions": partitions},
        });
        let path = work.join("shipper.yaml");
        // JSON is YAML.
        fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        Ok(Shipper {
            bin: bin.to_owned(),
            config: path,
            log: work.join("shipper.log"),
            checkpoint_dir,
        })
    }

    pub fn start(&self) -> anyhow::Result<Proc> {
        let mut command = command(&self.bin);
        command
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("BITESIZE_LOG", "info");
        Proc::spawn("shipper", command, &self.log)
    }

    /// Lines the shipper could not deliver and set aside (its dead-letter file), if any.
    pub fn dead_letters(&self) -> u64 {
        fs::read(self.checkpoint_dir.join("dead-letter.ndjson"))
            .map(|b| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count() as u64)
            .unwrap_or(0)
    }
}

/// The last `lines` lines of a log file.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A plain HTTP/1.0 GET on the loopback (the soak's own checks: health, totals); returns the
/// status and body.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no HTTP status in the answer to {path}"))?;
    Ok((status, body.to_owned()))
}
