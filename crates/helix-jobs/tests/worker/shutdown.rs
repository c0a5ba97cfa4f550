//! Graceful shutdown: running jobs finish within the grace and nothing new is fetched; past the
//! grace the worker returns anyway and hands the rest back unharmed for another worker.

use std::time::Duration;

use helix_jobs::worker::CountersSnapshot;
use helix_jobs::{EnqueueOptions, JobState, QueueConfig, WorkerOptions};

use crate::harness::{
    client, get, options, put, queue, start, stats_of, wait_state, wait_until, Act, Probe,
};
use crate::support::Fx;

on_every_engine!(
    shutdown_lets_running_jobs_finish_within_the_grace,
    shutdown_past_the_grace_releases_jobs_for_another_worker,
);

async fn shutdown_lets_running_jobs_finish_within_the_grace(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let three = QueueConfig {
        concurrency: 3,
        ..queue("default")
    };
    let worker = start(&fx.jobs, &probe, vec![three], options("w1"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(put(&jobs, Act::Gated { ms: 300 }, EnqueueOptions::default()).await);
    }
    wait_until("3 handlers running", || probe.running() == 3).await;
    let waiting = put(&jobs, Act::Succeed, EnqueueOptions::default()).await;

    worker.shut_down();
    // Let them go only now: they run (300 ms more) after the shutdown began.
    probe.open_gate();
    let counters = worker.join().await;

    for id in &ids {
        let done = get(&*fx.jobs, *id).await;
        assert_eq!(done.state, JobState::Completed, "{done:#?}");
        let end = probe.end_of(*id).unwrap();
        assert!(end.returned && !end.cancel_seen, "ran to its end: {end:?}");
    }
    let untouched = get(&*fx.jobs, waiting).await;
    assert_eq!(
        untouched.state,
        JobState::Available,
        "no fetch after shutdown"
    );
    assert_eq!(untouched.attempts, 0);
    assert!(probe.starts_of(waiting).is_empty());
    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 3,
            completed: 3,
            ..CountersSnapshot::default()
        }
    );
}

async fn shutdown_past_the_grace_releases_jobs_for_another_worker(fx: Fx) {
    let stuck = Probe::new();
    let jobs = client(&fx.jobs, &stuck);
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(put(&jobs, Act::Gated { ms: 0 }, EnqueueOptions::default()).await);
    }
    let short_grace = WorkerOptions {
        grace: Duration::from_millis(200),
        ..options("w1")
    };
    let first = start(&fx.jobs, &stuck, vec![queue("default")], short_grace);
    wait_until("2 handlers running", || stuck.running() == 2).await;

    // The handlers would wait for ever: the worker returns after its grace anyway.
    let counters = first.stop().await;

    for id in &ids {
        let end = stuck.end_of(*id).expect("its handler was dropped");
        assert!(!end.returned && end.cancel_seen, "{end:?}");
        let back = get(&*fx.jobs, *id).await;
        assert_eq!(back.state, JobState::Available, "released: {back:#?}");
        assert_eq!(back.attempts, 0, "a released attempt is not used up");
        assert!(back.errors.is_empty(), "{:?}", back.errors);
        assert!(back.worker.is_none() && back.lease_until.is_none());
    }
    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 2,
            released: 2,
            ..CountersSnapshot::default()
        }
    );

    let free = Probe::open();
    let second = start(
        &fx.reopen().await,
        &free,
        vec![queue("default")],
        options("w2"),
    );
    for id in &ids {
        let done = wait_state(&*fx.jobs, *id, JobState::Completed).await;
        assert_eq!(done.attempts, 1);
        let runs = free.starts_of(*id);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].attempt, 1, "the second worker runs attempt 1 again");
    }
    let counters = second.stop().await;
    assert_eq!(counters["default"].completed, 2);
    assert_eq!(stats_of(&*fx.jobs, "default").await.lease_expiries_total, 0);
}
