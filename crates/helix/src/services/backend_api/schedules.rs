//! The beat's schedules for admins over HTTP: the same operations as `helix schedule`, plus read
//! one and change one. Beats re-read the table at least once a second, so changes apply without a
//! restart.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use helix_jobs::schedule::{
    self, parse_every, Cadence, CatchUp, NewSchedule, ScheduleError, SchedulePatch, ScheduleStore,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::ToSchema;

use super::jobs::job_error;
use super::schema::ErrorBody;
use crate::services::ServiceState;
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSchedule {
    /// 1 to 100 of `a-z 0-9 . _ : -`.
    #[schema(example = "nightly-report")]
    name: String,
    #[schema(example = "noop")]
    kind: String,
    /// A cron expression (5 fields, or 6 with seconds first); give `cron` or `every`.
    #[schema(example = "0 3 * * *")]
    cron: Option<String>,
    /// The cron expression's IANA time zone (default UTC).
    #[schema(example = "Europe/Paris")]
    timezone: Option<String>,
    /// A fixed interval such as `30s`, `5m`, `1h30m`.
    every: Option<String>,
    #[schema(value_type = Object)]
    payload: Option<Value>,
    queue: Option<String>,
    priority: Option<i32>,
    /// `skip` or `run_once` (default).
    catch_up: Option<String>,
    #[serde(default)]
    paused: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeSchedule {
    kind: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
    every: Option<String>,
    #[schema(value_type = Object)]
    payload: Option<Value>,
    queue: Option<String>,
    priority: Option<i32>,
    catch_up: Option<String>,
}

fn schedule_error(e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::Invalid(reason) => ApiError::unprocessable("schedule", &reason),
        ScheduleError::NotFound(_) => ApiError::not_found(),
        ScheduleError::Duplicate(name) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("a schedule named {name:?} already exists"),
        ),
        ScheduleError::Jobs(e) => job_error(e),
        ScheduleError::Store(_) => ApiError::internal(e),
    }
}

fn schedules(state: &ServiceState) -> Result<Arc<dyn ScheduleStore>, ApiError> {
    Ok(schedule::open(&**state.require_store()?))
}

fn cadence(
    cron: Option<&str>,
    timezone: Option<&str>,
    every: Option<&str>,
) -> Result<Option<Cadence>, ScheduleError> {
    match (cron, every) {
        (Some(_), Some(_)) => Err(ScheduleError::invalid("give cron or every, not both")),
        (Some(expr), None) => Cadence::cron(expr, timezone).map(Some),
        (None, Some(every)) => parse_every(every).and_then(Cadence::every).map(Some),
        (None, None) if timezone.is_some() => Err(ScheduleError::invalid(
            "timezone applies to a cron expression",
        )),
        (None, None) => Ok(None),
    }
}

fn check_kind(state: &ServiceState, new: &NewSchedule) -> Result<(), ApiError> {
    let jobs = state
        .jobs()
        .ok_or_else(|| ApiError::internal("backend-api started without a job backend"))?;
    new.check_job(jobs).map_err(schedule_error)
}

/// Add a schedule (admins only).
#[utoipa::path(post, path = "/api/schedules", tag = "jobs", request_body = AddSchedule, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 201, description = "The schedule, with its first fire time"),
    (status = 403, description = "Not an admin", body = ErrorBody),
    (status = 409, description = "The name is taken", body = ErrorBody),
    (status = 422, description = "Invalid cron expression, time zone, interval, kind or payload", body = ErrorBody),
))]
pub async fn add(
    State(state): State<ServiceState>,
    principal: Principal,
    ApiJson(body): ApiJson<AddSchedule>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Admin)?;
    let when = cadence(
        body.cron.as_deref(),
        body.timezone.as_deref(),
        body.every.as_deref(),
    )
    .map_err(schedule_error)?
    .ok_or_else(|| ApiError::unprocessable("schedule", "give cron or every"))?;
    let mut new = NewSchedule::new(body.name, body.kind, when);
    new.payload = body.payload.unwrap_or_else(|| json!({})).to_string();
    new.queue = body.queue.unwrap_or(new.queue);
    new.priority = body.priority.unwrap_or(0);
    if let Some(policy) = body.catch_up.as_deref() {
        new.catch_up = policy.parse::<CatchUp>().map_err(schedule_error)?;
    }
    new.paused = body.paused;
    check_kind(&state, &new)?;
    let added = schedules(&state)?
        .add(new, Utc::now())
        .await
        .map_err(schedule_error)?;
    Ok((StatusCode::CREATED, Json(json!(added))))
}

/// Every schedule, by name (admins only).
#[utoipa::path(get, path = "/api/schedules", tag = "jobs", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "`{schedules: [...]}`"),
    (status = 403, description = "Not an admin", body = ErrorBody),
))]
pub async fn list(
    State(state): State<ServiceState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let all = schedules(&state)?.list().await.map_err(schedule_error)?;
    Ok(Json(json!({ "schedules": all })))
}

/// One schedule (admins only).
#[utoipa::path(get, path = "/api/schedules/{name}", tag = "jobs", params(("name" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "The schedule"),
    (status = 404, description = "No such schedule", body = ErrorBody),
))]
pub async fn get(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let found = schedules(&state)?
        .get(&name)
        .await
        .map_err(schedule_error)?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(json!(found)))
}

/// Change a schedule's job or cadence; a new cadence starts from the first fire time after now
/// (admins only).
#[utoipa::path(patch, path = "/api/schedules/{name}", tag = "jobs", request_body = ChangeSchedule, params(("name" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "The schedule as changed"),
    (status = 404, description = "No such schedule", body = ErrorBody),
    (status = 422, description = "Invalid change", body = ErrorBody),
))]
pub async fn change(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ChangeSchedule>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let store = schedules(&state)?;
    let current = store
        .get(&name)
        .await
        .map_err(schedule_error)?
        .ok_or_else(ApiError::not_found)?;
    let patch = SchedulePatch {
        kind: body.kind,
        queue: body.queue,
        payload: body.payload.map(|p| p.to_string()),
        priority: body.priority,
        cadence: cadence(
            body.cron.as_deref(),
            body.timezone.as_deref(),
            body.every.as_deref(),
        )
        .map_err(schedule_error)?,
        catch_up: body
            .catch_up
            .as_deref()
            .map(str::parse::<CatchUp>)
            .transpose()
            .map_err(schedule_error)?,
    };
    check_kind(&state, &patch.apply_to(&current))?;
    let changed = store
        .update(&name, &patch, Utc::now())
        .await
        .map_err(schedule_error)?;
    Ok(Json(json!(changed)))
}

/// Delete a schedule; jobs it enqueued stay (admins only).
#[utoipa::path(delete, path = "/api/schedules/{name}", tag = "jobs", params(("name" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 204, description = "Deleted"),
    (status = 404, description = "No such schedule", body = ErrorBody),
))]
pub async fn remove(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Admin)?;
    schedules(&state)?
        .remove(&name)
        .await
        .map_err(schedule_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop firing a schedule (admins only).
#[utoipa::path(post, path = "/api/schedules/{name}/pause", tag = "jobs", params(("name" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "The schedule, paused"),
    (status = 404, description = "No such schedule", body = ErrorBody),
))]
pub async fn pause(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let paused = schedules(&state)?
        .pause(&name, Utc::now())
        .await
        .map_err(schedule_error)?;
    Ok(Json(json!(paused)))
}

/// Fire again from the first fire time after now (admins only).
#[utoipa::path(post, path = "/api/schedules/{name}/resume", tag = "jobs", params(("name" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "The schedule, active"),
    (status = 404, description = "No such schedule", body = ErrorBody),
))]
pub async fn resume(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let resumed = schedules(&state)?
        .resume(&name, Utc::now())
        .await
        .map_err(schedule_error)?;
    Ok(Json(json!(resumed)))
}
