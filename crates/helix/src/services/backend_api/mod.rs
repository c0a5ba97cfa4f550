//! backend-api: Main API: users, sessions, API keys, profiles, conversations, messages, usage, subscriptions, audit log.
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, JWT_SECRET_VAR};

/// What backend-api declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "backend-api",
    port: Some(8000),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Main API: users, sessions, API keys, profiles, conversations, messages, usage, subscriptions, audit log.",
    postgres_why: "users, sessions, API keys, conversations, messages, usage and subscriptions are durable rows",
    redis_why: "session cache, rate-limit counters, publishing conversation updates",
    vars: &[JWT_SECRET_VAR, VarSpec::optional("HELIX_CREATOR_EMAIL", "the platform owner's email: role creator, trust level 1.0"), VarSpec::optional("STRIPE_SECRET_KEY", "Stripe API key for subscriptions").secret(), VarSpec::optional("STRIPE_WEBHOOK_SECRET", "verifies Stripe-Signature on /api/webhooks/stripe").secret(), VarSpec::optional("STRIPE_PUBLISHABLE_KEY", "handed to clients for checkout")],
    api_ready: false,
};
