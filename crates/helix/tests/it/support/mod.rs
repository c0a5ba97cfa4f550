//! Test support: `spawn_app` starts a real service on port 0 against the test backends.

pub mod backends;
pub mod bin;
pub mod db;
pub mod discord;
pub mod discord_webhook;
pub mod proxy;
pub mod receiver;
pub mod spawn_app;
pub mod stripe;
pub mod users;
pub mod ws;

pub use backends::TestBackends;
pub use spawn_app::spawn_app;

/// Poll `check` until it holds; fail the test naming `what` after 20 s. For effects that cross
/// the bus, which arrive a little after the request that caused them.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The JSON a service published on a channel through its history (the payload of the
/// envelope, which must carry an offset).
pub fn published_json(payload: &bytes::Bytes) -> serde_json::Value {
    let envelope = helix_bus::Envelope::parse(payload).expect("published through the history");
    assert!(envelope.offset > 0, "an offset");
    serde_json::from_slice(&envelope.data).expect("JSON data")
}
