//! agent-orchestration: Agents, their tasks and commands, live status on agent:coordination.
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec, JWT_SECRET_VAR};

/// What agent-orchestration declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "agent-orchestration",
    port: Some(8003),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Agents, their tasks and commands, live status on agent:coordination.",
    postgres_why: "agent profiles and tasks with their status history",
    redis_why: "offers tasks to agents and announces changes on agent:coordination",
    vars: &[JWT_SECRET_VAR],
    api_ready: false,
};
