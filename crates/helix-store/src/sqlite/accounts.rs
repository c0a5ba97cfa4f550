//! [`Accounts`] on SQLite: users and profiles here; sessions and refresh tokens in `sessions.rs`
//! and API keys in `keys.rs`, to which the trait's methods for them delegate.
//!
//! Every audited change runs in one `BEGIN IMMEDIATE` transaction that ends with [`append_in`], so
//! the change and its audit entry commit together or not at all, and a check made at the start of
//! a transaction (is the user live?) still holds at its end: SQLite has one writer at a time.
//! Ids are bound as hyphenated text and scopes as a JSON array, as the migration declares.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::fmt::Hyphenated;
use uuid::Uuid;

use super::audit::append_in;
use super::SqliteStore;
use crate::accounts::{
    Accounts, ApiKey, KeyOwner, LoginRecord, NewApiKey, NewUser, Profile, ProfilePatch,
    RefreshOutcome, Role, Session, User,
};
use crate::audit::AuditEvent;
use crate::{rules, StoreError};

const USER_PROFILE: &str = "SELECT u.id, u.email, u.role, u.created_at, p.display_name, \
     p.avatar_url, p.trust_level, p.conversation_count, p.message_count, \
     CASE WHEN p.messages_day = date('now') THEN p.messages_today ELSE 0 END AS messages_today, \
     p.onboarding_step, p.updated_at \
     FROM users u JOIN user_profiles p ON p.user_id = u.id \
     WHERE u.id = $1 AND u.deleted_at IS NULL";

/// `messages_today` counts only on the UTC day it was last counted on (`messages_day`).
const PROFILE_COLUMNS: &str =
    "user_id, display_name, avatar_url, trust_level, conversation_count, \
     message_count, \
     CASE WHEN messages_day = date('now') THEN messages_today ELSE 0 END AS messages_today, \
     onboarding_step, updated_at";

/// A stored UUID column.
pub(super) fn uuid(row: &SqliteRow, column: &str) -> Result<Uuid, sqlx::Error> {
    Ok(row.try_get::<Hyphenated, _>(column)?.into_uuid())
}

fn profile(row: &SqliteRow) -> Result<Profile, sqlx::Error> {
    Ok(Profile {
        user_id: uuid(row, "user_id")?,
        display_name: row.try_get("display_name")?,
        avatar_url: row.try_get("avatar_url")?,
        trust_level: row.try_get("trust_level")?,
        conversation_count: row.try_get("conversation_count")?,
        message_count: row.try_get("message_count")?,
        messages_today: row.try_get("messages_today")?,
        onboarding_step: row.try_get("onboarding_step")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn user_profile(row: &SqliteRow) -> Result<(User, Profile), sqlx::Error> {
    let user = User {
        id: uuid(row, "id")?,
        email: row.try_get("email")?,
        role: rules::role(row.try_get("role")?)?,
        created_at: row.try_get("created_at")?,
    };
    let profile = Profile {
        user_id: user.id,
        display_name: row.try_get("display_name")?,
        avatar_url: row.try_get("avatar_url")?,
        trust_level: row.try_get("trust_level")?,
        conversation_count: row.try_get("conversation_count")?,
        message_count: row.try_get("message_count")?,
        messages_today: row.try_get("messages_today")?,
        onboarding_step: row.try_get("onboarding_step")?,
        updated_at: row.try_get("updated_at")?,
    };
    Ok((user, profile))
}

/// Whether `id` is a live user (inside a write transaction, it stays so until the commit).
pub(super) async fn is_live_user(
    conn: &mut SqliteConnection,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL)")
        .bind(id.hyphenated())
        .fetch_one(conn)
        .await
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_user(
        &self,
        new: &NewUser,
        audit: AuditEvent,
    ) -> Result<(User, Profile), StoreError> {
        rules::check_trust(new.trust_level)?;
        let (id, now) = (Uuid::now_v7(), rules::now());
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.hyphenated())
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(new.role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| rules::conflict_as(self.err()(e), "email already taken"))?;
        let sql = format!(
            "INSERT INTO user_profiles (user_id, display_name, trust_level, updated_at) \
             VALUES ($1, $2, $3, $4) RETURNING {PROFILE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.hyphenated())
            .bind(&new.display_name)
            .bind(new.trust_level)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(self.err())?;
        let profile = profile(&row).map_err(self.err())?;
        append_in(&mut tx, rules::signup_event(audit, id))
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        let user = User {
            id,
            email: new.email.clone(),
            role: new.role,
            created_at: now,
        };
        Ok((user, profile))
    }

    async fn login_record(&self, email: &str) -> Result<Option<LoginRecord>, StoreError> {
        let row: Option<(Hyphenated, String, String)> = sqlx::query_as(
            "SELECT id, password_hash, role FROM users WHERE email = $1 AND deleted_at IS NULL",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        row.map(|(id, password_hash, role)| {
            let role = rules::role(&role).map_err(self.err())?;
            Ok(LoginRecord {
                user_id: id.into_uuid(),
                password_hash,
                role,
            })
        })
        .transpose()
    }

    async fn user(&self, id: Uuid) -> Result<Option<(User, Profile)>, StoreError> {
        let row = sqlx::query(USER_PROFILE)
            .bind(id.hyphenated())
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        row.map(|r| user_profile(&r).map_err(self.err()))
            .transpose()
    }

    async fn update_profile(&self, id: Uuid, patch: &ProfilePatch) -> Result<Profile, StoreError> {
        let sql = format!(
            "UPDATE user_profiles SET \
                 display_name = COALESCE($2, display_name), \
                 avatar_url = CASE WHEN $3 THEN $4 ELSE avatar_url END, \
                 onboarding_step = COALESCE($5, onboarding_step), \
                 updated_at = $6 \
             WHERE user_id = $1 \
               AND EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL) \
             RETURNING {PROFILE_COLUMNS}"
        );
        let mut tx = self.write().await?;
        let row = sqlx::query(&sql)
            .bind(id.hyphenated())
            .bind(&patch.display_name)
            .bind(patch.avatar_url.is_some())
            .bind(patch.avatar_url.clone().flatten())
            .bind(patch.onboarding_step)
            .bind(rules::now())
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.err())?
            .ok_or(StoreError::NotFound)?;
        let profile = profile(&row).map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok(profile)
    }

    async fn set_role(
        &self,
        id: Uuid,
        role: Role,
        trust_level: f64,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        rules::check_trust(trust_level)?;
        let mut tx = self.write().await?;
        let changed =
            sqlx::query("UPDATE users SET role = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id.hyphenated())
                .bind(role.as_str())
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE user_profiles SET trust_level = $2, updated_at = $3 WHERE user_id = $1",
        )
        .bind(id.hyphenated())
        .bind(trust_level)
        .bind(rules::now())
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        append_in(&mut tx, audit).await.map_err(self.err())?;
        tx.commit().await.map_err(self.err())
    }

    async fn delete_user(&self, id: Uuid, audit: AuditEvent) -> Result<(), StoreError> {
        let now = rules::now();
        let mut tx = self.write().await?;
        let deleted = sqlx::query(
            "UPDATE users SET deleted_at = $2, email = NULL, password_hash = NULL \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.hyphenated())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        for sql in [
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            "UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        ] {
            sqlx::query(sql)
                .bind(id.hyphenated())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        }
        append_in(&mut tx, audit).await.map_err(self.err())?;
        tx.commit().await.map_err(self.err())
    }

    async fn create_session(
        &self,
        user_id: Uuid,
        refresh_hash: &str,
        expires_at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> Result<Session, StoreError> {
        self.open_session(user_id, refresh_hash, expires_at, audit)
            .await
    }

    async fn refresh(
        &self,
        presented_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        grace: std::time::Duration,
    ) -> Result<RefreshOutcome, StoreError> {
        self.refresh_token(presented_hash, new_hash, now, grace)
            .await
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.find_session(id).await
    }

    async fn revoke_session(&self, id: Uuid, audit: AuditEvent) -> Result<(), StoreError> {
        self.end_session(id, audit).await
    }

    async fn create_api_key(
        &self,
        new: &NewApiKey,
        audit: AuditEvent,
    ) -> Result<ApiKey, StoreError> {
        self.new_key(new, audit).await
    }

    async fn api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>, StoreError> {
        self.keys_of(user_id).await
    }

    async fn revoke_api_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        self.revoke_key(user_id, key_id, audit).await
    }

    async fn api_key_by_hash(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyOwner>, StoreError> {
        self.key_by_hash(hash, now).await
    }
}
