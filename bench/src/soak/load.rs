//! `bitesize-bench load`: concurrent searches, histograms, facets, live tails and exports
//! against a running server, as a process of its own (the soak starts it beside the
//! pipeline). Every request is written as one JSON line to `--out` (kind, start and end in
//! milliseconds since the epoch, status, and what came back), so the soak can tell failures
//! during a deliberate server kill from real errors; the last line holds the freshness of
//! the tailed records (time written → time received).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// The token is read from this variable, not from the command line (which `ps` shows).
pub const TOKEN_VAR: &str = "BITESIZE_BENCH_TOKEN";

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The server sends a keep-alive every 15 s: a tail silent for longer is stuck.
const TAIL_SILENCE: Duration = Duration::from_secs(40);

#[derive(clap::Args)]
pub struct Args {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// Namespaces to read, comma-separated.
    #[arg(long, value_delimiter = ',')]
    namespaces: Vec<String>,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Concurrent clients looping over searches, histograms and facets.
    #[arg(long, default_value_t = 4)]
    searchers: usize,
    /// Concurrent live tails (reconnecting when a stream ends).
    #[arg(long, default_value_t = 2)]
    tails: usize,
    /// Concurrent clients looping over exports.
    #[arg(long, default_value_t = 1)]
    exporters: usize,
    /// One JSON line per request.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

type Out = Arc<Mutex<BufWriter<File>>>;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn emit(out: &Out, line: serde_json::Value) {
    let mut out = out.lock().expect("output lock");
    let _ = writeln!(out, "{line}");
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let token = std::env::var(TOKEN_VAR).map_err(|_| {
        anyhow::anyhow!("set {TOKEN_VAR} to an API token that may read the namespaces")
    })?;
    anyhow::ensure!(
        !args.namespaces.is_empty(),
        "--namespaces: name at least one"
    );
    let out: Out = Arc::new(Mutex::new(BufWriter::new(File::create(&args.out)?)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let freshness = runtime.block_on(load(&args, token, out.clone()))?;
    let mut sorted = freshness;
    sorted.sort_unstable();
    // Nearest rank.
    let n = sorted.len();
    let pick = |q: f64| (n > 0).then(|| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]);
    emit(
        &out,
        json!({"kind": "freshness", "samples": sorted.len(), "p50_ms": pick(0.5),
               "p99_ms": pick(0.99), "max_ms": sorted.last()}),
    );
    out.lock().expect("output lock").flush()?;
    Ok(())
}

async fn load(args: &Args, token: String, out: Out) -> anyhow::Result<Vec<u64>> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let base = Client {
        http: client,
        url: args.url.trim_end_matches('/').to_owned(),
        token,
        namespaces: args.namespaces.clone(),
        out,
        deadline,
    };
    let freshness = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..args.searchers {
        let (client, seed) = (base.clone(), args.seed + i as u64);
        tasks.push(tokio::spawn(async move { client.searcher(seed).await }));
    }
    for i in 0..args.tails {
        let (client, freshness) = (base.clone(), freshness.clone());
        let namespace = args.namespaces[i % args.namespaces.len()].clone();
        tasks.push(tokio::spawn(async move {
            client.tailer(namespace, freshness).await
        }));
    }
    for i in 0..args.exporters {
        let (client, seed) = (base.clone(), args.seed + 1000 + i as u64);
        tasks.push(tokio::spawn(async move { client.exporter(seed).await }));
    }
    for task in tasks {
        task.await?;
    }
    let samples = std::mem::take(&mut *freshness.lock().expect("freshness lock"));
    Ok(samples)
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
    namespaces: Vec<String>,
    out: Out,
    deadline: Instant,
}

impl Client {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    /// Searches (newest page, a query and its next page, all namespaces), histograms and
    /// facets, one after the other with a short pause.
    async fn searcher(self, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        while Instant::now() < self.deadline {
            let ns = &self.namespaces[rng.random_range(0..self.namespaces.len())];
            let (kind, path) = match rng.random_range(0..6) {
                0 => ("search", format!("/api/v1/search?namespace={ns}&from=now-15m&limit=100")),
                1 => (
                    "search",
                    format!("/api/v1/search?namespace={ns}&q=fields.level:error&from=now-15m&limit=50"),
                ),
                2 => (
                    "search",
                    "/api/v1/search?q=GET%20fields.status:404&from=now-5m&limit=20".to_owned(),
                ),
                3 => (
                    "search",
                    format!("/api/v1/search?namespace={ns}&q=fields.latency_ms:%3E1990&from=now-1h&limit=10"),
                ),
                4 => ("histogram", format!("/api/v1/histogram?namespace={ns}&from=now-15m")),
                _ => (
                    "facets",
                    format!("/api/v1/facets?namespace={ns}&field=fields.level&from=now-15m"),
                ),
            };
            let cursor = self.request(kind, &path).await;
            // The next page of a query, when there is one.
            if let Some(cursor) = cursor {
                let next = format!("{path}&cursor={cursor}");
                self.request("search_next_page", &next).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..100))).await;
        }
    }

    /// One request; returns the `next_cursor` of a search that has one.
    async fn request(&self, kind: &str, path: &str) -> Option<String> {
        let start = now_ms();
        let result = async {
            let response = self.get(path).timeout(REQUEST_TIMEOUT).send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        let end = now_ms();
        match result {
            Ok((status, body)) => {
                let cursor = (status == 200 && kind == "search")
                    .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
                    .flatten()
                    .and_then(|v| v["next_cursor"].as_str().map(str::to_owned));
                let error = (status >= 300).then(|| String::from_utf8_lossy(&body).into_owned());
                emit(
                    &self.out,
                    json!({"kind": kind, "start_ms": start, "end_ms": end, "status": status, "error": error}),
                );
                cursor
            }
            Err(e) => {
                emit(
                    &self.out,
                    json!({"kind": kind, "start_ms": start, "end_ms": end, "status": 0, "error": e.to_string()}),
                );
                None
            }
        }
    }

    /// Exports of the last 30 s of a namespace's server errors, NDJSON and CSV in turn, read
    /// to the end.
    async fn exporter(self, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut csv = false;
        while Instant::now() < self.deadline {
            let ns = &self.namespaces[rng.random_range(0..self.namespaces.len())];
            let format = if csv { "csv" } else { "ndjson" };
            csv = !csv;
            let path = format!(
                "/api/v1/export?namespace={ns}&q=fields.status:500&from=now-30s&format={format}"
            );
            let start = now_ms();
            let (mut status, mut lines, mut bytes, mut error) = (0u16, 0u64, 0u64, None);
            match self
                .get(&path)
                .timeout(Duration::from_secs(120))
                .send()
                .await
            {
                Ok(mut response) => {
                    status = response.status().as_u16();
                    loop {
                        match response.chunk().await {
                            Ok(Some(chunk)) => {
                                bytes += chunk.len() as u64;
                                lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                            }
                            Ok(None) => break,
                            Err(e) => {
                                error = Some(format!("export cut short: {e}"));
                                break;
                            }
                        }
                    }
                    if status >= 300 && error.is_none() {
                        error = Some(format!("status {status}"));
                    }
                }
                Err(e) => error = Some(e.to_string()),
            }
            emit(
                &self.out,
                json!({"kind": "export", "start_ms": start, "end_ms": now_ms(), "status": status,
                       "lines": lines, "bytes": bytes, "error": error}),
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// A live tail of a namespace's errors until the deadline, reconnecting whenever the
    /// stream ends. Counts events, repeats of an event id within a connection, and the
    /// freshness of each record (now − its time).
    async fn tailer(self, namespace: String, freshness: Arc<Mutex<Vec<u64>>>) {
        let path = format!("/api/v1/tail?namespace={namespace}&q=fields.level:error");
        while Instant::now() < self.deadline {
            let start = now_ms();
            let (mut status, mut events, mut repeats, mut dropped) = (0u16, 0u64, 0u64, false);
            let ended: Result<&str, String> = match self.get(&path).send().await {
                Err(e) => Err(e.to_string()),
                Ok(mut response) => {
                    status = response.status().as_u16();
                    if status != 200 {
                        Err(format!("status {status}"))
                    } else {
                        let mut seen = HashSet::new();
                        let mut pending = String::new();
                        loop {
                            let left = self.deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                break Ok("stopped");
                            }
                            let chunk = match tokio::time::timeout(
                                left.min(TAIL_SILENCE),
                                response.chunk(),
                            )
                            .await
                            {
                                Err(_) if left <= TAIL_SILENCE => break Ok("stopped"),
                                Err(_) => break Err("no data or keep-alive for 40 s".to_owned()),
                                Ok(Err(e)) => break Err(format!("stream cut: {e}")),
                                Ok(Ok(None)) => break Err("stream ended".to_owned()),
                                Ok(Ok(Some(chunk))) => chunk,
                            };
                            pending.push_str(&String::from_utf8_lossy(&chunk));
                            while let Some(at) = pending.find("\n\n") {
                                let event: String = pending.drain(..at + 2).collect();
                                if event.starts_with("event: dropped") {
                                    dropped = true;
                                }
                                if !event.starts_with("event: record") {
                                    continue;
                                }
                                events += 1;
                                let mut id = None;
                                for line in event.lines() {
                                    if let Some(v) = line.strip_prefix("id: ") {
                                        id = Some(v.to_owned());
                                    } else if let Some(data) = line.strip_prefix("data: ") {
                                        if let Some(age) = age_ms(data) {
                                            freshness.lock().expect("freshness lock").push(age);
                                        }
                                    }
                                }
                                if let Some(id) = id {
                                    if !seen.insert(id) {
                                        repeats += 1;
                                    }
                                }
                            }
                            if dropped {
                                break Err("dropped by the server (client behind)".to_owned());
                            }
                        }
                    }
                }
            };
            let error = ended.err();
            emit(
                &self.out,
                json!({"kind": "tail", "start_ms": start, "end_ms": now_ms(), "status": status,
                       "events": events, "repeats": repeats, "dropped": dropped, "error": error}),
            );
            if Instant::now() < self.deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Milliseconds between a record's `time` and now.
fn age_ms(data: &str) -> Option<u64> {
    let record: serde_json::Value = serde_json::from_str(data).ok()?;
    let time = chrono::DateTime::parse_from_rfc3339(record["time"].as_str()?).ok()?;
    let age = chrono::Utc::now().signed_duration_since(time);
    Some(age.num_milliseconds().max(0) as u64)
}
