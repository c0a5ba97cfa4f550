//! zapier-integration: webhooks in and out.
//!
//! In ([`inbound`]): signed events from Zapier and other sources are verified over the raw body,
//! stored and queued ([`ingest`]) before the sender gets its 2xx. Out: endpoints subscribe to
//! event types ([`subscriptions`]); each event becomes one delivery per matching endpoint, sent
//! by the worker as jobs ([`kinds`]) with Standard Webhooks signatures ([`signature`]), retried on
//! a schedule, and queryable and replayable by their owners ([`deliveries`]). Targets are held
//! to the SSRF guard of `shared::outbound`. The old service's read endpoints live in [`legacy`].

pub mod attempts;
pub mod deliveries;
pub mod inbound;
pub mod ingest;
pub mod kinds;
pub mod legacy;
pub mod signature;
pub mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, JWT_SECRET_VAR};
use crate::services::ServiceState;
use crate::shared::jobs::QUEUE_BACKEND_VAR;
use crate::shared::outbound::{Guard, ALLOW_VAR};

pub const SECRETS_VAR: VarSpec = VarSpec::optional(
    "HELIX_HOOK_SECRETS",
    "signing secrets of inbound sources for /api/hooks/{source}: `source=secret,…` (a `whsec_` secret is base64)",
)
.secret();
pub const ZAPIER_SECRET_VAR: VarSpec = VarSpec::optional(
    "ZAPIER_SECRET",
    "signing secret of the `zapier` source (/webhook/zapier and /api/hooks/zapier)",
)
.secret();
pub const TIMEOUT_VAR: VarSpec = VarSpec::optional(
    "HELIX_WEBHOOK_TIMEOUT_SECS",
    "seconds an outbound delivery may take before it counts as timed out",
)
.integer(1, 120)
.fallback("10");

/// What zapier-integration declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "zapier-integration",
    port: Some(8005),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Inbound Zapier webhooks and outbound deliveries.",
    postgres_why:
        "webhook events, subscriptions and the delivery log (the old service kept them only in Redis lists)",
    redis_why: "the job queue that carries deliveries (HELIX_QUEUE_BACKEND)",
    vars: &[
        JWT_SECRET_VAR,
        QUEUE_BACKEND_VAR,
        ZAPIER_SECRET_VAR,
        SECRETS_VAR,
        ALLOW_VAR,
    ],
    api_ready: false,
};

/// What the outbound handlers share.
pub struct Outbound {
    pub guard: Guard,
}

/// The routes zapier-integration adds; starts the intake tasks.
pub fn routes(state: &ServiceState) -> Router<ServiceState> {
    let env = state.env();
    let secrets =
        inbound::Secrets::parse(env.get(SECRETS_VAR.name), env.get(ZAPIER_SECRET_VAR.name))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "{} is invalid: no source accepted", SECRETS_VAR.name);
                inbound::Secrets::default()
            });
    let outbound = Arc::new(Outbound {
        guard: Guard::from_env(env),
    });
    let mut router = Router::new()
        .route(
            "/api/hooks/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route(
            "/api/hooks/subscriptions/{id}",
            axum::routing::delete(subscriptions::delete),
        )
        .route("/api/hooks/deliveries", get(deliveries::list))
        .route("/api/hooks/deliveries/{id}", get(deliveries::get))
        .route(
            "/api/hooks/deliveries/{id}/replay",
            post(deliveries::replay),
        );
    if let (Some(store), Some(jobs)) = (state.store(), state.jobs()) {
        let intake = Arc::new(inbound::Inbound {
            secrets,
            ingest: ingest::Ingest::start(store.clone(), jobs.backend().clone()),
        });
        router = router
            .route("/api/hooks/{source}", post(inbound::receive))
            .route("/webhook/zapier", post(inbound::receive_zapier))
            .merge(legacy::routes())
            .layer(Extension(intake));
    }
    router.layer(Extension(outbound))
}

/// The kinds the worker runs for this service, given the store and job backend it works with.
pub fn register(
    registry: &mut helix_jobs::Registry,
    store: Arc<dyn helix_store::Store>,
    jobs: Arc<dyn helix_jobs::JobBackend>,
    env: &crate::config::ServiceEnv,
) {
    let timeout = env
        .integer(TIMEOUT_VAR.name)
        .map_or(Duration::from_secs(10), |s| Duration::from_secs(s as u64));
    let context = kinds::Context::new(store, jobs, Guard::from_env(env), timeout);
    registry.register(kinds::Fanout(context.clone()));
    registry.register(kinds::Deliver(context));
}

/// Whose rows the caller sees: their own, or everyone's for an admin (`None`).
pub fn owner(principal: &crate::shared::auth::Principal) -> Option<uuid::Uuid> {
    (!principal.role.is_admin()).then_some(principal.user_id)
}

/// Microseconds since the epoch as the RFC 3339 text the API answers with.
pub fn time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
