//! The fixture of the conformance suite: a private job backend per test (a Redis key prefix, a
//! PostgreSQL schema or a temporary SQLite file, cleaned up afterwards), job builders, and the
//! macro that declares each test once per engine.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use helix_jobs::{open, Claim, FetchRequest, JobBackend, JobId, NewJob, Target};
use helix_store::{Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};

pub const PG_ENV: &str = "HELIX_TEST_DATABASE_URL";
pub const REDIS_ENV: &str = "HELIX_TEST_REDIS_URL";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Engine {
    Redis,
    Postgres,
    Sqlite,
}

/// One test's private backend, and how to open another handle on the same jobs (a second worker
/// process, say).
#[derive(Clone)]
pub struct Fx {
    pub jobs: Arc<dyn JobBackend>,
    store: Option<Arc<dyn Store>>,
    redis: Option<(String, String)>,
}

impl Fx {
    /// A second backend handle on the same jobs, as another process would open it.
    pub async fn reopen(&self) -> Arc<dyn JobBackend> {
        match (&self.redis, &self.store) {
            (Some((url, prefix)), _) => open(Target::Redis { url, prefix }).await.expect("open"),
            (None, Some(store)) => open(Target::Store(store.clone())).await.expect("open"),
            (None, None) => unreachable!("a fixture has a target"),
        }
    }
}

/// Run `test` on a fresh backend of `engine`, then clean up even if it panicked. Skips (with a
/// note) the Redis and PostgreSQL variants when their variable is unset.
pub async fn run<F, Fut>(engine: Engine, test: F)
where
    F: FnOnce(Fx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut _dir = None;
    let mut schema = None;
    let fx = match engine {
        Engine::Redis => {
            let Ok(url) = std::env::var(REDIS_ENV) else {
                eprintln!("note: {REDIS_ENV} is unset; skipping the Redis variant");
                return;
            };
            let prefix = format!("helix_test_{tag}:");
            let jobs = open(Target::Redis {
                url: &url,
                prefix: &prefix,
            })
            .await
            .expect("open redis jobs");
            Fx {
                jobs,
                store: None,
                redis: Some((url, prefix)),
            }
        }
        Engine::Postgres => {
            let Ok(url) = std::env::var(PG_ENV) else {
                eprintln!("note: {PG_ENV} is unset; skipping the PostgreSQL variant");
                return;
            };
            let name = format!("helix_test_{tag}");
            schema = Some((url.clone(), name.clone()));
            store_fx(&url, Some(name)).await
        }
        Engine::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("helix.db").display());
            _dir = Some(dir);
            store_fx(&url, None).await
        }
    };
    let redis = fx.redis.clone();
    // Why a task: a panic inside it comes back as a JoinError, so the cleanup below still runs.
    let outcome = tokio::spawn(test(fx)).await;
    if let Some((url, name)) = schema {
        let mut conn = PgConnection::connect(&url).await.expect("postgres");
        let sql = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
        conn.execute(sql.as_str()).await.expect("drop schema");
    }
    if let Some((url, prefix)) = redis {
        drop_redis_keys(&url, &prefix).await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn store_fx(url: &str, schema: Option<String>) -> Fx {
    let options = StoreOptions {
        max_connections: 8,
        schema,
        ..StoreOptions::default()
    };
    let store = helix_store::open(url, &options).await.expect("open store");
    store.migrate().await.expect("migrate");
    let jobs = open(Target::Store(store.clone())).await.expect("open jobs");
    Fx {
        jobs,
        store: Some(store),
        redis: None,
    }
}

async fn drop_redis_keys(url: &str, prefix: &str) {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .expect("del");
    }
}

/// A job of kind `noop` on `queue`, available now.
pub fn job(queue: &str, payload: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        kind: "noop".into(),
        queue: queue.into(),
        payload: payload.into(),
        priority: 0,
        delay: Duration::ZERO,
        max_attempts: None,
        timeout: None,
        unique: None,
    }
}

pub const LONG: Duration = Duration::from_secs(60);

/// Fetch up to `max` jobs of `queue` under a long lease, with 5 attempts as the queue default.
pub async fn fetch(jobs: &dyn JobBackend, queue: &str, max: u32) -> Vec<Claim> {
    fetch_with(jobs, queue, max, LONG).await
}

pub async fn fetch_with(
    jobs: &dyn JobBackend,
    queue: &str,
    max: u32,
    lease: Duration,
) -> Vec<Claim> {
    jobs.fetch(&FetchRequest {
        queue,
        max,
        lease,
        worker: "test-worker",
        max_attempts: 5,
    })
    .await
    .expect("fetch")
}

/// Enqueue one job and return its id.
pub async fn add(jobs: &dyn JobBackend, new: NewJob) -> JobId {
    let out = jobs.enqueue(&[new]).await.expect("enqueue");
    assert_eq!(out.len(), 1);
    out[0].id
}

/// Declare each contract test three times: `redis::<name>`, `postgres::<name>`, `sqlite::<name>`.
macro_rules! on_every_engine {
    ($($test:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::support::run(crate::support::Engine::Redis, super::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::support::run(crate::support::Engine::Postgres, super::$test).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::support::run(crate::support::Engine::Sqlite, super::$test).await;
                }
            )*
        }
    };
}
