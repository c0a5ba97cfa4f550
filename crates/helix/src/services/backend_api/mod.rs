//! backend-api: the platform's main API. Today: accounts (signup, login, refresh with rotation,
//! logout), the caller's profile, API keys, conversations with their messages, UCF metrics, usage
//! of metered calls, tiers and their quotas, and Stripe's subscription events.
//!
//! Data flow: a handler validates its JSON body → calls the store's `Accounts`, which writes the
//! change and its audit entry in one transaction → answers; credentials on later requests are
//! checked by the shared `Principal` extractor. Metered calls go through the usage recorder (a
//! write-behind buffer, `shared::usage`); tiers change only through verified Stripe events.

mod accounts;
mod admin;
pub mod conversations;
pub mod jobs;
mod keys;
mod me;
pub mod openapi;
pub mod quota;
mod recent;
pub mod schedules;
pub mod schema;
pub mod stripe;
mod tokens;
pub mod ucf;
pub mod usage;
mod validate;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::config::ServiceEnv;
use crate::platform::catalog::{Need, ServiceSpec, VarSpec, JWT_SECRET_VAR};
use crate::services::ServiceState;
use crate::shared::{checkpoint, cors, rate_limit, usage as recorder};

/// The routes backend-api adds to the common ones.
pub fn routes(env: &ServiceEnv) -> Router<ServiceState> {
    crate::shared::auth::password::warm_up();
    let profiles = std::sync::Arc::new(me::ProfileCache::new());
    let recent = std::sync::Arc::new(recent::RecentPages::new());
    let quotas = std::sync::Arc::new(quota::Quotas::from_env(env));
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
        .route("/api/jobs", post(jobs::enqueue).get(jobs::list))
        .route("/api/jobs/stats", get(jobs::stats))
        .route("/api/jobs/{id}", get(jobs::get))
        .route("/api/jobs/{id}/retry", post(jobs::retry))
        .route("/api/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/schedules", post(schedules::add).get(schedules::list))
        .route(
            "/api/schedules/{name}",
            get(schedules::get)
                .patch(schedules::change)
                .delete(schedules::remove),
        )
        .route("/api/schedules/{name}/pause", post(schedules::pause))
        .route("/api/schedules/{name}/resume", post(schedules::resume))
        .route(
            "/api/admin/maintenance",
            get(admin::maintenance_status).put(admin::set_maintenance),
        )
        .route("/api/admin/users/{id}/role", put(admin::set_role))
        .route(
            "/api/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route(
            "/api/conversations/{id}",
            get(conversations::get)
                .patch(conversations::rename)
                .delete(conversations::delete),
        )
        .route(
            "/api/conversations/{id}/messages",
            post(conversations::append).get(conversations::messages),
        )
        .route("/api/metrics", post(ucf::record))
        .route(
            "/api/metrics/batch",
            post(ucf::record_batch).layer(DefaultBodyLimit::max(ucf::MAX_BATCH_BYTES)),
        )
        .route("/api/metrics/latest", get(ucf::latest))
        .route("/api/metrics/history", get(ucf::history))
        .route("/api/usage", post(usage::record).get(usage::summary))
        .route("/api/quota", get(quota::get))
        .route(
            "/api/webhooks/stripe",
            post(stripe::webhook).layer(DefaultBodyLimit::max(stripe::MAX_EVENT_BYTES)),
        )
        .layer(axum::Extension(profiles))
        .layer(axum::Extension(recent))
        .layer(axum::Extension(quotas))
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

/// The largest tier limit a variable may set (above it, say `unlimited`).
const TIER_MAX: i64 = 1_000_000_000_000;

const VARS: &[VarSpec] = &[
    JWT_SECRET_VAR,
    crate::shared::jobs::QUEUE_BACKEND_VAR,
    VarSpec::optional(
        "HELIX_CREATOR_EMAIL",
        "the platform owner's email: role creator, trust level 1.0",
    ),
    VarSpec::optional("STRIPE_SECRET_KEY", "Stripe API key for subscriptions").secret(),
    VarSpec::optional(
        "STRIPE_WEBHOOK_SECRET",
        "verifies Stripe-Signature on /api/webhooks/stripe; unset: that endpoint answers 503",
    )
    .secret(),
    VarSpec::optional("STRIPE_PUBLISHABLE_KEY", "handed to clients for checkout"),
    VarSpec::optional(
        stripe::PRICE_PRO_VAR,
        "Stripe price id that buys the pro tier (a price with lookup key `pro` does too)",
    ),
    VarSpec::optional(
        stripe::PRICE_ENTERPRISE_VAR,
        "Stripe price id that buys the enterprise tier (a price with lookup key `enterprise` does too)",
    ),
    VarSpec::optional(
        quota::FREE_MESSAGES_VAR,
        "messages a free user may send per UTC day, or `unlimited`; over it: 429",
    )
    .limit(0, TIER_MAX)
    .fallback("200"),
    VarSpec::optional(
        quota::FREE_TOKENS_VAR,
        "tokens (in + out) a free user may use per UTC month, or `unlimited`; over it: 429",
    )
    .limit(0, TIER_MAX)
    .fallback("200000"),
    VarSpec::optional(
        quota::PRO_MESSAGES_VAR,
        "messages a pro user may send per UTC day, or `unlimited`",
    )
    .limit(0, TIER_MAX)
    .fallback("5000"),
    VarSpec::optional(
        quota::PRO_TOKENS_VAR,
        "tokens a pro user may use per UTC month, or `unlimited`",
    )
    .limit(0, TIER_MAX)
    .fallback("5000000"),
    VarSpec::optional(
        quota::ENTERPRISE_MESSAGES_VAR,
        "messages an enterprise user may send per UTC day, or `unlimited`",
    )
    .limit(0, TIER_MAX)
    .fallback("unlimited"),
    VarSpec::optional(
        quota::ENTERPRISE_TOKENS_VAR,
        "tokens an enterprise user may use per UTC month, or `unlimited`",
    )
    .limit(0, TIER_MAX)
    .fallback("unlimited"),
    VarSpec::optional(
        recorder::FLUSH_VAR,
        "milliseconds a metered call's usage row may wait before its batch is written",
    )
    .integer(1, 60_000)
    .fallback("250"),
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
    rate_limit::PER_MINUTE_SPEC,
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
        conversations::MAX_MESSAGE_BYTES_VAR,
        "largest message content in bytes (bodies over 64 KiB are refused anyway); over it: 413",
    )
    .integer(1, 60_000)
    .fallback("32768"),
    VarSpec::optional(
        checkpoint::SIGNING_KEY_VAR,
        "Ed25519 seed (64 hex) that signs audit checkpoints; `helix audit keygen` makes one",
    )
    .secret(),
];
