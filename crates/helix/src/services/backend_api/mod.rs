//! backend-api: the platform's main API. Today: accounts (signup, login, refresh with rotation,
//! logout), the caller's profile, and API keys. Conversations, usage and subscriptions arrive with
//! later issues.
//!
//! Data flow: a handler validates its JSON body → calls the store's `Accounts`, which writes the
//! change and its audit entry in one transaction → answers; credentials on later requests are
//! checked by the shared `Principal` extractor.

mod accounts;
mod admin;
mod keys;
mod me;
pub mod openapi;
mod schema;
mod tokens;
mod validate;

use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, JWT_SECRET_VAR};
use crate::services::ServiceState;
use crate::shared::{checkpoint, cors, rate_limit};

/// The routes backend-api adds to the common ones.
pub fn routes() -> Router<ServiceState> {
    crate::shared::auth::password::warm_up();
    let profiles = std::sync::Arc::new(me::ProfileCache::new());
    Router::new()
        .route("/openapi.json", get(openapi::json))
        .route("/docs", get(openapi::page))
        .route("/api/auth/signup", post(accounts::signup))
        .route("/api/auth/login", post(accounts::login))
        .route("/api/auth/refresh", post(accounts::refresh))
        .route("/api/auth/logout", post(accounts::logout))
        .route("/api/me", get(me::get).patch(me::patch).delete(me::delete))
        .route("/api/keys", post(keys::create).get(keys::list))
        .route("/api/keys/{id}", delete(keys::revoke))
        .route("/api/admin/audit", get(admin::audit))
        .route(
            "/api/admin/maintenance",
            get(admin::maintenance_status).put(admin::set_maintenance),
        )
        .route("/api/admin/users/{id}/role", put(admin::set_role))
        .layer(axum::Extension(profiles))
}

/// What backend-api declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "backend-api",
    port: Some(8000),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Main API: users, sessions, API keys, profiles, conversations, messages, usage, subscriptions, audit log.",
    postgres_why: "users, sessions, API keys, conversations, messages, usage and subscriptions are durable rows",
    redis_why: "session cache, rate-limit counters, publishing conversation updates",
    vars: VARS,
    api_ready: true,
};

const VARS: &[VarSpec] = &[
    JWT_SECRET_VAR,
    VarSpec::optional(
        "HELIX_CREATOR_EMAIL",
        "the platform owner's email: role creator, trust level 1.0",
    ),
    VarSpec::optional("STRIPE_SECRET_KEY", "Stripe API key for subscriptions").secret(),
    VarSpec::optional(
        "STRIPE_WEBHOOK_SECRET",
        "verifies Stripe-Signature on /api/webhooks/stripe",
    )
    .secret(),
    VarSpec::optional("STRIPE_PUBLISHABLE_KEY", "handed to clients for checkout"),
    VarSpec::optional(
        tokens::REFRESH_GRACE_VAR,
        "seconds a rotated refresh token is still accepted, for two tabs refreshing at once",
    )
    .integer(0, 60)
    .fallback("10"),
    VarSpec::optional(
        cors::ORIGINS_VAR,
        "web origins allowed to call from a browser, comma-separated; unset: none",
    )
    .origins(),
    VarSpec::optional(
        rate_limit::PER_MINUTE_VAR,
        "requests per minute per user or API key; over it: 429",
    )
    .integer(1, 10_000_000)
    .fallback("1200"),
    VarSpec::optional(
        rate_limit::PER_IP_VAR,
        "login and signup attempts per client address per minute",
    )
    .integer(1, 1_000_000)
    .fallback("30"),
    VarSpec::optional(
        rate_limit::PER_ACCOUNT_VAR,
        "login attempts per account per minute",
    )
    .integer(1, 1_000_000)
    .fallback("10"),
    VarSpec::optional(
        checkpoint::SIGNING_KEY_VAR,
        "Ed25519 seed (64 hex) that signs audit checkpoints; `helix audit keygen` makes one",
    )
    .secret(),
];
