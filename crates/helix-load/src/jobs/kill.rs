//! `helix-load jobs kill`: at-least-once across a crash, with real processes.
//!
//! Two worker processes ([`child`], this binary in its hidden mode) share one queue of
//! `--kill-jobs` jobs that sleep `--kill-sleep-ms` each. Once `--kill-after` jobs are completed the
//! first worker gets SIGKILL (`tokio::process::Child::start_kill`); right after, the backend's
//! list of running jobs names the jobs it held (its in-flight set). Once the queue is done the
//! survivor is stopped by closing its standard input, and the test checks, from the backend and
//! the workers' logs: every job completed; no job ran more than twice; only jobs of the in-flight
//! set ran twice. Those checks decide the exit status.
//!
//! Timing is reported against lease + 5 s (the lease is short, `--lease`) three ways: kill → the
//! last job done; kill → the last in-flight job done; and how much longer than the survivor's own
//! share of the work the run took after the kill (the jobs left at the kill × the sleep ÷ its
//! concurrency). A reclaimed job becomes available again at the time it is reclaimed, behind the
//! jobs already waiting, so with a backlog the first two grow with the backlog, not the lease.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Args;
use helix_jobs::{EnqueueOptions, JobId, JobState, Jobs, ListFilter, Registry};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::child::{unix_micros, ChildArgs, Mark, READY};
use super::fixture::{with_fixture, Fixture, Opened, QUEUE};
use super::{check_count, progress, thousands, BackendArgs};

#[derive(Args, Debug, Clone)]
pub struct KillArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub opts: KillOpts,
}

#[derive(Args, Debug, Clone)]
pub struct KillOpts {
    /// Jobs in the kill test.
    #[arg(long, default_value_t = 2_000)]
    pub kill_jobs: u64,
    /// How long each job's handler sleeps.
    #[arg(long, default_value_t = 100)]
    pub kill_sleep_ms: u64,
    /// Concurrency of each of the two worker processes.
    #[arg(long, default_value_t = 4)]
    pub kill_concurrency: u32,
    /// Lease of each fetched job, in seconds.
    #[arg(long, default_value_t = 5)]
    pub lease: u64,
    /// SIGKILL the first worker once this many jobs are completed (default: half of them).
    #[arg(long)]
    pub kill_after: Option<u64>,
}

/// Slack on top of the lease within which the dead worker's jobs must be done.
const RECOVERY_SLACK: Duration = Duration::from_secs(5);

/// One worker process.
struct Worker {
    id: String,
    log: PathBuf,
    process: Child,
    stdin: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
}

/// What the test saw, and its checks.
#[derive(Debug, Default)]
pub struct Verdict {
    pub jobs: u64,
    pub completed_before_kill: u64,
    pub in_flight: usize,
    pub completed: u64,
    pub lost: u64,
    pub ran_twice: u64,
    pub twice_outside_in_flight: u64,
    pub ran_more_than_twice: u64,
    /// Started by the killed worker, unfinished there, yet not leased by it at the kill.
    pub unaccounted: u64,
    pub run_by_killed: u64,
    pub run_by_survivor: u64,
    /// Kill → the last in-flight job completed (`None`: it held none).
    pub recovery: Option<Duration>,
    pub kill_to_last: Duration,
    /// The least time the survivor alone needs for the jobs left at the kill.
    pub survivor_floor: Duration,
    pub total: Duration,
    pub bad_lines: u64,
}

impl Verdict {
    /// Kill → the dead worker's in-flight jobs done, within lease + 5 s.
    pub fn recovery_ok(&self, lease: Duration) -> bool {
        self.recovery.is_none_or(|r| r <= lease + RECOVERY_SLACK)
    }

    /// Kill → every job done, within lease + 5 s.
    pub fn all_done_ok(&self, lease: Duration) -> bool {
        self.kill_to_last <= lease + RECOVERY_SLACK
    }

    /// How much longer than the survivor's own share the run took after the kill.
    pub fn excess(&self) -> Duration {
        self.kill_to_last.saturating_sub(self.survivor_floor)
    }

    /// Nothing lost, nothing run twice but the dead worker's in-flight jobs, none thrice.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.completed == self.jobs
            && self.twice_outside_in_flight == 0
            && self.ran_more_than_twice == 0
            && self.unaccounted == 0
            && self.bad_lines == 0
    }
}

impl KillOpts {
    fn check(&self) -> Result<u64> {
        check_count("--kill-jobs", self.kill_jobs, 2..=1_000_000)?;
        check_count("--kill-sleep-ms", self.kill_sleep_ms, 0..=60_000)?;
        check_count(
            "--kill-concurrency",
            u64::from(self.kill_concurrency),
            1..=10_000,
        )?;
        check_count("--lease", self.lease, 1..=3_600)?;
        let after = self.kill_after.unwrap_or(self.kill_jobs / 2);
        check_count("--kill-after", after, 0..=self.kill_jobs - 1)
    }

    /// Generous bound on any wait: one worker alone doing every job, twice, plus a lease.
    fn patience(&self) -> Duration {
        let alone = self.kill_jobs * (self.kill_sleep_ms + 2) / u64::from(self.kill_concurrency);
        Duration::from_millis(alone * 2) + Duration::from_secs(self.lease + 60)
    }
}

/// Run the test on a fresh backend.
pub async fn measure(args: &BackendArgs, opts: &KillOpts) -> Result<Verdict> {
    let kill_after = opts.check()?;
    let opts = opts.clone();
    with_fixture(args, |fixture: Fixture| async move {
        let dir = tempfile::Builder::new()
            .prefix("helix_bench_kill")
            .tempdir()?;
        let mut workers = Vec::new();
        for i in 1..=2 {
            workers.push(spawn_worker(&fixture, &opts, i, dir.path()).await?);
        }
        let verdict = drive(&fixture, &opts, kill_after, &mut workers).await;
        for worker in &mut workers {
            stop(worker).await;
        }
        verdict
    })
    .await
}

async fn spawn_worker(fixture: &Fixture, opts: &KillOpts, i: usize, dir: &Path) -> Result<Worker> {
    let child = ChildArgs {
        engine: fixture.engine,
        url: fixture.url.clone(),
        namespace: fixture.namespace.clone(),
        pool: 4,
        concurrency: opts.kill_concurrency,
        lease: opts.lease,
        worker_id: format!("helix-bench-kill-worker-{i}"),
        log: dir.join(format!("worker-{i}.log")),
    };
    let exe = std::env::current_exe().context("finding this program to start a worker")?;
    let mut process = Command::new(exe)
        .args(child.to_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting a worker process")?;
    let stdin = process.stdin.take();
    let mut stdout = BufReader::new(process.stdout.take().context("worker stdout")?);
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
        .await
        .context("worker process not ready within 30 s")??;
    if line.trim() != READY {
        bail!("worker process {i} did not start: {line:?}");
    }
    Ok(Worker {
        id: child.worker_id,
        log: child.log,
        process,
        stdin,
        _stdout: stdout,
    })
}

/// Close the worker's standard input (a graceful stop); kill it if it does not exit in 30 s.
async fn stop(worker: &mut Worker) {
    drop(worker.stdin.take());
    let exited = tokio::time::timeout(Duration::from_secs(30), worker.process.wait()).await;
    if !matches!(exited, Ok(Ok(_))) {
        let _ = worker.process.start_kill();
        let _ = worker.process.wait().await;
    }
}

/// Enqueue, kill the first worker mid-run, wait for the rest, and judge.
async fn drive(
    fixture: &Fixture,
    opts: &KillOpts,
    kill_after: u64,
    workers: &mut [Worker],
) -> Result<Verdict> {
    let opened = fixture.open().await?;
    let outcome = drive_on(&opened, opts, kill_after, workers).await;
    opened.close().await;
    outcome
}

async fn drive_on(
    opened: &Opened,
    opts: &KillOpts,
    kill_after: u64,
    workers: &mut [Worker],
) -> Result<Verdict> {
    let ids = enqueue_marks(opened, opts).await?;
    let start = Instant::now();
    let patience = opts.patience();
    let before = wait_completed(opened, kill_after, patience, "kill test, before the kill").await?;
    let killed = &mut workers[0];
    killed.process.start_kill().context("SIGKILL")?;
    let killed_at = SystemTime::now();
    let kill_instant = Instant::now();
    killed.process.wait().await?;
    let in_flight = leased_by(opened, &killed.id).await?;
    eprintln!(
        "  … SIGKILL of {} after {} completed; it held {} leases",
        killed.id,
        thousands(before as f64),
        in_flight.len()
    );
    wait_completed(
        opened,
        opts.kill_jobs,
        patience,
        "kill test, after the kill",
    )
    .await?;
    let done = Instant::now();
    let finals = final_states(opened, &ids).await?;
    let logs = [read_log(&workers[0].log)?, read_log(&workers[1].log)?];
    let mut verdict = judge(&ids, &finals, &logs, &in_flight, unix_micros(killed_at));
    verdict.completed_before_kill = before;
    verdict.kill_to_last = done - kill_instant;
    let left = opts.kill_jobs.saturating_sub(before);
    let floor_ms = left * opts.kill_sleep_ms / u64::from(opts.kill_concurrency);
    verdict.survivor_floor = Duration::from_millis(floor_ms);
    verdict.total = done - start;
    Ok(verdict)
}

async fn enqueue_marks(opened: &Opened, opts: &KillOpts) -> Result<Vec<JobId>> {
    let mut registry = Registry::new();
    registry.register(Mark::default());
    let jobs = Jobs::new(opened.backend.clone(), Arc::new(registry));
    let payload = json!({"sleep_ms": opts.kill_sleep_ms}).to_string();
    let mut ids = Vec::new();
    while (ids.len() as u64) < opts.kill_jobs {
        let n = (opts.kill_jobs - ids.len() as u64).min(1_000) as usize;
        let out = jobs
            .enqueue_json("bench_mark", &payload, &EnqueueOptions::default(), n)
            .await
            .context("enqueue")?;
        ids.extend(out.into_iter().map(|e| e.id));
    }
    Ok(ids)
}

/// Poll the queue's counts until `target` jobs are completed; returns the count seen.
async fn wait_completed(
    opened: &Opened,
    target: u64,
    patience: Duration,
    label: &str,
) -> Result<u64> {
    let start = Instant::now();
    let mut next_line = start + progress::EVERY;
    loop {
        let completed = opened.queue_stats().await?.completed;
        if completed >= target {
            return Ok(completed);
        }
        let now = Instant::now();
        if now - start > patience {
            bail!(
                "{label}: {completed} of {target} completed after {:.0} s",
                patience.as_secs_f64()
            );
        }
        if now >= next_line {
            eprintln!("{}", progress::line(label, completed, target, now - start));
            next_line = now + progress::EVERY;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The jobs `worker` holds leases on (right after its death, before they expire).
async fn leased_by(opened: &Opened, worker: &str) -> Result<HashSet<JobId>> {
    let filter = ListFilter {
        state: Some(JobState::Running),
        queue: Some(QUEUE.to_owned()),
        limit: 10_000,
        before: None,
    };
    let running = opened
        .backend
        .list(&filter)
        .await
        .context("listing running jobs")?;
    Ok(running
        .into_iter()
        .filter(|job| job.worker.as_deref() == Some(worker))
        .map(|job| job.id)
        .collect())
}

/// Each job's final state and completion time (unix µs), from the backend.
async fn final_states(
    opened: &Opened,
    ids: &[JobId],
) -> Result<HashMap<JobId, (JobState, Option<i64>)>> {
    let mut out = HashMap::with_capacity(ids.len());
    for id in ids {
        let job = opened
            .backend
            .get(*id)
            .await?
            .with_context(|| format!("job {id} is gone"))?;
        out.insert(
            *id,
            (job.state, job.finished_at.map(|t| t.timestamp_micros())),
        );
    }
    Ok(out)
}

/// One log line: the start or the end of an attempt at a job (its time is not needed).
#[derive(Debug, Clone, Copy)]
struct Line {
    start: bool,
    id: JobId,
}

/// Lines of one worker's log, and how many could not be read.
#[derive(Debug, Default)]
struct Log {
    lines: Vec<Line>,
    bad: u64,
}

fn read_log(path: &Path) -> Result<Log> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut log = Log::default();
    for line in text.lines() {
        match parse_line(line) {
            Some(l) => log.lines.push(l),
            None => log.bad += 1,
        }
    }
    Ok(log)
}

fn parse_line(line: &str) -> Option<Line> {
    let mut parts = line.split(' ');
    let start = match parts.next()? {
        "S" => true,
        "E" => false,
        _ => return None,
    };
    let id = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    Some(Line { start, id })
}

/// Starts and ends per job in one log.
fn tally(log: &Log) -> (HashMap<JobId, u64>, HashMap<JobId, u64>) {
    let (mut starts, mut ends) = (HashMap::new(), HashMap::new());
    for line in &log.lines {
        let map = if line.start { &mut starts } else { &mut ends };
        *map.entry(line.id).or_insert(0) += 1;
    }
    (starts, ends)
}

/// The checks, from the backend's final states and the two logs (the killed worker's first).
fn judge(
    ids: &[JobId],
    finals: &HashMap<JobId, (JobState, Option<i64>)>,
    logs: &[Log; 2],
    in_flight: &HashSet<JobId>,
    killed_at_us: u64,
) -> Verdict {
    let (k_starts, k_ends) = tally(&logs[0]);
    let (s_starts, s_ends) = tally(&logs[1]);
    let get = |m: &HashMap<JobId, u64>, id: &JobId| m.get(id).copied().unwrap_or(0);
    let mut v = Verdict {
        jobs: ids.len() as u64,
        in_flight: in_flight.len(),
        bad_lines: logs[0].bad + logs[1].bad,
        ..Verdict::default()
    };
    let mut last_recovered: Option<i64> = None;
    for id in ids {
        let starts = get(&k_starts, id) + get(&s_starts, id);
        let ends = get(&k_ends, id) + get(&s_ends, id);
        let (state, finished) = finals
            .get(id)
            .copied()
            .unwrap_or((JobState::Available, None));
        v.completed += u64::from(state == JobState::Completed);
        v.lost += u64::from(state != JobState::Completed || ends == 0);
        v.ran_twice += u64::from(starts == 2);
        v.ran_more_than_twice += u64::from(starts > 2);
        v.twice_outside_in_flight += u64::from(starts >= 2 && !in_flight.contains(id));
        let unfinished_there = get(&k_starts, id) > get(&k_ends, id);
        v.unaccounted += u64::from(unfinished_there && !in_flight.contains(id));
        v.run_by_killed += u64::from(get(&k_ends, id) > 0);
        v.run_by_survivor += u64::from(get(&s_ends, id) > 0);
        if in_flight.contains(id) {
            last_recovered = last_recovered.max(finished);
        }
    }
    v.recovery = last_recovered.map(|at| {
        let micros = u64::try_from(at).unwrap_or(0).saturating_sub(killed_at_us);
        Duration::from_micros(micros)
    });
    v
}

fn print(args: &BackendArgs, opts: &KillOpts, v: &Verdict) {
    let lease = Duration::from_secs(opts.lease);
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "helix-load jobs kill [{}]: {} jobs of {} ms, 2 worker processes × concurrency {}, lease \
         {} s; SIGKILL of worker 1 after {} completed",
        args.backend.as_str(),
        thousands(v.jobs as f64),
        opts.kill_sleep_ms,
        opts.kill_concurrency,
        opts.lease,
        thousands(v.completed_before_kill as f64)
    );
    println!(
        "  in flight     {} jobs leased by the killed worker at the kill",
        v.in_flight
    );
    println!(
        "  jobs          {} of {} completed, {} lost; ran twice: {} ({} outside the in-flight \
         set), more than twice: {}; {} unfinished by the killed worker yet not leased by it",
        v.completed,
        v.jobs,
        v.lost,
        v.ran_twice,
        v.twice_outside_in_flight,
        v.ran_more_than_twice,
        v.unaccounted
    );
    println!(
        "  workers       the killed one finished {} jobs, the survivor {}; {} unreadable log lines",
        v.run_by_killed, v.run_by_survivor, v.bad_lines
    );
    let limit = (lease + RECOVERY_SLACK).as_secs();
    let recovery = v.recovery.map_or_else(
        || "none held".to_owned(),
        |r| format!("{:.3} s", r.as_secs_f64()),
    );
    println!(
        "  all done      kill → last job done {:.3} s (limit lease + 5 s = {limit} s): {}",
        v.kill_to_last.as_secs_f64(),
        met(v.all_done_ok(lease))
    );
    println!(
        "  recovery      kill → the last in-flight job done {recovery}: {}",
        met(v.recovery_ok(lease))
    );
    println!(
        "  excess        the survivor alone needs {:.3} s for the jobs left at the kill; the run \
         took {:.3} s more: {}",
        v.survivor_floor.as_secs_f64(),
        v.excess().as_secs_f64(),
        met(v.excess() <= lease + RECOVERY_SLACK)
    );
    println!("  whole run     {:.3} s", v.total.as_secs_f64());
    println!(
        "  verdict       {} (nothing lost, only in-flight jobs ran twice)",
        if v.passed() { "PASS" } else { "FAIL" }
    );
}

pub fn summary(args: &BackendArgs, opts: &KillOpts, v: &Verdict) -> Value {
    json!({
        "command": "jobs kill",
        "backend": args.backend.as_str(),
        "jobs": v.jobs,
        "sleep_ms": opts.kill_sleep_ms,
        "concurrency": opts.kill_concurrency,
        "lease_s": opts.lease,
        "completed_before_kill": v.completed_before_kill,
        "in_flight": v.in_flight,
        "completed": v.completed,
        "lost": v.lost,
        "ran_twice": v.ran_twice,
        "twice_outside_in_flight": v.twice_outside_in_flight,
        "ran_more_than_twice": v.ran_more_than_twice,
        "unaccounted": v.unaccounted,
        "recovery_s": v.recovery.map(|r| crate::report::round(r.as_secs_f64(), 3)),
        "kill_to_last_s": crate::report::round(v.kill_to_last.as_secs_f64(), 3),
        "survivor_floor_s": crate::report::round(v.survivor_floor.as_secs_f64(), 3),
        "excess_s": crate::report::round(v.excess().as_secs_f64(), 3),
        "all_done_within_limit": v.all_done_ok(Duration::from_secs(opts.lease)),
        "recovery_within_limit": v.recovery_ok(Duration::from_secs(opts.lease)),
        "passed": v.passed(),
    })
}

/// Run, print, and fail when a check failed.
pub async fn run_and_print(args: &BackendArgs, opts: &KillOpts) -> Result<Verdict> {
    let verdict = measure(args, opts).await?;
    print(args, opts, &verdict);
    println!("SUMMARY {}", summary(args, opts, &verdict));
    Ok(verdict)
}

pub async fn run(args: KillArgs) -> Result<()> {
    let verdict = run_and_print(&args.backend, &args.opts).await?;
    if !verdict.passed() {
        bail!("the kill test failed (see above)");
    }
    Ok(())
}
