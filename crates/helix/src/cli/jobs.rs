//! `helix jobs enqueue|list|get|retry|cancel|stats`: operators' hands on the job queue the worker
//! uses (the engine the worker's configuration selects: see `shared::jobs`).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use helix_jobs::{EnqueueOptions, JobBackend, JobId, JobState, Jobs, ListFilter, Unique};

use super::Failure;
use crate::config::Config;
use crate::platform::runtime::StartError;
use crate::shared::jobs::QueueTarget;
use helix_store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: JobsCommand,
}

#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// Add jobs of one kind (`noop` is built in: --payload '{"sleep_ms": 10}')
    Enqueue {
        kind: String,
        /// The payload, as JSON
        #[arg(long, default_value = "{}")]
        payload: String,
        /// How many identical jobs
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// The queue [default: the kind's own]
        #[arg(long)]
        queue: Option<String>,
        /// Seconds before the jobs become available (fractions allowed)
        #[arg(long, default_value_t = 0.0)]
        delay: f64,
        /// Higher runs first, from -100 to 100
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// Attempts before the job fails for good [default: the queue's]
        #[arg(long)]
        max_attempts: Option<u32>,
        /// An idempotency key: a second enqueue within the window adds nothing
        #[arg(long)]
        unique: Option<String>,
        /// Seconds the unique key is held
        #[arg(long, default_value_t = 3600)]
        unique_window: u64,
    },
    /// List jobs, newest first
    List {
        #[arg(long)]
        state: Option<JobState>,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only jobs older than this id (the last id of the previous page)
        #[arg(long)]
        before: Option<JobId>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Everything about one job, its errors per attempt included
    Get {
        id: JobId,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Run a failed, cancelled, retryable or scheduled job again now, with fresh attempts
    Retry { id: JobId },
    /// Cancel a job that has not finished (a running one's worker stops it)
    Cancel { id: JobId },
    /// Per queue: jobs by state, oldest waiting job, totals, lease expiries
    Stats {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub async fn run(config: Config, args: Args) -> Result<(), Failure> {
    let (backend, store) = open(&config).await?;
    let result = dispatch(&backend, args.command).await;
    if let Some(store) = store {
        store.close().await;
    }
    result
}

async fn dispatch(backend: &Arc<dyn JobBackend>, command: JobsCommand) -> Result<(), Failure> {
    let fail = |e: helix_jobs::JobError| Failure::from(StartError::from(e));
    match command {
        JobsCommand::Enqueue {
            kind,
            payload,
            count,
            queue,
            delay,
            priority,
            max_attempts,
            unique,
            unique_window,
        } => {
            let delay = seconds(delay)?;
            let options = EnqueueOptions {
                queue,
                priority,
                delay,
                max_attempts,
                timeout: None,
                unique: unique.map(|key| {
                    let window = Duration::from_secs(unique_window);
                    (Unique { key, window }, helix_jobs::OnDuplicate::Merge)
                }),
            };
            let jobs = Jobs::new(backend.clone(), crate::shared::jobs::registry());
            enqueue(&jobs, &kind, &payload, &options, count).await
        }
        JobsCommand::List {
            state,
            queue,
            limit,
            before,
            format,
        } => {
            let filter = ListFilter {
                state,
                queue,
                limit: limit.clamp(1, 1000),
                before,
            };
            let jobs = backend.list(&filter).await.map_err(fail)?;
            print_list(&jobs, format);
            Ok(())
        }
        JobsCommand::Get { id, format } => {
            let job = backend.get(id).await.map_err(fail)?;
            let job = job.ok_or_else(|| fail(helix_jobs::JobError::NotFound(id)))?;
            print_job(&job, format);
            Ok(())
        }
        JobsCommand::Retry { id } => {
            let job = backend.retry(id).await.map_err(fail)?;
            println!("{} is {} again", job.id, job.state);
            Ok(())
        }
        JobsCommand::Cancel { id } => {
            let job = backend.cancel(id).await.map_err(fail)?;
            println!("{} is {}", job.id, job.state);
            Ok(())
        }
        JobsCommand::Stats { format } => {
            let stats = backend.stats().await.map_err(fail)?;
            print_stats(&stats, format);
            Ok(())
        }
    }
}

fn seconds(s: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("--delay {s}: a number of seconds, 0 or more").into())
}

/// Enqueue in batches of 1,000, showing progress for large counts.
async fn enqueue(
    jobs: &Jobs,
    kind: &str,
    payload: &str,
    options: &EnqueueOptions,
    count: usize,
) -> Result<(), Failure> {
    const BATCH: usize = 1_000;
    if count == 0 {
        return Err(anyhow::anyhow!("--count must be at least 1").into());
    }
    let (mut done, mut added, mut first) = (0, 0, None);
    while done < count {
        let n = BATCH.min(count - done);
        let out = jobs
            .enqueue_json(kind, payload, options, n)
            .await
            .map_err(StartError::from)?;
        first.get_or_insert(out[0].id);
        added += out.iter().filter(|e| e.inserted).count();
        done += n;
        if count > BATCH {
            eprint!("\renqueued {done}/{count}");
            let _ = std::io::stderr().flush();
        }
    }
    if count > BATCH {
        eprintln!();
    }
    let first = first.expect("at least one batch ran");
    match (count, added) {
        (1, 1) => println!("{first}"),
        (1, _) => println!("{first} (already enqueued under that unique key)"),
        _ => println!("enqueued {added} of {count} jobs of {kind}; first {first}"),
    }
    Ok(())
}

fn print_list(jobs: &[helix_jobs::Job], format: Format) {
    if let Format::Json = format {
        println!("{}", serde_json::to_string_pretty(jobs).unwrap_or_default());
        return;
    }
    println!(
        "{:<36}  {:<10}  {:<16}  {:<16}  {:>8}  run_at",
        "id", "state", "queue", "kind", "attempts"
    );
    for j in jobs {
        println!(
            "{:<36}  {:<10}  {:<16}  {:<16}  {:>8}  {}",
            j.id,
            j.state,
            j.queue,
            j.kind,
            j.attempts,
            j.run_at.format("%Y-%m-%d %H:%M:%S%.3fZ")
        );
    }
}

fn print_job(job: &helix_jobs::Job, format: Format) {
    // Text is the pretty JSON too: every field, including the errors per attempt, is worth seeing.
    let _ = format;
    println!("{}", serde_json::to_string_pretty(job).unwrap_or_default());
}

fn print_stats(stats: &[helix_jobs::QueueStats], format: Format) {
    if let Format::Json = format {
        println!(
            "{}",
            serde_json::to_string_pretty(stats).unwrap_or_default()
        );
        return;
    }
    println!(
        "{:<16} {:>9} {:>9} {:>8} {:>9} {:>9} {:>7} {:>9} {:>10} {:>10} {:>8} {:>8}",
        "queue",
        "scheduled",
        "available",
        "running",
        "retryable",
        "completed",
        "failed",
        "cancelled",
        "oldest_ms",
        "done_total",
        "dead",
        "expiries"
    );
    for s in stats {
        println!(
            "{:<16} {:>9} {:>9} {:>8} {:>9} {:>9} {:>7} {:>9} {:>10} {:>10} {:>8} {:>8}",
            s.queue,
            s.scheduled,
            s.available,
            s.running,
            s.retryable,
            s.completed,
            s.failed,
            s.cancelled,
            s.oldest_available_ms
                .map_or("-".into(), |ms| ms.to_string()),
            s.completed_total,
            s.failed_total,
            s.lease_expiries_total
        );
    }
}

/// Open the job backend the worker's configuration selects (and the store under it, to close).
pub async fn open(
    config: &Config,
) -> Result<(Arc<dyn JobBackend>, Option<Arc<dyn Store>>), Failure> {
    let planned = super::schema_owner::plan(config, "worker")?;
    let target = QueueTarget::of(&planned.env, &planned.config)
        .map_err(|reason| StartError::from(helix_jobs::JobError::Backend(reason)))?;
    let store = match &target {
        QueueTarget::Database(_) => {
            Some(super::schema_owner::open_migrated(config, &planned).await?)
        }
        QueueTarget::Redis(_) => None,
    };
    let backend = target
        .open(store.as_ref(), &config.settings.bus_prefix)
        .await
        .map_err(StartError::from)?;
    Ok((backend, store))
}
