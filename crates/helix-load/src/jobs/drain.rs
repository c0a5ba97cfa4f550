//! `helix-load jobs drain`: pre-fill N no-op jobs (batches of 1,000 by 4 callers, untimed), then
//! time one `helix_jobs::Worker` on one core ([`onecore`]) from its start until the backend has
//! stored all N outcomes. Afterwards the queue must show N completed and nothing else.
//!
//! `--concurrency` and `--fetch-max` take comma-separated lists; every pair is measured, so one
//! command finds the settings that drain fastest.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use helix_jobs::{QueueConfig, Registry, WorkerOptions};
use serde_json::{json, Value};

use super::enqueue::{self, Mode};
use super::fixture::{with_fixture, Fixture, QUEUE};
use super::medians::Figures;
use super::usage::{self, CpuUse};
use super::{check_count, thousands, BackendArgs};
use super::{onecore, quiet};

#[derive(Args, Debug, Clone)]
pub struct DrainArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Jobs pre-filled, then drained.
    #[arg(short = 'n', long = "count", default_value_t = 100_000)]
    count: u64,
    #[command(flatten)]
    pub opts: DrainOpts,
    /// Times each setting is measured (medians are printed).
    #[arg(long, default_value_t = 1)]
    runs: u64,
}

/// The worker's settings.
#[derive(Args, Debug, Clone)]
pub struct DrainOpts {
    /// Jobs the worker runs at once (its queue's concurrency); a comma-separated list measures
    /// each.
    #[arg(long, value_delimiter = ',', default_value = "2000")]
    pub concurrency: Vec<u32>,
    /// Most jobs one fetch takes (`WorkerOptions::fetch_max`); a list measures each.
    #[arg(long, value_delimiter = ',', default_value = "200")]
    pub fetch_max: Vec<u32>,
}

impl DrainOpts {
    /// Every (concurrency, fetch_max) pair.
    fn pairs(&self) -> Result<Vec<(u32, u32)>> {
        let mut pairs = Vec::new();
        for &c in &self.concurrency {
            check_count("--concurrency", u64::from(c), 1..=10_000)?;
            for &f in &self.fetch_max {
                check_count("--fetch-max", u64::from(f), 1..=10_000)?;
                pairs.push((c, f));
            }
        }
        Ok(pairs)
    }
}

/// One drain.
#[derive(Debug, Clone)]
pub struct Drained {
    pub count: u64,
    pub elapsed: Duration,
    /// Cores the worker's thread used while draining.
    pub thread_cores: f64,
    pub cpu: CpuUse,
}

impl Drained {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Fill and drain one fresh backend.
pub async fn measure(
    args: &BackendArgs,
    count: u64,
    concurrency: u32,
    fetch_max: u32,
) -> Result<Drained> {
    let engine = args.backend;
    with_fixture(args, |fixture: Fixture| async move {
        let opened = fixture.open().await?;
        let fill = Mode {
            size: 1_000,
            callers: 4,
        };
        let label = format!("pre-filling {} jobs", thousands(count as f64));
        enqueue::drive(&enqueue::client(&opened), fill, count, &label).await?;
        enqueue::check_available(&opened, count).await?;
        let plan = onecore::Plan {
            registry: Registry::new(),
            queue: QueueConfig {
                concurrency,
                ..QueueConfig::new(QUEUE)
            },
            options: WorkerOptions {
                fetch_max,
                ..WorkerOptions::default()
            },
            target: count,
            limit: Duration::from_secs(600),
            label: format!("draining (concurrency {concurrency}, fetch {fetch_max})"),
        };
        let shared = onecore::shared_for(&fixture, &opened.backend);
        let started = onecore::start(fixture.clone(), plan, shared).await?;
        let before = usage::snapshot(engine);
        let ran = started.finish().await;
        let cpu = before.until(&usage::snapshot(engine));
        let stats = opened.queue_stats().await;
        opened.close().await;
        let ran = ran?;
        let stats = stats?;
        if stats.completed != count || stats.available + stats.running + stats.failed > 0 {
            bail!("after draining {count} jobs the queue holds {stats:?}");
        }
        Ok(Drained {
            count,
            elapsed: ran.elapsed,
            thread_cores: ran.thread_cpu.as_secs_f64() / ran.elapsed.as_secs_f64().max(1e-9),
            cpu,
        })
    })
    .await
}

/// Every setting `runs` times; prints each run and returns the figures.
pub async fn measure_all(
    args: &BackendArgs,
    opts: &DrainOpts,
    count: u64,
    runs: u64,
) -> Result<Figures> {
    let mut figures = Figures::default();
    let pairs = opts.pairs()?;
    for run in 1..=runs {
        for &(concurrency, fetch_max) in &pairs {
            let d = quiet::guarded(
                args,
                "drain",
                || measure(args, count, concurrency, fetch_max),
                |d: &Drained| d.cpu.other(),
            )
            .await?;
            println!(
                "drain [{}, concurrency {concurrency}, fetch max {fetch_max}] run {run}/{runs}: {} jobs \
                 in {:.3} s = {} jobs/s; worker thread {:.2} core; {}",
                args.backend.as_str(),
                thousands(d.count as f64),
                d.elapsed.as_secs_f64(),
                thousands(d.rate()),
                d.thread_cores,
                d.cpu.describe(args.backend)
            );
            let key = format!("drain_c{concurrency}_f{fetch_max}");
            figures.add(&format!("{key}_jobs_per_s"), d.rate());
            figures.add(&format!("{key}_worker_thread_cores"), d.thread_cores);
            figures.add(&format!("{key}_server_cores"), d.cpu.server);
            figures.add(&format!("{key}_other_cores"), d.cpu.other());
        }
    }
    Ok(figures)
}

pub async fn run(args: DrainArgs) -> Result<()> {
    let count = check_count("-n", args.count, 1..=100_000_000)?;
    let runs = check_count("--runs", args.runs, 1..=100)?;
    let figures = measure_all(&args.backend, &args.opts, count, runs).await?;
    figures.print(&format!(
        "helix-load jobs drain: {} no-op jobs, one worker on one core, {}; medians of {runs} run(s)",
        thousands(count as f64),
        args.backend.backend.as_str()
    ));
    let mut summary = json!({"command": "jobs drain", "backend": args.backend.backend.as_str(), "count": count, "runs": runs});
    if let Value::Object(fields) = &mut summary {
        fields.extend(figures.json());
    }
    println!("SUMMARY {summary}");
    Ok(())
}
