//! websocket-streaming: WebSocket hub over the bus: channels, authentication, history, recovery.
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec, BACKEND_API_URL_VAR, JWT_SECRET_VAR};

/// What websocket-streaming declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "websocket-streaming",
    port: Some(8080),
    postgres: Need::No,
    redis: Need::Yes,
    about: "WebSocket hub over the bus: channels, authentication, history, recovery.",
    postgres_why: "channel history and offsets live in Redis, so any instance can serve any client",
    redis_why: "backplane: every instance delivers every channel message",
    vars: &[JWT_SECRET_VAR, BACKEND_API_URL_VAR],
    api_ready: false,
};
