//! A private job backend for one measurement: a Redis key prefix, a PostgreSQL schema (created
//! and migrated) or a SQLite file in a temporary directory, each named `helix_bench_<uuid>`.
//!
//! A [`Fixture`] is only a name; [`Fixture::open`] connects in the calling runtime, so a worker on
//! a runtime of its own (or in another process, [`Fixture::attach`]) has connections of its own.
//! [`with_fixture`] removes everything afterwards, also when the measurement failed: the prefixed
//! keys are deleted (never anything else), the schema dropped, the directory removed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use helix_jobs::{JobBackend, QueueStats, Target};
use helix_store::{Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};

use super::{BackendArgs, Engine};

/// Every job of the benchmark goes to this queue (the kinds' default).
pub const QUEUE: &str = "default";

/// One measurement's private backend, by name.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub engine: Engine,
    /// The Redis or database URL (`sqlite://<dir>/jobs.db` for SQLite).
    pub url: String,
    /// The Redis key prefix or the PostgreSQL schema; `None` for SQLite.
    pub namespace: Option<String>,
    pub pool: u32,
    /// Keeps the SQLite directory alive while a clone exists.
    _dir: Option<Arc<tempfile::TempDir>>,
}

/// A backend open in this runtime, and the store behind it (closed by [`Opened::close`]).
pub struct Opened {
    pub backend: Arc<dyn JobBackend>,
    store: Option<Arc<dyn Store>>,
}

impl Opened {
    pub async fn close(self) {
        if let Some(store) = self.store {
            store.close().await;
        }
    }

    /// The counts of the benchmark's queue.
    pub async fn queue_stats(&self) -> Result<QueueStats> {
        let all = self.backend.stats().await.context("job backend stats")?;
        Ok(all
            .into_iter()
            .find(|q| q.queue == QUEUE)
            .unwrap_or_default())
    }
}

impl Fixture {
    /// A new private backend (the schema or file created and migrated).
    pub async fn create(args: &BackendArgs) -> Result<Fixture> {
        let name = format!("helix_bench_{}", uuid::Uuid::new_v4().simple());
        let fixture = match args.backend {
            Engine::Redis => Fixture::attach(
                Engine::Redis,
                args.redis_url.clone(),
                Some(format!("{name}:")),
                args.pool,
            ),
            Engine::Postgres => Fixture::attach(
                Engine::Postgres,
                args.database_url.clone(),
                Some(name),
                args.pool,
            ),
            Engine::Sqlite => {
                let dir = tempfile::Builder::new().prefix(&name).tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
                Fixture {
                    _dir: Some(Arc::new(dir)),
                    ..Fixture::attach(Engine::Sqlite, url, None, args.pool)
                }
            }
        };
        fixture.prepare().await?;
        Ok(fixture)
    }

    /// A fixture another process created (the kill test's workers).
    pub fn attach(engine: Engine, url: String, namespace: Option<String>, pool: u32) -> Fixture {
        Fixture {
            engine,
            url,
            namespace,
            pool,
            _dir: None,
        }
    }

    /// Migrate a store, or check Redis answers.
    async fn prepare(&self) -> Result<()> {
        match self.engine {
            Engine::Redis => {
                let opened = self.open().await?;
                opened.backend.ping().await.context("redis ping")?;
                Ok(())
            }
            Engine::Postgres | Engine::Sqlite => {
                let store = self.open_store().await?;
                let migrated = store.migrate().await;
                store.close().await;
                migrated
                    .map(drop)
                    .context("migrating the benchmark's store")
            }
        }
    }

    async fn open_store(&self) -> Result<Arc<dyn Store>> {
        let options = StoreOptions {
            max_connections: self.pool,
            schema: self
                .namespace
                .clone()
                .filter(|_| self.engine == Engine::Postgres),
            ..StoreOptions::default()
        };
        helix_store::open(&self.url, &options)
            .await
            .with_context(|| format!("opening the {} store", self.engine.as_str()))
    }

    /// Connect in the calling runtime.
    pub async fn open(&self) -> Result<Opened> {
        if self.engine == Engine::Redis {
            let prefix = self.namespace.as_deref().unwrap_or_default();
            let target = Target::Redis {
                url: &self.url,
                prefix,
            };
            let backend = helix_jobs::open(target)
                .await
                .context("opening redis jobs")?;
            return Ok(Opened {
                backend,
                store: None,
            });
        }
        let store = self.open_store().await?;
        let backend = helix_jobs::open(Target::Store(store.clone()))
            .await
            .context("opening the jobs of the store")?;
        Ok(Opened {
            backend,
            store: Some(store),
        })
    }

    /// Remove the prefixed keys, the schema or the directory.
    pub async fn cleanup(self) -> Result<()> {
        match (self.engine, &self.namespace) {
            (Engine::Redis, Some(prefix)) => delete_keys(&self.url, prefix).await,
            (Engine::Postgres, Some(schema)) => drop_schema(&self.url, schema).await,
            _ => Ok(()),
        }
    }
}

/// Run `body` on a fresh fixture, then clean up whatever `body` returned.
pub async fn with_fixture<T, F, Fut>(args: &BackendArgs, body: F) -> Result<T>
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let fixture = Fixture::create(args).await?;
    let outcome = body(fixture.clone()).await;
    let cleaned = fixture.cleanup().await;
    match (outcome, cleaned) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(e), Ok(())) => Err(e),
        (Ok(_), Err(e)) => Err(e.context("cleaning up the benchmark's backend")),
        (Err(e), Err(clean)) => {
            eprintln!("helix-load: cleaning up failed as well: {clean:#}");
            Err(e)
        }
    }
}

/// Delete every key under `prefix` (SCAN + UNLINK: never a blocking KEYS, never FLUSH).
async fn delete_keys(url: &str, prefix: &str) -> Result<()> {
    if !prefix.starts_with("helix_bench_") || prefix.contains(['*', '?', '[']) {
        bail!("refusing to delete keys under {prefix:?}: not a benchmark prefix");
    }
    let client = redis::Client::open(url).context("redis url")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to redis for cleanup")?;
    let pattern = format!("{prefix}*");
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(5_000)
            .query_async(&mut conn)
            .await
            .context("redis SCAN")?;
        for chunk in keys.chunks(1_000) {
            let _: u64 = redis::cmd("UNLINK")
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .context("redis UNLINK")?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Drop the run's own schema, after its pools are closed.
async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    let plain = schema
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !schema.starts_with("helix_bench_") || !plain {
        return Err(anyhow!(
            "refusing to drop schema {schema:?}: not a benchmark schema"
        ));
    }
    let mut conn = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url))
        .await
        .context("connecting to postgres for cleanup: timed out")?
        .context("connecting to postgres for cleanup")?;
    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    conn.execute(sql.as_str())
        .await
        .context("dropping the schema")?;
    conn.close().await.ok();
    Ok(())
}
