//! `helix-load jobs all`: drain, enqueue and latency `--runs` times each (every measurement on a
//! fresh backend), then the kill test once; prints every run, the medians against the targets,
//! and one `SUMMARY` line. The exit status is non-zero when the kill test fails.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};

use super::drain::{self, DrainOpts};
use super::enqueue::{self, EnqueueOpts};
use super::kill::{self, KillOpts};
use super::latency::{self, LatencyOpts};
use super::medians::Figures;
use super::{check_count, thousands, BackendArgs};

#[derive(Args, Debug, Clone)]
pub struct AllArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Jobs pre-filled and drained, and enqueued by each enqueue mode.
    #[arg(short = 'n', long = "count", default_value_t = 100_000)]
    count: u64,
    /// Runs of each measurement (medians are printed); the kill test runs once.
    #[arg(long, default_value_t = 3)]
    runs: u64,
    #[command(flatten)]
    drain: DrainOpts,
    #[command(flatten)]
    enqueue: EnqueueOpts,
    #[command(flatten)]
    latency: LatencyOpts,
    #[command(flatten)]
    kill: KillOpts,
    /// Leave out the kill test.
    #[arg(long)]
    no_kill: bool,
}

pub async fn run(args: AllArgs) -> Result<()> {
    let count = check_count("-n", args.count, 1..=100_000_000)?;
    let runs = check_count("--runs", args.runs, 1..=100)?;
    let b = &args.backend;
    let mut figures = Figures::default();
    for run in 1..=runs {
        eprintln!("== run {run} of {runs} on {}", b.backend.as_str());
        merge(
            &mut figures,
            drain::measure_all(b, &args.drain, count, 1).await?,
        );
        merge(
            &mut figures,
            enqueue::measure_all(b, &args.enqueue, count, 1).await?,
        );
        merge(
            &mut figures,
            latency::measure_all(b, &args.latency, 1).await?,
        );
    }
    let verdict = if args.no_kill {
        None
    } else {
        Some(kill::run_and_print(b, &args.kill).await?)
    };
    figures.print(&format!(
        "helix-load jobs all on {}: N = {}, medians of {runs} run(s)",
        b.backend.as_str(),
        thousands(count as f64)
    ));
    print_targets(&args, &figures);
    let mut summary =
        json!({"command": "jobs all", "backend": b.backend.as_str(), "count": count, "runs": runs});
    if let Value::Object(fields) = &mut summary {
        fields.extend(figures.json());
        if let Some(v) = &verdict {
            fields.insert("kill".into(), kill::summary(b, &args.kill, v));
        }
    }
    println!("SUMMARY {summary}");
    if verdict.is_some_and(|v| !v.passed()) {
        bail!("the kill test failed (see above)");
    }
    Ok(())
}

/// Append one run's figures to the collection.
fn merge(into: &mut Figures, run: Figures) {
    for (name, value) in run.values() {
        into.add(name, value);
    }
}

/// The targets (stated for Redis), next to the medians.
fn print_targets(args: &AllArgs, figures: &Figures) {
    let mut rows: Vec<(String, Option<f64>, f64, bool)> = Vec::new();
    let (c, f) = (args.drain.concurrency[0], args.drain.fetch_max[0]);
    let drain = figures.median(&format!("drain_c{c}_f{f}_jobs_per_s"));
    rows.push(("drain jobs/s, one core".into(), drain, 40_000.0, true));
    if args.enqueue.callers.contains(&1) {
        let single = figures.median("enqueue_single_x1_jobs_per_s");
        rows.push((
            "enqueue jobs/s, one at a time".into(),
            single,
            10_000.0,
            true,
        ));
    }
    if args.enqueue.batch > 0 {
        let key = format!(
            "enqueue_batch{}_x{}_jobs_per_s",
            args.enqueue.batch, args.enqueue.batch_callers
        );
        rows.push((
            "enqueue jobs/s, batches".into(),
            figures.median(&key),
            100_000.0,
            true,
        ));
    }
    rows.push((
        "latency p50 ms".into(),
        figures.median("latency_p50_ms"),
        1.0,
        false,
    ));
    rows.push((
        "latency p99 ms".into(),
        figures.median("latency_p99_ms"),
        5.0,
        false,
    ));
    println!("targets (stated for Redis)");
    for (name, value, target, at_least) in rows {
        let Some(value) = value else { continue };
        let met = if at_least {
            value >= target
        } else {
            value < target
        };
        let (sign, verdict) = (
            if at_least { "≥" } else { "<" },
            if met { "met" } else { "NOT met" },
        );
        println!("  {name:<32} {value:>12.3}   target {sign} {target}: {verdict}");
    }
}
