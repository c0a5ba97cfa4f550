//! The roster: register, read, change and remove agents; heartbeats; everyone's status.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use helix_store::agents::{Agent, AgentChange, AgentStatus, NewAgent, TaskQuery, TaskStatus};
use helix_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{announce, forbidden, is_agent, is_operator, require_operator};
use crate::services::ServiceState;
use crate::shared::auth::{is_agent_id, Principal, Scope};
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;

/// An agent in the platform's JSON shape.
#[derive(Debug, Serialize)]
pub struct AgentOut {
    agent_id: String,
    name: String,
    role: String,
    description: String,
    capabilities: Vec<String>,
    status: &'static str,
    last_heartbeat: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Agent> for AgentOut {
    fn from(a: Agent) -> Self {
        Self {
            agent_id: a.agent_id,
            name: a.name,
            role: a.role,
            description: a.description,
            capabilities: a.capabilities,
            status: a.status.as_str(),
            last_heartbeat: a.last_heartbeat,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    agent_id: String,
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    capabilities: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    name: Option<String>,
    role: Option<String>,
    description: Option<String>,
    capabilities: Option<Vec<String>>,
    status: Option<String>,
}

fn not_found(agent_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no agent {agent_id:?}"),
    )
}

/// Register an agent (admins): 201, or 409 when the id is taken.
pub async fn create(
    State(state): State<ServiceState>,
    principal: Principal,
    ApiJson(body): ApiJson<Register>,
) -> Result<(StatusCode, Json<AgentOut>), ApiError> {
    require_operator(&principal)?;
    let new = NewAgent {
        agent_id: checked_id(&body.agent_id)?,
        name: text("name", body.name, 1, 100)?,
        role: text("role", body.role, 0, 100)?,
        description: text("description", body.description, 0, 1000)?,
        capabilities: checked_capabilities(body.capabilities)?,
    };
    let created = state
        .require_store()?
        .agents()
        .create_agent(&new, Utc::now())
        .await;
    let agent = created.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::new(
            StatusCode::CONFLICT,
            "agent_exists",
            format!("agent {:?} is already registered", new.agent_id),
        ),
        other => ApiError::store(other),
    })?;
    announce(
        &state,
        json!({"type": "agent.registered", "agent_id": agent.agent_id}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(agent.into())))
}

/// Every agent (anyone signed in).
pub async fn list(
    State(state): State<ServiceState>,
    principal: Principal,
) -> Result<Json<Vec<AgentOut>>, ApiError> {
    principal.require(Scope::Read)?;
    let agents = state
        .require_store()?
        .agents()
        .agents()
        .await
        .map_err(ApiError::store)?;
    Ok(Json(agents.into_iter().map(AgentOut::from).collect()))
}

pub async fn get(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(agent_id): Path<String>,
) -> Result<Json<AgentOut>, ApiError> {
    principal.require(Scope::Read)?;
    let agent = state.require_store()?.agents().agent(&agent_id).await;
    let agent = agent.map_err(ApiError::store)?;
    agent
        .map(|a| Json(a.into()))
        .ok_or_else(|| not_found(&agent_id))
}

/// Change an agent's profile or status (admins).
pub async fn update(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(agent_id): Path<String>,
    ApiJson(body): ApiJson<Change>,
) -> Result<Json<AgentOut>, ApiError> {
    require_operator(&principal)?;
    let change = AgentChange {
        name: body.name.map(|n| text("name", n, 1, 100)).transpose()?,
        role: body.role.map(|r| text("role", r, 0, 100)).transpose()?,
        description: body
            .description
            .map(|d| text("description", d, 0, 1000))
            .transpose()?,
        capabilities: body.capabilities.map(checked_capabilities).transpose()?,
        status: body.status.as_deref().map(checked_status).transpose()?,
    };
    let updated = state
        .require_store()?
        .agents()
        .update_agent(&agent_id, &change, Utc::now())
        .await
        .map_err(ApiError::store)?;
    let agent = updated.ok_or_else(|| not_found(&agent_id))?;
    announce(&state, json!({"type": "agent.updated", "agent_id": agent.agent_id, "status": agent.status.as_str()})).await;
    Ok(Json(agent.into()))
}

/// Remove an agent and its tasks (admins).
pub async fn delete(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(agent_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_operator(&principal)?;
    let deleted = state
        .require_store()?
        .agents()
        .delete_agent(&agent_id)
        .await;
    if !deleted.map_err(ApiError::store)? {
        return Err(not_found(&agent_id));
    }
    announce(
        &state,
        json!({"type": "agent.removed", "agent_id": agent_id}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The agent says it is alive (its own key, or an admin).
pub async fn heartbeat(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(agent_id): Path<String>,
) -> Result<Json<AgentOut>, ApiError> {
    if !is_agent(&principal, &agent_id) && !is_operator(&principal) {
        return Err(forbidden(
            "only the agent itself (its agent key) or an admin may heartbeat",
        ));
    }
    let agent = record_heartbeat(&state, &agent_id).await;
    let agent = agent
        .map_err(ApiError::store)?
        .ok_or_else(|| not_found(&agent_id))?;
    Ok(Json(agent.into()))
}

/// Record a heartbeat (over HTTP, or handed over by the WebSocket hub) and announce the agent's
/// waking up; `None` for an unknown agent.
pub async fn record_heartbeat(
    state: &ServiceState,
    agent_id: &str,
) -> Result<Option<Agent>, StoreError> {
    let Some(store) = state.store() else {
        return Ok(None);
    };
    let now = Utc::now();
    let Some(agent) = store.agents().heartbeat(agent_id, now).await? else {
        return Ok(None);
    };
    // The store touches `updated_at` only when the heartbeat woke the agent: decided by the
    // update itself, so a sweep racing this heartbeat cannot hide the change.
    if agent.updated_at.timestamp_micros() == now.timestamp_micros() {
        let event = json!({"type": "agent.status", "agent_id": agent.agent_id, "status": agent.status.as_str()});
        announce(state, event).await;
    }
    Ok(Some(agent))
}

/// Every agent's last heartbeat, state and current task (anyone signed in).
pub async fn status(
    State(state): State<ServiceState>,
    principal: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require(Scope::Read)?;
    let agents = state.require_store()?.agents();
    let roster = agents.agents().await.map_err(ApiError::store)?;
    let mut out = Vec::with_capacity(roster.len());
    for agent in roster {
        let current = current_task(agents, &agent.agent_id).await?;
        out.push(json!({
            "agent_id": agent.agent_id,
            "status": agent.status.as_str(),
            "last_heartbeat": agent.last_heartbeat,
            "current_task": current,
        }));
    }
    Ok(Json(json!({"agents": out})))
}

/// The id of the task the agent works on now (running, else claimed), if any.
async fn current_task(
    agents: &dyn helix_store::Agents,
    agent_id: &str,
) -> Result<Option<uuid::Uuid>, ApiError> {
    for status in [TaskStatus::Running, TaskStatus::Claimed] {
        let query = TaskQuery {
            agent_id: Some(agent_id.to_owned()),
            status: Some(status),
            before: None,
            limit: 1,
        };
        let found = agents.tasks(&query).await.map_err(ApiError::store)?;
        if let Some(task) = found.into_iter().next() {
            return Ok(Some(task.id));
        }
    }
    Ok(None)
}

/// An agent id from a request (see [`is_agent_id`]); 422 otherwise.
pub fn checked_id(id: &str) -> Result<String, ApiError> {
    if is_agent_id(id) {
        Ok(id.to_owned())
    } else {
        Err(ApiError::unprocessable(
            "agent_id",
            "must be 1 to 64 of a-z, 0-9, '-' and '_' (not coordination or heartbeats)",
        ))
    }
}

fn text(field: &str, value: String, min: usize, max: usize) -> Result<String, ApiError> {
    let value = value.trim().to_owned();
    let count = value.chars().count();
    if count < min || count > max || value.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            field,
            &format!("must be {min} to {max} characters without control characters"),
        ));
    }
    Ok(value)
}

fn checked_capabilities(capabilities: Vec<String>) -> Result<Vec<String>, ApiError> {
    let ok = capabilities.len() <= 50
        && capabilities
            .iter()
            .all(|c| !c.is_empty() && c.len() <= 64 && !c.chars().any(char::is_control));
    if ok {
        Ok(capabilities)
    } else {
        Err(ApiError::unprocessable(
            "capabilities",
            "at most 50, each 1 to 64 characters",
        ))
    }
}

fn checked_status(status: &str) -> Result<AgentStatus, ApiError> {
    AgentStatus::parse(status)
        .ok_or_else(|| ApiError::unprocessable("status", "must be active, inactive or busy"))
}
