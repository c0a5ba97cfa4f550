//! Where the CPU went during a measured window, read from `/proc` (the workspace forbids
//! `unsafe`, so no `getrusage`): the whole machine, this process, one thread, and the database
//! server's processes (`redis-server`, or every `postgres` process). Resolution: one clock tick
//! (10 ms), so windows shorter than a second give rough figures.

use std::time::{Duration, Instant};

use super::Engine;
use crate::cpu::TICKS_PER_SECOND;

/// CPU counters at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    /// Busy ticks of all CPUs together (everything but idle and iowait).
    machine: u64,
    own: u64,
    server: u64,
}

/// Cores used on average over a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub machine: f64,
    /// This process, every thread.
    pub own: f64,
    /// The database server's processes (0 for SQLite, which runs inside this process).
    pub server: f64,
}

impl CpuUse {
    /// `machine 1.85 of 2 cores, redis-server 0.90, helix-load 0.95, other processes 0.00`.
    pub fn describe(&self, engine: Engine) -> String {
        let server = match engine {
            Engine::Redis => format!(", redis-server {:.2}", self.server),
            Engine::Postgres => format!(", postgres {:.2}", self.server),
            Engine::Sqlite => String::new(),
        };
        format!(
            "machine {:.2} of {} cores{server}, helix-load {:.2}, other processes {:.2}",
            self.machine,
            cores(),
            self.own,
            self.other()
        )
    }

    /// What neither this process nor the server used: anything else running on the machine
    /// (a figure taken while this is high was measured on a busy machine).
    pub fn other(&self) -> f64 {
        (self.machine - self.own - self.server).max(0.0)
    }
}

/// The processes that serve `engine`, by command name.
fn server_names(engine: Engine) -> &'static [&'static str] {
    match engine {
        Engine::Redis => &["redis-server"],
        Engine::Postgres => &["postgres"],
        Engine::Sqlite => &[],
    }
}

pub fn snapshot(engine: Engine) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        machine: machine_busy().unwrap_or(0),
        own: file_ticks("/proc/self/stat").unwrap_or(0),
        server: process_ticks(server_names(engine)),
    }
}

impl Snapshot {
    /// Average cores used from `self` to `later`.
    pub fn until(&self, later: &Snapshot) -> CpuUse {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_SECOND as f64 / secs;
        CpuUse {
            machine: cores(self.machine, later.machine),
            own: cores(self.own, later.own),
            server: cores(self.server, later.server),
        }
    }
}

/// CPU time of the calling thread so far.
pub fn thread_cpu() -> Duration {
    let ticks = file_ticks("/proc/thread-self/stat").unwrap_or(0);
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn file_ticks(path: &str) -> Option<u64> {
    stat_ticks(&std::fs::read_to_string(path).ok()?)
}

/// utime + stime (fields 14 and 15) of a `stat` file; fields are counted from the last `)`,
/// since the command name may contain spaces.
fn stat_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The command name (field 2) of a `stat` file.
fn stat_name(stat: &str) -> Option<&str> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    stat.get(open + 1..close)
}

/// Summed CPU ticks of every process whose command name is one of `names`.
fn process_ticks(names: &[&str]) -> u64 {
    if names.is_empty() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if stat_name(&stat).is_some_and(|n| names.contains(&n)) {
            total += stat_ticks(&stat).unwrap_or(0);
        }
    }
    total
}

/// Busy ticks of all CPUs from the first line of `/proc/stat`.
fn machine_busy() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine(stat.lines().next()?)
}

/// `cpu user nice system idle iowait irq softirq steal …`: all but idle and iowait.
fn parse_machine(line: &str) -> Option<u64> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let idle = values.get(3)? + values.get(4)?;
    Some(values.iter().sum::<u64>() - idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_process_and_machine_lines() {
        let stat = "77 (redis-server) S 1 77 77 0 -1 4194304 100 0 0 0 250 17 0 0 20 0 1 0";
        assert_eq!(stat_ticks(stat), Some(267));
        assert_eq!(stat_name(stat), Some("redis-server"));
        let line = "cpu  100 5 50 1000 20 1 2 3 0 0";
        assert_eq!(parse_machine(line), Some(161));
        assert_eq!(parse_machine("intr 1 2"), None);
    }

    #[test]
    fn own_thread_and_process_are_readable() {
        assert!(file_ticks("/proc/thread-self/stat").is_some());
        let before = snapshot(Engine::Redis);
        let after = snapshot(Engine::Redis);
        assert!(before.until(&after).own >= 0.0);
    }
}
