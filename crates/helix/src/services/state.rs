//! The runtime state a service's handlers receive.
//!
//! A service gets exactly the handles its [`ServiceSpec`] declares: a service that declares no
//! PostgreSQL has no store in its state, so no handler of it can reach the database, and under
//! `helix serve` no connection is ever opened for it.

use std::sync::Arc;

use helix_bus::Bus;
use helix_store::Store;

use crate::config::ServiceEnv;
use crate::platform::catalog::ServiceSpec;
use crate::shared::metrics::HttpMetrics;

/// Cheap to clone: handlers take it by value.
#[derive(Clone)]
pub struct ServiceState(Arc<Inner>);

struct Inner {
    env: ServiceEnv,
    store: Option<Arc<dyn Store>>,
    bus: Option<Arc<dyn Bus>>,
    metrics: Arc<HttpMetrics>,
}

impl ServiceState {
    /// Build the state, keeping only the handles the service declared.
    pub fn new(env: ServiceEnv, store: Option<Arc<dyn Store>>, bus: Option<Arc<dyn Bus>>) -> Self {
        let spec = env.spec;
        let metrics = Arc::new(HttpMetrics::new(spec.name));
        Self(Arc::new(Inner {
            store: store.filter(|_| spec.postgres.is_needed()),
            bus: bus.filter(|_| spec.redis.is_needed()),
            env,
            metrics,
        }))
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
