//! claude-api: LLM gateway: providers, response cache, usage and cost, consciousness metrics history.
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, JWT_SECRET_VAR};

/// What claude-api declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "claude-api",
    port: Some(8002),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "LLM gateway: providers, response cache, usage and cost, consciousness metrics history.",
    postgres_why: "consciousness metrics history, usage and cost per call",
    redis_why: "response cache",
    vars: &[
        JWT_SECRET_VAR,
        VarSpec::optional("ANTHROPIC_API_KEY", "Anthropic Messages API key").secret(),
        VarSpec::optional("OPENAI_API_KEY", "OpenAI API key").secret(),
        VarSpec::optional(
            "CONSCIOUSNESS_ENGINE_WEBHOOK",
            "Zapier hook for consciousness events",
        )
        .secret(),
        VarSpec::optional(
            "COMMUNICATIONS_HUB_WEBHOOK",
            "Zapier hook for communications",
        )
        .secret(),
        VarSpec::optional(
            "NEURAL_NETWORK_WEBHOOK",
            "Zapier hook for neural-network events",
        )
        .secret(),
    ],
    api_ready: false,
};
