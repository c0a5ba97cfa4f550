//! beat: Periodic scheduler, exactly one active (replaces Celery beat).
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec};

/// What beat declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "beat",
    port: None,
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Periodic scheduler, exactly one active (replaces Celery beat).",
    postgres_why: "the schedule and the record of each fire time",
    redis_why: "leader lease so that one beat fires each schedule once",
    vars: &[],
    api_ready: false,
};
