//! This process's CPU time (user + system, all threads), read from `/proc/self/stat`.
//!
//! Parsing `/proc` keeps the crate free of `unsafe` (the workspace forbids it; `getrusage` and
//! `sysconf` would need it). The price is resolution: the kernel reports whole clock ticks.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};

/// Ticks per second of the `/proc/<pid>/stat` time fields. This is USER_HZ, part of the kernel's
/// user-space ABI and 100 on the architectures we run (x86-64, aarch64), independent of the
/// kernel's internal HZ.
pub const TICKS_PER_SECOND: u64 = 100;

/// Resolution of [`process_cpu_time`]: one tick.
pub const RESOLUTION: Duration = Duration::from_millis(1000 / TICKS_PER_SECOND);

/// User plus system CPU time consumed so far by every thread of this process.
pub fn process_cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let ticks = parse_stat(&stat).ok_or_else(|| anyhow!("unexpected /proc/self/stat: {stat}"))?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// utime + stime (fields 14 and 15) in ticks. The command name (field 2) is in parentheses and may
/// itself contain spaces or parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11); // field 3 (state) is index 0
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_past_a_name_with_spaces() {
        let stat = "4242 (my (odd) cmd) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 17 0 0 20 0 1 0";
        assert_eq!(parse_stat(stat), Some(267));
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(process_cpu_time().is_ok());
    }
}
