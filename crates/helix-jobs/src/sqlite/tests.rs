//! What only the SQLite backend promises (the shared contract is `tests/conformance.rs`): edges of
//! the batch statements, the error list's limits, chunked pruning, wake-ups shared by every handle
//! on one file, error mapping, and that fetch reads only the live-state indexes. Each test runs on
//! a temporary, migrated store. `measure_rates` is a benchmark, run by hand in release mode with
//! `--ignored --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::model::{JobState, Outcome, Unique, MAX_ATTEMPTS_LIMIT, MAX_ERROR_CHARS};

/// A backend on a fresh, migrated file (kept while the fixture lives).
struct Fx {
    jobs: SqliteJobs,
    store: Arc<dyn helix_store::Store>,
    dir: tempfile::TempDir,
}

async fn fx() -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("helix.db").display().to_string()).await;
    Fx {
        jobs: jobs_of(&store),
        store,
        dir,
    }
}

async fn open_store(path: &str) -> Arc<dyn helix_store::Store> {
    let url = format!("sqlite://{path}");
    let store = helix_store::open(&url, &helix_store::StoreOptions::default())
        .await
        .expect("open store");
    store.migrate().await.expect("migrate");
    store
}

fn jobs_of(store: &Arc<dyn helix_store::Store>) -> SqliteJobs {
    let helix_store::Pools::Sqlite { read, write } = store.pools() else {
        panic!("a SQLite store");
    };
    SqliteJobs::new(read, write, store.describe())
}

fn job(queue: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        kind: "noop".into(),
        queue: queue.into(),
        payload: "{}".into(),
        priority: 0,
        delay: Duration::ZERO,
        max_attempts: None,
        timeout: None,
        unique: None,
    }
}

fn request(queue: &str, max: u32) -> FetchRequest<'_> {
    FetchRequest {
        queue,
        max,
        lease: Duration::from_secs(60),
        worker: "test",
        max_attempts: 1_000,
    }
}

fn done(claim: &Claim, outcome: Outcome) -> Finish {
    Finish {
        ticket: claim.ticket(),
        outcome,
    }
}

fn stats_of(all: &[QueueStats], queue: &str) -> QueueStats {
    all.iter()
        .find(|s| s.queue == queue)
        .cloned()
        .unwrap_or_default()
}

/// Payloads travel inside JSON arrays both ways (enqueue and fetch): whatever their text, they
/// come back byte for byte.
#[tokio::test]
async fn odd_and_large_payloads_come_back_verbatim() {
    let fx = fx().await;
    let odd = "{\"s\":\"q\\\"b\\\\ \\u0000\"}\u{0}\u{1}\t\n\u{2028}\u{7f} \u{1F600} ' \\ \"";
    let large = format!("\"{}\"", "x".repeat(crate::model::MAX_PAYLOAD_BYTES - 2));
    let mut batch = Vec::new();
    for payload in [odd, &large] {
        let mut new = job("q");
        new.payload = payload.to_string();
        batch.push(new);
    }
    fx.jobs.enqueue(&batch).await.unwrap();

    let claims = fx.jobs.fetch(&request("q", 10)).await.unwrap();

    for (new, claim) in batch.iter().zip(&claims) {
        assert_eq!(claim.id, new.id);
        assert!(
            claim.payload == new.payload,
            "fetched payload of {}",
            claim.id
        );
        let stored = fx.jobs.get(new.id).await.unwrap().unwrap();
        assert!(
            stored.payload == new.payload,
            "read payload of {}",
            claim.id
        );
    }
}

#[tokio::test]
async fn a_ticket_repeated_in_one_batch_is_applied_once() {
    let fx = fx().await;
    fx.jobs.enqueue(&[job("q")]).await.unwrap();
    let claim = fx.jobs.fetch(&request("q", 1)).await.unwrap().remove(0);

    let fail = Outcome::Fail {
        error: "second".into(),
    };
    let applied = fx
        .jobs
        .finish(&[done(&claim, Outcome::Completed), done(&claim, fail)])
        .await
        .unwrap();

    assert_eq!(applied, vec![true, false]);
    let job = fx.jobs.get(claim.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    let stats = stats_of(&fx.jobs.stats().await.unwrap(), "q");
    assert_eq!((stats.completed_total, stats.failed_total), (1, 0));
}

#[tokio::test]
async fn repeats_of_a_held_key_in_one_batch_all_name_the_holder() {
    let fx = fx().await;
    let keyed = || {
        let mut new = job("q");
        new.unique = Some(Unique {
            key: "k".into(),
            window: Duration::from_secs(60),
        });
        new
    };
    let holder = fx.jobs.enqueue(&[keyed()]).await.unwrap()[0].id;

    let out = fx
        .jobs
        .enqueue(&[keyed(), job("q"), keyed()])
        .await
        .unwrap();

    assert_eq!((out[0].id, out[0].inserted), (holder, false));
    assert!(out[1].inserted);
    assert_eq!((out[2].id, out[2].inserted), (holder, false));
    assert_eq!(fx.jobs.fetch(&request("q", 10)).await.unwrap().len(), 2);
}

#[tokio::test]
async fn one_finish_batch_counts_each_queue_apart() {
    let fx = fx().await;
    fx.jobs
        .enqueue(&[job("a"), job("a"), job("b")])
        .await
        .unwrap();
    let mut claims = fx.jobs.fetch(&request("a", 10)).await.unwrap();
    claims.extend(fx.jobs.fetch(&request("b", 10)).await.unwrap());
    let fail = || Outcome::Fail { error: "x".into() };

    let applied = fx
        .jobs
        .finish(&[
            done(&claims[0], Outcome::Completed),
            done(&claims[1], fail()),
            done(&claims[2], Outcome::Completed),
        ])
        .await
        .unwrap();

    assert_eq!(applied, vec![true; 3]);
    let stats = fx.jobs.stats().await.unwrap();
    let (a, b) = (stats_of(&stats, "a"), stats_of(&stats, "b"));
    assert_eq!((a.completed_total, a.failed_total), (1, 1));
    assert_eq!((b.completed_total, b.failed_total), (1, 0));
}

#[tokio::test]
async fn a_job_keeps_its_last_errors_each_cut_to_the_limit() {
    let fx = fx().await;
    let id = fx.jobs.enqueue(&[job("q")]).await.unwrap()[0].id;
    let attempts = MAX_ATTEMPTS_LIMIT + 5;
    for n in 1..=attempts {
        let claim = fx.jobs.fetch(&request("q", 1)).await.unwrap().remove(0);
        assert_eq!(claim.attempt, n);
        let error = format!("{n}:{}", "é".repeat(MAX_ERROR_CHARS));
        let retry = Outcome::Retry {
            error,
            delay: Duration::ZERO,
        };
        assert_eq!(
            fx.jobs.finish(&[done(&claim, retry)]).await.unwrap(),
            [true]
        );
    }

    let job = fx.jobs.get(id).await.unwrap().unwrap();
    assert_eq!(job.errors.len(), MAX_ATTEMPTS_LIMIT as usize);
    assert_eq!(job.errors[0].attempt, attempts - MAX_ATTEMPTS_LIMIT + 1);
    assert_eq!(job.errors.last().unwrap().attempt, attempts);
    assert!(job
        .errors
        .iter()
        .all(|e| e.error.chars().count() == MAX_ERROR_CHARS));
}

#[tokio::test]
async fn retry_applies_to_waiting_jobs_but_not_to_due_ones() {
    let fx = fx().await;
    let mut later = job("q");
    later.delay = Duration::from_secs(3600);
    let scheduled = fx.jobs.enqueue(&[later]).await.unwrap()[0].id;
    let mut soon = job("q");
    soon.delay = Duration::from_millis(1);
    let due = fx.jobs.enqueue(&[soon]).await.unwrap()[0].id;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let revived = fx.jobs.retry(scheduled).await.unwrap();
    let refused = fx.jobs.retry(due).await.unwrap_err();

    assert_eq!(revived.state, JobState::Available);
    assert!(revived.run_at <= Utc::now());
    // A due scheduled job reads as available, and available jobs are not retried.
    assert!(
        matches!(
            refused,
            JobError::Conflict {
                state: JobState::Available,
                ..
            }
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn prune_deletes_more_than_one_chunk() {
    let fx = fx().await;
    let total = 5_000 + 123;
    let batch: Vec<_> = (0..total).map(|_| job("q")).collect();
    fx.jobs.enqueue(&batch).await.unwrap();
    let claims = fx.jobs.fetch(&request("q", total as u32)).await.unwrap();
    let results: Vec<_> = claims.iter().map(|c| done(c, Outcome::Completed)).collect();
    fx.jobs.finish(&results).await.unwrap();

    let pruned = fx.jobs.prune(Duration::ZERO, Duration::ZERO).await.unwrap();

    assert_eq!(pruned, total as u64);
    let stats = stats_of(&fx.jobs.stats().await.unwrap(), "q");
    assert_eq!((stats.completed, stats.completed_total), (0, total as u64));
}

#[tokio::test]
async fn list_by_state_follows_what_reads_report() {
    let fx = fx().await;
    let mut due = job("q");
    due.delay = Duration::from_millis(1);
    let mut later = job("q");
    later.delay = Duration::from_secs(3600);
    let out = fx.jobs.enqueue(&[due, later]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let list = |state| ListFilter {
        state: Some(state),
        limit: 10,
        ..ListFilter::default()
    };

    let available = fx.jobs.list(&list(JobState::Available)).await.unwrap();
    let scheduled = fx.jobs.list(&list(JobState::Scheduled)).await.unwrap();

    assert_eq!(
        available.iter().map(|j| j.id).collect::<Vec<_>>(),
        [out[0].id]
    );
    assert_eq!(
        scheduled.iter().map(|j| j.id).collect::<Vec<_>>(),
        [out[1].id]
    );
    assert_eq!(available[0].state, JobState::Available);
}

#[tokio::test]
async fn every_store_on_one_file_shares_wakeups() {
    let fx = fx().await;
    // The same file, spelled another way: a second store, as another part of the process opens it.
    let other_path = fx.dir.path().join(".").join("helix.db");
    let other_store = open_store(&other_path.display().to_string()).await;
    let listener = jobs_of(&other_store);
    let mut wake = listener.wakeups().await.unwrap();
    wake.rx.borrow_and_update();

    fx.jobs.enqueue(&[job("q")]).await.unwrap();

    let woke = tokio::time::timeout(Duration::from_secs(5), wake.rx.changed()).await;
    assert!(matches!(woke, Ok(Ok(()))), "a hint arrived");
    other_store.close().await;
}

#[tokio::test]
async fn a_closed_store_is_unavailable() {
    let fx = fx().await;
    fx.store.close().await;

    let ping = fx.jobs.ping().await.unwrap_err();
    let enqueue = fx.jobs.enqueue(&[job("q")]).await.unwrap_err();

    assert!(matches!(ping, JobError::Unavailable { .. }), "{ping:?}");
    assert!(
        matches!(enqueue, JobError::Unavailable { .. }),
        "{enqueue:?}"
    );
}

/// Many finished jobs must not slow the worker's steps: each statement of fetch reads a partial
/// index of live states, and finding a batch's tickets goes through the id index, never a scan.
#[tokio::test]
async fn worker_steps_read_only_live_state_indexes() {
    let fx = fx().await;
    // Each statement, and whether it takes a third parameter after the queue and now.
    let queue_now = |sql: &str, third: bool| (format!("EXPLAIN QUERY PLAN {sql}"), third);
    let plans = [
        (
            queue_now(&lease::RECLAIM_FAILED, true),
            "helix_jobs_running",
        ),
        (
            queue_now(&lease::RECLAIM_AVAILABLE, false),
            "helix_jobs_running",
        ),
        (queue_now(lease::PROMOTE, false), "helix_jobs_waiting"),
        (queue_now(lease::PICK, false), "helix_jobs_available"),
    ];
    let mut details = Vec::new();
    for ((explain, third), index) in plans {
        let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain)
            .bind("q")
            .bind(1_i64);
        if third {
            query = query.bind(1_i64);
        }
        let rows = query.fetch_all(&fx.jobs.read).await.unwrap();
        details.push((index, rows.into_iter().map(|r| r.3).collect::<Vec<_>>()));
    }
    let explain = format!("EXPLAIN QUERY PLAN {}", lease::HELD);
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&explain)
        .bind("[]")
        .fetch_all(&fx.jobs.read)
        .await
        .unwrap();
    details.push((
        "sqlite_autoindex_helix_jobs_1",
        rows.into_iter().map(|r| r.3).collect(),
    ));

    for (index, plan) in details {
        assert!(
            plan.iter().any(|d| d.contains(index)),
            "{index} in {plan:?}"
        );
        let table_scan = plan
            .iter()
            .any(|d| d.starts_with("SCAN helix_jobs") || d.starts_with("SCAN j "));
        assert!(!table_scan, "no scan of the jobs in {plan:?}");
    }
}

/// Rates on this machine, for the benchmark notes: enqueue one at a time and in batches of 1,000,
/// then drain with fetches of 300 and a finish per fetch, then fetch-to-finish latency of one job.
/// `cargo test --release -p helix-jobs --lib sqlite::tests::measure_rates -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand with --release --ignored --nocapture"]
async fn measure_rates() {
    let fx = fx().await;
    let jobs = &fx.jobs;
    let rate = |n: usize, since: Instant| n as f64 / since.elapsed().as_secs_f64();

    let singles = 2_000;
    let started = Instant::now();
    for _ in 0..singles {
        jobs.enqueue(&[job("single")]).await.unwrap();
    }
    println!("enqueue single:   {:>9.0} jobs/s", rate(singles, started));

    let batches = 100;
    let started = Instant::now();
    for _ in 0..batches {
        let batch: Vec<_> = (0..1_000).map(|_| job("bulk")).collect();
        jobs.enqueue(&batch).await.unwrap();
    }
    println!(
        "enqueue batched:  {:>9.0} jobs/s",
        rate(batches * 1_000, started)
    );

    let started = Instant::now();
    let mut drained = 0;
    loop {
        let claims = jobs.fetch(&request("bulk", 300)).await.unwrap();
        if claims.is_empty() {
            break;
        }
        let results: Vec<_> = claims.iter().map(|c| done(c, Outcome::Completed)).collect();
        jobs.finish(&results).await.unwrap();
        drained += claims.len();
    }
    println!("drain (300/fetch): {:>8.0} jobs/s", rate(drained, started));

    let mut latencies = Vec::new();
    for _ in 0..500 {
        let started = Instant::now();
        jobs.enqueue(&[job("latency")]).await.unwrap();
        let claim = jobs.fetch(&request("latency", 1)).await.unwrap().remove(0);
        jobs.finish(&[done(&claim, Outcome::Completed)])
            .await
            .unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "enqueue+fetch+finish latency: p50 {:?}, p99 {:?}",
        at(0.5),
        at(0.99)
    );
}
