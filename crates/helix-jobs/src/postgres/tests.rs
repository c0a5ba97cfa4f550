//! What only the PostgreSQL backend promises (the shared contract is `tests/conformance.rs`):
//! enqueueing inside a caller's transaction, error mapping, and a few edges of the statements.
//! Each test runs in a private schema of `HELIX_TEST_DATABASE_URL`, dropped afterwards; without
//! the variable they print a note and return. `measure_rates` is a benchmark, run by hand with
//! `--ignored --nocapture`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

use super::*;
use crate::model::Unique;

const PG_ENV: &str = "HELIX_TEST_DATABASE_URL";

/// A backend in a fresh, migrated schema, and the store's pool to reach it directly.
struct Fx {
    jobs: Arc<PgJobs>,
    pool: PgPool,
}

/// Run `test` on a private schema, then drop the schema even if the test panicked.
async fn run<F, Fut>(test: F)
where
    F: FnOnce(Fx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(url) = std::env::var(PG_ENV) else {
        eprintln!("note: {PG_ENV} is unset; skipping");
        return;
    };
    let schema = format!("helix_test_{}", Uuid::new_v4().simple());
    let options = helix_store::StoreOptions {
        max_connections: 8,
        schema: Some(schema.clone()),
        ..Default::default()
    };
    let store = helix_store::open(&url, &options).await.expect("open store");
    store.migrate().await.expect("migrate");
    let helix_store::Pools::Postgres(pool) = store.pools() else {
        panic!("a PostgreSQL store");
    };
    let jobs = Arc::new(PgJobs::new(pool.clone(), store.describe()));
    // Why a task: a panic comes back as a JoinError, so the schema is dropped all the same.
    let outcome = tokio::spawn(test(Fx { jobs, pool })).await;
    store.close().await;
    let mut conn = PgConnection::connect(&url).await.expect("postgres");
    let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    conn.execute(drop.as_str()).await.expect("drop schema");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
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

fn request(queue: &str, max: u32, lease: Duration) -> FetchRequest<'_> {
    FetchRequest {
        queue,
        max,
        lease,
        worker: "test:1",
        max_attempts: 3,
    }
}

async fn fetch(jobs: &PgJobs, queue: &str, max: u32) -> Vec<Claim> {
    let lease = Duration::from_secs(60);
    jobs.fetch(&request(queue, max, lease)).await.unwrap()
}

#[tokio::test]
async fn enqueue_in_a_transaction_appears_only_on_commit() {
    run(|fx| async move {
        let mut tx = fx.pool.begin().await.unwrap();
        let rolled_back = enqueue_in(&mut tx, &[job("q")]).await.unwrap();
        tx.rollback().await.unwrap();
        assert!(fx.jobs.get(rolled_back[0].id).await.unwrap().is_none());

        let mut wake = fx.jobs.wakeups().await.unwrap();
        let mut tx = fx.pool.begin().await.unwrap();
        let committed = enqueue_in(&mut tx, &[job("q")]).await.unwrap();
        assert!(
            fx.jobs.get(committed[0].id).await.unwrap().is_none(),
            "invisible before commit"
        );
        wake.rx.borrow_and_update();
        tx.commit().await.unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(10), wake.rx.changed()).await;
        assert!(matches!(woke, Ok(Ok(()))), "the commit wakes workers");

        assert!(committed[0].inserted);
        let got = fetch(&fx.jobs, "q", 10).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, committed[0].id);
    })
    .await;
}

#[tokio::test]
async fn a_rolled_back_enqueue_leaves_its_unique_key_free() {
    run(|fx| async move {
        let keyed = || {
            let mut new = job("q");
            new.unique = Some(Unique {
                key: "k".into(),
                window: Duration::from_secs(60),
            });
            new
        };
        let mut tx = fx.pool.begin().await.unwrap();
        enqueue_in(&mut tx, &[keyed()]).await.unwrap();
        tx.rollback().await.unwrap();

        let second = keyed();
        let out = fx
            .jobs
            .enqueue(std::slice::from_ref(&second))
            .await
            .unwrap();
        assert!(out[0].inserted);
        assert_eq!(out[0].id, second.id);
    })
    .await;
}

#[tokio::test]
async fn due_jobs_are_fetched_in_priority_order_with_available_ones() {
    run(|fx| async move {
        let mut later_but_urgent = job("q");
        later_but_urgent.delay = Duration::from_millis(200);
        later_but_urgent.priority = 10;
        let plain = job("q");
        fx.jobs
            .enqueue(&[later_but_urgent.clone(), plain.clone()])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;

        let got = fetch(&fx.jobs, "q", 1).await;
        assert_eq!(got[0].id, later_but_urgent.id, "priority first");
        let got = fetch(&fx.jobs, "q", 1).await;
        assert_eq!(got[0].id, plain.id);
    })
    .await;
}

#[tokio::test]
async fn a_job_keeps_only_its_last_errors() {
    run(|fx| async move {
        let id = fx.jobs.enqueue(&[job("q")]).await.unwrap()[0].id;
        let limit = MAX_ATTEMPTS_LIMIT as usize;
        for n in 0..limit + 3 {
            let claim = fetch(&fx.jobs, "q", 1).await.pop().expect("due again");
            let outcome = Outcome::Retry {
                error: format!("e{n}"),
                delay: Duration::ZERO,
            };
            let ticket = claim.ticket();
            fx.jobs.finish(&[Finish { ticket, outcome }]).await.unwrap();
        }
        let got = fx.jobs.get(id).await.unwrap().unwrap();
        assert_eq!(got.errors.len(), limit);
        assert_eq!(got.errors[0].error, "e3");
        assert_eq!(got.errors[limit - 1].error, format!("e{}", limit + 2));
    })
    .await;
}

#[tokio::test]
async fn long_errors_are_cut_and_reported_times_are_the_steps() {
    run(|fx| async move {
        let id = fx.jobs.enqueue(&[job("q")]).await.unwrap()[0].id;
        let claim = fetch(&fx.jobs, "q", 1).await.pop().unwrap();
        let outcome = Outcome::Fail {
            error: "x".repeat(crate::model::MAX_ERROR_CHARS * 2),
        };
        let ticket = claim.ticket();
        fx.jobs.finish(&[Finish { ticket, outcome }]).await.unwrap();

        let got = fx.jobs.get(id).await.unwrap().unwrap();
        assert_eq!(got.errors[0].error.len(), crate::model::MAX_ERROR_CHARS);
        assert_eq!(Some(got.errors[0].at), got.finished_at);
        assert_eq!(got.updated_at, got.errors[0].at);
    })
    .await;
}

#[tokio::test]
async fn a_repeated_ticket_in_one_batch_counts_once() {
    run(|fx| async move {
        fx.jobs.enqueue(&[job("q")]).await.unwrap();
        let claim = fetch(&fx.jobs, "q", 1).await.pop().unwrap();
        let done = |token| Finish {
            ticket: Ticket {
                id: claim.id,
                token,
            },
            outcome: Outcome::Completed,
        };
        let stale = claim.token + 1_000;

        let applied = fx
            .jobs
            .finish(&[done(stale), done(claim.token), done(claim.token)])
            .await
            .unwrap();

        assert_eq!(applied, vec![false, true, false]);
        let stats = fx.jobs.stats().await.unwrap();
        assert_eq!(stats[0].completed_total, 1);
    })
    .await;
}

#[tokio::test]
async fn list_tells_due_from_waiting_jobs() {
    run(|fx| async move {
        let mut soon = job("q");
        soon.delay = Duration::from_millis(100);
        let mut later = job("q");
        later.delay = Duration::from_secs(60);
        fx.jobs
            .enqueue(&[soon.clone(), later.clone()])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let list = |state| ListFilter {
            state: Some(state),
            queue: None,
            limit: 10,
            before: None,
        };

        let scheduled = fx.jobs.list(&list(JobState::Scheduled)).await.unwrap();
        let available = fx.jobs.list(&list(JobState::Available)).await.unwrap();

        assert_eq!(scheduled.len(), 1);
        assert_eq!(scheduled[0].id, later.id);
        assert_eq!(available.len(), 1);
        assert_eq!(available[0].id, soon.id);
        assert_eq!(available[0].state, JobState::Available);
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_without_the_password() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy("postgres://helix:s3cret-pw@127.0.0.1:1/helix")
        .unwrap();
    let jobs = PgJobs::new(pool, "postgres 127.0.0.1:1/helix".into());

    let err = jobs.ping().await.unwrap_err();
    let enqueue = jobs.enqueue(&[job("q")]).await.unwrap_err();

    for err in [err, enqueue] {
        assert!(matches!(err, JobError::Unavailable { .. }), "{err:?}");
        assert!(!err.to_string().contains("s3cret-pw"), "{err}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}

#[tokio::test]
async fn wakeups_bump_again_after_the_listener_lost_its_connection() {
    run(|fx| async move {
        let mut wake = fx.jobs.wakeups().await.unwrap();
        wake.rx.borrow_and_update();
        // Kill the listener's server process, as a failover or a restart would.
        let pid = fx.jobs.wakeups.pid().await.expect("a listener");
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&fx.pool)
            .await
            .unwrap();
        let bumped = tokio::time::timeout(Duration::from_secs(10), wake.rx.changed()).await;
        assert!(matches!(bumped, Ok(Ok(()))), "bumped after reconnecting");
        wake.rx.borrow_and_update();

        assert_ne!(fx.jobs.wakeups.pid().await, Some(pid), "a new connection");
        fx.jobs.enqueue(&[job("q")]).await.unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(10), wake.rx.changed()).await;
        assert!(matches!(woke, Ok(Ok(()))), "listening again");
    })
    .await;
}

#[tokio::test]
async fn wakeups_share_one_listener_that_ends_with_the_last_receiver() {
    run(|fx| async move {
        let first = fx.jobs.wakeups().await.unwrap();
        let pid = fx.jobs.wakeups.pid().await.expect("a listener");
        let second = fx.jobs.wakeups().await.unwrap();
        assert_eq!(fx.jobs.wakeups.pid().await, Some(pid), "shared");

        drop(first);
        assert_eq!(fx.jobs.wakeups.pid().await, Some(pid), "still held");
        drop(second);

        assert_eq!(fx.jobs.wakeups.pid().await, None);
        let gone = async {
            loop {
                let alive: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
                )
                .bind(pid)
                .fetch_one(&fx.pool)
                .await
                .unwrap();
                if !alive {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let closed = tokio::time::timeout(Duration::from_secs(10), gone).await;
        assert!(closed.is_ok(), "the listener's connection is closed");
    })
    .await;
}

/// Workers that sometimes stall past their lease, racing each other: every job completes
/// exactly once, and each refused (stale) finish matches one reclaimed lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_workers_lose_their_jobs_exactly_once() {
    run(|fx| async move {
        let total = 400;
        let batch: Vec<_> = (0..total).map(|_| job("race")).collect();
        fx.jobs.enqueue(&batch).await.unwrap();
        let workers: Vec<_> = (0..4u64)
            .map(|w| {
                let jobs = fx.jobs.clone();
                tokio::spawn(async move {
                    let (mut accepted, mut refused, mut idle) = (0, 0, 0);
                    let request = FetchRequest {
                        max_attempts: 1_000,
                        ..request("race", 5, Duration::from_millis(40))
                    };
                    while idle < 20 {
                        let claims = jobs.fetch(&request).await.unwrap();
                        if claims.is_empty() {
                            idle += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                        idle = 0;
                        // Every seventh batch of a worker stalls past its lease.
                        if (claims[0].token + w) % 7 == 0 {
                            tokio::time::sleep(Duration::from_millis(80)).await;
                        }
                        let results: Vec<_> = claims
                            .iter()
                            .map(|c| Finish {
                                ticket: c.ticket(),
                                outcome: Outcome::Completed,
                            })
                            .collect();
                        for ok in jobs.finish(&results).await.unwrap() {
                            if ok {
                                accepted += 1;
                            } else {
                                refused += 1;
                            }
                        }
                    }
                    (accepted, refused)
                })
            })
            .collect();
        let (mut accepted, mut refused) = (0, 0);
        for worker in workers {
            let (a, r) = worker.await.unwrap();
            accepted += a;
            refused += r;
        }

        let stats = fx.jobs.stats().await.unwrap();
        let q = &stats[0];
        assert_eq!(accepted, total);
        assert_eq!(
            (q.completed, q.completed_total),
            (total as u64, total as u64)
        );
        assert_eq!(q.lease_expiries_total, refused as u64);
        assert_eq!(q.running + q.available + q.failed, 0);
    })
    .await;
}

/// Rough rates on this machine, for the benchmark notes:
/// `HELIX_TEST_DATABASE_URL=… cargo test --release -p helix-jobs --lib postgres::tests::measure
/// -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: prints figures"]
async fn measure_rates() {
    run(|fx| async move {
        let jobs = &*fx.jobs;
        let n = 2_000;
        let started = Instant::now();
        for _ in 0..n {
            jobs.enqueue(&[job("single")]).await.unwrap();
        }
        rate("enqueue one at a time, 1 caller", n, started);

        let started = Instant::now();
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let jobs = fx.jobs.clone();
                tokio::spawn(async move {
                    for _ in 0..n / 8 {
                        jobs.enqueue(&[job("single")]).await.unwrap();
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        rate("enqueue one at a time, 8 callers", n, started);

        let started = Instant::now();
        for queue in ["drain100", "drain300", "drain4x100"] {
            for _ in 0..25 {
                let batch: Vec<_> = (0..1_000).map(|_| job(queue)).collect();
                jobs.enqueue(&batch).await.unwrap();
            }
        }
        rate("enqueue 1,000 per call", 75_000, started);

        for (queue, batch) in [("drain300", 300), ("drain100", 100)] {
            let started = Instant::now();
            let done = drain(jobs, queue, batch).await;
            rate(
                &format!("drain (fetch+finish) {batch} per call"),
                done,
                started,
            );
        }
        let started = Instant::now();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let jobs = fx.jobs.clone();
                tokio::spawn(async move { drain(&jobs, "drain4x100", 100).await })
            })
            .collect();
        let mut done = 0;
        for worker in workers {
            done += worker.await.unwrap();
        }
        rate("drain (fetch+finish) 4 workers x 100", done, started);
        latency(&fx).await;
    })
    .await;
}

async fn drain(jobs: &PgJobs, queue: &str, batch: u32) -> usize {
    let mut done = 0;
    loop {
        let claims = fetch(jobs, queue, batch).await;
        if claims.is_empty() {
            return done;
        }
        let results: Vec<_> = claims
            .iter()
            .map(|c| Finish {
                ticket: c.ticket(),
                outcome: Outcome::Completed,
            })
            .collect();
        jobs.finish(&results).await.unwrap();
        done += claims.len();
    }
}

/// Enqueue-to-start: a worker waits on its wake-ups and fetches; one job at a time.
async fn latency(fx: &Fx) {
    let worker = fx.jobs.clone();
    let mut wake = worker.wakeups().await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while wake.rx.changed().await.is_ok() {
            for claim in fetch(&worker, "latency", 10).await {
                tx.send((claim.id, Instant::now())).unwrap();
            }
        }
    });
    let mut samples = Vec::new();
    for _ in 0..500 {
        let new = job("latency");
        let id = new.id;
        let sent = Instant::now();
        fx.jobs.enqueue(&[new]).await.unwrap();
        let (got, at) = rx.recv().await.unwrap();
        assert_eq!(got, id);
        samples.push(at - sent);
    }
    task.abort();
    samples.sort();
    let pct = |p: usize| samples[samples.len() * p / 100].as_secs_f64() * 1000.0;
    println!(
        "enqueue-to-start: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        pct(50),
        pct(90),
        pct(99)
    );
}

fn rate(what: &str, n: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!("{what}: {n} in {secs:.2} s = {:.0}/s", n as f64 / secs);
}
