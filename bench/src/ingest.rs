//! `bitesize-bench ingest`: the same seeded records (the shipper's record shape, made in
//! memory) produced to Kafka and indexed by the real server (`bitesize serve`, release
//! build), then indexed from memory by a bare Tantivy loop with the server's schema,
//! document builder, one index per namespace and the same writer memory and threads. The
//! server's clock runs from its start until a search counts every record; its CPU comes
//! from /proc; the index size is what it leaves on disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitesize_query::schema::{document, index_settings, schema, Fields, Origin};
use bitesize_record::Record;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde_json::json;
use tantivy::{Index, IndexWriter};

use crate::kafka::{self, TopicCounter};
use crate::process;
use crate::server::{dir_bytes, BenchArgs, BenchServer};
use crate::shipper::PRODUCER;
use crate::workload::{self, RecordMaker};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: BenchArgs,
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// The broker's process, to report its CPU while the server consumes.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Record a `perf` profile of the server for this many seconds, from 5 s after its start
    /// (to `<work-dir>/server.perf.data`); 0: none.
    #[arg(long, default_value_t = 0)]
    perf_seconds: u64,
}

const TIMEOUT: Duration = Duration::from_secs(3600);
/// Partitions of each topic: the shipper's default.
const PARTITIONS: i32 = 1;

/// The generated records, held in memory for the producer and the bare loop.
struct Workload {
    records: Vec<(&'static str, Vec<u8>)>,
    record_bytes: u64,
    line_bytes: u64,
}

/// One side's figures.
struct Run {
    seconds: f64,
    cpu_seconds: f64,
    index_bytes: u64,
    /// CPU seconds by kind of thread, most first.
    threads: Vec<(String, f64)>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let work = workload::fresh_dir(&args.common.work_dir)?.canonicalize()?;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let files = workload::log_files(Path::new("/var/log/containers"), args.common.files);
    let mut maker = RecordMaker::new(&files, args.common.seed);
    let mut workload = Workload {
        records: Vec::with_capacity(args.records as usize),
        record_bytes: 0,
        line_bytes: 0,
    };
    for _ in 0..args.records {
        let made = maker.record();
        workload.record_bytes += made.payload.len() as u64;
        workload.line_bytes += made.line_bytes as u64;
        workload.records.push((made.namespace, made.payload));
    }
    let mb = workload.record_bytes as f64 / 1e6;
    eprintln!(
        "{} records made: {mb:.0} MB of record JSON ({:.0} B each), from {:.0} MB of log lines",
        args.records,
        workload.record_bytes as f64 / args.records as f64,
        workload.line_bytes as f64 / 1e6
    );

    let prefix = format!("bench-{run_id}");
    produce(&args, &prefix, &workload)?;
    let server = server_run(&args, &work, &prefix)?;
    report("server", &server, mb, args.records);
    let bare = bare_run(&args, &work, &workload)?;
    report("bare", &bare, mb, args.records);
    let decode_cpu = decode_only(&workload)?;
    eprintln!(
        "    of which decoding records and building documents: {decode_cpu:.1} CPU-s ({:.0} % of the bare loop's CPU)",
        decode_cpu / bare.cpu_seconds * 100.0
    );

    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let summary = json!({
        "bench": "ingest",
        "records": args.records,
        "record_mb": mb.round(),
        "line_mb": (workload.line_bytes as f64 / 1e6).round(),
        "server_mb_per_s": round2(mb / server.seconds),
        "server_cpu_s": round2(server.cpu_seconds),
        "bare_mb_per_s": round2(mb / bare.seconds),
        "bare_cpu_s": round2(bare.cpu_seconds),
        "mb_per_s_per_core": round2(mb / server.cpu_seconds),
        "bare_mb_per_s_per_core": round2(mb / bare.cpu_seconds),
        "ratio_vs_bare_tantivy": round2(bare.seconds / server.seconds),
        "cpu_ratio_vs_bare_tantivy": round2(bare.cpu_seconds / server.cpu_seconds),
        "index_size_ratio": round2(server.index_bytes as f64 / workload.record_bytes as f64),
        "index_size_ratio_vs_lines": round2(server.index_bytes as f64 / workload.line_bytes as f64),
        "bare_index_size_ratio": round2(bare.index_bytes as f64 / workload.record_bytes as f64),
        "decode_and_document_cpu_s": round2(decode_cpu),
        "writer_memory_mb": args.common.writer_memory_mb,
    });
    println!("{summary}");
    Ok(())
}

fn report(name: &str, run: &Run, mb: f64, records: u64) {
    let threads: Vec<String> = run
        .threads
        .iter()
        .filter(|(_, cpu)| *cpu >= 0.05 * run.cpu_seconds)
        .map(|(name, cpu)| format!("{name} {cpu:.1}"))
        .collect();
    eprintln!(
        "{name:>8}: {:>8.0} records/s {:>6.1} MB/s {:>7.1} CPU-s {:>6.1} MB per CPU-s  index {:.0} MB",
        records as f64 / run.seconds,
        mb / run.seconds,
        run.cpu_seconds,
        mb / run.cpu_seconds,
        run.index_bytes as f64 / 1e6
    );
    eprintln!("          CPU-s by thread (≥ 5 %): {}", threads.join(", "));
}

/// CPU seconds of `pid`'s live threads since `before`, summed by thread name without its
/// digits (`thrd-tantivy-index3` → `thrd-tantivy-index#`), most first. Threads that ended
/// are not counted.
fn thread_cpu(pid: u32, before: &HashMap<String, f64>) -> Vec<(String, f64)> {
    let mut sums: HashMap<String, f64> = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let name =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
        let kind: String = name
            .trim()
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect::<String>()
            .replace("##", "#");
        // The server's writer threads are named after their namespace.
        let kind = if kind.starts_with("index-") {
            "index-<namespace>".to_owned()
        } else {
            kind
        };
        let cpu = process::thread_cpu_seconds(pid, tid).unwrap_or(0.0);
        *sums.entry(kind).or_insert(0.0) += cpu;
    }
    let mut sums: Vec<(String, f64)> = sums
        .into_iter()
        .map(|(kind, cpu)| {
            let earlier = before.get(&kind).copied().unwrap_or(0.0);
            (kind, cpu - earlier)
        })
        .collect();
    sums.sort_by(|a, b| b.1.total_cmp(&a.1));
    sums
}

/// Produces every record to `<prefix>.<namespace>` (one partition each, the shipper's
/// producer settings) and waits until Kafka holds them all. Not timed: the benchmark is
/// of the consumer's side.
fn produce(args: &Args, prefix: &str, workload: &Workload) -> anyhow::Result<()> {
    let topics: Vec<String> = workload::NAMESPACES
        .iter()
        .map(|ns| format!("{prefix}.{ns}"))
        .collect();
    kafka::create_topics(&args.common.brokers, &topics, PARTITIONS)?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.common.brokers)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "0");
    for (key, value) in PRODUCER {
        config.set(key, value);
    }
    let producer: BaseProducer = config.create()?;
    let started = Instant::now();
    for (namespace, payload) in &workload.records {
        let topic = format!("{prefix}.{namespace}");
        kafka::send(&producer, BaseRecord::<(), _>::to(&topic).payload(payload))?;
    }
    producer.flush(TIMEOUT)?;
    let counter = TopicCounter::new(&args.common.brokers)?;
    let expected = workload.records.len() as u64;
    counter.wait_for(&topics, expected, Duration::from_secs(120), || true)?;
    eprintln!(
        "produced {expected} records to {} topics in {:.1} s",
        topics.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The server from its start until a search counts every record.
fn server_run(args: &Args, work: &Path, prefix: &str) -> anyhow::Result<Run> {
    let data_dir = work.join("server");
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
            (
                "BITESIZE_INGEST__WRITER_MEMORY_MB",
                args.common.writer_memory_mb.to_string(),
            ),
            // Kafka → index only: the archive stage would read every record a second time.
            ("BITESIZE_ARCHIVE__ENABLED", "false".to_owned()),
        ],
    )?;
    let broker_before = args.broker_pid.and_then(|p| process::cpu_seconds(p).ok());
    let started = Instant::now();
    server.start(&work.join("server.log"))?;
    let pid = server.pid().expect("started");
    let mut perf = None;
    let mut total = 0;
    let mut last_print = Instant::now();
    loop {
        server.ensure_running()?;
        if let (None, true) = (&perf, args.perf_seconds > 0) {
            if started.elapsed() >= Duration::from_secs(5) {
                perf = Some(start_perf(
                    pid,
                    args.perf_seconds,
                    &work.join("server.perf.data"),
                )?);
            }
        }
        // Until the API is up the search fails; that time counts too.
        if let Ok(count) = server.search_total("") {
            total = count;
        }
        if total >= args.records {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < TIMEOUT,
            "{total} of {} records searchable after {TIMEOUT:?}",
            args.records
        );
        if last_print.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "  server: {total} records searchable after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = process::cpu_seconds(pid)?;
    let threads = thread_cpu(pid, &Default::default());
    let rss = server.peak_rss_mib()?;
    let index_bytes = dir_bytes(&data_dir.join("index"));
    if let Some(broker) = args.broker_pid.and_then(|p| process::cpu_seconds(p).ok()) {
        if let Some(before) = broker_before {
            eprintln!(
                "  broker meanwhile: {:.1} CPU-s ({:.0} % of a core)",
                broker - before,
                (broker - before) / seconds * 100.0
            );
        }
    }
    anyhow::ensure!(
        total == args.records,
        "{total} records searchable, {} produced",
        args.records
    );
    eprintln!(
        "  server: peak RSS {rss:.0} MiB; index {:.0} MB",
        index_bytes as f64 / 1e6
    );
    server.stop();
    if let Some(mut perf) = perf {
        let _ = perf.wait();
    }
    Ok(Run {
        seconds,
        cpu_seconds,
        index_bytes,
        threads,
    })
}

fn start_perf(pid: u32, seconds: u64, out: &Path) -> anyhow::Result<std::process::Child> {
    eprintln!(
        "  perf record of the server for {seconds} s into {}",
        out.display()
    );
    Ok(Command::new("perf")
        .args(["record", "-F", "499", "-p", &pid.to_string(), "-o"])
        .arg(out)
        .args(["--", "sleep", &seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// The bare loop over the same records, from memory, until every index has committed.
fn bare_run(args: &Args, work: &Path, workload: &Workload) -> anyhow::Result<Run> {
    let dir = workload::fresh_dir(&work.join("bare"))?;
    let own = std::process::id();
    let threads_before: HashMap<String, f64> =
        thread_cpu(own, &HashMap::new()).into_iter().collect();
    let cpu_before = process::own_cpu_seconds();
    let started = Instant::now();
    let mut indexer = BareIndexer::create(&dir, args.common.writer_memory_mb)?;
    for (namespace, payload) in &workload.records {
        indexer.add(namespace, payload)?;
    }
    indexer.commit()?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = process::own_cpu_seconds() - cpu_before;
    let threads = thread_cpu(own, &threads_before);
    let index_bytes = dir_bytes(&dir);
    indexer.finish()?;
    Ok(Run {
        seconds,
        cpu_seconds,
        index_bytes,
        threads,
    })
}

/// Decoding and document building alone (the documents dropped): how much of the bare
/// loop is not Tantivy's indexing.
fn decode_only(workload: &Workload) -> anyhow::Result<f64> {
    let (_, fields) = schema();
    let before = process::own_cpu_seconds();
    let mut offsets: HashMap<&str, i64> = HashMap::new();
    for (namespace, payload) in &workload.records {
        let offset = offsets.entry(namespace).or_insert(0);
        let doc = server_document(&fields, namespace, payload, *offset);
        *offset += 1;
        std::hint::black_box(doc);
    }
    Ok(process::own_cpu_seconds() - before)
}

/// The document the server's index writer makes of a Kafka message
/// (server/src/ingest/writer.rs): the record decoded (a non-JSON message would be kept as
/// raw text; the bench makes none), its namespace set, its time resolved.
pub fn server_document(
    fields: &Fields,
    namespace: &str,
    payload: &[u8],
    offset: i64,
) -> tantivy::TantivyDocument {
    let mut record = Record::decode(payload).unwrap_or_default();
    record.kubernetes.namespace_name = namespace.to_owned();
    let time_nanos = record
        .time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0);
    document(
        fields,
        &record,
        time_nanos,
        Origin {
            partition: 0,
            offset,
        },
    )
}

/// A bare Tantivy loop: one index per namespace with the server's schema, each with one
/// writer of the server's memory budget and Tantivy's default thread count (as
/// `IndexRegistry` opens them), fed from one thread.
pub struct BareIndexer {
    dir: PathBuf,
    writer_memory: usize,
    fields: Fields,
    writers: HashMap<String, (IndexWriter, i64)>,
}

impl BareIndexer {
    pub fn create(dir: &Path, writer_memory_mb: usize) -> anyhow::Result<BareIndexer> {
        Ok(BareIndexer {
            dir: dir.to_owned(),
            writer_memory: writer_memory_mb * 1024 * 1024,
            fields: schema().1,
            writers: HashMap::new(),
        })
    }

    pub fn add(&mut self, namespace: &str, payload: &[u8]) -> anyhow::Result<()> {
        if !self.writers.contains_key(namespace) {
            let dir = self.dir.join(namespace);
            std::fs::create_dir_all(&dir)?;
            let index = Index::builder()
                .schema(schema().0)
                .settings(index_settings())
                .create_in_dir(&dir)?;
            let writer = index.writer(self.writer_memory)?;
            self.writers.insert(namespace.to_owned(), (writer, 0));
        }
        let (writer, offset) = self.writers.get_mut(namespace).expect("just made");
        writer.add_document(server_document(&self.fields, namespace, payload, *offset))?;
        *offset += 1;
        Ok(())
    }

    /// Commits every index: all records durable and searchable.
    pub fn commit(&mut self) -> anyhow::Result<()> {
        for (writer, _) in self.writers.values_mut() {
            writer.commit()?;
        }
        Ok(())
    }

    /// Waits for the merges the commits started.
    pub fn finish(self) -> anyhow::Result<()> {
        for (writer, _) in self.writers.into_values() {
            writer.wait_merging_threads()?;
        }
        Ok(())
    }
}
