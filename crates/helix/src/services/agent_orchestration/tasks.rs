//! Tasks: created by admins for one agent, offered on `agent:coordination`, then claimed,
//! started, reported on, and completed, failed or cancelled by that agent (or an admin), only
//! forward (`POST /api/tasks/{id}/claim|start|progress|complete|fail|cancel`). Every move is one
//! compare-and-set in the store: of two concurrent claims one wins, the other gets 409 with the
//! status it lost to.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use helix_store::agents::{Moved, NewTask, Task, TaskPatch, TaskQuery, TaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::agents::checked_id;
use super::{announce, forbidden, is_agent, is_operator, offer, require_operator};
use crate::services::ServiceState;
use crate::shared::auth::Principal;
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;

/// Largest `task_data` (serialised), and the same for a progress report or a result.
pub const MAX_DATA_BYTES: usize = 32 * 1024;
const MAX_PAGE: u32 = 200;

#[derive(Debug, Serialize)]
pub struct TaskOut {
    id: Uuid,
    agent_id: String,
    task_type: String,
    task_data: Value,
    status: &'static str,
    progress: Option<Value>,
    result: Option<Value>,
    error: Option<String>,
    attempts: i32,
    created_by: Uuid,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    claimed_at: Option<DateTime<Utc>>,
}

impl TaskOut {
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }
}

impl From<Task> for TaskOut {
    fn from(t: Task) -> Self {
        Self {
            id: t.id,
            agent_id: t.agent_id,
            task_type: t.task_type,
            task_data: t.task_data,
            status: t.status.as_str(),
            progress: t.progress,
            result: t.result,
            error: t.error,
            attempts: t.attempts,
            created_by: t.created_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
            claimed_at: t.claimed_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    agent_id: String,
    task_type: String,
    #[serde(default)]
    task_data: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    agent_id: Option<String>,
    status: Option<String>,
    /// Tasks older than this one (the `next_before` of the previous page).
    before: Option<Uuid>,
    limit: Option<u32>,
}

/// What a move may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    progress: Option<Value>,
    result: Option<Value>,
    error: Option<String>,
}

/// Create a task for an agent (admins); it is offered on `agent:coordination`.
pub async fn create(
    State(state): State<ServiceState>,
    principal: Principal,
    ApiJson(body): ApiJson<Create>,
) -> Result<(StatusCode, Json<TaskOut>), ApiError> {
    require_operator(&principal)?;
    let new = NewTask {
        id: Uuid::now_v7(),
        agent_id: checked_id(&body.agent_id)?,
        task_type: checked_type(&body.task_type)?,
        task_data: sized("task_data", body.task_data)?,
        created_by: principal.user_id,
    };
    let created = state
        .require_store()?
        .agents()
        .create_task(&new, Utc::now())
        .await;
    let task = created.map_err(|e| match e {
        helix_store::StoreError::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no agent {:?}", new.agent_id),
        ),
        other => ApiError::store(other),
    })?;
    let out = TaskOut::from(task);
    offer(&state, &out).await;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Tasks newest first: admins see all, an agent its own.
pub async fn list(
    State(state): State<ServiceState>,
    principal: Principal,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    let allowed = is_operator(&principal)
        || q.agent_id
            .as_deref()
            .is_some_and(|a| is_agent(&principal, a));
    if !allowed {
        return Err(forbidden(
            "admins see every task; an agent lists its own with agent_id=",
        ));
    }
    let status = q
        .status
        .as_deref()
        .map(|s| TaskStatus::parse(s).ok_or_else(bad_status))
        .transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let query = TaskQuery {
        agent_id: q.agent_id,
        status,
        before: q.before,
        limit,
    };
    let tasks = state
        .require_store()?
        .agents()
        .tasks(&query)
        .await
        .map_err(ApiError::store)?;
    let next = (tasks.len() == limit as usize)
        .then(|| tasks.last().map(|t| t.id))
        .flatten();
    let tasks: Vec<TaskOut> = tasks.into_iter().map(TaskOut::from).collect();
    Ok(Json(json!({"tasks": tasks, "next_before": next})))
}

pub async fn get(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<TaskOut>, ApiError> {
    let task = visible_task(&state, &principal, task_id(&id)?).await?;
    Ok(Json(task.into()))
}

/// A task the caller may see (admins, its agent); 404 otherwise, never 403.
async fn visible_task(
    state: &ServiceState,
    principal: &Principal,
    id: Uuid,
) -> Result<Task, ApiError> {
    let task = state
        .require_store()?
        .agents()
        .task(id)
        .await
        .map_err(ApiError::store)?;
    task.filter(|t| is_operator(principal) || is_agent(principal, &t.agent_id))
        .ok_or_else(ApiError::not_found)
}

/// Move a task: `claim`, `start`, `progress` (while running), `complete` (with `result`), `fail`
/// (with `error`), `cancel`.
pub async fn act(
    State(state): State<ServiceState>,
    principal: Principal,
    Path((id, action)): Path<(String, String)>,
    body: Option<ApiJson<Report>>,
) -> Result<Json<TaskOut>, ApiError> {
    let id = task_id(&id)?;
    let (to, patch) = planned(&action, body.map(|b| b.0).unwrap_or_default())?;
    // An agent moves only its own tasks, checked in the move itself (no read first): another
    // agent's task answers 404 like a missing one.
    let by = match is_operator(&principal) {
        true => None,
        false => Some(principal.agent_scope().ok_or_else(ApiError::not_found)?),
    };
    let moved = state
        .require_store()?
        .agents()
        .move_task(id, to, &patch, by, Utc::now())
        .await
        .map_err(ApiError::store)?;
    match moved {
        Moved::Moved(task) => {
            let out = TaskOut::from(task);
            announce(
                &state,
                json!({"type": format!("task.{}", out.status), "task": &out}),
            )
            .await;
            Ok(Json(out))
        }
        Moved::Refused { current } => {
            let mut error = ApiError::new(
                StatusCode::CONFLICT,
                "illegal_transition",
                format!("a {} task cannot {action}", current.as_str()),
            );
            error
                .fields
                .insert("status".into(), current.as_str().into());
            Err(error)
        }
        Moved::NotFound => Err(ApiError::not_found()),
    }
}

/// The status an action moves to, and what it records.
fn planned(action: &str, report: Report) -> Result<(TaskStatus, TaskPatch), ApiError> {
    let progress = report.progress.map(|p| sized("progress", p)).transpose()?;
    let result = report.result.map(|r| sized("result", r)).transpose()?;
    let error = report
        .error
        .map(|e| e.chars().take(2000).collect::<String>());
    let patch = TaskPatch {
        progress,
        result,
        error,
    };
    let to = match action {
        "claim" => TaskStatus::Claimed,
        "start" | "progress" => TaskStatus::Running,
        "complete" => TaskStatus::Completed,
        "fail" => TaskStatus::Failed,
        "cancel" => TaskStatus::Cancelled,
        _ => return Err(ApiError::not_found()),
    };
    Ok((to, patch))
}

/// A task id from the path; anything that is not a UUID names no task (404).
fn task_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found())
}

fn checked_type(task_type: &str) -> Result<String, ApiError> {
    let ok = !task_type.is_empty()
        && task_type.len() <= 64
        && task_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(task_type.to_owned())
    } else {
        Err(ApiError::unprocessable(
            "task_type",
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        ))
    }
}

/// JSON no larger than [`MAX_DATA_BYTES`] serialised; 413 naming the field otherwise.
fn sized(field: &str, value: Value) -> Result<Value, ApiError> {
    let size = value.to_string().len();
    if size > MAX_DATA_BYTES {
        let mut error = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{field} is {size} bytes; at most {MAX_DATA_BYTES}"),
        );
        error.fields.insert("field".into(), field.into());
        return Err(error);
    }
    Ok(value)
}

fn bad_status() -> ApiError {
    ApiError::unprocessable(
        "status",
        "must be pending, claimed, running, completed, failed or cancelled",
    )
}
