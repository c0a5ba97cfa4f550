//! Schedules and the beat, on SQLite always and on PostgreSQL when `HELIX_TEST_DATABASE_URL` is
//! set (a private schema per test, dropped afterwards). Time is never read from a clock: each test
//! passes the instants it wants to `add`, `resume` and `Beat::tick`, so the scheduler is driven
//! deterministically across due times, restarts and outages. Jobs are checked through the job
//! backend of the same database (`JobBackend::list` and `stats`).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use helix_jobs::schedule::{
    self, Beat, Cadence, CatchUp, Fired, NewSchedule, Schedule, ScheduleError, SchedulePatch,
    ScheduleStore,
};
use helix_jobs::{JobBackend, JobId, JobState, ListFilter, NewJob, Target, Unique};
use helix_store::{Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};
use tokio_util::sync::CancellationToken;

const PG_ENV: &str = "HELIX_TEST_DATABASE_URL";

/// One test's private database, and how to open more handles on it (another beat process).
#[derive(Clone)]
struct Db {
    url: String,
    schema: Option<String>,
}

/// What one process holds: its store, the schedule table and the job backend on it.
#[derive(Clone)]
struct Node {
    store: Arc<dyn Store>,
    schedules: Arc<dyn ScheduleStore>,
    jobs: Arc<dyn JobBackend>,
}

impl Node {
    fn beat(&self) -> Beat {
        Beat::new(self.schedules.clone(), self.jobs.clone())
    }
}

impl Db {
    /// A new process on the same database, with its own pools.
    async fn node(&self) -> Node {
        let options = StoreOptions {
            max_connections: 4,
            schema: self.schema.clone(),
            ..StoreOptions::default()
        };
        let store = helix_store::open(&self.url, &options)
            .await
            .expect("open store");
        store.migrate().await.expect("migrate");
        let jobs = helix_jobs::open(Target::Store(store.clone()))
            .await
            .expect("open jobs");
        let schedules = schedule::open(&*store);
        Node {
            store,
            schedules,
            jobs,
        }
    }
}

#[derive(Clone, Copy)]
enum Engine {
    Sqlite,
    Postgres,
}

/// Run `test` on a fresh database, then clean up even if it panicked.
async fn run<F, Fut>(engine: Engine, test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut _dir = None;
    let db = match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("helix.db").display());
            _dir = Some(dir);
            Db { url, schema: None }
        }
        Engine::Postgres => {
            let Ok(url) = std::env::var(PG_ENV) else {
                eprintln!("note: {PG_ENV} is unset; skipping the PostgreSQL variant");
                return;
            };
            let schema = format!("helix_test_{}", uuid::Uuid::new_v4().simple());
            Db {
                url,
                schema: Some(schema),
            }
        }
    };
    // Why a task: a panic inside it comes back as a JoinError, so the cleanup below still runs.
    let outcome = tokio::spawn(test(db.clone())).await;
    if let Some(schema) = &db.schema {
        let mut conn = PgConnection::connect(&db.url).await.expect("postgres");
        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        conn.execute(sql.as_str()).await.expect("drop schema");
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declare each test twice: `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_every_engine {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::run(crate::Engine::Sqlite, super::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::run(crate::Engine::Postgres, super::$test).await;
                }
            )*
        }
    };
}

on_every_engine!(
    adds_lists_and_removes,
    refuses_a_taken_name,
    refuses_bad_input_with_clear_errors,
    computes_first_fire_times_in_utc,
    advance_is_a_compare_and_set,
    pause_and_resume,
    updates_a_definition_in_place,
    due_reads_active_schedules_in_order,
    fires_each_due_time_once,
    a_cron_schedule_keeps_local_time_across_daylight_saving,
    two_beats_fire_each_due_time_exactly_once,
    a_restart_across_due_times_follows_the_catch_up_policy,
    a_crash_between_enqueue_and_advance_makes_no_second_job,
    a_paused_schedule_never_fires_and_a_resumed_one_does_not_flood,
    a_failed_enqueue_moves_nothing,
    run_fires_on_the_real_clock_and_stops_on_shutdown,
);

// ---- helpers -----------------------------------------------------------------------------------

/// A fixed origin for made-up instants.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

fn secs(s: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(s)
}

fn every(name: &str, period: u64, catch_up: CatchUp) -> NewSchedule {
    let mut new = NewSchedule::new(
        name,
        "report.build",
        Cadence::Every(Duration::from_secs(period)),
    );
    new.queue = format!("q-{name}");
    new.payload = format!(r#"{{"schedule":"{name}"}}"#);
    new.catch_up = catch_up;
    new
}

/// Every job of one queue, oldest first.
async fn jobs_of(jobs: &dyn JobBackend, queue: &str) -> Vec<helix_jobs::Job> {
    let filter = ListFilter {
        queue: Some(queue.to_string()),
        limit: 1_000,
        ..ListFilter::default()
    };
    let mut list = jobs.list(&filter).await.expect("list jobs");
    list.reverse();
    list
}

fn key(name: &str, fire_at: DateTime<Utc>) -> String {
    format!("schedule:{name}:{}", fire_at.timestamp_millis())
}

async fn get(node: &Node, name: &str) -> Schedule {
    node.schedules
        .get(name)
        .await
        .expect("get")
        .expect("exists")
}

// ---- the table ---------------------------------------------------------------------------------

async fn adds_lists_and_removes(db: Db) {
    let node = db.node().await;
    let s = &node.schedules;
    let cron = NewSchedule::new(
        "nightly.cleanup",
        "cleanup",
        Cadence::cron("0 3 * * *", Some("Europe/Paris")).unwrap(),
    );
    let added = s.add(cron, secs(0)).await.expect("add cron");
    s.add(every("a.every", 60, CatchUp::Skip), secs(0))
        .await
        .expect("add every");
    assert_eq!(s.get("nightly.cleanup").await.unwrap(), Some(added.clone()));
    let names: Vec<String> = s
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(names, ["a.every", "nightly.cleanup"]);

    let removed = s.remove("nightly.cleanup").await.expect("remove");
    assert_eq!(removed, added);
    assert_eq!(s.get("nightly.cleanup").await.unwrap(), None);
    let again = s.remove("nightly.cleanup").await.unwrap_err();
    assert!(matches!(again, ScheduleError::NotFound(_)), "{again}");
    assert_eq!(again.to_string(), "no schedule named \"nightly.cleanup\"");
    assert_eq!(s.list().await.unwrap().len(), 1);
}

async fn refuses_a_taken_name(db: Db) {
    let node = db.node().await;
    let s = &node.schedules;
    s.add(every("dup", 60, CatchUp::Skip), secs(0))
        .await
        .unwrap();
    let err = s
        .add(every("dup", 30, CatchUp::RunOnce), secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ScheduleError::Duplicate(_)), "{err}");
    assert_eq!(err.to_string(), "a schedule named \"dup\" already exists");
    // The first one is untouched.
    let kept = get(&node, "dup").await;
    assert_eq!(kept.cadence, Cadence::Every(Duration::from_secs(60)));
}

async fn refuses_bad_input_with_clear_errors(db: Db) {
    let node = db.node().await;
    let s = &node.schedules;
    let cron = |expr: &str, tz: &str| Cadence::Cron {
        expr: expr.into(),
        timezone: tz.into(),
    };
    let cases: Vec<(NewSchedule, &str)> = vec![
        (
            NewSchedule::new("c", "k", cron("* * *", "UTC")),
            "invalid cron expression \"* * *\": expected 5 fields",
        ),
        (
            NewSchedule::new("c", "k", cron("0 25 * * *", "UTC")),
            "invalid cron expression \"0 25 * * *\": ",
        ),
        (
            NewSchedule::new("c", "k", cron("0 9 * * *", "Europe/Atlantis")),
            "unknown time zone \"Europe/Atlantis\"",
        ),
        (
            NewSchedule::new("c", "k", cron("0 0 30 2 *", "UTC")),
            "cron expression \"0 0 30 2 *\" has no fire time after",
        ),
        (
            NewSchedule::new("Bad Name", "k", Cadence::Every(Duration::from_secs(5))),
            "invalid schedule name \"Bad Name\"",
        ),
        (
            NewSchedule::new("c", "k", Cadence::Every(Duration::ZERO)),
            "invalid interval 0s",
        ),
        (
            NewSchedule {
                payload: "{not json".into(),
                ..every("c", 5, CatchUp::Skip)
            },
            "invalid payload: not JSON",
        ),
        (
            NewSchedule {
                priority: 101,
                ..every("c", 5, CatchUp::Skip)
            },
            "invalid priority 101",
        ),
        (
            NewSchedule {
                queue: "no spaces".into(),
                ..every("c", 5, CatchUp::Skip)
            },
            "invalid queue name \"no spaces\"",
        ),
    ];
    for (new, expected) in cases {
        let err = s.add(new, secs(0)).await.unwrap_err();
        assert!(matches!(err, ScheduleError::Invalid(_)), "{err}");
        assert!(err.to_string().starts_with(expected), "{err}");
    }
    assert!(s.list().await.unwrap().is_empty());
}

async fn computes_first_fire_times_in_utc(db: Db) {
    let node = db.node().await;
    let s = &node.schedules;
    // Created between milliseconds: kept to the millisecond, and the interval counts from there.
    let created = secs(10) + TimeDelta::nanoseconds(123_456_789);
    let added = s
        .add(every("tick", 30, CatchUp::Skip), created)
        .await
        .unwrap();
    let ms = secs(10) + TimeDelta::milliseconds(123);
    assert_eq!(added.created_at, ms);
    assert_eq!(added.next_fire_at, ms + TimeDelta::seconds(30));
    assert_eq!(get(&node, "tick").await, added);

    // 09:00 in New York in January is 14:00 UTC; in July (daylight saving) 13:00 UTC.
    let cron = |name: &str| {
        NewSchedule::new(
            name,
            "k",
            Cadence::cron("0 9 * * *", Some("America/New_York")).unwrap(),
        )
    };
    let winter = s.add(cron("winter"), secs(0)).await.unwrap();
    assert_eq!(
        winter.next_fire_at,
        Utc.with_ymd_and_hms(2030, 1, 1, 14, 0, 0).unwrap()
    );
    let july = Utc.with_ymd_and_hms(2030, 7, 1, 0, 0, 0).unwrap();
    let summer = s.add(cron("summer"), july).await.unwrap();
    assert_eq!(
        summer.next_fire_at,
        Utc.with_ymd_and_hms(2030, 7, 1, 13, 0, 0).unwrap()
    );
    assert_eq!(get(&node, "summer").await, summer);
}

async fn advance_is_a_compare_and_set(db: Db) {
    let node = db.node().await;
    let s = &node.schedules;
    s.add(every("cas", 60, CatchUp::Skip), secs(0))
        .await
        .unwrap();
    let fired = schedule::FireRecord {
        fire_at: secs(60),
        job: JobId::new(),
    };
    assert!(s
        .advance("cas", secs(60), secs(120), Some(fired))
        .await
        .unwrap());
    // The same expected value again: somebody moved it already.
    assert!(!s
        .advance("cas", secs(60), secs(999), Some(fired))
        .await
        .unwrap());
    let now = get(&node, "cas").await;
    assert_eq!(now.next_fire_at, secs(120));
    assert_eq!(now.last_fire_at, Some(secs(60)));
    assert_eq!(now.last_job, Some(fired.job));
    // A skip moves it without touching the record of the last job.
    assert!(s.advance("cas", secs(120), secs(240), None).await.unwrap());
    let now = get(&node, "cas").await;
    assert_eq!(
        (now.next_fire_at, now.last_fire_at),
        (secs(240), Some(secs(60)))
    );
    // A paused or unknown schedule is never moved.
    s.pause("cas", secs(200)).await.unwrap();
    assert!(!s.advance("cas", secs(240), secs(300), None).await.unwrap());
    assert!(!s.advance("nope", secs(240), secs(300), None).await.unwrap());
}

async fn pause_and_resume(db: Db) {
    let node = db.node().await;
    let s = &node.schedules;
    let added = s
        .add(every("p", 60, CatchUp::RunOnce), secs(0))
        .await
        .unwrap();
    let paused = s.pause("p", secs(30)).await.unwrap();
    assert!(paused.paused);
    assert_eq!(paused.updated_at, secs(30));
    // Idempotent: a second pause changes nothing.
    assert_eq!(s.pause("p", secs(40)).await.unwrap(), paused);
    assert!(s.due(secs(10_000), 10).await.unwrap().is_empty());
    assert_eq!(s.earliest().await.unwrap(), None);

    // Resumed long after: the next fire time is the first after the resume, on the same phase.
    let resumed = s.resume("p", secs(10_030)).await.unwrap();
    assert!(!resumed.paused);
    assert_eq!(resumed.next_fire_at, secs(10_080));
    assert_eq!(resumed.updated_at, secs(10_030));
    assert_eq!(resumed.created_at, added.created_at);
    assert_eq!(get(&node, "p").await, resumed);
    // Idempotent on an active schedule.
    assert_eq!(s.resume("p", secs(20_000)).await.unwrap(), resumed);
    assert_eq!(s.earliest().await.unwrap(), Some(secs(10_080)));

    for err in [
        s.pause("ghost", secs(0)).await.unwrap_err(),
        s.resume("ghost", secs(0)).await.unwrap_err(),
    ] {
        assert!(matches!(err, ScheduleError::NotFound(_)), "{err}");
    }
}

async fn updates_a_definition_in_place(db: Db) {
    let node = db.node().await;
    let s = &node.schedules;
    let added = s.add(every("u", 60, CatchUp::Skip), secs(0)).await.unwrap();
    // A payload edit keeps the fire time: nothing is skipped or repeated.
    let patch = SchedulePatch {
        payload: Some(r#"{"v":2}"#.into()),
        priority: Some(-5),
        ..SchedulePatch::default()
    };
    let edited = s.update("u", &patch, secs(30)).await.unwrap();
    assert_eq!(
        (edited.payload.as_str(), edited.priority),
        (r#"{"v":2}"#, -5)
    );
    assert_eq!(edited.next_fire_at, added.next_fire_at);
    assert_eq!(edited.updated_at, secs(30));
    assert_eq!(get(&node, "u").await, edited);

    // A new cadence starts from its first fire time after the edit.
    let patch = SchedulePatch {
        cadence: Some(Cadence::cron("0 12 * * *", Some("Asia/Tokyo")).unwrap()),
        catch_up: Some(CatchUp::RunOnce),
        ..SchedulePatch::default()
    };
    let edited = s.update("u", &patch, secs(45)).await.unwrap();
    // 12:00 in Tokyo (UTC+9) is 03:00 UTC.
    assert_eq!(edited.next_fire_at, secs(3 * 3600));
    assert_eq!(edited.catch_up, CatchUp::RunOnce);
    assert_eq!(get(&node, "u").await, edited);

    // Bad input is refused and changes nothing.
    let patch = SchedulePatch {
        cadence: Some(Cadence::Cron {
            expr: "0 12 * * *".into(),
            timezone: "Tokyo".into(),
        }),
        ..SchedulePatch::default()
    };
    let err = s.update("u", &patch, secs(50)).await.unwrap_err();
    assert!(
        err.to_string().starts_with("unknown time zone \"Tokyo\""),
        "{err}"
    );
    assert_eq!(get(&node, "u").await, edited);
    let err = s
        .update("ghost", &SchedulePatch::default(), secs(50))
        .await
        .unwrap_err();
    assert!(matches!(err, ScheduleError::NotFound(_)), "{err}");
}

async fn due_reads_active_schedules_in_order(db: Db) {
    let node = db.node().await;
    let s = &node.schedules;
    s.add(every("c", 30, CatchUp::Skip), secs(0)).await.unwrap();
    s.add(every("a", 10, CatchUp::Skip), secs(0)).await.unwrap();
    s.add(every("b", 10, CatchUp::Skip), secs(0)).await.unwrap();
    s.add(every("z", 20, CatchUp::Skip), secs(0)).await.unwrap();
    s.pause("z", secs(0)).await.unwrap();
    let names = |list: Vec<Schedule>| list.into_iter().map(|x| x.name).collect::<Vec<_>>();
    assert!(s.due(secs(9), 10).await.unwrap().is_empty());
    assert_eq!(names(s.due(secs(10), 10).await.unwrap()), ["a", "b"]);
    assert_eq!(names(s.due(secs(30), 10).await.unwrap()), ["a", "b", "c"]);
    assert_eq!(names(s.due(secs(30), 2).await.unwrap()), ["a", "b"]);
    assert_eq!(s.earliest().await.unwrap(), Some(secs(10)));
}

// ---- the beat ----------------------------------------------------------------------------------

async fn fires_each_due_time_once(db: Db) {
    let node = db.node().await;
    node.schedules
        .add(
            NewSchedule {
                priority: 7,
                ..every("f", 60, CatchUp::Skip)
            },
            secs(0),
        )
        .await
        .unwrap();
    let beat = node.beat();
    assert!(beat.tick(secs(59)).await.unwrap().is_empty(), "not due yet");
    let mut expected = Vec::new();
    for k in 1..=5 {
        let due = secs(60 * k);
        // A little late each time, within the tolerance; and a second tick at the same instant
        // finds nothing more to do.
        let fired = beat.tick(due + TimeDelta::milliseconds(250)).await.unwrap();
        assert_eq!(fired.len(), 1);
        let f = &fired[0];
        assert_eq!(
            (f.fire_at, f.late, f.inserted, f.advanced),
            (due, false, true, true)
        );
        assert_eq!(f.next_fire_at, due + TimeDelta::seconds(60));
        assert!(beat
            .tick(due + TimeDelta::milliseconds(300))
            .await
            .unwrap()
            .is_empty());
        expected.push((f.job, key("f", due)));
    }
    let jobs = jobs_of(&*node.jobs, "q-f").await;
    let got: Vec<(JobId, String)> = jobs
        .iter()
        .map(|j| (j.id, j.unique_key.clone().unwrap()))
        .collect();
    assert_eq!(got, expected);
    let j = &jobs[0];
    assert_eq!(
        (j.kind.as_str(), j.payload.as_str(), j.priority, j.state),
        (
            "report.build",
            r#"{"schedule":"f"}"#,
            7,
            JobState::Available
        )
    );
    let s = get(&node, "f").await;
    assert_eq!(s.last_fire_at, Some(secs(300)));
    assert_eq!(s.last_job, Some(expected[4].0));
    let stats = node.jobs.stats().await.unwrap();
    let q = stats
        .iter()
        .find(|q| q.queue == "q-f")
        .expect("queue stats");
    assert_eq!(q.available, 5);
}

/// `0 9 * * *` in Paris fires at 08:00 UTC in winter and 07:00 UTC once summer time starts
/// (2030-03-31), one job per day.
async fn a_cron_schedule_keeps_local_time_across_daylight_saving(db: Db) {
    let node = db.node().await;
    let utc = |d: u32, h: u32| Utc.with_ymd_and_hms(2030, 3, d, h, 0, 0).unwrap();
    let cadence = Cadence::cron("0 9 * * *", Some("Europe/Paris")).unwrap();
    let mut new = NewSchedule::new("paris", "report.build", cadence);
    new.queue = "q-paris".into();
    let added = node.schedules.add(new, utc(29, 12)).await.unwrap();
    assert_eq!(added.next_fire_at, utc(30, 8));
    let beat = node.beat();
    for due in [utc(30, 8), utc(31, 7)] {
        assert!(beat
            .tick(due - TimeDelta::seconds(1))
            .await
            .unwrap()
            .is_empty());
        let fired = beat.tick(due).await.unwrap();
        assert_eq!((fired.len(), fired[0].fire_at), (1, due));
    }
    let next = Utc.with_ymd_and_hms(2030, 4, 1, 7, 0, 0).unwrap();
    assert_eq!(get(&node, "paris").await.next_fire_at, next);
    assert_eq!(jobs_of(&*node.jobs, "q-paris").await.len(), 2);
}

/// Two beat processes (each with its own pools) tick the same schedules, at the same instants
/// and concurrently, some of them late: each due time still makes exactly one job.
async fn two_beats_fire_each_due_time_exactly_once(db: Db) {
    let (a, b) = (db.node().await, db.node().await);
    for name in ["x", "y"] {
        a.schedules
            .add(every(name, 10, CatchUp::RunOnce), secs(0))
            .await
            .unwrap();
    }
    a.schedules
        .add(
            NewSchedule::new(
                "z",
                "report.build",
                Cadence::cron("*/10 * * * * *", Some("Asia/Kolkata")).unwrap(),
            ),
            secs(0),
        )
        .await
        .unwrap();
    let (beat_a, beat_b) = (a.beat(), b.beat());
    let rounds = 30;
    let mut inserted = Vec::new();
    for k in 1..=rounds {
        let due = secs(10 * k);
        // Beat B runs behind by 0 to 900 ms (always within the tolerance, so both want to fire).
        let lag = TimeDelta::milliseconds(300 * (k % 4));
        let (fa, fb) = tokio::join!(beat_a.tick(due), beat_b.tick(due + lag));
        let (fa, fb) = (fa.expect("beat a"), fb.expect("beat b"));
        let all: Vec<&Fired> = fa.iter().chain(&fb).collect();
        for name in ["x", "y", "z"] {
            let mine: Vec<&&Fired> = all.iter().filter(|f| f.schedule == name).collect();
            assert!(!mine.is_empty(), "round {k}: {name} fired by neither beat");
            assert!(mine.iter().all(|f| f.fire_at == due));
            assert_eq!(mine.iter().filter(|f| f.inserted).count(), 1, "round {k}");
            assert_eq!(mine.iter().filter(|f| f.advanced).count(), 1, "round {k}");
            let ids: BTreeSet<JobId> = mine.iter().map(|f| f.job).collect();
            assert_eq!(ids.len(), 1, "round {k}: both beats name the same job");
        }
        inserted.extend(all.iter().filter(|f| f.inserted).map(|f| f.job));
    }
    // The jobs, as either process's backend lists them: one per schedule and due time.
    let x = jobs_of(&*b.jobs, "q-x").await;
    assert_eq!(x.len(), rounds as usize);
    let keys: Vec<String> = x.iter().map(|j| j.unique_key.clone().unwrap()).collect();
    let expected: Vec<String> = (1..=rounds).map(|k| key("x", secs(10 * k))).collect();
    assert_eq!(keys, expected);
    let total: u64 = a
        .jobs
        .stats()
        .await
        .unwrap()
        .iter()
        .map(|q| q.available)
        .sum();
    assert_eq!(total, 3 * rounds as u64);
    assert_eq!(inserted.len(), 3 * rounds as usize);
    for name in ["x", "y", "z"] {
        assert_eq!(get(&a, name).await.next_fire_at, secs(10 * (rounds + 1)));
    }
}

/// A beat stops before a due time and a new one starts hours later: `skip` drops the missed run,
/// `run_once` fires it once; both then go on from the first fire time after the restart.
async fn a_restart_across_due_times_follows_the_catch_up_policy(db: Db) {
    let first = db.node().await;
    let hour = 3600;
    for (name, policy) in [("skip", CatchUp::Skip), ("once", CatchUp::RunOnce)] {
        first
            .schedules
            .add(every(name, hour, policy), secs(0))
            .await
            .unwrap();
    }
    let fired = first.beat().tick(secs(hour as i64)).await.unwrap();
    assert_eq!(fired.len(), 2, "both fire on time before the outage");
    first.store.close().await;
    drop(first);

    // Down from just after 01:00 to 05:30: the fire times 02:00 to 05:00 pass with no beat.
    let second = db.node().await;
    let beat = second.beat();
    let back = secs(5 * 3600 + 1800);
    let fired = beat.tick(back).await.unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    let once = &fired[0];
    assert_eq!(once.schedule, "once");
    assert!(once.late && once.inserted && once.advanced);
    assert_eq!(
        once.fire_at,
        secs(2 * 3600),
        "keyed by the first missed time"
    );
    for name in ["skip", "once"] {
        assert_eq!(get(&second, name).await.next_fire_at, secs(6 * 3600));
    }
    assert!(beat
        .tick(back + TimeDelta::seconds(1))
        .await
        .unwrap()
        .is_empty());

    // From there on, both fire on time again.
    let fired = beat.tick(secs(6 * 3600)).await.unwrap();
    assert_eq!(fired.len(), 2);
    assert!(fired.iter().all(|f| !f.late && f.fire_at == secs(6 * 3600)));
    assert_eq!(jobs_of(&*second.jobs, "q-skip").await.len(), 2);
    let once_keys: Vec<String> = jobs_of(&*second.jobs, "q-once")
        .await
        .into_iter()
        .map(|j| j.unique_key.unwrap())
        .collect();
    assert_eq!(
        once_keys,
        [
            key("once", secs(3600)),
            key("once", secs(2 * 3600)),
            key("once", secs(6 * 3600))
        ]
    );
}

/// A beat that enqueued a fire time's job and died before moving the schedule: the next pass
/// enqueues the same key, gets the same job, and moves the schedule on.
async fn a_crash_between_enqueue_and_advance_makes_no_second_job(db: Db) {
    let node = db.node().await;
    node.schedules
        .add(every("c", 60, CatchUp::RunOnce), secs(0))
        .await
        .unwrap();
    // What the dead beat had done: the enqueue, with the fire time's key.
    let orphan = NewJob {
        id: JobId::new(),
        kind: "report.build".into(),
        queue: "q-c".into(),
        payload: r#"{"schedule":"c"}"#.into(),
        priority: 0,
        delay: Duration::ZERO,
        max_attempts: None,
        timeout: None,
        unique: Some(Unique {
            key: key("c", secs(60)),
            window: schedule::MIN_UNIQUE_WINDOW,
        }),
    };
    let enqueued = node.jobs.enqueue(&[orphan]).await.unwrap();
    assert!(enqueued[0].inserted);

    // Restarted on time, and (separately) restarted late under run_once: same job either way.
    for now in [secs(60), secs(60 * 30)] {
        let s = get(&node, "c").await;
        assert_eq!(s.next_fire_at, secs(60));
        let fired = node.beat().tick(now).await.unwrap();
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].job, fired[0].inserted), (enqueued[0].id, false));
        assert!(fired[0].advanced);
        // Put the row back as the dead beat left it, for the second case.
        assert!(node
            .schedules
            .advance("c", fired[0].next_fire_at, secs(60), None)
            .await
            .unwrap());
    }
    assert_eq!(jobs_of(&*node.jobs, "q-c").await.len(), 1);
}

async fn a_paused_schedule_never_fires_and_a_resumed_one_does_not_flood(db: Db) {
    let node = db.node().await;
    let s = &node.schedules;
    s.add(every("p", 60, CatchUp::RunOnce), secs(0))
        .await
        .unwrap();
    let mut added_paused = every("q", 60, CatchUp::RunOnce);
    added_paused.paused = true;
    s.add(added_paused, secs(0)).await.unwrap();
    s.pause("p", secs(30)).await.unwrap();
    let beat = node.beat();
    for k in 1..=20 {
        assert!(beat.tick(secs(60 * k)).await.unwrap().is_empty());
    }
    assert!(jobs_of(&*node.jobs, "q-p").await.is_empty());
    assert!(jobs_of(&*node.jobs, "q-q").await.is_empty());

    // Resumed at 20:30 after 20 missed fire times: nothing at once, then one per due time.
    s.resume("p", secs(20 * 60 + 30)).await.unwrap();
    assert!(beat.tick(secs(20 * 60 + 31)).await.unwrap().is_empty());
    let fired = beat.tick(secs(21 * 60)).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].fire_at, fired[0].late), (secs(21 * 60), false));
    assert_eq!(jobs_of(&*node.jobs, "q-p").await.len(), 1);
}

async fn a_failed_enqueue_moves_nothing(db: Db) {
    let node = db.node().await;
    node.schedules
        .add(every("d", 60, CatchUp::RunOnce), secs(0))
        .await
        .unwrap();
    let beat = Beat::new(node.schedules.clone(), Arc::new(down::Down));
    let err = beat.tick(secs(60)).await.unwrap_err();
    assert!(matches!(err, ScheduleError::Jobs(_)), "{err}");
    assert_eq!(get(&node, "d").await.next_fire_at, secs(60));
    // The backend is back: the same due time fires.
    let fired = node.beat().tick(secs(60)).await.unwrap();
    assert_eq!((fired.len(), fired[0].fire_at), (1, secs(60)));
}

/// `run` on the real clock: a schedule whose fire time has passed fires (once, by `run_once`)
/// without anyone calling `tick`, and `run` returns when shut down.
async fn run_fires_on_the_real_clock_and_stops_on_shutdown(db: Db) {
    let node = db.node().await;
    let an_hour_ago = Utc::now() - TimeDelta::hours(1);
    node.schedules
        .add(every("r", 600, CatchUp::RunOnce), an_hour_ago)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(node.beat().run(shutdown.clone()));
    // Wait for the effect, not for a duration: up to 10 s in total only so a bug cannot hang CI.
    let mut jobs = Vec::new();
    for _ in 0..200 {
        jobs = jobs_of(&*node.jobs, "q-r").await;
        if !jobs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(jobs.len(), 1);
    shutdown.cancel();
    running.await.expect("run returns after shutdown");
    let s = get(&node, "r").await;
    assert!(s.next_fire_at > Utc::now() - TimeDelta::minutes(1));
    assert_eq!(jobs_of(&*node.jobs, "q-r").await.len(), 1, "no flood");
}

/// What the HTTP API and the CLI check before adding, when they hold the job kinds: a schedule
/// for an unknown kind, or with a payload that does not fit its kind, is refused.
#[test]
fn checks_the_kind_and_payload_against_the_registry() {
    let jobs = helix_jobs::Jobs::new(Arc::new(down::Down), Arc::new(helix_jobs::Registry::new()));
    let noop = |payload: &str| NewSchedule {
        payload: payload.into(),
        ..NewSchedule::new("n", "noop", Cadence::Every(Duration::from_secs(60)))
    };
    noop(r#"{"sleep_ms": 5}"#).check_job(&jobs).expect("fits");
    let err = noop(r#"{"sleep_ms": "soon"}"#)
        .check_job(&jobs)
        .unwrap_err();
    assert!(matches!(err, ScheduleError::Invalid(_)), "{err}");
    assert!(
        err.to_string()
            .starts_with("invalid payload does not fit noop"),
        "{err}"
    );
    let unknown = NewSchedule::new("n", "nope", Cadence::Every(Duration::from_secs(60)));
    let err = unknown.check_job(&jobs).unwrap_err();
    assert_eq!(err.to_string(), "unknown job kind \"nope\"");
}

/// A job backend that is down: every call fails.
mod down {
    use std::time::Duration;

    use async_trait::async_trait;
    use helix_jobs::{
        BackendKind, Claim, Enqueued, FetchRequest, Finish, Job, JobBackend, JobError, JobId,
        ListFilter, NewJob, QueueStats, Ticket, Wakeups,
    };

    pub struct Down;

    fn err() -> JobError {
        JobError::Unavailable {
            backend: "test".into(),
            reason: "down".into(),
        }
    }

    #[async_trait]
    impl JobBackend for Down {
        fn kind(&self) -> BackendKind {
            BackendKind::Sqlite
        }
        fn describe(&self) -> String {
            "down".into()
        }
        async fn ping(&self) -> Result<(), JobError> {
            Err(err())
        }
        async fn enqueue(&self, _: &[NewJob]) -> Result<Vec<Enqueued>, JobError> {
            Err(err())
        }
        async fn fetch(&self, _: &FetchRequest<'_>) -> Result<Vec<Claim>, JobError> {
            Err(err())
        }
        async fn extend(&self, _: &[Ticket], _: Duration) -> Result<Vec<bool>, JobError> {
            Err(err())
        }
        async fn finish(&self, _: &[Finish]) -> Result<Vec<bool>, JobError> {
            Err(err())
        }
        async fn release(&self, _: &[Ticket]) -> Result<Vec<bool>, JobError> {
            Err(err())
        }
        async fn get(&self, _: JobId) -> Result<Option<Job>, JobError> {
            Err(err())
        }
        async fn list(&self, _: &ListFilter) -> Result<Vec<Job>, JobError> {
            Err(err())
        }
        async fn cancel(&self, _: JobId) -> Result<Job, JobError> {
            Err(err())
        }
        async fn retry(&self, _: JobId) -> Result<Job, JobError> {
            Err(err())
        }
        async fn stats(&self) -> Result<Vec<QueueStats>, JobError> {
            Err(err())
        }
        async fn prune(&self, _: Duration, _: Duration) -> Result<u64, JobError> {
            Err(err())
        }
        async fn wakeups(&self) -> Result<Wakeups, JobError> {
            Err(err())
        }
    }
}
