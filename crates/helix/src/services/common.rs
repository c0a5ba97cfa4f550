//! Routes every service answers: `GET /health`, `GET /metrics`, and JSON fallbacks.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::state::ServiceState;
use crate::shared::auth::remote::Introspection;
use crate::shared::auth::AnyPrincipal;
use crate::shared::error::ApiError;

/// A dependency that does not answer within this long counts as disconnected: a health check
/// must answer quickly even when the database hangs.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The common routes; `own_health`: the service answers `/health` itself (building on [`checks`]).
pub fn routes(own_health: bool) -> Router<ServiceState> {
    let router = Router::new();
    let router = if own_health {
        router
    } else {
        router.route("/health", get(health))
    };
    router
        .route("/metrics", get(metrics))
        .route("/api/auth/introspect", get(introspect))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
}

/// `{"status":"healthy","service":…,"database":"connected","redis":"connected"}` with exactly the
/// dependencies the service uses; 503 and `"disconnected"` when one is down.
async fn health(State(state): State<ServiceState>) -> impl IntoResponse {
    let (healthy, body) = checks(&state).await;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Value::Object(body)))
}

/// Whether the service's own dependencies answer, and the body of its `/health`.
pub async fn checks(state: &ServiceState) -> (bool, Map<String, Value>) {
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
    (healthy, body)
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

/// Who the presented credential belongs to, on every service that reads JWT_SECRET. On
/// backend-api the answer is authoritative; services without a database ask backend-api (this
/// same path there) and cache the answer for 30 s.
#[utoipa::path(get, path = "/api/auth/introspect", tag = "auth", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Introspection),
    (status = 401, description = "`session_revoked`, `token_expired`, `invalid_api_key`, …", body = crate::services::backend_api::schema::ErrorBody),
))]
pub async fn introspect(AnyPrincipal(principal): AnyPrincipal) -> Json<Introspection> {
    Json(Introspection::from(&principal))
}
