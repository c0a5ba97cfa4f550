//! The old Zapier service's endpoints, kept for the clients that call them, now authenticated
//! and backed by the stored events:
//!
//! - `GET /api/events?source=&limit=` (admins): the newest events received;
//! - `GET /api/triggers`: what a Zap can subscribe to (`*` and the event types seen lately);
//! - `GET /api/actions`: what a Zap can ask Helix to do;
//! - `POST /api/trigger` `{event_type, data}`: emit an event to every subscribed endpoint;
//! - `POST /api/action` `{action, data}`: run an action (`record_event`);
//! - `GET /api/webhooks/status`: the configured sources and the caller's subscriptions.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use helix_store::webhooks::{Event, SubscriptionStatus};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::inbound::Inbound;
use super::time;
use crate::services::ServiceState;
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;

/// The source of events emitted through `POST /api/trigger` and `POST /api/action`.
pub const API_SOURCE: &str = "api";

pub fn routes() -> Router<ServiceState> {
    Router::new()
        .route("/api/events", get(events))
        .route("/api/triggers", get(triggers))
        .route("/api/actions", get(actions))
        .route("/api/trigger", post(trigger))
        .route("/api/action", post(action))
        .route("/api/webhooks/status", get(status))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    source: Option<String>,
    limit: Option<u32>,
}

fn event_view(e: &Event) -> Value {
    json!({
        "id": e.id,
        "source": e.source,
        "event_id": e.event_id,
        "type": e.event_type,
        "data": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null),
        "received_at": time(e.received_us),
    })
}

async fn events(
    State(state): State<ServiceState>,
    principal: Principal,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Admin)?;
    let Query(query) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let found = state
        .require_store()?
        .webhooks()
        .list_events(query.source.as_deref(), None, limit)
        .await
        .map_err(ApiError::store)?;
    let views: Vec<Value> = found.iter().map(event_view).collect();
    Ok(Json(json!({"events": views, "count": views.len()})))
}

async fn triggers(
    State(state): State<ServiceState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let recent = state
        .require_store()?
        .webhooks()
        .list_events(None, None, 500)
        .await
        .map_err(ApiError::store)?;
    let types: BTreeSet<&str> = recent.iter().map(|e| e.event_type.as_str()).collect();
    let mut triggers = vec![json!({"key": "*", "label": "Every event"})];
    triggers.extend(types.iter().map(|t| json!({"key": t, "label": t})));
    Ok(Json(json!({ "triggers": triggers })))
}

async fn actions(principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    Ok(Json(json!({"actions": [{
        "key": "record_event",
        "label": "Record an event and deliver it to subscribed endpoints",
        "fields": ["event_type", "data"],
    }]})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    event_type: String,
    #[serde(default)]
    data: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    action: String,
    #[serde(default)]
    data: Value,
}

/// Store an event the caller emits and queue its deliveries.
async fn emit(
    inbound: &Inbound,
    principal: &Principal,
    event_type: &str,
    data: Value,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Write)?;
    let valid = (1..=200).contains(&event_type.len())
        && event_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if !valid {
        return Err(ApiError::unprocessable(
            "event_type",
            "1 to 200 of letters, digits and . _ : -",
        ));
    }
    let id = Uuid::now_v7();
    let event = Event {
        id,
        source: API_SOURCE.to_owned(),
        event_id: id.to_string(),
        event_type: event_type.to_owned(),
        payload: json!({"type": event_type, "data": data, "emitted_by": principal.user_id})
            .to_string(),
        received_us: chrono::Utc::now().timestamp_micros(),
    };
    inbound
        .ingest
        .submit(event)
        .await
        .map_err(super::inbound::unavailable)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "accepted", "id": id, "event_type": event_type})),
    ))
}

async fn trigger(
    Extension(inbound): Extension<Arc<Inbound>>,
    principal: Principal,
    ApiJson(body): ApiJson<Trigger>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    emit(&inbound, &principal, &body.event_type, body.data).await
}

async fn action(
    Extension(inbound): Extension<Arc<Inbound>>,
    principal: Principal,
    ApiJson(body): ApiJson<Action>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    match body.action.as_str() {
        "record_event" => {
            let event_type = body.data["event_type"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let data = body.data.get("data").cloned().unwrap_or(Value::Null);
            emit(&inbound, &principal, &event_type, data).await
        }
        other => Err(ApiError::unprocessable(
            "action",
            &format!("unknown action `{other}`; GET /api/actions lists them"),
        )),
    }
}

async fn status(
    State(state): State<ServiceState>,
    Extension(inbound): Extension<Arc<Inbound>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let mine = state
        .require_store()?
        .webhooks()
        .list_subscriptions(Some(principal.user_id))
        .await
        .map_err(ApiError::store)?;
    let active = mine
        .iter()
        .filter(|s| s.status == SubscriptionStatus::Active)
        .count();
    Ok(Json(json!({
        "status": "operational",
        "sources": inbound.secrets.sources(),
        "subscriptions": {"active": active, "disabled": mine.len() - active},
    })))
}
