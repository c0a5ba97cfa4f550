//! Login sessions and their rotating refresh tokens on SQLite (the session half of
//! [`crate::Accounts`] for [`SqliteStore`]).
//!
//! A refresh reads the presented token inside a `BEGIN IMMEDIATE` transaction: it holds the
//! database's write lock from its first read to its commit, so concurrent refreshes of one token
//! run one after the other and each sees what the previous one committed.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::accounts::{is_live_user, uuid};
use super::audit::append_in;
use super::SqliteStore;
use crate::accounts::{RefreshOutcome, Session};
use crate::audit::AuditEvent;
use crate::rules::{self, RefreshStep, TokenState};
use crate::StoreError;

fn session(row: &SqliteRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: uuid(row, "id")?,
        user_id: uuid(row, "user_id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl SqliteStore {
    pub(super) async fn open_session(
        &self,
        user_id: Uuid,
        refresh_hash: &str,
        expires_at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> Result<Session, StoreError> {
        let session = Session {
            id: Uuid::now_v7(),
            user_id,
            created_at: rules::now(),
            expires_at: rules::exact(expires_at),
            revoked_at: None,
        };
        let mut tx = self.write().await?;
        if !is_live_user(&mut tx, user_id).await.map_err(self.err())? {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(session.id.hyphenated())
        .bind(user_id.hyphenated())
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(refresh_hash)
        .bind(session.id.hyphenated())
        .bind(session.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| rules::conflict_as(self.err()(e), "refresh token hash in use"))?;
        append_in(&mut tx, audit).await.map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok(session)
    }

    pub(super) async fn refresh_token(
        &self,
        presented: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        grace: std::time::Duration,
    ) -> Result<RefreshOutcome, StoreError> {
        let now = rules::exact(now);
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "SELECT s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, u.role, \
                    u.deleted_at IS NOT NULL AS user_deleted, t.rotated_at \
             FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id \
             JOIN users u ON u.id = s.user_id \
             WHERE t.hash = $1",
        )
        .bind(presented)
        .fetch_optional(&mut *tx)
        .await
        .map_err(self.err())?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Invalid);
        };
        let (mut found, role, state) = (|| {
            let found = session(&row)?;
            let state = TokenState {
                rotated_at: row.try_get("rotated_at")?,
                expires_at: found.expires_at,
                session_revoked: found.revoked_at.is_some(),
                user_deleted: row.try_get("user_deleted")?,
            };
            Ok::<_, sqlx::Error>((found, rules::role(row.try_get("role")?)?, state))
        })()
        .map_err(self.err())?;
        let session_id = found.id;
        match rules::refresh_step(&state, now, grace) {
            RefreshStep::Invalid => Ok(RefreshOutcome::Invalid),
            RefreshStep::Rotate => {
                // Marks the presented token, or (within the grace window) the one that replaced
                // it: a session has one live token at a time.
                sqlx::query(
                    "UPDATE refresh_tokens SET rotated_at = $2 \
                     WHERE session_id = $1 AND rotated_at IS NULL",
                )
                .bind(session_id.hyphenated())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
                )
                .bind(new_hash)
                .bind(session_id.hyphenated())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| rules::conflict_as(self.err()(e), "refresh token hash in use"))?;
                tx.commit().await.map_err(self.err())?;
                Ok(RefreshOutcome::Rotated {
                    session: found,
                    role,
                })
            }
            RefreshStep::Reuse => {
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1")
                    .bind(session_id.hyphenated())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err())?;
                found.revoked_at = Some(now);
                append_in(&mut tx, rules::reuse_event(found.user_id, session_id))
                    .await
                    .map_err(self.err())?;
                tx.commit().await.map_err(self.err())?;
                Ok(RefreshOutcome::ReuseDetected {
                    session_id,
                    user_id: found.user_id,
                })
            }
        }
    }

    pub(super) async fn find_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id, created_at, expires_at, revoked_at FROM sessions WHERE id = $1",
        )
        .bind(id.hyphenated())
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        row.map(|r| session(&r).map_err(self.err())).transpose()
    }

    pub(super) async fn end_session(&self, id: Uuid, audit: AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let revoked =
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.hyphenated())
                .bind(rules::now())
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        if revoked.rows_affected() == 0 {
            // Unknown or already revoked: nothing changed, nothing to audit.
            return Ok(());
        }
        append_in(&mut tx, audit).await.map_err(self.err())?;
        tx.commit().await.map_err(self.err())
    }
}
