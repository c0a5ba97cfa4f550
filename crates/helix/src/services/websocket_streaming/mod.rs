//! websocket-streaming: the realtime hub. Clients connect to `GET /ws` (or the old
//! `/ws/consciousness`), authenticate at connect, subscribe to channels they may read, and get
//! every message of those channels with an offset and epoch, recovering what they missed after a
//! reconnect from the channel's history on the bus. Services publish with `POST /api/publish`.
//!
//! Modules: [`channels`] (names and rights), [`protocol`] (frames, close codes), [`hub`] (the
//! instance's channels and connections, fan-out, drain), [`connection`] (one client), [`http`]
//! (publishing over HTTP), [`config`], [`metrics`]. The protocol is in `docs/realtime.md`.

pub mod channels;
pub mod config;
pub mod connection;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod protocol;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, BACKEND_API_URL_VAR, JWT_SECRET_VAR};
use crate::services::ServiceState;
use crate::shared::auth::{api_key, AuthError};
use crate::shared::error::ApiError;
use channels::Ownership;
use config::HubConfig;
use connection::Session;
use hub::{Hub, HubParts};
use metrics::HubMetrics;
use protocol::close;

/// The subprotocol clients name (and the server selects); a credential may ride beside it as
/// `bearer.<token>` for browsers, which cannot set headers on a WebSocket.
pub const SUBPROTOCOL: &str = "helix.v1";
const BEARER_PROTOCOL: &str = "bearer.";
/// The channel the old `/ws/consciousness` path subscribes to.
const CONSCIOUSNESS: &str = "consciousness:stream";
/// Where backend-api answers when `BACKEND_API_URL` is unset.
const LOCAL_BACKEND_API: &str = "http://127.0.0.1:8000";

/// The hub's routes; builds the hub on the service's bus.
pub fn routes(state: &ServiceState) -> Router<ServiceState> {
    let Some(bus) = state.bus().cloned() else {
        return Router::new();
    };
    let backend_api = state
        .env()
        .get(BACKEND_API_URL_VAR.name)
        .unwrap_or(LOCAL_BACKEND_API);
    let hub = Hub::new(HubParts {
        bus,
        config: HubConfig::from_env(state.env()),
        ownership: Ownership::new(backend_api),
        metrics: HubMetrics::new(state.metrics().registry()),
        auth: state.auth().cloned(),
        stopping: state.stopping().clone(),
    });
    Router::new()
        .route("/ws", get(connect))
        .route("/ws/consciousness", get(connect_consciousness))
        .route("/api/publish", post(http::publish))
        .route(
            "/api/consciousness/publish",
            post(http::publish_consciousness),
        )
        .route(
            "/api/consciousness/metrics",
            get(http::consciousness_metrics),
        )
        .layer(Extension(hub))
}

#[derive(Debug, Deserialize)]
pub struct ConnectQuery {
    /// The credential, for clients that cannot set headers.
    token: Option<String>,
    /// Accepted (and ignored) for the old `/ws/consciousness?client_id=…` clients.
    #[allow(dead_code)]
    client_id: Option<String>,
}

async fn connect(
    State(state): State<ServiceState>,
    Extension(hub): Extension<Arc<Hub>>,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    open(state, hub, query, headers, upgrade, None).await
}

async fn connect_consciousness(
    State(state): State<ServiceState>,
    Extension(hub): Extension<Arc<Hub>>,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    open(state, hub, query, headers, upgrade, Some(CONSCIOUSNESS)).await
}

/// Authenticate, then upgrade: a connection without a valid credential is accepted only to be
/// closed with 4401 and the reason (a browser cannot read an HTTP error of a failed upgrade).
async fn open(
    state: ServiceState,
    hub: Arc<Hub>,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    channel: Option<&'static str>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let message = format!(
                "this path takes a WebSocket upgrade: {}",
                rejection.body_text()
            );
            let mut error =
                ApiError::new(StatusCode::UPGRADE_REQUIRED, "upgrade_required", message);
            error
                .headers
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            return error.into_response();
        }
    };
    if hub.stopping.is_cancelled() {
        hub.metrics.refused.inc();
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this instance is shutting down; connect again",
        )
        .into_response();
    }
    let token = query.ok().and_then(|Query(q)| q.token);
    let credential = header_credential(&headers)
        .or_else(|| protocol_credential(&headers))
        .or(token);
    let checked = match (credential, state.auth()) {
        (None, _) => Err(AuthError::Missing),
        (Some(_), None) => Err(AuthError::Unavailable),
        (Some(credential), Some(auth)) => {
            auth.authenticate_credential(&credential)
                .await
                .map(|(principal, expires_at)| Session {
                    principal,
                    credential,
                    expires_at,
                })
        }
    };
    let config = &hub.config;
    let upgrade = upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(config.max_frame_bytes)
        .max_frame_size(config.max_frame_bytes)
        // Why small: tungstenite zero-fills its whole read buffer, so its size is resident
        // memory of every idle connection; larger frames grow it as needed.
        .read_buffer_size(4096);
    let tracker = state.tasks().clone();
    upgrade.on_upgrade(move |socket| {
        tracker.track_future(async move {
            match checked {
                Ok(session) => connection::run(hub, socket, session, channel).await,
                Err(e) => {
                    hub.metrics.refused.inc();
                    // An outage is not the client's fault: "try again later", not "log in again".
                    let code = match e {
                        AuthError::Unavailable => close::TRY_AGAIN_LATER,
                        _ => close::UNAUTHORIZED,
                    };
                    refuse(socket, code, &e.to_string()).await;
                }
            }
        })
    })
}

async fn refuse(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// `Authorization: Bearer …` or `X-API-Key`.
pub fn header_credential(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_owned());
    }
    let key = headers.get("x-api-key")?.to_str().ok()?.trim();
    api_key::looks_like_key(key).then(|| key.to_owned())
}

/// `Sec-WebSocket-Protocol: helix.v1, bearer.<token>`.
fn protocol_credential(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(BEARER_PROTOCOL).map(str::to_owned))
}

/// What websocket-streaming declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "websocket-streaming",
    port: Some(8080),
    postgres: Need::No,
    redis: Need::Yes,
    about: "WebSocket hub over the bus: channels, authentication, history, recovery.",
    postgres_why: "channel history and offsets live in Redis, so any instance can serve any client",
    redis_why: "backplane: every instance delivers every channel message",
    vars: &VARS,
    api_ready: true,
};

const VARS: [VarSpec; 11] = {
    let c = config::VARS;
    [
        JWT_SECRET_VAR,
        BACKEND_API_URL_VAR,
        crate::shared::rate_limit::PER_MINUTE_SPEC,
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        c[5],
        c[6],
        c[7],
    ]
};
