//! Seeded container log files in the kubelet's CRI format: JSON application lines of about
//! 300 bytes, named `<pod>_<namespace>_<container>-<id>.log` like `/var/log/containers`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bitesize_record::RecordParts;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Namespaces the files are spread over (one Kafka topic each for the shipper).
pub const NAMESPACES: [&str; 5] = ["shop", "payments", "auth", "search", "billing"];

pub struct LogFile {
    pub path: PathBuf,
    pub namespace: &'static str,
    pub pod: String,
}

/// The names of `count` container log files in `dir`, spread over [`NAMESPACES`].
pub fn log_files(dir: &Path, count: usize) -> Vec<LogFile> {
    (0..count)
        .map(|i| {
            let namespace = NAMESPACES[i % NAMESPACES.len()];
            let pod = format!("{namespace}-web-{i:04}-7d9f8c6b5-x{i:03}z");
            let id = format!("{:064x}", 0xb17e_512e_u64 * (i as u64 + 1));
            LogFile {
                path: dir.join(format!("{pod}_{namespace}_app-{id}.log")),
                namespace,
                pod,
            }
        })
        .collect()
}

/// Lines of about 300 bytes; the same seed gives the same lines.
pub struct LineMaker {
    rng: StdRng,
    nanos: u64,
}

const PATHS: [&str; 6] = [
    "/api/v1/items",
    "/api/v1/cart",
    "/api/v1/checkout",
    "/healthz",
    "/api/v1/users",
    "/static/app.js",
];

impl LineMaker {
    pub fn new(seed: u64) -> LineMaker {
        LineMaker {
            rng: StdRng::seed_from_u64(seed),
            // 2026-11-25T00:00:00Z
            nanos: 1_795_564_800_000_000_000,
        }
    }

    /// One CRI line, newline included.
    pub fn line(&mut self, out: &mut Vec<u8>) {
        self.nanos += self.rng.random_range(1_000..2_000_000);
        let secs = self.nanos / 1_000_000_000;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let nanos = self.nanos % 1_000_000_000;
        let status = [200, 200, 200, 201, 304, 404, 500][self.rng.random_range(0..7)];
        let path = PATHS[self.rng.random_range(0..PATHS.len())];
        let level = if status >= 500 { "error" } else { "info" };
        let _ = writeln!(
            out,
            "2026-11-25T{h:02}:{m:02}:{s:02}.{nanos:09}Z stdout F \
             {{\"level\":\"{level}\",\"msg\":\"request served\",\"method\":\"GET\",\
             \"path\":\"{path}/{item}\",\"status\":{status},\"latency_ms\":{latency},\
             \"user\":\"user-{user}\",\"trace_id\":\"{trace:032x}\",\"bytes\":{bytes},\
             \"agent\":\"Mozilla/5.0 (X11; Linux x86_64) bench/1.0\"}}",
            item = self.rng.random_range(1..100_000u32),
            latency = self.rng.random_range(1..2_000u32),
            user = self.rng.random_range(1..50_000u32),
            trace = self.rng.random::<u128>(),
            bytes = self.rng.random_range(100..100_000u32),
        );
    }
}

/// The Kafka records the shipper would write for the lines [`write_files`] writes (same seed,
/// same round-robin over `files`), made in memory: the same record writer as the shipper
/// (`RecordParts`), with the pod metadata the Kubernetes API would add (labels, image), so an
/// index built from them holds what a cluster's would. For the ingest and search benchmarks,
/// which need millions of records without shipping files first.
pub struct RecordMaker {
    pods: Vec<PodMetadata>,
    lines: LineMaker,
    line: Vec<u8>,
    next: usize,
}

/// What the shipper knows about one file's container.
struct PodMetadata {
    namespace: &'static str,
    pod: String,
    container_id: String,
    image: String,
    labels: std::collections::BTreeMap<String, String>,
}

/// One generated record.
pub struct MadeRecord {
    pub namespace: &'static str,
    /// The CRI line it came from, newline included (what the container wrote, framed).
    pub line_bytes: usize,
    /// The record's JSON, as the shipper produces it to Kafka.
    pub payload: Vec<u8>,
}

impl RecordMaker {
    pub fn new(files: &[LogFile], seed: u64) -> RecordMaker {
        let pods = files
            .iter()
            .map(|file| {
                let name = file
                    .path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                let container_id = name
                    .rsplit_once("app-")
                    .map(|(_, id)| id)
                    .unwrap_or_default();
                PodMetadata {
                    namespace: file.namespace,
                    pod: file.pod.clone(),
                    container_id: container_id.to_owned(),
                    image: format!("registry.example.com/{}/web:1.14.2", file.namespace),
                    labels: [
                        ("app".to_owned(), format!("{}-web", file.namespace)),
                        ("pod-template-hash".to_owned(), "7d9f8c6b5".to_owned()),
                        ("tier".to_owned(), "frontend".to_owned()),
                    ]
                    .into(),
                }
            })
            .collect();
        RecordMaker {
            pods,
            lines: LineMaker::new(seed),
            line: Vec::with_capacity(512),
            next: 0,
        }
    }

    /// The next record.
    pub fn record(&mut self) -> MadeRecord {
        self.line.clear();
        self.lines.line(&mut self.line);
        let pod = &self.pods[self.next % self.pods.len()];
        self.next += 1;
        let text = std::str::from_utf8(&self.line).expect("generated lines are UTF-8");
        // `<time> <stream> F <message>\n`, as the generator writes it.
        let mut parts = text.trim_end_matches('\n').splitn(4, ' ');
        let (time, stream, _, message) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next(),
            parts.next().unwrap_or_default(),
        );
        let payload = RecordParts {
            time: Some(time),
            stream,
            log: message,
            container_id: &pod.container_id,
            namespace_name: pod.namespace,
            pod_name: &pod.pod,
            container_name: "app",
            container_image: &pod.image,
            host: "bench-node",
            labels: Some(&pod.labels),
            merge_json_log: true,
            ..Default::default()
        }
        .to_vec();
        MadeRecord {
            namespace: pod.namespace,
            line_bytes: self.line.len(),
            payload,
        }
    }
}

/// Writes `lines` lines round-robin over `files`; returns the bytes written.
pub fn write_files(files: &[LogFile], lines: u64, seed: u64) -> anyhow::Result<u64> {
    let mut writers = files
        .iter()
        .map(|f| Ok(BufWriter::with_capacity(1 << 20, File::create(&f.path)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut maker = LineMaker::new(seed);
    let mut line = Vec::with_capacity(512);
    let mut bytes = 0;
    for i in 0..lines {
        line.clear();
        maker.line(&mut line);
        bytes += line.len() as u64;
        writers[(i % files.len() as u64) as usize].write_all(&line)?;
    }
    for writer in &mut writers {
        writer.flush()?;
    }
    Ok(bytes)
}

/// Appends to `files` at `bytes_per_s` in total for `seconds`, in 100 ms steps, the way
/// busy containers write. Returns the lines written.
pub fn write_at_rate(
    files: &[LogFile],
    bytes_per_s: u64,
    seconds: u64,
    seed: u64,
) -> anyhow::Result<u64> {
    let mut handles = files
        .iter()
        .map(|f| Ok(OpenOptions::new().create(true).append(true).open(&f.path)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut maker = LineMaker::new(seed);
    let per_step = bytes_per_s / 10 / files.len() as u64;
    let start = std::time::Instant::now();
    let mut lines = 0;
    let mut chunk = Vec::with_capacity(per_step as usize + 512);
    for step in 0..seconds * 10 {
        for handle in &mut handles {
            chunk.clear();
            while (chunk.len() as u64) < per_step {
                maker.line(&mut chunk);
                lines += 1;
            }
            handle.write_all(&chunk)?;
        }
        let next = std::time::Duration::from_millis((step + 1) * 100);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(lines)
}

/// A fresh, empty directory.
pub fn fresh_dir(path: &Path) -> anyhow::Result<PathBuf> {
    if path.exists() {
        fs::remove_dir_all(path)?;
    }
    fs::create_dir_all(path)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_seeded_cri_lines_of_about_300_bytes() {
        let (mut a, mut b) = (LineMaker::new(7), LineMaker::new(7));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..100 {
            a.line(&mut x);
            b.line(&mut y);
        }
        assert_eq!(x, y, "same seed, same lines");
        let text = String::from_utf8(x).unwrap();
        for line in text.lines() {
            assert!(
                (250..=350).contains(&line.len()),
                "{} bytes: {line}",
                line.len()
            );
            let (_, message) = line.split_once(" stdout F ").expect("a CRI line");
            serde_json::from_str::<serde_json::Value>(message).expect("a JSON message");
        }
    }

    #[test]
    fn made_records_are_the_shippers_records_of_the_written_lines() {
        let files = log_files(Path::new("/logs"), 10);
        let mut maker = RecordMaker::new(&files, 7);
        let mut lines = LineMaker::new(7);
        for i in 0..20 {
            let made = maker.record();
            let mut line = Vec::new();
            lines.line(&mut line);
            assert_eq!(made.line_bytes, line.len());
            assert_eq!(made.namespace, files[i % 10].namespace);
            let record = bitesize_record::Record::decode(&made.payload).expect("a record");
            let text = String::from_utf8(line).unwrap();
            let (time, rest) = text.split_once(' ').unwrap();
            assert_eq!(record.time.as_deref(), Some(time));
            assert_eq!(record.stream, "stdout");
            assert_eq!(
                Some(record.log.as_str()),
                rest.strip_prefix("stdout F ").map(str::trim_end)
            );
            assert_eq!(record.kubernetes.pod_name, files[i % 10].pod);
            assert_eq!(
                record.kubernetes.labels["app"],
                format!("{}-web", made.namespace)
            );
            let fields = record.fields.expect("the JSON message in fields");
            assert!(fields["status"].is_u64(), "{fields:?}");
        }
    }

    #[test]
    fn file_names_carry_namespace_pod_and_container() {
        let files = log_files(Path::new("/logs"), 10);
        let name = files[1].path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("payments-web-0001-"), "{name}");
        assert!(name.contains("_payments_app-"), "{name}");
        assert_eq!(files[1].namespace, "payments");
    }
}
