//! [`Accounts`] on PostgreSQL: users and profiles here; sessions and refresh tokens in
//! `sessions.rs` and API keys in `keys.rs`, to which the trait's methods for them delegate.
//!
//! Every audited change runs in one transaction that ends with [`append_in`], so the change and its
//! audit entry commit together or not at all. Creating something for a user first takes a share
//! lock on the user row: a concurrent `delete_user` then either runs before (and the create finds
//! no live user) or after (and revokes what was created).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::audit::append_in;
use super::PgStore;
use crate::accounts::{
    Accounts, ApiKey, KeyOwner, LoginRecord, NewApiKey, NewUser, Profile, ProfilePatch,
    RefreshOutcome, Role, Session, User,
};
use crate::audit::AuditEvent;
use crate::{rules, StoreError};

const USER_PROFILE: &str = "SELECT u.id, u.email, u.role, u.created_at, p.display_name, \
     p.avatar_url, p.trust_level, p.conversation_count, p.message_count, \
     CASE WHEN p.messages_day = (now() AT TIME ZONE 'UTC')::date THEN p.messages_today ELSE 0 END AS messages_today, \
     p.onboarding_step, p.updated_at \
     FROM users u JOIN user_profiles p ON p.user_id = u.id \
     WHERE u.id = $1 AND u.deleted_at IS NULL";

/// `messages_today` counts only on the UTC day it was last counted on (`messages_day`).
const PROFILE_COLUMNS: &str =
    "user_id, display_name, avatar_url, trust_level, conversation_count, \
     message_count, \
     CASE WHEN messages_day = (now() AT TIME ZONE 'UTC')::date THEN messages_today ELSE 0 END AS messages_today, \
     onboarding_step, updated_at";

fn profile(row: &PgRow) -> Result<Profile, sqlx::Error> {
    Ok(Profile {
        user_id: row.try_get("user_id")?,
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

fn user_profile(row: &PgRow) -> Result<(User, Profile), sqlx::Error> {
    let user = User {
        id: row.try_get("id")?,
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

/// Share-lock a live user for the rest of the transaction; `false` when unknown or deleted.
pub(super) async fn lock_live_user(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL FOR SHARE")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

#[async_trait]
impl Accounts for PgStore {
    async fn create_user(
        &self,
        new: &NewUser,
        audit: AuditEvent,
    ) -> Result<(User, Profile), StoreError> {
        rules::check_trust(new.trust_level)?;
        let (id, now) = (Uuid::now_v7(), rules::now());
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
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
            .bind(id)
            .bind(&new.display_name)
            .bind(new.trust_level)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(self.err())?;
        let profile = profile(&row).map_err(self.err())?;
        append_in(&mut tx, self.audit_key, rules::signup_event(audit, id))
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
        let row: Option<(Uuid, String, String)> = sqlx::query_as(
            "SELECT id, password_hash, role FROM users WHERE email = $1 AND deleted_at IS NULL",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        row.map(|(user_id, password_hash, role)| {
            let role = rules::role(&role).map_err(self.err())?;
            Ok(LoginRecord {
                user_id,
                password_hash,
                role,
            })
        })
        .transpose()
    }

    async fn user(&self, id: Uuid) -> Result<Option<(User, Profile)>, StoreError> {
        let row = sqlx::query(USER_PROFILE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        row.map(|r| user_profile(&r).map_err(self.err()))
            .transpose()
    }

    async fn update_profile(&self, id: Uuid, patch: &ProfilePatch) -> Result<Profile, StoreError> {
        let sql = format!(
            "UPDATE user_profiles SET \
                 display_name = COALESCE($2::text, display_name), \
                 avatar_url = CASE WHEN $3 THEN $4::text ELSE avatar_url END, \
                 onboarding_step = COALESCE($5::integer, onboarding_step), \
                 updated_at = $6 \
             WHERE user_id = $1 \
               AND EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL) \
             RETURNING {PROFILE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(&patch.display_name)
            .bind(patch.avatar_url.is_some())
            .bind(patch.avatar_url.clone().flatten())
            .bind(patch.onboarding_step)
            .bind(rules::now())
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?
            .ok_or(StoreError::NotFound)?;
        profile(&row).map_err(self.err())
    }

    async fn set_role(
        &self,
        id: Uuid,
        role: Role,
        trust_level: f64,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        rules::check_trust(trust_level)?;
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        let changed =
            sqlx::query("UPDATE users SET role = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
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
        .bind(id)
        .bind(trust_level)
        .bind(rules::now())
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        append_in(&mut tx, self.audit_key, audit)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())
    }

    async fn delete_user(&self, id: Uuid, audit: AuditEvent) -> Result<(), StoreError> {
        let now = rules::now();
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        let deleted = sqlx::query(
            "UPDATE users SET deleted_at = $2, email = NULL, password_hash = NULL \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
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
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        }
        append_in(&mut tx, self.audit_key, audit)
            .await
            .map_err(self.err())?;
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
