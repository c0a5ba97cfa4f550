//! Raw access to a test app's database, as an operator (or an attacker) with `psql` or `sqlite3`
//! would have: for tests that change rows behind Helix's back.

use sqlx::{Connection, Executor, PgConnection, SqliteConnection};

use super::spawn_app::TestApp;

pub enum Raw {
    Sqlite(String),
    Postgres { url: String, schema: String },
}

impl Raw {
    pub async fn of(app: &TestApp) -> Self {
        match &app.backends.database_url {
            Some(url) => Raw::Postgres {
                url: url.clone(),
                schema: app.backends.schema.clone(),
            },
            None => {
                let data = app.env.get("HELIX_DATA_DIR").expect("a data dir");
                Raw::Sqlite(format!("sqlite://{data}/helix.db"))
            }
        }
    }

    /// One integer (a `COUNT(*)`, say), read beside Helix.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self {
            Raw::Sqlite(url) => {
                let mut conn = SqliteConnection::connect(url).await.expect("sqlite");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect(sql)
            }
            Raw::Postgres { url, schema } => {
                let mut conn = PgConnection::connect(url).await.expect("postgres");
                conn.execute(format!("SET search_path TO \"{schema}\"").as_str())
                    .await
                    .expect("search_path");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect(sql)
            }
        }
    }

    pub async fn exec(&self, sql: &str) {
        match self {
            Raw::Sqlite(url) => {
                let mut conn = SqliteConnection::connect(url).await.expect("sqlite");
                conn.execute(sql).await.expect(sql);
            }
            Raw::Postgres { url, schema } => {
                let mut conn = PgConnection::connect(url).await.expect("postgres");
                conn.execute(format!("SET search_path TO \"{schema}\"").as_str())
                    .await
                    .expect("search_path");
                conn.execute(sql).await.expect(sql);
            }
        }
    }
}
