//! Background jobs for admins over HTTP: enqueue, list by state, inspect, retry, cancel, and
//! per-queue stats — the same operations as `helix jobs`, on the engine the service's
//! `HELIX_QUEUE_BACKEND` selects.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use helix_jobs::{
    EnqueueOptions, JobError, JobId, JobState, Jobs, ListFilter, OnDuplicate, Unique,
};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::schema::ErrorBody;
use crate::services::ServiceState;
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// scheduled, available, running, retryable, completed, failed or cancelled.
    state: Option<String>,
    queue: Option<String>,
    /// At most this many (default 50, at most 1000).
    limit: Option<u32>,
    /// Only jobs older than this id (the `next_before` of the previous page).
    before: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueBody {
    /// A registered job kind (`noop` is built in).
    #[schema(example = "noop")]
    kind: String,
    /// The job's payload, which must fit the kind (default `{}`).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object, example = json!({"sleep_ms": 10}))]
    payload: Value,
    queue: Option<String>,
    /// How many identical jobs (default 1, at most 10,000).
    count: Option<usize>,
    /// Seconds before the jobs become available.
    delay_secs: Option<f64>,
    /// -100 to 100; higher runs first.
    priority: Option<i32>,
    max_attempts: Option<u32>,
    timeout_secs: Option<u64>,
    /// An idempotency key: a second enqueue within the window adds nothing.
    unique_key: Option<String>,
    /// Seconds the key is held (default 3600).
    unique_window_secs: Option<u64>,
    /// `merge` (default: answer with the existing job) or `reject` (409).
    on_duplicate: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

fn jobs(state: &ServiceState) -> Result<&Jobs, ApiError> {
    state
        .jobs()
        .ok_or_else(|| ApiError::internal("backend-api started without a job backend"))
}

/// A job-layer failure as an HTTP error.
pub fn job_error(e: JobError) -> ApiError {
    match e {
        JobError::NotFound(_) => ApiError::not_found(),
        JobError::Conflict { state, action, .. } => {
            let mut err = ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("the job is {state}: cannot {action} it"),
            );
            err.fields.insert("state".into(), json!(state));
            err
        }
        JobError::Duplicate { existing, .. } => {
            let mut err = ApiError::new(
                StatusCode::CONFLICT,
                "duplicate",
                "a job with this unique key was enqueued within its window",
            );
            err.fields.insert("existing".into(), json!(existing));
            err
        }
        JobError::UnknownKind(kind) => {
            ApiError::unprocessable("kind", &format!("unknown job kind {kind:?}"))
        }
        JobError::Invalid(reason) => ApiError::unprocessable("job", &reason),
        JobError::Unavailable { .. } => {
            tracing::warn!(error = %e, "job backend unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                "the job queue is unreachable; retry shortly",
            )
        }
        JobError::Backend(_) => ApiError::internal(e),
    }
}

fn job_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// Enqueue jobs of one kind (admins only).
#[utoipa::path(post, path = "/api/jobs", tag = "jobs", request_body = EnqueueBody, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 201, description = "`{ids, inserted}`: the jobs' ids (a merged duplicate names the existing job) and how many were added"),
    (status = 403, description = "Not an admin", body = ErrorBody),
    (status = 409, description = "on_duplicate=reject and the unique key is held", body = ErrorBody),
    (status = 422, description = "Unknown kind, a payload that does not fit it, or an option out of range", body = ErrorBody),
    (status = 503, description = "The job queue is unreachable", body = ErrorBody),
))]
pub async fn enqueue(
    State(state): State<ServiceState>,
    principal: Principal,
    ApiJson(body): ApiJson<EnqueueBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Admin)?;
    let options = options(&body)?;
    let payload = body.payload.to_string();
    let out = jobs(&state)?
        .enqueue_json(&body.kind, &payload, &options, body.count.unwrap_or(1))
        .await
        .map_err(job_error)?;
    let inserted = out.iter().filter(|e| e.inserted).count();
    let ids: Vec<_> = out.iter().map(|e| e.id).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({"ids": ids, "inserted": inserted})),
    ))
}

fn options(body: &EnqueueBody) -> Result<EnqueueOptions, ApiError> {
    let secs = |field: &str, s: f64| {
        Duration::try_from_secs_f64(s)
            .map_err(|_| ApiError::unprocessable(field, "0 or more seconds"))
    };
    let on_duplicate = match body.on_duplicate.as_deref() {
        None | Some("merge") => OnDuplicate::Merge,
        Some("reject") => OnDuplicate::Reject,
        Some(_) => return Err(ApiError::unprocessable("on_duplicate", "merge or reject")),
    };
    let unique = body.unique_key.clone().map(|key| {
        let window = Duration::from_secs(body.unique_window_secs.unwrap_or(3600));
        (Unique { key, window }, on_duplicate)
    });
    Ok(EnqueueOptions {
        queue: body.queue.clone(),
        priority: body.priority.unwrap_or(0),
        delay: secs("delay_secs", body.delay_secs.unwrap_or(0.0))?,
        max_attempts: body.max_attempts,
        timeout: body.timeout_secs.map(Duration::from_secs),
        unique,
    })
}

/// Jobs, newest first, by state and queue (admins only).
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", params(ListQuery), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "`{jobs, next_before}`"),
    (status = 403, description = "Not an admin", body = ErrorBody),
    (status = 422, description = "Unknown state", body = ErrorBody),
))]
pub async fn list(
    State(state): State<ServiceState>,
    principal: Principal,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let Query(query) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    let job_state = query
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| ApiError::unprocessable("state", &e))?;
    let before = query
        .before
        .as_deref()
        .map(|b| {
            b.parse::<JobId>()
                .map_err(|_| ApiError::unprocessable("before", "a job id"))
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let filter = ListFilter {
        state: job_state,
        queue: query.queue,
        limit,
        before,
    };
    let found = jobs(&state)?
        .backend()
        .list(&filter)
        .await
        .map_err(job_error)?;
    let next = (found.len() as u32 == limit)
        .then(|| found.last().map(|j| j.id))
        .flatten();
    Ok(Json(json!({"jobs": found, "next_before": next})))
}

/// Per queue: jobs by state, the oldest waiting job's age, totals and lease expiries (admins only).
#[utoipa::path(get, path = "/api/jobs/stats", tag = "jobs", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "`{queues: [...]}`"),
    (status = 403, description = "Not an admin", body = ErrorBody),
))]
pub async fn stats(
    State(state): State<ServiceState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let stats = jobs(&state)?.backend().stats().await.map_err(job_error)?;
    Ok(Json(json!({ "queues": stats })))
}

/// One job, with its errors per attempt (admins only).
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "The job"),
    (status = 404, description = "No such job", body = ErrorBody),
))]
pub async fn get(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let job = jobs(&state)?
        .backend()
        .get(job_id(&id)?)
        .await
        .map_err(job_error)?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(json!(job)))
}

/// Run a failed, cancelled, retryable or scheduled job again now with fresh attempts (admins only).
#[utoipa::path(post, path = "/api/jobs/{id}/retry", tag = "jobs", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "The job, available again"),
    (status = 404, description = "No such job", body = ErrorBody),
    (status = 409, description = "Running, available or completed: nothing to retry", body = ErrorBody),
))]
pub async fn retry(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let job = jobs(&state)?
        .backend()
        .retry(job_id(&id)?)
        .await
        .map_err(job_error)?;
    Ok(Json(json!(job)))
}

/// Cancel a job that has not finished; a running one's worker stops it (admins only).
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "The job, cancelled"),
    (status = 404, description = "No such job", body = ErrorBody),
    (status = 409, description = "Already completed, failed or cancelled", body = ErrorBody),
))]
pub async fn cancel(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let job = jobs(&state)?
        .backend()
        .cancel(job_id(&id)?)
        .await
        .map_err(job_error)?;
    Ok(Json(json!(job)))
}
