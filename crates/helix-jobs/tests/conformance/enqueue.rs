//! Enqueue: what is stored, delays, unique keys, batches.

use std::time::Duration;

use helix_jobs::{JobState, Unique};

use crate::support::{add, fetch, job, Fx};

on_every_engine!(
    enqueued_job_reads_back_verbatim,
    delayed_job_waits_for_its_time,
    unique_key_merges_within_its_window,
    unique_key_repeated_in_one_batch_returns_the_first,
    unique_key_is_free_again_after_its_window,
    batch_results_follow_input_order,
);

async fn enqueued_job_reads_back_verbatim(fx: Fx) {
    let payload = r#"{"b": [1, 2.5, "x"], "a": null, "ü": "✓"}"#;
    let mut new = job("mail", payload);
    new.kind = "send_email".into();
    new.priority = 7;
    new.max_attempts = Some(3);
    new.timeout = Some(Duration::from_millis(1500));
    new.unique = Some(Unique {
        key: "welcome:42".into(),
        window: Duration::from_secs(60),
    });
    let id = add(&*fx.jobs, new).await;

    let got = fx.jobs.get(id).await.expect("get").expect("the job");
    assert_eq!(got.id, id);
    assert_eq!(got.kind, "send_email");
    assert_eq!(got.queue, "mail");
    assert_eq!(got.payload, payload, "payload is stored verbatim");
    assert_eq!(got.state, JobState::Available);
    assert_eq!(got.priority, 7);
    assert_eq!(got.attempts, 0);
    assert_eq!(got.max_attempts, Some(3));
    assert_eq!(got.timeout_ms, Some(1500));
    assert_eq!(got.unique_key.as_deref(), Some("welcome:42"));
    assert!(got.errors.is_empty());
    assert!(got.finished_at.is_none() && got.lease_until.is_none() && got.worker.is_none());
    assert!(got.run_at >= got.created_at);
    assert!(fx
        .jobs
        .get(helix_jobs::JobId::new())
        .await
        .expect("get")
        .is_none());
}

async fn delayed_job_waits_for_its_time(fx: Fx) {
    let mut new = job("q", "{}");
    new.delay = Duration::from_millis(400);
    let id = add(&*fx.jobs, new).await;

    let early = fx.jobs.get(id).await.unwrap().unwrap();
    assert_eq!(early.state, JobState::Scheduled);
    assert!(early.run_at > early.created_at);
    assert!(
        fetch(&*fx.jobs, "q", 10).await.is_empty(),
        "not before its time"
    );

    tokio::time::sleep(Duration::from_millis(550)).await;
    let due = fx.jobs.get(id).await.unwrap().unwrap();
    assert_eq!(
        due.state,
        JobState::Available,
        "reads show a due job as available"
    );
    let got = fetch(&*fx.jobs, "q", 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].attempt, 1);
}

async fn unique_key_merges_within_its_window(fx: Fx) {
    let unique = Unique {
        key: "report:2026-11-23".into(),
        window: Duration::from_secs(60),
    };
    let mut first = job("q", r#"{"n":1}"#);
    first.unique = Some(unique.clone());
    let mut second = job("other-queue", r#"{"n":2}"#);
    second.unique = Some(unique);

    let a = fx.jobs.enqueue(&[first.clone()]).await.unwrap()[0];
    let b = fx.jobs.enqueue(&[second]).await.unwrap()[0];

    assert!(a.inserted);
    assert_eq!(a.id, first.id);
    assert!(!b.inserted, "the key is global and still held");
    assert_eq!(b.id, a.id, "the duplicate names the holder");
    let other = add(&*fx.jobs, job("q", "{}")).await;
    assert_ne!(other, a.id);
    assert_eq!(fetch(&*fx.jobs, "q", 10).await.len(), 2);
    assert!(fetch(&*fx.jobs, "other-queue", 10).await.is_empty());
}

async fn unique_key_repeated_in_one_batch_returns_the_first(fx: Fx) {
    let mut batch = Vec::new();
    for n in 0..3 {
        let mut new = job("q", &format!(r#"{{"n":{n}}}"#));
        new.unique = Some(Unique {
            key: "same".into(),
            window: Duration::from_secs(60),
        });
        batch.push(new);
    }
    let out = fx.jobs.enqueue(&batch).await.unwrap();

    assert_eq!(out.len(), 3);
    assert!(out[0].inserted && !out[1].inserted && !out[2].inserted);
    assert!(out.iter().all(|e| e.id == batch[0].id));
    let got = fetch(&*fx.jobs, "q", 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, r#"{"n":0}"#);
}

async fn unique_key_is_free_again_after_its_window(fx: Fx) {
    let with_key = || {
        let mut new = job("q", "{}");
        new.unique = Some(Unique {
            key: "short".into(),
            window: Duration::from_millis(300),
        });
        new
    };
    let a = fx.jobs.enqueue(&[with_key()]).await.unwrap()[0];
    tokio::time::sleep(Duration::from_millis(450)).await;
    let b = fx.jobs.enqueue(&[with_key()]).await.unwrap()[0];

    assert!(a.inserted && b.inserted);
    assert_ne!(a.id, b.id);
    let c = fx.jobs.enqueue(&[with_key()]).await.unwrap()[0];
    assert!(!c.inserted, "the new job holds the key now");
    assert_eq!(c.id, b.id);
}

async fn batch_results_follow_input_order(fx: Fx) {
    let batch: Vec<_> = (0..250)
        .map(|n| job("bulk", &format!(r#"{{"n":{n}}}"#)))
        .collect();
    let out = fx.jobs.enqueue(&batch).await.unwrap();

    assert_eq!(out.len(), batch.len());
    for (new, done) in batch.iter().zip(&out) {
        assert_eq!(done.id, new.id);
        assert!(done.inserted);
    }
    let got = fetch(&*fx.jobs, "bulk", 1000).await;
    assert_eq!(got.len(), 250);
    let payloads: Vec<_> = got.iter().map(|c| c.payload.clone()).collect();
    let expected: Vec<_> = (0..250).map(|n| format!(r#"{{"n":{n}}}"#)).collect();
    assert_eq!(payloads, expected, "same priority: oldest first");
}
