//! A local server playing Discord's channel webhooks (`POST /api/webhooks/{id}/{token}?wait=true`):
//! keeps every request (path, query, JSON body, when it arrived) and answers each path from a
//! script of answers, then 200 with a message once the script is used up.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with these rate-limit headers: remaining, reset after (seconds), bucket.
    Limited(u32, &'static str, &'static str),
    /// 429 with Discord's JSON body (`retry_after` in seconds).
    Throttled(f64),
    Status(u16),
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Post {
    pub path: String,
    pub query: String,
    pub body: String,
    pub at: Instant,
}

impl Post {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inner {
    posts: Mutex<Vec<Post>>,
    script: Mutex<HashMap<String, VecDeque<Answer>>>,
}

pub struct FakeWebhooks {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FakeWebhooks {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, inner }
    }

    /// The webhook URL of a channel, as Discord shows it (id and token in the path).
    pub fn url(&self, channel: &str) -> String {
        format!(
            "http://{}/api/webhooks/{}/{}",
            self.addr,
            Self::id(channel),
            Self::token(channel)
        )
    }

    fn id(channel: &str) -> String {
        format!("11{}", channel.len() * 7919)
    }

    /// The token part of a channel's webhook URL (a secret).
    pub fn token(channel: &str) -> String {
        format!("whtok-{channel}-Zm9vYmFyYmF6cXV4")
    }

    pub fn path(channel: &str) -> String {
        format!(
            "/api/webhooks/{}/{}",
            Self::id(channel),
            Self::token(channel)
        )
    }

    /// Answer the next requests of a channel with these, in order.
    pub fn script(&self, channel: &str, answers: &[Answer]) {
        self.inner
            .script
            .lock()
            .unwrap()
            .entry(Self::path(channel))
            .or_default()
            .extend(answers.iter().cloned());
    }

    pub fn posts(&self, channel: &str) -> Vec<Post> {
        let path = Self::path(channel);
        let posts = self.inner.posts.lock().unwrap();
        posts.iter().filter(|p| p.path == path).cloned().collect()
    }
}

async fn receive(State(inner): State<Arc<Inner>>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    inner.posts.lock().unwrap().push(Post {
        path: path.clone(),
        query: uri.query().unwrap_or_default().to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    let next = inner
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let message = || axum::Json(json!({"id": "1", "type": 0, "content": ""}));
    match next {
        None => (StatusCode::OK, message()).into_response(),
        Some(Answer::Limited(remaining, after, bucket)) => (
            StatusCode::OK,
            [
                ("x-ratelimit-limit", "5".to_owned()),
                ("x-ratelimit-remaining", remaining.to_string()),
                ("x-ratelimit-reset-after", after.to_owned()),
                ("x-ratelimit-bucket", bucket.to_owned()),
            ],
            message(),
        )
            .into_response(),
        Some(Answer::Throttled(after)) => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"message": "You are being rate limited.", "retry_after": after, "global": false})),
        )
            .into_response(),
        Some(Answer::Status(code)) => (
            StatusCode::from_u16(code).unwrap(),
            axum::Json(json!({"message": "Unknown Webhook", "code": 10015})),
        )
            .into_response(),
    }
}
