//! `spawn_app(service)`: the real service, started through the same path as `helix serve`, on
//! 127.0.0.1 port 0, against the test backends.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use helix::app::App;
use helix::config::resolve::Mode;
use helix::config::Config;
use helix::platform::catalog;
use helix::platform::deployment::{Deployment, Generate};
use helix::platform::supervisor;
use helix::services::ServiceState;
use tokio_util::sync::CancellationToken;

use super::TestBackends;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: ServiceState,
    pub backends: TestBackends,
    shutdown: CancellationToken,
}

/// Start one HTTP service on the test backends.
pub async fn spawn_app(service: &str) -> TestApp {
    spawn_app_with(service, TestBackends::new(), BTreeMap::new()).await
}

/// Start one HTTP service with extra environment variables.
pub async fn spawn_app_with(
    service: &str,
    backends: TestBackends,
    extra: BTreeMap<String, String>,
) -> TestApp {
    let mut env = backends.env();
    env.extend(extra);
    let config = Config::from_parts(env, None, None).expect("test configuration is valid");
    let spec = catalog::find(service).expect("a catalog service");
    let deployment = Deployment::plan(
        &config,
        Mode::Serve(service.into()),
        BTreeMap::new(),
        &[spec],
        Generate::Create,
    )
    .into_startable()
    .expect("test deployment has no errors");
    let app = App::open(deployment, &config.settings, true)
        .await
        .expect("backends open");
    let planned = &app.deployment.services[0];
    let state = app.state(planned);
    let router = app.router(planned);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("bound address");
    let shutdown = CancellationToken::new();
    tokio::spawn(supervisor::serve(listener, router, shutdown.clone()));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        state,
        backends,
        shutdown,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
