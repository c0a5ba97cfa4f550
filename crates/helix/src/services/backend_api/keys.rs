//! API keys of the caller: create (shown once), list (never the secret), revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use helix_store::accounts::NewApiKey;
use helix_store::audit::AuditEvent;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::schema::{ErrorBody, KeyCreated, KeyList};
use uuid::Uuid;

use super::accounts::{auth, store};
use super::validate;
use crate::services::ServiceState;
use crate::shared::auth::{api_key, Principal, Scope, Via};
use crate::shared::error::ApiError;
use crate::shared::json::{ApiJson, ClientIp};

/// A user may hold this many live keys.
const MAX_KEYS_PER_USER: usize = 50;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Create {
    name: String,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
}

fn default_scopes() -> Vec<String> {
    vec!["read".into()]
}

/// Whether `scope` is `agent:<agent_id>` with a well-formed id: the key of one agent of
/// agent-orchestration (it may heartbeat as that agent and move that agent's tasks).
fn is_agent_scope(scope: &str) -> bool {
    scope
        .strip_prefix("agent:")
        .is_some_and(crate::shared::auth::is_agent_id)
}

/// Scopes must be known, and `admin` and `agent:<id>` need an admin.
fn checked_scopes(principal: &Principal, mut scopes: Vec<String>) -> Result<Vec<String>, ApiError> {
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::unprocessable(
            "scopes",
            "give at least one of read, write, admin",
        ));
    }
    let known = |s: &String| Scope::ALL.contains(&s.as_str()) || is_agent_scope(s);
    if let Some(bad) = scopes.iter().find(|s| !known(s)) {
        return Err(ApiError::unprocessable(
            "scopes",
            &format!("unknown scope {bad:?}; expected read, write, admin or agent:<agent_id>"),
        ));
    }
    // An agent key is that agent and nothing more: one agent, and at most `read` beside it.
    let agent_scopes = scopes.iter().filter(|s| is_agent_scope(s)).count();
    let beyond_read = scopes.iter().any(|s| s == "write" || s == "admin");
    if agent_scopes > 1 || (agent_scopes == 1 && beyond_read) {
        return Err(ApiError::unprocessable(
            "scopes",
            "an agent key has one agent:<agent_id> scope and at most read beside it",
        ));
    }
    let privileged = |s: &String| s == "admin" || is_agent_scope(s);
    if scopes.iter().any(privileged) && !principal.role.is_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only admins may create admin or agent keys",
        ));
    }
    Ok(scopes)
}

/// Create an API key for the caller. The key is in this answer and nowhere else, ever.
#[utoipa::path(post, path = "/api/keys", tag = "keys", request_body = Create, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 201, body = KeyCreated),
    (status = 403, description = "An admin or agent scope without being an admin, or a non-admin key minting keys", body = ErrorBody),
    (status = 422, description = "A field breaks a rule", body = ErrorBody),
))]
pub async fn create(
    State(state): State<ServiceState>,
    ip: ClientIp,
    principal: Principal,
    ApiJson(body): ApiJson<Create>,
) -> Result<impl IntoResponse, ApiError> {
    // A key may not mint keys unless it is an admin key: a leaked read key stays a read key.
    if matches!(principal.via, Via::ApiKey { .. }) {
        principal.require(Scope::Admin)?;
    }
    let name = validate::name("name", &body.name)?;
    let scopes = checked_scopes(&principal, body.scopes)?;
    if body.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::unprocessable(
            "expires_at",
            "must be in the future",
        ));
    }
    let accounts = store(&state)?.accounts();
    let live = accounts
        .api_keys(principal.user_id)
        .await
        .map_err(ApiError::store)?;
    if live.iter().filter(|k| k.revoked_at.is_none()).count() >= MAX_KEYS_PER_USER {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_keys",
            "revoke a key before creating another (limit 50)",
        ));
    }
    let generated = api_key::generate();
    let new = NewApiKey {
        user_id: principal.user_id,
        name,
        prefix: generated.prefix,
        hash: generated.hash,
        scopes,
        expires_at: body.expires_at,
    };
    let audit = AuditEvent::new("key_created")
        .actor(principal.user_id)
        .ip(ip.to_string_opt())
        .detail(json!({"name": new.name, "scopes": new.scopes, "prefix": new.prefix}));
    let key = accounts
        .create_api_key(&new, audit)
        .await
        .map_err(ApiError::store)?;
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            meta: key.into(),
            key: generated.key,
        }),
    ))
}

/// The caller's keys, revoked ones included, newest first; never the keys themselves.
#[utoipa::path(get, path = "/api/keys", tag = "keys", security(("bearer" = []), ("api_key" = [])), responses((status = 200, body = KeyList)))]
pub async fn list(
    State(state): State<ServiceState>,
    principal: Principal,
) -> Result<Json<KeyList>, ApiError> {
    principal.require(Scope::Read)?;
    let keys = store(&state)?
        .accounts()
        .api_keys(principal.user_id)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke one of the caller's keys; it stops working at once on this instance and within
/// 30 seconds everywhere.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "keys", params(("id" = String, Path, description = "The key's id")), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 204, description = "Revoked"),
    (status = 404, description = "No such key of the caller", body = ErrorBody),
))]
pub async fn revoke(
    State(state): State<ServiceState>,
    ip: ClientIp,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Write)?;
    // Anything that is not a key id of this user is simply not found.
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
    let audit = AuditEvent::new("key_revoked")
        .actor(principal.user_id)
        .target(format!("key:{id}"))
        .ip(ip.to_string_opt());
    store(&state)?
        .accounts()
        .revoke_api_key(principal.user_id, id, audit)
        .await
        .map_err(ApiError::store)?;
    auth(&state)?.forget_keys();
    Ok(StatusCode::NO_CONTENT)
}
