//! The caller's own account: `GET /api/me`, `PATCH /api/me` (profile), `DELETE /api/me`.
//!
//! `GET /api/me` is the hottest read of the platform (every client calls it on every start and
//! tab), so each instance keeps a user's answer for [`PROFILE_TTL`]: a change made through this
//! instance shows at once, one made through another instance within that time.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use helix_store::accounts::{Profile, ProfilePatch, User};
use helix_store::audit::AuditEvent;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::schema::{ErrorBody, Me, ProfileBody};

use super::accounts::{auth, store};
use super::validate;
use crate::services::ServiceState;
use crate::shared::auth::cache::TtlCache;
use crate::shared::auth::{password, Principal, Scope};
use crate::shared::error::ApiError;
use crate::shared::json::{ApiJson, ClientIp};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    display_name: Option<String>,
    /// Absent: unchanged; `null`: cleared; a string: set.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
    onboarding_step: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    password: String,
}

/// How long an instance serves a cached `GET /api/me`.
pub const PROFILE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Recently read accounts, by user id.
pub struct ProfileCache(TtlCache<uuid::Uuid, (User, Profile)>);

impl ProfileCache {
    pub fn new() -> Self {
        Self(TtlCache::new(PROFILE_TTL, 100_000))
    }
}

/// A field that is present (even as `null`) becomes `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The caller's account and profile.
#[utoipa::path(get, path = "/api/me", tag = "me", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Me),
    (status = 401, description = "Not authenticated, or the account was deleted", body = ErrorBody),
))]
pub async fn get(
    State(state): State<ServiceState>,
    Extension(cache): Extension<Arc<ProfileCache>>,
    principal: Principal,
) -> Result<Json<Me>, ApiError> {
    principal.require(Scope::Read)?;
    let (user, profile) = match cache.0.get(&principal.user_id) {
        Some(hit) => hit,
        None => {
            let found = store(&state)?
                .accounts()
                .user(principal.user_id)
                .await
                .map_err(ApiError::store)?
                .ok_or_else(gone)?;
            cache.0.put(principal.user_id, found.clone());
            found
        }
    };
    Ok(Json(Me {
        user: user.into(),
        profile: profile.into(),
    }))
}

/// Change the caller's profile; absent fields stay as they are.
#[utoipa::path(patch, path = "/api/me", tag = "me", request_body = Patch, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = ProfileBody),
    (status = 422, description = "A field breaks a rule", body = ErrorBody),
))]
pub async fn patch(
    State(state): State<ServiceState>,
    Extension(cache): Extension<Arc<ProfileCache>>,
    principal: Principal,
    ApiJson(body): ApiJson<Patch>,
) -> Result<Json<ProfileBody>, ApiError> {
    principal.require(Scope::Write)?;
    let patch = ProfilePatch {
        display_name: body
            .display_name
            .as_deref()
            .map(|n| validate::name("display_name", n))
            .transpose()?,
        avatar_url: match body.avatar_url {
            Some(Some(url)) => Some(Some(validate::avatar_url(&url)?)),
            other => other,
        },
        onboarding_step: body
            .onboarding_step
            .map(validate::onboarding_step)
            .transpose()?,
    };
    let profile = store(&state)?
        .accounts()
        .update_profile(principal.user_id, &patch)
        .await
        .map_err(|e| match e {
            helix_store::StoreError::NotFound => gone(),
            other => ApiError::store(other),
        })?;
    cache.0.remove(&principal.user_id);
    Ok(Json(ProfileBody {
        profile: profile.into(),
    }))
}

/// Delete the caller's account. Needs a login session and the password again: a leaked API key
/// or a stolen access token alone cannot do it. Every session and key of the account stops working.
#[utoipa::path(delete, path = "/api/me", tag = "me", request_body = Delete, security(("bearer" = [])), responses(
    (status = 204, description = "Deleted"),
    (status = 401, description = "Wrong password", body = ErrorBody),
    (status = 403, description = "Not a login session", body = ErrorBody),
))]
pub async fn delete(
    State(state): State<ServiceState>,
    Extension(cache): Extension<Arc<ProfileCache>>,
    ip: ClientIp,
    principal: Principal,
    ApiJson(body): ApiJson<Delete>,
) -> Result<StatusCode, ApiError> {
    let Some(session) = principal.session_id() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "deleting an account needs a login session",
        ));
    };
    let accounts = store(&state)?.accounts();
    let (user, _) = accounts
        .user(principal.user_id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(gone)?;
    let record = accounts
        .login_record(&user.email)
        .await
        .map_err(ApiError::store)?;
    if !password::verify(body.password, record.map(|r| r.password_hash)).await {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the password is incorrect",
        ));
    }
    let audit = AuditEvent::new("user_deleted")
        .actor(user.id)
        .target(format!("user:{}", user.id))
        .ip(ip.to_string_opt());
    accounts
        .delete_user(user.id, audit)
        .await
        .map_err(ApiError::store)?;
    cache.0.remove(&user.id);
    let auth = auth(&state)?;
    auth.forget_session(session);
    auth.forget_keys();
    Ok(StatusCode::NO_CONTENT)
}

/// The token is valid but its user is gone.
fn gone() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "account_deleted",
        "this account no longer exists",
    )
}
