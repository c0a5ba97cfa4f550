//! Redis pub/sub: ONE dedicated connection per bus, owned by one background task.
//!
//! Data flow: `subscribe()` sends a command to the task → the task makes one round trip on the
//! connection (`SUBSCRIBE` for a channel's first local subscriber, waiting for Redis's
//! confirmation; `PING` otherwise), fans out the messages that arrived before the reply, then
//! adds the subscriber to its [`FanOut`] and answers → messages pushed by Redis on that
//! connection are fanned out locally (prefix stripped) with the same `Lagged` rules as the
//! memory bus. So, as on the memory bus, a subscriber gets every message published after
//! `subscribe()` returned and none published before it was called.
//! Dropping the last local subscriber of a channel sends `UNSUBSCRIBE`.
//!
//! When the connection breaks (Redis restart, `CLIENT KILL`, a failed health ping), the task
//! reconnects with bounded backoff, forever until the bus is closed, resubscribes every channel
//! that still has subscribers and sends each of them [`Event::Resubscribed`]. While it is down,
//! new `subscribe()` calls fail with `Unavailable` instead of waiting.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{Msg, PushInfo, PushKind, RedisError, RedisResult};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::connect::{bus_error, is_connection_error, Backoff, Link, PubSubConn};
use crate::fanout::FanOut;
use crate::{BusError, Event, Message, Subscription};

/// How often an idle pub/sub connection is checked with `PING` (catches silent network loss).
const HEALTH_EVERY: Duration = Duration::from_secs(15);

enum Command {
    Subscribe {
        wire: String,
        tx: mpsc::Sender<Event>,
        /// Why a oneshot: `subscribe()` must not return before Redis confirmed.
        reply: oneshot::Sender<Result<u64, BusError>>,
    },
    Unsubscribe {
        wire: String,
        id: u64,
    },
}

/// The bus's side of the pub/sub task.
pub(crate) struct PubSubHandle {
    /// Why unbounded: subscription guards send `Unsubscribe` from `Drop`, which cannot wait.
    commands: mpsc::UnboundedSender<Command>,
    prefix: String,
    buffer: usize,
    target: String,
    /// Why shared: the task swaps it on every reconnect; 0 while disconnected.
    client_id: Arc<AtomicI64>,
}

impl PubSubHandle {
    /// Start the task on an already open connection.
    pub(crate) fn spawn(
        first: PubSubConn,
        link: Link,
        prefix: String,
        buffer: usize,
        target: String,
        cancel: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (commands, rx) = mpsc::unbounded_channel();
        // Why set here and not only by the task: the id must be readable as soon as `open`
        // returns, before the task has first run.
        let client_id = Arc::new(AtomicI64::new(first.client_id));
        let actor = Actor {
            link,
            commands: rx,
            fanout: FanOut::default(),
            prefix: prefix.clone(),
            target: target.clone(),
            cancel,
            client_id: client_id.clone(),
        };
        // Why a task: the connection must be read continuously (messages, loss) and repaired
        // without any caller waiting on it.
        let task = tokio::spawn(actor.run(first));
        let handle = Self {
            commands,
            prefix,
            buffer: buffer.max(1),
            target,
            client_id,
        };
        (handle, task)
    }

    pub(crate) async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError> {
        let wire = format!("{}{channel}", self.prefix);
        // Why bounded: a subscriber that stops reading costs at most `buffer` events.
        let (tx, rx) = mpsc::channel(self.buffer);
        let (reply, answer) = oneshot::channel();
        let command = Command::Subscribe {
            wire: wire.clone(),
            tx,
            reply,
        };
        self.commands.send(command).map_err(|_| self.stopped())?;
        let id = answer.await.map_err(|_| self.stopped())??;
        let guard = Unsubscribe {
            commands: self.commands.clone(),
            wire,
            id,
        };
        Ok(Subscription::new(rx, Some(Box::new(guard))))
    }

    /// `CLIENT ID` of the current pub/sub connection, `None` while reconnecting.
    pub(crate) fn client_id(&self) -> Option<i64> {
        Some(self.client_id.load(Ordering::Acquire)).filter(|id| *id != 0)
    }

    fn stopped(&self) -> BusError {
        BusError::Unavailable {
            target: self.target.clone(),
            reason: "the bus is closed".into(),
        }
    }
}

/// Tells the task to forget its subscriber when the [`Subscription`] is dropped.
struct Unsubscribe {
    commands: mpsc::UnboundedSender<Command>,
    wire: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let wire = std::mem::take(&mut self.wire);
        // Fails only once the task is gone, and then there is nothing left to undo.
        let _ = self
            .commands
            .send(Command::Unsubscribe { wire, id: self.id });
    }
}

/// What `serve` makes of a loss noticed while draining pushes (the driver's own error is gone).
fn connection_lost() -> RedisError {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "pub/sub connection lost",
    )
    .into()
}

/// Why the task ended its connected phase.
enum Exit {
    Stop,
    Disconnected,
}

struct Actor {
    link: Link,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Owned by this task alone: no lock needed.
    fanout: FanOut,
    prefix: String,
    target: String,
    cancel: CancellationToken,
    client_id: Arc<AtomicI64>,
}

impl Actor {
    async fn run(mut self, first: PubSubConn) {
        let mut current = first;
        loop {
            self.client_id.store(current.client_id, Ordering::Release);
            if let Exit::Stop = self.serve(&mut current).await {
                break;
            }
            self.client_id.store(0, Ordering::Release);
            tracing::warn!(target: "helix_bus", redis = %self.target, "pub/sub connection lost; reconnecting");
            match self.reconnect().await {
                Some(next) => current = next,
                None => break,
            }
        }
        // Dropping every sender ends every open subscription (`recv` yields `None`).
        self.fanout.clear();
    }

    /// Connected phase: commands, pushes and health checks until the connection is lost.
    async fn serve(&mut self, link: &mut PubSubConn) -> Exit {
        let mut health =
            tokio::time::interval_at(tokio::time::Instant::now() + HEALTH_EVERY, HEALTH_EVERY);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let result = tokio::select! {
                _ = self.cancel.cancelled() => return Exit::Stop,
                command = self.commands.recv() => match command {
                    Some(command) => self.handle(link, command).await,
                    None => return Exit::Stop,
                },
                push = link.pushes.recv() => match push {
                    Some(push) if push.kind != PushKind::Disconnection => {
                        self.on_push(push);
                        Ok(())
                    }
                    _ => return Exit::Disconnected,
                },
                _ = health.tick() => redis::cmd("PING").exec_async(&mut link.conn).await,
            };
            if let Err(e) = result {
                if is_connection_error(&e) {
                    return Exit::Disconnected;
                }
                tracing::warn!(target: "helix_bus", error = %e, "redis pub/sub command refused");
            }
        }
    }

    async fn handle(&mut self, link: &mut PubSubConn, command: Command) -> RedisResult<()> {
        match command {
            Command::Subscribe { wire, tx, reply } => self.add(link, wire, tx, reply).await,
            Command::Unsubscribe { wire, id } => self.remove(&mut link.conn, &wire, id).await,
        }
    }

    async fn add(
        &mut self,
        link: &mut PubSubConn,
        wire: String,
        tx: mpsc::Sender<Event>,
        reply: oneshot::Sender<Result<u64, BusError>>,
    ) -> RedisResult<()> {
        // Why a round trip even when the channel is already subscribed: a message published
        // before this call may still be unread on the connection. Redis answers in order, so once
        // the reply is in, that message is in `pushes`, and draining it before adding the new
        // subscriber keeps it from a subscriber that did not exist when it was published.
        // `SUBSCRIBE` waits for Redis's confirmation, so a publish after `subscribe()` returns is
        // delivered.
        let confirmed = if self.fanout.contains(&wire) {
            redis::cmd("PING").exec_async(&mut link.conn).await
        } else {
            link.conn.subscribe(&wire).await
        };
        if let Err(e) = confirmed {
            let _ = reply.send(Err(bus_error(&self.target, &e)));
            return Err(e);
        }
        let connected = self.drain(link);
        let (id, _) = self.fanout.add(&wire, tx);
        if reply.send(Ok(id)).is_err() {
            // The caller gave up waiting: no guard exists to undo this, so undo it now.
            self.remove(&mut link.conn, &wire, id).await?;
        }
        if !connected {
            return Err(connection_lost());
        }
        Ok(())
    }

    /// Fan out every push already received; false when one of them reports the connection lost.
    fn drain(&mut self, link: &mut PubSubConn) -> bool {
        loop {
            match link.pushes.try_recv() {
                Ok(push) if push.kind == PushKind::Disconnection => return false,
                Ok(push) => self.on_push(push),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    async fn remove(
        &mut self,
        conn: &mut MultiplexedConnection,
        wire: &str,
        id: u64,
    ) -> RedisResult<()> {
        if self.fanout.remove(wire, id) {
            conn.unsubscribe(wire).await?;
        }
        Ok(())
    }

    fn on_push(&mut self, push: PushInfo) {
        // Subscribe/unsubscribe confirmations are pushes too; only messages matter here.
        let Some(msg) = Msg::from_push_info(push) else {
            return;
        };
        let wire = msg.get_channel_name();
        let Some(channel) = wire.strip_prefix(self.prefix.as_str()) else {
            return;
        };
        let event = Event::Message(Message {
            channel: channel.to_owned(),
            payload: Bytes::copy_from_slice(msg.get_payload_bytes()),
        });
        self.fanout.deliver(wire, &event);
    }

    /// Reconnect with backoff until it works (or the bus closes), then resubscribe.
    async fn reconnect(&mut self) -> Option<PubSubConn> {
        let mut backoff = Backoff::default();
        loop {
            let link = self.link.clone();
            match self.offline(async move { link.connect().await }).await? {
                Ok(mut next) => match self.resubscribe(&mut next.conn).await {
                    Ok(()) => return Some(next),
                    Err(e) => {
                        tracing::warn!(target: "helix_bus", error = %e, "redis resubscribe failed")
                    }
                },
                Err(e) => {
                    tracing::warn!(target: "helix_bus", redis = %self.target, error = %e, "cannot reach redis for pub/sub")
                }
            }
            self.offline(tokio::time::sleep(backoff.next_delay()))
                .await?;
        }
    }

    async fn resubscribe(&mut self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        let channels = self.fanout.keys();
        if !channels.is_empty() {
            conn.subscribe(&channels).await?;
        }
        tracing::info!(target: "helix_bus", redis = %self.target, channels = channels.len(), "pub/sub reconnected");
        self.fanout.broadcast(&Event::Resubscribed);
        Ok(())
    }

    /// Drive `work` while disconnected, still answering commands; `None` once the bus closes.
    async fn offline<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Some(out),
                _ = self.cancel.cancelled() => return None,
                command = self.commands.recv() => self.refuse(command?),
            }
        }
    }

    fn refuse(&mut self, command: Command) {
        match command {
            Command::Subscribe { reply, .. } => {
                let _ = reply.send(Err(BusError::Unavailable {
                    target: self.target.clone(),
                    reason: "the pub/sub connection is down; reconnecting".into(),
                }));
            }
            Command::Unsubscribe { wire, id } => {
                // Forgotten here, so it is not resubscribed once the connection is back.
                self.fanout.remove(&wire, id);
            }
        }
    }
}
