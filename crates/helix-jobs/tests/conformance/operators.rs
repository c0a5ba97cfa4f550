//! What operators do: cancel, retry, list, stats, prune, and the wake-up hint.

use std::time::Duration;

use helix_jobs::{Finish, JobError, JobState, ListFilter, Outcome};

use crate::support::{add, fetch, job, Fx};

on_every_engine!(
    cancel_stops_a_waiting_job,
    cancel_revokes_a_running_lease,
    cancel_refuses_terminal_and_unknown_jobs,
    retry_revives_a_dead_letter_with_fresh_attempts,
    retry_refuses_running_completed_and_unknown_jobs,
    list_filters_by_state_and_queue_newest_first,
    stats_count_every_state,
    prune_deletes_old_finished_jobs_and_keeps_totals,
    enqueue_wakes_a_listener_on_another_handle,
);

async fn cancel_stops_a_waiting_job(fx: Fx) {
    let mut later = job("q", "{}");
    later.delay = Duration::from_secs(60);
    let scheduled = add(&*fx.jobs, later).await;
    let available = add(&*fx.jobs, job("q", "{}")).await;

    let a = fx.jobs.cancel(scheduled).await.unwrap();
    let b = fx.jobs.cancel(available).await.unwrap();

    assert_eq!(
        (a.state, b.state),
        (JobState::Cancelled, JobState::Cancelled)
    );
    assert!(a.finished_at.is_some());
    assert!(fetch(&*fx.jobs, "q", 10).await.is_empty());
}

async fn cancel_revokes_a_running_lease(fx: Fx) {
    let id = add(&*fx.jobs, job("q", "{}")).await;
    let claim = fetch(&*fx.jobs, "q", 1).await.pop().unwrap();

    let cancelled = fx.jobs.cancel(id).await.unwrap();
    let late = Finish {
        ticket: claim.ticket(),
        outcome: Outcome::Completed,
    };

    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(fx.jobs.finish(&[late]).await.unwrap(), vec![false]);
    assert_eq!(
        fx.jobs.get(id).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
}

async fn cancel_refuses_terminal_and_unknown_jobs(fx: Fx) {
    let id = add(&*fx.jobs, job("q", "{}")).await;
    let claim = fetch(&*fx.jobs, "q", 1).await.pop().unwrap();
    let done = Finish {
        ticket: claim.ticket(),
        outcome: Outcome::Completed,
    };
    fx.jobs.finish(&[done]).await.unwrap();

    let err = fx.jobs.cancel(id).await.unwrap_err();
    assert!(
        matches!(
            err,
            JobError::Conflict {
                state: JobState::Completed,
                action: "cancel",
                ..
            }
        ),
        "{err:?}"
    );
    let unknown = helix_jobs::JobId::new();
    assert!(matches!(fx.jobs.cancel(unknown).await, Err(JobError::NotFound(x)) if x == unknown));
}

async fn retry_revives_a_dead_letter_with_fresh_attempts(fx: Fx) {
    let id = add(&*fx.jobs, job("q", "{}")).await;
    let claim = fetch(&*fx.jobs, "q", 1).await.pop().unwrap();
    let fail = Finish {
        ticket: claim.ticket(),
        outcome: Outcome::Fail {
            error: "bad gateway".into(),
        },
    };
    fx.jobs.finish(&[fail]).await.unwrap();

    let revived = fx.jobs.retry(id).await.unwrap();

    assert_eq!(revived.state, JobState::Available);
    assert_eq!(revived.attempts, 0);
    assert!(revived.finished_at.is_none());
    assert_eq!(revived.errors.len(), 1, "past errors stay");
    let again = fetch(&*fx.jobs, "q", 1).await.pop().expect("available now");
    assert_eq!((again.id, again.attempt), (id, 1));
}

async fn retry_refuses_running_completed_and_unknown_jobs(fx: Fx) {
    let id = add(&*fx.jobs, job("q", "{}")).await;
    let claim = fetch(&*fx.jobs, "q", 1).await.pop().unwrap();

    let running = fx.jobs.retry(id).await.unwrap_err();
    assert!(
        matches!(
            running,
            JobError::Conflict {
                state: JobState::Running,
                action: "retry",
                ..
            }
        ),
        "{running:?}"
    );
    let done = Finish {
        ticket: claim.ticket(),
        outcome: Outcome::Completed,
    };
    fx.jobs.finish(&[done]).await.unwrap();
    let completed = fx.jobs.retry(id).await.unwrap_err();
    assert!(matches!(
        completed,
        JobError::Conflict {
            state: JobState::Completed,
            ..
        }
    ));
    assert!(matches!(
        fx.jobs.retry(helix_jobs::JobId::new()).await,
        Err(JobError::NotFound(_))
    ));
}

async fn list_filters_by_state_and_queue_newest_first(fx: Fx) {
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(add(&*fx.jobs, job("a", &format!("{n}"))).await);
    }
    let other = add(&*fx.jobs, job("b", "{}")).await;
    fetch(&*fx.jobs, "a", 1).await;

    let available = ListFilter {
        state: Some(JobState::Available),
        queue: Some("a".into()),
        limit: 2,
        before: None,
    };
    let page1 = fx.jobs.list(&available).await.unwrap();
    let page2 = fx
        .jobs
        .list(&ListFilter {
            before: Some(page1[1].id),
            limit: 10,
            ..available.clone()
        })
        .await
        .unwrap();
    let running = ListFilter {
        state: Some(JobState::Running),
        limit: 10,
        ..ListFilter::default()
    };
    let everything = ListFilter {
        limit: 100,
        ..ListFilter::default()
    };

    let ids_of = |jobs: &[helix_jobs::Job]| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(ids_of(&page1), vec![ids[4], ids[3]]);
    assert_eq!(ids_of(&page2), vec![ids[2], ids[1]]);
    assert_eq!(ids_of(&fx.jobs.list(&running).await.unwrap()), vec![ids[0]]);
    let all = fx.jobs.list(&everything).await.unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].id, other);
}

async fn stats_count_every_state(fx: Fx) {
    let jobs = &*fx.jobs;
    let mut scheduled = job("q", "{}");
    scheduled.delay = Duration::from_secs(60);
    add(jobs, scheduled).await;
    for _ in 0..6 {
        add(jobs, job("q", "{}")).await;
    }
    let claims = fetch(jobs, "q", 4).await;
    let retry = Outcome::Retry {
        error: "later".into(),
        delay: Duration::from_secs(60),
    };
    let fail = Outcome::Fail { error: "no".into() };
    let results: Vec<_> = [Outcome::Completed, retry, fail]
        .into_iter()
        .zip(&claims)
        .map(|(outcome, claim)| Finish {
            ticket: claim.ticket(),
            outcome,
        })
        .collect();
    jobs.finish(&results).await.unwrap();
    let cancelled = add(jobs, job("q", "{}")).await;
    jobs.cancel(cancelled).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let stats = jobs.stats().await.unwrap();
    let q = stats.iter().find(|s| s.queue == "q").expect("q");

    assert_eq!(q.scheduled, 1);
    assert_eq!(q.available, 2);
    assert_eq!(q.running, 1);
    assert_eq!(q.retryable, 1);
    assert_eq!(q.completed, 1);
    assert_eq!(q.failed, 1);
    assert_eq!(q.cancelled, 1);
    assert_eq!(
        (q.completed_total, q.failed_total, q.lease_expiries_total),
        (1, 1, 0)
    );
    let oldest = q.oldest_available_ms.expect("two are waiting");
    assert!(oldest >= 40, "waiting since enqueue: {oldest} ms");
}

async fn prune_deletes_old_finished_jobs_and_keeps_totals(fx: Fx) {
    let jobs = &*fx.jobs;
    for _ in 0..3 {
        add(jobs, job("q", "{}")).await;
    }
    let claims = fetch(jobs, "q", 2).await;
    let results: Vec<_> = [Outcome::Completed, Outcome::Fail { error: "x".into() }]
        .into_iter()
        .zip(&claims)
        .map(|(outcome, claim)| Finish {
            ticket: claim.ticket(),
            outcome,
        })
        .collect();
    jobs.finish(&results).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;

    let kept = jobs
        .prune(Duration::from_secs(3600), Duration::from_secs(3600))
        .await;
    assert_eq!(kept.unwrap(), 0, "nothing is that old");
    let pruned = jobs
        .prune(Duration::from_millis(100), Duration::from_secs(3600))
        .await;
    assert_eq!(pruned.unwrap(), 1, "the completed one");
    assert!(jobs.get(claims[0].id).await.unwrap().is_none());
    assert!(
        jobs.get(claims[1].id).await.unwrap().is_some(),
        "failed kept longer"
    );
    let pruned = jobs
        .prune(Duration::from_millis(100), Duration::from_millis(100))
        .await;
    assert_eq!(pruned.unwrap(), 1, "now the failed one");
    let stats = jobs.stats().await.unwrap();
    let q = stats.iter().find(|s| s.queue == "q").unwrap();
    assert_eq!((q.completed, q.failed, q.available), (0, 0, 1));
    assert_eq!((q.completed_total, q.failed_total), (1, 1));
}

async fn enqueue_wakes_a_listener_on_another_handle(fx: Fx) {
    let listener = fx.reopen().await;
    let mut wake = listener.wakeups().await.expect("wakeups");
    wake.rx.borrow_and_update();

    add(&*fx.jobs, job("q", "{}")).await;

    let woke = tokio::time::timeout(Duration::from_secs(10), wake.rx.changed()).await;
    assert!(matches!(woke, Ok(Ok(()))), "a hint arrived");
}
