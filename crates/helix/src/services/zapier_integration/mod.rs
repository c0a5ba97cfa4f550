//! zapier-integration: Inbound Zapier webhooks and outbound deliveries.
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, JWT_SECRET_VAR};

/// What zapier-integration declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "zapier-integration",
    port: Some(8005),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Inbound Zapier webhooks and outbound deliveries.",
    postgres_why:
        "webhook events and the delivery log (the old service kept them only in Redis lists)",
    redis_why: "event queue feeding deliveries",
    vars: &[
        JWT_SECRET_VAR,
        VarSpec::optional(
            "ZAPIER_SECRET",
            "verifies the signature of inbound webhooks",
        )
        .secret(),
        VarSpec::optional("WEBHOOK_URL", "default outbound delivery target"),
    ],
    api_ready: false,
};
