//! service-integration: the coordinator. Today: the health of every service ([`health`]) —
//! polled, published on `service:health` when it changes, served at `GET /api/services` (signed-in
//! callers) and summed up in its own `GET /health`.

pub mod health;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, BACKEND_API_URL_VAR, JWT_SECRET_VAR};
use crate::services::{common, ServiceState};
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;
use health::Board;

/// The routes service-integration adds; starts watching the other services.
pub fn routes(state: &ServiceState) -> Router<ServiceState> {
    let board = Arc::new(Board::new(state.env()));
    board.watch(state.bus().cloned());
    Router::new()
        .route("/health", get(aggregated_health))
        .route("/api/services", get(services))
        .layer(Extension(board))
}

/// Every watched service as last checked.
async fn services(
    Extension(board): Extension<Arc<Board>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    Ok(Json(json!({
        "services": board.snapshot(),
        "interval_ms": board.interval.as_millis() as u64,
    })))
}

/// The `/health` every service answers (its own dependencies: `status`, 503 when one fails) plus
/// the platform's: `platform` is `healthy` when every watched service is up, `degraded` when one
/// is not (the coordinator itself still answers 200), and `services` gives each one's status.
async fn aggregated_health(
    State(state): State<ServiceState>,
    Extension(board): Extension<Arc<Board>>,
) -> impl IntoResponse {
    let (own_ok, mut body) = common::checks(&state).await;
    let (platform, by_name) = health::summary(&board.snapshot());
    body.insert("platform".into(), json!(platform));
    body.insert("services".into(), json!(by_name));
    let status = if own_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Value::Object(body)))
}

/// What service-integration declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "service-integration",
    port: Some(3001),
    postgres: Need::No,
    redis: Need::Yes,
    about: "Coordinator: health of every service, the service:health channel, routing.",
    postgres_why: "stateless orchestration: nothing it owns outlives a restart",
    redis_why: "pub/sub on consciousness:stream, service:health and agent:coordination",
    vars: &[
        JWT_SECRET_VAR,
        BACKEND_API_URL_VAR,
        crate::shared::rate_limit::PER_MINUTE_SPEC,
        VarSpec::optional(
            "AGENT_ORCHESTRATOR_URL",
            "where agent-orchestration answers",
        )
        .fallback("http://127.0.0.1:${{agent-orchestration.PORT}}"),
        VarSpec::optional("VOICE_PROCESSOR_URL", "where voice-processing answers")
            .fallback("http://127.0.0.1:${{voice-processing.PORT}}"),
        VarSpec::optional("WEBSOCKET_SERVICE_URL", "where websocket-streaming answers")
            .fallback("http://127.0.0.1:${{websocket-streaming.PORT}}"),
        VarSpec::optional("ZAPIER_SERVICE_URL", "where zapier-integration answers")
            .fallback("http://127.0.0.1:${{zapier-integration.PORT}}"),
        VarSpec::optional("CLAUDE_API_URL", "where claude-api answers")
            .fallback("http://127.0.0.1:${{claude-api.PORT}}"),
        VarSpec::optional("DISCORD_BOT_URL", "where discord-bot answers")
            .fallback("http://127.0.0.1:${{discord-bot.PORT}}"),
        VarSpec::optional("DASHBOARD_URL", "where the dashboard answers")
            .fallback("http://127.0.0.1:${{dashboard.PORT}}"),
        VarSpec::optional(
            health::INTERVAL_VAR,
            "how often every service's /health is checked, in milliseconds (default 10000)",
        )
        .integer(100, 3_600_000),
        VarSpec::optional(
            "CONSCIOUSNESS_METRICS_URL",
            "where consciousness metrics are served",
        )
        .fallback("http://127.0.0.1:${{backend-api.PORT}}"),
    ],
    api_ready: true,
};
