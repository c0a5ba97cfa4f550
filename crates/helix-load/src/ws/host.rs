//! The machine side of many-connection runs: this process's open-file limit, and the resident
//! memory (and open-file limit) of the server process, read from `/proc` (no `unsafe`).

use anyhow::{bail, Context, Result};

/// Descriptors kept free beyond the connections: stdio, the runtime, setup HTTP connections.
const SPARE_FILES: u64 = 64;

/// Raise this process's open-file soft limit to its hard limit; fail clearly if even that is too
/// low for `connections` sockets.
pub fn raise_open_files(connections: usize) -> Result<u64> {
    let needed = connections as u64 + SPARE_FILES;
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .context("raising the open-file limit (RLIMIT_NOFILE)")?;
    if limit < needed {
        bail!(
            "the open-file limit is {limit} even at its hard limit, but {connections} connections \
             need about {needed}: raise the hard limit (ulimit -Hn, limits.conf) or open fewer"
        );
    }
    Ok(limit)
}

/// Resident set size of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path}: is --server-pid {pid} a running process?"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

/// Warn when the server's own open-file soft limit cannot hold `connections` sockets.
pub fn warn_if_server_cannot_hold(pid: u32, connections: usize) {
    let path = format!("/proc/{pid}/limits");
    let Ok(limits) = std::fs::read_to_string(&path) else {
        return;
    };
    if let Some(soft) = parse_open_files_soft(&limits) {
        if soft < connections as u64 + SPARE_FILES {
            eprintln!(
                "warning: the server (pid {pid}) may open only {soft} files: {connections} \
                 connections will fail part-way (raise its ulimit -n)"
            );
        }
    }
}

/// `VmRSS:   123456 kB` → 123456.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value = fields.next()?.parse().ok()?;
    (fields.next() == Some("kB")).then_some(value)
}

/// The soft limit of `Max open files  1024  524288  files`; `None` when unlimited or unreadable.
fn parse_open_files_soft(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_kib() {
        let status = "Name:\thelix\nVmPeak:\t  900000 kB\nVmRSS:\t   123456 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss(status), Some(123_456));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\nVmPeak:\t 0 kB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn own_rss_is_readable() {
        assert!(rss_kib(std::process::id()).is_ok_and(|kib| kib > 0));
    }

    #[test]
    fn reads_the_soft_open_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             95000                95000                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files_soft(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_soft(unlimited), None);
    }
}
