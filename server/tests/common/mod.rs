//! Shared harness for end-to-end tests: the real `bitesize` and `bitesize-shipper` binaries
//! as child processes, against the real broker and PostgreSQL that `./scripts/test` starts.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The broker the tests talk to. Missing: the test fails and says which service it needs.
pub fn kafka_bootstrap() -> String {
    std::env::var("TEST_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!("this test needs a Kafka-protocol broker: run ./scripts/test, or start one and set TEST_KAFKA_BOOTSTRAP=host:port")
    })
}

/// Creates `topic` on the test broker with `partitions` partitions.
pub async fn create_topic(topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", kafka_bootstrap())
            .create()
            .unwrap();
    let result = admin
        .create_topics(
            [&NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(result[0].is_ok(), "{result:?}");
}

/// A producer to the test broker that batches (20 ms) and queues up to 500 000 records.
pub fn producer() -> rdkafka::producer::FutureProducer {
    rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .unwrap()
}

pub fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("this test needs PostgreSQL: run ./scripts/test, or set TEST_POSTGRES_URL=postgres://user@host:port/db")
    })
}

/// A fresh PostgreSQL database for one test; returns its URL.
pub async fn fresh_postgres_database() -> String {
    use sea_orm::{ConnectionTrait, Database};
    let admin_url = postgres_url();
    let admin = Database::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {admin_url}: {e}"));
    let name = format!("bitesize_test_{}", unique());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create database");
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("database URL ends with /dbname");
    format!("{base}/{name}")
}

/// A short random suffix so tests sharing one broker never share topics or groups.
pub fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}{:x}", std::process::id(), nanos)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn binary(name: &str) -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_bitesize"));
    let path = if name == "bitesize" {
        server
    } else {
        server.with_file_name(name)
    };
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (./scripts/test does)",
        path.display()
    );
    path
}

/// A container log directory the shipper tails, written like the kubelet writes it.
pub struct LogDir {
    pub path: PathBuf,
}

impl LogDir {
    pub fn new(root: &Path) -> LogDir {
        let path = root.join("containers");
        std::fs::create_dir_all(&path).unwrap();
        LogDir { path }
    }

    pub fn file(&self, pod: &str, namespace: &str, container: &str) -> PathBuf {
        let id = format!(
            "{:0>64}",
            format!("{:x}", pod.len() * 7919 + container.len())
        );
        self.path
            .join(format!("{pod}_{namespace}_{container}-{id}.log"))
    }

    /// Appends raw lines (each gets a newline).
    pub fn append(&self, file: &Path, lines: &[String]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .unwrap();
        let mut text = String::new();
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        f.write_all(text.as_bytes()).unwrap();
    }
}

pub fn cri(stream: &str, tag: &str, message: &str) -> String {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    format!("{time} {stream} {tag} {message}")
}

/// Runs a `bitesize` command (not the server) with `env`; returns its stdout.
pub fn cli(env: &HashMap<String, String>, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(binary("bitesize"))
        .args(args)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bitesize");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "bitesize {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The `bitesize serve` process, with an admin API token made through the CLI.
pub struct Server {
    child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    pub env: HashMap<String, String>,
    /// An admin's API token; every helper request below sends it.
    pub admin_token: String,
}

impl Server {
    /// Starts a server that indexes only `namespace` (its own topic pattern and group).
    pub fn start(data_dir: &Path, namespace: &str, database_url: Option<&str>) -> Server {
        Server::start_with_pattern(data_dir, &format!("^logs\\.{namespace}$"), database_url)
    }

    /// Starts a server indexing the topics `pattern` matches (its own consumer group).
    pub fn start_with_pattern(
        data_dir: &Path,
        pattern: &str,
        database_url: Option<&str>,
    ) -> Server {
        Server::start_with_settings(data_dir, pattern, database_url, &[])
    }

    fn spawn(data_dir: &Path, env: HashMap<String, String>, admin_token: String) -> Server {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("server.log"))
            .unwrap();
        let child = Command::new(binary("bitesize"))
            .arg("serve")
            .envs(&env)
            .env("BITESIZE_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start bitesize");
        let server = Server {
            child,
            port,
            data_dir: data_dir.to_owned(),
            env,
            admin_token,
        };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if healthz_status(self.port) == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not become healthy; see {}",
                self.data_dir.with_extension("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The server's process id (to read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts the server again on the same data directory and settings.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Server::spawn(
            &self.data_dir.clone(),
            self.env.clone(),
            self.admin_token.clone(),
        );
    }

    /// A GET with `token` as bearer (`None`: anonymous).
    pub fn get_as(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let request = reqwest::Client::new().get(self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        self.get_json_as(path, Some(&self.admin_token)).await
    }

    pub async fn get_json_as(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let response = self.get_as(path, token).send().await.expect("request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .get_as(path, Some(&self.admin_token))
            .send()
            .await
            .expect("request");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The `log` of every record in `namespace` (up to 10 000).
    pub async fn all_logs(&self, namespace: &str) -> (u64, Vec<String>) {
        let (status, body) = self
            .get_json(&format!("/api/v1/search?namespace={namespace}&limit=10000"))
            .await;
        assert_eq!(status, 200, "{body}");
        let logs = body["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["log"].as_str().unwrap().to_owned())
            .collect();
        (body["total"].as_u64().unwrap(), logs)
    }

    /// Waits until `namespace` holds at least `count` records; returns the total seen.
    pub async fn wait_total(&self, namespace: &str, count: u64, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let (_, body) = self
                .get_json(&format!("/api/v1/search?namespace={namespace}&limit=1"))
                .await;
            let total = body["total"].as_u64().unwrap_or(0);
            if total >= count || Instant::now() > deadline {
                return total;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The test OpenID Connect provider (`scripts/oidc-provider`, started by `./scripts/test`).
/// Missing: the test fails and says how to get one.
pub fn oidc_issuer() -> String {
    std::env::var("TEST_OIDC_ISSUER").unwrap_or_else(|_| {
        panic!("this test needs the test OpenID Connect provider (scripts/oidc-provider): run ./scripts/test, or start `node scripts/oidc-provider/provider.mjs` and set TEST_OIDC_ISSUER=http://127.0.0.1:PORT")
    })
}

/// The test provider's static client: (client id, client secret).
pub fn oidc_client() -> (String, String) {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    (
        var("TEST_OIDC_CLIENT_ID", "bitesize"),
        var("TEST_OIDC_CLIENT_SECRET", "bitesize-test-secret"),
    )
}

impl Server {
    /// Like [`Server::start_with_pattern`], with more settings (`BITESIZE_*` variables).
    pub fn start_with_settings(
        data_dir: &Path,
        pattern: &str,
        database_url: Option<&str>,
        settings: &[(String, String)],
    ) -> Server {
        let group = unique();
        let mut env = HashMap::new();
        env.insert("BITESIZE_DATA_DIR".into(), data_dir.display().to_string());
        env.insert("BITESIZE_KAFKA__BROKERS".into(), kafka_bootstrap());
        env.insert("BITESIZE_KAFKA__GROUP_ID".into(), format!("test-{group}"));
        env.insert("BITESIZE_KAFKA__TOPIC_PATTERN".into(), pattern.to_owned());
        env.insert("BITESIZE_INGEST__COMMIT_INTERVAL_MS".into(), "300".into());
        if let Some(url) = database_url {
            env.insert("BITESIZE_DATABASE_URL".into(), url.to_owned());
        }
        env.extend(settings.iter().cloned());
        std::fs::create_dir_all(data_dir).unwrap();
        cli(&env, &["user", "add", "admin"], None);
        let out = cli(
            &env,
            &["token", "create", "--subject", "admin", "--role", "admin"],
            None,
        );
        let admin_token = out.lines().last().unwrap().to_owned();
        Server::spawn(data_dir, env, admin_token)
    }
}

/// A browser for sign-in flows: follows nothing by itself, keeps cookies per origin
/// (`scheme://host:port`; paths and expiry ignored, an emptied cookie is forgotten).
pub struct Browser {
    client: reqwest::Client,
    jar: HashMap<String, std::collections::BTreeMap<String, String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: HashMap::new(),
        }
    }

    fn origin(url: &reqwest::Url) -> String {
        format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        )
    }

    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(url).unwrap();
        self.jar.get(&Browser::origin(&url))?.get(name).cloned()
    }

    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        let url = reqwest::Url::parse(url).unwrap();
        self.jar
            .entry(Browser::origin(&url))
            .or_default()
            .insert(name.into(), value.into());
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, url).await
    }

    /// A POST as a form on the page's own site sends it (with that `Origin`).
    pub async fn post(&mut self, url: &str) -> reqwest::Response {
        self.send(reqwest::Method::POST, url).await
    }

    async fn send(&mut self, method: reqwest::Method, url: &str) -> reqwest::Response {
        let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let origin = Browser::origin(&parsed);
        let post = method == reqwest::Method::POST;
        let mut request = self.client.request(method, parsed);
        if post {
            request = request.header("origin", &origin);
        }
        if let Some(cookies) = self.jar.get(&origin).filter(|c| !c.is_empty()) {
            let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header("cookie", header.join("; "));
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let cookies = self.jar.entry(origin).or_default();
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let expired = text.to_ascii_lowercase().contains("max-age=0");
                if value.is_empty() || expired {
                    cookies.remove(name.trim());
                } else {
                    cookies.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
        response
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `bitesize-shipper run` process over a log directory.
pub struct Shipper {
    child: Child,
}

impl Shipper {
    pub fn start(root: &Path, logs: &LogDir) -> Shipper {
        let config = root.join("shipper.yaml");
        std::fs::write(
            &config,
            format!(
                "include: [\"{}/*.log\"]\nlisten: 127.0.0.1:0\ncheckpoint_dir: {}\nnode_name: test-node\nkafka:\n  brokers: {}\n",
                logs.path.display(),
                root.join("shipper").display(),
                kafka_bootstrap()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(root.join("shipper.log")).unwrap();
        let child = Command::new(binary("bitesize-shipper"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start bitesize-shipper");
        Shipper { child }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status of `GET /healthz` over a plain socket, for polling from synchronous code.
fn healthz_status(port: u16) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// A broker process of the test's own (killed when dropped).
pub struct OwnBroker(std::process::Child);

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A nisshi of the test's own on `port`, storage in `dir`, with `extra` flags
/// (`--authentication`; `--cert server.pem --key server.key` for TLS only: the listener URL
/// keeps its `tcp://` scheme).
pub fn own_broker(dir: &Path, port: u16, extra: &[&str]) -> OwnBroker {
    let bin = std::env::var("BITESIZE_BROKER_BIN").expect(
        "this test starts its own broker: set BITESIZE_BROKER_BIN to nisshi (./scripts/test does)",
    );
    let url = format!("tcp://127.0.0.1:{port}");
    let mut command = Command::new(bin);
    command
        .current_dir(dir)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args([
            "--storage-engine",
            "sqlite://broker.db",
            "--group-initial-rebalance-delay",
            "0s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.args(extra);
    let broker = OwnBroker(command.spawn().expect("start nisshi"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    broker
}

/// A broker of the test's own on a free port that requires a SASL/SCRAM-SHA-256 login as
/// `user` with `password`: the user is made while it is open, then it restarts requiring
/// logins. Returns the broker and its port.
pub fn sasl_broker(dir: &Path, user: &str, password: &str) -> (OwnBroker, u16) {
    let port = free_port();
    let setup = own_broker(dir, port, &[]);
    let created = Command::new(std::env::var("BITESIZE_BROKER_BIN").unwrap())
        .args([
            "user",
            "create",
            "--broker",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .args(["--mechanism", "scram256", user, password])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    drop(setup);
    (own_broker(dir, port, &["--authentication"]), port)
}
