//! Which job runs when: priority order, the per-queue concurrency bound, several queues on one
//! worker, and delayed jobs that start at their time and not before.

use std::time::Duration;

use helix_jobs::{EnqueueOptions, JobState, QueueConfig};

use crate::harness::{
    client, get, on, options, put, queue, start, stats_of, wait_state, wait_until, Act, Probe,
    SLACK,
};
use crate::support::Fx;

on_every_engine!(
    higher_priority_runs_first,
    concurrency_bounds_the_jobs_running_at_once,
    one_worker_serves_each_of_its_queues,
    delayed_job_starts_at_its_time_not_before,
);

fn one_at_a_time(name: &str) -> QueueConfig {
    QueueConfig {
        concurrency: 1,
        ..queue(name)
    }
}

async fn higher_priority_runs_first(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let mut queued = Vec::new();
    for priority in [0, -5, 10, 3, 100, -100] {
        let options = EnqueueOptions {
            priority,
            ..EnqueueOptions::default()
        };
        queued.push((priority, put(&jobs, Act::Succeed, options).await));
    }
    let worker = start(
        &fx.jobs,
        &probe,
        vec![one_at_a_time("default")],
        options("w1"),
    );

    for (_, id) in &queued {
        wait_state(&*fx.jobs, *id, JobState::Completed).await;
    }
    worker.stop().await;

    queued.sort_by_key(|(priority, _)| -priority);
    let expected: Vec<_> = queued.iter().map(|(_, id)| *id).collect();
    let ran: Vec<_> = probe.starts().iter().map(|s| s.id).collect();
    assert_eq!(ran, expected, "highest priority first");
}

async fn concurrency_bounds_the_jobs_running_at_once(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(put(&jobs, Act::Gated { ms: 20 }, EnqueueOptions::default()).await);
    }
    let two = QueueConfig {
        concurrency: 2,
        ..queue("default")
    };
    let worker = start(&fx.jobs, &probe, vec![two], options("w1"));

    wait_until("2 handlers running", || probe.running() == 2).await;
    // Several polls pass: a worker that over-fetched would have started a third by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = stats_of(&*fx.jobs, "default").await;
    assert_eq!(
        (held.running, held.available),
        (2, 4),
        "2 leases held, no more"
    );
    assert_eq!(probe.peak(), 2);
    probe.open_gate();
    for id in &ids {
        wait_state(&*fx.jobs, *id, JobState::Completed).await;
    }
    let counters = worker.stop().await;

    assert_eq!(probe.peak(), 2, "never more than 2 at once");
    assert_eq!(probe.starts().len(), 6);
    assert_eq!(counters["default"].completed, 6);
}

async fn one_worker_serves_each_of_its_queues(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let blocker = put(&jobs, Act::Gated { ms: 0 }, on("a")).await;
    let behind = put(&jobs, Act::Succeed, on("a")).await;
    let mut on_b = Vec::new();
    for _ in 0..3 {
        on_b.push(put(&jobs, Act::Succeed, on("b")).await);
    }
    let elsewhere = put(&jobs, Act::Succeed, on("c")).await;
    let worker = start(
        &fx.jobs,
        &probe,
        vec![one_at_a_time("a"), one_at_a_time("b")],
        options("w1"),
    );

    wait_until("queue a's one slot held", || {
        !probe.starts_of(blocker).is_empty()
    })
    .await;
    // Queue a's one slot is held, yet queue b's jobs all run.
    for id in &on_b {
        wait_state(&*fx.jobs, *id, JobState::Completed).await;
    }
    assert_eq!(get(&*fx.jobs, blocker).await.state, JobState::Running);
    assert_eq!(get(&*fx.jobs, behind).await.state, JobState::Available);
    probe.open_gate();
    wait_state(&*fx.jobs, blocker, JobState::Completed).await;
    wait_state(&*fx.jobs, behind, JobState::Completed).await;
    assert_eq!(worker.queues(), vec!["a".to_owned(), "b".to_owned()]);
    let counters = worker.stop().await;

    for start in probe.starts() {
        let expected = if on_b.contains(&start.id) { "b" } else { "a" };
        assert_eq!(start.queue, expected, "the handler is told its queue");
    }
    assert_eq!((counters["a"].completed, counters["b"].completed), (2, 3));
    let idle = get(&*fx.jobs, elsewhere).await;
    assert_eq!(
        idle.state,
        JobState::Available,
        "queue c is not this worker's"
    );
    assert!(probe.starts_of(elsewhere).is_empty());
}

async fn delayed_job_starts_at_its_time_not_before(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let worker = start(
        &fx.jobs,
        &probe,
        vec![one_at_a_time("default")],
        options("w1"),
    );
    let later = EnqueueOptions {
        delay: Duration::from_millis(300),
        ..EnqueueOptions::default()
    };
    let delayed = put(&jobs, Act::Succeed, later).await;
    let now = put(&jobs, Act::Succeed, EnqueueOptions::default()).await;

    let done = wait_state(&*fx.jobs, delayed, JobState::Completed).await;
    let other = wait_state(&*fx.jobs, now, JobState::Completed).await;
    worker.stop().await;

    let wait = done.run_at - done.created_at;
    assert!(
        wait >= chrono::Duration::milliseconds(299),
        "stored 300 ms after its enqueue: {wait}"
    );
    let runs = probe.starts_of(delayed);
    assert_eq!(runs.len(), 1);
    assert!(
        runs[0].at + SLACK >= done.run_at,
        "started at {} before its time {}",
        runs[0].at,
        done.run_at
    );
    // The job enqueued after it, due at once, overtakes it (unless that enqueue itself took
    // longer than the delay: the order follows the stored times either way).
    let mut by_time = [(done.run_at, delayed), (other.run_at, now)];
    by_time.sort();
    let expected: Vec<_> = by_time.iter().map(|(_, id)| *id).collect();
    let order: Vec<_> = probe.starts().iter().map(|s| s.id).collect();
    assert_eq!(order, expected, "the job due first ran first");
}
