//! The accounts contract: users and their profiles, login sessions with rotating refresh tokens,
//! API keys. Every change that matters for security takes an [`AuditEvent`] and appends it to the
//! audit log in the same transaction, so a change and its record commit or roll back together.
//!
//! Secrets never reach this layer in clear: passwords arrive as Argon2 PHC strings, refresh tokens
//! and API keys as their SHA-256 (hex). Emails arrive normalised (trimmed, lower-cased) by the
//! caller; the store enforces their uniqueness.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::StoreError;

/// What a user may do. `Creator` is the platform owner (`HELIX_CREATOR_EMAIL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
    Creator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Creator => "creator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            "creator" => Some(Role::Creator),
            _ => None,
        }
    }

    /// Admins and the creator administer the platform.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Admin | Role::Creator)
    }
}

/// A user as the rest of the platform sees it (no password hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// `user_profiles`, as the platform's web app already uses it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub user_id: Uuid,
    pub display_name: String,
    pub avatar_url: Option<String>,
    /// 0.0 to 1.0; the creator has 1.0.
    pub trust_level: f64,
    pub conversation_count: i64,
    pub message_count: i64,
    pub messages_today: i64,
    pub onboarding_step: i32,
    pub updated_at: DateTime<Utc>,
}

/// What signup stores.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Already normalised by the caller.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub display_name: String,
    pub role: Role,
    pub trust_level: f64,
}

/// What login needs: the hash to verify against. Deleted users have none.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub user_id: Uuid,
    pub password_hash: String,
    pub role: Role,
}

/// A partial update of a profile; `None` leaves a field as it is. `avatar_url: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
    pub avatar_url: Option<Option<String>>,
    pub onboarding_step: Option<i32>,
}

/// One login session (the "family" of its refresh tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// After this, its refresh tokens are refused.
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// The presented token is now used; `new_hash` is the session's live token.
    Rotated { session: Session, role: Role },
    /// A token already rotated away was presented after the grace window: the session (the whole
    /// family) is now revoked, and a `refresh_reuse_detected` audit entry was written with it.
    ReuseDetected { session_id: Uuid, user_id: Uuid },
    /// Unknown token, revoked or expired session, or deleted user. Nothing changed.
    Invalid,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The first characters of the key (`hx_AbC1…`), so a user can tell keys apart.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What creating a key stores.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    /// SHA-256 of the whole key, lower-case hex.
    pub hash: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key found by its hash, with what authorisation needs about its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyOwner {
    pub key: ApiKey,
    pub role: Role,
}

#[async_trait]
pub trait Accounts: Send + Sync {
    /// Create a user and their profile. [`StoreError::Conflict`] when the email is taken (and then
    /// no audit entry is written). An `audit` event without actor or target gets the new user as
    /// both (`user:<id>`): the caller cannot know the id yet.
    async fn create_user(
        &self,
        new: &NewUser,
        audit: AuditEvent,
    ) -> Result<(User, Profile), StoreError>;

    /// The login record of a live (not deleted) user by normalised email.
    async fn login_record(&self, email: &str) -> Result<Option<LoginRecord>, StoreError>;

    /// A live user and their profile.
    async fn user(&self, id: Uuid) -> Result<Option<(User, Profile)>, StoreError>;

    /// Update a profile; [`StoreError::NotFound`] for an unknown or deleted user.
    async fn update_profile(&self, id: Uuid, patch: &ProfilePatch) -> Result<Profile, StoreError>;

    /// Change a role (and trust level); audited. [`StoreError::NotFound`] for an unknown or deleted
    /// user, [`StoreError::Invalid`] for a trust level outside 0.0 to 1.0.
    async fn set_role(
        &self,
        id: Uuid,
        role: Role,
        trust_level: f64,
        audit: AuditEvent,
    ) -> Result<(), StoreError>;

    /// Delete a user: the row stays (the audit log refers to it) but is marked deleted, its email
    /// is freed, and every session and API key of the user is revoked. Audited.
    /// [`StoreError::NotFound`] for an unknown or already deleted user.
    async fn delete_user(&self, id: Uuid, audit: AuditEvent) -> Result<(), StoreError>;

    /// Open a session whose first refresh token has hash `refresh_hash`. Audited (a login).
    /// [`StoreError::NotFound`] for an unknown or deleted user.
    async fn create_session(
        &self,
        user_id: Uuid,
        refresh_hash: &str,
        expires_at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> Result<Session, StoreError>;

    /// Present refresh token `presented_hash` at `now`. When it is the session's live token, or was
    /// rotated away less than `grace` ago (two tabs refreshing at once), `new_hash` becomes the
    /// session's live token. A token rotated away longer ago revokes the session. Atomic: of two
    /// concurrent calls with the same token, both see the same truth. A session has one live token:
    /// a success marks the presented token, or within the grace window the token that replaced it,
    /// as rotated at `now`. `now` is also the time a reuse revokes the session at.
    async fn refresh(
        &self,
        presented_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        grace: std::time::Duration,
    ) -> Result<RefreshOutcome, StoreError>;

    /// A session by id (revoked or not), `None` when unknown.
    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError>;

    /// Revoke one session (logout). Idempotent; audited only when it changed something.
    async fn revoke_session(&self, id: Uuid, audit: AuditEvent) -> Result<(), StoreError>;

    /// Store a new API key; audited. [`StoreError::NotFound`] for an unknown or deleted user. An
    /// `audit` event without target gets the new key (`key:<id>`): the caller cannot know the id.
    async fn create_api_key(
        &self,
        new: &NewApiKey,
        audit: AuditEvent,
    ) -> Result<ApiKey, StoreError>;

    /// Every key of a user, revoked ones included, newest first.
    async fn api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>, StoreError>;

    /// Revoke a key of `user_id`. [`StoreError::NotFound`] when it is not theirs or unknown (the
    /// caller cannot tell which); idempotent on an already revoked key; audited when it changed.
    async fn revoke_api_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        audit: AuditEvent,
    ) -> Result<(), StoreError>;

    /// A live key (not revoked, not expired at `now`, owner not deleted) by its hash.
    async fn api_key_by_hash(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyOwner>, StoreError>;
}
