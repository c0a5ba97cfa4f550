//! `helix-load jobs enqueue`: N no-op jobs through the client (`helix_jobs::Jobs`), either one job
//! per call by one or more callers (each sends its next call when the last one is answered), or
//! in batches of `--batch` jobs per call. Each mode runs on a fresh backend; afterwards the queue
//! must hold exactly N available jobs.
//!
//! [`drive`] is also how `drain` and `latency` fill their queues.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use helix_jobs::{EnqueueOptions, Jobs, Noop, NoopPayload, Registry};
use serde_json::{json, Value};

use super::fixture::{with_fixture, Fixture, Opened};
use super::medians::Figures;
use super::usage::{self, CpuUse};
use super::{check_count, progress, quiet, thousands, BackendArgs};
use crate::report::percentiles;

/// The no-op payload every benchmark job carries.
pub const NOOP_PAYLOAD: &str = r#"{"sleep_ms":0}"#;

#[derive(Args, Debug, Clone)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Jobs enqueued by each mode.
    #[arg(short = 'n', long = "count", default_value_t = 100_000)]
    count: u64,
    #[command(flatten)]
    pub opts: EnqueueOpts,
    /// Times each mode is measured (medians are printed).
    #[arg(long, default_value_t = 1)]
    runs: u64,
}

/// Which enqueue modes run.
#[derive(Args, Debug, Clone)]
pub struct EnqueueOpts {
    /// Callers making single-job calls at once; a comma-separated list measures each.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub callers: Vec<usize>,
    /// Jobs per call in the batch mode (0: no batch mode).
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Callers making batch calls at once.
    #[arg(long, default_value_t = 1)]
    pub batch_callers: usize,
}

impl EnqueueOpts {
    pub fn modes(&self) -> Result<Vec<Mode>> {
        let mut modes = Vec::new();
        for &callers in &self.callers {
            check_count("--callers", callers as u64, 1..=1_000)?;
            modes.push(Mode { size: 1, callers });
        }
        if self.batch > 0 {
            check_count("--batch", self.batch as u64, 1..=10_000)?;
            check_count("--batch-callers", self.batch_callers as u64, 1..=1_000)?;
            modes.push(Mode {
                size: self.batch,
                callers: self.batch_callers,
            });
        }
        Ok(modes)
    }
}

/// `callers` concurrent callers, each enqueueing `size` jobs per call (1: the typed single-job
/// call `Jobs::enqueue::<Noop>`).
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    pub size: usize,
    pub callers: usize,
}

impl Mode {
    pub fn name(&self) -> String {
        let callers = match self.callers {
            1 => "1 caller".to_owned(),
            n => format!("{n} callers"),
        };
        match self.size {
            1 => format!("single, {callers}"),
            size => format!("batch {size}, {callers}"),
        }
    }

    /// A short key for figures: `single_x1`, `batch1000_x1`.
    pub fn key(&self) -> String {
        match self.size {
            1 => format!("single_x{}", self.callers),
            size => format!("batch{size}_x{}", self.callers),
        }
    }
}

/// What one mode did.
#[derive(Debug, Clone)]
pub struct Driven {
    pub count: u64,
    pub elapsed: Duration,
    /// Per call, µs.
    pub calls: Histogram<u64>,
    pub cpu: CpuUse,
}

impl Driven {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn line(&self, engine: super::Engine) -> String {
        format!(
            "{} jobs in {:.3} s = {} jobs/s; per call ms {}; {}",
            thousands(self.count as f64),
            self.elapsed.as_secs_f64(),
            thousands(self.rate()),
            percentiles(&self.calls),
            self.cpu.describe(engine)
        )
    }
}

/// Enqueue `count` no-op jobs in `mode`, printing progress under `label`.
pub async fn drive(jobs: &Jobs, mode: Mode, count: u64, label: &str) -> Result<Driven> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let _progress = progress::spawn(label.to_owned(), count, done.clone());
    let before = usage::snapshot(engine_of(jobs));
    let start = Instant::now();
    let tasks: Vec<_> = (0..mode.callers)
        .map(|_| {
            tokio::spawn(caller(
                jobs.clone(),
                mode.size,
                count,
                next.clone(),
                done.clone(),
            ))
        })
        .collect();
    let mut calls = super::histogram();
    for task in tasks {
        calls.add(task.await??).expect("histograms resize");
    }
    let elapsed = start.elapsed();
    let cpu = before.until(&usage::snapshot(engine_of(jobs)));
    Ok(Driven {
        count,
        elapsed,
        calls,
        cpu,
    })
}

fn engine_of(jobs: &Jobs) -> super::Engine {
    match jobs.backend().kind() {
        helix_jobs::BackendKind::Redis => super::Engine::Redis,
        helix_jobs::BackendKind::Postgres => super::Engine::Postgres,
        helix_jobs::BackendKind::Sqlite => super::Engine::Sqlite,
    }
}

/// One caller: claim the next `size` jobs of the `count`, enqueue them, repeat.
async fn caller(
    jobs: Jobs,
    size: usize,
    count: u64,
    next: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
) -> Result<Histogram<u64>> {
    let mut calls = super::histogram();
    let options = EnqueueOptions::default();
    loop {
        let first = next.fetch_add(size as u64, Ordering::Relaxed);
        if first >= count {
            return Ok(calls);
        }
        let n = (count - first).min(size as u64) as usize;
        let start = Instant::now();
        if size == 1 {
            jobs.enqueue::<Noop>(&NoopPayload { sleep_ms: 0 }, EnqueueOptions::default())
                .await
                .context("enqueue")?;
        } else {
            jobs.enqueue_json("noop", NOOP_PAYLOAD, &options, n)
                .await
                .context("enqueue")?;
        }
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        super::record(&mut calls, micros);
        done.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The queue holds exactly `count` available jobs and nothing else.
pub async fn check_available(opened: &Opened, count: u64) -> Result<()> {
    let stats = opened.queue_stats().await?;
    if stats.available != count || stats.running + stats.completed + stats.failed > 0 {
        bail!("after enqueuing {count} jobs the queue holds {stats:?}");
    }
    Ok(())
}

/// The client the benchmark enqueues with: the built-in kinds.
pub fn client(opened: &Opened) -> Jobs {
    Jobs::new(opened.backend.clone(), Arc::new(Registry::new()))
}

/// One mode on a fresh backend.
pub async fn measure(args: &BackendArgs, mode: Mode, count: u64, label: &str) -> Result<Driven> {
    with_fixture(args, |fixture: Fixture| async move {
        let opened = fixture.open().await?;
        let driven = drive(&client(&opened), mode, count, label).await;
        let checked = match &driven {
            Ok(_) => check_available(&opened, count).await,
            Err(_) => Ok(()),
        };
        opened.close().await;
        checked?;
        driven
    })
    .await
}

/// Every mode `runs` times; prints each run and returns the figures (jobs/s by mode key).
pub async fn measure_all(
    args: &BackendArgs,
    opts: &EnqueueOpts,
    count: u64,
    runs: u64,
) -> Result<Figures> {
    let mut figures = Figures::default();
    for run in 1..=runs {
        for mode in opts.modes()? {
            let label = format!("enqueue [{}, {}]", args.backend.as_str(), mode.name());
            let driven = quiet::guarded(
                args,
                &label,
                || measure(args, mode, count, &label),
                |d: &Driven| d.cpu.other(),
            )
            .await?;
            println!("{label} run {run}/{runs}: {}", driven.line(args.backend));
            figures.add(&format!("enqueue_{}_jobs_per_s", mode.key()), driven.rate());
            let p99 = driven.calls.value_at_quantile(0.99) as f64 / 1000.0;
            figures.add(&format!("enqueue_{}_call_p99_ms", mode.key()), p99);
            figures.add(
                &format!("enqueue_{}_other_cores", mode.key()),
                driven.cpu.other(),
            );
        }
    }
    Ok(figures)
}

pub async fn run(args: EnqueueArgs) -> Result<()> {
    let count = check_count("-n", args.count, 1..=100_000_000)?;
    let runs = check_count("--runs", args.runs, 1..=100)?;
    let figures = measure_all(&args.backend, &args.opts, count, runs).await?;
    figures.print(&format!(
        "helix-load jobs enqueue: {} no-op jobs per mode on {}, medians of {runs} run(s)",
        thousands(count as f64),
        args.backend.backend.as_str()
    ));
    let mut summary = json!({"command": "jobs enqueue", "backend": args.backend.backend.as_str(), "count": count, "runs": runs});
    if let Value::Object(fields) = &mut summary {
        fields.extend(figures.json());
    }
    println!("SUMMARY {summary}");
    Ok(())
}
