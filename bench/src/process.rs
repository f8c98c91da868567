//! CPU time and memory of a process, read from `/proc` (Linux).

use std::fs;

/// CPU seconds (user + system) a process has used so far, all its threads included.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// CPU seconds (user + system) one thread of a process has used so far.
pub fn thread_cpu_seconds(pid: u32, tid: u32) -> anyhow::Result<f64> {
    stat_cpu_seconds(&format!("/proc/{pid}/task/{tid}/stat"))
}

fn stat_cpu_seconds(path: &str) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(path)?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unexpected {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// Peak resident set size so far (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/{pid}/status"))?
        .parse::<f64>()?;
    Ok(kib / 1024.0)
}

/// CPU seconds this process has used so far (all threads, librdkafka's included).
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_memory() {
        // Burn CPU until the kernel's coarse clock (10 ms ticks) has counted some: on a
        // loaded machine 50 ms of wall time may get no tick at all.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while own_cpu_seconds() == 0.0 && start.elapsed().as_secs() < 20 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(
            own_cpu_seconds() > 0.0,
            "no CPU time read from /proc after 20 s"
        );
        assert!(peak_rss_mib(std::process::id()).unwrap() > 1.0);
    }
}
