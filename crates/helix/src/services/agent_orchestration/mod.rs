//! agent-orchestration: the roster of agents ([`agents`]), the tasks addressed to them
//! ([`tasks`]), commands with replies ([`commands`]), and the sweeper that marks silent agents
//! inactive and offers their tasks again ([`sweeper`]). Every change is published on
//! `agent:coordination`.
//!
//! Who may do what: anyone signed in reads the roster; admins (and admins' service keys) register
//! agents, create tasks and send commands; an agent authenticates with an API key carrying the
//! scope `agent:<agent_id>` (minted by an admin) and may heartbeat as itself and move its own
//! tasks. Admins may move any task.

pub mod agents;
pub mod commands;
pub mod roster;
pub mod sweeper;
pub mod tasks;

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use helix_bus::Retention;
use serde_json::Value;

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, JWT_SECRET_VAR};
use crate::services::ServiceState;
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;

/// Where every change is announced.
pub const CHANNEL: &str = "agent:coordination";
/// Where the WebSocket hub hands over heartbeats agents send it (a plain bus channel).
pub const HEARTBEATS: &str = "agent:heartbeats";

/// One agent's own channel: its task offers and commands (readable over the hub with its key).
pub fn agent_channel(agent_id: &str) -> String {
    format!("agent:{agent_id}")
}
/// Seconds without a heartbeat before an agent counts as gone.
pub const TIMEOUT_VAR: &str = "HELIX_AGENT_TIMEOUT_SECS";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The routes agent-orchestration adds; starts the sweeper.
pub fn routes(state: &ServiceState) -> Router<ServiceState> {
    sweeper::spawn(state.clone(), timeout(state));
    sweeper::listen_for_heartbeats(state.clone());
    Router::new()
        .route("/api/agents", get(agents::list).post(agents::create))
        .route("/api/agents/status", get(agents::status))
        .route(
            "/api/agents/{agent_id}",
            get(agents::get).put(agents::update).delete(agents::delete),
        )
        .route("/api/agents/{agent_id}/heartbeat", post(agents::heartbeat))
        .route("/api/agents/{agent_id}/command", post(commands::send))
        .route(
            "/api/agents/{agent_id}/commands/{command_id}/reply",
            post(commands::reply),
        )
        .route("/api/tasks", get(tasks::list).post(tasks::create))
        .route("/api/tasks/{id}", get(tasks::get))
        .route("/api/tasks/{id}/{action}", post(tasks::act))
}

/// How long an agent may stay silent.
pub fn timeout(state: &ServiceState) -> Duration {
    state
        .env()
        .integer(TIMEOUT_VAR)
        .map_or(DEFAULT_TIMEOUT, |s| Duration::from_secs(s.max(1) as u64))
}

/// Whether the caller is an admin acting with write rights (a session, or an admin's key — never
/// an agent key, though an admin minted it).
pub fn is_operator(principal: &Principal) -> bool {
    principal.role.is_admin() && principal.allows(Scope::Write) && principal.agent_scope().is_none()
}

/// Whether the caller is the agent `agent_id` (a key with the scope `agent:<agent_id>`).
pub fn is_agent(principal: &Principal, agent_id: &str) -> bool {
    principal.agent_scope() == Some(agent_id)
}

pub fn forbidden(what: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", what.to_owned())
}

pub fn require_operator(principal: &Principal) -> Result<(), ApiError> {
    if is_operator(principal) {
        Ok(())
    } else {
        Err(forbidden("this takes an admin or an admin's service key"))
    }
}

/// Offer a task: on `agent:coordination` and on its agent's own channel.
pub async fn offer(state: &ServiceState, task: &tasks::TaskOut) {
    let event = serde_json::json!({"type": "task.offered", "task": task});
    announce(state, event.clone()).await;
    append(state, &agent_channel(task.agent_id()), event).await;
}

/// Announce a change on `agent:coordination` (best effort: logged when the bus fails; the
/// database has the change either way).
pub async fn announce(state: &ServiceState, event: Value) {
    append(state, CHANNEL, event).await;
}

async fn append(state: &ServiceState, channel: &str, event: Value) {
    let Some(bus) = state.bus() else { return };
    let payload = Bytes::from(event.to_string());
    if let Err(error) = bus.append(channel, payload, &Retention::default()).await {
        tracing::warn!(%error, channel, "announcing an agent change failed");
    }
}

/// What agent-orchestration declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "agent-orchestration",
    port: Some(8003),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Agents, their tasks and commands, live status on agent:coordination.",
    postgres_why: "agent profiles and tasks with their status history",
    redis_why: "offers tasks to agents and announces changes on agent:coordination",
    vars: &[
        JWT_SECRET_VAR,
        crate::shared::rate_limit::PER_MINUTE_SPEC,
        VarSpec::optional(
            TIMEOUT_VAR,
            "seconds without a heartbeat before an agent is inactive and its tasks are offered again (default 60)",
        )
        .integer(1, 86_400),
    ],
    api_ready: true,
};
