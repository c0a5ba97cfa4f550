//! Discord as the tests meet it: interactions shaped as Discord sends them, signed as Discord
//! signs them — `X-Signature-Ed25519` is the hex Ed25519 signature of `<timestamp><raw body>`,
//! `X-Signature-Timestamp` the Unix seconds — with a key pair from a fixed seed; and a local
//! server that plays Discord's API and keeps every request it receives.

use std::sync::{Arc, Mutex};

use axum::http::{Method, Uri};
use bytes::Bytes;
use chrono::Utc;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

use super::spawn_app::TestApp;

/// The application the interactions are for.
pub const APPLICATION_ID: &str = "1100000000000000001";
pub const GUILD_ID: &str = "613425648685547541";
pub const CHANNEL_ID: &str = "645027906669510667";
pub const USER_ID: &str = "80351110224678912";

/// The test application's key pair (a fixed seed, so runs are reproducible).
pub fn signer() -> SigningKey {
    SigningKey::from_bytes(&[0x2a; 32])
}

/// Another key pair: what a forger would sign with.
pub fn other_signer() -> SigningKey {
    SigningKey::from_bytes(&[0x17; 32])
}

/// The public key as the developer portal shows it (hex), for DISCORD_PUBLIC_KEY.
pub fn public_key() -> String {
    hex::encode(signer().verifying_key().to_bytes())
}

/// Unix seconds now, as Discord writes it.
pub fn now() -> String {
    Utc::now().timestamp().to_string()
}

/// The hex signature of `<timestamp><body>` with `key`.
pub fn sign(key: &SigningKey, timestamp: &str, body: &str) -> String {
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body.as_bytes());
    hex::encode(key.sign(&message).to_bytes())
}

/// A fresh interaction id (a snowflake-like number) and token.
pub fn fresh_id() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 9_000_000_000_000_000_000;
    (1_000_000_000_000_000_000u128 + n).to_string()
}

/// The interaction token Discord gives with every interaction (a credential for follow-ups).
pub fn token_of(id: &str) -> String {
    format!("aW50ZXJhY3Rpb246{id}OnRlc3Q.tok-{id}")
}

/// A PING, as Discord sends it when the endpoint URL is saved in the developer portal.
pub fn ping(id: &str) -> String {
    json!({
        "application_id": APPLICATION_ID,
        "entitlements": [],
        "id": id,
        "token": token_of(id),
        "type": 1,
        "user": {"avatar": null, "discriminator": "0000", "id": "1", "public_flags": 0, "username": "discord"},
        "version": 1,
    })
    .to_string()
}

/// A slash command `/name` run by a member of a guild.
pub fn command(id: &str, name: &str) -> String {
    interaction(
        id,
        2,
        json!({"id": "1200000000000000001", "name": name, "type": 1}),
    )
}

/// An interaction of any type with `data`, in a guild channel.
pub fn interaction(id: &str, kind: u8, data: Value) -> String {
    json!({
        "app_permissions": "2248473465835073",
        "application_id": APPLICATION_ID,
        "authorizing_integration_owners": {"0": GUILD_ID},
        "channel": {"id": CHANNEL_ID, "name": "general", "type": 0, "guild_id": GUILD_ID},
        "channel_id": CHANNEL_ID,
        "context": 0,
        "data": data,
        "entitlements": [],
        "guild_id": GUILD_ID,
        "guild_locale": "en-US",
        "id": id,
        "locale": "en-GB",
        "member": {
            "deaf": false,
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "mute": false,
            "nick": null,
            "permissions": "2248473465835073",
            "roles": [],
            "user": {"avatar": null, "discriminator": "0", "global_name": "Ada", "id": USER_ID, "public_flags": 0, "username": "ada"},
        },
        "token": token_of(id),
        "type": kind,
        "version": 1,
    })
    .to_string()
}

/// POST `body` with the given signature headers (each left out when `None`).
pub async fn deliver(
    app: &TestApp,
    body: impl Into<reqwest::Body>,
    signature: Option<String>,
    timestamp: Option<String>,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/discord/interactions"))
        .header("content-type", "application/json")
        .header(
            "user-agent",
            "Discord-Interactions/1.0 (+https://discord.com)",
        )
        .body(body);
    if let Some(value) = signature {
        request = request.header("X-Signature-Ed25519", value);
    }
    if let Some(value) = timestamp {
        request = request.header("X-Signature-Timestamp", value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// Deliver `body` signed now by the test application's key.
pub async fn send(app: &TestApp, body: &str) -> (u16, Value) {
    let t = now();
    deliver(
        app,
        body.to_owned(),
        Some(sign(&signer(), &t, body)),
        Some(t),
    )
    .await
}

/// One request Discord's API received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub body: Value,
}

/// A local server playing Discord's API under `/api/v10`: answers every request with a message
/// object and keeps what it received.
pub struct FakeDiscord {
    /// What to set DISCORD_API_URL to.
    pub api_url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl FakeDiscord {
    pub async fn start() -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = received.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
            let kept = kept.clone();
            async move {
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let path = uri.path().to_owned();
                kept.lock().unwrap().push(Received { method, path, body });
                axum::Json(json!({"id": "1300000000000000001", "type": 0, "content": ""}))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            api_url: format!("http://{addr}/api/v10"),
            received,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}
