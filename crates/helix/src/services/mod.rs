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
    own_routes(state.spec().name)
        .merge(common::routes())
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::shared::metrics::track,
        ))
        .with_state(state)
}

/// Routes a service adds beyond the common ones, as later issues build them.
fn own_routes(_service: &str) -> Router<ServiceState> {
    Router::new()
}
