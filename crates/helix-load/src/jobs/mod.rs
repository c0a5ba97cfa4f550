//! `helix-load jobs …`: the helix-jobs benchmark, on Redis, PostgreSQL or SQLite.
//!
//! - `drain` ([`drain`]): pre-fill N no-op jobs, then time one `helix_jobs::Worker` on a tokio
//!   `current_thread` runtime of its own thread (one core) until all are completed;
//! - `enqueue` ([`enqueue`]): single-job enqueue calls by one or more callers, and batches;
//! - `latency` ([`latency`]): enqueue → handler start at a fixed open-loop rate, measured by a
//!   probe kind that compares its start with the time carried in its payload;
//! - `kill` ([`kill`]): two worker processes (this binary's hidden `worker-child` mode, [`child`])
//!   run jobs of 100 ms; one is SIGKILLed mid-run; every job must end done, only the dead
//!   worker's in-flight jobs may run twice, and they must be done within lease + 5 s;
//! - `all` ([`all`]): each of the above `--runs` times (the kill test once), then the medians.
//!
//! Every measurement gets a private backend ([`fixture`]): a Redis key prefix, a PostgreSQL
//! schema or a SQLite file in a temporary directory, all named `helix_bench_<uuid>`, removed
//! afterwards. Each command prints readable lines and one `SUMMARY {json}` line.

mod all;
mod child;
mod drain;
mod enqueue;
mod fixture;
mod kill;
mod latency;
mod medians;
mod onecore;
mod progress;
mod quiet;
mod usage;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};

/// Options of `helix-load jobs`.
#[derive(Args, Debug)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(Subcommand, Debug)]
enum JobsCommand {
    /// Pre-fill N no-op jobs, then time one worker on one core draining them.
    Drain(drain::DrainArgs),
    /// Enqueue N no-op jobs one call per job (1 or more callers), then in batches.
    Enqueue(enqueue::EnqueueArgs),
    /// Enqueue → start latency at a fixed open-loop rate.
    Latency(latency::LatencyArgs),
    /// SIGKILL one of two worker processes mid-run; check nothing is lost or run twice wrongly.
    Kill(kill::KillArgs),
    /// Everything above `--runs` times (the kill test once); prints the medians.
    All(all::AllArgs),
    /// A worker process of the kill test (started by `kill`, not by hand).
    #[command(hide = true)]
    WorkerChild(child::ChildArgs),
}

/// Which engine holds the jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    Redis,
    Postgres,
    Sqlite,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Redis => "redis",
            Engine::Postgres => "postgres",
            Engine::Sqlite => "sqlite",
        }
    }
}

/// Where every `jobs` command puts its jobs.
#[derive(Args, Debug, Clone)]
pub struct BackendArgs {
    /// The engine benchmarked.
    #[arg(long, value_enum, default_value_t = Engine::Redis)]
    backend: Engine,
    /// Redis for `--backend redis` (keys under a private `helix_bench_<uuid>:` prefix).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// PostgreSQL for `--backend postgres` (tables in a private `helix_bench_<uuid>` schema).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    database_url: String,
    /// Connections in each PostgreSQL or SQLite store pool this process opens.
    #[arg(long, default_value_t = 16)]
    pool: u32,
    /// Client runtime threads (enqueuers, checks); the worker of `drain` and `latency` has a
    /// thread of its own on top.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// On a shared machine: before each measurement wait (up to 30 min) until other processes
    /// use less than this many cores, and repeat (up to 5 times) a measurement during which they
    /// used more. "Other" is the machine's busy time less this process's and the server's.
    #[arg(long)]
    quiet: Option<f64>,
}

impl BackendArgs {
    fn check(&self) -> Result<()> {
        if !(1..=1_000).contains(&self.pool) {
            bail!("--pool must be 1 to 1000");
        }
        if !(1..=256).contains(&self.threads) {
            bail!("--threads must be 1 to 256");
        }
        if self.quiet.is_some_and(|q| !(q.is_finite() && q > 0.0)) {
            bail!("--quiet must be a positive number of cores");
        }
        Ok(())
    }

    fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        self.check()?;
        crate::runtime(Some(self.threads))
    }
}

/// Run a `jobs` subcommand on the runtime it needs.
pub fn main(args: JobsArgs) -> Result<()> {
    match args.command {
        JobsCommand::Drain(a) => a.backend.runtime()?.block_on(drain::run(a)),
        JobsCommand::Enqueue(a) => a.backend.runtime()?.block_on(enqueue::run(a)),
        JobsCommand::Latency(a) => a.backend.runtime()?.block_on(latency::run(a)),
        JobsCommand::Kill(a) => a.backend.runtime()?.block_on(kill::run(a)),
        JobsCommand::All(a) => a.backend.runtime()?.block_on(all::run(a)),
        JobsCommand::WorkerChild(a) => child::main(a),
    }
}

/// A count option within `range`.
fn check_count(flag: &str, value: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64> {
    if !range.contains(&value) {
        bail!("{flag} must be {} to {}", range.start(), range.end());
    }
    Ok(value)
}

/// An empty µs histogram, 3 significant figures, growing as values need.
pub fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new(3).expect("3 significant figures is a valid precision")
}

/// Record µs (at least 1), growing the histogram; clamp only past its hours-long ceiling.
pub fn record(histogram: &mut hdrhistogram::Histogram<u64>, micros: u64) {
    let micros = micros.max(1);
    if histogram.record(micros).is_err() {
        histogram.saturating_record(micros);
    }
}

/// `12,345` for people.
pub fn thousands(value: f64) -> String {
    let whole = value.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jobs_command_line_is_well_formed() {
        use clap::Args as _;
        JobsArgs::augment_args(clap::Command::new("jobs")).debug_assert();
    }

    #[test]
    fn histograms_grow_to_fit() {
        let mut h = histogram();
        record(&mut h, 12_345);
        record(&mut h, 0);
        assert!(h.max() >= 12_340 && h.min() == 1, "{} {}", h.min(), h.max());
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
