//! The runtime state a service's handlers receive.
//!
//! A service gets exactly the handles its [`ServiceSpec`] declares: a service that declares no
//! PostgreSQL has no store in its state, so no handler of it can reach the database, and under
//! `helix serve` no connection is ever opened for it.

use std::sync::Arc;

use helix_bus::Bus;
use helix_store::Store;

use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ServiceConfig, ServiceEnv};
use crate::platform::catalog::ServiceSpec;
use crate::shared::auth::jwt::Jwt;
use crate::shared::auth::Authenticator;
use crate::shared::lease::Leases;
use crate::shared::maintenance::Maintenance;
use crate::shared::metrics::HttpMetrics;
use crate::shared::rate_limit;
use crate::shared::usage::UsageRecorder;

/// How long an access token lives.
pub const ACCESS_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Cheap to clone: handlers take it by value.
#[derive(Clone)]
pub struct ServiceState(Arc<Inner>);

struct Inner {
    env: ServiceEnv,
    store: Option<Arc<dyn Store>>,
    bus: Option<Arc<dyn Bus>>,
    metrics: Arc<HttpMetrics>,
    /// Present when the service reads JWT_SECRET.
    auth: Option<Arc<Authenticator>>,
    /// Requests per minute per user or API key.
    rate_per_minute: u64,
    maintenance: Arc<Maintenance>,
    /// Local batches of request budgets (see `shared::lease`).
    leases: Leases,
    /// Present when the service meters calls (see `shared::usage`).
    usage: Option<UsageRecorder>,
    /// Cancelled when the service starts stopping: long-lived connections (WebSockets) close.
    stopping: CancellationToken,
    /// Those connections' tasks, which the service waits for before it counts as stopped.
    tasks: TaskTracker,
    /// Present when the service declares `HELIX_QUEUE_BACKEND` (see `shared::jobs`).
    jobs: Option<helix_jobs::Jobs>,
}

impl ServiceState {
    /// Build the state, keeping only the handles the service declared (a usage recorder only
    /// with a store to write to).
    pub fn new(
        env: ServiceEnv,
        config: &ServiceConfig,
        store: Option<Arc<dyn Store>>,
        bus: Option<Arc<dyn Bus>>,
        usage: Option<UsageRecorder>,
    ) -> Self {
        let spec = env.spec;
        let metrics = Arc::new(HttpMetrics::new(spec.name));
        let store = store.filter(|_| spec.postgres.is_needed());
        let auth = config.jwt_secret.as_ref().map(|secret| {
            let jwt = Jwt::new(secret.expose_secret().as_bytes(), ACCESS_TOKEN_TTL);
            let backend_api = env.get(crate::platform::catalog::BACKEND_API_URL_VAR.name);
            Arc::new(Authenticator::new(jwt, store.clone(), backend_api))
        });
        let rate_per_minute = env
            .integer(rate_limit::PER_MINUTE_VAR)
            .map_or(rate_limit::DEFAULT_PER_MINUTE, |n| n.max(1) as u64);
        Self(Arc::new(Inner {
            bus: bus.filter(|_| spec.redis.is_needed()),
            env,
            rate_per_minute,
            metrics,
            auth,
            maintenance: Arc::default(),
            leases: Leases::default(),
            usage: usage.filter(|_| store.is_some()),
            store,
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
            jobs: None,
        }))
    }

    /// Give the state its job backend (with the platform's job kinds). Call before cloning.
    pub fn with_jobs(mut self, backend: Option<Arc<dyn helix_jobs::JobBackend>>) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("with_jobs runs before the state is shared");
        inner.jobs = backend.map(|b| {
            let registry = crate::shared::jobs::registry_for(inner.store.as_ref(), &b, &inner.env);
            helix_jobs::Jobs::new(b, registry)
        });
        self
    }

    /// The job client, when the service declared a queue backend.
    pub fn jobs(&self) -> Option<&helix_jobs::Jobs> {
        self.0.jobs.as_ref()
    }

    /// Cancelled when the service starts stopping.
    pub fn stopping(&self) -> &CancellationToken {
        &self.0.stopping
    }

    /// Tasks that outlive the request that started them (WebSocket connections).
    pub fn tasks(&self) -> &TaskTracker {
        &self.0.tasks
    }

    /// The usage recorder, when the service meters calls.
    pub fn usage(&self) -> Option<&UsageRecorder> {
        self.0.usage.as_ref()
    }

    pub fn maintenance(&self) -> &Arc<Maintenance> {
        &self.0.maintenance
    }

    pub fn leases(&self) -> &Leases {
        &self.0.leases
    }

    pub fn rate_per_minute(&self) -> u64 {
        self.0.rate_per_minute
    }

    /// The credential checker, when the service reads JWT_SECRET.
    pub fn auth(&self) -> Option<&Arc<Authenticator>> {
        self.0.auth.as_ref()
    }

    pub fn spec(&self) -> &'static ServiceSpec {
        self.0.env.spec
    }

    pub fn env(&self) -> &ServiceEnv {
        &self.0.env
    }

    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.0.store.as_ref()
    }

    /// The store, for handlers of a service that declared one: its absence is a wiring bug (500),
    /// never the client's fault.
    pub fn require_store(&self) -> Result<&Arc<dyn Store>, crate::shared::error::ApiError> {
        self.store().ok_or_else(|| {
            crate::shared::error::ApiError::internal(format!(
                "{} started without a store",
                self.spec().name
            ))
        })
    }

    pub fn bus(&self) -> Option<&Arc<dyn Bus>> {
        self.0.bus.as_ref()
    }

    pub fn metrics(&self) -> &Arc<HttpMetrics> {
        &self.0.metrics
    }
}

impl std::fmt::Debug for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceState")
            .field("service", &self.spec().name)
            .field("store", &self.store().map(|s| s.describe()))
            .field("bus", &self.bus().map(|b| b.describe()))
            .finish()
    }
}
