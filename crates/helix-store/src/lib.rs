//! Helix storage.
//!
//! Owns everything that touches a relational database: the [`Store`] trait that services hold as
//! `Arc<dyn Store>`, one implementation per engine (`postgres`, `sqlite`), and the SQL migrations of
//! each dialect under `migrations/<dialect>/`. The engine is chosen at run time from the URL scheme
//! by [`open`]; there are no backend Cargo features.
//!
//! Data flow: a service calls a trait method → the engine module runs its dialect's SQL on its
//! `sqlx` pool → rows come back as the plain models of this crate. Errors are [`StoreError`], which
//! never carries a password.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub mod accounts;
pub mod agents;
pub mod audit;
mod connect;
pub mod conversations;
pub mod discord;
mod error;
mod migrations;
mod postgres;
mod rules;
mod sqlite;
pub mod subscriptions;
mod target;
pub mod ucf;
pub mod usage;
#[macro_use]
pub mod webhooks;

pub use accounts::Accounts;
pub use agents::Agents;
pub use audit::AuditLog;
pub use conversations::Conversations;
pub use discord::DiscordLog;
pub use error::StoreError;
pub use subscriptions::Subscriptions;
pub use ucf::UcfMetrics;
pub use usage::Usage;
pub use webhooks::Webhooks;

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// The engine a database URL selects, without connecting. Errors as [`open`] would.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        target::parse(url).map(|t| t.backend())
    }
}

/// A password-free description of a database URL, without connecting: `postgres host:port/db` or
/// `sqlite <path>` (what [`Store::describe`] of the opened store starts with).
pub fn describe_url(url: &str) -> Result<String, StoreError> {
    target::parse(url).map(|t| t.describe())
}

/// How to open a store. `Default` suits production; tests set `schema` to isolate themselves.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Maximum pooled connections.
    pub max_connections: u32,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// Total attempts to reach the database at open before giving up (bounded retry).
    pub connect_attempts: u32,
    /// PostgreSQL only: a schema to create if missing and put first on every connection's
    /// `search_path` (migrations and data then live there). Ignored by SQLite.
    pub schema: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            connect_attempts: 5,
            schema: None,
        }
    }
}

/// One migration file known to the binary, and whether the database has applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: i64,
    pub name: String,
    pub applied: bool,
}

/// What one [`Store::migrate`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this call, in order (empty when already up to date).
    pub applied: Vec<i64>,
    /// The highest version now applied.
    pub current: i64,
}

/// The storage contract every service holds as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// A password-free description of where the store points (`postgres 127.0.0.1:5432/test`,
    /// `sqlite .helix/helix.db`), for logs and tables.
    fn describe(&self) -> String;

    /// One cheap round trip; `Err` means the database is unreachable right now.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Apply every pending migration of this dialect. Idempotent, and safe when several processes
    /// call it at once: a database-wide lock serialises them.
    async fn migrate(&self) -> Result<MigrationReport, StoreError>;

    /// Every migration this binary knows, and whether it has been applied.
    async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StoreError>;

    /// Read one entry of the `helix_meta` key/value table.
    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Insert or replace one entry of the `helix_meta` key/value table.
    async fn meta_put(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// [`Store::meta_put`] and its audit entry in one transaction, for settings whose changes
    /// matter (the maintenance switch).
    async fn meta_put_audited(
        &self,
        key: &str,
        value: &str,
        audit: audit::AuditEvent,
    ) -> Result<(), StoreError>;

    /// Users, profiles, sessions and API keys.
    fn accounts(&self) -> &dyn Accounts;

    /// The hash-chained audit log.
    fn audit(&self) -> &dyn AuditLog;

    /// Conversations and their messages.
    fn conversations(&self) -> &dyn Conversations;

    /// History of the platform's UCF gauges.
    fn ucf(&self) -> &dyn UcfMetrics;

    /// Metered calls and what quota checks read.
    fn usage(&self) -> &dyn Usage;

    /// Tiers and Stripe subscriptions, changed by Stripe events.
    fn subscriptions(&self) -> &dyn Subscriptions;

    /// The agent roster and the tasks addressed to agents.
    fn agents(&self) -> &dyn Agents;

    /// Webhook events received, endpoints subscribed, and deliveries with their attempts.
    fn webhooks(&self) -> &dyn Webhooks;

    /// Discord interactions discord-bot received.
    fn discord(&self) -> &dyn DiscordLog;

    /// The engine's pools, for a crate that owns tables of its own on the same database (the job
    /// queue of helix-jobs). Its migrations still live here, so `helix migrate` applies them all.
    fn pools(&self) -> Pools;

    /// Close the pool; later calls fail with [`StoreError::Unavailable`].
    async fn close(&self);
}

/// The pools behind a [`Store`], as [`Store::pools`] hands them out.
#[derive(Debug, Clone)]
pub enum Pools {
    Postgres(sqlx::PgPool),
    /// SQLite has one write lock: `write` holds a single connection so that writers of this
    /// process queue fairly instead of polling in SQLite's busy handler; `read` is for queries.
    Sqlite {
        read: sqlx::SqlitePool,
        write: sqlx::SqlitePool,
    },
}

/// Open a store from a URL: `postgres://` or `postgresql://` → PostgreSQL, `sqlite://` → SQLite
/// (WAL mode, file created if missing). Any other scheme is [`StoreError::UnsupportedScheme`].
/// Retries the first connection `connect_attempts` times with backoff, then fails with
/// [`StoreError::Unavailable`] naming the host, never the password.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    match target::parse(url)? {
        target::Target::Postgres(pg) => Ok(Arc::new(postgres::PgStore::open(*pg, options).await?)),
        target::Target::Sqlite(path) => {
            Ok(Arc::new(sqlite::SqliteStore::open(path, options).await?))
        }
    }
}
