//! A WebSocket test client speaking the hub's protocol over a real TCP connection, and the hub
//! fixture: backend-api (with an admin) plus websocket-streaming beside it on the same backends.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::spawn_app::{spawn_sibling, TestApp};
use super::TestBackends;

/// Longest wait for one frame; only ever reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(10);

/// backend-api with an admin, and websocket-streaming asking it about conversations.
pub struct Hub {
    pub api: TestApp,
    pub ws: TestApp,
    pub admin: String,
}

pub async fn hub(extra: &[(&str, &str)]) -> Hub {
    let (api, admin) = crate::admin::with_admin(TestBackends::new(), &[]).await;
    let api_url = format!("http://{}", api.addr);
    let mut env = vec![("BACKEND_API_URL", api_url.as_str())];
    env.extend_from_slice(extra);
    let ws = spawn_sibling(&api, "websocket-streaming", &env).await;
    Hub { api, ws, admin }
}

pub struct Client {
    stream: WebSocketStream<TcpStream>,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl Client {
    /// Connect to `path` (with its query) sending `headers`; the server's answer to the upgrade
    /// must be 101.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = format!("ws://{addr}{path}")
            .into_client_request()
            .expect("a request");
        for (name, value) in headers {
            let name =
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("a header name");
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(value).expect("a header value"));
        }
        let tcp = TcpStream::connect(addr).await.expect("TCP connect");
        let (stream, response) = tokio_tungstenite::client_async(request, tcp)
            .await
            .expect("the upgrade is accepted");
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Self { stream, protocol }
    }

    /// Connect with `Authorization: Bearer <credential>` and read the welcome frame.
    pub async fn connect(app: &TestApp, credential: &str) -> Self {
        let bearer = format!("Bearer {credential}");
        let mut client = Self::open(app.addr, "/ws", &[("authorization", &bearer)]).await;
        let welcome = client.next().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        client
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_raw(Message::text(frame.to_string())).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("frame sent");
    }

    /// The next text frame as JSON; fails on a close or after the patience bound.
    pub async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("a frame within the patience bound")
                .expect("the connection is open")
                .expect("a well-formed frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
                Message::Close(frame) => panic!("closed unexpectedly: {frame:?}"),
                _ => {}
            }
        }
    }

    /// The next text frame as JSON, or how the connection closed.
    pub async fn next_or_close(&mut self) -> Result<Value, Closed> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("a frame within the patience bound");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text).expect("JSON"))
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map_or(
                        Closed {
                            code: u16::from(CloseCode::Status),
                            reason: String::new(),
                        },
                        |f| Closed {
                            code: u16::from(f.code),
                            reason: f.reason.to_string(),
                        },
                    ))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("the connection failed instead of closing: {e}"),
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// Subscribe and return the `subscribed` frame.
    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(json!({"type": "subscribe", "channel": channel}))
            .await;
        let reply = self.next().await;
        assert_eq!(reply["type"], "subscribed", "{reply}");
        reply
    }

    /// Read frames until the server closes; its close code and reason.
    pub async fn closed(&mut self) -> Closed {
        loop {
            if let Err(closed) = self.next_or_close().await {
                return closed;
            }
        }
    }

    /// Close from the client side and wait for the server to acknowledge.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(PATIENCE, self.stream.next()).await {}
    }
}
