//! Fetch: order, limits, leases, fencing tokens and the reclaim of expired leases.

use std::collections::HashSet;
use std::time::Duration;

use helix_jobs::{Finish, JobState, Outcome};

use crate::support::{add, fetch, fetch_with, job, Fx};

on_every_engine!(
    fetch_takes_highest_priority_then_oldest,
    fetch_takes_at_most_max_from_its_own_queue,
    fetched_job_is_running_under_a_lease,
    concurrent_fetches_never_share_a_job,
    expired_lease_is_reclaimed_and_the_stale_token_refused,
    expired_lease_on_the_last_attempt_fails_the_job,
    extended_lease_is_not_reclaimed,
    reclaimed_and_released_jobs_keep_their_place_in_line,
);

async fn fetch_takes_highest_priority_then_oldest(fx: Fx) {
    let mut ids = Vec::new();
    for (n, priority) in [0, 5, 0, -3, 5].into_iter().enumerate() {
        let mut new = job("q", &format!(r#"{{"n":{n}}}"#));
        new.priority = priority;
        ids.push(add(&*fx.jobs, new).await);
    }

    let got: Vec<_> = fetch(&*fx.jobs, "q", 10)
        .await
        .iter()
        .map(|c| c.id)
        .collect();

    assert_eq!(got, vec![ids[1], ids[4], ids[0], ids[2], ids[3]]);
}

async fn fetch_takes_at_most_max_from_its_own_queue(fx: Fx) {
    for n in 0..5 {
        add(&*fx.jobs, job("a", &format!("{n}"))).await;
    }
    add(&*fx.jobs, job("b", "\"b\"")).await;

    let first = fetch(&*fx.jobs, "a", 3).await;
    let rest = fetch(&*fx.jobs, "a", 3).await;
    let none = fetch(&*fx.jobs, "a", 3).await;

    assert_eq!(first.len(), 3);
    assert_eq!(rest.len(), 2);
    assert!(none.is_empty());
    assert!(first.iter().chain(&rest).all(|c| c.queue == "a"));
    assert!(fetch(&*fx.jobs, "missing", 3).await.is_empty());
    assert_eq!(fetch(&*fx.jobs, "b", 3).await.len(), 1);
}

async fn fetched_job_is_running_under_a_lease(fx: Fx) {
    let mut new = job("q", r#"{"x":1}"#);
    new.kind = "resize".into();
    new.max_attempts = Some(4);
    new.timeout = Some(Duration::from_secs(9));
    let id = add(&*fx.jobs, new).await;

    let claim = fetch(&*fx.jobs, "q", 1).await.pop().expect("one job");

    assert_eq!(claim.id, id);
    assert_eq!(claim.kind, "resize");
    assert_eq!(claim.payload, r#"{"x":1}"#);
    assert_eq!(claim.attempt, 1);
    assert_eq!(claim.max_attempts, Some(4));
    assert_eq!(claim.timeout, Some(Duration::from_secs(9)));
    let job = fx.jobs.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.worker.as_deref(), Some("test-worker"));
    let until = job.lease_until.expect("a lease");
    let lease = (until - job.updated_at).num_seconds();
    assert!((55..=61).contains(&lease), "a 60 s lease, got {lease} s");
}

async fn concurrent_fetches_never_share_a_job(fx: Fx) {
    let batch: Vec<_> = (0..300).map(|n| job("q", &format!("{n}"))).collect();
    fx.jobs.enqueue(&batch).await.unwrap();

    let mut tasks = Vec::new();
    for _ in 0..6 {
        let jobs = fx.reopen().await;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = fetch(&*jobs, "q", 7).await;
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }

    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 300, "every job fetched once");
    assert_eq!(unique.len(), 300, "no job fetched twice");
}

async fn expired_lease_is_reclaimed_and_the_stale_token_refused(fx: Fx) {
    let id = add(&*fx.jobs, job("q", "{}")).await;
    let lease = Duration::from_millis(300);
    let first = fetch_with(&*fx.jobs, "q", 1, lease).await.pop().unwrap();
    assert!(
        fetch_with(&*fx.jobs, "q", 1, lease).await.is_empty(),
        "leased"
    );

    tokio::time::sleep(Duration::from_millis(450)).await;
    let second = fetch_with(&*fx.jobs, "q", 1, lease)
        .await
        .pop()
        .expect("reclaimed");

    assert_eq!(second.id, id);
    assert_eq!(second.attempt, 2);
    assert!(second.token > first.token, "a new fencing token");
    let stale = Finish {
        ticket: first.ticket(),
        outcome: Outcome::Completed,
    };
    assert_eq!(fx.jobs.finish(&[stale]).await.unwrap(), vec![false]);
    assert_eq!(
        fx.jobs.get(id).await.unwrap().unwrap().state,
        JobState::Running
    );
    let current = Finish {
        ticket: second.ticket(),
        outcome: Outcome::Completed,
    };
    assert_eq!(fx.jobs.finish(&[current]).await.unwrap(), vec![true]);
    let done = fx.jobs.get(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.errors.len(), 1);
    assert_eq!(done.errors[0].attempt, 1);
    assert!(
        done.errors[0].error.contains("lease expired"),
        "{:?}",
        done.errors
    );
    let stats = fx.jobs.stats().await.unwrap();
    let q = stats.iter().find(|s| s.queue == "q").expect("stats of q");
    assert_eq!(q.lease_expiries_total, 1);
    assert_eq!(q.completed_total, 1);
}

async fn expired_lease_on_the_last_attempt_fails_the_job(fx: Fx) {
    let mut new = job("q", "{}");
    new.max_attempts = Some(1);
    let id = add(&*fx.jobs, new).await;
    fetch_with(&*fx.jobs, "q", 1, Duration::from_millis(200)).await;

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        fetch(&*fx.jobs, "q", 1).await.is_empty(),
        "not offered again"
    );

    let dead = fx.jobs.get(id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Failed);
    assert!(dead.finished_at.is_some());
    assert!(dead.errors[0].error.contains("lease expired"));
    let stats = fx.jobs.stats().await.unwrap();
    let q = stats.iter().find(|s| s.queue == "q").unwrap();
    assert_eq!(
        (q.failed, q.failed_total, q.lease_expiries_total),
        (1, 1, 1)
    );
}

async fn extended_lease_is_not_reclaimed(fx: Fx) {
    add(&*fx.jobs, job("q", "{}")).await;
    let claim = fetch_with(&*fx.jobs, "q", 1, Duration::from_millis(300))
        .await
        .pop()
        .unwrap();
    let stranger = helix_jobs::Ticket {
        id: helix_jobs::JobId::new(),
        token: 1,
    };

    let extended = fx
        .jobs
        .extend(&[claim.ticket(), stranger], Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;

    assert_eq!(extended, vec![true, false]);
    assert!(fetch(&*fx.jobs, "q", 1).await.is_empty(), "still leased");
    let done = Finish {
        ticket: claim.ticket(),
        outcome: Outcome::Completed,
    };
    assert_eq!(fx.jobs.finish(&[done]).await.unwrap(), vec![true]);
}

/// A dead or stopping worker's jobs run next, not behind everything enqueued since they started.
async fn reclaimed_and_released_jobs_keep_their_place_in_line(fx: Fx) {
    let lease = Duration::from_millis(300);
    let reclaimed = add(&*fx.jobs, job("q", r#"{"n":1}"#)).await;
    let released = add(&*fx.jobs, job("q", r#"{"n":2}"#)).await;
    let held = fetch_with(&*fx.jobs, "q", 2, lease).await;
    assert_eq!(held.len(), 2);
    let mut later = Vec::new();
    for n in 3..6 {
        later.push(add(&*fx.jobs, job("q", &format!(r#"{{"n":{n}}}"#))).await);
    }
    let release = held.iter().find(|c| c.id == released).unwrap().ticket();
    assert_eq!(fx.jobs.release(&[release]).await.unwrap(), vec![true]);

    tokio::time::sleep(Duration::from_millis(450)).await;
    let got: Vec<_> = fetch(&*fx.jobs, "q", 3)
        .await
        .iter()
        .map(|c| c.id)
        .collect();

    assert_eq!(got, vec![reclaimed, released, later[0]]);
}
