//! `helix-load jobs latency`: enqueue → start at a fixed rate, open loop.
//!
//! A worker on one core ([`onecore`]) runs the probe kind [`Probe`]; the client enqueues one
//! probe per tick of a fixed schedule (`--rate` per second for `--warmup` + `--seconds`), each
//! from a task of its own, so a slow enqueue never delays the next one. A probe's payload carries
//! two times on this process's monotonic clock: when it was due on the schedule, and when its
//! enqueue call began. When its handler starts it records `now − enqueue call` (the figure the
//! target is about) and `now − due` (which also counts any lateness of the client). Probes due in
//! the warm-up are run but not recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use helix_jobs::{
    EnqueueOptions, JobContext, JobFailure, JobKind, Jobs, QueueConfig, Registry, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::fixture::{with_fixture, Fixture, QUEUE};
use super::medians::Figures;
use super::usage::{self, CpuUse};
use super::{check_count, thousands, BackendArgs};
use super::{onecore, quiet};
use crate::report::percentiles;

/// A send this far behind its tick counts as late.
const LATE: Duration = Duration::from_millis(1);

#[derive(Args, Debug, Clone)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub opts: LatencyOpts,
    /// Times the run is repeated (medians are printed).
    #[arg(long, default_value_t = 1)]
    runs: u64,
}

#[derive(Args, Debug, Clone)]
pub struct LatencyOpts {
    /// Enqueues per second, on a fixed schedule.
    #[arg(long, default_value_t = 2_000.0)]
    pub rate: f64,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seconds of probes before measuring; they run but are not recorded.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// The worker's concurrency.
    #[arg(long, default_value_t = 64)]
    pub latency_concurrency: u32,
}

/// The probe's payload: times in µs on the shared origin of [`Probe`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbePayload {
    due_us: u64,
    sent_us: u64,
    measured: bool,
}

/// What the probes recorded.
#[derive(Debug)]
struct Seen {
    from_call: Histogram<u64>,
    from_due: Histogram<u64>,
    measured: u64,
    warm: u64,
}

/// Records its own start against the times in its payload.
#[derive(Clone)]
pub struct Probe {
    origin: Instant,
    seen: Arc<Mutex<Seen>>,
}

impl JobKind for Probe {
    const NAME: &'static str = "bench_probe";
    type Payload = ProbePayload;

    async fn run(&self, payload: ProbePayload, _ctx: JobContext) -> Result<(), JobFailure> {
        let now = micros(self.origin.elapsed());
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if payload.measured {
            seen.measured += 1;
            let from_call = now.saturating_sub(payload.sent_us);
            let from_due = now.saturating_sub(payload.due_us);
            super::record(&mut seen.from_call, from_call);
            super::record(&mut seen.from_due, from_due);
        } else {
            seen.warm += 1;
        }
        Ok(())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What the client's schedule did.
#[derive(Debug, Default)]
struct Sent {
    scheduled: u64,
    measured: u64,
    late: u64,
    errors: u64,
    first_error: Option<String>,
}

/// One latency run.
#[derive(Debug)]
pub struct Measured {
    pub from_call: Histogram<u64>,
    pub from_due: Histogram<u64>,
    pub measured: u64,
    pub scheduled: u64,
    pub late: u64,
    pub achieved_rate: f64,
    pub cpu: CpuUse,
}

/// One open-loop run on a fresh backend.
pub async fn measure(args: &BackendArgs, opts: &LatencyOpts) -> Result<Measured> {
    let engine = args.backend;
    let opts = opts.clone();
    with_fixture(args, |fixture: Fixture| async move {
        let probe = Probe {
            origin: Instant::now(),
            seen: Arc::new(Mutex::new(Seen {
                from_call: super::histogram(),
                from_due: super::histogram(),
                measured: 0,
                warm: 0,
            })),
        };
        let mut registry = Registry::new();
        registry.register(probe.clone());
        let total = ((opts.warmup + opts.seconds) * opts.rate).round() as u64;
        let plan = onecore::Plan {
            registry: registry.clone(),
            queue: QueueConfig {
                concurrency: opts.latency_concurrency,
                ..QueueConfig::new(QUEUE)
            },
            options: WorkerOptions::default(),
            target: total,
            limit: Duration::from_secs_f64(opts.warmup + opts.seconds + 60.0),
            label: "probes started and completed".into(),
        };
        let opened = fixture.open().await?;
        let jobs = Jobs::new(opened.backend.clone(), Arc::new(registry));
        let shared = onecore::shared_for(&fixture, &opened.backend);
        let started = onecore::start(fixture.clone(), plan, shared).await?;
        let before = usage::snapshot(engine);
        let start = Instant::now();
        let sent = schedule(&jobs, &probe, &opts, total).await;
        let send_secs = start.elapsed().as_secs_f64();
        let cpu = before.until(&usage::snapshot(engine));
        let ran = started.finish().await;
        opened.close().await;
        if let Some(e) = &sent.first_error {
            bail!(
                "{} of {} enqueues failed, first: {e}",
                sent.errors,
                sent.scheduled
            );
        }
        ran.context("the latency worker")?;
        let seen = probe.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.measured != sent.measured {
            bail!("{} probes measured, {} sent", seen.measured, sent.measured);
        }
        Ok(Measured {
            from_call: seen.from_call.clone(),
            from_due: seen.from_due.clone(),
            measured: seen.measured,
            scheduled: sent.scheduled,
            late: sent.late,
            achieved_rate: sent.scheduled as f64 / send_secs.max(1e-9),
            cpu,
        })
    })
    .await
}

/// Enqueue `total` probes on the fixed schedule; returns once every enqueue call has returned.
async fn schedule(jobs: &Jobs, probe: &Probe, opts: &LatencyOpts, total: u64) -> Sent {
    let warm = (opts.warmup * opts.rate).round() as u64;
    let start = tokio::time::Instant::now();
    let mut sent = Sent::default();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / opts.rate);
        tokio::time::sleep_until(due).await;
        if tokio::time::Instant::now().duration_since(due) > LATE {
            sent.late += 1;
        }
        let payload = ProbePayload {
            due_us: micros(due.into_std().duration_since(probe.origin)),
            sent_us: 0,
            measured: i >= warm,
        };
        sent.scheduled += 1;
        sent.measured += u64::from(payload.measured);
        let (jobs, origin) = (jobs.clone(), probe.origin);
        calls.spawn(async move {
            let payload = ProbePayload {
                sent_us: micros(origin.elapsed()),
                ..payload
            };
            jobs.enqueue::<Probe>(&payload, EnqueueOptions::default())
                .await
        });
        while let Some(done) = calls.try_join_next() {
            note(&mut sent, done);
        }
    }
    while let Some(done) = calls.join_next().await {
        note(&mut sent, done);
    }
    sent
}

fn note<T, E: std::fmt::Display>(
    sent: &mut Sent,
    done: Result<Result<T, E>, tokio::task::JoinError>,
) {
    let error = match done {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    sent.errors += 1;
    sent.first_error.get_or_insert(error);
}

impl LatencyOpts {
    fn check(&self) -> Result<()> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0) {
            bail!("--rate must be a positive number of enqueues/s, at most 1000000");
        }
        crate::seconds("--seconds", self.seconds, 0.1, 3600.0)?;
        crate::seconds("--warmup", self.warmup, 0.0, 600.0)?;
        check_count(
            "--latency-concurrency",
            u64::from(self.latency_concurrency),
            1..=10_000,
        )?;
        Ok(())
    }
}

/// `runs` runs; prints each and returns the figures.
pub async fn measure_all(args: &BackendArgs, opts: &LatencyOpts, runs: u64) -> Result<Figures> {
    opts.check()?;
    let mut figures = Figures::default();
    for run in 1..=runs {
        eprintln!(
            "  … latency [{}]: {} probes/s for {} s (+{} s warm-up)",
            args.backend.as_str(),
            opts.rate,
            opts.seconds,
            opts.warmup
        );
        let m = quiet::guarded(
            args,
            "latency",
            || measure(args, opts),
            |m: &Measured| m.cpu.other(),
        )
        .await?;
        print_run(args, opts, run, runs, &m);
        let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        figures.add("latency_p50_ms", q(&m.from_call, 0.5));
        figures.add("latency_p90_ms", q(&m.from_call, 0.9));
        figures.add("latency_p99_ms", q(&m.from_call, 0.99));
        figures.add("latency_max_ms", m.from_call.max() as f64 / 1000.0);
        figures.add("latency_from_due_p99_ms", q(&m.from_due, 0.99));
        figures.add("latency_sent_per_s", m.achieved_rate);
        figures.add("latency_other_cores", m.cpu.other());
    }
    Ok(figures)
}

fn print_run(args: &BackendArgs, opts: &LatencyOpts, run: u64, runs: u64, m: &Measured) {
    println!(
        "latency [{}, {}/s open loop, worker concurrency {}] run {run}/{runs}: {} probes measured \
         ({} scheduled incl. warm-up, sent at {:.1}/s, {} sent >1 ms late)",
        args.backend.as_str(),
        opts.rate,
        opts.latency_concurrency,
        thousands(m.measured as f64),
        thousands(m.scheduled as f64),
        m.achieved_rate,
        m.late
    );
    println!("  enqueue call → start ms   {}", percentiles(&m.from_call));
    println!("  scheduled → start ms      {}", percentiles(&m.from_due));
    println!(
        "  cpu                       {}",
        m.cpu.describe(args.backend)
    );
}

pub async fn run(args: LatencyArgs) -> Result<()> {
    let runs = check_count("--runs", args.runs, 1..=100)?;
    let figures = measure_all(&args.backend, &args.opts, runs).await?;
    figures.print(&format!(
        "helix-load jobs latency: {}/s for {} s on {}; medians of {runs} run(s)",
        args.opts.rate,
        args.opts.seconds,
        args.backend.backend.as_str()
    ));
    let mut summary = json!({"command": "jobs latency", "backend": args.backend.backend.as_str(), "rate": args.opts.rate, "seconds": args.opts.seconds, "runs": runs});
    if let Value::Object(fields) = &mut summary {
        fields.extend(figures.json());
    }
    println!("SUMMARY {summary}");
    Ok(())
}
