//! service-integration: Coordinator: health of every service, the service:health channel, routing.
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, JWT_SECRET_VAR};

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
        VarSpec::optional(
            "CONSCIOUSNESS_METRICS_URL",
            "where consciousness metrics are served",
        )
        .fallback("http://127.0.0.1:${{backend-api.PORT}}"),
    ],
    api_ready: false,
};
