//! The `Store` contract, written once and run on every backend.
//!
//! Each test listed in `on_every_backend!` (see `conformance/support.rs`) runs twice: `sqlite::<name>` on a file in its own temporary
//! directory, and `postgres::<name>` in its own schema (`helix_test_<uuid>`) of the database named
//! by `HELIX_TEST_DATABASE_URL`, dropped when the test ends, passed or failed. Without that
//! variable the PostgreSQL variants print a note and return.
//!
//! The accounts contract lives in `conformance/accounts.rs` and `conformance/sessions.rs`, the
//! audit log's in `conformance/audit.rs`, usage and
//! subscriptions in `conformance/usage.rs` and `conformance/subscriptions.rs`, the agents and
//! their tasks in `conformance/agents.rs`, the Discord interaction log in `conformance/discord.rs`.

use std::time::Duration;

use helix_store::{describe_url, open, Backend, Store, StoreError, StoreOptions};
use sqlx::{Connection, SqliteConnection};

// Not `tests/support.rs`: Cargo would build that as a test binary of its own.
#[macro_use]
#[path = "conformance/support.rs"]
mod support;

use support::{run, Db, Engine};

#[path = "conformance/accounts.rs"]
mod accounts;
#[path = "conformance/agents.rs"]
mod agents;
#[path = "conformance/audit.rs"]
mod audit;
#[path = "conformance/conversations.rs"]
mod conversations;
#[path = "conformance/discord.rs"]
mod discord;
#[path = "conformance/sessions.rs"]
mod sessions;
#[path = "conformance/subscriptions.rs"]
mod subscriptions;
#[path = "conformance/usage.rs"]
mod usage;
#[path = "conformance/webhooks.rs"]
mod webhooks;

on_every_backend!(
    fresh_migrate_applies_every_migration,
    second_migrate_applies_nothing,
    concurrent_migrations_apply_each_version_once,
    concurrent_migrations_with_a_tracking_table,
    migration_status_before_and_after,
    meta_put_get_overwrite_and_missing,
    meta_survives_reopen,
    ping_fails_after_close,
    describe_hides_the_password,
    tampered_checksum_is_a_migration_error,
);

/// The versions this binary embeds, as `migration_status` lists them.
async fn embedded_versions(store: &dyn Store) -> Vec<i64> {
    let status = store.migration_status().await.expect("status");
    status.iter().map(|m| m.version).collect()
}

async fn fresh_migrate_applies_every_migration(db: Db) {
    let store = db.open().await;
    let all = embedded_versions(&*store).await;
    assert_eq!(all.first(), Some(&1), "migrations start at 0001: {all:?}");

    let report = store.migrate().await.expect("migrate");

    assert_eq!(report.applied, all);
    assert_eq!(report.current, *all.last().unwrap());
    let rows = db.scalar("SELECT COUNT(*) FROM helix_migrations").await;
    assert_eq!(rows, all.len() as i64);
}

async fn second_migrate_applies_nothing(db: Db) {
    let store = db.open_migrated().await;

    let again = store.migrate().await.expect("second migrate");

    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(
        again.current,
        *embedded_versions(&*store).await.last().unwrap()
    );
}

async fn concurrent_migrations_apply_each_version_once(db: Db) {
    migrate_twice_at_once(&db).await;
}

/// The same race when the tracking table already exists, as when a release adds a migration: both
/// migrators would read "nothing applied" unless the lock is taken before the read.
async fn concurrent_migrations_with_a_tracking_table(db: Db) {
    // Opening creates the PostgreSQL schema; the empty tracking table is then made by hand, as the
    // migrator makes it, so this holds whatever migrations exist.
    db.open().await.close().await;
    db.exec(
        "CREATE TABLE helix_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
    )
    .await;

    migrate_twice_at_once(&db).await;
}

/// Two stores (two pools, as two processes would have) migrate at once: both succeed, and
/// between them each version is applied exactly once.
async fn migrate_twice_at_once(db: &Db) {
    let (a, b) = tokio::join!(db.open(), db.open());

    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());

    let (ra, rb) = (ra.expect("first migrator"), rb.expect("second migrator"));
    let mut applied = [ra.applied.clone(), rb.applied.clone()].concat();
    applied.sort_unstable();
    assert_eq!(applied, embedded_versions(&*a).await, "{ra:?} {rb:?}");
    assert_eq!(ra.current, rb.current);
    let rows = db.scalar("SELECT COUNT(*) FROM helix_migrations").await;
    assert_eq!(rows, applied.len() as i64);
}

async fn migration_status_before_and_after(db: Db) {
    let store = db.open().await;

    let before = store.migration_status().await.expect("status before");
    store.migrate().await.expect("migrate");
    let after = store.migration_status().await.expect("status after");

    assert!(!before.is_empty());
    assert!(
        before.iter().all(|m| !m.applied && !m.name.is_empty()),
        "{before:?}"
    );
    assert!(after.iter().all(|m| m.applied), "{after:?}");
    let names = |s: &[helix_store::MigrationStatus]| -> Vec<(i64, String)> {
        s.iter().map(|m| (m.version, m.name.clone())).collect()
    };
    assert_eq!(names(&before), names(&after));
}

async fn meta_put_get_overwrite_and_missing(db: Db) {
    let store = db.open_migrated().await;

    assert_eq!(store.meta_get("instance").await.unwrap(), None);
    store.meta_put("instance", "first").await.unwrap();
    store.meta_put("motto", "héllo ✓").await.unwrap();
    assert_eq!(
        store.meta_get("instance").await.unwrap().as_deref(),
        Some("first")
    );
    store.meta_put("instance", "second").await.unwrap();
    store.meta_put("empty", "").await.unwrap();

    assert_eq!(
        store.meta_get("instance").await.unwrap().as_deref(),
        Some("second")
    );
    assert_eq!(
        store.meta_get("motto").await.unwrap().as_deref(),
        Some("héllo ✓")
    );
    assert_eq!(store.meta_get("empty").await.unwrap().as_deref(), Some(""));
    assert_eq!(
        store.meta_get("Instance").await.unwrap(),
        None,
        "keys are case-sensitive"
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM helix_meta").await, 3);
}

async fn meta_survives_reopen(db: Db) {
    let store = db.open_migrated().await;
    store.meta_put("instance", "kept").await.unwrap();
    store.close().await;

    let reopened = db.open_migrated().await;

    assert_eq!(
        reopened.meta_get("instance").await.unwrap().as_deref(),
        Some("kept")
    );
}

async fn ping_fails_after_close(db: Db) {
    let store = db.open().await;
    store.ping().await.expect("ping while open");

    store.close().await;

    let err = store.ping().await.expect_err("ping after close");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    let err = store.meta_get("x").await.expect_err("query after close");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

async fn describe_hides_the_password(db: Db) {
    let (url, password) = with_password(&db.url, "hunter2pw");
    let store = open(&url, &db.options())
        .await
        .expect("open with a password");

    let described = store.describe();

    assert!(!described.contains(&password), "{described}");
    assert!(!described.contains('@'), "no user either: {described}");
    assert!(
        described.starts_with(&describe_url(&url).unwrap()),
        "{described}"
    );
    match store.backend() {
        Backend::Sqlite => assert_eq!(described, format!("sqlite {}", sqlite_path(&db.url))),
        Backend::Postgres => {
            let schema = db.schema.as_deref().unwrap();
            assert!(
                described.ends_with(&format!(" schema={schema}")),
                "{described}"
            );
        }
    }
}

async fn tampered_checksum_is_a_migration_error(db: Db) {
    let store = db.open_migrated().await;
    db.exec("UPDATE helix_migrations SET checksum = 'tampered' WHERE version = 1")
        .await;

    let err = store
        .migrate()
        .await
        .expect_err("migrate over an edited file");

    assert!(
        matches!(err, StoreError::Migration { version: 1, .. }),
        "{err:?}"
    );
}

/// The URL with a password (PostgreSQL only: SQLite URLs have none), and the password to look for.
/// A URL that already has one keeps it, as the test server may need it.
fn with_password(url: &str, password: &str) -> (String, String) {
    let mut parsed = url::Url::parse(url).expect("url");
    if parsed.scheme() == "sqlite" {
        return (url.to_string(), password.to_string());
    }
    match parsed.password() {
        Some(existing) => (url.to_string(), existing.to_string()),
        None => {
            parsed.set_password(Some(password)).expect("set password");
            (parsed.to_string(), password.to_string())
        }
    }
}

fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").expect("a sqlite:// url")
}

async fn open_err(url: &str, options: &StoreOptions) -> StoreError {
    match open(url, options).await {
        Ok(store) => panic!("{url} opened as {}", store.describe()),
        Err(e) => e,
    }
}

#[tokio::test]
async fn unknown_scheme_is_rejected() {
    let options = StoreOptions::default();

    let err = open_err("mysql://x", &options).await;
    assert!(
        matches!(&err, StoreError::UnsupportedScheme { scheme } if scheme == "mysql"),
        "{err:?}"
    );
    let err = open_err("not a url", &options).await;
    assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable_without_password() {
    let options = StoreOptions {
        connect_attempts: 2,
        connect_timeout: Duration::from_secs(1),
        ..StoreOptions::default()
    };

    // A guard against a hang, not a timing assertion.
    let opened = open_err("postgres://u:s3cretpw@127.0.0.1:1/db", &options);
    let err = tokio::time::timeout(Duration::from_secs(60), opened)
        .await
        .expect("open gave up");

    assert!(
        matches!(&err, StoreError::Unavailable { target, .. } if target == "127.0.0.1:1/db"),
        "{err:?}"
    );
    let text = format!("{err} {err:?}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cretpw"), "{text}");
}

#[tokio::test]
async fn sqlite_creates_missing_directories_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/helix.db");
    let url = format!("sqlite:{}", path.display());

    let store = open(&url, &StoreOptions::default()).await.expect("open");
    store.migrate().await.expect("migrate");

    assert!(path.is_file());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn postgres_schema_holds_the_tables() {
    run(Engine::Postgres, |db: Db| async move {
        db.open_migrated().await;
        let schema = db.schema.as_deref().unwrap();
        let sql = format!(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = '{schema}' AND table_name IN ('helix_meta', 'helix_migrations')"
        );
        assert_eq!(db.scalar(&sql).await, 2);
    })
    .await;
}
