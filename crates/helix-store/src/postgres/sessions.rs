//! Login sessions and their rotating refresh tokens on PostgreSQL (the session half of
//! [`crate::Accounts`] for [`PgStore`]).
//!
//! A refresh locks the session row (`FOR UPDATE`) before it reads the presented token's state, so
//! every refresh of one session family runs one after the other and each sees what the previous one
//! committed: two tabs presenting the same token never both think it is live.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::accounts::lock_live_user;
use super::audit::append_in;
use super::PgStore;
use crate::accounts::{RefreshOutcome, Session};
use crate::audit::AuditEvent;
use crate::rules::{self, RefreshStep, TokenState};
use crate::StoreError;

fn session(row: &PgRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl PgStore {
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
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        if !lock_live_user(&mut tx, user_id).await.map_err(self.err())? {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(session.id)
        .bind(user_id)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(refresh_hash)
        .bind(session.id)
        .bind(session.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| rules::conflict_as(self.err()(e), "refresh token hash in use"))?;
        append_in(&mut tx, self.audit_key, audit)
            .await
            .map_err(self.err())?;
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
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        // A token's session never changes, so it can be read before the lock.
        let session_id: Option<Uuid> =
            sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE hash = $1")
                .bind(presented)
                .fetch_optional(&mut *tx)
                .await
                .map_err(self.err())?;
        let Some(session_id) = session_id else {
            return Ok(RefreshOutcome::Invalid);
        };
        let row = sqlx::query(
            "SELECT s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, u.role, \
                    u.deleted_at IS NOT NULL AS user_deleted \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1 FOR UPDATE OF s",
        )
        .bind(session_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(self.err())?;
        let (mut found, role, user_deleted) = (|| {
            let role = rules::role(row.try_get("role")?)?;
            Ok::<_, sqlx::Error>((
                session(&row)?,
                role,
                row.try_get::<bool, _>("user_deleted")?,
            ))
        })()
        .map_err(self.err())?;
        // Read under the lock (a fresh snapshot in READ COMMITTED): a concurrent refresh of this
        // family has committed by now, and its rotation is visible here.
        let rotated_at: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT rotated_at FROM refresh_tokens WHERE hash = $1")
                .bind(presented)
                .fetch_one(&mut *tx)
                .await
                .map_err(self.err())?;
        let state = TokenState {
            rotated_at,
            expires_at: found.expires_at,
            session_revoked: found.revoked_at.is_some(),
            user_deleted,
        };
        match rules::refresh_step(&state, now, grace) {
            RefreshStep::Invalid => Ok(RefreshOutcome::Invalid),
            RefreshStep::Rotate => {
                // Marks the presented token, or (within the grace window) the one that replaced
                // it: a session has one live token at a time.
                sqlx::query(
                    "UPDATE refresh_tokens SET rotated_at = $2 \
                     WHERE session_id = $1 AND rotated_at IS NULL",
                )
                .bind(session_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
                )
                .bind(new_hash)
                .bind(session_id)
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
                    .bind(session_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err())?;
                found.revoked_at = Some(now);
                let event = rules::reuse_event(found.user_id, session_id);
                append_in(&mut tx, self.audit_key, event)
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
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        row.map(|r| session(&r).map_err(self.err())).transpose()
    }

    pub(super) async fn end_session(&self, id: Uuid, audit: AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        let revoked =
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(rules::now())
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        if revoked.rows_affected() == 0 {
            // Unknown or already revoked: nothing changed, nothing to audit.
            return Ok(());
        }
        append_in(&mut tx, self.audit_key, audit)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())
    }
}
