//! The hub's HTTP side: publishing for services (`POST /api/publish`), the old consciousness
//! endpoints (`POST /api/consciousness/publish`, `GET /api/consciousness/metrics`).

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use bytes::Bytes;
use chrono::Utc;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::channels::{is_service, Channel};
use super::hub::Hub;
use crate::services::backend_api::ucf::{self, Sample, STREAM_CHANNEL};
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    channel: String,
    data: Box<RawValue>,
}

/// Publish `data` on a channel through its history: `{channel, epoch, offset}`.
pub async fn publish(
    Extension(hub): Extension<Arc<Hub>>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Publish>,
) -> Result<Json<Value>, ApiError> {
    let channel = Channel::parse(&body.channel).map_err(channel_error)?;
    let credential = super::header_credential(&headers).unwrap_or_default();
    hub.ownership
        .may_publish(&principal, &credential, channel)
        .await
        .map_err(channel_error)?;
    let data = Bytes::copy_from_slice(body.data.get().as_bytes());
    let position = hub.publish(&body.channel, data).await.map_err(bus_error)?;
    Ok(Json(json!({
        "channel": body.channel,
        "epoch": position.epoch,
        "offset": position.offset,
    })))
}

/// The old streaming service's publish: one UCF sample in the platform's shape, checked as
/// backend-api checks it, kept as the latest sample and published on `consciousness:stream`
/// (services and admins).
pub async fn publish_consciousness(
    Extension(hub): Extension<Arc<Hub>>,
    principal: Principal,
    ApiJson(sample): ApiJson<Sample>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !is_service(&principal) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "publishing on consciousness:stream takes an admin or a service key",
        ));
    }
    let row = ucf::checked(&sample, Utc::now(), 0)?;
    ucf::announce(&*hub.bus, &[row], &hub.config.retention).await;
    hub.metrics.published.inc();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"channel": STREAM_CHANNEL, "published": true})),
    ))
}

/// The newest UCF sample (anyone signed in).
pub async fn consciousness_metrics(
    Extension(hub): Extension<Arc<Hub>>,
    principal: Principal,
) -> Result<Json<Sample>, ApiError> {
    principal.require(Scope::Read)?;
    ucf::latest_on_bus(&*hub.bus, None)
        .await
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_samples",
                "no sample published yet",
            )
        })
}

fn channel_error(e: super::channels::ChannelError) -> ApiError {
    use super::channels::ChannelError;
    let status = match e {
        ChannelError::BadName | ChannelError::Unknown => {
            return ApiError::unprocessable("channel", &e.to_string())
        }
        ChannelError::Forbidden => StatusCode::FORBIDDEN,
        ChannelError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, e.code(), e.to_string())
}

fn bus_error(e: helix_bus::BusError) -> ApiError {
    tracing::warn!(error = %e, "publishing failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the message bus is unavailable; retry shortly",
    )
}
