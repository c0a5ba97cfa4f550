//! The Redis bus: several processes and machines share channels, channel history, key/value
//! state and rate limits through one Redis.
//!
//! Owns two kinds of connection per bus, both named `helix-bus` in `CLIENT LIST`:
//! - one shared command connection (a [`ConnectionManager`]: multiplexed, reconnects on its own)
//!   for `PUBLISH`, `PING`, the channel history scripts (`history`), key/value commands (`kv`)
//!   and the rate limit script (`rate`);
//! - one dedicated pub/sub connection owned by a background task ([`pubsub`]) that fans
//!   messages out to local subscribers and resubscribes after a reconnect.
//!
//! `BusOptions.prefix` is prepended to channel names on the wire (and stripped on receipt) and to
//! every key. Errors and logs name `host:port`, never the user or the password.
//! Needs Redis 6 or later (RESP3).

mod connect;
mod history;
mod kv;
mod pubsub;
mod rate;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::RedisError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Backend, Bus, BusError, BusOptions, PubSub, Subscription};
use connect::{bus_error, Endpoint, Link};
use history::RedisLogs;
use pubsub::PubSubHandle;
use rate::RedisRates;

/// How long `ping` waits for `PONG`.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Pub/sub, channel history, key/value and rate limits on Redis.
pub struct RedisBus {
    /// Why a `ConnectionManager`: one multiplexed connection serves every caller concurrently
    /// (clones are cheap handles) and is replaced transparently after a Redis restart.
    conn: ConnectionManager,
    pubsub: PubSubHandle,
    rates: RedisRates,
    logs: RedisLogs,
    prefix: String,
    target: String,
    description: String,
    /// Stops the pub/sub task and the name keeper: cancelled by `close` and on drop.
    cancel: CancellationToken,
    /// Why a std mutex: `close` takes the handles out once and awaits them outside the lock.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Connect to `redis://` or `rediss://` (retrying `connect_attempts` times at most).
    pub async fn open(url: &str, options: &BusOptions) -> Result<Self, BusError> {
        let endpoint = Endpoint::parse(url)?;
        let link = Link::new(endpoint.client.clone(), options.connect_timeout);
        let first = link
            .connect_with_retry(&endpoint.target, options.connect_attempts)
            .await?;
        let cancel = CancellationToken::new();
        let (conn, keeper) =
            connect::command_connection(&endpoint, options, cancel.clone()).await?;
        let (pubsub, task) = PubSubHandle::spawn(
            first,
            link,
            options.prefix.clone(),
            options.subscription_buffer,
            endpoint.target.clone(),
            cancel.clone(),
        );
        tracing::info!(target: "helix_bus", redis = %endpoint.description, "bus connected");
        Ok(Self {
            conn,
            pubsub,
            rates: RedisRates::new(&options.prefix),
            logs: RedisLogs::new(&options.prefix),
            prefix: options.prefix.clone(),
            target: endpoint.target,
            description: endpoint.description,
            cancel,
            tasks: Mutex::new(vec![keeper, task]),
        })
    }

    /// `CLIENT ID` of this bus's pub/sub connection (`None` while it reconnects), to find it
    /// in `CLIENT LIST`.
    pub fn pubsub_client_id(&self) -> Option<i64> {
        self.pubsub.client_id()
    }

    /// `CLIENT ID` of the command connection in use now (one round trip on it), to find it in
    /// `CLIENT LIST`. It changes whenever the connection manager replaces the connection.
    pub async fn command_client_id(&self) -> Result<i64, BusError> {
        let mut conn = self.conn()?;
        redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.fail(e))
    }

    /// A handle on the command connection, or `Unavailable` once closed.
    fn conn(&self) -> Result<ConnectionManager, BusError> {
        if self.cancel.is_cancelled() {
            return Err(BusError::Unavailable {
                target: self.target.clone(),
                reason: "the bus is closed".into(),
            });
        }
        Ok(self.conn.clone())
    }

    fn fail(&self, e: RedisError) -> BusError {
        bus_error(&self.target, &e)
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        // Background tasks must not outlive the bus (they hold connections open).
        self.cancel.cancel();
    }
}

#[async_trait]
impl PubSub for RedisBus {
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), BusError> {
        let mut conn = self.conn()?;
        redis::cmd("PUBLISH")
            .arg(format!("{}{channel}", self.prefix))
            .arg(payload.as_ref())
            .exec_async(&mut conn)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError> {
        self.conn()?;
        self.pubsub.subscribe(channel).await
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn backend(&self) -> Backend {
        Backend::Redis
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn ping(&self) -> Result<(), BusError> {
        let mut conn = self.conn()?;
        let ping = redis::cmd("PING");
        let pong = ping.exec_async(&mut conn);
        match tokio::time::timeout(PING_TIMEOUT, pong).await {
            Ok(result) => result.map_err(|e| self.fail(e)),
            Err(_) => Err(BusError::Unavailable {
                target: self.target.clone(),
                reason: format!("no PONG within {PING_TIMEOUT:?}"),
            }),
        }
    }

    fn pubsub_client_id(&self) -> Option<i64> {
        self.pubsub.client_id()
    }

    async fn close(&self) {
        self.cancel.cancel();
        let tasks = {
            let mut guard = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *guard)
        };
        for task in tasks {
            // A task that panicked has nothing left to stop.
            let _ = task.await;
        }
    }
}
