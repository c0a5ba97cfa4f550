//! The platform's services, one folder each.
//!
//! Each service module declares its [`ServiceSpec`]; [`CATALOG`] lists them in the order every
//! table prints them, and [`routes`] gives the HTTP routes a service adds beyond the common ones.

use crate::platform::catalog::ServiceSpec;

pub mod agent_orchestration;
pub mod backend_api;
pub mod beat;
pub mod claude_api;
pub mod dashboard;
pub mod discord_bot;
pub mod service_integration;
pub mod voice_processing;
pub mod websocket_streaming;
pub mod worker;
pub mod zapier_integration;

/// Every service, in table order.
pub static CATALOG: &[ServiceSpec] = &[
    backend_api::SPEC,
    discord_bot::SPEC,
    dashboard::SPEC,
    claude_api::SPEC,
    service_integration::SPEC,
    websocket_streaming::SPEC,
    agent_orchestration::SPEC,
    zapier_integration::SPEC,
    voice_processing::SPEC,
    worker::SPEC,
    beat::SPEC,
];

pub mod common;
pub mod state;

use axum::Router;

pub use state::ServiceState;

/// The full HTTP router of one service: its own routes, the common ones, and request metrics.
pub fn router(state: ServiceState) -> Router {
    let metrics = state.metrics().clone();
    let maintenance = state.maintenance().clone();
    if let Some(bus) = state.bus() {
        crate::shared::maintenance::watch(&maintenance, state.store().cloned(), bus.clone());
    }
    let cors = crate::shared::cors::layer(&state.env().origins(crate::shared::cors::ORIGINS_VAR));
    let name = state.spec().name;
    own_routes(&state)
        .merge(common::routes(name == service_integration::SPEC.name))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::shared::json::MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::from_fn_with_state(
            maintenance,
            crate::shared::maintenance::gate,
        ))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::shared::metrics::track,
        ))
        .with_state(state)
}

/// Start what a service runs beside its HTTP routes (the worker's job loop, the beat, discord-bot's
/// log producers), as tasks
/// of the service that end when it stops.
pub fn start(state: &ServiceState) -> anyhow::Result<()> {
    match state.spec().name {
        "worker" => worker::start(state),
        "beat" => beat::start(state),
        "discord-bot" => discord_bot::start(state),
        _ => Ok(()),
    }
}

/// Routes a service adds beyond the common ones, as later issues build them.
fn own_routes(state: &ServiceState) -> Router<ServiceState> {
    match state.spec().name {
        "backend-api" => backend_api::routes(state.env()),
        "discord-bot" => discord_bot::routes(state),
        "service-integration" => service_integration::routes(state),
        "websocket-streaming" => websocket_streaming::routes(state),
        "agent-orchestration" => agent_orchestration::routes(state),
        "zapier-integration" => zapier_integration::routes(state),
        _ => Router::new(),
    }
}
