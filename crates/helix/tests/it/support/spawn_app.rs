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
    /// The environment the service was planned with.
    pub env: BTreeMap<String, String>,
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
    let config = Config::from_parts(env.clone(), None, None).expect("test configuration is valid");
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
    // The router shares the test's state, so caches the test inspects are the ones requests use.
    let router = helix::services::router(state.clone());
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
        env,
        shutdown,
    }
}

/// Start another service of the same deployment beside `app`, sharing its bus (so an in-process
/// bus is really shared) and, if it declares one, its database.
pub async fn spawn_sibling(app: &TestApp, service: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut env = app.env.clone();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let config = Config::from_parts(env.clone(), None, None).expect("test configuration is valid");
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
    let planned = &deployment.services[0];
    let state = ServiceState::new(
        planned.env.clone(),
        &planned.config,
        app.state.store().cloned(),
        app.state.bus().cloned(),
        None,
    )
    .with_jobs(app.state.jobs().map(|j| j.backend().clone()));
    let router = helix::services::router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("bound address");
    let shutdown = CancellationToken::new();
    tokio::spawn(supervisor::serve(listener, router, shutdown.clone()));
    // The sibling owns no test backends of its own: an empty set that cleans nothing up.
    let mut backends = TestBackends::new();
    backends.database_url = None;
    backends.redis_url = None;
    TestApp {
        addr,
        client: reqwest::Client::new(),
        state,
        backends,
        env,
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

    /// Send a request with an optional bearer credential and JSON body; the status and the JSON
    /// answer (`null` for an empty body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, json)
    }

    pub async fn post(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, bearer, Some(body))
            .await
    }

    pub async fn get_as(&self, path: &str, bearer: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, path, Some(bearer), None)
            .await
    }
}

impl TestApp {
    /// Begin stopping as on SIGTERM: long-lived connections drain, the listener closes.
    pub fn stop(&self) {
        self.state.stopping().cancel();
        self.shutdown.cancel();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}
