//! Helix bus.
//!
//! Owns what services and instances share at run time:
//! - [`PubSub`]: fire-and-forget channels such as `consciousness:stream`, `service:health`,
//!   `agent:coordination`, `conversation:<id>`;
//! - [`History`]: a bounded, replayable log per channel (offsets and an epoch), appended and
//!   published in one step, so a client that reconnects gets exactly what it missed;
//! - [`KeyValue`]: small shared state with optional expiry (a maintenance flag, a session marker);
//! - [`RateLimiter`]: sliding-window rate limits whose counts every instance shares (the
//!   approximation is documented in [`rate`]).
//!
//! Two implementations: `memory` (in process, the embedded default) and `redis` (several
//! processes and machines; times come from the Redis server's clock, so app servers' clocks do
//! not matter). The backend is chosen at run time by [`open`] from the URL. Every service holds
//! the [`Bus`] (all four together) as `Arc<dyn Bus>`.
//!
//! Data flow: a publisher calls [`PubSub::publish`] → the backend fans the payload out to every
//! [`Subscription`] of that channel in every process attached to the same backend. A
//! [`RateLimiter::hit`] or a key/value call is one atomic step on the backend (one Lua script or
//! command on Redis, one short critical section in memory).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

mod error;
mod fanout;
pub mod history;
pub mod kv;
pub mod memory;
pub mod rate;
pub mod redis;

pub use error::BusError;
pub use history::{Envelope, History, Position, Replay, Retention, Since};
pub use kv::KeyValue;
pub use memory::MemoryBus;
pub use rate::{RateDecision, RateLimiter};
pub use redis::RedisBus;

/// Which engine a bus runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
        }
    }
}

/// How to open a bus.
#[derive(Debug, Clone)]
pub struct BusOptions {
    /// Prepended to every channel name and key, so that tests (or tenants) sharing one Redis never
    /// see each other. Empty in production so channels keep their platform names.
    pub prefix: String,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// Total attempts to reach Redis at open before giving up (bounded retry).
    pub connect_attempts: u32,
    /// Per-subscription buffer; a subscriber that falls further behind sees `Lagged`.
    pub subscription_buffer: usize,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            connect_attempts: 5,
            subscription_buffer: 1024,
        }
    }
}

/// One message received on a channel (the channel name is given without the prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: String,
    pub payload: Bytes,
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Message(Message),
    /// This subscriber fell behind and `skipped` messages were dropped for it alone.
    Lagged {
        skipped: u64,
    },
    /// The connection to the backend was lost and re-established; messages published meanwhile
    /// may be missing, so the consumer should recover from history.
    Resubscribed,
}

/// A live subscription to one channel. Dropping it unsubscribes.
pub struct Subscription {
    rx: tokio::sync::mpsc::Receiver<Event>,
    _guard: Option<Box<dyn Send + Sync>>,
}

impl Subscription {
    /// Build a subscription from a receiver and a guard whose drop unsubscribes.
    pub fn new(
        rx: tokio::sync::mpsc::Receiver<Event>,
        guard: Option<Box<dyn Send + Sync>>,
    ) -> Self {
        Self { rx, _guard: guard }
    }

    /// The next event if one is already waiting (`None` when none is, or the bus is closed).
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// The next event, or `None` once the bus is closed.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

#[async_trait]
pub trait PubSub: Send + Sync + 'static {
    /// Deliver `payload` to every current subscriber of `channel`; returns once the backend has
    /// accepted it. Messages of one publisher on one channel arrive in order.
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), BusError>;

    /// Subscribe to one channel. When this returns, the subscription is active: a message
    /// published afterwards is delivered. A message published before this was called is not.
    async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError>;
}

/// The bus every service holds as `Arc<dyn Bus>`: channels, history, key/value and rate limits.
#[async_trait]
pub trait Bus: PubSub + History + KeyValue + RateLimiter {
    fn backend(&self) -> Backend;

    /// A password-free description (`redis 127.0.0.1:6379/0`, `memory`).
    fn describe(&self) -> String;

    /// One cheap round trip; `Err` means the backend is unreachable right now.
    async fn ping(&self) -> Result<(), BusError>;

    /// Stop background tasks; open subscriptions end and later calls fail with
    /// [`BusError::Unavailable`].
    async fn close(&self);

    /// `CLIENT ID` of the connection that receives this bus's channel messages, where there is
    /// one (Redis), to find it in `CLIENT LIST`.
    fn pubsub_client_id(&self) -> Option<i64> {
        None
    }
}

/// Open a bus: `None` → in-process memory bus; `redis://` or `rediss://` → Redis. Any other
/// scheme is [`BusError::UnsupportedScheme`]. Retries the first connection `connect_attempts`
/// times, then fails with [`BusError::Unavailable`] naming the host, never the password.
pub async fn open(url: Option<&str>, options: &BusOptions) -> Result<Arc<dyn Bus>, BusError> {
    let Some(url) = url else {
        return Ok(Arc::new(MemoryBus::new(options)));
    };
    // Parsed here only to pick the backend; the error text never repeats the URL.
    let parsed = url::Url::parse(url).map_err(|e| BusError::InvalidUrl {
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "redis" | "rediss" => Ok(Arc::new(RedisBus::open(url, options).await?)),
        other => Err(BusError::UnsupportedScheme {
            scheme: other.to_owned(),
        }),
    }
}
