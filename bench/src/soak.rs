//! `bitesize-bench soak`: the whole pipeline on this machine under chaos, then an exact
//! account of every line. A broker with on-disk storage, the server on PostgreSQL and the
//! shipper run while container logs are written at a fixed rate across files of several
//! namespaces, rotated by rename and by copytruncate; meanwhile the shipper is killed with
//! SIGKILL at random intervals and restarted, the server is killed with SIGKILL and
//! restarted, the broker is stopped for a while and started again, and a second process
//! (`bitesize-bench load`) runs searches, tails and exports. Then the writing stops, the
//! pipeline drains, everything stops, and [`verify`] reads every Kafka record and every
//! index document: lines written, in Kafka, indexed, lost (must be 0), duplicated in the
//! index (must be 0). Run through `./scripts/soak`, which builds, starts PostgreSQL and
//! makes the database.

pub mod load;
mod procs;
mod report;
mod verify;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::kafka::TopicCounter;
use crate::workload;
pub use load::Args as LoadArgs;
use procs::{Broker, Proc, Server, Shipper, UsageBook};
use report::{LoadFigures, Machine, Report};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Scratch directory (emptied first): log files, broker storage, index, process logs.
    #[arg(long, default_value = "target/soak")]
    work_dir: PathBuf,
    /// The `nisshi` broker binary.
    #[arg(long)]
    broker_bin: PathBuf,
    /// The `bitesize` server binary.
    #[arg(long)]
    server_bin: PathBuf,
    /// The `bitesize-shipper` binary.
    #[arg(long)]
    shipper_bin: PathBuf,
    /// An empty PostgreSQL database for the server.
    #[arg(long)]
    database_url: String,
    /// The broker's storage (nisshi's `--storage-engine`): on disk, so it survives the
    /// stop. PostgreSQL (an empty database; `?sslmode=disable` on the loopback) serves
    /// fetches about 8× faster than SQLite here; `sqlite://broker.db` is in the work dir.
    #[arg(long, default_value = "sqlite://broker.db")]
    broker_storage: String,
    /// How long the workload and the chaos run (the drain and the count come after).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Lines per second, over all files.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Container log files, spread over five namespaces.
    #[arg(long, default_value_t = 20)]
    files: usize,
    /// Partitions of each namespace's topic.
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Each file is rotated about this often (alternately by rename and by copytruncate).
    #[arg(long, default_value_t = 30)]
    rotate_seconds: u64,
    /// How long the broker stays stopped; 0: never stopped.
    #[arg(long, default_value_t = 30)]
    broker_outage_seconds: u64,
    /// SIGKILLs of the server; default one per three minutes, at least one.
    #[arg(long)]
    server_kills: Option<u32>,
    /// The shipper is SIGKILLed after a random interval between these two, again and again.
    #[arg(long, default_value_t = 20)]
    shipper_kill_min_seconds: u64,
    #[arg(long, default_value_t = 60)]
    shipper_kill_max_seconds: u64,
    /// Concurrent search, tail and export clients in the load process.
    #[arg(long, default_value_t = 4)]
    searchers: usize,
    #[arg(long, default_value_t = 2)]
    tails: usize,
    #[arg(long, default_value_t = 1)]
    exporters: usize,
    /// Seed of the workload and the chaos schedule (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Longest wait for the pipeline to ship and index everything after the writing stops.
    #[arg(long, default_value_t = 900)]
    drain_timeout_seconds: u64,
    /// Write the figures into this Markdown file (its soak section).
    #[arg(long)]
    report: Option<PathBuf>,
    /// The command as the user typed it, for the report.
    #[arg(long)]
    command: Option<String>,
}

/// Restart delays after a SIGKILL: a crash-looping pod's first restart is about this quick.
const SHIPPER_RESTART: Duration = Duration::from_secs(1);
const SERVER_RESTART: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(250);
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    KillShipper,
    KillServer,
    StopBroker,
    StartBroker,
}

/// A process under test and when it is due to start again.
struct Slot {
    proc: Option<Proc>,
    restart_at: Option<Instant>,
}

impl Slot {
    fn up(proc: Proc) -> Slot {
        Slot {
            proc: Some(proc),
            restart_at: None,
        }
    }
}

pub struct Soak {
    args: Args,
    work: PathBuf,
    seed: u64,
    started: Instant,
    usage: UsageBook,
    /// (seconds into the run, what happened), for the report.
    timeline: Vec<(f64, String)>,
    /// Server down windows in ms since the epoch: SIGKILL → healthy again.
    server_down: Vec<(i64, i64)>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Soak {
    pub fn new(args: Args) -> anyhow::Result<Soak> {
        let work = workload::fresh_dir(&args.work_dir)?.canonicalize()?;
        let seed = args.seed.unwrap_or_else(|| now_ms() as u64);
        Ok(Soak {
            args,
            work,
            seed,
            started: Instant::now(),
            usage: UsageBook::new(),
            timeline: Vec::new(),
            server_down: Vec::new(),
        })
    }

    fn at(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn note(&mut self, what: String) {
        let at = self.at();
        eprintln!("[{at:6.1} s] {what}");
        self.timeline.push((at, what));
    }

    /// Reaps a process the soak ended, counting its usage.
    fn ended(&mut self, proc: &Proc, exit: &procs::Exit) {
        self.usage.entry(proc.name).or_default().record(exit);
    }

    fn started_proc(&mut self, name: &'static str) {
        self.usage.entry(name).or_default().starts += 1;
    }

    pub fn run(mut self) -> anyhow::Result<bool> {
        let args = self.args.clone();
        let duration = Duration::from_secs_f64(args.minutes * 60.0);
        let logs = workload::fresh_dir(&self.work.join("logs"))?;
        let files = workload::log_files(&logs, args.files);
        let namespaces: Vec<String> = workload::NAMESPACES.iter().map(|s| s.to_string()).collect();
        let topics: Vec<String> = namespaces.iter().map(|ns| format!("logs.{ns}")).collect();
        let rotate_bytes = (args.rate * writer::LINE_BYTES * args.rotate_seconds
            / args.files as u64)
            .max(16 * 1024);
        let mut rng = StdRng::seed_from_u64(self.seed);
        let schedule = self.schedule(&mut rng, duration);
        eprintln!(
            "soak: {:.1} min at {} lines/s over {} files in {} namespaces (rotation every ~{} KiB), seed {}; work dir {}",
            args.minutes,
            args.rate,
            files.len(),
            namespaces.len(),
            rotate_bytes / 1024,
            self.seed,
            self.work.display()
        );
        let machine_start = Machine::snapshot();

        let broker = Broker::new(&args.broker_bin, &self.work, &args.broker_storage)?;
        let mut broker_slot = Slot::up(broker.start()?);
        self.started_proc("broker");
        self.note(format!("broker up on {}", broker.bootstrap()));
        let server = Server::new(
            &args.server_bin,
            &self.work,
            &args.database_url,
            &broker.bootstrap(),
        )?;
        let token = server.admin_token()?;
        let mut server_slot = Slot::up(server.start()?);
        self.started_proc("server");
        if let Some(proc) = &server_slot.proc {
            server.wait_healthy(proc, Duration::from_secs(120))?;
        }
        self.note(format!("server up on 127.0.0.1:{}", server.port));
        let shipper = Shipper::new(
            &args.shipper_bin,
            &self.work,
            &logs,
            &broker.bootstrap(),
            args.partitions,
        )?;
        let mut shipper_slot = Slot::up(shipper.start()?);
        self.started_proc("shipper");

        let stop_writing = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(writer::Progress::default());
        let writing = {
            let writer = writer::Writer::new(files, args.rate, rotate_bytes, self.seed);
            let (stop, progress) = (stop_writing.clone(), progress.clone());
            std::thread::spawn(move || writer.run(stop, progress))
        };
        let load = {
            let mut command = procs::command(&std::env::current_exe()?);
            command
                .arg("load")
                .arg("--url")
                .arg(format!("http://127.0.0.1:{}", server.port))
                .arg("--namespaces")
                .arg(namespaces.join(","))
                .arg("--seconds")
                .arg(duration.as_secs().to_string())
                .arg("--searchers")
                .arg(args.searchers.to_string())
                .arg("--tails")
                .arg(args.tails.to_string())
                .arg("--exporters")
                .arg(args.exporters.to_string())
                .arg("--out")
                .arg(self.work.join("load.ndjson"))
                .env(load::TOKEN_VAR, &token);
            Proc::spawn("load client", command, &self.work.join("load.log"))?
        };
        self.started_proc("load client");
        let mut load = Some(load);
        let run_start = Instant::now();
        self.note(format!(
            "writing and load started; chaos: {}",
            describe_schedule(&schedule)
        ));

        // The chaos phase.
        let counter = TopicCounter::new(&broker.bootstrap())?;
        let mut next_event = 0;
        let mut server_killed_at: Option<i64> = None;
        let mut last_progress = Instant::now();
        while run_start.elapsed() < duration {
            std::thread::sleep(TICK);
            while next_event < schedule.len() && run_start.elapsed() >= schedule[next_event].0 {
                let action = schedule[next_event].1;
                next_event += 1;
                match action {
                    Action::KillShipper => {
                        if let Some(proc) = shipper_slot.proc.take() {
                            proc.signal(libc::SIGKILL);
                            let exit = proc.reap();
                            self.ended(&proc, &exit);
                            shipper_slot.restart_at = Some(Instant::now() + SHIPPER_RESTART);
                            self.note("shipper: SIGKILL".into());
                        }
                    }
                    Action::KillServer => {
                        if let Some(proc) = server_slot.proc.take() {
                            server_killed_at = Some(now_ms());
                            proc.signal(libc::SIGKILL);
                            let exit = proc.reap();
                            self.ended(&proc, &exit);
                            server_slot.restart_at = Some(Instant::now() + SERVER_RESTART);
                            self.note("server: SIGKILL".into());
                        }
                    }
                    Action::StopBroker => {
                        if let Some(proc) = broker_slot.proc.take() {
                            let exit = proc.stop(Duration::from_secs(20));
                            self.ended(&proc, &exit);
                            self.note(format!(
                                "broker: stopped ({}) for {} s",
                                exit.status, self.args.broker_outage_seconds
                            ));
                        }
                    }
                    Action::StartBroker => broker_slot.restart_at = Some(Instant::now()),
                }
            }
            self.restart_due(&mut broker_slot, "broker", || broker.start())?;
            self.restart_due(&mut shipper_slot, "shipper", || shipper.start())?;
            self.restart_due(&mut server_slot, "server", || server.start())?;
            if let (Some(killed), Some(_)) = (server_killed_at, &server_slot.proc) {
                if server.healthy() {
                    let healthy = now_ms();
                    self.server_down.push((killed, healthy));
                    server_killed_at = None;
                    self.note(format!(
                        "server: healthy again, {:.1} s after the kill",
                        (healthy - killed) as f64 / 1000.0
                    ));
                }
            }
            self.check_alive(
                &mut broker_slot,
                &mut server_slot,
                &mut shipper_slot,
                &mut load,
            );
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                let kafka = broker_slot
                    .proc
                    .as_ref()
                    .map(|_| counter.count(&topics).to_string())
                    .unwrap_or_else(|| "-".into());
                let indexed = server_slot
                    .proc
                    .as_ref()
                    .and_then(|_| index_total(&server, &token))
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into());
                eprintln!(
                    "[{:6.1} s] written {} | in Kafka {kafka} | indexed {indexed}",
                    self.at(),
                    progress.lines.load(Ordering::Relaxed)
                );
            }
        }

        stop_writing.store(true, Ordering::SeqCst);
        let written = writing
            .join()
            .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
        self.note(format!(
            "writing stopped: {} lines, {} rotations by rename, {} by copytruncate{}",
            written.total(),
            written.rotations_rename,
            written.rotations_copytruncate,
            if written.late_steps > 0 {
                format!(", {} late 100 ms steps", written.late_steps)
            } else {
                String::new()
            }
        ));

        // Drain: everything up again, then wait until Kafka holds every line and the
        // index every record.
        let drain_deadline = Instant::now() + Duration::from_secs(self.args.drain_timeout_seconds);
        if broker_slot.proc.is_none() {
            broker_slot.restart_at = Some(Instant::now());
        }
        while broker_slot.proc.is_none()
            || shipper_slot.proc.is_none()
            || server_slot.proc.is_none()
        {
            self.restart_due(&mut broker_slot, "broker", || broker.start())?;
            self.restart_due(&mut shipper_slot, "shipper", || shipper.start())?;
            self.restart_due(&mut server_slot, "server", || server.start())?;
            std::thread::sleep(TICK);
        }
        if let Some(proc) = &server_slot.proc {
            server.wait_healthy(proc, Duration::from_secs(120))?;
        }
        if let Some(killed) = server_killed_at.take() {
            self.server_down.push((killed, now_ms()));
        }
        let drain_start = Instant::now();
        let mut kafka_total = 0;
        let mut kafka_changed = Instant::now();
        let mut shipped = false;
        let mut index_changed = Instant::now();
        let mut index_last = None;
        let drained = loop {
            std::thread::sleep(Duration::from_secs(2));
            self.check_alive(
                &mut broker_slot,
                &mut server_slot,
                &mut shipper_slot,
                &mut load,
            );
            self.restart_due(&mut shipper_slot, "shipper", || shipper.start())?;
            self.restart_due(&mut server_slot, "server", || server.start())?;
            self.restart_due(&mut broker_slot, "broker", || broker.start())?;
            let now_kafka = counter.count(&topics);
            if now_kafka != kafka_total {
                kafka_total = now_kafka;
                kafka_changed = Instant::now();
            }
            // Shipped: Kafka holds at least every line and has stopped growing, or has not
            // grown for a minute (then lines are missing, and the count will show which).
            if !shipped
                && ((kafka_total >= written.total()
                    && kafka_changed.elapsed() > Duration::from_secs(15))
                    || kafka_changed.elapsed() > Duration::from_secs(60))
            {
                shipped = true;
                self.note(format!(
                    "shipped: {kafka_total} records in Kafka for {} lines written",
                    written.total()
                ));
            }
            let indexed = index_total(&server, &token);
            if indexed != index_last {
                index_last = indexed;
                index_changed = Instant::now();
            }
            if shipped {
                if indexed == Some(kafka_total) {
                    break true;
                }
                if index_changed.elapsed() > Duration::from_secs(60) {
                    self.note(format!(
                        "the index stopped at {indexed:?} documents for {kafka_total} Kafka records"
                    ));
                    break false;
                }
            }
            if Instant::now() > drain_deadline {
                self.note(format!(
                    "drain timed out: {kafka_total} in Kafka, {indexed:?} indexed"
                ));
                break false;
            }
        };
        let drain_seconds = drain_start.elapsed().as_secs_f64();
        self.note(format!(
            "drained in {drain_seconds:.0} s{}",
            if drained { "" } else { " (not complete)" }
        ));

        // Everything stops; the load client has ended by now (same duration as the writer).
        if let Some(proc) = load.take() {
            let exit = proc.stop(Duration::from_secs(30));
            self.ended(&proc, &exit);
        }
        let dead_letters = shipper.dead_letters();
        for slot in [&mut shipper_slot, &mut server_slot] {
            if let Some(proc) = slot.proc.take() {
                let exit = proc.stop(Duration::from_secs(30));
                self.ended(&proc, &exit);
            }
        }
        self.note("reading every Kafka record".into());
        let kafka = verify::read_kafka(&broker.bootstrap(), &topics)?;
        if let Some(proc) = broker_slot.proc.take() {
            let exit = proc.stop(Duration::from_secs(30));
            self.ended(&proc, &exit);
        }
        let machine = Machine::finish(
            machine_start,
            &self.usage,
            crate::process::own_cpu_seconds(),
        );
        self.note("reading every index document".into());
        let accounting = verify::account(&server.data_dir.join("index"), kafka, &written.per_file)?;
        let soak_rss = crate::process::peak_rss_mib(std::process::id()).unwrap_or(0.0);
        let load_figures = LoadFigures::read(&self.work.join("load.ndjson"), &self.server_down)?;

        let report = Report {
            command: self
                .args
                .command
                .clone()
                .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" ")),
            broker_storage: if self.args.broker_storage.starts_with("postgres") {
                "PostgreSQL"
            } else {
                "SQLite"
            },
            minutes: self.args.minutes,
            rate: self.args.rate,
            files: self.args.files,
            namespaces: namespaces.len(),
            partitions: self.args.partitions,
            rotate_kib: rotate_bytes / 1024,
            seed: self.seed,
            written,
            accounting,
            load: load_figures,
            usage: self.usage.clone(),
            soak_rss_mib: soak_rss,
            machine,
            timeline: self.timeline.clone(),
            server_down: self.server_down.clone(),
            drain_seconds,
            drained,
            dead_letters,
            work_dir: self.work.clone(),
        };
        eprintln!("{}", report.text());
        if let Some(path) = &self.args.report {
            report.write_markdown(path)?;
            eprintln!("figures written to {}", path.display());
        }
        let passed = report.passed();
        println!("{}", report.json());
        Ok(passed)
    }

    /// Starts `slot` again when its restart is due.
    fn restart_due(
        &mut self,
        slot: &mut Slot,
        name: &'static str,
        start: impl FnOnce() -> anyhow::Result<Proc>,
    ) -> anyhow::Result<()> {
        if slot.restart_at.is_some_and(|at| Instant::now() >= at) {
            slot.restart_at = None;
            slot.proc = Some(start()?);
            self.started_proc(name);
            self.note(format!("{name}: started again"));
        }
        Ok(())
    }

    /// A process that exits without the soak asking is a finding: noted, counted, and
    /// restarted (the broker and server after their usual delays).
    fn check_alive(
        &mut self,
        broker: &mut Slot,
        server: &mut Slot,
        shipper: &mut Slot,
        load: &mut Option<Proc>,
    ) {
        for (slot, delay) in [
            (broker, Duration::ZERO),
            (server, SERVER_RESTART),
            (shipper, SHIPPER_RESTART),
        ] {
            let Some(exit) = slot.proc.as_ref().and_then(Proc::try_reap) else {
                continue;
            };
            let proc = slot.proc.take().expect("checked above");
            self.ended(&proc, &exit);
            let at = self.at();
            self.usage
                .entry(proc.name)
                .or_default()
                .unexpected_exits
                .push(format!("{at:.0} s: {}", exit.status));
            self.note(format!("{}: exited by itself ({})", proc.name, exit.status));
            slot.restart_at = Some(Instant::now() + delay);
        }
        if let Some(exit) = load.as_ref().and_then(Proc::try_reap) {
            let proc = load.take().expect("checked above");
            self.ended(&proc, &exit);
            if exit.status != "exit code 0" {
                let at = self.at();
                self.usage
                    .entry(proc.name)
                    .or_default()
                    .unexpected_exits
                    .push(format!("{at:.0} s: {}", exit.status));
                self.note(format!(
                    "load client: failed ({}); see load.log",
                    exit.status
                ));
            }
        }
    }

    /// When each chaos action happens, from the start of the writing.
    fn schedule(&self, rng: &mut StdRng, duration: Duration) -> Vec<(Duration, Action)> {
        let d = duration.as_secs_f64();
        let mut events = Vec::new();
        let outage = self.args.broker_outage_seconds as f64;
        let mut broker_window = None;
        if outage > 0.0 && d >= outage + 40.0 {
            let latest = (d * 0.5).min(d - outage - 10.0);
            let start = rng.random_range((d * 0.3).min(latest)..=latest);
            events.push((start, Action::StopBroker));
            events.push((start + outage, Action::StartBroker));
            broker_window = Some((start - 15.0, start + outage + 15.0));
        }
        let kills = self
            .args
            .server_kills
            .unwrap_or(((d / 180.0).round() as u32).max(1));
        let slice = d * 0.8 / f64::from(kills.max(1));
        for k in 0..kills {
            let from = d * 0.1 + slice * f64::from(k);
            let mut at = rng.random_range(from..from + slice);
            // Apart from the broker outage where the slice allows, so each is seen alone.
            for _ in 0..20 {
                match broker_window {
                    Some((a, b)) if at > a && at < b => at = rng.random_range(from..from + slice),
                    _ => break,
                }
            }
            events.push((at, Action::KillServer));
        }
        let (lo, hi) = (
            self.args.shipper_kill_min_seconds as f64,
            self.args
                .shipper_kill_max_seconds
                .max(self.args.shipper_kill_min_seconds) as f64,
        );
        if hi > 0.0 {
            let mut at = rng.random_range(lo..=hi);
            while at < d - 5.0 {
                events.push((at, Action::KillShipper));
                at += rng.random_range(lo..=hi).max(1.0);
            }
        }
        events.sort_by(|a, b| a.0.total_cmp(&b.0));
        events
            .into_iter()
            .map(|(at, action)| (Duration::from_secs_f64(at), action))
            .collect()
    }
}

fn describe_schedule(schedule: &[(Duration, Action)]) -> String {
    let times = |which: Action| {
        schedule
            .iter()
            .filter(|(_, a)| *a == which)
            .map(|(at, _)| format!("{:.0}", at.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "shipper SIGKILL at [{}] s, server SIGKILL at [{}] s, broker stop at [{}] s and start at [{}] s",
        times(Action::KillShipper),
        times(Action::KillServer),
        times(Action::StopBroker),
        times(Action::StartBroker)
    )
}

/// Documents in every namespace the admin reads, by the search API's exact total.
fn index_total(server: &Server, token: &str) -> Option<u64> {
    let (status, body) =
        procs::http_get(server.port, "/api/v1/search?limit=1", Some(token)).ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(&body).ok()?["total"].as_u64()
}
