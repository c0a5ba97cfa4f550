//! The audit log on PostgreSQL: [`append_in`], which every audited change calls inside its own
//! transaction, and the [`AuditLog`] reads.
//!
//! Appends are serialised by a transaction-level advisory lock taken before the head is read and
//! held until commit, so two transactions can never chain onto the same head. The lock is taken
//! last in every transaction (after the change it records), which keeps it short and rules out a
//! lock-order deadlock with the row locks taken before it.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::PgStore;
use crate::audit::{AuditEntry, AuditEvent, AuditHead, AuditLog};
use crate::{rules, StoreError};

const COLUMNS: &str = "seq, at, actor, action, target, ip, detail, prev_hash, hash";

/// Chain `event` onto the log inside the caller's transaction; `key` is the store's audit lock.
pub(super) async fn append_in(
    conn: &mut PgConnection,
    key: i64,
    event: AuditEvent,
) -> Result<AuditEntry, sqlx::Error> {
    // Why a transaction-level lock: it is released by the commit or rollback itself, so no path
    // (an error, a dropped future) can leave it held on a pooled connection.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *conn)
        .await?;
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let entry = rules::next_entry(head, event);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, target, ip, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(entry.seq)
    .bind(entry.at)
    .bind(entry.actor)
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

fn entry(row: &PgRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get::<Option<Uuid>, _>("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        ip: row.try_get("ip")?,
        detail: rules::detail_value(row.try_get("detail")?),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

#[async_trait]
impl AuditLog for PgStore {
    async fn append(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        let entry = append_in(&mut tx, self.audit_key, event)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok(entry)
    }

    async fn page(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
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
