//! The fixture of the conformance suite: a private database per test (a temporary SQLite file or a
//! PostgreSQL schema dropped afterwards), raw access to it beside the store, and the macro that
//! declares each test once per backend.

use std::future::Future;
use std::sync::Arc;

use helix_store::{open, Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection, SqliteConnection};

pub const PG_ENV: &str = "HELIX_TEST_DATABASE_URL";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// One test's private database: what to pass to `open`, and how to reach it beside the store.
#[derive(Clone, Debug)]
pub struct Db {
    pub engine: Engine,
    pub url: String,
    pub schema: Option<String>,
}

impl Db {
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            max_connections: 4,
            schema: self.schema.clone(),
            ..StoreOptions::default()
        }
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        open(&self.url, &self.options()).await.expect("open")
    }

    pub async fn open_migrated(&self) -> Arc<dyn Store> {
        let store = self.open().await;
        store.migrate().await.expect("migrate");
        store
    }

    /// Run one statement as an operator with `psql` or `sqlite3` would, outside the store.
    pub async fn exec(&self, sql: &str) {
        match self.engine {
            Engine::Sqlite => self.sqlite().await.execute(sql).await.map(drop),
            Engine::Postgres => self.postgres().await.execute(sql).await.map(drop),
        }
        .expect(sql);
    }

    /// One integer from outside the store (a `COUNT(*)`, say).
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self.engine {
            Engine::Sqlite => {
                sqlx::query_scalar(sql)
                    .fetch_one(&mut self.sqlite().await)
                    .await
            }
            Engine::Postgres => {
                sqlx::query_scalar(sql)
                    .fetch_one(&mut self.postgres().await)
                    .await
            }
        }
        .expect(sql)
    }

    async fn sqlite(&self) -> SqliteConnection {
        SqliteConnection::connect(&self.url).await.expect("sqlite")
    }

    pub async fn postgres(&self) -> PgConnection {
        let mut conn = PgConnection::connect(&self.url).await.expect("postgres");
        let schema = self.schema.as_deref().expect("a test schema");
        conn.execute(format!("SET search_path TO {schema}").as_str())
            .await
            .expect("search_path");
        conn
    }
}

/// Run `test` on a fresh database of `engine`, then clean up even if it panicked.
pub async fn run<F, Fut>(engine: Engine, test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (db, _dir) = match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("helix.db").display());
            let db = Db {
                engine,
                url,
                schema: None,
            };
            (db, Some(dir))
        }
        Engine::Postgres => match std::env::var(PG_ENV) {
            Ok(url) => {
                let schema = format!("helix_test_{}", uuid::Uuid::new_v4().simple());
                let db = Db {
                    engine,
                    url,
                    schema: Some(schema),
                };
                (db, None)
            }
            Err(_) => {
                eprintln!("note: {PG_ENV} is unset; skipping the PostgreSQL variant");
                return;
            }
        },
    };
    // Why a task: a panic inside it comes back as a JoinError, so the cleanup below still runs.
    let outcome = tokio::spawn(test(db.clone())).await;
    if let Some(schema) = &db.schema {
        let mut conn = PgConnection::connect(&db.url).await.expect("postgres");
        let drop_schema = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        conn.execute(drop_schema.as_str())
            .await
            .expect("drop schema");
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declare each contract test twice: `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::support::run(crate::support::Engine::Sqlite, super::$test).await;
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
    };
}
