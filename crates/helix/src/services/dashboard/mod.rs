//! dashboard: Read-only pages of metrics, service health, agents and queues.
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec};

/// What dashboard declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "dashboard",
    port: Some(8501),
    postgres: Need::No,
    redis: Need::Yes,
    about: "Read-only pages of metrics, service health, agents and queues.",
    postgres_why: "read-only: everything it shows is in Redis, so it never opens the database",
    redis_why: "reads the latest metrics, health and queue state (reads only)",
    vars: &[],
    api_ready: false,
};
