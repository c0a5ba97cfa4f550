//! The application: a planned deployment with its backends open, ready to hand each service its
//! router. `helix up`, `helix serve` and the test harness all start services through here.

use axum::Router;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::platform::deployment::{Deployment, Planned};
use crate::platform::runtime::{Backends, StartError};
use crate::platform::supervisor::Unit;
use crate::services::{self, ServiceState};

pub struct App {
    pub deployment: Deployment,
    pub backends: Backends,
}

impl App {
    /// Open the backends the deployment's services declared, and migrate if asked.
    pub async fn open(
        deployment: Deployment,
        settings: &Settings,
        migrate: bool,
    ) -> Result<Self, StartError> {
        let mut backends = Backends::open(&deployment, settings).await?;
        if migrate {
            backends.migrate().await?;
        }
        backends.open_jobs(&deployment).await?;
        Ok(Self {
            deployment,
            backends,
        })
    }

    pub fn state(&self, planned: &Planned) -> ServiceState {
        self.backends.state_for(planned)
    }

    /// The full router of one planned service.
    pub fn router(&self, planned: &Planned) -> Router {
        services::router(self.state(planned))
    }

    /// Bind every service on `host` at its configured port, start what it runs beside its routes
    /// (the worker's loop, the beat), and make the units to run.
    pub async fn units(&self, host: &str) -> Result<Vec<Unit>, StartError> {
        let mut units = Vec::with_capacity(self.deployment.services.len());
        for planned in &self.deployment.services {
            let name = planned.env.spec.name;
            let Some(port) = planned.config.port else {
                return Err(StartError::Service {
                    service: name.to_owned(),
                    reason: "no port to listen on".into(),
                });
            };
            let addr = format!("{host}:{port}");
            let listener = TcpListener::bind(&addr)
                .await
                .map_err(|e| StartError::Bind {
                    service: name.to_owned(),
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            let state = self.state(planned);
            services::start(&state).map_err(|e| StartError::Service {
                service: name.to_owned(),
                reason: format!("{e:#}"),
            })?;
            let unit = Unit::Http {
                name,
                listener,
                router: services::router(state.clone()),
                state,
            };
            units.push(unit);
        }
        Ok(units)
    }
}
