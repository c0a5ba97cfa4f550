//! Signup, login, refresh and logout.
//!
//! Login answers the same 401 for an unknown email and a wrong password, after the same Argon2
//! work (see `shared::auth::password`). Every outcome that matters for security is audited.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use helix_store::accounts::{NewUser, RefreshOutcome, Role};
use helix_store::audit::AuditEvent;
use helix_store::Store;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::schema::{ErrorBody, SignedUp, TokenResponse};
use super::tokens::{self, SESSION_TTL};
use super::validate;
use crate::services::ServiceState;
use crate::shared::auth::{password, Authenticator, Principal};
use crate::shared::error::ApiError;
use crate::shared::json::{ApiJson, ClientIp};
use crate::shared::rate_limit;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    email: String,
    password: String,
    display_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    refresh_token: String,
}

/// backend-api always has a store; this only guards against a wiring mistake.
pub(super) fn store(state: &ServiceState) -> Result<&Arc<dyn Store>, ApiError> {
    state.require_store()
}

pub(super) fn bus(state: &ServiceState) -> Result<&dyn helix_bus::Bus, ApiError> {
    state
        .bus()
        .map(|b| &**b)
        .ok_or_else(|| ApiError::internal("backend-api started without a bus"))
}

pub(super) fn auth(state: &ServiceState) -> Result<&Arc<Authenticator>, ApiError> {
    state
        .auth()
        .ok_or_else(|| ApiError::internal("backend-api started without JWT_SECRET"))
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "the email or password is incorrect",
    )
}

/// Create an account and log it in.
#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = Signup, responses(
    (status = 201, description = "Created and logged in", body = SignedUp),
    (status = 409, description = "The email is taken (`email_taken`)", body = ErrorBody),
    (status = 422, description = "A field breaks a rule", body = ErrorBody),
    (status = 429, description = "Too many signups from this address", body = ErrorBody),
))]
pub async fn signup(
    State(state): State<ServiceState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<Signup>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(addr) = ip.0 {
        let limit = rate_limit::per_minute(
            state.env(),
            "signup-ip",
            rate_limit::PER_IP_VAR,
            rate_limit::DEFAULT_PER_IP,
        );
        rate_limit::check(bus(&state)?, limit, &addr.to_string()).await?;
    }
    let email = validate::email(&body.email)?;
    let display_name = validate::name("display_name", &body.display_name)?;
    password::check_rules(&body.password, &email)
        .map_err(|rule| ApiError::unprocessable("password", &rule.to_string()))?;
    let creator = state
        .env()
        .get("HELIX_CREATOR_EMAIL")
        .and_then(|c| validate::email(c).ok())
        .is_some_and(|c| c == email);
    let (role, trust_level) = if creator {
        (Role::Creator, 1.0)
    } else {
        (Role::User, 0.0)
    };
    let password_hash = password::hash(body.password).await;
    let new = NewUser {
        email: email.clone(),
        password_hash,
        display_name,
        role,
        trust_level,
    };
    let audit = AuditEvent::new("signup")
        .ip(ip.to_string_opt())
        .detail(json!({"email": email, "role": role.as_str()}));
    let (user, profile) = store(&state)?
        .accounts()
        .create_user(&new, audit)
        .await
        .map_err(|e| match e {
            helix_store::StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "an account with this email already exists",
            ),
            other => ApiError::store(other),
        })?;
    let tokens = open_session(&state, user.id, role, ip, "signup_session").await?;
    Ok((
        StatusCode::CREATED,
        Json(SignedUp {
            user: user.into(),
            profile: profile.into(),
            tokens,
        }),
    ))
}

/// Log in with email and password. An unknown email and a wrong password get the same answer.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = Login, responses(
    (status = 200, description = "Logged in", body = TokenResponse),
    (status = 401, description = "`invalid_credentials`", body = ErrorBody),
    (status = 429, description = "Too many attempts for this account or address", body = ErrorBody),
))]
pub async fn login(
    State(state): State<ServiceState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<Login>,
) -> Result<Json<TokenResponse>, ApiError> {
    let store = store(&state)?;
    // A malformed email cannot match an account, but it must cost the same as one that could.
    let email = validate::email(&body.email).unwrap_or_default();
    if let Some(addr) = ip.0 {
        let limit = rate_limit::per_minute(
            state.env(),
            "login-ip",
            rate_limit::PER_IP_VAR,
            rate_limit::DEFAULT_PER_IP,
        );
        rate_limit::check(bus(&state)?, limit, &addr.to_string()).await?;
    }
    let limit = rate_limit::per_minute(
        state.env(),
        "login-account",
        rate_limit::PER_ACCOUNT_VAR,
        rate_limit::DEFAULT_PER_ACCOUNT,
    );
    rate_limit::check(bus(&state)?, limit, &email).await?;
    let record = if email.is_empty() {
        None
    } else {
        store
            .accounts()
            .login_record(&email)
            .await
            .map_err(ApiError::store)?
    };
    let ok = password::verify(
        body.password,
        record.as_ref().map(|r| r.password_hash.clone()),
    )
    .await;
    match record {
        Some(record) if ok => open_session(&state, record.user_id, record.role, ip, "login")
            .await
            .map(Json),
        known => {
            let mut event = AuditEvent::new("login_failed")
                .ip(ip.to_string_opt())
                .detail(json!({"email": email}));
            if let Some(record) = known {
                event = event.target(format!("user:{}", record.user_id));
            }
            store.audit().append(event).await.map_err(ApiError::store)?;
            Err(invalid_credentials())
        }
    }
}

/// Start a session and answer with its first tokens; `action` names the audit entry.
async fn open_session(
    state: &ServiceState,
    user: uuid::Uuid,
    role: Role,
    ip: ClientIp,
    action: &str,
) -> Result<TokenResponse, ApiError> {
    let (refresh, hash) = tokens::new_refresh();
    let expires_at = Utc::now() + SESSION_TTL;
    let audit = AuditEvent::new(action)
        .actor(user)
        .target(format!("user:{user}"))
        .ip(ip.to_string_opt());
    let session = store(state)?
        .accounts()
        .create_session(user, &hash, expires_at, audit)
        .await
        .map_err(ApiError::store)?;
    Ok(tokens::response(
        auth(state)?.jwt(),
        user,
        session.id,
        role,
        refresh,
    ))
}

/// Trade a refresh token for new tokens (the old refresh token is used up). Presenting a used
/// token again after the grace window ends the whole session.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = Refresh, responses(
    (status = 200, description = "New tokens", body = TokenResponse),
    (status = 401, description = "`invalid_refresh_token` or `refresh_token_reused`", body = ErrorBody),
))]
pub async fn refresh(
    State(state): State<ServiceState>,
    ApiJson(body): ApiJson<Refresh>,
) -> Result<Json<TokenResponse>, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
            "the refresh token is not valid; log in again",
        )
    };
    let presented = tokens::presented(body.refresh_token.trim()).ok_or_else(invalid)?;
    let (next, next_hash) = tokens::new_refresh();
    let outcome = store(&state)?
        .accounts()
        .refresh(
            &presented,
            &next_hash,
            Utc::now(),
            tokens::refresh_grace(state.env()),
        )
        .await
        .map_err(ApiError::store)?;
    match outcome {
        RefreshOutcome::Rotated { session, role } => Ok(Json(tokens::response(
            auth(&state)?.jwt(),
            session.user_id,
            session.id,
            role,
            next,
        ))),
        RefreshOutcome::ReuseDetected { session_id, .. } => {
            auth(&state)?.forget_session(session_id);
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "this refresh token was already used; the session has been ended for safety, log in again",
            ))
        }
        RefreshOutcome::Invalid => Err(invalid()),
    }
}

/// End the caller's session; its tokens stop working.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])), responses(
    (status = 204, description = "Logged out"),
    (status = 401, description = "Not authenticated", body = ErrorBody),
))]
pub async fn logout(
    State(state): State<ServiceState>,
    ip: ClientIp,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    let Some(session) = principal.session_id() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_a_session",
            "logout ends a login session; revoke an API key with DELETE /api/keys/{id}",
        ));
    };
    let audit = AuditEvent::new("logout")
        .actor(principal.user_id)
        .target(format!("session:{session}"))
        .ip(ip.to_string_opt());
    store(&state)?
        .accounts()
        .revoke_session(session, audit)
        .await
        .map_err(ApiError::store)?;
    auth(&state)?.forget_session(session);
    Ok(StatusCode::NO_CONTENT)
}
