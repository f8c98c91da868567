//! `bitesize-bench shipper`: the shipper, rsyslog (imfile + omkafka) and a bare rdkafka
//! producer ship the same files to the same broker with the same compression, one after
//! the other; then a footprint run writes 100 files at a fixed rate under each agent.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde_json::json;

use crate::kafka::{self, TopicCounter};
use crate::process;
use crate::workload::{self, LogFile};

#[derive(clap::Args)]
pub struct Args {
    /// Scratch directory for the files, configs and agent state.
    #[arg(long)]
    work_dir: PathBuf,
    /// Kafka bootstrap servers.
    #[arg(long)]
    brokers: String,
    /// The `bitesize-shipper` binary (a release build).
    #[arg(long)]
    shipper_bin: PathBuf,
    /// `rsyslogd`; the rsyslog runs are skipped without it.
    #[arg(long)]
    rsyslogd: Option<PathBuf>,
    /// Directory holding a librdkafka.so.1 that can talk to the broker, for rsyslog.
    #[arg(long)]
    librdkafka_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 2_000_000)]
    lines: u64,
    #[arg(long, default_value_t = 10)]
    files: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Length of each footprint run; 0 skips them.
    #[arg(long, default_value_t = 30)]
    footprint_seconds: u64,
    #[arg(long, default_value_t = 100)]
    footprint_files: usize,
    #[arg(long, default_value_t = 10)]
    footprint_mb_per_s: u64,
    /// The broker's process, to report its CPU in each run (is the broker the limit?).
    #[arg(long)]
    broker_pid: Option<u32>,
}

/// What one agent achieved shipping the files.
struct Throughput {
    seconds: f64,
    cpu_seconds: f64,
    rss_mib: Option<f64>,
    /// CPU the broker used meanwhile, when its pid is known.
    broker_cpu_seconds: Option<f64>,
}

/// CPU and memory of an agent following files written at a fixed rate.
struct Footprint {
    cpu_pct: f64,
    rss_mib: f64,
}

pub struct Bench {
    args: Args,
    counter: TopicCounter,
    run_id: String,
}

const TIMEOUT: Duration = Duration::from_secs(900);

/// The producer settings all three use: the shipper's defaults (`shipper/src/produce.rs`),
/// given to the shipper too (as `kafka.properties`) so they are the same by construction.
pub(crate) const PRODUCER: [(&str, &str); 5] = [
    ("compression.codec", "zstd"),
    ("compression.level", "1"),
    ("linger.ms", "100"),
    ("batch.num.messages", "10000"),
    ("queue.buffering.max.kbytes", "16384"),
];

/// Partitions of every topic of the run: the shipper's default. The bench creates the
/// topics of rsyslog and the ceiling itself, as the broker would auto-create them with 4.
const PARTITIONS: i32 = 1;

impl Bench {
    pub fn new(mut args: Args) -> anyhow::Result<Bench> {
        // Absolute: rsyslog runs from `/` and resolves its paths from there.
        fs::create_dir_all(&args.work_dir)?;
        args.work_dir = args.work_dir.canonicalize()?;
        let counter = TopicCounter::new(&args.brokers)?;
        let run_id = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs()
        );
        Ok(Bench {
            args,
            counter,
            run_id,
        })
    }

    pub fn run(self) -> anyhow::Result<()> {
        let dir = workload::fresh_dir(&self.args.work_dir.join("logs"))?;
        let files = workload::log_files(&dir, self.args.files);
        eprintln!(
            "writing {} lines over {} files into {}",
            self.args.lines,
            files.len(),
            dir.display()
        );
        let bytes = workload::write_files(&files, self.args.lines, self.args.seed)?;
        let gb = bytes as f64 / 1e9;
        let mb = bytes as f64 / 1e6;
        eprintln!("{mb:.0} MB written");

        let shipper = self.shipper_throughput(&dir)?;
        self.report("shipper", &shipper, mb);
        let rsyslog = match self.rsyslog_command() {
            Some(_) => {
                let run = self.rsyslog_throughput(&dir)?;
                self.report("rsyslog", &run, mb);
                Some(run)
            }
            None => {
                eprintln!("rsyslog: skipped (no --rsyslogd)");
                None
            }
        };
        let ceiling = self.ceiling_throughput(&files)?;
        self.report("ceiling", &ceiling, mb);

        let (shipper_fp, rsyslog_fp) = if self.args.footprint_seconds > 0 {
            let shipper_fp = self.footprint("shipper")?;
            let rsyslog_fp = match self.rsyslog_command() {
                Some(_) => Some(self.footprint("rsyslog")?),
                None => None,
            };
            (Some(shipper_fp), rsyslog_fp)
        } else {
            (None, None)
        };

        let lines = self.args.lines as f64;
        let rate = |run: &Throughput| lines / run.seconds;
        let ratio = |a: f64, b: f64| (a / b * 100.0).round() / 100.0;
        let round1 = |x: f64| (x * 10.0).round() / 10.0;
        let summary = json!({
            "bench": "shipper",
            "lines": self.args.lines,
            "mb": mb.round(),
            "lines_per_s": rate(&shipper).round(),
            "rsyslog_lines_per_s": rsyslog.as_ref().map(|r| rate(r).round()),
            "ratio_vs_rsyslog": rsyslog.as_ref().map(|r| ratio(rate(&shipper), rate(r))),
            "ceiling_lines_per_s": rate(&ceiling).round(),
            "ratio_vs_ceiling": ratio(rate(&shipper), rate(&ceiling)),
            "cpu_s_per_gb": round1(shipper.cpu_seconds / gb),
            "rsyslog_cpu_s_per_gb": rsyslog.as_ref().map(|r| round1(r.cpu_seconds / gb)),
            "rss_mib": shipper.rss_mib.map(round1),
            "rsyslog_rss_mib": rsyslog.as_ref().and_then(|r| r.rss_mib).map(round1),
            "footprint_cpu_pct": shipper_fp.as_ref().map(|f| round1(f.cpu_pct)),
            "footprint_rss_mib": shipper_fp.as_ref().map(|f| round1(f.rss_mib)),
            "rsyslog_footprint_cpu_pct": rsyslog_fp.as_ref().map(|f| round1(f.cpu_pct)),
            "rsyslog_footprint_rss_mib": rsyslog_fp.as_ref().map(|f| round1(f.rss_mib)),
            "broker_cpu_pct": {
                "shipper": shipper.broker_cpu_seconds.map(|b| round1(b / shipper.seconds * 100.0)),
                "rsyslog": rsyslog.as_ref().and_then(|r| r.broker_cpu_seconds.map(|b| round1(b / r.seconds * 100.0))),
                "ceiling": ceiling.broker_cpu_seconds.map(|b| round1(b / ceiling.seconds * 100.0)),
            },
        });
        println!("{summary}");
        Ok(())
    }

    fn report(&self, name: &str, run: &Throughput, mb: f64) {
        let rss = run
            .rss_mib
            .map(|r| format!("{r:.1} MiB peak RSS"))
            .unwrap_or_else(|| "RSS n/a (in the bench process)".into());
        let broker = run
            .broker_cpu_seconds
            .map(|b| {
                format!(
                    ", broker {b:.2} CPU-s ({:.0} % of a core)",
                    b / run.seconds * 100.0
                )
            })
            .unwrap_or_default();
        eprintln!(
            "{name:>8}: {:>10.0} lines/s {:>7.1} MB/s {:>6.2} CPU-s {:>6.1} CPU-s/GB  {rss}{broker}",
            self.args.lines as f64 / run.seconds,
            mb / run.seconds,
            run.cpu_seconds,
            run.cpu_seconds / (mb / 1000.0),
        );
    }

    fn topics(&self, prefix: &str) -> Vec<String> {
        workload::NAMESPACES
            .iter()
            .map(|ns| format!("{prefix}.{ns}"))
            .collect()
    }

    /// The shipper's config for `dir`: the product's defaults, the bench's broker and topics.
    fn shipper_config(&self, tag: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        let state = workload::fresh_dir(&self.args.work_dir.join(format!("state-{tag}")))?;
        let config = json!({
            "include": [format!("{}/*.log", dir.display())],
            "read_from": "beginning",
            "listen": "127.0.0.1:0",
            "checkpoint_dir": state,
            "node_name": "bench-node",
            "topic_template": format!("bench-{}-{tag}.{{namespace}}", self.run_id),
            "kafka": {
                "brokers": self.args.brokers,
                "compression": "zstd",
                "create_topics": true,
                "topic_partitions": PARTITIONS,
                "properties": PRODUCER.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            },
        });
        let path = self.args.work_dir.join(format!("shipper-{tag}.yaml"));
        // JSON is YAML.
        fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        Ok(path)
    }

    fn spawn_shipper(&self, tag: &str, dir: &Path) -> anyhow::Result<Child> {
        let config = self.shipper_config(tag, dir)?;
        let log = fs::File::create(self.args.work_dir.join(format!("shipper-{tag}.log")))?;
        Ok(Command::new(&self.args.shipper_bin)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("BITESIZE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?)
    }

    fn shipper_throughput(&self, dir: &Path) -> anyhow::Result<Throughput> {
        let tag = "throughput";
        let mut child = self.spawn_shipper(tag, dir)?;
        let topics = self.topics(&format!("bench-{}-{tag}", self.run_id));
        self.measure(&mut child, &topics)
    }

    fn rsyslog_command(&self) -> Option<Command> {
        let rsyslogd = self.args.rsyslogd.as_ref()?;
        let mut command = Command::new(rsyslogd);
        if let Some(lib) = &self.args.librdkafka_dir {
            command.env("LD_LIBRARY_PATH", lib);
        }
        Some(command)
    }

    /// rsyslog configured as its documentation advises for throughput: inotify imfile, a
    /// LinkedList queue, and the same compression and batching as the shipper's producer.
    fn spawn_rsyslog(&self, tag: &str, dir: &Path) -> anyhow::Result<(Child, String)> {
        let state = workload::fresh_dir(&self.args.work_dir.join(format!("rsyslog-{tag}")))?;
        let topic = format!("bench-{}-rsyslog-{tag}", self.run_id);
        kafka::create_topics(&self.args.brokers, std::slice::from_ref(&topic), PARTITIONS)?;
        let brokers: Vec<String> = self
            .args
            .brokers
            .split(',')
            .map(|b| format!("\"{b}\""))
            .collect();
        let conf = format!(
            r#"global(workDirectory="{state}" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="omkafka")
main_queue(queue.type="LinkedList" queue.size="100000")
template(name="bitesize_line" type="string" string="%msg%")
input(type="imfile" file="{dir}/*.log" tag="bench:" freshStartTail="off")
action(type="omkafka" broker=[{brokers}] topic="{topic}" template="bitesize_line"
       confParam=[{producer}]
       queue.type="LinkedList" queue.size="100000")
"#,
            state = state.display(),
            dir = dir.display(),
            brokers = brokers.join(","),
            producer = PRODUCER
                .iter()
                .map(|(k, v)| format!("\"{k}={v}\""))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let conf_path = self.args.work_dir.join(format!("rsyslog-{tag}.conf"));
        fs::write(&conf_path, conf)?;
        let log = fs::File::create(self.args.work_dir.join(format!("rsyslog-{tag}.log")))?;
        let mut command = self.rsyslog_command().expect("rsyslog configured");
        let child = command
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(state.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok((child, topic))
    }

    fn rsyslog_throughput(&self, dir: &Path) -> anyhow::Result<Throughput> {
        let (mut child, topic) = self.spawn_rsyslog("throughput", dir)?;
        self.measure(&mut child, &[topic])
    }

    /// Waits until every line is in Kafka, then reads the agent's CPU time and peak RSS.
    fn measure(&self, child: &mut Child, topics: &[String]) -> anyhow::Result<Throughput> {
        let pid = child.id();
        let broker_before = self.broker_cpu();
        let waited = self.counter.wait_for(topics, self.args.lines, TIMEOUT, || {
            matches!(child.try_wait(), Ok(None))
        });
        let figures = waited.and_then(|elapsed| {
            Ok(Throughput {
                seconds: elapsed.as_secs_f64(),
                cpu_seconds: process::cpu_seconds(pid)?,
                rss_mib: Some(process::peak_rss_mib(pid)?),
                broker_cpu_seconds: self.broker_cpu_since(broker_before),
            })
        });
        let _ = child.kill();
        let _ = child.wait();
        figures
    }

    /// A bare rdkafka producer sending the shipper's own records (from `check`) out of
    /// memory: what the broker and the client library allow on this machine.
    fn ceiling_throughput(&self, files: &[LogFile]) -> anyhow::Result<Throughput> {
        let prefix = format!("bench-{}-ceiling", self.run_id);
        let config = self.shipper_config("ceiling", &self.args.work_dir)?;
        let mut records = Vec::with_capacity(self.args.lines as usize);
        for file in files {
            let output = Command::new(&self.args.shipper_bin)
                .arg("check")
                .arg("--config")
                .arg(&config)
                .arg(&file.path)
                .stderr(Stdio::inherit())
                .output()?;
            anyhow::ensure!(output.status.success(), "shipper check failed");
            let topic = format!("{prefix}.{}", file.namespace);
            for payload in output
                .stdout
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
            {
                records.push((topic.clone(), file.pod.clone(), payload.to_vec()));
            }
        }
        anyhow::ensure!(
            records.len() as u64 == self.args.lines,
            "check gave {} records for {} lines",
            records.len(),
            self.args.lines
        );
        kafka::create_topics(&self.args.brokers, &self.topics(&prefix), PARTITIONS)?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.args.brokers)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "0");
        for (key, value) in PRODUCER {
            config.set(key, value);
        }
        let producer: BaseProducer = config.create()?;
        let cpu_before = process::own_cpu_seconds();
        let broker_before = self.broker_cpu();
        let start = Instant::now();
        for (topic, key, payload) in &records {
            kafka::send(&producer, BaseRecord::to(topic).key(key).payload(payload))?;
        }
        producer.flush(TIMEOUT)?;
        let seconds = start.elapsed().as_secs_f64();
        let cpu_seconds = process::own_cpu_seconds() - cpu_before;
        let broker_cpu_seconds = self.broker_cpu_since(broker_before);
        let in_kafka = self.counter.count(&self.topics(&prefix));
        anyhow::ensure!(
            in_kafka == self.args.lines,
            "ceiling: {in_kafka} of {} records in Kafka",
            self.args.lines
        );
        Ok(Throughput {
            seconds,
            cpu_seconds,
            rss_mib: None,
            broker_cpu_seconds,
        })
    }

    fn broker_cpu(&self) -> Option<f64> {
        process::cpu_seconds(self.args.broker_pid?).ok()
    }

    fn broker_cpu_since(&self, before: Option<f64>) -> Option<f64> {
        Some(self.broker_cpu()? - before?)
    }

    /// The agent follows `footprint_files` files written at `footprint_mb_per_s`; its CPU
    /// share and peak RSS over the run.
    fn footprint(&self, agent: &str) -> anyhow::Result<Footprint> {
        let tag = format!("footprint-{agent}");
        let dir = workload::fresh_dir(&self.args.work_dir.join(&tag))?;
        let files = workload::log_files(&dir, self.args.footprint_files);
        for file in &files {
            fs::File::create(&file.path)?;
        }
        let mut child = if agent == "shipper" {
            self.spawn_shipper(&tag, &dir)?
        } else {
            self.spawn_rsyslog(&tag, &dir)?.0
        };
        let pid = child.id();
        std::thread::sleep(Duration::from_secs(2));
        let cpu_before = process::cpu_seconds(pid)?;
        let start = Instant::now();
        let lines = workload::write_at_rate(
            &files,
            self.args.footprint_mb_per_s * 1_000_000,
            self.args.footprint_seconds,
            self.args.seed,
        )?;
        let cpu = process::cpu_seconds(pid)? - cpu_before;
        let wall = start.elapsed().as_secs_f64();
        let rss_mib = process::peak_rss_mib(pid)?;
        let _ = child.kill();
        let _ = child.wait();
        let footprint = Footprint {
            cpu_pct: cpu / wall * 100.0,
            rss_mib,
        };
        eprintln!(
            "{agent:>8}: footprint at {} MB/s over {} files ({lines} lines): {:.1} % of a core, {:.1} MiB peak RSS",
            self.args.footprint_mb_per_s,
            files.len(),
            footprint.cpu_pct,
            footprint.rss_mib
        );
        Ok(footprint)
    }
}
