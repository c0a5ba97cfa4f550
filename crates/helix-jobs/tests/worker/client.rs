//! The enqueue client refuses what could never run (an unknown kind, a payload that does not fit,
//! options out of range) before anything is stored, and keeps unique keys as the caller asked.

use std::time::Duration;

use helix_jobs::client::MAX_BATCH;
use helix_jobs::model::MAX_PAYLOAD_BYTES;
use helix_jobs::{EnqueueOptions, Enqueued, JobError, JobState, ListFilter, OnDuplicate, Unique};

use crate::harness::{client, on, stats_of, Act, Probe, Script};
use crate::support::Fx;

on_every_engine!(
    unknown_kind_and_misfit_payloads_are_refused,
    options_out_of_range_are_refused,
    accepted_options_are_stored,
    unique_key_rejects_or_merges_as_asked,
    refused_unique_batch_stores_nothing,
);

const SUCCEED: &str = r#"{"act":"succeed"}"#;

/// The reason of a `JobError::Invalid`, or a panic naming what came instead.
fn invalid<T: std::fmt::Debug>(result: Result<T, JobError>) -> String {
    match result {
        Err(JobError::Invalid(reason)) => reason,
        other => panic!("expected JobError::Invalid, got {other:?}"),
    }
}

async fn nothing_stored(fx: &Fx) {
    let all = fx
        .jobs
        .list(&ListFilter {
            limit: 100,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert!(all.is_empty(), "a refused enqueue stored nothing: {all:?}");
}

async fn unknown_kind_and_misfit_payloads_are_refused(fx: Fx) {
    let jobs = client(&fx.jobs, &Probe::new());
    let plain = EnqueueOptions::default();

    match jobs.enqueue_json("no_such_kind", "{}", &plain, 1).await {
        Err(JobError::UnknownKind(kind)) => assert_eq!(kind, "no_such_kind"),
        other => panic!("expected UnknownKind, got {other:?}"),
    }
    let err = jobs.build("no_such_kind", "{}", &plain, 1).unwrap_err();
    assert_eq!(err.to_string(), r#"unknown job kind "no_such_kind""#);

    let misfit = invalid(
        jobs.enqueue_json("script", r#"{"act":"dance"}"#, &plain, 1)
            .await,
    );
    assert!(
        misfit.starts_with("payload does not fit script: "),
        "{misfit}"
    );
    assert!(misfit.contains("dance"), "{misfit}");
    let not_json = invalid(jobs.enqueue_json("script", "not json", &plain, 1).await);
    assert!(
        not_json.starts_with("payload does not fit script: "),
        "{not_json}"
    );
    let noop = invalid(
        jobs.enqueue_json("noop", r#"{"sleep_ms":"soon"}"#, &plain, 1)
            .await,
    );
    assert!(noop.starts_with("payload does not fit noop: "), "{noop}");
    let huge = serde_json::to_string(&Act::Refuse {
        reason: "x".repeat(MAX_PAYLOAD_BYTES),
    })
    .unwrap();
    let too_big = invalid(jobs.enqueue_json("script", &huge, &plain, 1).await);
    assert!(too_big.contains("bytes"), "{too_big}");

    nothing_stored(&fx).await;
}

async fn options_out_of_range_are_refused(fx: Fx) {
    let jobs = client(&fx.jobs, &Probe::new());
    for bad in ["", "has space", "a/b", "ünïcode", &"q".repeat(65)] {
        let reason = invalid(jobs.enqueue_json("script", SUCCEED, &on(bad), 1).await);
        assert!(reason.contains("queue name"), "{bad:?}: {reason}");
    }
    for priority in [101, -101, i32::MAX, i32::MIN] {
        let options = EnqueueOptions {
            priority,
            ..EnqueueOptions::default()
        };
        let reason = invalid(jobs.enqueue_json("script", SUCCEED, &options, 1).await);
        assert!(reason.contains("priority"), "{priority}: {reason}");
        let typed = jobs.enqueue::<Script>(&Act::Succeed, options).await;
        assert!(invalid(typed).contains("priority"));
    }
    let plain = EnqueueOptions::default();
    for count in [0, MAX_BATCH + 1] {
        let reason = invalid(jobs.enqueue_json("script", SUCCEED, &plain, count).await);
        assert!(reason.contains("count"), "{count}: {reason}");
    }
    for attempts in [0, 101] {
        let options = EnqueueOptions {
            max_attempts: Some(attempts),
            ..EnqueueOptions::default()
        };
        let reason = invalid(jobs.enqueue_json("script", SUCCEED, &options, 1).await);
        assert!(reason.contains("max_attempts"), "{attempts}: {reason}");
    }
    let no_time = EnqueueOptions {
        timeout: Some(Duration::ZERO),
        ..EnqueueOptions::default()
    };
    assert!(invalid(jobs.enqueue_json("script", SUCCEED, &no_time, 1).await).contains("timeout"));
    let no_key = EnqueueOptions {
        unique: Some((
            Unique {
                key: String::new(),
                window: Duration::from_secs(60),
            },
            OnDuplicate::Merge,
        )),
        ..EnqueueOptions::default()
    };
    assert!(invalid(jobs.enqueue_json("script", SUCCEED, &no_key, 1).await).contains("unique"));

    nothing_stored(&fx).await;
}

async fn accepted_options_are_stored(fx: Fx) {
    let jobs = client(&fx.jobs, &Probe::new());
    let longest = "q".repeat(64);
    let options = EnqueueOptions {
        queue: Some(longest.clone()),
        priority: 100,
        delay: Duration::from_secs(3600),
        max_attempts: Some(100),
        timeout: Some(Duration::from_millis(1500)),
        unique: None,
    };

    let out = jobs
        .enqueue_json("script", SUCCEED, &options, 3)
        .await
        .unwrap();
    let lowest = EnqueueOptions {
        priority: -100,
        ..EnqueueOptions::default()
    };
    let last = jobs.enqueue::<Script>(&Act::Succeed, lowest).await.unwrap();

    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|e| e.inserted));
    for e in &out {
        let stored = fx.jobs.get(e.id).await.unwrap().unwrap();
        assert_eq!(stored.kind, "script");
        assert_eq!(stored.queue, longest);
        assert_eq!(stored.payload, SUCCEED);
        assert_eq!(stored.priority, 100);
        assert_eq!(stored.state, JobState::Scheduled);
        assert_eq!(stored.max_attempts, Some(100));
        assert_eq!(stored.timeout_ms, Some(1500));
    }
    let stored = fx.jobs.get(last.id).await.unwrap().unwrap();
    assert_eq!(stored.queue, "default", "the kind's queue");
    assert_eq!(stored.priority, -100);
    assert_eq!(stored.state, JobState::Available);
    assert_eq!(stats_of(&*fx.jobs, &longest).await.scheduled, 3);
}

async fn unique_key_rejects_or_merges_as_asked(fx: Fx) {
    let jobs = client(&fx.jobs, &Probe::new());
    let unique = |on_duplicate| EnqueueOptions {
        unique: Some((
            Unique {
                key: "invoice-42".into(),
                window: Duration::from_secs(600),
            },
            on_duplicate,
        )),
        ..EnqueueOptions::default()
    };

    let first = jobs
        .enqueue_json("script", SUCCEED, &unique(OnDuplicate::Reject), 1)
        .await
        .unwrap();
    let rejected = jobs
        .enqueue_json("script", SUCCEED, &unique(OnDuplicate::Reject), 1)
        .await;
    let merged = jobs
        .enqueue_json("script", SUCCEED, &unique(OnDuplicate::Merge), 1)
        .await
        .unwrap();
    let typed = jobs
        .enqueue::<Script>(&Act::Succeed, unique(OnDuplicate::default()))
        .await
        .unwrap();

    assert!(first[0].inserted);
    match rejected {
        Err(JobError::Duplicate { key, existing }) => {
            assert_eq!(key, "invoice-42");
            assert_eq!(existing, first[0].id, "names the job holding the key");
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    let same = Enqueued {
        id: first[0].id,
        inserted: false,
    };
    assert_eq!(merged, vec![same]);
    assert_eq!(typed, same, "merge is the default");
    let all = fx
        .jobs
        .list(&ListFilter {
            limit: 100,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "one job for the key");
}

/// A batch of several jobs under one unique key with `Reject`: whatever the answer, an error must
/// mean that nothing was stored (the caller will not look for a job it was told was refused).
async fn refused_unique_batch_stores_nothing(fx: Fx) {
    let jobs = client(&fx.jobs, &Probe::new());
    let options = EnqueueOptions {
        unique: Some((
            Unique {
                key: "report-7".into(),
                window: Duration::from_secs(600),
            },
            OnDuplicate::Reject,
        )),
        ..EnqueueOptions::default()
    };

    let answer = jobs.enqueue_json("script", SUCCEED, &options, 2).await;

    let reason = invalid(answer);
    assert!(reason.contains("count 1"), "{reason}");
    {
        let e = &reason;
        let all = fx
            .jobs
            .list(&ListFilter {
                limit: 100,
                ..ListFilter::default()
            })
            .await
            .unwrap();
        let ids: Vec<_> = all.iter().map(|j| j.id).collect();
        assert!(all.is_empty(), "refused with {e} yet stored {ids:?}");
    }
}
