//! `POST /api/webhooks/stripe`: Stripe's events about subscriptions and payments.
//!
//! Data flow: read the raw body (never re-serialised: the signature covers its exact bytes) →
//! verify `Stripe-Signature` with `STRIPE_WEBHOOK_SECRET` ([`signature`]) → read the event
//! ([`event`]) → the store records the event id and applies the change in one transaction →
//! 200 with what it led to. Nothing is stored unless the signature is valid and fresh; without a
//! configured secret every delivery gets 503 (never accepted unsigned). A redelivered event
//! (same id) answers 200 and changes nothing; an event for a customer Helix does not know is
//! recorded and answered 200, so Stripe does not retry it for days.

pub mod event;
pub mod signature;

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use bytes::Bytes;
use chrono::Utc;
use helix_store::subscriptions::EventOutcome;
use serde::Serialize;
use utoipa::ToSchema;

use super::accounts::store;
use super::quota::Quotas;
use super::schema::ErrorBody;
use crate::services::ServiceState;
use crate::shared::error::ApiError;

/// The signing secret of the webhook endpoint (`whsec_…`).
pub const SECRET_VAR: &str = "STRIPE_WEBHOOK_SECRET";
pub const PRICE_PRO_VAR: &str = "HELIX_STRIPE_PRICE_PRO";
pub const PRICE_ENTERPRISE_VAR: &str = "HELIX_STRIPE_PRICE_ENTERPRISE";
/// Stripe's events can be larger than the API's usual body limit (an invoice with many lines).
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// What a delivery led to.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// `applied`, `unknown_customer`, `ignored`, `stale` (older than what was applied) or
    /// `duplicate` (this event id was received before).
    #[schema(example = "applied")]
    pub outcome: &'static str,
}

/// Receive a Stripe event (signed by Stripe; no other authentication).
#[utoipa::path(post, path = "/api/webhooks/stripe", tag = "billing",
    params(("Stripe-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of `t.body`>")),
    request_body(content = Object, description = "A Stripe event, exactly as Stripe sent it", content_type = "application/json"),
    responses(
        (status = 200, description = "Verified; recorded (or already recorded)", body = WebhookAck),
        (status = 400, description = "Missing, malformed, wrong or stale signature, or not an event: nothing stored", body = ErrorBody),
        (status = 503, description = "STRIPE_WEBHOOK_SECRET is not configured", body = ErrorBody),
))]
pub async fn webhook(
    State(state): State<ServiceState>,
    Extension(quotas): Extension<Arc<Quotas>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WebhookAck>, ApiError> {
    let secret = state
        .env()
        .get(SECRET_VAR)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhook_not_configured",
                "STRIPE_WEBHOOK_SECRET is not set; unsigned events are never accepted",
            )
        })?;
    let body = body.map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
    let header = headers
        .get("stripe-signature")
        .map(|v| v.to_str().unwrap_or_default());
    signature::verify(header, &body, secret.as_bytes(), Utc::now().timestamp()).map_err(|e| {
        tracing::warn!(reason = %e, "refused a Stripe delivery");
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_signature", e.to_string())
    })?;
    let event = event::parse(&body, &prices(&state))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", e.to_string()))?;
    let outcome = store(&state)?
        .subscriptions()
        .apply_stripe_event(&event)
        .await
        .map_err(ApiError::store)?;
    if let EventOutcome::Applied { user_id } = outcome {
        quotas.forget(user_id);
    }
    tracing::info!(event = %event.id, kind = %event.kind, outcome = outcome.as_str(), "Stripe event");
    Ok(Json(WebhookAck {
        received: true,
        outcome: outcome.as_str(),
    }))
}

fn prices(state: &ServiceState) -> event::Prices {
    let get = |var| {
        state
            .env()
            .get(var)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    event::Prices {
        pro: get(PRICE_PRO_VAR),
        enterprise: get(PRICE_ENTERPRISE_VAR),
    }
}
