//! Endpoints subscribing to events (Zapier's REST hooks): `POST /api/hooks/subscriptions`,
//! `GET` to list the caller's, `DELETE /api/hooks/subscriptions/{id}` to unsubscribe.
//!
//! A subscription's secret (`whsec_…`) is shown once, in the answer that creates it: the endpoint
//! verifies each delivery's `webhook-signature` with it. The target must be http(s) and resolve
//! only to public addresses unless an operator allowed the range (`HELIX_OUTBOUND_ALLOW`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::Engine;
use helix_store::webhooks::{Subscription, SubscriptionStatus};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::Outbound;
use crate::services::ServiceState;
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;

/// Most event types one subscription names.
const MAX_TYPES: usize = 50;
/// Most subscriptions one user holds.
const MAX_PER_OWNER: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    target_url: String,
    /// Event types to deliver; `*` (the default) is every type.
    #[serde(default)]
    event_types: Option<Vec<String>>,
    /// Zapier's REST hooks send one type as `event`.
    #[serde(default)]
    event: Option<String>,
}

/// What the owner sees of a subscription (never its secret, but at creation).
pub fn view(s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "target_url": s.target_url,
        "event_types": s.event_types,
        "status": s.status,
        "disabled_reason": s.disabled_reason,
        "failing_since": s.failing_since_us.map(super::time),
        "created_at": super::time(s.created_us),
    })
}

fn event_types(body: &Subscribe) -> Result<Vec<String>, ApiError> {
    let types = match (&body.event_types, &body.event) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "event",
                "give event_types or event, not both",
            ))
        }
        (Some(types), None) => types.clone(),
        (None, Some(one)) => vec![one.clone()],
        (None, None) => vec!["*".to_owned()],
    };
    if types.is_empty() || types.len() > MAX_TYPES {
        return Err(ApiError::unprocessable(
            "event_types",
            "one to 50 event types (`*` for all)",
        ));
    }
    let valid = |t: &String| {
        (1..=200).contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:*-".contains(&b))
    };
    if let Some(bad) = types.iter().find(|t| !valid(t)) {
        return Err(ApiError::unprocessable(
            "event_types",
            &format!("`{bad}` is not an event type (letters, digits and . _ : * -)"),
        ));
    }
    Ok(types)
}

fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

pub async fn create(
    State(state): State<ServiceState>,
    Extension(outbound): Extension<Arc<Outbound>>,
    principal: Principal,
    ApiJson(body): ApiJson<Subscribe>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Write)?;
    let types = event_types(&body)?;
    if body.target_url.len() > 2048 {
        return Err(ApiError::unprocessable(
            "target_url",
            "at most 2048 characters",
        ));
    }
    let url = outbound
        .guard
        .resolve_check(body.target_url.trim())
        .await
        .map_err(|e| ApiError::unprocessable("target_url", &e.to_string()))?;
    let hooks = state.require_store()?.webhooks();
    let held = hooks
        .list_subscriptions(Some(principal.user_id))
        .await
        .map_err(ApiError::store)?;
    if held.len() >= MAX_PER_OWNER {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_subscriptions",
            "at most 100 subscriptions per user; remove one first",
        ));
    }
    let now = chrono::Utc::now().timestamp_micros();
    let subscription = Subscription {
        id: Uuid::now_v7(),
        owner: principal.user_id,
        target_url: url.to_string(),
        event_types: types,
        secret: new_secret(),
        status: SubscriptionStatus::Active,
        disabled_reason: None,
        failing_since_us: None,
        created_us: now,
        updated_us: now,
    };
    hooks
        .create_subscription(&subscription)
        .await
        .map_err(ApiError::store)?;
    let mut out = view(&subscription);
    out["secret"] = json!(subscription.secret);
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn list(
    State(state): State<ServiceState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let found = state
        .require_store()?
        .webhooks()
        .list_subscriptions(Some(principal.user_id))
        .await
        .map_err(ApiError::store)?;
    let views: Vec<Value> = found.iter().map(view).collect();
    Ok(Json(json!({ "subscriptions": views })))
}

pub async fn delete(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Write)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
    let owner = super::owner(&principal);
    let removed = state
        .require_store()?
        .webhooks()
        .delete_subscription(id, owner)
        .await
        .map_err(ApiError::store)?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}
