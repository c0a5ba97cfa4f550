//! Channel history: a bounded, replayable log per channel with offsets and an epoch, published
//! on the channel itself in one atomic step.
//!
//! [`History::append`] gives a message the channel's next offset (1, 2, 3, … within one epoch),
//! keeps it in the channel's log (at most [`Retention::max_messages`] entries, none older than
//! [`Retention::max_age`]) and publishes it to the channel's subscribers as an [`Envelope`] (the
//! offset, epoch and time, then the payload) — in that order for every publisher, so a live
//! subscriber and a replay agree on what offset N is. [`History::replay`] returns everything after
//! a client's last offset, or says the log no longer reaches back ([`Replay::Gap`]).
//!
//! The epoch names one generation of offsets: it changes when offsets restart (a Redis that lost
//! its data, a channel idle past [`META_TTL`], a restarted in-process bus), so an offset is only
//! meaningful together with its epoch.
//!
//! On Redis: a hash `helix:hist:{<channel>}:m` (epoch, last offset) and a list
//! `helix:hist:{<channel>}:l` (envelopes, oldest first), both under the bus prefix and one hash
//! slot; each call is one Lua script, so appends from every instance are serialised by Redis.

use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};

use crate::BusError;

/// How long a channel's epoch and last offset outlive its last append. Past that, offsets restart
/// under a new epoch (clients holding old offsets are told to refetch).
pub const META_TTL: Duration = Duration::from_secs(24 * 3600);

/// How much history one channel keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most entries kept; older ones are dropped as new ones arrive (at least 1).
    pub max_messages: usize,
    /// Entries older than this are not replayed (at least 1 ms).
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_messages: 300,
            max_age: Duration::from_secs(300),
        }
    }
}

impl Retention {
    pub(crate) fn max_age_ms(&self) -> u64 {
        (self.max_age.as_millis() as u64).max(1)
    }

    pub(crate) fn max_messages(&self) -> usize {
        self.max_messages.max(1)
    }
}

/// Where a channel's log stands, or where an appended message landed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    /// Empty while the channel has never been appended to (in this generation).
    pub epoch: String,
    /// The offset of the newest message (0: none yet).
    pub offset: u64,
}

/// One message of a channel as published and as kept in its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub epoch: String,
    pub offset: u64,
    /// When it was appended, in milliseconds since the Unix epoch (the backend's clock).
    pub time_ms: u64,
    pub data: Bytes,
}

/// Marks an envelope on the wire: `h1 <epoch> <offset> <time_ms>\n<data>`.
const MAGIC: &str = "h1 ";

impl Envelope {
    /// The wire form (what subscribers receive as the payload).
    pub fn encode(&self) -> Bytes {
        let head = format!("{MAGIC}{} {} {}\n", self.epoch, self.offset, self.time_ms);
        let mut out = BytesMut::with_capacity(head.len() + self.data.len());
        out.put_slice(head.as_bytes());
        out.put_slice(&self.data);
        out.freeze()
    }

    /// Read a payload received on a channel written by [`History::append`]; `None` for any other
    /// payload (a plain `publish` on the same channel). The data shares `payload`'s memory.
    pub fn parse(payload: &Bytes) -> Option<Self> {
        let rest = payload.strip_prefix(MAGIC.as_bytes())?;
        let newline = rest.iter().position(|&b| b == b'\n')?;
        let head = std::str::from_utf8(&rest[..newline]).ok()?;
        let mut fields = head.split(' ');
        let epoch = fields.next().filter(|e| !e.is_empty())?.to_owned();
        let offset = fields.next()?.parse().ok()?;
        let time_ms = fields.next()?.parse().ok()?;
        if fields.next().is_some() {
            return None;
        }
        let start = MAGIC.len() + newline + 1;
        Some(Self {
            epoch,
            offset,
            time_ms,
            data: payload.slice(start..),
        })
    }
}

/// What a client last saw of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Since {
    /// The epoch of `offset`; empty when the client does not know it (then only the offset is
    /// checked).
    pub epoch: String,
    pub offset: u64,
}

/// The answer to a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Every message after `since`, oldest first (possibly none), and where the log stands.
    Complete {
        head: Position,
        entries: Vec<Envelope>,
    },
    /// The log no longer reaches back to `since` (trimmed, expired, or another epoch): the
    /// client must refetch from its source of truth and go on from `head`.
    Gap { head: Position },
}

impl Replay {
    pub fn head(&self) -> &Position {
        match self {
            Replay::Complete { head, .. } | Replay::Gap { head } => head,
        }
    }
}

#[async_trait]
pub trait History: Send + Sync + 'static {
    /// Give `data` the channel's next offset, keep it in the log under `retention`, and publish
    /// its [`Envelope`] on the channel. Returns where it landed.
    async fn append(
        &self,
        channel: &str,
        data: Bytes,
        retention: &Retention,
    ) -> Result<Position, BusError>;

    /// Everything after `since` that the log still holds under `retention`, or a gap.
    async fn replay(
        &self,
        channel: &str,
        since: &Since,
        retention: &Retention,
    ) -> Result<Replay, BusError>;

    /// Where the channel's log stands now (epoch empty and offset 0 when it never had a message).
    async fn head(&self, channel: &str) -> Result<Position, BusError>;
}

/// Decide a replay from the log as read: `entries` are the envelopes after `since.offset` that
/// the log holds (oldest first), `first_kept` the oldest offset it holds, `now_ms` the backend's
/// clock. Shared by both backends so they answer alike.
pub(crate) fn decide(
    head: Position,
    since: &Since,
    first_kept: u64,
    entries: Vec<Envelope>,
    now_ms: u64,
    retention: &Retention,
) -> Replay {
    let wrong_epoch = !since.epoch.is_empty() && since.epoch != head.epoch;
    if wrong_epoch || since.offset > head.offset {
        return Replay::Gap { head };
    }
    if since.offset == head.offset {
        return Replay::Complete {
            head,
            entries: Vec::new(),
        };
    }
    let cutoff = now_ms.saturating_sub(retention.max_age_ms());
    let reaches_back = since.offset + 1 >= first_kept
        && entries
            .first()
            .is_some_and(|e| e.offset == since.offset + 1 && e.time_ms >= cutoff);
    if reaches_back {
        Replay::Complete { head, entries }
    } else {
        Replay::Gap { head }
    }
}

/// A fresh epoch: 16 hex digits, so two generations of one channel never share one.
pub(crate) fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(offset: u64, time_ms: u64) -> Envelope {
        Envelope {
            epoch: "e1".into(),
            offset,
            time_ms,
            data: Bytes::from_static(br#"{"n":1}"#),
        }
    }

    #[test]
    fn an_envelope_round_trips_and_other_payloads_are_not_envelopes() {
        let e = envelope(42, 1_700_000_000_000);
        assert_eq!(Envelope::parse(&e.encode()), Some(e));
        for other in [
            "{\"n\":1}",
            "h1 e1 x 5\n{}",
            "h1 e1 1\n{}",
            "h1  1 2\n{}",
            "",
        ] {
            assert_eq!(Envelope::parse(&Bytes::from(other)), None, "{other}");
        }
    }

    #[test]
    fn a_replay_reaches_back_only_within_count_age_and_epoch() {
        let retention = Retention {
            max_messages: 10,
            max_age: Duration::from_secs(1),
        };
        let head = Position {
            epoch: "e1".into(),
            offset: 5,
        };
        let since = |epoch: &str, offset| Since {
            epoch: epoch.into(),
            offset,
        };
        let entries = vec![envelope(4, 9_500), envelope(5, 9_900)];
        let decide = |s: &Since, first, entries: Vec<Envelope>| {
            decide(head.clone(), s, first, entries, 10_000, &retention)
        };
        assert!(matches!(
            decide(&since("e1", 3), 3, entries.clone()),
            Replay::Complete { entries, .. } if entries.len() == 2
        ));
        assert!(matches!(
            decide(&since("", 3), 3, entries.clone()),
            Replay::Complete { .. }
        ));
        // Trimmed by count: the log starts at 4, the client needs 3.
        assert!(matches!(
            decide(&since("e1", 2), 4, entries.clone()),
            Replay::Gap { .. }
        ));
        assert!(matches!(
            decide(&since("e0", 3), 3, entries.clone()),
            Replay::Gap { .. }
        ));
        assert!(matches!(
            decide(&since("e1", 9), 3, vec![]),
            Replay::Gap { .. }
        ));
        assert!(matches!(
            decide(&since("e1", 5), 3, vec![]),
            Replay::Complete { entries, .. } if entries.is_empty()
        ));
        // Too old: offset 4 was appended 1.5 s before now with a 1 s retention.
        let old = vec![envelope(4, 8_500), envelope(5, 9_900)];
        assert!(matches!(
            decide(&since("e1", 3), 3, old),
            Replay::Gap { .. }
        ));
    }
}
