//! The in-process bus, the embedded default when no `REDIS_URL` is set.
//!
//! Owns, for one process only: the channel → subscribers fan-out ([`FanOut`]), the channel logs
//! (`history`), the key/value map (`kv`) and the rate counters (`rate`), the last two swept of
//! expired entries as they are used (`expiring`). Nothing is serialised: a published payload is a
//! [`Bytes`] cloned (a reference count) into each subscriber's buffer. Nothing survives a
//! restart, and two `MemoryBus` values never see each other (channels, logs, keys and rate counts
//! alike), so the `prefix` option has no effect here. Time is `tokio::time::Instant`, so tests
//! can pause it.

mod expiring;
mod history;
mod kv;
mod rate;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::fanout::FanOut;
use crate::{Backend, Bus, BusError, BusOptions, Event, Message, PubSub, Subscription};
use expiring::Expiring;
use rate::RateCounters;

/// Pub/sub, channel history, key/value and rate limits inside this process.
pub struct MemoryBus {
    /// Why a std mutex: it is held only to update the map and to `try_send` (never blocks),
    /// never across an `.await`. Why an `Arc`: each subscription's guard holds a `Weak` to it so
    /// dropping the subscription removes it, without keeping a closed bus alive.
    channels: Arc<Mutex<FanOut>>,
    /// Why separate std mutexes: key/value and rate operations are short map updates with no
    /// `.await`, and a burst of rate checks should not wait behind key/value work.
    kv: Mutex<Expiring<Bytes>>,
    rates: Mutex<RateCounters>,
    /// Why a std mutex: an append updates one log and fans out without an `.await`; it is taken
    /// before `channels` (never the other way round) so offsets reach subscribers in order.
    logs: Mutex<history::Logs>,
    buffer: usize,
    /// Set once by `close`; checked first by every call.
    closed: AtomicBool,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus").finish_non_exhaustive()
    }
}

impl MemoryBus {
    pub fn new(options: &BusOptions) -> Self {
        Self {
            channels: Arc::default(),
            kv: Mutex::default(),
            rates: Mutex::new(RateCounters::new(Instant::now())),
            logs: Mutex::default(),
            buffer: options.subscription_buffer.max(1),
            closed: AtomicBool::new(false),
        }
    }

    fn check_open(&self) -> Result<(), BusError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        Ok(())
    }
}

fn closed() -> BusError {
    BusError::Unavailable {
        target: "memory".into(),
        reason: "the bus is closed".into(),
    }
}

/// A poisoned lock only means another thread panicked mid-update; the maps stay usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes its subscriber from the fan-out when the [`Subscription`] is dropped.
struct Unsubscribe {
    channels: Weak<Mutex<FanOut>>,
    channel: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        if let Some(channels) = self.channels.upgrade() {
            lock(&channels).remove(&self.channel, self.id);
        }
    }
}

#[async_trait]
impl PubSub for MemoryBus {
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), BusError> {
        self.check_open()?;
        let event = Event::Message(Message {
            channel: channel.to_owned(),
            payload,
        });
        lock(&self.channels).deliver(channel, &event);
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError> {
        // Why a bounded channel: a subscriber that stops reading costs at most `buffer` events,
        // then sees `Lagged`; the publisher never waits for it.
        let (tx, rx) = mpsc::channel(self.buffer);
        let id = {
            let mut channels = lock(&self.channels);
            // Checked under the lock so `close` cannot clear the map between check and insert.
            self.check_open()?;
            channels.add(channel, tx).0
        };
        let guard = Unsubscribe {
            channels: Arc::downgrade(&self.channels),
            channel: channel.to_owned(),
            id,
        };
        Ok(Subscription::new(rx, Some(Box::new(guard))))
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    fn describe(&self) -> String {
        "memory".into()
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.check_open()
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Dropping every sender ends every open subscription (`recv` yields `None`).
        lock(&self.channels).clear();
        lock(&self.kv).clear();
        lock(&self.rates).clear();
        lock(&self.logs).clear();
    }
}
