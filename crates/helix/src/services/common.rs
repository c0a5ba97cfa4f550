//! Routes every service answers: `GET /health`, `GET /metrics`, and JSON fallbacks.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::state::ServiceState;
use crate::shared::error::ApiError;

/// A dependency that does not answer within this long counts as disconnected: a health check
/// must answer quickly even when the database hangs.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes() -> Router<ServiceState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
}

/// `{"status":"healthy","service":…,"database":"connected","redis":"connected"}` with exactly the
/// dependencies the service uses; 503 and `"disconnected"` when one is down.
async fn health(State(state): State<ServiceState>) -> impl IntoResponse {
    let (database, redis) = tokio::join!(
        async {
            match state.store() {
                Some(s) => Some(
                    tokio::time::timeout(PING_TIMEOUT, s.ping())
                        .await
                        .is_ok_and(|r| r.is_ok()),
                ),
                None => None,
            }
        },
        async {
            match state.bus() {
                Some(b) => Some(
                    tokio::time::timeout(PING_TIMEOUT, b.ping())
                        .await
                        .is_ok_and(|r| r.is_ok()),
                ),
                None => None,
            }
        },
    );
    let mut body = Map::new();
    let healthy = database.unwrap_or(true) && redis.unwrap_or(true);
    body.insert(
        "status".into(),
        json!(if healthy { "healthy" } else { "unhealthy" }),
    );
    body.insert("service".into(), json!(state.spec().name));
    let mut backends = Map::new();
    if let (Some(ok), Some(store)) = (database, state.store()) {
        body.insert("database".into(), json!(connected(ok)));
        backends.insert("database".into(), json!(store.backend().as_str()));
    }
    if let (Some(ok), Some(bus)) = (redis, state.bus()) {
        body.insert("redis".into(), json!(connected(ok)));
        backends.insert("redis".into(), json!(bus.backend().as_str()));
    }
    body.insert("backends".into(), Value::Object(backends));
    body.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Value::Object(body)))
}

fn connected(ok: bool) -> &'static str {
    if ok {
        "connected"
    } else {
        "disconnected"
    }
}

async fn metrics(State(state): State<ServiceState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
}
