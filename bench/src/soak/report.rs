//! The soak's figures: the load client's requests sorted into successes, failures during a
//! deliberate server kill, and errors; the machine the run shared; and the report as text,
//! as a Markdown section of `docs/reliability.md`, and as one JSON line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::procs::UsageBook;
use super::verify::Accounting;
use super::writer::Written;

/// Requests of one kind (search, histogram, export, tail, ...).
#[derive(Debug, Default)]
pub struct KindFigures {
    pub requests: u64,
    pub ok: u64,
    /// Failed outside every server down window.
    pub errors: u64,
    /// Failed while the server was down (SIGKILL → healthy again): expected.
    pub during_server_down: u64,
    latencies_ms: Vec<f64>,
}

impl KindFigures {
    /// The `q` quantile of the successful requests' latencies (nearest rank).
    pub fn latency(&self, q: f64) -> Option<f64> {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        percentile(&sorted, q)
    }
}

/// Nearest rank: the smallest value with at least `q` of the values at or below it.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    (n > 0).then(|| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
}

#[derive(Debug, Default)]
pub struct LoadFigures {
    pub kinds: BTreeMap<String, KindFigures>,
    pub error_examples: Vec<String>,
    pub tail_events: u64,
    /// The same event id twice on one tail connection.
    pub tail_repeats: u64,
    pub tail_drops: u64,
    pub export_lines: u64,
    pub export_bytes: u64,
    /// Tailed records: written → received, ms (p50, p99, max, samples).
    pub freshness: Option<(u64, u64, u64, u64)>,
}

impl LoadFigures {
    /// Reads the load client's lines; a failure that ended inside a server down window
    /// (`(killed, healthy)` in ms since the epoch) is expected, any other is an error.
    pub fn read(path: &Path, server_down: &[(i64, i64)]) -> anyhow::Result<LoadFigures> {
        let mut figures = LoadFigures::default();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let kind = v["kind"].as_str().unwrap_or("?").to_owned();
            if kind == "freshness" {
                let n = |k: &str| v[k].as_u64().unwrap_or(0);
                if n("samples") > 0 {
                    figures.freshness = Some((n("p50_ms"), n("p99_ms"), n("max_ms"), n("samples")));
                }
                continue;
            }
            let (start, end) = (
                v["start_ms"].as_i64().unwrap_or(0),
                v["end_ms"].as_i64().unwrap_or(0),
            );
            let status = v["status"].as_u64().unwrap_or(0);
            let error = v["error"].as_str().map(str::to_owned);
            let ok = (200..300).contains(&status) && error.is_none();
            match kind.as_str() {
                "tail" => {
                    figures.tail_events += v["events"].as_u64().unwrap_or(0);
                    figures.tail_repeats += v["repeats"].as_u64().unwrap_or(0);
                    figures.tail_drops += u64::from(v["dropped"].as_bool().unwrap_or(false));
                }
                "export" if ok => {
                    figures.export_lines += v["lines"].as_u64().unwrap_or(0);
                    figures.export_bytes += v["bytes"].as_u64().unwrap_or(0);
                }
                _ => {}
            }
            let entry = figures.kinds.entry(kind.clone()).or_default();
            entry.requests += 1;
            if ok {
                entry.ok += 1;
                // A tail's length is how long it was open, not a latency.
                if kind != "tail" {
                    entry.latencies_ms.push((end - start) as f64);
                }
            } else if server_down.iter().any(|&(a, b)| end >= a && end <= b) {
                entry.during_server_down += 1;
            } else {
                entry.errors += 1;
                if figures.error_examples.len() < 10 {
                    let when = chrono::DateTime::from_timestamp_millis(end)
                        .map(|t| t.format("%H:%M:%S%.3f").to_string())
                        .unwrap_or_default();
                    figures.error_examples.push(format!(
                        "{when} {kind} status {status}: {}",
                        error
                            .unwrap_or_default()
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ));
                }
            }
        }
        Ok(figures)
    }

    pub fn errors(&self) -> u64 {
        self.kinds.values().map(|k| k.errors).sum()
    }

    pub fn during_server_down(&self) -> u64 {
        self.kinds.values().map(|k| k.during_server_down).sum()
    }

    /// `/api/v1/search` latency quantile (first pages and next pages).
    pub fn search_latency(&self, q: f64) -> Option<f64> {
        let mut all: Vec<f64> = ["search", "search_next_page"]
            .iter()
            .filter_map(|k| self.kinds.get(*k))
            .flat_map(|k| k.latencies_ms.iter().copied())
            .collect();
        all.sort_by(f64::total_cmp);
        percentile(&all, q)
    }
}

/// The machine at the start of the run.
pub struct MachineStart {
    at: Instant,
    cpu: (u64, u64),
    load: String,
}

/// The machine the run shared, and how much of it the run used.
pub struct Machine {
    pub cpus: usize,
    pub model: String,
    pub mem_gib: f64,
    pub kernel: String,
    pub load_start: String,
    pub load_end: String,
    pub wall_seconds: f64,
    /// CPU time the whole machine spent busy during the run.
    pub busy_core_seconds: f64,
    /// CPU time of the soak's processes (itself included).
    pub soak_core_seconds: f64,
}

/// (busy, total) jiffies of all CPUs from /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    // idle and iowait are fields 4 and 5.
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    pub fn snapshot() -> MachineStart {
        MachineStart {
            at: Instant::now(),
            cpu: cpu_jiffies(),
            load: load_average(),
        }
    }

    pub fn finish(start: MachineStart, usage: &UsageBook, own_cpu_seconds: f64) -> Machine {
        let (busy, total) = cpu_jiffies();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wall_seconds = start.at.elapsed().as_secs_f64();
        let busy_share = (busy - start.cpu.0) as f64 / (total - start.cpu.1).max(1) as f64;
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus,
            model,
            mem_gib: mem_kib / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            load_start: start.load,
            load_end: load_average(),
            wall_seconds,
            busy_core_seconds: busy_share * cpus as f64 * wall_seconds,
            soak_core_seconds: usage.values().map(|u| u.cpu_seconds).sum::<f64>() + own_cpu_seconds,
        }
    }

    /// Core-seconds other processes (builds, other tests) used during the run.
    pub fn others_core_seconds(&self) -> f64 {
        (self.busy_core_seconds - self.soak_core_seconds).max(0.0)
    }
}

pub struct Report {
    pub command: String,
    /// What the broker stored its data in (PostgreSQL, SQLite).
    pub broker_storage: &'static str,
    pub minutes: f64,
    pub rate: u64,
    pub files: usize,
    pub namespaces: usize,
    pub partitions: u32,
    pub rotate_kib: u64,
    pub seed: u64,
    pub written: Written,
    pub accounting: Accounting,
    pub load: LoadFigures,
    pub usage: UsageBook,
    pub soak_rss_mib: f64,
    pub machine: Machine,
    pub timeline: Vec<(f64, String)>,
    pub server_down: Vec<(i64, i64)>,
    pub drain_seconds: f64,
    pub drained: bool,
    pub dead_letters: u64,
    pub work_dir: PathBuf,
}

const BEGIN: &str = "<!-- soak:begin (written by ./scripts/soak) -->";
const END: &str = "<!-- soak:end -->";

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into())
}

impl Report {
    fn unexpected_exits(&self) -> Vec<String> {
        self.usage
            .iter()
            .flat_map(|(name, u)| {
                u.unexpected_exits
                    .iter()
                    .map(move |e| format!("{name} at {e}"))
            })
            .collect()
    }

    /// Nothing lost, nothing indexed twice, every Kafka record indexed with its own content,
    /// and no process died unasked.
    pub fn passed(&self) -> bool {
        self.accounting.passed() && self.unexpected_exits().is_empty()
    }

    fn kills(&self, what: &str) -> usize {
        self.timeline
            .iter()
            .filter(|(_, t)| t.as_str() == what)
            .count()
    }

    /// One line of JSON, the keys the issue names first and in its order (serde_json's own
    /// maps sort their keys), then the ones that explain them.
    pub fn json(&self) -> String {
        let a = &self.accounting;
        let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
        let fields = [
            ("bench", json!("soak")),
            ("written", json!(a.written)),
            ("in_kafka", json!(a.in_kafka)),
            ("indexed", json!(a.indexed)),
            ("lost", json!(a.lost)),
            ("duplicated", json!(a.duplicated)),
            ("search_p50_ms", json!(round(self.load.search_latency(0.5)))),
            (
                "search_p99_ms",
                json!(round(self.load.search_latency(0.99))),
            ),
            ("errors", json!(self.load.errors())),
            ("duplicated_in_kafka", json!(a.duplicated_in_kafka)),
            ("not_indexed", json!(a.not_indexed)),
            ("content_mismatch", json!(a.content_mismatch)),
            (
                "requests_during_server_down",
                json!(self.load.during_server_down()),
            ),
            ("minutes", json!(self.minutes)),
            ("lines_per_s", json!(self.rate)),
            ("passed", json!(self.passed())),
        ];
        let body: Vec<String> = fields
            .iter()
            .map(|(key, value)| format!("{}:{value}", json!(key)))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    fn figures_rows(&self) -> Vec<(String, String, &'static str)> {
        let a = &self.accounting;
        let ok = |bad: bool| if bad { "**FAIL**" } else { "ok" };
        vec![
            ("lines written".into(), a.written.to_string(), ""),
            ("records in Kafka".into(), a.in_kafka.to_string(), ""),
            (
                "  distinct lines in Kafka".into(),
                a.kafka_unique_lines.to_string(),
                "",
            ),
            (
                "  duplicated in Kafka (shipper redelivery after SIGKILL; at-least-once)".into(),
                a.duplicated_in_kafka.to_string(),
                "expected",
            ),
            (
                "  lines missing from Kafka".into(),
                a.missing_from_kafka.to_string(),
                "",
            ),
            (
                "  Kafka records without a line's marker".into(),
                a.kafka_without_marker.to_string(),
                ok(a.kafka_without_marker > 0),
            ),
            ("records in the index".into(), a.indexed.to_string(), ""),
            (
                "**lost** (written, in no index document)".into(),
                a.lost.to_string(),
                ok(a.lost > 0),
            ),
            (
                "**duplicated in the index** (same Kafka topic/partition/offset twice)".into(),
                a.duplicated.to_string(),
                ok(a.duplicated > 0),
            ),
            (
                "Kafka records not indexed".into(),
                a.not_indexed.to_string(),
                ok(a.not_indexed > 0),
            ),
            (
                "index documents whose Kafka offset does not exist".into(),
                a.indexed_outside_kafka.to_string(),
                ok(a.indexed_outside_kafka > 0),
            ),
            (
                "index documents whose content differs from their Kafka record".into(),
                a.content_mismatch.to_string(),
                ok(a.content_mismatch > 0),
            ),
            (
                "shipper dead letters".into(),
                self.dead_letters.to_string(),
                "",
            ),
        ]
    }

    fn load_rows(&self) -> Vec<[String; 7]> {
        self.load
            .kinds
            .iter()
            .map(|(kind, k)| {
                let (p50, p99) = if kind == "tail" {
                    ("–".into(), "–".into())
                } else {
                    (ms(k.latency(0.5)), ms(k.latency(0.99)))
                };
                [
                    kind.clone(),
                    k.requests.to_string(),
                    k.ok.to_string(),
                    k.errors.to_string(),
                    k.during_server_down.to_string(),
                    p50,
                    p99,
                ]
            })
            .collect()
    }

    fn chaos_summary(&self) -> String {
        let downs: Vec<String> = self
            .server_down
            .iter()
            .map(|(a, b)| format!("{:.1} s", (b - a) as f64 / 1000.0))
            .collect();
        let broker: Vec<String> = self
            .timeline
            .iter()
            .filter(|(_, t)| t.starts_with("broker: stopped"))
            .map(|(at, _)| format!("at {at:.0} s"))
            .collect();
        format!(
            "{} shipper SIGKILLs; {} server SIGKILLs (down {} until healthy again); broker stopped {} ({}); {} rotations by rename, {} by copytruncate",
            self.kills("shipper: SIGKILL"),
            self.kills("server: SIGKILL"),
            if downs.is_empty() { "–".into() } else { downs.join(", ") },
            broker.len(),
            if broker.is_empty() { "–".into() } else { broker.join(", ") },
            self.written.rotations_rename,
            self.written.rotations_copytruncate,
        )
    }

    fn process_rows(&self) -> Vec<[String; 4]> {
        let mut rows: Vec<[String; 4]> = self
            .usage
            .iter()
            .map(|(name, u)| {
                [
                    name.to_string(),
                    u.starts.to_string(),
                    format!("{:.1}", u.peak_rss_mib),
                    format!("{:.0}", u.cpu_seconds),
                ]
            })
            .collect();
        rows.push([
            "soak itself (writer, verifier)".into(),
            "1".into(),
            format!("{:.1}", self.soak_rss_mib),
            "–".into(),
        ]);
        rows
    }

    fn machine_line(&self) -> String {
        let m = &self.machine;
        format!(
            "{} × {}, {:.0} GiB, Linux {}; load average {} at the start, {} at the end; over the {:.0} s the machine was busy {:.0} core-s, of which the soak's processes {:.0} core-s and other processes (builds and tests sharing the machine) {:.0} core-s ({:.0} % of the machine)",
            m.cpus,
            m.model,
            m.mem_gib,
            m.kernel,
            m.load_start,
            m.load_end,
            m.wall_seconds,
            m.busy_core_seconds,
            m.soak_core_seconds,
            m.others_core_seconds(),
            m.others_core_seconds() / (m.wall_seconds * m.cpus as f64).max(1.0) * 100.0
        )
    }

    /// The summary printed at the end of a run.
    pub fn text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "\n== soak: {} ==\n",
            if self.passed() { "PASSED" } else { "FAILED" }
        ));
        for (what, value, verdict) in self.figures_rows() {
            out.push_str(&format!("{what:<75} {value:>12} {verdict}\n"));
        }
        out.push_str(&format!(
            "drained in {:.0} s after the writing stopped{}\n",
            self.drain_seconds,
            if self.drained { "" } else { " (NOT complete)" }
        ));
        out.push_str(&format!("chaos: {}\n", self.chaos_summary()));
        out.push_str(
            "load (kind, requests, ok, errors, failed during server down, p50 ms, p99 ms):\n",
        );
        for row in self.load_rows() {
            out.push_str(&format!("  {}\n", row.join("  ")));
        }
        out.push_str(&format!(
            "tails: {} events, {} repeated ids, {} dropped; exports: {} lines, {:.1} MB\n",
            self.load.tail_events,
            self.load.tail_repeats,
            self.load.tail_drops,
            self.load.export_lines,
            self.load.export_bytes as f64 / 1e6
        ));
        if let Some((p50, p99, max, n)) = self.load.freshness {
            out.push_str(&format!(
                "freshness of tailed records (written → received): p50 {p50} ms, p99 {p99} ms, max {max} ms ({n} samples)\n"
            ));
        }
        for example in &self.load.error_examples {
            out.push_str(&format!("  error: {example}\n"));
        }
        for (what, examples) in &self.accounting.examples {
            out.push_str(&format!("  {what}: {}\n", examples.join(", ")));
        }
        for exit in self.unexpected_exits() {
            out.push_str(&format!("  unexpected exit: {exit}\n"));
        }
        out.push_str("processes (name, starts, peak RSS MiB, CPU s):\n");
        for row in self.process_rows() {
            out.push_str(&format!("  {}\n", row.join("  ")));
        }
        out.push_str(&format!("machine: {}\n", self.machine_line()));
        out.push_str(&format!("logs and data: {}\n", self.work_dir.display()));
        out
    }

    fn markdown(&self) -> String {
        let mut md = String::new();
        let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
        md.push_str(&format!(
            "{BEGIN}\n## Chaos and soak: `./scripts/soak`\n\n\
             The whole pipeline on one machine: nisshi (storage on disk, so it survives a stop), \
             the shipper, and the server on PostgreSQL. Container log files are written at \
             a fixed rate; every line carries a marker (file number, sequence number) so it can be \
             found exactly. Meanwhile the shipper is SIGKILLed at random intervals and restarted, \
             the server is SIGKILLed and restarted, the broker is stopped and started again, and a \
             second process (`bitesize-bench load`) runs searches, histograms, facets, live tails \
             and exports with an admin token. When the writing stops the pipeline drains, everything \
             stops, and every Kafka record (read outside any consumer group) and every index \
             document (read from the Tantivy indexes, with the Kafka offset each came from) is \
             counted.\n\n\
             - *Duplicated in Kafka*: the shipper is at-least-once; a SIGKILL before its checkpoint \
             sends lines again. Those are distinct Kafka records, so the index holds them too.\n\
             - *Duplicated in the index*: a Kafka record (topic, partition, offset) indexed more \
             than once. Must be 0: the server indexes exactly once by offset.\n\
             - *Lost*: a line written that no index document carries. Must be 0.\n\
             - *Errors*: requests of the load client that failed (non-2xx, cut short, timed out) \
             other than those that ended while the server was deliberately down (SIGKILL until \
             `/healthz` answered again), which are counted apart.\n\n\
             ### Run of {date}: **{verdict}**\n\n\
             ```\n{command}\n```\n\n\
             {minutes} min at {rate} lines/s, {files} files in {namespaces} namespaces, {partitions} \
             partitions per topic, rotation every ~{rotate} KiB per file, broker storage \
             {storage}, seed {seed}.\n\n\
             Machine: {machine}.\n\n",
            verdict = if self.passed() { "passed" } else { "FAILED" },
            command = self.command,
            minutes = self.minutes,
            rate = self.rate,
            files = self.files,
            namespaces = self.namespaces,
            partitions = self.partitions,
            rotate = self.rotate_kib,
            storage = self.broker_storage,
            seed = self.seed,
            machine = self.machine_line(),
        ));
        md.push_str("| figure | value | |\n|---|---:|---|\n");
        for (what, value, verdict) in self.figures_rows() {
            md.push_str(&format!("| {} | {value} | {verdict} |\n", what.trim()));
        }
        md.push_str(&format!(
            "\nDrained in {:.0} s after the writing stopped{}. Chaos: {}.\n\n",
            self.drain_seconds,
            if self.drained {
                ""
            } else {
                " (**not complete**)"
            },
            self.chaos_summary()
        ));
        md.push_str("| load | requests | ok | errors | failed while the server was down | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for row in self.load_rows() {
            md.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        md.push_str(&format!(
            "\nSearch (`/api/v1/search`, first and next pages) p50 {} ms, p99 {} ms. Tails: {} events, {} repeated event ids on one connection, {} dropped. Exports: {} lines, {:.1} MB.",
            ms(self.load.search_latency(0.5)),
            ms(self.load.search_latency(0.99)),
            self.load.tail_events,
            self.load.tail_repeats,
            self.load.tail_drops,
            self.load.export_lines,
            self.load.export_bytes as f64 / 1e6
        ));
        if let Some((p50, p99, max, n)) = self.load.freshness {
            md.push_str(&format!(
                " Freshness of tailed records (written to the file → received by the tail): p50 {p50} ms, p99 {p99} ms, max {max} ms over {n} records, outages included."
            ));
        }
        md.push_str("\n\n");
        if !self.load.error_examples.is_empty() {
            md.push_str("Errors (first ten):\n\n");
            for e in &self.load.error_examples {
                md.push_str(&format!("- `{e}`\n"));
            }
            md.push('\n');
        }
        if !self.accounting.examples.is_empty() || !self.unexpected_exits().is_empty() {
            md.push_str("Findings (examples):\n\n");
            for (what, examples) in &self.accounting.examples {
                md.push_str(&format!("- {what}: `{}`\n", examples.join("`, `")));
            }
            for exit in self.unexpected_exits() {
                md.push_str(&format!("- unexpected exit: {exit}\n"));
            }
            md.push('\n');
        }
        md.push_str("| process | starts | peak RSS (MiB) | CPU (s) |\n|---|---:|---:|---:|\n");
        for row in self.process_rows() {
            md.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        md.push_str("\n<details><summary>Timeline</summary>\n\n```\n");
        for (at, what) in &self.timeline {
            md.push_str(&format!("{at:7.1} s  {what}\n"));
        }
        md.push_str(&format!(
            "```\n\n</details>\n\n```\n{}\n```\n{END}\n",
            self.json()
        ));
        md
    }

    /// Replaces the soak's section of `path` (between its markers), or appends it; creates
    /// the file with a title when missing.
    pub fn write_markdown(&self, path: &Path) -> anyhow::Result<()> {
        let section = self.markdown();
        let current = std::fs::read_to_string(path).unwrap_or_else(|_| {
            "# Reliability\n\nFigures from runs anyone can repeat: what the promise \"nothing lost, nothing leaked\" holds up to.\n\n".to_owned()
        });
        let updated = match (current.find(BEGIN), current.find(END)) {
            (Some(a), Some(b)) if b > a => {
                let after = &current[b + END.len()..];
                let after = after.strip_prefix('\n').unwrap_or(after);
                format!("{}{section}{after}", &current[..a])
            }
            _ => format!(
                "{}{}{section}",
                current,
                if current.ends_with("\n\n") { "" } else { "\n" }
            ),
        };
        std::fs::write(path, updated)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_inside_a_server_down_window_are_not_errors() {
        let dir = std::env::temp_dir().join(format!("bitesize-soak-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("load.ndjson");
        std::fs::write(
            &path,
            [
                r#"{"kind":"search","start_ms":1000,"end_ms":1010,"status":200,"error":null}"#,
                r#"{"kind":"search","start_ms":1000,"end_ms":1030,"status":200,"error":null}"#,
                r#"{"kind":"search","start_ms":2000,"end_ms":2001,"status":0,"error":"connection refused"}"#,
                r#"{"kind":"search","start_ms":4000,"end_ms":4001,"status":500,"error":"boom"}"#,
                r#"{"kind":"tail","start_ms":0,"end_ms":2500,"status":200,"events":7,"repeats":0,"dropped":false,"error":"stream cut"}"#,
                r#"{"kind":"freshness","samples":3,"p50_ms":40,"p99_ms":90,"max_ms":95}"#,
            ]
            .join("\n"),
        )
        .unwrap();
        let figures = LoadFigures::read(&path, &[(1900, 3000)]).unwrap();
        assert_eq!(figures.errors(), 1, "the 500 at 4 s");
        assert_eq!(
            figures.during_server_down(),
            2,
            "refused at 2 s, tail cut at 2.5 s"
        );
        assert_eq!(figures.kinds["search"].ok, 2);
        assert_eq!(figures.search_latency(0.5), Some(10.0));
        assert_eq!(figures.search_latency(0.99), Some(30.0));
        assert_eq!(figures.tail_events, 7);
        assert_eq!(figures.freshness, Some((40, 90, 95, 3)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
