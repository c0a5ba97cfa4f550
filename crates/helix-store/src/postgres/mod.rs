//! The PostgreSQL store: [`PgStore`] on a `sqlx::PgPool`.
//!
//! Owns the PostgreSQL dialect of every query and its migrator; the accounts (`accounts.rs`,
//! `sessions.rs`, `keys.rs`), the audit log (`audit.rs`), conversations, UCF samples, usage
//! (`usage.rs`), subscriptions (`subscriptions.rs`), the agents with their tasks (`agents.rs`) and
//! the Discord interaction log (`discord.rs`) live in submodules. With `StoreOptions::schema`, the
//! schema is created at open and is the only entry of every pooled connection's `search_path`, so
//! migrations and data live there (tests use this to isolate themselves in one database).

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

use async_trait::async_trait;
use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};

use crate::audit::{AuditEvent, AuditLog};
use crate::connect::{is_transport_error, Attempts};
use crate::migrations::{self, Migration, POSTGRES};
use crate::target::PgTarget;
use crate::{
    Accounts, Backend, Conversations, MigrationReport, MigrationStatus, Store, StoreError,
    StoreOptions,
};

const TRACKING_TABLE: &str = "CREATE TABLE IF NOT EXISTS helix_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)";

pub(crate) struct PgStore {
    pool: PgPool,
    /// `host:port/db`, never the user or password.
    location: String,
    schema: Option<String>,
    /// The advisory-lock key that serialises audit appends in this schema.
    audit_key: i64,
}

impl PgStore {
    /// Reach the server (bounded retry), create the schema if one is asked for, then pool.
    pub(crate) async fn open(target: PgTarget, options: &StoreOptions) -> Result<Self, StoreError> {
        let schema = options.schema.clone();
        let mut connect = target.connect;
        if let Some(s) = &schema {
            validate_schema(s)?;
            connect = connect.options([("search_path", quote_ident(s))]);
        }
        let attempts = Attempts {
            target: &target.location,
            secrets: &target.secrets,
            retryable,
        };
        // The first connection is made by hand rather than by the pool: the pool retries a
        // refused connection silently until its timeout and then reports only "timed out".
        attempts
            .run(options, || probe(&connect, schema.as_deref()))
            .await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.connect_timeout)
            .connect_lazy_with(connect);
        Ok(Self {
            pool,
            location: target.location,
            audit_key: lock_key("helix_audit", schema.as_deref()),
            schema,
        })
    }

    fn err(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        |e| StoreError::from_sqlx(e, &self.location)
    }

    /// The check-and-apply part of [`Store::migrate`]; the caller holds the advisory lock.
    async fn migrate_locked(&self, conn: &mut PgConnection) -> Result<MigrationReport, StoreError> {
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
        for m in migrations::pending(POSTGRES, &applied)? {
            apply(conn, m).await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
            done.push(m.version);
        }
        Ok(migrations::report(&applied, done))
    }
}

/// One connection that proves the server answers, and creates the schema on the way.
async fn probe(connect: &PgConnectOptions, schema: Option<&str>) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect_with(connect).await?;
    if let Some(s) = schema {
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(s));
        let created = conn.execute(sqlx::raw_sql(&sql)).await;
        match created {
            // Two processes opening at once can both pass IF NOT EXISTS and collide on the
            // catalog's unique index; the schema exists either way.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            other => {
                other?;
            }
        }
    }
    conn.close().await
}

/// Refused connections, timeouts, and the server saying "starting up" or "too many clients".
fn retryable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(e) => matches!(e.code().as_deref(), Some("57P03" | "53300")),
        other => is_transport_error(other),
    }
}

/// One migration and its tracking row in one transaction: both land or neither does.
async fn apply(conn: &mut PgConnection, m: &Migration) -> Result<(), StoreError> {
    let fail = |e: sqlx::Error| StoreError::Migration {
        version: m.version,
        reason: e.to_string(),
    };
    let mut tx = conn.begin().await.map_err(fail)?;
    (&mut *tx)
        .execute(sqlx::raw_sql(m.sql))
        .await
        .map_err(fail)?;
    sqlx::query(
        "INSERT INTO helix_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(m.version)
    .bind(m.name)
    .bind(m.checksum())
    .bind(Utc::now())
    .execute(&mut *tx)
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)
}

/// Schema names are restricted to plain identifiers so they read the same quoted or not.
fn validate_schema(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && schema.len() <= 63;
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "schema name `{schema}`: use at most 63 letters, digits and underscores"
        )))
    }
}

fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// An advisory-lock key for `purpose` (`helix_migrations` for the migrator, `helix_audit` for audit
/// appends): one per schema, so test schemas work in parallel while two processes on the same
/// schema take turns, and distinct per purpose, so a migration never waits for an audit append.
fn lock_key(purpose: &str, schema: Option<&str>) -> i64 {
    let digest = Sha256::digest(format!("{purpose}:{}", schema.unwrap_or("public")));
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn describe(&self) -> String {
        match &self.schema {
            Some(s) => format!("postgres {} schema={s}", self.location),
            None => format!("postgres {}", self.location),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(self.err())?;
        // Why: the advisory lock belongs to this session. Should this future be dropped halfway,
        // the connection must not go back to the pool still holding it; closing it frees the lock.
        conn.close_on_drop();
        let key = lock_key("helix_migrations", self.schema.as_deref());
        // Why: a session-level lock, held across the per-migration transactions below, makes
        // concurrent migrators (several instances starting at once) run one after the other;
        // the next one then finds everything applied.
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await
            .map_err(self.err())?;
        let result = self.migrate_locked(&mut conn).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await;
        if let Err(error) = unlocked {
            // The connection is closed on drop, which releases the lock all the same.
            tracing::warn!(db = %self.location, %error, "pg_advisory_unlock failed");
        }
        result
    }

    async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('helix_migrations') IS NOT NULL")
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
        Ok(migrations::status(POSTGRES, &versions))
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM helix_meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())
    }

    async fn meta_put(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO helix_meta (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(Utc::now())
        .execute(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        sqlx::query(
            "INSERT INTO helix_meta (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(Utc::now())
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        audit::append_in(&mut tx, self.audit_key, audit)
            .await
            .map_err(self.err())?;
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
        crate::Pools::Postgres(self.pool.clone())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(validate_schema("helix_test_0123abcd").is_ok());
        assert!(validate_schema("_x").is_ok());
        for bad in ["", "1x", "a-b", "a\"b", "a b", &"x".repeat(64)] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_key_depends_on_schema_and_purpose_only() {
        let m = "helix_migrations";
        assert_eq!(lock_key(m, None), lock_key(m, Some("public")));
        assert_ne!(lock_key(m, Some("a")), lock_key(m, Some("b")));
        assert_ne!(lock_key(m, None), lock_key("helix_audit", None));
    }
}

impl PgStore {
    /// One `UPDATE … FROM UNNEST` of column arrays, one commit for the whole batch.
    async fn update_webhook_attempts(
        &self,
        batch: &[(uuid::Uuid, crate::webhooks::AttemptRecord)],
    ) -> Result<Vec<String>, sqlx::Error> {
        // Unqualified columns are the delivery's: `u` names none of them.
        let set = crate::webhooks::attempt_set(
            "(attempts::jsonb || jsonb_build_array(u.a::jsonb))::text",
        );
        let sql = format!(
            "UPDATE webhook_deliveries d SET {set}, status = u.s, next_attempt_us = u.n, \
             updated_us = u.t FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], \
             $5::int8[]) AS u(id, a, s, n, t) WHERE d.id = u.id AND d.status = 'pending' \
             RETURNING d.id"
        );
        sqlx::query_scalar(&sql)
            .bind(
                batch
                    .iter()
                    .map(|(id, _)| id.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(
                batch
                    .iter()
                    .map(|(_, r)| serde_json::to_string(&r.attempt).unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
            .bind(
                batch
                    .iter()
                    .map(|(_, r)| r.status.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                batch
                    .iter()
                    .map(|(_, r)| r.next_attempt_us)
                    .collect::<Vec<_>>(),
            )
            .bind(
                batch
                    .iter()
                    .map(|(_, r)| r.attempt.at_us)
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&self.pool)
            .await
    }

    /// One `INSERT … SELECT FROM UNNEST` of column arrays: the same statement text for every
    /// batch size, so it is prepared once per connection (a `VALUES` list per size measured
    /// several times slower here).
    async fn insert_webhook_events(
        &self,
        events: &[crate::webhooks::Event],
    ) -> Result<Vec<String>, sqlx::Error> {
        let column = |f: fn(&crate::webhooks::Event) -> String| {
            events.iter().map(f).collect::<Vec<String>>()
        };
        sqlx::query_scalar(
            "INSERT INTO webhook_events (id, source, event_id, event_type, payload, received_us) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::int8[]) ON CONFLICT (source, event_id) DO NOTHING RETURNING id",
        )
        .bind(column(|e| e.id.to_string()))
        .bind(column(|e| e.source.clone()))
        .bind(column(|e| e.event_id.clone()))
        .bind(column(|e| e.event_type.clone()))
        .bind(column(|e| e.payload.clone()))
        .bind(events.iter().map(|e| e.received_us).collect::<Vec<i64>>())
        .fetch_all(&self.pool)
        .await
    }
}

crate::webhooks::webhook_row!(sqlx::postgres::PgRow);
crate::webhooks::impl_webhooks!(PgStore, pool, pool);
