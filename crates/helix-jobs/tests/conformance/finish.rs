//! Finishing attempts: completion, durable retries, dead letters, batches, release.

use std::time::Duration;

use helix_jobs::{Finish, JobState, Outcome};

use crate::support::{add, fetch, job, Fx};

on_every_engine!(
    completed_job_is_terminal_and_counted,
    retry_outcome_stores_the_error_and_waits,
    fail_outcome_is_a_dead_letter,
    finish_batch_answers_each_ticket_in_order,
    released_job_is_available_at_once_without_using_an_attempt,
);

fn finish(claim: &helix_jobs::Claim, outcome: Outcome) -> Finish {
    Finish {
        ticket: claim.ticket(),
        outcome,
    }
}

async fn completed_job_is_terminal_and_counted(fx: Fx) {
    let id = add(&*fx.jobs, job("q", "{}")).await;
    let claim = fetch(&*fx.jobs, "q", 1).await.pop().unwrap();

    let applied = fx
        .jobs
        .finish(&[finish(&claim, Outcome::Completed)])
        .await
        .unwrap();

    assert_eq!(applied, vec![true]);
    let done = fx.jobs.get(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert!(done.finished_at.is_some());
    assert!(done.lease_until.is_none() && done.worker.is_none());
    let again = fx.jobs.finish(&[finish(&claim, Outcome::Completed)]).await;
    assert_eq!(again.unwrap(), vec![false], "a second finish is refused");
    let stats = fx.jobs.stats().await.unwrap();
    let q = stats.iter().find(|s| s.queue == "q").unwrap();
    assert_eq!((q.completed, q.completed_total, q.running), (1, 1, 0));
}

async fn retry_outcome_stores_the_error_and_waits(fx: Fx) {
    let id = add(&*fx.jobs, job("q", "{}")).await;
    let claim = fetch(&*fx.jobs, "q", 1).await.pop().unwrap();
    let outcome = Outcome::Retry {
        error: "smtp: connection refused".into(),
        delay: Duration::from_millis(400),
    };

    fx.jobs.finish(&[finish(&claim, outcome)]).await.unwrap();

    let waiting = fx.jobs.get(id).await.unwrap().unwrap();
    assert_eq!(waiting.state, JobState::Retryable);
    assert!(waiting.lease_until.is_none());
    assert_eq!(waiting.errors.len(), 1);
    assert_eq!(waiting.errors[0].attempt, 1);
    assert_eq!(waiting.errors[0].error, "smtp: connection refused");
    assert!(
        fetch(&*fx.jobs, "q", 1).await.is_empty(),
        "the retry time is stored"
    );
    tokio::time::sleep(Duration::from_millis(550)).await;
    let second = fetch(&*fx.jobs, "q", 1).await.pop().expect("due again");
    assert_eq!(second.id, id);
    assert_eq!(second.attempt, 2);
}

async fn fail_outcome_is_a_dead_letter(fx: Fx) {
    let id = add(&*fx.jobs, job("q", "{}")).await;
    let claim = fetch(&*fx.jobs, "q", 1).await.pop().unwrap();
    let outcome = Outcome::Fail {
        error: "payload: missing field `to`".into(),
    };

    fx.jobs.finish(&[finish(&claim, outcome)]).await.unwrap();

    let dead = fx.jobs.get(id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Failed);
    assert!(dead.finished_at.is_some());
    assert_eq!(dead.errors[0].error, "payload: missing field `to`");
    assert!(fetch(&*fx.jobs, "q", 1).await.is_empty());
    let stats = fx.jobs.stats().await.unwrap();
    let q = stats.iter().find(|s| s.queue == "q").unwrap();
    assert_eq!((q.failed, q.failed_total), (1, 1));
}

async fn finish_batch_answers_each_ticket_in_order(fx: Fx) {
    let batch: Vec<_> = (0..3).map(|n| job("q", &format!("{n}"))).collect();
    fx.jobs.enqueue(&batch).await.unwrap();
    let claims = fetch(&*fx.jobs, "q", 3).await;
    let mut stale = claims[1].ticket();
    stale.token += 1000;
    let results = vec![
        finish(&claims[0], Outcome::Completed),
        Finish {
            ticket: stale,
            outcome: Outcome::Completed,
        },
        finish(
            &claims[2],
            Outcome::Fail {
                error: "boom".into(),
            },
        ),
    ];

    let applied = fx.jobs.finish(&results).await.unwrap();

    assert_eq!(applied, vec![true, false, true]);
    let state = |i: usize| {
        let jobs = fx.jobs.clone();
        let id = claims[i].id;
        async move { jobs.get(id).await.unwrap().unwrap().state }
    };
    assert_eq!(state(0).await, JobState::Completed);
    assert_eq!(state(1).await, JobState::Running);
    assert_eq!(state(2).await, JobState::Failed);
}

async fn released_job_is_available_at_once_without_using_an_attempt(fx: Fx) {
    let id = add(&*fx.jobs, job("q", "{}")).await;
    let claim = fetch(&*fx.jobs, "q", 1).await.pop().unwrap();

    let released = fx.jobs.release(&[claim.ticket()]).await.unwrap();

    assert_eq!(released, vec![true]);
    let back = fx.jobs.get(id).await.unwrap().unwrap();
    assert_eq!(back.state, JobState::Available);
    assert_eq!(back.attempts, 0);
    assert!(back.lease_until.is_none() && back.worker.is_none());
    let again = fetch(&*fx.jobs, "q", 1).await.pop().expect("at once");
    assert_eq!(again.attempt, 1);
    assert!(again.token > claim.token);
    assert_eq!(
        fx.jobs.release(&[claim.ticket()]).await.unwrap(),
        vec![false]
    );
}
