//! The SQLite store: [`SqliteStore`] on a `sqlx::SqlitePool`, the embedded default.
//!
//! Owns the SQLite dialect of every query and its migrator; the accounts (`accounts.rs`,
//! `sessions.rs`, `keys.rs`), the audit log (`audit.rs`), conversations, UCF samples, usage
//! (`usage.rs`), subscriptions (`subscriptions.rs`), the agents with their tasks (`agents.rs`) and
//! the Discord interaction log (`discord.rs`) live in submodules. The file (and its directory) is
//! created if missing; connections use WAL (readers do not block the writer), enforce foreign keys
//! (the cascades rely on it), and wait up to [`BUSY_TIMEOUT`] for the single write lock instead of
//! failing at once.

mod accounts;
mod agents;
mod audit;
mod conversations;
mod discord;
mod keys;
mod sessions;
mod subscriptions;
mod ucf;
mod usage;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Connection, Executor, Sqlite, SqliteConnection, Transaction};

use crate::audit::{AuditEvent, AuditLog};
use crate::connect::{is_transport_error, Attempts};
use crate::migrations::{self, Migration, SQLITE};
use crate::{
    Accounts, Backend, Conversations, MigrationReport, MigrationStatus, Store, StoreError,
    StoreOptions,
};

/// How long a writer waits for another connection's write lock (also another process's).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const TRACKING_TABLE: &str = "CREATE TABLE IF NOT EXISTS helix_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL
)";

pub(crate) struct SqliteStore {
    pool: SqlitePool,
    /// One connection for write transactions. Why: SQLite has a single write lock, and writers of
    /// one process waiting in its busy handler poll with growing sleeps (tails of seconds under
    /// load); waiting for this pool's one connection is a fair async queue instead. Another process
    /// (a CLI command) still waits in the busy handler.
    writer: SqlitePool,
    /// The path as given, for `describe` and errors.
    path: String,
}

impl SqliteStore {
    pub(crate) async fn open(path: PathBuf, options: &StoreOptions) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        create_parent_dir(&path, &shown).await?;
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let attempts = Attempts {
            target: &shown,
            secrets: &[],
            retryable,
        };
        let pool = attempts
            .run(options, || {
                SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.connect_timeout)
                    .connect_with(connect.clone())
            })
            .await?;
        // A queue of writers is expected here: they wait up to the busy timeout, as before.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_lazy_with(connect);
        Ok(Self {
            pool,
            writer,
            path: shown,
        })
    }

    fn err(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        |e| StoreError::from_sqlx(e, &self.path)
    }

    /// A write transaction. Why IMMEDIATE: it takes SQLite's single write lock at `BEGIN` (waiting
    /// up to [`BUSY_TIMEOUT`]), so what the transaction reads (the audit head, a token's state)
    /// cannot change before it commits; a deferred one would fail with SQLITE_BUSY at its first
    /// write instead of waiting, whenever another writer committed since its read.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.err())
    }

    /// Check and apply inside the caller's `BEGIN IMMEDIATE` transaction. A failing migration is
    /// rolled back to its savepoint and returned as the error next to the report of those before
    /// it, which the caller still commits (as PostgreSQL keeps the ones already committed).
    async fn migrate_in(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<(MigrationReport, Option<StoreError>), StoreError> {
        (&mut *conn)
            .execute(sqlx::raw_sql(TRACKING_TABLE))
            .await
            .map_err(self.err())?;
        let applied: Vec<(i64, String)> =
            sqlx::query_as("SELECT version, checksum FROM helix_migrations ORDER BY version")
                .fetch_all(&mut *conn)
                .await
                .map_err(self.err())?;
        let mut done = Vec::new();
        for m in migrations::pending(SQLITE, &applied)? {
            if let Err(e) = apply(conn, m).await {
                return Ok((migrations::report(&applied, done), Some(e)));
            }
            tracing::info!(version = m.version, name = m.name, "applied migration");
            done.push(m.version);
        }
        Ok((migrations::report(&applied, done), None))
    }
}

async fn create_parent_dir(path: &Path, shown: &str) -> Result<(), StoreError> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| StoreError::Unavailable {
            target: shown.to_string(),
            reason: format!("cannot create directory {}: {e}", parent.display()),
        })
}

/// I/O trouble, and SQLITE_BUSY / SQLITE_LOCKED (another process switching the file to WAL).
fn retryable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(e) => e
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        other => is_transport_error(other),
    }
}

/// One migration and its tracking row under one savepoint: both land or neither does.
async fn apply(conn: &mut SqliteConnection, m: &Migration) -> Result<(), StoreError> {
    let fail = |e: sqlx::Error| StoreError::Migration {
        version: m.version,
        reason: e.to_string(),
    };
    let mut savepoint = conn.begin().await.map_err(fail)?;
    (&mut *savepoint)
        .execute(sqlx::raw_sql(m.sql))
        .await
        .map_err(fail)?;
    sqlx::query(
        "INSERT INTO helix_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
    )
    .bind(m.version)
    .bind(m.name)
    .bind(m.checksum())
    .bind(Utc::now())
    .execute(&mut *savepoint)
    .await
    .map_err(fail)?;
    savepoint.commit().await.map_err(fail)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        // Why: IMMEDIATE takes SQLite's single write lock before we read `helix_migrations`, so a
        // second process blocks here (up to BUSY_TIMEOUT) instead of reading a stale list and
        // applying the same file twice. SQLite DDL is transactional: the check and every apply
        // commit together, and the waiting process then sees them all applied.
        let mut tx = self.write().await?;
        let (report, failure) = self.migrate_in(&mut tx).await?;
        tx.commit().await.map_err(self.err())?;
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StoreError> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'helix_migrations')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(self.err())?;
        let versions: Vec<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM helix_migrations")
                .fetch_all(&self.pool)
                .await
                .map_err(self.err())?
        } else {
            Vec::new()
        };
        Ok(migrations::status(SQLITE, &versions))
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM helix_meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())
    }

    async fn meta_put(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO helix_meta (key, value, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(Utc::now())
        .execute(&self.writer)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    async fn meta_put_audited(
        &self,
        key: &str,
        value: &str,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO helix_meta (key, value, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(Utc::now())
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        audit::append_in(&mut tx, audit).await.map_err(self.err())?;
        tx.commit().await.map_err(self.err())
    }

    fn accounts(&self) -> &dyn Accounts {
        self
    }

    fn audit(&self) -> &dyn AuditLog {
        self
    }

    fn conversations(&self) -> &dyn Conversations {
        self
    }

    fn ucf(&self) -> &dyn crate::UcfMetrics {
        self
    }

    fn usage(&self) -> &dyn crate::Usage {
        self
    }

    fn subscriptions(&self) -> &dyn crate::Subscriptions {
        self
    }

    fn webhooks(&self) -> &dyn crate::Webhooks {
        self
    }

    fn agents(&self) -> &dyn crate::Agents {
        self
    }

    fn discord(&self) -> &dyn crate::DiscordLog {
        self
    }

    fn pools(&self) -> crate::Pools {
        crate::Pools::Sqlite {
            read: self.pool.clone(),
            write: self.writer.clone(),
        }
    }

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

impl SqliteStore {
    /// One statement per attempt, all in one transaction (one commit).
    async fn update_webhook_attempts(
        &self,
        batch: &[(uuid::Uuid, crate::webhooks::AttemptRecord)],
    ) -> Result<Vec<String>, sqlx::Error> {
        let sql = format!(
            "UPDATE webhook_deliveries SET {}, status = $3, next_attempt_us = $4, \
             updated_us = $5 WHERE id = $1 AND status = 'pending'",
            crate::webhooks::attempt_set("json_insert(attempts, '$[#]', json($2))")
        );
        let mut tx = self.writer.begin().await?;
        let mut updated = Vec::new();
        for (id, record) in batch {
            let done = sqlx::query(&sql)
                .bind(id.to_string())
                .bind(serde_json::to_string(&record.attempt).unwrap_or_default())
                .bind(record.status.as_str())
                .bind(record.next_attempt_us)
                .bind(record.attempt.at_us)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() > 0 {
                updated.push(id.to_string());
            }
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// One multi-row `INSERT` (SQLite has no arrays to unnest); the ids it stored.
    async fn insert_webhook_events(
        &self,
        events: &[crate::webhooks::Event],
    ) -> Result<Vec<String>, sqlx::Error> {
        let sql = crate::webhooks::insert_events_sql(events.len());
        let mut query = sqlx::query_scalar(&sql);
        for e in events {
            query = query
                .bind(e.id.to_string())
                .bind(&e.source)
                .bind(&e.event_id)
                .bind(&e.event_type)
                .bind(&e.payload)
                .bind(e.received_us);
        }
        query.fetch_all(&self.writer).await
    }
}

crate::webhooks::webhook_row!(sqlx::sqlite::SqliteRow);
crate::webhooks::impl_webhooks!(SqliteStore, pool, writer);
