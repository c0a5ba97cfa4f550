//! Reaching Redis: the URL turned into a client plus password-free names for errors and logs,
//! connections named `helix-bus`, bounded retry at open, backoff, and the task that names the
//! command connection again after the connection manager replaced it.
//!
//! Every connection speaks RESP3 (Redis 6 or later): the pub/sub connection then stays a normal
//! connection that also accepts `CLIENT SETNAME`, `CLIENT ID` and `PING`, and both connections
//! report their loss as a `Disconnection` push.

use std::time::Duration;

use rand::Rng;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    RedisError, RedisResult,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{BusError, BusOptions};

/// What operators see in `CLIENT LIST` for every connection of a bus.
pub(crate) const CLIENT_NAME: &str = "helix-bus";
/// Bound on one command's reply (none of ours blocks on the server side).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed `redis://` / `rediss://` URL.
pub(crate) struct Endpoint {
    pub(crate) client: Client,
    /// `host:port`, for errors: never the user or the password.
    pub(crate) target: String,
    /// `redis host:port/db`.
    pub(crate) description: String,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Self, BusError> {
        let invalid = |reason: String| BusError::InvalidUrl { reason };
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(BusError::UnsupportedScheme {
                scheme: parsed.scheme().to_owned(),
            });
        }
        let host = match parsed.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err(invalid("the URL has no host".into())),
        };
        let target = format!("{host}:{}", parsed.port().unwrap_or(6379));
        // The driver's own messages name the faulty part, never the URL itself.
        let info = parsed
            .into_connection_info()
            .map_err(|e| invalid(e.to_string()))?;
        let db = info.redis_settings().db();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client =
            Client::open(info.set_redis_settings(settings)).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            client,
            description: format!("redis {target}/{db}"),
            target,
        })
    }
}

/// Is this error a lost or unreachable connection (as opposed to a refused command)?
pub(crate) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// Map a driver error: connection trouble is `Unavailable` naming `target`, the rest `Backend`.
pub(crate) fn bus_error(target: &str, e: &RedisError) -> BusError {
    if is_connection_error(e) {
        BusError::Unavailable {
            target: target.to_owned(),
            reason: e.to_string(),
        }
    } else {
        BusError::Backend(e.to_string())
    }
}

/// Exponential backoff with jitter: 100 ms doubling up to 5 s.
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        let jitter = rand::thread_rng().gen_range(0..=base.as_millis() as u64 / 4);
        base + Duration::from_millis(jitter)
    }
}

/// The dedicated pub/sub connection and where its pushes (messages, loss) arrive.
pub(crate) struct PubSubConn {
    pub(crate) conn: MultiplexedConnection,
    /// Why unbounded: the driver cannot wait for us; the pub/sub task drains it continuously.
    pub(crate) pushes: UnboundedReceiver<PushInfo>,
    /// Server-side `CLIENT ID`, so operators and tests can find this very connection.
    pub(crate) client_id: i64,
}

/// Opens pub/sub connections; cloned into the pub/sub task for its reconnects.
#[derive(Clone)]
pub(crate) struct Link {
    client: Client,
    connect_timeout: Duration,
}

impl Link {
    pub(crate) fn new(client: Client, connect_timeout: Duration) -> Self {
        Self {
            client,
            connect_timeout,
        }
    }

    /// One attempt: connect, name the connection, learn its id.
    pub(crate) async fn connect(&self) -> RedisResult<PubSubConn> {
        let (tx, pushes) = unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_push_sender(tx);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let ((), client_id): ((), i64) = redis::pipe()
            .cmd("CLIENT")
            .arg("SETNAME")
            .arg(CLIENT_NAME)
            .cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await?;
        Ok(PubSubConn {
            conn,
            pushes,
            client_id,
        })
    }

    /// Up to `attempts` tries with backoff between them, then `Unavailable`.
    pub(crate) async fn connect_with_retry(
        &self,
        target: &str,
        attempts: u32,
    ) -> Result<PubSubConn, BusError> {
        let attempts = attempts.max(1);
        let mut backoff = Backoff::default();
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.connect().await {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    tracing::warn!(target: "helix_bus", redis = target, attempt, attempts, error = %e, "cannot reach redis");
                    last = e.to_string();
                }
            }
            if attempt < attempts {
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
        Err(BusError::Unavailable {
            target: target.to_owned(),
            reason: last,
        })
    }
}

/// The shared command connection, named, plus the task that keeps it named.
pub(crate) async fn command_connection(
    endpoint: &Endpoint,
    options: &BusOptions,
    cancel: CancellationToken,
) -> Result<(ConnectionManager, JoinHandle<()>), BusError> {
    // Why a push channel: the manager reports a lost connection there; the keeper then names
    // the replacement (the driver has no hook for commands run on reconnect).
    let (tx, pushes) = unbounded_channel();
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1))
        .set_push_sender(tx);
    let fail = |e: RedisError| BusError::Unavailable {
        target: endpoint.target.clone(),
        reason: e.to_string(),
    };
    let manager =
        ConnectionManager::new_lazy_with_config(endpoint.client.clone(), config).map_err(fail)?;
    set_name(&manager).await.map_err(fail)?;
    // Why a task: renaming must happen whenever the manager reconnects, not on a caller's path.
    let keeper = tokio::spawn(keep_name(manager.clone(), pushes, cancel));
    Ok((manager, keeper))
}

async fn set_name(manager: &ConnectionManager) -> RedisResult<()> {
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(CLIENT_NAME)
        .exec_async(&mut manager.clone())
        .await
}

/// After every lost command connection, name the next one (retrying with backoff).
async fn keep_name(
    manager: ConnectionManager,
    mut pushes: UnboundedReceiver<PushInfo>,
    cancel: CancellationToken,
) {
    loop {
        let push = tokio::select! {
            _ = cancel.cancelled() => return,
            push = pushes.recv() => push,
        };
        match push {
            None => return,
            Some(push) if push.kind == PushKind::Disconnection => {
                rename(&manager, &cancel).await;
            }
            Some(_) => {}
        }
    }
}

async fn rename(manager: &ConnectionManager, cancel: &CancellationToken) {
    let mut backoff = Backoff::default();
    while let Err(e) = set_name(manager).await {
        tracing::debug!(target: "helix_bus", error = %e, "naming the redis command connection");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_carry_credentials() {
        let endpoint = Endpoint::parse("redis://admin:s3cretpw@cache.internal:6380/2").unwrap();
        assert_eq!(endpoint.target, "cache.internal:6380");
        assert_eq!(endpoint.description, "redis cache.internal:6380/2");
        let default_port = Endpoint::parse("rediss://:pw@example.com").unwrap();
        assert_eq!(default_port.description, "redis example.com:6379/0");
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for url in ["redis://:s3cretpw@host/notadb", "redis://:s3cretpw@/0"] {
            let err = Endpoint::parse(url).err().unwrap().to_string();
            assert!(err.starts_with("invalid bus URL"), "{err}");
            assert!(!err.contains("s3cretpw"), "{err}");
        }
    }
}
