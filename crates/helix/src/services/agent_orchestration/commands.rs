//! Commands: an admin sends a command to an agent and waits for its reply.
//!
//! Flow: the request listens on the reply channel `agent:<id>:reply:<command_id>` → appends
//! `{"type":"command",…,"reply_to":…}` on the agent's own channel `agent:<id>` → the agent
//! (listening on the bus, or over the WebSocket hub with its agent key) answers with
//! `POST /api/agents/{id}/commands/{command_id}/reply`, which any instance publishes on the
//! reply channel → the waiting request answers 200 with the reply, or 504 after the timeout.
//! Commands are not stored: one that nobody answers is simply timed out.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use helix_bus::{Event, Retention};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{forbidden, is_agent, is_operator, require_operator};
use crate::services::ServiceState;
use crate::shared::auth::Principal;
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;

const DEFAULT_TIMEOUT_MS: u64 = 5000;
const MAX_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    command: String,
    #[serde(default)]
    args: Value,
    /// How long to wait for the reply (100 to 30000 ms, default 5000).
    timeout_ms: Option<u64>,
}

fn reply_channel(agent_id: &str, command_id: Uuid) -> String {
    format!("agent:{agent_id}:reply:{command_id}")
}

/// Send a command and wait for the agent's reply (admins).
pub async fn send(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(agent_id): Path<String>,
    ApiJson(body): ApiJson<Command>,
) -> Result<Json<Value>, ApiError> {
    require_operator(&principal)?;
    let timeout_ms = body.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(100..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ApiError::unprocessable(
            "timeout_ms",
            "must be from 100 to 30000",
        ));
    }
    if body.command.is_empty() || body.command.len() > 128 {
        return Err(ApiError::unprocessable(
            "command",
            "must be 1 to 128 characters",
        ));
    }
    let agent = state
        .require_store()?
        .agents()
        .agent(&agent_id)
        .await
        .map_err(ApiError::store)?;
    if agent.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no agent {agent_id:?}"),
        ));
    }
    let bus = state.bus().ok_or_else(no_bus)?;
    let command_id = Uuid::now_v7();
    let reply_to = reply_channel(&agent_id, command_id);
    // Listening before publishing: a reply can never arrive before anyone waits for it.
    let mut replies = bus.subscribe(&reply_to).await.map_err(|_| no_bus())?;
    let command = json!({
        "type": "command", "command_id": command_id, "agent_id": agent_id,
        "command": body.command, "args": body.args, "reply_to": reply_to,
    });
    let channel = super::agent_channel(&agent_id);
    bus.append(
        &channel,
        Bytes::from(command.to_string()),
        &Retention::default(),
    )
    .await
    .map_err(|_| no_bus())?;
    let wait = Duration::from_millis(timeout_ms);
    let reply = tokio::time::timeout(wait, async {
        loop {
            match replies.recv().await {
                Some(Event::Message(m)) => return serde_json::from_slice::<Value>(&m.payload).ok(),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    match reply {
        Ok(Some(reply)) => Ok(Json(json!({"command_id": command_id, "reply": reply}))),
        Ok(None) => Err(no_bus()),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("agent {agent_id} did not reply within {timeout_ms} ms"),
        )),
    }
}

/// The agent's reply to a command (its own key, or an admin): 202.
pub async fn reply(
    State(state): State<ServiceState>,
    principal: Principal,
    Path((agent_id, command_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> Result<StatusCode, ApiError> {
    if !is_agent(&principal, &agent_id) && !is_operator(&principal) {
        return Err(forbidden(
            "only the agent itself (its agent key) or an admin may reply",
        ));
    }
    let command_id = Uuid::parse_str(&command_id).map_err(|_| ApiError::not_found())?;
    let bus = state.bus().ok_or_else(no_bus)?;
    let channel = reply_channel(&agent_id, command_id);
    bus.publish(&channel, Bytes::from(body.to_string()))
        .await
        .map_err(|_| no_bus())?;
    Ok(StatusCode::ACCEPTED)
}

fn no_bus() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the message bus is unavailable; retry shortly",
    )
}
