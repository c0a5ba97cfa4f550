//! Leases while handlers run: an operator's cancel stops a running handler; a lease that ran out
//! (a worker that died, stalled or lost its backend) brings the job back for a worker to complete,
//! and the worker that lost it stops its stale handler instead of finishing it.

use std::time::Duration;

use helix_jobs::worker::CountersSnapshot;
use helix_jobs::{EnqueueOptions, JobBackend, JobState, QueueConfig};

use crate::harness::{
    client, get, options, put, queue, start, stats_of, wait_job, wait_state, wait_until, Act,
    Probe, Unreliable,
};
use crate::support::{fetch_with, Fx};

on_every_engine!(
    operator_cancel_stops_the_running_handler,
    expired_lease_is_reclaimed_and_completed_by_a_worker,
    stalled_worker_stops_the_job_another_worker_reclaimed,
    killed_worker_jobs_are_reclaimed_after_their_lease,
    job_reclaimed_by_its_own_worker_stops_the_stale_attempt,
);

/// A queue whose leases are extended every 200 ms.
fn short_lease(concurrency: u32) -> QueueConfig {
    QueueConfig {
        concurrency,
        lease: Duration::from_millis(600),
        ..queue("default")
    }
}

async fn operator_cancel_stops_the_running_handler(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let worker = start(&fx.jobs, &probe, vec![short_lease(1)], options("w1"));
    let id = put(&jobs, Act::Hang, EnqueueOptions::default()).await;
    wait_until("the handler running", || probe.running() == 1).await;

    let cancelled = fx.jobs.cancel(id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);

    // The lease extender learns that the lease is gone and stops the handler.
    wait_until("the handler dropped", || probe.end_of(id).is_some()).await;
    let end = probe.end_of(id).unwrap();
    assert!(!end.returned, "stopped, not finished");
    assert!(end.cancel_seen, "JobContext::cancel fired");
    wait_until("the lost lease counted", || {
        worker.counters("default").lease_lost == 1
    })
    .await;
    // One slot: the next job runs only once the cancelled one gave its slot back.
    let after = put(&jobs, Act::Succeed, EnqueueOptions::default()).await;
    wait_state(&*fx.jobs, after, JobState::Completed).await;
    let counters = worker.stop().await;

    let still = get(&*fx.jobs, id).await;
    assert_eq!(still.state, JobState::Cancelled, "{still:#?}");
    assert!(still.errors.is_empty(), "{:?}", still.errors);
    assert_eq!(probe.starts_of(id).len(), 1);
    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 2,
            completed: 1,
            lease_lost: 1,
            ..CountersSnapshot::default()
        }
    );
}

async fn expired_lease_is_reclaimed_and_completed_by_a_worker(fx: Fx) {
    let probe = Probe::open();
    let jobs = client(&fx.jobs, &probe);
    let id = put(&jobs, Act::Succeed, EnqueueOptions::default()).await;
    // A worker that fetched it and died before doing anything else.
    let lost = fetch_with(&*fx.jobs, "default", 1, Duration::from_millis(300)).await;
    assert_eq!(lost.len(), 1);

    let worker = start(&fx.jobs, &probe, vec![queue("default")], options("w1"));
    let done = wait_state(&*fx.jobs, id, JobState::Completed).await;
    let counters = worker.stop().await;

    assert_eq!(done.attempts, 2, "{done:#?}");
    assert_eq!(done.errors.len(), 1, "{done:#?}");
    assert_eq!(done.errors[0].attempt, 1);
    assert!(
        done.errors[0].error.contains("lease expired"),
        "{:?}",
        done.errors
    );
    let runs = probe.starts_of(id);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].attempt, 2);
    assert_eq!(stats_of(&*fx.jobs, "default").await.lease_expiries_total, 1);
    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 1,
            completed: 1,
            ..CountersSnapshot::default()
        }
    );
}

async fn stalled_worker_stops_the_job_another_worker_reclaimed(fx: Fx) {
    let stalled = Probe::new();
    let jobs = client(&fx.jobs, &stalled);
    let id = put(&jobs, Act::Gated { ms: 0 }, EnqueueOptions::default()).await;
    let unreliable = Unreliable::new(fx.reopen().await);
    let cut_off: std::sync::Arc<dyn JobBackend> = unreliable.clone();
    // One slot, held by the job: this worker cannot fetch the job again itself.
    let first = start(&cut_off, &stalled, vec![short_lease(1)], options("stalled"));
    wait_until("the handler running", || stalled.running() == 1).await;

    unreliable.extends_fail(true);
    let free = Probe::open();
    let second = start(&fx.jobs, &free, vec![short_lease(1)], options("rescuer"));
    let done = wait_state(&*fx.jobs, id, JobState::Completed).await;
    assert!(
        stalled.end_of(id).is_none(),
        "no news yet: the stale handler still runs"
    );
    unreliable.extends_fail(false);

    wait_until("the stale handler dropped", || stalled.end_of(id).is_some()).await;
    let end = stalled.end_of(id).unwrap();
    assert!(!end.returned && end.cancel_seen, "{end:?}");
    wait_until("the lost lease counted", || {
        first.counters("default").lease_lost == 1
    })
    .await;
    let stale = first.stop().await;
    second.stop().await;

    assert_eq!(done.attempts, 2);
    assert!(
        done.errors[0].error.contains("lease expired"),
        "{:?}",
        done.errors
    );
    assert_eq!(free.starts_of(id)[0].attempt, 2);
    assert_eq!(get(&*fx.jobs, id).await.state, JobState::Completed);
    let stale = &stale["default"];
    assert_eq!(
        (stale.fetched, stale.completed, stale.lease_lost),
        (1, 0, 1)
    );
    assert!(
        stale.backend_errors >= 1,
        "the failed extensions are counted"
    );
}

/// A worker whose task is aborted mid-job (no graceful path, as a crash would end it): its jobs
/// come back once their lease runs out and a second worker completes them.
async fn killed_worker_jobs_are_reclaimed_after_their_lease(fx: Fx) {
    let doomed = Probe::new();
    let jobs = client(&fx.jobs, &doomed);
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(put(&jobs, Act::Gated { ms: 0 }, EnqueueOptions::default()).await);
    }
    let lease = QueueConfig {
        lease: Duration::from_millis(500),
        ..queue("default")
    };
    let first = start(
        &fx.reopen().await,
        &doomed,
        vec![lease.clone()],
        options("doomed"),
    );
    wait_until("2 handlers running", || doomed.running() == 2).await;
    for id in &ids {
        wait_job(&*fx.jobs, *id, "running on the doomed worker", |j| {
            j.state == JobState::Running && j.worker.as_deref() == Some("doomed")
        })
        .await;
    }

    first.kill().await;

    let free = Probe::open();
    let second = start(&fx.jobs, &free, vec![lease], options("survivor"));
    for id in &ids {
        let done = wait_state(&*fx.jobs, *id, JobState::Completed).await;
        assert_eq!(done.attempts, 2);
        assert_eq!(done.errors.len(), 1);
        assert!(
            done.errors[0].error.contains("lease expired"),
            "{:?}",
            done.errors
        );
        let runs = free.starts_of(*id);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].attempt, 2);
    }
    let counters = second.stop().await;

    assert_eq!(counters["default"].completed, 2);
    assert_eq!(stats_of(&*fx.jobs, "default").await.lease_expiries_total, 2);
}

/// Extensions fail for longer than a lease, so the lease runs out and the same worker (a slot
/// free) fetches the job again as attempt 2. Once extensions work again, the stale attempt 1 must
/// be stopped: its lease is gone and attempt 2 runs the job.
async fn job_reclaimed_by_its_own_worker_stops_the_stale_attempt(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let id = put(&jobs, Act::Gated { ms: 0 }, EnqueueOptions::default()).await;
    let unreliable = Unreliable::new(fx.jobs.clone());
    let cut_off: std::sync::Arc<dyn JobBackend> = unreliable.clone();
    let worker = start(&cut_off, &probe, vec![short_lease(2)], options("w1"));
    wait_until("attempt 1 running", || probe.running() == 1).await;

    unreliable.extends_fail(true);
    wait_until("attempt 2 started on the same worker", || {
        probe.starts_of(id).len() == 2
    })
    .await;
    unreliable.extends_fail(false);

    wait_until("the stale attempt 1 dropped", || {
        probe.ends_of(id).iter().any(|e| e.attempt == 1)
    })
    .await;
    probe.open_gate();
    let done = wait_state(&*fx.jobs, id, JobState::Completed).await;
    let counters = worker.stop().await;

    let ends = probe.ends_of(id);
    let stale = ends.iter().find(|e| e.attempt == 1).unwrap();
    assert!(!stale.returned && stale.cancel_seen, "{stale:?}");
    let finished: Vec<_> = ends.iter().filter(|e| e.returned).collect();
    assert_eq!(finished.len(), 1, "the job ran to its end once: {ends:?}");
    assert_eq!(done.attempts, 2);
    assert_eq!(counters["default"].completed, 1);
    assert_eq!(counters["default"].lease_lost, 1);
}
