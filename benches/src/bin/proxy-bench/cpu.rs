//! CPU time of processes and threads, from /proc (10 ms resolution).

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::BenchError;

/// Linux reports utime/stime in USER_HZ ticks, 100 per second on every
/// architecture Rust targets.
const TICK: Duration = Duration::from_millis(10);

/// User plus system time of a whole process (all its threads).
pub(crate) fn of_process(pid: u32) -> Duration {
    stat_cpu(&format!("/proc/{pid}/stat"))
}

/// User plus system time of one thread of this process.
pub(crate) fn of_thread(tid: u32) -> Duration {
    stat_cpu(&format!("/proc/self/task/{tid}/stat"))
}

/// The kernel's id of the calling thread.
pub(crate) fn current_tid() -> Option<u32> {
    let link = fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Processes whose parent is `pid`.
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            fields_after_comm(&stat).nth(1).and_then(|p| p.parse().ok()) == Some(pid)
        })
        .collect()
}

fn stat_cpu(path: &str) -> Duration {
    let stat = fs::read_to_string(path).unwrap_or_default();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after comm.
    let ticks: u64 = fields_after_comm(&stat)
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    TICK * u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// The fields after `(comm)`, which may itself contain spaces and parens.
fn fields_after_comm(stat: &str) -> impl Iterator<Item = &str> {
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    rest.split_whitespace()
}

/// Pins thread `tid` to CPU `cpu` with taskset(1).
pub(crate) fn pin_thread(tid: u32, cpu: u32) -> Result<(), BenchError> {
    let status = Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &tid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset failed for thread {tid}: {status}").into())
    }
}
