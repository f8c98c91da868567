//! `bitesize-bench search`: search on a large index (10 M records by default) through the
//! real server's REST API and, on the same index files in this process, through bare Tantivy
//! with the same schema and query parser; histograms over the full range through the API;
//! and the delay from a line written to a container log file until a search finds it,
//! through the whole pipeline (file → shipper → broker → server → search).
//!
//! The records are indexed straight into the server's data directory by the ingest bench's
//! bare loop (the same records and documents as through Kafka, without the hour that many
//! records take through the pipeline on a shared machine); the server then opens those
//! indexes as its own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitesize_query::schema::{schema, Fields};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery};
use tantivy::schema::Value;
use tantivy::{DateTime, Index, IndexReader, Order, ReloadPolicy, TantivyDocument, Term};

use crate::ingest::BareIndexer;
use crate::server::{encode, quantile, BenchArgs, BenchServer};
use crate::workload::{self, LineMaker, LogFile, RecordMaker};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: BenchArgs,
    /// The `bitesize-shipper` binary (a release build), for the line-to-search delay.
    #[arg(long)]
    shipper_bin: PathBuf,
    #[arg(long, default_value_t = 10_000_000)]
    records: u64,
    /// Keep the index a previous run loaded with the same records, files and seed.
    #[arg(long)]
    reuse_index: bool,
    /// Searches (each run in process and through the API).
    #[arg(long, default_value_t = 300)]
    queries: usize,
    #[arg(long, default_value_t = 30)]
    histograms: usize,
    /// Lines written and waited for in the line-to-search run.
    #[arg(long, default_value_t = 60)]
    probes: usize,
    /// Other lines written meanwhile, in MB/s over 5 more files of the probe's namespace.
    #[arg(long, default_value_t = 1)]
    background_mb_per_s: u64,
}

/// Page size of the searches.
const LIMIT: usize = 100;
const PROBE_NAMESPACE: &str = "latency";

/// What the load left, kept beside the index so a later run can reuse it.
struct Loaded {
    records: u64,
    files: usize,
    seed: u64,
    first_nanos: i64,
    last_nanos: i64,
    /// Trace ids of a few records, for needle searches.
    trace_ids: Vec<String>,
}

impl Loaded {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "records": self.records,
            "files": self.files,
            "seed": self.seed,
            "first_nanos": self.first_nanos,
            "last_nanos": self.last_nanos,
            "trace_ids": self.trace_ids,
        })
    }

    fn from_json(value: &serde_json::Value) -> anyhow::Result<Loaded> {
        let number = |key: &str| {
            value[key]
                .as_i64()
                .ok_or_else(|| anyhow::anyhow!("bench-loaded.json: no {key}"))
        };
        Ok(Loaded {
            records: number("records")? as u64,
            files: number("files")? as usize,
            seed: number("seed")? as u64,
            first_nanos: number("first_nanos")?,
            last_nanos: number("last_nanos")?,
            trace_ids: value["trace_ids"]
                .as_array()
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| id.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// One search: query text and time range.
struct Search {
    q: String,
    from: i64,
    to: i64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.common.work_dir)?;
    let work = args.common.work_dir.canonicalize()?;
    let data_dir = work.join("server");
    let loaded = load(&args, &data_dir)?;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let prefix = format!("bench-{run_id}");
    // A fresh database and probe namespace each run; the loaded indexes stay.
    for name in ["bitesize.db", "bitesize.db-wal", "bitesize.db-shm"] {
        let _ = std::fs::remove_file(data_dir.join(name));
    }
    let _ = std::fs::remove_dir_all(data_dir.join("index").join(PROBE_NAMESPACE));
    let mut server = BenchServer::new(
        &args.common.server_bin,
        &data_dir,
        &[
            ("BITESIZE_KAFKA__BROKERS", args.common.brokers.clone()),
            ("BITESIZE_KAFKA__GROUP_ID", format!("{prefix}-indexer")),
            ("BITESIZE_KAFKA__TOPIC_PATTERN", format!("^{prefix}\\..*")),
            (
                "BITESIZE_KAFKA__TOPIC_TEMPLATE",
                format!("{prefix}.{{namespace}}"),
            ),
            // The generated records are from 2026-11-25: keep them whatever today is.
            ("BITESIZE_RETENTION__DEFAULT_DAYS", "36500".to_owned()),
            ("BITESIZE_ARCHIVE__ENABLED", "false".to_owned()),
        ],
    )?;
    server.start(&work.join("server.log"))?;
    server.wait_ready(Duration::from_secs(120))?;
    let total = server.search_total("")?;
    anyhow::ensure!(
        total == args.records,
        "the server sees {total} records, {} loaded",
        args.records
    );

    let searches = searches(&args, &loaded);
    let inprocess = InProcess::open(&data_dir.join("index"))?;
    let figures = compare(&server, &inprocess, &searches)?;
    let histograms = histograms(&server, &loaded, args.histograms)?;
    let e2e = line_to_search(&args, &work, &prefix, &mut server)?;
    server.stop();

    let round1 = |x: f64| (x * 10.0).round() / 10.0;
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let summary = json!({
        "bench": "search",
        "records": args.records,
        "queries": searches.len(),
        "p50_ms": round1(figures.rest_p50),
        "p99_ms": round1(figures.rest_p99),
        "inprocess_p50_ms": round1(figures.inprocess_p50),
        "inprocess_p99_ms": round1(figures.inprocess_p99),
        "server_took_p50_ms": round1(figures.took_p50),
        "server_took_p99_ms": round1(figures.took_p99),
        "rest_vs_inprocess": round2(figures.rest_p50 / figures.inprocess_p50),
        "rest_vs_inprocess_p99": round2(figures.rest_p99 / figures.inprocess_p99),
        "histogram_p50_ms": round1(histograms.0),
        "histogram_p99_ms": round1(histograms.1),
        "e2e_p50_ms": round1(e2e.0),
        "e2e_p99_ms": round1(e2e.1),
        "e2e_max_ms": round1(e2e.2),
    });
    println!("{summary}");
    Ok(())
}

/// Indexes the records into `<data_dir>/index/<namespace>` with the bare loop, unless
/// `--reuse-index` finds them there already.
fn load(args: &Args, data_dir: &Path) -> anyhow::Result<Loaded> {
    let marker = data_dir.join("bench-loaded.json");
    if args.reuse_index {
        if let Ok(text) = std::fs::read_to_string(&marker) {
            let loaded = Loaded::from_json(&serde_json::from_str(&text)?)?;
            if (loaded.records, loaded.files, loaded.seed)
                == (args.records, args.common.files, args.common.seed)
            {
                eprintln!(
                    "reusing the index of {} records in {}",
                    loaded.records,
                    data_dir.display()
                );
                return Ok(loaded);
            }
        }
    }
    workload::fresh_dir(data_dir)?;
    let files = workload::log_files(Path::new("/var/log/containers"), args.common.files);
    let mut maker = RecordMaker::new(&files, args.common.seed);
    let mut indexer = BareIndexer::create(&data_dir.join("index"), args.common.writer_memory_mb)?;
    let mut loaded = Loaded {
        records: args.records,
        files: args.common.files,
        seed: args.common.seed,
        first_nanos: 0,
        last_nanos: 0,
        trace_ids: Vec::new(),
    };
    let started = Instant::now();
    let sample_every = (args.records / 20).max(1);
    for i in 0..args.records {
        let made = maker.record();
        if i == 0 || i + 1 == args.records || i % sample_every == 0 {
            let record = bitesize_record::Record::decode(&made.payload)?;
            let nanos = chrono::DateTime::parse_from_rfc3339(record.time.as_deref().unwrap_or(""))?
                .timestamp_nanos_opt()
                .unwrap_or(0);
            if i == 0 {
                loaded.first_nanos = nanos;
            }
            loaded.last_nanos = nanos;
            if let Some(trace) = record.fields.as_ref().and_then(|f| f["trace_id"].as_str()) {
                loaded.trace_ids.push(trace.to_owned());
            }
        }
        indexer.add(made.namespace, &made.payload)?;
        if (i + 1) % 1_000_000 == 0 {
            eprintln!(
                "  loaded {} M records in {:.0} s",
                (i + 1) / 1_000_000,
                started.elapsed().as_secs_f64()
            );
        }
    }
    indexer.commit()?;
    indexer.finish()?;
    eprintln!(
        "loaded {} records with the bare loop in {:.0} s (merges included)",
        args.records,
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, loaded.to_json().to_string())?;
    Ok(loaded)
}

/// The searches: a few kinds of query (a frequent word, a rarer word, a numeric field, a
/// metadata field, a numeric range, a needle) over a few time ranges (the last 15 minutes
/// and the last hour of the data, all of it, 15 minutes somewhere in it).
fn searches(args: &Args, loaded: &Loaded) -> Vec<Search> {
    let mut rng = StdRng::seed_from_u64(args.common.seed);
    let pod = &workload::log_files(Path::new("/"), args.common.files)[3].pod;
    let (first, last) = (loaded.first_nanos, loaded.last_nanos + 1);
    let minutes = |m: i64| m * 60 * 1_000_000_000;
    (0..args.queries)
        .map(|i| {
            let q = match i % 6 {
                0 => "error".to_owned(),
                1 => "checkout".to_owned(),
                2 => "fields.status:404".to_owned(),
                3 => format!("pod:{pod}"),
                4 => "fields.latency_ms:>1900".to_owned(),
                _ => format!(
                    "fields.trace_id:{}",
                    loaded.trace_ids[rng.random_range(0..loaded.trace_ids.len())]
                ),
            };
            let (from, to) = match (i / 6) % 4 {
                0 => (last - minutes(15), last),
                1 => (last - minutes(60), last),
                2 => (first, last),
                _ => {
                    let start = rng.random_range(first..(last - minutes(15)).max(first + 1));
                    (start, start + minutes(15))
                }
            };
            Search {
                q,
                from: from.max(first),
                to,
            }
        })
        .collect()
}

fn rfc3339(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The same indexes opened in this process: bare Tantivy with the schema and query parser of
/// `bitesize-query`, newest first by the time fast field.
struct InProcess {
    indexes: Vec<(String, Index, IndexReader)>,
    fields: Fields,
}

impl InProcess {
    fn open(dir: &Path) -> anyhow::Result<InProcess> {
        let mut indexes = Vec::new();
        let mut names: Vec<String> = std::fs::read_dir(dir)?
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != PROBE_NAMESPACE)
            .collect();
        names.sort();
        for name in names {
            let index = Index::open_in_dir(dir.join(&name))?;
            let reader = index
                .reader_builder()
                .reload_policy(ReloadPolicy::Manual)
                .try_into()?;
            indexes.push((name, index, reader));
        }
        Ok(InProcess {
            indexes,
            fields: schema().1,
        })
    }

    /// The newest `LIMIT` records (parsed, as the API returns them) and the exact total.
    fn search(&self, search: &Search) -> anyhow::Result<(Vec<serde_json::Value>, u64)> {
        let mut found: Vec<(DateTime, usize, tantivy::DocAddress)> = Vec::new();
        let mut total = 0;
        let searchers: Vec<tantivy::Searcher> =
            self.indexes.iter().map(|(_, _, r)| r.searcher()).collect();
        for (i, (_, index, _)) in self.indexes.iter().enumerate() {
            let text = bitesize_query::parse(&search.q, index, &self.fields)
                .map_err(|e| anyhow::anyhow!("query {}: {e}", search.q))?;
            let term = |nanos| {
                Term::from_field_date(self.fields.time, DateTime::from_timestamp_nanos(nanos))
            };
            let range: Box<dyn Query> = Box::new(RangeQuery::new(
                std::ops::Bound::Included(term(search.from)),
                std::ops::Bound::Excluded(term(search.to)),
            ));
            let query = BooleanQuery::new(vec![(Occur::Must, text), (Occur::Must, range)]);
            let top =
                TopDocs::with_limit(LIMIT).order_by_fast_field::<DateTime>("time", Order::Desc);
            let (hits, count) = searchers[i].search(&query, &(top, Count))?;
            total += count as u64;
            found.extend(hits.into_iter().map(|(time, address)| (time, i, address)));
        }
        found.sort_by_key(|hit| std::cmp::Reverse(hit.0));
        found.truncate(LIMIT);
        let mut records = Vec::with_capacity(found.len());
        for (_, i, address) in found {
            let doc: TantivyDocument = searchers[i].doc(address)?;
            let record = doc
                .get_first(self.fields.record)
                .and_then(|v| v.as_str())
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(serde_json::Value::Null);
            records.push(record);
        }
        Ok((records, total))
    }
}

struct Latencies {
    rest_p50: f64,
    rest_p99: f64,
    inprocess_p50: f64,
    inprocess_p99: f64,
    took_p50: f64,
    took_p99: f64,
}

/// Each search in process, then through the API, one after the other (the same minutes of
/// a shared machine for both); the answers must agree.
fn compare(
    server: &BenchServer,
    inprocess: &InProcess,
    searches: &[Search],
) -> anyhow::Result<Latencies> {
    // One untimed round of each kind first: the first touch of each index file is a disk read.
    for search in searches.iter().take(24) {
        inprocess.search(search)?;
        server.get(&search_path(search))?;
    }
    let (mut rest, mut local, mut took) = (Vec::new(), Vec::new(), Vec::new());
    for search in searches {
        let started = Instant::now();
        let (records, total) = inprocess.search(search)?;
        local.push(started.elapsed().as_secs_f64() * 1000.0);

        let path = search_path(search);
        let started = Instant::now();
        let answer = server.get(&path)?;
        rest.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            answer.status == 200,
            "{path}: {} {}",
            answer.status,
            answer.body
        );
        took.push(answer.body["took_ms"].as_f64().unwrap_or(f64::NAN));
        let api_total = answer.body["total"].as_u64().unwrap_or(u64::MAX);
        let api_hits = answer.body["hits"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(
            api_total == total && api_hits == records.len(),
            "{path}: the API found {api_total} ({api_hits} on the page), bare Tantivy {total} ({})",
            records.len()
        );
    }
    per_kind(searches, &rest, &local);
    for v in [&mut rest, &mut local, &mut took] {
        v.sort_by(f64::total_cmp);
    }
    let figures = Latencies {
        rest_p50: quantile(&rest, 0.5),
        rest_p99: quantile(&rest, 0.99),
        inprocess_p50: quantile(&local, 0.5),
        inprocess_p99: quantile(&local, 0.99),
        took_p50: quantile(&took, 0.5),
        took_p99: quantile(&took, 0.99),
    };
    eprintln!(
        "search, newest {LIMIT} ({} searches): API p50 {:.1} ms p99 {:.1} ms (server's took_ms p50 {:.0} p99 {:.0}); in process p50 {:.1} ms p99 {:.1} ms",
        searches.len(),
        figures.rest_p50,
        figures.rest_p99,
        figures.took_p50,
        figures.took_p99,
        figures.inprocess_p50,
        figures.inprocess_p99
    );
    Ok(figures)
}

/// Median and worst per kind of query (the text before its first `:` or its value), to
/// see which kind is slow; `rest` and `local` are in the order of `searches`.
fn per_kind(searches: &[Search], rest: &[f64], local: &[f64]) {
    let kind = |q: &str| q.split([':', '>']).next().unwrap_or(q).to_owned();
    let mut kinds: Vec<String> = searches.iter().map(|s| kind(&s.q)).collect();
    kinds.sort();
    kinds.dedup();
    for name in kinds {
        let pick = |times: &[f64]| {
            let mut picked: Vec<f64> = searches
                .iter()
                .zip(times)
                .filter(|(s, _)| kind(&s.q) == name)
                .map(|(_, t)| *t)
                .collect();
            picked.sort_by(f64::total_cmp);
            (
                quantile(&picked, 0.5),
                picked.last().copied().unwrap_or(f64::NAN),
            )
        };
        let ((rest_p50, rest_max), (local_p50, local_max)) = (pick(rest), pick(local));
        eprintln!(
            "  {name:>18}: API p50 {rest_p50:>6.1} ms max {rest_max:>6.1} ms; in process p50 {local_p50:>6.1} ms max {local_max:>6.1} ms"
        );
    }
}

fn search_path(search: &Search) -> String {
    format!(
        "/api/v1/search?limit={LIMIT}&q={}&from={}&to={}",
        encode(&search.q),
        encode(&rfc3339(search.from)),
        encode(&rfc3339(search.to))
    )
}

/// Histograms over the whole range of the data through the API, of every record and of a
/// word; returns the (p50, p99) in milliseconds.
fn histograms(server: &BenchServer, loaded: &Loaded, count: usize) -> anyhow::Result<(f64, f64)> {
    let (from, to) = (rfc3339(loaded.first_nanos), rfc3339(loaded.last_nanos + 1));
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let q = if i % 2 == 0 { "" } else { "error" };
        let path = format!(
            "/api/v1/histogram?q={}&from={}&to={}",
            encode(q),
            encode(&from),
            encode(&to)
        );
        let started = Instant::now();
        let answer = server.get(&path)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            answer.status == 200,
            "{path}: {} {}",
            answer.status,
            answer.body
        );
        if q.is_empty() {
            let total = answer.body["total"].as_u64().unwrap_or(0);
            anyhow::ensure!(
                total == loaded.records,
                "histogram counted {total} of {} records",
                loaded.records
            );
        }
    }
    times.sort_by(f64::total_cmp);
    let figures = (quantile(&times, 0.5), quantile(&times, 0.99));
    eprintln!(
        "histogram over the full range ({count}, half of every record, half of a word): p50 {:.0} ms p99 {:.0} ms",
        figures.0, figures.1
    );
    Ok(figures)
}

/// Lines appended to a container log file that the shipper follows, each waited for in
/// search results (polled every 20 ms); other lines are written meanwhile. Returns the
/// (p50, p99, max) delay in milliseconds.
fn line_to_search(
    args: &Args,
    work: &Path,
    prefix: &str,
    server: &mut BenchServer,
) -> anyhow::Result<(f64, f64, f64)> {
    let logs = workload::fresh_dir(&work.join("e2e-logs"))?;
    let file = |i: usize| {
        let pod = format!("{PROBE_NAMESPACE}-web-{i:04}-5c8d7f9b4-p{i:03}q");
        let id = format!("{:064x}", 0x1a7e_0c1e_u64 * (i as u64 + 1));
        LogFile {
            path: logs.join(format!("{pod}_{PROBE_NAMESPACE}_app-{id}.log")),
            namespace: PROBE_NAMESPACE,
            pod,
        }
    };
    let probe_file = file(0);
    let background: Vec<LogFile> = (1..=5).map(file).collect();
    for f in std::iter::once(&probe_file).chain(&background) {
        std::fs::File::create(&f.path)?;
    }
    let state = workload::fresh_dir(&work.join("shipper-state"))?;
    let config = json!({
        "include": [format!("{}/*.log", logs.display())],
        "read_from": "beginning",
        "listen": "127.0.0.1:0",
        "checkpoint_dir": state,
        "node_name": "bench-node",
        "topic_template": format!("{prefix}.{{namespace}}"),
        "kafka": {"brokers": args.common.brokers, "create_topics": true, "topic_partitions": 1},
    });
    let config_path = work.join("shipper.yaml");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let mut shipper = Shipper(
        Command::new(&args.shipper_bin)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env("BITESIZE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join("shipper.log"))?)
            .spawn()?,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let rate = args.background_mb_per_s * 1_000_000;
        let seed = args.common.seed;
        let paths: Vec<PathBuf> = background.iter().map(|f| f.path.clone()).collect();
        std::thread::spawn(move || write_until(&paths, rate, seed, &stop))
    };

    let mut probe = std::fs::OpenOptions::new()
        .append(true)
        .open(&probe_file.path)?;
    let mut rng = StdRng::seed_from_u64(args.common.seed);
    let mut delays = Vec::with_capacity(args.probes);
    // Probe 0 waits for the shipper to start and the topic and index to exist: not counted.
    for i in 0..=args.probes {
        let token = format!("probe{}n{i}", prefix.replace('-', ""));
        let line = format!(
            "{} stdout F {{\"level\":\"info\",\"msg\":\"latency probe\",\"probe\":\"{token}\"}}\n",
            rfc3339(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0))
        );
        let written = Instant::now();
        probe.write_all(line.as_bytes())?;
        let path = format!("namespace={PROBE_NAMESPACE}&q={token}");
        let limit = if i == 0 {
            Duration::from_secs(120)
        } else {
            Duration::from_secs(30)
        };
        loop {
            if server.search_total(&path)? >= 1 {
                break;
            }
            server.ensure_running()?;
            if let Some(status) = shipper.0.try_wait()? {
                anyhow::bail!(
                    "the shipper exited ({status}); see {}",
                    work.join("shipper.log").display()
                );
            }
            anyhow::ensure!(
                written.elapsed() < limit,
                "probe {i} not searchable after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if i > 0 {
            delays.push(written.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(100..700)));
    }
    stop.store(true, Ordering::SeqCst);
    let background_lines = writer
        .join()
        .map_err(|_| anyhow::anyhow!("background writer panicked"))??;
    shipper.stop();
    delays.sort_by(f64::total_cmp);
    let figures = (
        quantile(&delays, 0.5),
        quantile(&delays, 0.99),
        delays.last().copied().unwrap_or(f64::NAN),
    );
    eprintln!(
        "line written → searchable ({} lines, {background_lines} other lines written meanwhile): p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
        delays.len(),
        figures.0,
        figures.1,
        figures.2
    );
    Ok(figures)
}

/// Appends generated lines to `paths` at `bytes_per_s` in total, in 100 ms steps, until
/// `stop`; returns the lines written.
fn write_until(
    paths: &[PathBuf],
    bytes_per_s: u64,
    seed: u64,
    stop: &AtomicBool,
) -> anyhow::Result<u64> {
    let mut handles = paths
        .iter()
        .map(|p| Ok(std::fs::OpenOptions::new().append(true).open(p)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut maker = LineMaker::new(seed);
    let per_step = bytes_per_s / 10 / paths.len().max(1) as u64;
    let start = Instant::now();
    let (mut lines, mut step) = (0, 0);
    let mut chunk = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        for handle in &mut handles {
            chunk.clear();
            while (chunk.len() as u64) < per_step {
                maker.line(&mut chunk);
                lines += 1;
            }
            handle.write_all(&chunk)?;
        }
        step += 1;
        if let Some(wait) = Duration::from_millis(step * 100).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(lines)
}

/// The shipper process, stopped when dropped.
struct Shipper(Child);

impl Shipper {
    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}
