//! A local webhook endpoint for delivery tests: records every request (path, Standard Webhooks
//! headers, body) and answers each path as told: a status, a 429 with `Retry-After`, or not at
//! all for a while (a slow endpoint).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How a path answers.
#[derive(Debug, Clone)]
pub enum Mode {
    Status(u16),
    /// 429 with this `Retry-After` value.
    Throttle(&'static str),
    /// Sleep this long, then 200.
    Slow(Duration),
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: Instant,
}

impl Hit {
    /// Whether the Standard Webhooks signature checks out with `secret` (`whsec_<base64>`),
    /// computed here independently of Helix's own code.
    pub fn signed_with(&self, secret: &str) -> bool {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .expect("base64");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}.{}", self.id, self.timestamp, self.body).as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        self.signature
            .split(' ')
            .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inner {
    hits: Mutex<Vec<Hit>>,
    modes: Mutex<HashMap<String, Mode>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, mode: Mode) {
        self.inner
            .modes
            .lock()
            .unwrap()
            .insert(path.to_owned(), mode);
    }

    pub fn hits(&self, path: &str) -> Vec<Hit> {
        let hits = self.inner.hits.lock().unwrap();
        hits.iter().filter(|h| h.path == path).cloned().collect()
    }
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let path = uri.path().to_owned();
    inner.hits.lock().unwrap().push(Hit {
        path: path.clone(),
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    let mode = inner.modes.lock().unwrap().get(&path).cloned();
    match mode.unwrap_or(Mode::Status(204)) {
        Mode::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Mode::Throttle(after) => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", after)]).into_response()
        }
        Mode::Slow(wait) => {
            tokio::time::sleep(wait).await;
            StatusCode::OK.into_response()
        }
    }
}
