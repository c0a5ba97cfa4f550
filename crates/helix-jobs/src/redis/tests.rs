//! Checks of what is particular to the Redis engine, against a real server (skipped unless
//! `HELIX_TEST_REDIS_URL` is set): score and id-order edge cases, the error list's bound,
//! prune's candidates, and the wake-up connection's repair. The shared conformance suite
//! (`tests/conformance.rs`) covers the contract itself.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use uuid::{Timestamp, Uuid};

use super::*;
use crate::Unique;

const REDIS_ENV: &str = "HELIX_TEST_REDIS_URL";

/// Run `test` on a backend under a fresh key prefix, then delete that prefix's keys, also when
/// the test panicked.
async fn with_jobs<F, Fut>(test: F)
where
    F: FnOnce(Arc<RedisJobs>, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(url) = std::env::var(REDIS_ENV) else {
        eprintln!("note: {REDIS_ENV} is unset; skipping");
        return;
    };
    let prefix = format!("helix_test_{}:", Uuid::new_v4().simple());
    let jobs = Arc::new(RedisJobs::open(&url, &prefix).await.expect("open"));
    // Why a task: a panic comes back as a JoinError, so the cleanup below still runs.
    let outcome = tokio::spawn(test(jobs, url.clone())).await;
    drop_keys(&url, &prefix).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn drop_keys(url: &str, prefix: &str) {
    let mut conn = connection(url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    for chunk in keys.chunks(500) {
        let () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .expect("del");
    }
}

async fn connection(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("url");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
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

/// A UUIDv7 id made `ago` before now.
fn id_from(ago: Duration) -> JobId {
    let at = std::time::SystemTime::now() - ago;
    let since = at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    let ts = Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
    JobId(Uuid::new_v7(ts))
}

async fn fetch(jobs: &RedisJobs, queue: &str, max: u32) -> Vec<Claim> {
    let request = FetchRequest {
        queue,
        max,
        lease: Duration::from_secs(60),
        worker: "test",
        max_attempts: 500,
    };
    jobs.fetch(&request).await.expect("fetch")
}

async fn complete(jobs: &RedisJobs, claims: &[Claim]) {
    let results: Vec<_> = claims
        .iter()
        .map(|c| Finish {
            ticket: c.ticket(),
            outcome: Outcome::Completed,
        })
        .collect();
    let applied = jobs.finish(&results).await.expect("finish");
    assert!(applied.iter().all(|a| *a));
}

#[tokio::test]
async fn unreachable_server_is_unavailable_without_the_password() {
    let err = RedisJobs::open("redis://admin:s3cretpw@127.0.0.1:1/3", "p:")
        .await
        .expect_err("nothing listens on port 1");
    let JobError::Unavailable { backend, reason } = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert_eq!(backend, "redis 127.0.0.1:1/3");
    assert!(!reason.contains("s3cretpw") && !err.to_string().contains("s3cretpw"));
}

#[tokio::test]
async fn extreme_priorities_and_delays_keep_their_order() {
    with_jobs(|jobs, _| async move {
        let mut ids = Vec::new();
        for priority in [-100, 100, 0, 100, -100, 500, -500] {
            let mut new = job("q");
            new.priority = priority;
            ids.push(jobs.enqueue(&[new]).await.unwrap()[0].id);
        }
        let mut far = job("q");
        far.delay = Duration::MAX;
        let far = jobs.enqueue(&[far]).await.unwrap()[0].id;

        let order: Vec<_> = fetch(&jobs, "q", 10).await.iter().map(|c| c.id).collect();

        // Out-of-range priorities count as the nearest bound (and keep their enqueue order).
        let expected = [ids[1], ids[3], ids[5], ids[2], ids[0], ids[4], ids[6]];
        assert_eq!(order, expected);
        let far = jobs.get(far).await.unwrap().expect("the far job");
        assert_eq!(far.state, JobState::Scheduled);
        assert!(far.run_at.timestamp() > 4_000_000_000, "centuries ahead");
    })
    .await;
}

#[tokio::test]
async fn errors_keep_the_last_hundred_and_any_text() {
    with_jobs(|jobs, _| async move {
        let id = jobs.enqueue(&[job("q")]).await.unwrap()[0].id;
        let nasty = r#"x"},{"attempt":0,"at":0,"error":"y \ / ünï ✓"#;
        for _ in 0..105 {
            let claim = fetch(&jobs, "q", 1).await.pop().expect("due again at once");
            let retry = Finish {
                ticket: claim.ticket(),
                outcome: Outcome::Retry {
                    error: nasty.into(),
                    delay: Duration::ZERO,
                },
            };
            assert_eq!(jobs.finish(&[retry]).await.unwrap(), vec![true]);
        }

        let got = jobs.get(id).await.unwrap().unwrap();

        assert_eq!(
            got.state,
            JobState::Available,
            "a due retry reads as available"
        );
        assert_eq!(got.errors.len(), crate::model::MAX_ATTEMPTS_LIMIT as usize);
        assert_eq!(got.errors[0].attempt, 6, "the oldest five are gone");
        assert_eq!(got.errors[99].attempt, 105);
        assert!(got.errors.iter().all(|e| e.error == nasty));
        let long = "é".repeat(MAX_ERROR_CHARS + 10);
        let claim = fetch(&jobs, "q", 1).await.pop().unwrap();
        let fail = Finish {
            ticket: claim.ticket(),
            outcome: Outcome::Fail { error: long },
        };
        jobs.finish(&[fail]).await.unwrap();
        let dead = jobs.get(id).await.unwrap().unwrap();
        let last = &dead.errors.last().unwrap().error;
        assert_eq!(
            last.chars().count(),
            MAX_ERROR_CHARS,
            "cut at a character boundary"
        );
    })
    .await;
}

#[tokio::test]
async fn due_jobs_read_as_available_everywhere() {
    with_jobs(|jobs, _| async move {
        let mut soon = job("q");
        soon.delay = Duration::from_millis(150);
        let mut later = job("q");
        later.delay = Duration::from_secs(600);
        let ids: Vec<_> = jobs
            .enqueue(&[soon, later])
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let list = |state| {
            let jobs = jobs.clone();
            async move {
                let filter = ListFilter {
                    state: Some(state),
                    queue: Some("q".into()),
                    limit: 10,
                    before: None,
                };
                let found = jobs.list(&filter).await.unwrap();
                found.iter().map(|j| (j.id, j.state)).collect::<Vec<_>>()
            }
        };
        assert_eq!(list(JobState::Scheduled).await.len(), 2);
        assert!(list(JobState::Available).await.is_empty());

        tokio::time::sleep(Duration::from_millis(250)).await;

        assert_eq!(
            list(JobState::Available).await,
            vec![(ids[0], JobState::Available)]
        );
        assert_eq!(
            list(JobState::Scheduled).await,
            vec![(ids[1], JobState::Scheduled)]
        );
        let stats = jobs.stats().await.unwrap();
        let q = &stats[0];
        assert_eq!((q.scheduled, q.available), (1, 1));
        assert!(q.oldest_available_ms.is_some_and(|ms| ms >= 50));
    })
    .await;
}

#[tokio::test]
async fn finished_jobs_page_in_exact_id_order() {
    with_jobs(|jobs, _| async move {
        // Ids of the same millisecond share a score; the cursor must still split them exactly.
        let same_ms = id_from(Duration::from_secs(5));
        let ms = same_ms.0.get_timestamp().expect("v7").to_unix();
        let mut batch = Vec::new();
        for n in 0..30 {
            let mut new = job("q");
            if n % 2 == 0 {
                let ts = Timestamp::from_unix(uuid::NoContext, ms.0, ms.1);
                new.id = JobId(Uuid::new_v7(ts));
            }
            batch.push(new);
        }
        jobs.enqueue(&batch).await.unwrap();
        complete(&jobs, &fetch(&jobs, "q", 100).await).await;
        let mut expected: Vec<_> = batch.iter().map(|j| j.id).collect();
        expected.sort_by(|a, b| b.cmp(a));

        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let filter = ListFilter {
                state: Some(JobState::Completed),
                queue: None,
                limit: 4,
                before,
            };
            let page = jobs.list(&filter).await.unwrap();
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            seen.extend(page.iter().map(|j| j.id));
        }

        assert_eq!(seen, expected);
    })
    .await;
}

#[tokio::test]
async fn prune_keeps_old_jobs_that_finished_lately_and_works_in_chunks() {
    with_jobs(|jobs, _| async move {
        let mut old = job("q");
        old.id = id_from(Duration::from_secs(3600));
        let old = jobs.enqueue(&[old]).await.unwrap()[0].id;
        complete(&jobs, &fetch(&jobs, "q", 1).await).await;

        let minute = Duration::from_secs(60);
        assert_eq!(jobs.prune(minute, minute).await.unwrap(), 0);
        assert!(jobs.get(old).await.unwrap().is_some(), "finished just now");

        let many = PRUNE_CHUNK as usize * 2 + 100;
        let batch: Vec<_> = (0..many).map(|_| job("bulk")).collect();
        jobs.enqueue(&batch).await.unwrap();
        loop {
            let claims = fetch(&jobs, "bulk", 1000).await;
            if claims.is_empty() {
                break;
            }
            complete(&jobs, &claims).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let pruned = jobs.prune(Duration::ZERO, Duration::ZERO).await.unwrap();
        assert_eq!(pruned, many as u64 + 1);
        let stats = jobs.stats().await.unwrap();
        let bulk = stats.iter().find(|s| s.queue == "bulk").unwrap();
        assert_eq!((bulk.completed, bulk.completed_total), (0, many as u64));
    })
    .await;
}

#[tokio::test]
async fn cancelled_running_job_is_not_reclaimed() {
    with_jobs(|jobs, _| async move {
        let id = jobs.enqueue(&[job("q")]).await.unwrap()[0].id;
        let request = FetchRequest {
            queue: "q",
            max: 1,
            lease: Duration::from_millis(50),
            worker: "test",
            max_attempts: 5,
        };
        jobs.fetch(&request).await.unwrap();
        jobs.cancel(id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;

        assert!(jobs.fetch(&request).await.unwrap().is_empty());
        let stats = jobs.stats().await.unwrap();
        assert_eq!((stats[0].lease_expiries_total, stats[0].cancelled), (0, 1));
        let revived = jobs.retry(id).await.unwrap();
        assert_eq!(revived.state, JobState::Available);
        let again = jobs.fetch(&request).await.unwrap();
        assert_eq!(again.len(), 1);
        let dup = Unique {
            key: "k".into(),
            window: Duration::ZERO,
        };
        let (mut a, mut b) = (job("q"), job("q"));
        a.unique = Some(dup.clone());
        b.unique = Some(dup);
        let out = jobs.enqueue(&[a, b]).await.unwrap();
        assert!(
            out.iter().all(|e| e.inserted),
            "a zero window holds nothing"
        );
    })
    .await;
}

#[tokio::test]
async fn mixed_batches_keep_each_job_apart() {
    with_jobs(|jobs, _| async move {
        // Runs of equal options travel as groups; the boundaries must not leak options.
        let mut batch = Vec::new();
        for (queue, priority, delay_ms, max_attempts) in [
            ("a", 0, 0, None),
            ("a", 0, 0, None),
            ("a", 5, 0, Some(2)),
            ("b", 0, 0, None),
            ("a", 0, 60_000, None),
            ("a", 0, 0, None),
        ] {
            let mut new = job(queue);
            new.priority = priority;
            new.delay = Duration::from_millis(delay_ms);
            new.max_attempts = max_attempts;
            batch.push(new);
        }
        let ids: Vec<_> = jobs
            .enqueue(&batch)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();

        let a: Vec<_> = fetch(&jobs, "a", 10).await;
        let order: Vec<_> = a.iter().map(|c| c.id).collect();
        assert_eq!(order, vec![ids[2], ids[0], ids[1], ids[5]]);
        assert_eq!(a[0].max_attempts, Some(2));
        assert!(a[1..].iter().all(|c| c.max_attempts.is_none()));
        assert_eq!(fetch(&jobs, "b", 10).await.len(), 1);
        let later = jobs.get(ids[4]).await.unwrap().unwrap();
        assert_eq!(
            (later.state, later.queue.as_str()),
            (JobState::Scheduled, "a")
        );

        // A ticket named twice in one call counts once.
        let twice = [a[0].ticket(), a[0].ticket()];
        let done: Vec<_> = twice
            .iter()
            .map(|t| Finish {
                ticket: *t,
                outcome: Outcome::Completed,
            })
            .collect();
        assert_eq!(jobs.finish(&done).await.unwrap(), vec![true, false]);
        assert_eq!(
            jobs.release(&[a[1].ticket(), a[1].ticket()]).await.unwrap(),
            vec![true, false]
        );
        let stats = jobs.stats().await.unwrap();
        let q = stats.iter().find(|s| s.queue == "a").unwrap();
        assert_eq!((q.completed_total, q.running, q.available), (1, 2, 1));
    })
    .await;
}

/// The wake-up connection of this test, found by its name.
async fn listener_ids(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .expect("client list");
    list.lines()
        .filter(|line| line.contains(&format!(" name={name} ")))
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn wakeups_survive_a_killed_connection_and_stop_with_their_guard() {
    with_jobs(|jobs, url| async move {
        let name = format!("helix-jobs-test-{}", Uuid::new_v4().simple());
        let endpoint = Endpoint::parse(&url).unwrap();
        let channel = format!("{}jobs:wake", jobs.prefix);
        let mut wake = wake::listen(&endpoint, channel, &name)
            .await
            .expect("listen");
        let mut conn = connection(&url).await;
        let ids = listener_ids(&mut conn, &name).await;
        assert_eq!(ids.len(), 1, "one dedicated connection");

        let () = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&ids[0])
            .query_async(&mut conn)
            .await
            .expect("kill");
        let bumped = tokio::time::timeout(Duration::from_secs(10), wake.rx.changed()).await;
        assert!(matches!(bumped, Ok(Ok(()))), "one hint after reconnecting");
        let again = listener_ids(&mut conn, &name).await;
        assert_eq!(again.len(), 1);
        assert_ne!(again, ids, "a new connection");

        jobs.enqueue(&[job("q")]).await.unwrap();
        let bumped = tokio::time::timeout(Duration::from_secs(10), wake.rx.changed()).await;
        assert!(
            matches!(bumped, Ok(Ok(()))),
            "hints flow on the new connection"
        );

        drop(wake);
        let mut gone = false;
        for _ in 0..50 {
            if listener_ids(&mut conn, &name).await.is_empty() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "dropping the guard closes the connection");
    })
    .await;
}
