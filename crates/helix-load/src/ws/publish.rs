//! Publishing timed messages over WebSocket `publish` frames: the [`Sends`] count every
//! publishing connection keeps, and the dedicated publisher connections of `ws-broadcast` (the
//! admin) and `ws-storm` (the conversations' owner).
//!
//! Publish frames rather than `POST /api/publish`: the credential is checked once at connect and
//! each publish is then one small frame each way, where an HTTP publish is also a request, a
//! token check and a response for both ends. Several connections share the rate (round-robin,
//! open loop, [`super::pace`]) so each stays under the server's per-connection publish limit
//! (default 200 frames/s, bursts of 400); with no rate, each connection keeps exactly one publish
//! in flight (closed loop: as fast as acks come back), pausing briefly after a `rate_limited`
//! refusal so the server's limiter never escalates to a 4429 close.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::client::{self, Endpoint, Socket};
use super::frame::{Frame, PublishTemplate};
use super::pace::{Due, Pacer, Turns};
use super::tally::{text_of, unix_nanos, Counts, Window};

/// After its last send, how long a publisher waits for the outstanding acks.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// Default share of the rate per publisher connection: half the server's default limit.
const RATE_PER_PUBLISHER: f64 = 100.0;
/// Default publisher connections in a closed loop: enough that the server, not the
/// per-connection limit, sets the pace.
const CLOSED_LOOP_PUBLISHERS: usize = 4;
/// Most publisher connections.
const MAX_PUBLISHERS: usize = 64;
/// Closed loop: pause after a `rate_limited` refusal (4 tokens at the default 200/s).
const RATE_LIMITED_PAUSE: Duration = Duration::from_millis(20);

/// What one publishing connection sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sends {
    pub sent: u64,
    /// Sent (stamped) inside the measured window.
    pub in_window: u64,
    /// Of those, sent more than 1 ms after their due time (open loop only).
    pub late: u64,
}

impl Sends {
    /// Publish message `seq` now, stamped with the send time.
    pub async fn publish(
        &mut self,
        socket: &mut Socket,
        template: &PublishTemplate,
        seq: u64,
        late: bool,
        window: &Window,
    ) -> Result<()> {
        let ts = unix_nanos();
        client::send_text(socket, template.frame(ts, seq)).await?;
        self.sent += 1;
        if window.contains_ns(ts) {
            self.in_window += 1;
            self.late += u64::from(late);
        }
        Ok(())
    }

    pub fn merge(&mut self, other: &Sends) {
        self.sent += other.sent;
        self.in_window += other.in_window;
        self.late += other.late;
    }
}

/// Wait for the next turn of an open-loop schedule; never, without one.
pub async fn next_turn(turns: &mut Option<Turns>) -> Option<Due> {
    match turns {
        Some(turns) => turns.next().await,
        None => std::future::pending().await,
    }
}

/// Publisher connections for `rate` publishes/s (0: closed loop), unless `--publishers` says.
pub fn publisher_count(requested: Option<usize>, rate: f64) -> Result<usize> {
    let count = requested.unwrap_or(if rate > 0.0 {
        (rate / RATE_PER_PUBLISHER).ceil() as usize
    } else {
        CLOSED_LOOP_PUBLISHERS
    });
    if !(1..=MAX_PUBLISHERS).contains(&count) {
        anyhow::bail!("--publishers must be 1 to {MAX_PUBLISHERS}");
    }
    if rate / count as f64 > 200.0 {
        eprintln!(
            "warning: {:.0} publishes/s per connection exceeds the server's default limit of \
             200 frames/s per connection (HELIX_WS_FRAMES_PER_SECOND): expect rate_limited \
             errors and 4429 closes (use more --publishers)",
            rate / count as f64
        );
    }
    Ok(count)
}

/// What the publishers did.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub sends: Sends,
    pub acked: u64,
    /// `error` frames by code (e.g. `rate_limited`).
    pub errors: Counts,
    /// Publisher connections that ended early, by how.
    pub lost: Counts,
    /// Highest acked offset per channel.
    pub last_offsets: HashMap<String, u64>,
}

impl Published {
    fn merge(&mut self, other: &Published) {
        self.sends.merge(&other.sends);
        self.acked += other.acked;
        self.errors.merge(&other.errors);
        self.lost.merge(&other.lost);
        for (channel, offset) in &other.last_offsets {
            let mine = self.last_offsets.entry(channel.clone()).or_default();
            *mine = (*mine).max(*offset);
        }
    }
}

/// Open `count` publisher connections as the holder of `token`.
pub async fn connect(endpoint: &Endpoint, token: &str, count: usize) -> Result<Vec<Socket>> {
    let mut sockets = Vec::with_capacity(count);
    for n in 0..count {
        let socket = endpoint
            .connect(token)
            .await
            .with_context(|| format!("opening publisher connection {n}"))?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// The publishing to do: message `seq` goes to channel `seq mod channels`.
#[derive(Debug)]
pub struct Plan {
    pub templates: Vec<PublishTemplate>,
    pub window: Window,
    /// Open loop, one worker per socket; `None` for a closed loop.
    pub pacer: Option<Arc<Pacer>>,
}

/// Publish on every socket until the window ends, then wait for the last acks.
pub fn spawn(sockets: Vec<Socket>, plan: Plan) -> JoinHandle<Published> {
    let plan = Arc::new(plan);
    let workers = sockets.len();
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(worker, socket)| {
            let publisher = Publisher::new(plan.clone(), worker, workers);
            tokio::spawn(publisher.run(socket))
        })
        .collect();
    tokio::spawn(async move {
        let mut total = Published::default();
        for task in tasks {
            match task.await {
                Ok(published) => total.merge(&published),
                Err(err) => total.lost.add(format!("task failed: {err}")),
            }
        }
        total
    })
}

/// One publisher connection's state.
struct Publisher {
    plan: Arc<Plan>,
    turns: Option<Turns>,
    /// Closed loop: the next `seq` (worker, worker + workers, …).
    next_seq: u64,
    workers: u64,
    in_flight: u64,
    /// Closed loop: no send before this (set by a `rate_limited` refusal).
    pause_until: Option<Instant>,
    done: Published,
}

impl Publisher {
    fn new(plan: Arc<Plan>, worker: usize, workers: usize) -> Publisher {
        let turns = plan.pacer.clone().map(|pacer| Turns::new(pacer, worker));
        Publisher {
            plan,
            turns,
            next_seq: worker as u64,
            workers: workers as u64,
            in_flight: 0,
            pause_until: None,
            done: Published::default(),
        }
    }

    async fn run(mut self, mut socket: Socket) -> Published {
        if let Err(how) = self.publish_all(&mut socket).await {
            self.done.lost.add(how);
        }
        client::close(socket).await;
        self.done
    }

    /// The send/ack loop; `Err(how)` if the connection ended early.
    async fn publish_all(&mut self, socket: &mut Socket) -> Result<(), String> {
        let end = Instant::from_std(self.plan.window.end);
        let give_up = end + ACK_WAIT;
        let mut sending = true;
        while sending || self.in_flight > 0 {
            let closed_loop = self.turns.is_none();
            if sending && closed_loop && self.in_flight == 0 {
                if let Some(until) = self.pause_until.take() {
                    tokio::time::sleep_until(until).await;
                }
                if Instant::now() >= end {
                    sending = false;
                    continue;
                }
                let seq = self.next_seq;
                self.next_seq += self.workers;
                self.send(socket, seq, false).await?;
            }
            tokio::select! {
                next = socket.next() => self.on_frame(next)?,
                due = next_turn(&mut self.turns), if sending => match due {
                    Some(due) => self.send(socket, due.k, due.late).await?,
                    None => sending = false,
                },
                () = tokio::time::sleep_until(end), if sending && closed_loop => sending = false,
                () = tokio::time::sleep_until(give_up) => return Ok(()),
            }
        }
        Ok(())
    }

    async fn send(&mut self, socket: &mut Socket, seq: u64, late: bool) -> Result<(), String> {
        let templates = &self.plan.templates;
        let template = &templates[(seq % templates.len() as u64) as usize];
        self.done
            .sends
            .publish(socket, template, seq, late, &self.plan.window)
            .await
            .map_err(|err| format!("send failed: {err:#}"))?;
        self.in_flight += 1;
        Ok(())
    }

    fn on_frame(&mut self, next: Option<Result<Message, WsError>>) -> Result<(), String> {
        let Some(text) = text_of(next)? else {
            return Ok(());
        };
        let Some(frame) = Frame::parse(text.as_str()) else {
            return Ok(());
        };
        match frame.kind.as_ref() {
            "published" => {
                self.done.acked += 1;
                self.in_flight = self.in_flight.saturating_sub(1);
                if let (Some(channel), Some(offset)) = (frame.channel, frame.offset) {
                    let last = self
                        .done
                        .last_offsets
                        .entry(channel.into_owned())
                        .or_default();
                    *last = (*last).max(offset);
                }
            }
            "error" => {
                let code = frame.code.as_deref().unwrap_or("?");
                if code == "rate_limited" {
                    self.pause_until = Some(Instant::now() + RATE_LIMITED_PAUSE);
                }
                self.done.errors.add(code);
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            _ => {}
        }
        Ok(())
    }
}
