//! The hub of one instance: which channels it listens to on the bus, which local connections
//! each one feeds, and every open connection (for the drain at shutdown).
//!
//! Data flow: a message appended anywhere (this instance, another one, backend-api) reaches
//! the bus subscription of each instance that has a subscriber for the channel → that channel's
//! pump task builds the `message` frame once ([`Frame`]) → hands an `Arc` of it to each local
//! subscriber's bounded queue without waiting. A full queue marks that connection a slow
//! consumer (it is closed); nobody else waits for it. After a bus reconnect or a lagged bus
//! subscription, the pump replays the channel's history from the last offset it saw, so
//! connections (which drop offsets they already have) still get every message exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use helix_bus::{Bus, BusError, Envelope, Event, Position, Replay, Retention, Since, Subscription};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::channels::Ownership;
use super::config::HubConfig;
use super::metrics::HubMetrics;
use super::protocol::{close, Batch, Frame};
use crate::shared::auth::Authenticator;

/// Tells one connection to close, and why (from the pump, the drain, or itself).
#[derive(Debug, Default)]
pub struct Control {
    notify: Notify,
    reason: AtomicU16,
}

impl Control {
    /// Ask the connection to close with `code`; the first reason given wins.
    pub fn close(&self, code: u16) {
        if self
            .reason
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    /// Wait until asked to close; the close code.
    pub async fn closed(&self) -> u16 {
        loop {
            let code = self.reason.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.notify.notified().await;
        }
    }
}

/// How the hub reaches one connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub tx: mpsc::Sender<Batch>,
    pub control: Arc<Control>,
}

impl Outbox {
    /// Queue a batch without waiting; a full queue closes the connection as a slow consumer.
    fn offer(&self, batch: &Batch, metrics: &HubMetrics) {
        match self.tx.try_send(batch.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.dropped.inc_by(batch.len() as u64);
                self.control.close(close::SLOW_CONSUMER);
            }
            // The connection is ending; it detaches itself.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// One channel this instance listens to.
struct Local {
    subscribers: Mutex<HashMap<u64, Outbox>>,
    /// The newest position this instance delivered, where a recovery starts.
    seen: Mutex<Position>,
    /// Stops the pump when the last subscriber leaves.
    stop: CancellationToken,
}

/// What a hub is built from.
pub struct HubParts {
    pub bus: Arc<dyn Bus>,
    pub config: HubConfig,
    pub ownership: Ownership,
    pub metrics: HubMetrics,
    pub auth: Option<Arc<Authenticator>>,
    /// Cancelled when the service stops: the hub then drains its connections.
    pub stopping: CancellationToken,
}

pub struct Hub {
    pub bus: Arc<dyn Bus>,
    pub config: HubConfig,
    pub ownership: Ownership,
    pub metrics: HubMetrics,
    /// Checks fresh credentials sent over a connection.
    pub auth: Option<Arc<Authenticator>>,
    /// Why a tokio mutex: creating a channel subscribes on the bus (an `.await`), and two
    /// connections subscribing to a new channel at once must not both create it.
    channels: tokio::sync::Mutex<HashMap<Arc<str>, Arc<Local>>>,
    connections: Mutex<HashMap<u64, Arc<Control>>>,
    next_connection: AtomicU64,
    pub stopping: CancellationToken,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hub {
    pub fn new(parts: HubParts) -> Arc<Self> {
        let HubParts {
            bus,
            config,
            ownership,
            metrics,
            auth,
            stopping,
        } = parts;
        let hub = Arc::new(Self {
            bus,
            config,
            ownership,
            metrics,
            auth,
            channels: tokio::sync::Mutex::default(),
            connections: Mutex::default(),
            next_connection: AtomicU64::new(1),
            stopping,
        });
        tokio::spawn(drain(Arc::downgrade(&hub)));
        hub
    }

    /// Register a new connection; its id.
    pub fn join(&self, control: Arc<Control>) -> u64 {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        lock(&self.connections).insert(id, control);
        self.metrics.connections.inc();
        id
    }

    pub fn leave(&self, id: u64) {
        if lock(&self.connections).remove(&id).is_some() {
            self.metrics.connections.dec();
        }
    }

    /// Start feeding `outbox` with `channel`'s messages (listening on the bus first if this
    /// instance was not yet). Live messages may reach the outbox before this returns.
    pub async fn attach(
        &self,
        channel: &str,
        id: u64,
        outbox: Outbox,
    ) -> Result<Arc<str>, BusError> {
        let mut channels = self.channels.lock().await;
        if let Some((name, local)) = channels.get_key_value(channel) {
            lock(&local.subscribers).insert(id, outbox);
            self.metrics.subscriptions.inc();
            return Ok(name.clone());
        }
        let subscription = self.bus.subscribe(channel).await?;
        let name: Arc<str> = Arc::from(channel);
        let local = Arc::new(Local {
            subscribers: Mutex::new(HashMap::from([(id, outbox)])),
            seen: Mutex::new(self.bus.head(channel).await.unwrap_or_default()),
            stop: CancellationToken::new(),
        });
        channels.insert(name.clone(), local.clone());
        self.metrics.subscriptions.inc();
        self.metrics.channels.inc();
        let pump = Pump {
            bus: self.bus.clone(),
            retention: self.config.retention,
            metrics: self.metrics.clone(),
            name: name.clone(),
            local,
        };
        tokio::spawn(pump.run(subscription));
        Ok(name)
    }

    /// Stop feeding connection `id` from `channel`; the last one out stops listening.
    pub async fn detach(&self, channel: &str, id: u64) {
        let mut channels = self.channels.lock().await;
        let Some(local) = channels.get(channel) else {
            return;
        };
        let mut subscribers = lock(&local.subscribers);
        if subscribers.remove(&id).is_some() {
            self.metrics.subscriptions.dec();
        }
        if subscribers.is_empty() {
            drop(subscribers);
            local.stop.cancel();
            channels.remove(channel);
            self.metrics.channels.dec();
        }
    }

    /// Publish `data` (JSON) on `channel` through its history.
    pub async fn publish(&self, channel: &str, data: Bytes) -> Result<Position, BusError> {
        let position = self
            .bus
            .append(channel, data, &self.config.retention)
            .await?;
        self.metrics.published.inc();
        Ok(position)
    }

    /// What a client that last saw `since` missed.
    pub async fn replay(&self, channel: &str, since: &Since) -> Result<Replay, BusError> {
        self.bus
            .replay(channel, since, &self.config.retention)
            .await
    }

    fn controls(&self) -> Vec<Arc<Control>> {
        lock(&self.connections).values().cloned().collect()
    }
}

/// Most messages gathered into one batch.
const MAX_BATCH: usize = 256;

/// Feeds one channel's local subscribers.
struct Pump {
    bus: Arc<dyn Bus>,
    retention: Retention,
    metrics: HubMetrics,
    name: Arc<str>,
    local: Arc<Local>,
}

impl Pump {
    /// Until the last subscriber leaves or the bus closes: gather what arrived together and
    /// deliver it as one batch (under load, messages queue up on the bus subscription, so batches
    /// grow exactly when fewer, larger writes are needed).
    async fn run(self, mut subscription: Subscription) {
        loop {
            let first = tokio::select! {
                () = self.local.stop.cancelled() => return,
                event = subscription.recv() => event,
            };
            let Some(first) = first else { return };
            let mut frames = Vec::new();
            let mut interrupted = self.take(first, &mut frames);
            while !interrupted && frames.len() < MAX_BATCH {
                let Some(next) = subscription.try_recv() else {
                    break;
                };
                interrupted = self.take(next, &mut frames);
            }
            self.deliver(frames);
            if interrupted {
                self.recover().await;
            }
        }
    }

    /// Add an event's frame to the batch; true when messages may have been missed on the bus.
    fn take(&self, event: Event, frames: &mut Vec<Frame>) -> bool {
        match event {
            Event::Message(m) => {
                let frame = match Envelope::parse(&m.payload) {
                    Some(envelope) => {
                        self.saw(&envelope);
                        Frame::from_envelope(&self.name, &envelope)
                    }
                    None => Frame::from_plain(&self.name, &m.payload),
                };
                frames.extend(frame);
                false
            }
            Event::Lagged { .. } | Event::Resubscribed => true,
        }
    }

    fn saw(&self, envelope: &Envelope) {
        *lock(&self.local.seen) = Position {
            epoch: envelope.epoch.clone(),
            offset: envelope.offset,
        };
    }

    fn deliver(&self, frames: Vec<Frame>) {
        if frames.is_empty() {
            return;
        }
        let batch: Batch = Arc::new(frames);
        for outbox in lock(&self.local.subscribers).values() {
            outbox.offer(&batch, &self.metrics);
        }
    }

    /// After messages may have been missed on the bus: replay from the last one delivered.
    async fn recover(&self) {
        self.metrics.recoveries.inc();
        let seen = lock(&self.local.seen).clone();
        let since = Since {
            epoch: seen.epoch,
            offset: seen.offset,
        };
        match self.bus.replay(&self.name, &since, &self.retention).await {
            Ok(Replay::Complete { entries, .. }) => {
                let mut frames = Vec::with_capacity(entries.len());
                for envelope in &entries {
                    self.saw(envelope);
                    frames.extend(Frame::from_envelope(&self.name, envelope));
                }
                self.deliver(frames);
            }
            Ok(Replay::Gap { head }) => {
                tracing::warn!(channel = %self.name, "history no longer reaches back after a bus interruption; clients are told to refetch");
                self.deliver(vec![Frame::gap(&self.name, &head.epoch, head.offset)]);
                *lock(&self.local.seen) = head;
            }
            Err(error) => {
                tracing::warn!(channel = %self.name, %error, "could not recover a channel after a bus interruption")
            }
        }
    }
}

/// At shutdown: close every connection with "going away", spread over the drain time in
/// batches every 100 ms, so clients reconnect to other instances gradually.
async fn drain(hub: std::sync::Weak<Hub>) {
    let Some(stopping) = hub.upgrade().map(|h| h.stopping.clone()) else {
        return;
    };
    stopping.cancelled().await;
    let Some(hub) = hub.upgrade() else { return };
    let controls = hub.controls();
    let tick = Duration::from_millis(100);
    let batches = (hub.config.drain.as_millis() / tick.as_millis()).max(1) as usize;
    let per_batch = controls.len().div_ceil(batches).max(1);
    tracing::info!(
        connections = controls.len(),
        per_batch,
        "draining WebSocket connections"
    );
    for (i, batch) in controls.chunks(per_batch).enumerate() {
        if i > 0 {
            tokio::time::sleep(tick).await;
        }
        for control in batch {
            control.close(close::GOING_AWAY);
        }
    }
}
