//! The soak's workload: container log files in the kubelet's CRI format, written at a fixed
//! rate, each line carrying a marker `bsoak.<file>.<seq>` that names it exactly (the file's
//! number and the line's sequence number in that file, counting on across rotations), so a
//! line can be looked for in Kafka and in the index. Files rotate by rename + create (the
//! kubelet's way) and by copytruncate (logrotate's), in turn; rotated files are kept, so
//! nothing the shipper has not read yet is deleted under it. About 1 % of lines are split
//! by the runtime into a `P` and an `F` piece, the marker in the first.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::workload::LogFile;

/// Bytes of one line, about (the marker and metadata included).
pub const LINE_BYTES: u64 = 300;
const STEP: Duration = Duration::from_millis(100);

/// The marker of line `seq` of file `file`: fixed width, words the query language can
/// search (`"bsoak 007 0000000042"`), no character JSON escapes.
pub fn marker(file: usize, seq: u64) -> String {
    format!("bsoak.{file:03}.{seq:010}")
}

/// The (file, seq) of the first marker in `bytes`.
pub fn find_marker(bytes: &[u8]) -> Option<(usize, u64)> {
    const PREFIX: &[u8] = b"bsoak.";
    let at = bytes.windows(PREFIX.len()).position(|w| w == PREFIX)?;
    let rest = bytes.get(at + PREFIX.len()..at + PREFIX.len() + 14)?;
    let digits = |b: &[u8]| -> Option<u64> {
        b.iter().try_fold(0u64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
        })
    };
    if rest[3] != b'.' {
        return None;
    }
    Some((digits(&rest[..3])? as usize, digits(&rest[4..])?))
}

/// How the writer is doing, shared with the soak's progress line.
#[derive(Default)]
pub struct Progress {
    pub lines: AtomicU64,
    pub rotations_rename: AtomicU64,
    pub rotations_copytruncate: AtomicU64,
}

/// What the writer wrote: lines per file (sequence numbers `0..written[i]`).
pub struct Written {
    pub per_file: Vec<u64>,
    pub rotations_rename: u64,
    pub rotations_copytruncate: u64,
    /// Steps that started later than planned: the writer could not keep the rate.
    pub late_steps: u64,
}

impl Written {
    pub fn total(&self) -> u64 {
        self.per_file.iter().sum()
    }
}

pub struct Writer {
    files: Vec<LogFile>,
    lines_per_s: u64,
    rotate_bytes: u64,
    rng: StdRng,
}

/// One file being written.
struct Open {
    handle: File,
    size: u64,
    next_seq: u64,
    generation: u32,
}

impl Writer {
    /// Files rotate once they hold `rotate_bytes`.
    pub fn new(files: Vec<LogFile>, lines_per_s: u64, rotate_bytes: u64, seed: u64) -> Writer {
        Writer {
            files,
            lines_per_s,
            rotate_bytes,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Writes until `stop` is set; lines are spread evenly over the files, in 100 ms steps.
    pub fn run(
        mut self,
        stop: Arc<AtomicBool>,
        progress: Arc<Progress>,
    ) -> anyhow::Result<Written> {
        let mut open = self
            .files
            .iter()
            .map(|f| {
                Ok(Open {
                    handle: append(&f.path)?,
                    size: 0,
                    next_seq: 0,
                    generation: 0,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let start = Instant::now();
        let mut step: u64 = 0;
        let mut planned: u64 = 0;
        let mut late_steps = 0;
        let mut chunk = Vec::with_capacity(1 << 20);
        while !stop.load(Ordering::SeqCst) {
            // Lines due by the end of this step, so the total follows the rate exactly.
            let due = self.lines_per_s * (step + 1) * STEP.as_millis() as u64 / 1000;
            let lines = due - planned;
            planned = due;
            let count = self.files.len() as u64;
            for (i, file) in open.iter_mut().enumerate() {
                // File i gets lines / count, and one more for the first `lines % count` files
                // (turning with the step, so every file gets the same over time).
                let extra = ((i as u64 + count - step % count) % count) < lines % count;
                let n = lines / count + u64::from(extra);
                if n == 0 {
                    continue;
                }
                chunk.clear();
                for _ in 0..n {
                    self.line(i, file.next_seq, &mut chunk);
                    file.next_seq += 1;
                }
                file.handle.write_all(&chunk)?;
                file.size += chunk.len() as u64;
                progress.lines.fetch_add(n, Ordering::Relaxed);
                if file.size >= self.rotate_bytes {
                    self.rotate(i, file, &progress)?;
                }
            }
            step += 1;
            let next = STEP * step as u32;
            match next.checked_sub(start.elapsed()) {
                Some(wait) => std::thread::sleep(wait),
                None => late_steps += 1,
            }
        }
        Ok(Written {
            per_file: open.iter().map(|f| f.next_seq).collect(),
            rotations_rename: progress.rotations_rename.load(Ordering::Relaxed),
            rotations_copytruncate: progress.rotations_copytruncate.load(Ordering::Relaxed),
            late_steps,
        })
    }

    /// Rotates file `i`: rename + create on even generations, copytruncate on odd ones.
    /// Nothing is written meanwhile, so no line falls between the copy and the truncation.
    fn rotate(&self, i: usize, file: &mut Open, progress: &Progress) -> anyhow::Result<()> {
        file.generation += 1;
        let path = &self.files[i].path;
        let rotated = PathBuf::from(format!("{}.{}", path.display(), file.generation));
        if file.generation % 2 == 0 {
            fs::rename(path, &rotated)?;
            file.handle = append(path)?;
            progress.rotations_rename.fetch_add(1, Ordering::Relaxed);
        } else {
            fs::copy(path, &rotated)?;
            file.handle.set_len(0)?;
            progress
                .rotations_copytruncate
                .fetch_add(1, Ordering::Relaxed);
        }
        file.size = 0;
        Ok(())
    }

    /// Line `seq` of file `i`, in the CRI format (time now), newline included; a JSON
    /// application message of about [`LINE_BYTES`] with the marker.
    fn line(&mut self, i: usize, seq: u64, out: &mut Vec<u8>) {
        const PATHS: [&str; 5] = [
            "/api/v1/items",
            "/api/v1/cart",
            "/api/v1/checkout",
            "/healthz",
            "/api/v1/users",
        ];
        let rng = &mut self.rng;
        let status = [200, 200, 200, 201, 304, 404, 500][rng.random_range(0..7)];
        let (level, stream) = if status >= 500 {
            ("error", "stderr")
        } else {
            ("info", "stdout")
        };
        let message = format!(
            "{{\"level\":\"{level}\",\"soak\":\"{marker}\",\"msg\":\"request served\",\
             \"method\":\"GET\",\"path\":\"{path}/{item}\",\"status\":{status},\
             \"latency_ms\":{latency},\"user\":\"user-{user}\",\"trace_id\":\"{trace:032x}\"}}",
            marker = marker(i, seq),
            path = PATHS[rng.random_range(0..PATHS.len())],
            item = rng.random_range(1..100_000u32),
            latency = rng.random_range(1..2_000u32),
            user = rng.random_range(1..50_000u32),
            trace = rng.random::<u128>(),
        );
        let time = || chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.9fZ");
        if rng.random_range(0..100) == 0 {
            // Split by the runtime: the marker is in the first piece.
            let (first, rest) = message.split_at(message.len() / 2);
            let _ = writeln!(out, "{} {stream} P {first}", time());
            let _ = writeln!(out, "{} {stream} F {rest}", time());
        } else {
            let _ = writeln!(out, "{} {stream} F {message}", time());
        }
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload;

    #[test]
    fn markers_are_found_where_json_escaping_put_them() {
        assert_eq!(marker(7, 42), "bsoak.007.0000000042");
        let record = br#"{"log":"{\"level\":\"info\",\"soak\":\"bsoak.007.0000000042\"}"}"#;
        assert_eq!(find_marker(record), Some((7, 42)));
        assert_eq!(find_marker(b"no marker here"), None);
        assert_eq!(find_marker(b"bsoak.007.00000"), None, "cut short");
        assert_eq!(find_marker(b"bsoak.0x7.0000000042"), None);
    }

    #[test]
    fn writes_every_sequence_number_once_through_both_rotations() {
        let dir = std::env::temp_dir().join(format!("bitesize-soak-writer-{}", std::process::id()));
        let dir = workload::fresh_dir(&dir).unwrap();
        let files = workload::log_files(&dir, 3);
        let names: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
        // 30 KB rotations at 3 000 lines/s: several of each kind in 1.5 s.
        let writer = Writer::new(files, 3_000, 30_000, 1);
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let handle = {
            let (stop, progress) = (stop.clone(), progress.clone());
            std::thread::spawn(move || writer.run(stop, progress))
        };
        std::thread::sleep(Duration::from_millis(1_500));
        stop.store(true, Ordering::SeqCst);
        let written = handle.join().unwrap().unwrap();
        assert!(
            written.rotations_rename >= 2,
            "{}",
            written.rotations_rename
        );
        assert!(written.rotations_copytruncate >= 2);

        let mut seen = vec![Vec::new(); names.len()];
        for entry in fs::read_dir(&dir).unwrap() {
            let text = fs::read_to_string(entry.unwrap().path()).unwrap();
            let mut lines = text.lines().peekable();
            while let Some(line) = lines.next() {
                let (_, rest) = line.split_once(' ').unwrap();
                let (_, rest) = rest.split_once(' ').unwrap();
                let mut message = rest[2..].to_owned();
                if rest.starts_with('P') {
                    let next = lines.next().expect("the F piece follows");
                    message.push_str(&next[next.find(" F ").unwrap() + 3..]);
                }
                serde_json::from_str::<serde_json::Value>(&message).expect("a JSON message");
                let (file, seq) = find_marker(message.as_bytes()).unwrap();
                seen[file].push(seq);
            }
        }
        for (file, seqs) in seen.iter_mut().enumerate() {
            seqs.sort_unstable();
            let expected: Vec<u64> = (0..written.per_file[file]).collect();
            assert_eq!(*seqs, expected, "file {file}");
        }
        assert!(written.total() >= 3_000, "{}", written.total());
        fs::remove_dir_all(&dir).unwrap();
    }
}
