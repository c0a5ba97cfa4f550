//! One WebSocket connection after authentication: its subscriptions and their cursors, its
//! bounded send queue, its frame budget and its token's expiry.
//!
//! One task per connection does everything (no lock, no split socket): it waits on whichever
//! comes first — a close request from the hub, a queued message, a client frame, the token
//! timer. Queued messages are written in batches (everything queued, then one flush), so a busy
//! connection costs one write per batch rather than per message. A message whose offset the
//! connection already sent (it came both from a replay and live) is dropped by its cursor.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures::SinkExt;
use helix_bus::{Replay, Since};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::channels::Channel;
use super::hub::{Control, Hub, Outbox};
use super::protocol::{self, close, Batch, ClientFrame, Frame};
use crate::services::agent_orchestration::HEARTBEATS;
use crate::shared::auth::Principal;

/// Most queued messages written before one flush.
const BATCH: usize = 256;
/// How long a write blocked by a client that stopped reading may still take once the connection
/// is asked to close.
const WRITE_GRACE: Duration = Duration::from_secs(10);
/// How long a close frame may take to go out before the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Who is connected, as established at connect.
#[derive(Debug)]
pub struct Session {
    pub principal: Principal,
    /// Kept to ask backend-api about conversations on the caller's behalf.
    pub credential: String,
    /// When the credential stops being valid (Unix seconds), for JWTs.
    pub expires_at: Option<i64>,
}

/// The last message a connection sent on one channel.
#[derive(Debug, Default)]
struct Cursor {
    epoch: String,
    offset: u64,
}

impl Cursor {
    /// Whether `frame` comes after what was sent (and remember it as sent).
    fn admit(&mut self, frame: &Frame) -> bool {
        if frame.offset == 0 {
            return true; // published without history: nothing to compare
        }
        if self.epoch == frame.epoch && frame.offset <= self.offset {
            return false;
        }
        if self.epoch != frame.epoch {
            self.epoch.clone_from(&frame.epoch);
        }
        self.offset = frame.offset;
        true
    }
}

/// Why the loop stopped.
enum End {
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The client went away (or the socket failed): nothing more to send.
    Gone,
}

/// One step of the loop.
enum Step {
    Close(u16),
    Queued(Batch),
    Incoming(Option<Result<Message, axum::Error>>),
    Timer,
}

/// Frames a client may send: `rate` per second, bursts of twice that.
struct Budget {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
    /// Frames refused since the last one admitted.
    refused: u32,
}

impl Budget {
    fn new(rate: u32, floor: usize) -> Self {
        let burst = (f64::from(rate) * 2.0).max(floor as f64);
        Self {
            tokens: burst,
            rate: f64::from(rate),
            burst,
            at: Instant::now(),
            refused: 0,
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

pub struct Connection {
    hub: Arc<Hub>,
    id: u64,
    socket: WebSocket,
    session: Session,
    outbox: Outbox,
    queue: mpsc::Receiver<Batch>,
    cursors: HashMap<Arc<str>, Cursor>,
    budget: Budget,
    /// Set once the client was asked for a fresh token: the moment it will be closed.
    deadline: Option<Instant>,
    /// Fires at [`Self::timer_at`]; none for credentials that do not expire.
    timer: Option<Pin<Box<Sleep>>>,
}

/// Serve one authenticated connection until it ends, subscribed first to `channel` if given
/// (the old `/ws/consciousness` path).
pub async fn run(hub: Arc<Hub>, socket: WebSocket, session: Session, channel: Option<&str>) {
    let control = Arc::new(Control::default());
    let (tx, queue) = mpsc::channel(hub.config.send_queue);
    let id = hub.join(control.clone());
    let budget = Budget::new(
        hub.config.frames_per_second,
        hub.config.max_subscriptions + 10,
    );
    let mut connection = Connection {
        outbox: Outbox { tx, control },
        hub,
        id,
        socket,
        session,
        queue,
        cursors: HashMap::new(),
        budget,
        deadline: None,
        timer: None,
    };
    let end = connection.serve(channel).await;
    connection.finish(end).await;
}

impl Connection {
    async fn serve(&mut self, channel: Option<&str>) -> End {
        let welcome = protocol::welcome(
            self.id,
            &self.session.principal.user_id.to_string(),
            self.session.expires_at,
        );
        if self.send(welcome).await.is_err() {
            return End::Gone;
        }
        if let Some(channel) = channel {
            let reply = self.subscribe(channel, None, None, None).await;
            if let Err(end) = self.reply(reply, channel, None).await {
                return end;
            }
        }
        // Why pinned once: a wait registered afresh on every turn of the loop costs more than
        // the write it guards, for every message of every connection.
        let control = self.outbox.control.clone();
        let closed = control.closed();
        tokio::pin!(closed);
        self.arm_timer();
        loop {
            let step = tokio::select! {
                biased;
                code = &mut closed => Step::Close(code),
                Some(batch) = self.queue.recv() => Step::Queued(batch),
                incoming = self.socket.recv() => Step::Incoming(incoming),
                () = fire(self.timer.as_mut()) => Step::Timer,
            };
            let end = match step {
                Step::Close(code) => Some(End::Close(code, reason(code))),
                Step::Queued(batch) => {
                    let write = self.write_batch(batch);
                    tokio::pin!(write);
                    tokio::select! {
                        biased;
                        written = &mut write => written.err(),
                        // A client that stopped reading blocks the write. Asked to close (its
                        // queue filled up, or the drain), the write gets a bounded time to
                        // finish so the close frame follows a whole frame; a client still not
                        // reading by then is dropped without one.
                        code = &mut closed => match tokio::time::timeout(WRITE_GRACE, &mut write).await {
                            Ok(Ok(())) => Some(End::Close(code, reason(code))),
                            Ok(Err(end)) => Some(end),
                            Err(_) => Some(End::Gone),
                        },
                    }
                }
                Step::Incoming(incoming) => self.on_incoming(incoming).await.err(),
                Step::Timer => self.on_timer().await.err(),
            };
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// Point the token timer at [`Self::timer_at`], creating it on first use.
    fn arm_timer(&mut self) {
        match (self.timer_at(), self.timer.as_mut()) {
            (None, _) => self.timer = None,
            (Some(at), Some(timer)) => timer.as_mut().reset(at),
            (Some(at), None) => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// When the token timer fires next: the close deadline once the client was warned, else the
    /// token's expiry.
    fn timer_at(&self) -> Option<Instant> {
        if self.deadline.is_some() {
            return self.deadline;
        }
        let expires_at = self.session.expires_at?;
        let left = expires_at - chrono::Utc::now().timestamp();
        Some(Instant::now() + Duration::from_secs(left.max(0) as u64))
    }

    async fn on_timer(&mut self) -> Result<(), End> {
        if self.deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(End::Close(close::UNAUTHORIZED, "token expired"));
        }
        let grace = self.hub.config.token_grace;
        self.deadline = Some(Instant::now() + grace);
        self.arm_timer();
        let expires_at = self.session.expires_at.unwrap_or_default();
        self.send(protocol::token_expiring(
            expires_at,
            grace.as_millis() as u64,
        ))
        .await
    }

    /// Write `first` and the batches already queued behind it, then flush once.
    async fn write_batch(&mut self, first: Batch) -> Result<(), End> {
        let mut written = 0;
        let mut next = Some(first);
        while let Some(batch) = next.take() {
            // One batch is one channel's: one cursor lookup for all of it.
            let Some(channel) = batch.first().map(|f| f.channel.clone()) else {
                continue;
            };
            let Some(cursor) = self.cursors.get_mut(&*channel) else {
                continue; // unsubscribed meanwhile
            };
            for frame in batch.iter() {
                if cursor.admit(frame) {
                    let text = frame.text.clone();
                    self.socket
                        .feed(Message::Text(text))
                        .await
                        .map_err(|_| End::Gone)?;
                    written += 1;
                }
            }
            if written < BATCH {
                next = self.queue.try_recv().ok();
            }
        }
        self.socket.flush().await.map_err(|_| End::Gone)?;
        self.hub.metrics.messages_out.inc_by(written as u64);
        Ok(())
    }

    /// Whether `frame` is new for this connection (and remember it as sent).
    fn admit(&mut self, frame: &Frame) -> bool {
        self.cursors
            .get_mut(&*frame.channel)
            .is_some_and(|cursor| cursor.admit(frame))
    }

    async fn on_incoming(
        &mut self,
        incoming: Option<Result<Message, axum::Error>>,
    ) -> Result<(), End> {
        let text = match incoming {
            None | Some(Ok(Message::Close(_))) => return Err(End::Gone),
            Some(Err(error)) => return Err(read_error(&error, self.hub.config.max_frame_bytes)),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Ok(()),
            Some(Ok(Message::Binary(_))) => None,
            Some(Ok(Message::Text(text))) => Some(text),
        };
        self.hub.metrics.frames_in.inc();
        if !self.budget.take() {
            if self.budget.refused > self.hub.config.frames_per_second {
                return Err(End::Close(close::FLOOD, "too many frames"));
            }
            let message = "too many frames: slow down";
            return self
                .send(protocol::error("rate_limited", message, None, None))
                .await;
        }
        let Some(text) = text else {
            let message = "binary frames are not supported: send JSON text frames";
            return self
                .send(protocol::error("bad_frame", message, None, None))
                .await;
        };
        match serde_json::from_str::<ClientFrame>(text.as_str()) {
            Ok(frame) => self.on_frame(frame).await,
            Err(e) => {
                let message = format!("not a valid frame: {e}");
                self.send(protocol::error("bad_frame", &message, None, None))
                    .await
            }
        }
    }

    async fn on_frame(&mut self, frame: ClientFrame) -> Result<(), End> {
        match frame {
            ClientFrame::Subscribe {
                channel,
                since,
                epoch,
                id,
            } => {
                let reply = self.subscribe(&channel, since, epoch, id.as_ref()).await;
                self.reply(reply, &channel, id.as_ref()).await
            }
            ClientFrame::Unsubscribe { channel, id } => {
                let reply = self.unsubscribe(&channel, id.as_ref()).await;
                self.reply(reply, &channel, id.as_ref()).await
            }
            ClientFrame::Publish { channel, data, id } => {
                let reply = self.publish(&channel, &data.to_string(), id.as_ref()).await;
                self.reply(reply, &channel, id.as_ref()).await
            }
            ClientFrame::Ping { id } => self.send(protocol::pong(id.as_ref())).await,
            ClientFrame::Auth { token, id } => self.reauthenticate(&token, id.as_ref()).await,
            ClientFrame::Heartbeat { id } => self.heartbeat(id.as_ref()).await,
        }
    }

    /// Send a reply, or the error frame that replaces it.
    /// (`Ok(None)`: the reply already went out.)
    async fn reply(
        &mut self,
        reply: Result<Option<Utf8Bytes>, Refusal>,
        channel: &str,
        id: Option<&Value>,
    ) -> Result<(), End> {
        let frame = match reply {
            Ok(None) => return Ok(()),
            Ok(Some(frame)) => frame,
            Err((code, message)) => protocol::error(code, &message, Some(channel), id),
        };
        self.send(frame).await
    }

    async fn subscribe(
        &mut self,
        channel: &str,
        since: Option<u64>,
        epoch: Option<String>,
        id: Option<&Value>,
    ) -> Result<Option<Utf8Bytes>, Refusal> {
        if self.cursors.contains_key(channel) {
            return Err((
                "already_subscribed",
                "already subscribed to this channel".into(),
            ));
        }
        if self.cursors.len() >= self.hub.config.max_subscriptions {
            let limit = self.hub.config.max_subscriptions;
            return Err((
                "too_many_subscriptions",
                format!("one connection may subscribe to at most {limit} channels"),
            ));
        }
        let parsed = Channel::parse(channel).map_err(refusal)?;
        let session = &self.session;
        self.hub
            .ownership
            .may_subscribe(&session.principal, &session.credential, parsed)
            .await
            .map_err(refusal)?;
        let outbox = self.outbox.clone();
        let name = self
            .hub
            .attach(channel, self.id, outbox)
            .await
            .map_err(unavailable)?;
        let answer = match since {
            None => self.start_live(name, id).await,
            Some(offset) => {
                let since = Since {
                    epoch: epoch.unwrap_or_default(),
                    offset,
                };
                self.start_from(name, since, id).await
            }
        };
        if answer.is_err() {
            self.cursors.remove(channel);
            self.hub.detach(channel, self.id).await;
        }
        answer
    }

    /// Subscribed without `since`: from the channel's newest offset on.
    async fn start_live(
        &mut self,
        name: Arc<str>,
        id: Option<&Value>,
    ) -> Result<Option<Utf8Bytes>, Refusal> {
        let head = self.hub.bus.head(&name).await.map_err(unavailable)?;
        let cursor = Cursor {
            epoch: head.epoch.clone(),
            offset: head.offset,
        };
        self.cursors.insert(name.clone(), cursor);
        let frame = protocol::subscribed(&name, &head.epoch, head.offset, None, id);
        Ok(Some(frame))
    }

    /// Subscribed with `since`: the `subscribed` frame (saying whether history reached back),
    /// then every missed message, all sent here so nothing can come between them. A socket
    /// failure is left for the next read to notice.
    async fn start_from(
        &mut self,
        name: Arc<str>,
        since: Since,
        id: Option<&Value>,
    ) -> Result<Option<Utf8Bytes>, Refusal> {
        let replay = self.hub.replay(&name, &since).await.map_err(unavailable)?;
        let (head, entries, recovered) = match replay {
            Replay::Complete { head, entries } => (head, entries, true),
            Replay::Gap { head } => (head, Vec::new(), false),
        };
        let start = if recovered { since.offset } else { head.offset };
        let cursor = Cursor {
            epoch: head.epoch.clone(),
            offset: start,
        };
        self.cursors.insert(name.clone(), cursor);
        let subscribed = protocol::subscribed(&name, &head.epoch, head.offset, Some(recovered), id);
        let mut frames = vec![subscribed];
        for envelope in &entries {
            if let Some(frame) = Frame::from_envelope(&name, envelope) {
                if self.admit(&frame) {
                    frames.push(frame.text.clone());
                }
            }
        }
        let replayed = frames.len() as u64 - 1;
        if self.feed_all(frames).await.is_ok() {
            self.hub.metrics.messages_out.inc_by(replayed);
        }
        Ok(None)
    }

    async fn feed_all(&mut self, frames: Vec<Utf8Bytes>) -> Result<(), axum::Error> {
        for text in frames {
            self.socket.feed(Message::Text(text)).await?;
        }
        self.socket.flush().await
    }

    async fn unsubscribe(
        &mut self,
        channel: &str,
        id: Option<&Value>,
    ) -> Result<Option<Utf8Bytes>, Refusal> {
        if self.cursors.remove(channel).is_none() {
            return Err(("not_subscribed", "not subscribed to this channel".into()));
        }
        self.hub.detach(channel, self.id).await;
        Ok(Some(protocol::unsubscribed(channel, id)))
    }

    async fn publish(
        &mut self,
        channel: &str,
        data: &str,
        id: Option<&Value>,
    ) -> Result<Option<Utf8Bytes>, Refusal> {
        let parsed = Channel::parse(channel).map_err(refusal)?;
        let session = &self.session;
        self.hub
            .ownership
            .may_publish(&session.principal, &session.credential, parsed)
            .await
            .map_err(refusal)?;
        let position = self
            .hub
            .publish(channel, Bytes::copy_from_slice(data.as_bytes()))
            .await
            .map_err(unavailable)?;
        let frame = protocol::published(channel, &position.epoch, position.offset, id);
        Ok(Some(frame))
    }

    /// An agent's heartbeat, handed to agent-orchestration over the bus (every instance of it
    /// records it; the first one that wakes the agent announces it).
    async fn heartbeat(&mut self, id: Option<&Value>) -> Result<(), End> {
        let Some(agent) = self.session.principal.agent_scope().map(str::to_owned) else {
            let message = "heartbeats come from agents: connect with an agent key";
            return self
                .send(protocol::error("not_an_agent", message, None, id))
                .await;
        };
        let beat = serde_json::json!({"agent_id": agent}).to_string();
        let sent = self.hub.bus.publish(HEARTBEATS, Bytes::from(beat)).await;
        let frame = match sent {
            Ok(()) => protocol::heartbeat_ack(&agent, id),
            Err(e) => {
                let (code, message) = unavailable(e);
                protocol::error(code, &message, None, id)
            }
        };
        self.send(frame).await
    }

    /// A fresh credential for the same user: the connection lives on.
    async fn reauthenticate(&mut self, token: &str, id: Option<&Value>) -> Result<(), End> {
        let checked = match &self.hub.auth {
            Some(auth) => auth.authenticate_credential(token).await,
            None => Err(crate::shared::auth::AuthError::Unavailable),
        };
        let frame = match checked {
            Ok((principal, expires_at)) if principal.user_id == self.session.principal.user_id => {
                self.session = Session {
                    principal,
                    credential: token.trim().to_owned(),
                    expires_at,
                };
                self.deadline = None;
                self.arm_timer();
                protocol::authenticated(expires_at, id)
            }
            Ok(_) => protocol::error(
                "forbidden",
                "that credential belongs to another user",
                None,
                id,
            ),
            Err(e) => protocol::error("invalid_token", &e.to_string(), None, id),
        };
        self.send(frame).await
    }

    async fn send(&mut self, text: Utf8Bytes) -> Result<(), End> {
        self.socket
            .send(Message::Text(text))
            .await
            .map_err(|_| End::Gone)
    }

    /// Close (if there is anything to say), leave every channel, and forget the connection.
    async fn finish(mut self, end: End) {
        let label = match end {
            End::Close(code, why) => {
                let frame = CloseFrame {
                    code,
                    reason: why.into(),
                };
                let closing = self.socket.send(Message::Close(Some(frame)));
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
                label(code)
            }
            End::Gone => "client",
        };
        self.hub.metrics.closed.with_label_values(&[label]).inc();
        for channel in std::mem::take(&mut self.cursors).into_keys() {
            self.hub.detach(&channel, self.id).await;
        }
        self.hub.leave(self.id);
    }
}

/// An error frame's code and message.
type Refusal = (&'static str, String);

fn refusal(e: super::channels::ChannelError) -> Refusal {
    (e.code(), e.to_string())
}

fn unavailable(e: helix_bus::BusError) -> Refusal {
    tracing::warn!(error = %e, "the bus failed a hub request");
    (
        "unavailable",
        "the message bus is unavailable; retry shortly".into(),
    )
}

fn read_error(error: &axum::Error, max: usize) -> End {
    let text = error.to_string();
    if text.contains("Space limit exceeded")
        || text.contains("too long")
        || text.contains("too big")
    {
        tracing::debug!(max, "a client sent an oversized frame");
        return End::Close(close::TOO_BIG, "frame too big");
    }
    End::Gone
}

fn reason(code: u16) -> &'static str {
    match code {
        close::SLOW_CONSUMER => "slow consumer",
        close::GOING_AWAY => "server shutting down; reconnect",
        close::UNAUTHORIZED => "token expired",
        _ => "closed",
    }
}

fn label(code: u16) -> &'static str {
    match code {
        close::SLOW_CONSUMER => "slow_consumer",
        close::GOING_AWAY => "drain",
        close::UNAUTHORIZED => "token_expired",
        close::FLOOD => "flood",
        close::TOO_BIG => "too_big",
        _ => "other",
    }
}

async fn fire(timer: Option<&mut Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}
