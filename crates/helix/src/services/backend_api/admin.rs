//! Admin endpoints: page through the audit log, change a user's role.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use helix_store::accounts::Role;
use helix_store::audit::AuditEvent;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::schema::{AuditPage, ErrorBody};
use uuid::Uuid;

use super::accounts::store;
use crate::services::ServiceState;
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;
use crate::shared::json::{ApiJson, ClientIp};
use crate::shared::maintenance;

const MAX_PAGE: u32 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries after this sequence number (0: from the start).
    #[serde(default)]
    after: i64,
    /// At most this many entries (default 100, at most 1000).
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// `user` or `admin`.
    #[schema(value_type = String, example = "admin")]
    role: Role,
}

/// The audit log in order, a page at a time (admins only).
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(AuditQuery), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = AuditPage),
    (status = 403, description = "Not an admin", body = ErrorBody),
))]
pub async fn audit(
    State(state): State<ServiceState>,
    principal: Principal,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    principal.require(Scope::Admin)?;
    let Query(query) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let entries = store(&state)?
        .audit()
        .page(query.after.max(0), limit)
        .await
        .map_err(ApiError::store)?;
    let next = (entries.len() as u32 == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries: entries.into_iter().map(Into::into).collect(),
        next_after: next,
    }))
}

/// Make a user an admin, or a plain user again (admins only). The creator role comes from
/// configuration only.
#[utoipa::path(put, path = "/api/admin/users/{id}/role", tag = "admin", request_body = RoleChange, params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 204, description = "Changed"),
    (status = 403, description = "Not an admin, or the target is the creator", body = ErrorBody),
    (status = 404, description = "No such user", body = ErrorBody),
))]
pub async fn set_role(
    State(state): State<ServiceState>,
    ip: ClientIp,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Admin)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
    if body.role == Role::Creator {
        return Err(ApiError::unprocessable(
            "role",
            "the creator is set by HELIX_CREATOR_EMAIL, not through the API",
        ));
    }
    let accounts = store(&state)?.accounts();
    let (user, profile) = accounts
        .user(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(ApiError::not_found)?;
    if user.role == Role::Creator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the creator's role cannot be changed",
        ));
    }
    let audit = AuditEvent::new("role_changed")
        .actor(principal.user_id)
        .target(format!("user:{id}"))
        .ip(ip.to_string_opt())
        .detail(json!({"from": user.role.as_str(), "to": body.role.as_str()}));
    accounts
        .set_role(id, body.role, profile.trust_level, audit)
        .await
        .map_err(ApiError::store)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceChange {
    on: bool,
    message: Option<String>,
    retry_after: Option<u64>,
}

/// The maintenance switch as this instance sees it (admins only).
#[utoipa::path(get, path = "/api/admin/maintenance", tag = "admin", security(("bearer" = []), ("api_key" = [])), responses((status = 200, body = maintenance::Switch)))]
pub async fn maintenance_status(
    State(state): State<ServiceState>,
    principal: Principal,
) -> Result<Json<maintenance::Switch>, ApiError> {
    principal.require(Scope::Admin)?;
    Ok(Json(
        state
            .maintenance()
            .get()
            .unwrap_or_else(maintenance::Switch::off),
    ))
}

/// Flip maintenance mode for every service of the deployment (admins only): all answer 503
/// except `/health`, `/metrics` and this switch.
#[utoipa::path(put, path = "/api/admin/maintenance", tag = "admin", request_body = MaintenanceChange, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = maintenance::Switch),
    (status = 403, description = "Not an admin", body = ErrorBody),
))]
pub async fn set_maintenance(
    State(state): State<ServiceState>,
    ip: ClientIp,
    principal: Principal,
    ApiJson(body): ApiJson<MaintenanceChange>,
) -> Result<Json<maintenance::Switch>, ApiError> {
    principal.require(Scope::Admin)?;
    let switch = maintenance::switch(body.on, body.message, body.retry_after)
        .map_err(|(field, why)| ApiError::unprocessable(field, why))?;
    let audit = AuditEvent::new("maintenance_changed")
        .actor(principal.user_id)
        .target("maintenance")
        .ip(ip.to_string_opt())
        .detail(json!({"on": switch.on, "message": switch.message}));
    store(&state)?
        .meta_put_audited(maintenance::KEY, &switch.to_json(), audit)
        .await
        .map_err(ApiError::store)?;
    state.maintenance().flip(switch.clone());
    if let Some(bus) = state.bus() {
        maintenance::announce(&**bus, &switch).await;
    }
    Ok(Json(switch))
}
