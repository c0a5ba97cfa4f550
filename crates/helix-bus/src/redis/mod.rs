//! The Redis bus: several processes and machines share channels, queues, key/value state and
//! rate limits through one Redis.
//!
//! Owns two kinds of connection per bus, both named `helix-bus` in `CLIENT LIST`:
//! - one shared command connection (a [`ConnectionManager`]: multiplexed, reconnects on its own)
//!   for `PUBLISH`, `PING`, the queue scripts ([`queue`]), the channel history scripts
//!   (`history`), key/value commands (`kv`) and the rate limit script (`rate`);
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
mod queue;
mod rate;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::RedisError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    Backend, Bus, BusError, BusOptions, JobQueue, Lease, PubSub, QueueStats, Subscription,
};
use connect::{bus_error, Endpoint, Link};
use history::RedisLogs;
use pubsub::PubSubHandle;
use queue::RedisQueues;
use rate::RedisRates;

/// How long `ping` waits for `PONG`.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Pub/sub, durable job queues, key/value and rate limits on Redis.
pub struct RedisBus {
    /// Why a `ConnectionManager`: one multiplexed connection serves every caller concurrently
    /// (clones are cheap handles) and is replaced transparently after a Redis restart.
    conn: ConnectionManager,
    pubsub: PubSubHandle,
    queues: RedisQueues,
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
            queues: RedisQueues::new(&options.prefix),
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

fn lease_lost(lease: &Lease) -> BusError {
    BusError::LeaseLost {
        job_id: lease.job_id.clone(),
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
impl JobQueue for RedisBus {
    async fn enqueue(
        &self,
        queue: &str,
        payload: Bytes,
        delay: Duration,
    ) -> Result<String, BusError> {
        crate::check_queue_name(queue)?;
        let mut conn = self.conn()?;
        let id = uuid::Uuid::now_v7().to_string();
        self.queues
            .enqueue(&mut conn, queue, &id, &payload, delay)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(id)
    }

    async fn reserve(&self, queue: &str, lease: Duration) -> Result<Option<Lease>, BusError> {
        crate::check_queue_name(queue)?;
        let mut conn = self.conn()?;
        let reserved = self.queues.reserve(&mut conn, queue, lease).await;
        let reserved = reserved.map_err(|e| self.fail(e))?;
        Ok(reserved.map(|(job_id, payload, token, attempt)| Lease {
            queue: queue.to_owned(),
            job_id,
            payload,
            token,
            attempt,
        }))
    }

    async fn ack(&self, lease: &Lease) -> Result<(), BusError> {
        crate::check_queue_name(&lease.queue)?;
        let mut conn = self.conn()?;
        let done = self
            .queues
            .ack(&mut conn, &lease.queue, &lease.job_id, lease.token);
        match done.await.map_err(|e| self.fail(e))? {
            true => Ok(()),
            false => Err(lease_lost(lease)),
        }
    }

    async fn release(&self, lease: &Lease, delay: Duration) -> Result<(), BusError> {
        crate::check_queue_name(&lease.queue)?;
        let mut conn = self.conn()?;
        let (queue, id) = (&lease.queue, &lease.job_id);
        let done = self
            .queues
            .release(&mut conn, queue, id, lease.token, delay);
        match done.await.map_err(|e| self.fail(e))? {
            true => Ok(()),
            false => Err(lease_lost(lease)),
        }
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats, BusError> {
        crate::check_queue_name(queue)?;
        let mut conn = self.conn()?;
        self.queues
            .stats(&mut conn, queue)
            .await
            .map_err(|e| self.fail(e))
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
