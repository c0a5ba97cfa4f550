//! The audit log on SQLite: [`append_in`], which every audited change calls inside its own
//! transaction, and the [`AuditLog`] reads.
//!
//! Appends are serialised by SQLite's single write lock: every writing transaction of this store
//! starts with `BEGIN IMMEDIATE` ([`SqliteStore::write`]), so the head read inside it cannot go
//! stale before the commit, in this process or another one sharing the file.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::fmt::Hyphenated;

use super::SqliteStore;
use crate::audit::{AuditEntry, AuditEvent, AuditHead, AuditLog};
use crate::{rules, StoreError};

const COLUMNS: &str = "seq, at, actor, action, target, ip, detail, prev_hash, hash";

/// Chain `event` onto the log inside the caller's `BEGIN IMMEDIATE` transaction.
pub(super) async fn append_in(
    conn: &mut SqliteConnection,
    event: AuditEvent,
) -> Result<AuditEntry, sqlx::Error> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let entry = rules::next_entry(head, event);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, target, ip, detail, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.seq)
    .bind(entry.at)
    .bind(entry.actor.map(|a| a.hyphenated()))
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.ip)
    .bind(rules::detail_text(&entry))
    .bind(&entry.prev_hash)
    .bind(&entry.hash)
    .execute(&mut *conn)
    .await?;
    Ok(entry)
}

fn entry(row: &SqliteRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row
            .try_get::<Option<Hyphenated>, _>("actor")?
            .map(Hyphenated::into_uuid),
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        ip: row.try_get("ip")?,
        detail: rules::detail_value(row.try_get("detail")?),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let mut tx = self.write().await?;
        let entry = append_in(&mut tx, event).await.map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok(entry)
    }

    async fn page(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?");
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        rows.iter().map(|r| entry(r).map_err(self.err())).collect()
    }

    async fn head(&self) -> Result<Option<AuditHead>, StoreError> {
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(self.err())?;
        Ok(head.map(|(seq, hash)| AuditHead { seq, hash }))
    }
}
