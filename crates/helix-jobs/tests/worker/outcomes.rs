//! How one attempt ends, as stored: success, retries with the stored backoff, permanent failures,
//! panics, timeouts, unknown kinds and payloads that do not fit; after each failure the worker
//! keeps running the next job.

use std::time::Duration;

use helix_jobs::model::MAX_ERROR_CHARS;
use helix_jobs::worker::CountersSnapshot;
use helix_jobs::{EnqueueOptions, JobState};

use crate::harness::{
    client, get, options, put, queue, start, stats_of, wait_state, Act, Probe, SLACK, TINY,
};
use crate::support::{add, job, Fx};

on_every_engine!(
    each_job_runs_once_and_completes,
    retry_waits_the_stored_backoff_and_keeps_every_error,
    job_max_attempts_overrides_the_queue,
    retry_after_waits_the_handlers_delay,
    permanent_failure_fails_at_once,
    panicking_handler_fails_its_attempt_and_the_worker_goes_on,
    hanging_handler_is_cut_off_by_its_timeout,
    unknown_kind_fails_clearly_and_the_worker_goes_on,
    payload_that_does_not_fit_fails_at_once,
    long_error_is_cut_short,
);

async fn each_job_runs_once_and_completes(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(
            put(
                &jobs,
                Act::Sleep { ms: n % 3 * 10 },
                EnqueueOptions::default(),
            )
            .await,
        );
    }
    let batch = jobs
        .enqueue_json(
            "script",
            r#"{"act":"succeed"}"#,
            &EnqueueOptions::default(),
            10,
        )
        .await
        .unwrap();
    ids.extend(batch.iter().map(|e| e.id));
    let worker = start(&fx.jobs, &probe, vec![queue("default")], options("w1"));

    for id in &ids {
        wait_state(&*fx.jobs, *id, JobState::Completed).await;
    }
    let counters = worker.stop().await;

    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 20,
            completed: 20,
            ..CountersSnapshot::default()
        }
    );
    for id in &ids {
        let runs = probe.starts_of(*id);
        assert_eq!(runs.len(), 1, "job {id} ran once: {runs:?}");
        assert_eq!(runs[0].attempt, 1);
        let done = get(&*fx.jobs, *id).await;
        assert_eq!(done.attempts, 1);
        assert!(done.errors.is_empty(), "{:?}", done.errors);
        assert!(done.finished_at.is_some());
        assert!(done.worker.is_none() && done.lease_until.is_none());
    }
    assert_eq!(probe.starts().len(), 20, "nothing else ran");
    assert!(probe.ends().iter().all(|e| e.returned));
    let stats = stats_of(&*fx.jobs, "default").await;
    assert_eq!(
        (stats.completed_total, stats.running, stats.available),
        (20, 0, 0)
    );
}

async fn retry_waits_the_stored_backoff_and_keeps_every_error(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let id = put(&jobs, Act::Flaky, EnqueueOptions::default()).await;
    let five = helix_jobs::QueueConfig {
        max_attempts: 5,
        ..queue("default")
    };
    let worker = start(&fx.jobs, &probe, vec![five], options("w1"));

    let dead = wait_state(&*fx.jobs, id, JobState::Failed).await;
    let counters = worker.stop().await;

    assert_eq!(dead.attempts, 5);
    let errors: Vec<_> = dead
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (1, "flaky on attempt 1"),
            (2, "flaky on attempt 2"),
            (3, "flaky on attempt 3"),
            (4, "flaky on attempt 4"),
            (5, "flaky on attempt 5"),
        ]
    );
    let runs = probe.starts_of(id);
    let seen: Vec<_> = runs.iter().map(|r| (r.attempt, r.max_attempts)).collect();
    assert_eq!(seen, vec![(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]);
    // 50 ms doubling, capped at 200 ms: each attempt starts no earlier than the failure before it
    // plus its backoff (the retry time is stored, so this holds whoever fetches it).
    let waits_ms = [50, 100, 200, 200];
    for (n, wait) in waits_ms.iter().enumerate() {
        assert_eq!(TINY.delay(n as u32 + 1), Duration::from_millis(*wait));
        let due = dead.errors[n].at + chrono::Duration::milliseconds(*wait as i64);
        assert!(
            runs[n + 1].at + SLACK >= due,
            "attempt {} started at {} before its retry time {due}",
            n + 2,
            runs[n + 1].at
        );
    }
    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 5,
            retried: 4,
            failed: 1,
            ..CountersSnapshot::default()
        }
    );
    let stats = stats_of(&*fx.jobs, "default").await;
    assert_eq!((stats.failed, stats.failed_total), (1, 1));
}

/// A handler's own delay replaces the queue's backoff; attempts still run out.
async fn retry_after_waits_the_handlers_delay(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let own = EnqueueOptions {
        max_attempts: Some(2),
        ..EnqueueOptions::default()
    };
    let id = put(&jobs, Act::Wait { ms: 600 }, own).await;
    let worker = start(&fx.jobs, &probe, vec![queue("default")], options("w1"));

    let dead = wait_state(&*fx.jobs, id, JobState::Failed).await;
    worker.stop().await;

    let runs = probe.starts_of(id);
    assert_eq!(runs.len(), 2);
    let due = dead.errors[0].at + chrono::Duration::milliseconds(600);
    assert!(
        runs[1].at + SLACK >= due,
        "attempt 2 started at {} before {due} (the queue's backoff is 50 ms)",
        runs[1].at
    );
    assert_eq!(dead.errors[1].error, "wait on attempt 2");
}

async fn job_max_attempts_overrides_the_queue(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let own = EnqueueOptions {
        max_attempts: Some(2),
        ..EnqueueOptions::default()
    };
    let short = put(&jobs, Act::Flaky, own).await;
    let worker = start(&fx.jobs, &probe, vec![queue("default")], options("w1"));

    let dead = wait_state(&*fx.jobs, short, JobState::Failed).await;
    let counters = worker.stop().await;

    assert_eq!(dead.attempts, 2, "its own 2, not the queue's 3");
    assert_eq!(dead.errors.len(), 2);
    let seen: Vec<_> = probe
        .starts_of(short)
        .iter()
        .map(|r| (r.attempt, r.max_attempts))
        .collect();
    assert_eq!(seen, vec![(1, 2), (2, 2)]);
    assert_eq!(
        (counters["default"].retried, counters["default"].failed),
        (1, 1)
    );
}

async fn permanent_failure_fails_at_once(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let reason = "mailbox alice@example.com does not exist".to_owned();
    let id = put(
        &jobs,
        Act::Refuse {
            reason: reason.clone(),
        },
        EnqueueOptions::default(),
    )
    .await;
    let worker = start(&fx.jobs, &probe, vec![queue("default")], options("w1"));

    let dead = wait_state(&*fx.jobs, id, JobState::Failed).await;
    let counters = worker.stop().await;

    assert_eq!(dead.attempts, 1, "no retry although attempts remained");
    assert_eq!(dead.errors.len(), 1);
    assert_eq!(
        (dead.errors[0].attempt, &dead.errors[0].error),
        (1, &reason)
    );
    assert!(dead.finished_at.is_some());
    assert_eq!(probe.starts_of(id).len(), 1);
    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 1,
            failed: 1,
            ..CountersSnapshot::default()
        }
    );
}

async fn panicking_handler_fails_its_attempt_and_the_worker_goes_on(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let twice = EnqueueOptions {
        max_attempts: Some(2),
        ..EnqueueOptions::default()
    };
    let once = EnqueueOptions {
        max_attempts: Some(1),
        ..EnqueueOptions::default()
    };
    let formatted = put(&jobs, Act::Panic, twice).await;
    let plain = put(&jobs, Act::PanicStatic, once).await;
    let one_slot = helix_jobs::QueueConfig {
        concurrency: 1,
        ..queue("default")
    };
    let worker = start(&fx.jobs, &probe, vec![one_slot], options("w1"));

    let first = wait_state(&*fx.jobs, formatted, JobState::Failed).await;
    let second = wait_state(&*fx.jobs, plain, JobState::Failed).await;
    assert!(worker.is_running(), "a panic does not end the worker");
    let after = put(&jobs, Act::Succeed, EnqueueOptions::default()).await;
    wait_state(&*fx.jobs, after, JobState::Completed).await;
    let counters = worker.stop().await;

    let errors: Vec<_> = first
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (1, "handler panicked: boom on attempt 1"),
            (2, "handler panicked: boom on attempt 2"),
        ]
    );
    assert_eq!(second.errors.len(), 1);
    assert_eq!(second.errors[0].error, "handler panicked: static boom");
    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 4,
            completed: 1,
            retried: 1,
            failed: 2,
            panicked: 3,
            ..CountersSnapshot::default()
        }
    );
}

async fn hanging_handler_is_cut_off_by_its_timeout(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let limited = EnqueueOptions {
        timeout: Some(Duration::from_millis(200)),
        max_attempts: Some(1),
        ..EnqueueOptions::default()
    };
    let id = put(&jobs, Act::Hang, limited).await;
    let worker = start(&fx.jobs, &probe, vec![queue("default")], options("w1"));

    let dead = wait_state(&*fx.jobs, id, JobState::Failed).await;
    assert!(worker.is_running());
    let after = put(&jobs, Act::Succeed, EnqueueOptions::default()).await;
    wait_state(&*fx.jobs, after, JobState::Completed).await;
    let counters = worker.stop().await;

    assert_eq!(dead.errors.len(), 1);
    let error = &dead.errors[0].error;
    assert!(error.starts_with("timed out after 0.2"), "{error:?}");
    let end = probe
        .end_of(id)
        .expect("the hanging handler's future was dropped");
    assert!(!end.returned);
    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 2,
            completed: 1,
            failed: 1,
            timed_out: 1,
            ..CountersSnapshot::default()
        }
    );
}

async fn unknown_kind_fails_clearly_and_the_worker_goes_on(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let mut stranger = job("default", "{}");
    stranger.kind = "no_such_kind".into();
    stranger.max_attempts = Some(2);
    let id = add(&*fx.jobs, stranger).await;
    let worker = start(&fx.jobs, &probe, vec![queue("default")], options("w1"));

    let dead = wait_state(&*fx.jobs, id, JobState::Failed).await;
    assert!(worker.is_running());
    let after = put(&jobs, Act::Succeed, EnqueueOptions::default()).await;
    wait_state(&*fx.jobs, after, JobState::Completed).await;
    let counters = worker.stop().await;

    assert_eq!(dead.attempts, 2);
    assert_eq!(dead.errors.len(), 2);
    for error in &dead.errors {
        assert!(
            error.error.contains(r#"unknown job kind "no_such_kind""#)
                && error.error.contains("script"),
            "names the kind and what the worker knows: {:?}",
            error.error
        );
    }
    assert!(probe.starts_of(id).is_empty());
    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 3,
            completed: 1,
            retried: 1,
            failed: 1,
            ..CountersSnapshot::default()
        }
    );
}

async fn payload_that_does_not_fit_fails_at_once(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let mut misfit = job("default", r#"{"act":"dance"}"#);
    misfit.kind = "script".into();
    let id = add(&*fx.jobs, misfit).await;
    let worker = start(&fx.jobs, &probe, vec![queue("default")], options("w1"));

    let dead = wait_state(&*fx.jobs, id, JobState::Failed).await;
    assert!(worker.is_running());
    let after = put(&jobs, Act::Succeed, EnqueueOptions::default()).await;
    wait_state(&*fx.jobs, after, JobState::Completed).await;
    let counters = worker.stop().await;

    assert_eq!(
        dead.attempts, 1,
        "not retried: the payload will not fit next time either"
    );
    assert_eq!(dead.errors.len(), 1);
    let error = &dead.errors[0].error;
    assert!(
        error.starts_with("payload does not fit script: "),
        "{error:?}"
    );
    assert!(error.contains("dance"), "says what did not fit: {error:?}");
    assert!(probe.starts_of(id).is_empty(), "the handler never ran");
    assert_eq!(
        counters["default"],
        CountersSnapshot {
            fetched: 2,
            completed: 1,
            failed: 1,
            ..CountersSnapshot::default()
        }
    );
}

async fn long_error_is_cut_short(fx: Fx) {
    let probe = Probe::new();
    let jobs = client(&fx.jobs, &probe);
    let reason = "x".repeat(MAX_ERROR_CHARS * 3);
    let id = put(&jobs, Act::Refuse { reason }, EnqueueOptions::default()).await;
    let worker = start(&fx.jobs, &probe, vec![queue("default")], options("w1"));

    let dead = wait_state(&*fx.jobs, id, JobState::Failed).await;
    worker.stop().await;

    // At most what a job keeps per attempt, and marked as cut.
    let error = &dead.errors[0].error;
    assert_eq!(error.chars().count(), MAX_ERROR_CHARS, "{error:?}");
    assert!(
        error.starts_with("xxx") && error.ends_with('…'),
        "{error:?}"
    );
}
