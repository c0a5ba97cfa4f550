//! Deliveries as their owners see them: `GET /api/hooks/deliveries` (newest first, by status or
//! subscription, cursor `before`), `GET /api/hooks/deliveries/{id}` with every attempt, and
//! `POST /api/hooks/deliveries/{id}/replay` to send a finished one again. A user sees only the
//! deliveries of their own subscriptions (another's id answers 404); admins see all.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use helix_store::webhooks::{Delivery, DeliveryFilter, DeliveryStatus};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::kinds::deliver_job;
use super::{owner, time};
use crate::services::ServiceState;
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    subscription_id: Option<String>,
    before: Option<String>,
    limit: Option<u32>,
}

fn view(d: &Delivery) -> Value {
    let attempts: Vec<Value> = d
        .attempts
        .iter()
        .map(|a| {
            json!({
                "n": a.n,
                "at": time(a.at_us),
                "status_code": a.status_code,
                "duration_ms": a.duration_ms,
                "error": a.error,
            })
        })
        .collect();
    json!({
        "id": d.id,
        "subscription_id": d.subscription_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status,
        "attempts": attempts,
        "next_attempt_at": d.next_attempt_us.map(time),
        "created_at": time(d.created_us),
        "updated_at": time(d.updated_us),
    })
}

fn id_field(field: &str, text: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    text.map(|t| Uuid::parse_str(t).map_err(|_| ApiError::unprocessable(field, "a UUID")))
        .transpose()
}

pub async fn list(
    State(state): State<ServiceState>,
    principal: Principal,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let Query(query) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::unprocessable(
                    "status",
                    "one of pending, succeeded, failed, gone, cancelled",
                )
            })
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let filter = DeliveryFilter {
        owner: owner(&principal),
        subscription_id: id_field("subscription_id", query.subscription_id.as_deref())?,
        status,
        before: id_field("before", query.before.as_deref())?,
        limit,
    };
    let found = state
        .require_store()?
        .webhooks()
        .list_deliveries(&filter)
        .await
        .map_err(ApiError::store)?;
    let next = (found.len() as u32 == limit)
        .then(|| found.last().map(|d| d.id))
        .flatten();
    let views: Vec<Value> = found.iter().map(view).collect();
    Ok(Json(json!({"deliveries": views, "next_before": next})))
}

/// One delivery the caller may see, or 404.
async fn visible(
    state: &ServiceState,
    principal: &Principal,
    id: &str,
) -> Result<Delivery, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found())?;
    let found = state
        .require_store()?
        .webhooks()
        .delivery(id)
        .await
        .map_err(ApiError::store)?;
    found
        .filter(|d| owner(principal).is_none_or(|o| o == d.owner))
        .ok_or_else(ApiError::not_found)
}

pub async fn get(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let delivery = visible(&state, &principal, &id).await?;
    Ok(Json(view(&delivery)))
}

pub async fn replay(
    State(state): State<ServiceState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Scope::Write)?;
    let delivery = visible(&state, &principal, &id).await?;
    let now = chrono::Utc::now().timestamp_micros();
    let hooks = state.require_store()?.webhooks();
    if !hooks
        .reset_delivery(delivery.id, now)
        .await
        .map_err(ApiError::store)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_replayable",
            "the delivery is still pending, or its endpoint is no longer subscribed",
        ));
    }
    let jobs = state
        .jobs()
        .ok_or_else(|| ApiError::internal("zapier-integration started without a job backend"))?;
    jobs.backend()
        .enqueue(&[deliver_job(delivery.id, now, 0, false)])
        .await
        .map_err(crate::services::backend_api::jobs::job_error)?;
    let again = hooks
        .delivery(delivery.id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(ApiError::not_found)?;
    Ok((StatusCode::ACCEPTED, Json(view(&again))))
}
