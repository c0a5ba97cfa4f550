//! worker: Background jobs (replaces the Celery worker).
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec};

/// What worker declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "worker",
    port: None,
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Background jobs (replaces the Celery worker).",
    postgres_why: "job results and the rows jobs write",
    redis_why: "the job broker",
    vars: &[],
    api_ready: false,
};
