//! The backends a test runs on: SQLite + in-process bus by default; PostgreSQL + Redis when
//! `HELIX_TEST_DATABASE_URL` / `HELIX_TEST_REDIS_URL` are set. Each test gets its own PostgreSQL
//! schema and Redis key prefix, removed when the guard drops.

use std::collections::BTreeMap;

use tempfile::TempDir;

pub struct TestBackends {
    pub dir: TempDir,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub schema: String,
    pub prefix: String,
}

impl TestBackends {
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            dir: tempfile::tempdir().expect("a temp dir"),
            database_url: std::env::var("HELIX_TEST_DATABASE_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            redis_url: std::env::var("HELIX_TEST_REDIS_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            schema: format!("helix_test_{id}"),
            prefix: format!("helix-test-{id}:"),
        }
    }

    /// The environment a Helix process sees for these backends.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert(
            "HELIX_DATA_DIR".into(),
            self.dir.path().join("data").display().to_string(),
        );
        if let Some(url) = &self.database_url {
            env.insert("DATABASE_URL".into(), url.clone());
            env.insert("HELIX_DB_SCHEMA".into(), self.schema.clone());
            env.insert(
                "JWT_SECRET".into(),
                "test-jwt-secret-0123456789abcdef".into(),
            );
        }
        if let Some(url) = &self.redis_url {
            env.insert("REDIS_URL".into(), url.clone());
            env.insert("HELIX_BUS_PREFIX".into(), self.prefix.clone());
        }
        env
    }

    pub fn label(&self) -> &'static str {
        match (&self.database_url, &self.redis_url) {
            (Some(_), Some(_)) => "postgres+redis",
            (Some(_), None) => "postgres+memory",
            (None, Some(_)) => "sqlite+redis",
            (None, None) => "sqlite+memory",
        }
    }
}

impl Drop for TestBackends {
    fn drop(&mut self) {
        let (db, redis, schema, prefix) = (
            self.database_url.clone(),
            self.redis_url.clone(),
            self.schema.clone(),
            self.prefix.clone(),
        );
        if db.is_none() && redis.is_none() {
            return;
        }
        // Why a thread with its own runtime: Drop may run inside a test's runtime, which must
        // not be blocked on.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Some(url) = db {
                    if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                            .execute(&pool)
                            .await;
                        pool.close().await;
                    }
                }
                if let Some(url) = redis {
                    delete_prefix(&url, &prefix).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn delete_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}
