//! Wake-up hints: one dedicated pub/sub connection per [`Wakeups`], named `helix-jobs-wake` in
//! `CLIENT LIST`, owned by one task that bumps the watch value on every message of
//! `<prefix>jobs:wake` (the scripts publish there when jobs become available), reconnects with
//! backoff after losing Redis, and bumps once after reconnecting, since jobs may have arrived
//! while it was away. Dropping the guard, or every receiver, stops the task and closes the
//! connection.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, RedisResult};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::connect::{Backoff, Endpoint, CONNECT_TIMEOUT};
use crate::{JobError, Wakeups};

/// What operators see in `CLIENT LIST` for a wake-up connection.
pub(super) const CLIENT_NAME: &str = "helix-jobs-wake";
/// How often an idle connection is checked with `PING` (catches a silently lost network).
const HEALTH_EVERY: Duration = Duration::from_secs(15);

/// Subscribe now (so a job enqueued once this returns is signalled), then listen in a task.
pub(super) async fn listen(
    endpoint: &Endpoint,
    channel: String,
    name: &str,
) -> Result<Wakeups, JobError> {
    let link = Link {
        endpoint: endpoint.clone(),
        channel,
        name: name.to_owned(),
    };
    let first = link.connect().await.map_err(|e| endpoint.error(&e))?;
    let (tx, rx) = watch::channel(0u64);
    let stop = CancellationToken::new();
    let listener = Listener {
        link,
        tx,
        stop: stop.clone(),
    };
    // Why a task: the connection must be read continuously and repaired without any caller
    // waiting on it.
    tokio::spawn(listener.run(first));
    Ok(Wakeups {
        rx,
        guard: Some(Box::new(stop.drop_guard())),
    })
}

/// How to open the subscribed connection again.
struct Link {
    endpoint: Endpoint,
    channel: String,
    name: String,
}

/// A subscribed connection and where its pushes (messages, loss) arrive.
struct Subscribed {
    conn: MultiplexedConnection,
    /// Why unbounded: the driver cannot wait for us; the task drains it continuously, and
    /// every message is only a "look again" hint anyway.
    pushes: UnboundedReceiver<PushInfo>,
}

impl Link {
    async fn connect(&self) -> RedisResult<Subscribed> {
        let (tx, pushes) = unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT))
            .set_push_sender(tx);
        let client = &self.endpoint.pubsub;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(&self.name)
            .exec_async(&mut conn)
            .await?;
        conn.subscribe(&self.channel).await?;
        Ok(Subscribed { conn, pushes })
    }
}

struct Listener {
    link: Link,
    tx: watch::Sender<u64>,
    stop: CancellationToken,
}

impl Listener {
    async fn run(self, first: Subscribed) {
        let mut current = first;
        let redis = self.link.endpoint.description.clone();
        while self.serve(&mut current).await {
            tracing::warn!(target: "helix_jobs", %redis, "wake-up connection lost; reconnecting");
            current = match self.reconnect().await {
                Some(next) => next,
                None => return,
            };
            tracing::info!(target: "helix_jobs", %redis, "wake-up connection back");
            self.bump();
        }
    }

    fn bump(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Connected phase: false once told to stop, true when the connection is lost.
    async fn serve(&self, link: &mut Subscribed) -> bool {
        let start = tokio::time::Instant::now() + HEALTH_EVERY;
        let mut health = tokio::time::interval_at(start, HEALTH_EVERY);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return false,
                _ = self.tx.closed() => return false,
                push = link.pushes.recv() => match push {
                    Some(push) if push.kind == PushKind::Message => self.bump(),
                    Some(push) if push.kind != PushKind::Disconnection => {}
                    _ => return true,
                },
                _ = health.tick() => {
                    let ping = redis::cmd("PING");
                    if ping.exec_async(&mut link.conn).await.is_err() {
                        return true;
                    }
                }
            }
        }
    }

    /// Until it works (`Some`) or the listener is stopped (`None`).
    async fn reconnect(&self) -> Option<Subscribed> {
        let mut backoff = Backoff::default();
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = self.tx.closed() => return None,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
            let attempt = tokio::select! {
                _ = self.stop.cancelled() => return None,
                attempt = self.link.connect() => attempt,
            };
            match attempt {
                Ok(next) => return Some(next),
                Err(e) => {
                    let error = self.link.endpoint.error(&e);
                    tracing::debug!(target: "helix_jobs", %error, "cannot reach redis for wake-ups");
                }
            }
        }
    }
}
