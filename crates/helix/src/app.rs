//! The application: a planned deployment with its backends open, ready to hand each service its
//! router. `helix up`, `helix serve` and the test harness all start services through here.

use std::time::Duration;

use axum::Router;
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
        let backends = Backends::open(&deployment, settings).await?;
        if migrate {
            backends.migrate().await?;
        }
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

    /// Bind every HTTP service on `host` at its configured port, and make the units to run.
    pub async fn units(
        &self,
        host: &str,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Unit>, StartError> {
        let mut units = Vec::with_capacity(self.deployment.services.len());
        for planned in &self.deployment.services {
            let name = planned.env.spec.name;
            let unit = match planned.config.port {
                Some(port) => {
                    let addr = format!("{host}:{port}");
                    let listener =
                        TcpListener::bind(&addr)
                            .await
                            .map_err(|e| StartError::Bind {
                                service: name.to_owned(),
                                addr: addr.clone(),
                                reason: e.to_string(),
                            })?;
                    let state = self.state(planned);
                    Unit::Http {
                        name,
                        listener,
                        router: services::router(state.clone()),
                        state,
                    }
                }
                None => Unit::Background {
                    name,
                    task: background(self.state(planned), shutdown.clone()),
                },
            };
            units.push(unit);
        }
        Ok(units)
    }
}

/// Services without HTTP (worker, beat) hold their handles and wait for shutdown until the issue
/// that builds their loop; a slow heartbeat shows they are alive.
fn background(
    state: ServiceState,
    shutdown: CancellationToken,
) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    async move {
        tracing::info!(
            service = state.spec().name,
            "running (no job kinds registered yet)"
        );
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_secs(300)) => {
                    tracing::debug!(service = state.spec().name, "alive");
                }
            }
        }
    }
    .boxed()
}
