//! The kill test's worker process: `helix-load jobs worker-child …` (hidden) runs one
//! `helix_jobs::Worker` whose kind [`Mark`] sleeps and logs. Each attempt appends `S <id> <unix
//! µs>` when its handler starts and `E <id> <unix µs>` when it returns, each line with one
//! `write` to a file opened for appending, so a line is in the kernel's hands (and survives a
//! SIGKILL) as soon as the handler moves on. The process prints `READY` once its worker runs
//! and stops gracefully when its standard input closes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use helix_jobs::{JobContext, JobFailure, JobKind, QueueConfig, Registry, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::fixture::{Fixture, QUEUE};
use super::Engine;

/// The line a child prints once its worker runs.
pub const READY: &str = "READY";

#[derive(Args, Debug, Clone)]
pub struct ChildArgs {
    #[arg(long, value_enum)]
    pub engine: Engine,
    #[arg(long)]
    pub url: String,
    /// The Redis key prefix or PostgreSQL schema of the test.
    #[arg(long)]
    pub namespace: Option<String>,
    #[arg(long, default_value_t = 4)]
    pub pool: u32,
    #[arg(long)]
    pub concurrency: u32,
    /// Lease of each fetched job, in seconds.
    #[arg(long)]
    pub lease: u64,
    #[arg(long)]
    pub worker_id: String,
    /// The file each attempt's start and end are appended to.
    #[arg(long)]
    pub log: PathBuf,
}

impl ChildArgs {
    /// The command line of a child with these arguments (after the program name).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "jobs".into(),
            "worker-child".into(),
            "--engine".into(),
            self.engine.as_str().into(),
            "--url".into(),
            self.url.clone(),
            "--pool".into(),
            self.pool.to_string(),
            "--concurrency".into(),
            self.concurrency.to_string(),
            "--lease".into(),
            self.lease.to_string(),
            "--worker-id".into(),
            self.worker_id.clone(),
            "--log".into(),
            self.log.display().to_string(),
        ];
        if let Some(ns) = &self.namespace {
            args.extend(["--namespace".into(), ns.clone()]);
        }
        args
    }
}

/// Sleeps `sleep_ms`, logging its start and end.
#[derive(Clone, Default)]
pub struct Mark {
    /// `None` in the parent, which only enqueues.
    log: Option<Arc<Mutex<File>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkPayload {
    pub sleep_ms: u64,
}

impl JobKind for Mark {
    const NAME: &'static str = "bench_mark";
    type Payload = MarkPayload;

    async fn run(&self, payload: MarkPayload, ctx: JobContext) -> Result<(), JobFailure> {
        self.write('S', &ctx)?;
        tokio::time::sleep(Duration::from_millis(payload.sleep_ms)).await;
        self.write('E', &ctx)
    }
}

impl Mark {
    fn write(&self, what: char, ctx: &JobContext) -> Result<(), JobFailure> {
        let Some(log) = &self.log else {
            return Err(JobFailure::permanent(
                "bench_mark runs only in a worker child",
            ));
        };
        let line = format!("{what} {} {}\n", ctx.id, unix_micros(SystemTime::now()));
        let mut file = log.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(line.as_bytes()).map_err(JobFailure::retry)
    }
}

pub fn unix_micros(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

pub fn main(args: ChildArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(work(args))
}

async fn work(args: ChildArgs) -> Result<()> {
    let fixture = Fixture::attach(
        args.engine,
        args.url.clone(),
        args.namespace.clone(),
        args.pool,
    );
    let opened = fixture.open().await?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .with_context(|| format!("opening {}", args.log.display()))?;
    let mut registry = Registry::new();
    registry.register(Mark {
        log: Some(Arc::new(Mutex::new(log))),
    });
    let queue = QueueConfig {
        concurrency: args.concurrency,
        lease: Duration::from_secs(args.lease),
        ..QueueConfig::new(QUEUE)
    };
    let options = WorkerOptions {
        worker_id: args.worker_id.clone(),
        grace: Duration::from_secs(10),
        ..WorkerOptions::default()
    };
    let worker = Worker::new(
        opened.backend.clone(),
        Arc::new(registry),
        vec![queue],
        options,
    );
    let stop = CancellationToken::new();
    stop_at_eof(stop.clone());
    let running = tokio::spawn(worker.run(stop));
    println!("{READY}");
    std::io::stdout().flush()?;
    running.await?;
    opened.close().await;
    Ok(())
}

/// Cancel `stop` once standard input closes (the parent dropped its end). A plain thread: the
/// read blocks, and it must not hold the runtime open at exit.
fn stop_at_eof(stop: CancellationToken) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        stop.cancel();
    });
}
