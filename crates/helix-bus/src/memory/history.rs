//! [`History`] on the memory bus: one log per channel in this process, appended and fanned out
//! under one lock so every subscriber sees offsets in order.
//!
//! Times are the wall clock (envelopes carry Unix milliseconds, as on Redis). A channel whose log
//! is empty and whose last append is older than [`META_TTL`] is forgotten, epoch and all, by a
//! sweep that runs every [`SWEEP_EVERY`] appends and first drops every entry past its age.

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use super::{lock, MemoryBus};
use crate::history::{decide, new_epoch, Envelope, Position, Replay, Retention, Since, META_TTL};
use crate::{BusError, Event, History, Message};

/// Appends between two sweeps of idle channels.
const SWEEP_EVERY: u64 = 4096;

/// One channel's log.
struct Log {
    /// The retention of the last append, which the sweep applies too.
    retention: Retention,
    epoch: String,
    last: u64,
    last_append_ms: u64,
    entries: VecDeque<Envelope>,
}

impl Log {
    fn trim(&mut self, now_ms: u64, retention: &Retention) {
        while self.entries.len() > retention.max_messages() {
            self.entries.pop_front();
        }
        let cutoff = now_ms.saturating_sub(retention.max_age_ms());
        while self.entries.front().is_some_and(|e| e.time_ms < cutoff) {
            self.entries.pop_front();
        }
    }

    fn head(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.last,
        }
    }
}

/// Every channel's log, and appends since the last sweep.
#[derive(Default)]
pub(super) struct Logs {
    channels: HashMap<String, Log>,
    appends: u64,
}

impl Logs {
    /// Drop entries past their age everywhere (a channel nobody writes or reads again would
    /// otherwise keep them for good), then channels idle past [`META_TTL`].
    fn sweep(&mut self, now_ms: u64) {
        let idle_ms = META_TTL.as_millis() as u64;
        self.channels.retain(|_, log| {
            let retention = log.retention;
            log.trim(now_ms, &retention);
            !log.entries.is_empty() || log.last_append_ms + idle_ms > now_ms
        });
    }

    pub(super) fn clear(&mut self) {
        self.channels.clear();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[async_trait]
impl History for MemoryBus {
    async fn append(
        &self,
        channel: &str,
        data: Bytes,
        retention: &Retention,
    ) -> Result<Position, BusError> {
        self.check_open()?;
        let now = now_ms();
        let mut logs = lock(&self.logs);
        logs.appends += 1;
        if logs.appends.is_multiple_of(SWEEP_EVERY) {
            logs.sweep(now);
        }
        let log = logs
            .channels
            .entry(channel.to_owned())
            .or_insert_with(|| Log {
                retention: *retention,
                epoch: new_epoch(),
                last: 0,
                last_append_ms: now,
                entries: VecDeque::new(),
            });
        log.last += 1;
        log.last_append_ms = now;
        log.retention = *retention;
        let envelope = Envelope {
            epoch: log.epoch.clone(),
            offset: log.last,
            time_ms: now,
            data,
        };
        let event = Event::Message(Message {
            channel: channel.to_owned(),
            payload: envelope.encode(),
        });
        log.entries.push_back(envelope);
        log.trim(now, retention);
        let head = log.head();
        // Delivered while the log is still locked: two appends on one channel reach every
        // subscriber in offset order.
        lock(&self.channels).deliver(channel, &event);
        Ok(head)
    }

    async fn replay(
        &self,
        channel: &str,
        since: &Since,
        retention: &Retention,
    ) -> Result<Replay, BusError> {
        self.check_open()?;
        let now = now_ms();
        let mut logs = lock(&self.logs);
        let Some(log) = logs.channels.get_mut(channel) else {
            let head = Position::default();
            return Ok(decide(head, since, 1, Vec::new(), now, retention));
        };
        log.trim(now, retention);
        let first_kept = log.entries.front().map_or(log.last + 1, |e| e.offset);
        let entries = log
            .entries
            .iter()
            .filter(|e| e.offset > since.offset)
            .cloned()
            .collect();
        Ok(decide(
            log.head(),
            since,
            first_kept,
            entries,
            now,
            retention,
        ))
    }

    async fn head(&self, channel: &str) -> Result<Position, BusError> {
        self.check_open()?;
        let logs = lock(&self.logs);
        Ok(logs
            .channels
            .get(channel)
            .map(Log::head)
            .unwrap_or_default())
    }
}
