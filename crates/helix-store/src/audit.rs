//! The audit log: an append-only, hash-chained table of security-relevant events.
//!
//! Each entry's `hash` is the SHA-256 of the previous entry's hash and this entry's canonical
//! encoding ([`entry_hash`]), so editing, deleting or reordering a row breaks the chain at that row
//! ([`verify`]). Truncating the tail is detected against a signed checkpoint of an earlier head,
//! which the helix crate signs and checks. Appends are serialised per database so the chain never
//! forks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::StoreError;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Something to record. Never put a secret in `detail`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Who did it (`None`: anonymous, e.g. a failed login for an unknown email).
    pub actor: Option<Uuid>,
    /// `signup`, `login`, `login_failed`, `logout`, `refresh_reuse_detected`, `key_created`, …
    pub action: String,
    /// What it was done to (`user:<id>`, `key:<id>`, `maintenance`).
    pub target: Option<String>,
    /// The client address, when known.
    pub ip: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(action: &str) -> Self {
        Self {
            actor: None,
            action: action.to_owned(),
            target: None,
            ip: None,
            detail: serde_json::Value::Null,
        }
    }

    pub fn actor(mut self, actor: Uuid) -> Self {
        self.actor = Some(actor);
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn ip(mut self, ip: Option<String>) -> Self {
        self.ip = ip;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// 1, 2, 3… without gaps.
    pub seq: i64,
    /// Truncated to microseconds, the precision both engines store.
    pub at: DateTime<Utc>,
    pub actor: Option<Uuid>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The last entry's position and hash: what a checkpoint signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

/// Where the chain first breaks, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log broken at entry {seq}: {reason}")]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Append one event on its own (for events that change nothing else, like a failed login).
    async fn append(&self, event: AuditEvent) -> Result<AuditEntry, StoreError>;

    /// Entries with `seq > after`, in order, at most `limit`.
    async fn page(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// The last entry, `None` when the log is empty.
    async fn head(&self) -> Result<Option<AuditHead>, StoreError>;
}

/// The canonical hash of an entry: SHA-256 over the previous hash and every field, each
/// length-prefixed so that no two different entries encode the same bytes.
pub fn entry_hash(prev_hash: &str, seq: i64, at: DateTime<Utc>, event: &AuditEvent) -> String {
    let mut h = Sha256::new();
    let actor = event.actor.map(|a| a.to_string()).unwrap_or_default();
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let detail = event.detail.to_string();
    let fields: [&str; 8] = [
        prev_hash,
        &seq.to_string(),
        &at,
        &actor,
        &event.action,
        event.target.as_deref().unwrap_or(""),
        event.ip.as_deref().unwrap_or(""),
        &detail,
    ];
    for field in fields {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex(&h.finalize())
}

/// The time an entry is stamped with: now, truncated to what both engines store exactly.
pub fn stamp(now: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}

/// Check a run of entries continuing from `prev` (`None`: from the start of the log). Returns the
/// head after the run.
pub fn verify<'a>(
    prev: Option<&AuditHead>,
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<Option<AuditHead>, BrokenLink> {
    let mut head = prev.cloned();
    for e in entries {
        let (want_seq, want_prev) = match &head {
            Some(h) => (h.seq + 1, h.hash.as_str()),
            None => (1, GENESIS),
        };
        if e.seq != want_seq {
            return Err(BrokenLink {
                seq: want_seq,
                reason: format!(
                    "expected entry {want_seq}, found {} (deleted or reordered)",
                    e.seq
                ),
            });
        }
        if e.prev_hash != want_prev {
            return Err(BrokenLink {
                seq: e.seq,
                reason: "prev_hash does not match the previous entry".into(),
            });
        }
        let event = AuditEvent {
            actor: e.actor,
            action: e.action.clone(),
            target: e.target.clone(),
            ip: e.ip.clone(),
            detail: e.detail.clone(),
        };
        if entry_hash(&e.prev_hash, e.seq, e.at, &event) != e.hash {
            return Err(BrokenLink {
                seq: e.seq,
                reason: "contents do not match the entry's hash (edited)".into(),
            });
        }
        head = Some(AuditHead {
            seq: e.seq,
            hash: e.hash.clone(),
        });
    }
    Ok(head)
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `n` entries built as the engines build them.
    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut entries: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev_hash = entries
                .last()
                .map_or(GENESIS.to_string(), |e| e.hash.clone());
            let event = AuditEvent::new("login")
                .actor(Uuid::new_v4())
                .target(format!("user:{seq}"))
                .detail(serde_json::json!({"n": seq, "ratio": seq as f64 / 7.0}));
            let at = stamp(Utc::now());
            let hash = entry_hash(&prev_hash, seq, at, &event);
            entries.push(AuditEntry {
                seq,
                at,
                actor: event.actor,
                action: event.action,
                target: event.target,
                ip: event.ip,
                detail: event.detail,
                prev_hash,
                hash,
            });
        }
        entries
    }

    #[test]
    fn entry_hash_is_deterministic_and_field_boundaries_matter() {
        let at = stamp(Utc::now());
        let a = AuditEvent::new("ab").target("c");
        let b = AuditEvent::new("a").target("bc");
        assert_eq!(
            entry_hash(GENESIS, 1, at, &a),
            entry_hash(GENESIS, 1, at, &a)
        );
        assert_ne!(
            entry_hash(GENESIS, 1, at, &a),
            entry_hash(GENESIS, 1, at, &b)
        );
        // An absent field and an empty one are the same on purpose: both store nothing.
        assert_eq!(
            entry_hash(GENESIS, 1, at, &AuditEvent::new("x")),
            entry_hash(GENESIS, 1, at, &AuditEvent::new("x").target(""))
        );
        assert_eq!(entry_hash(GENESIS, 1, at, &a).len(), 64);
    }

    #[test]
    fn verify_accepts_a_chain_and_its_continuation() {
        let entries = chain(5);
        let head = verify(None, &entries).unwrap().unwrap();
        assert_eq!((head.seq, &head.hash), (5, &entries[4].hash));
        let first = verify(None, &entries[..2]).unwrap();
        assert_eq!(verify(first.as_ref(), &entries[2..]).unwrap(), Some(head));
        assert_eq!(verify(None, []).unwrap(), None);
    }

    #[test]
    fn verify_finds_edits_deletions_and_reorders() {
        let mut edited = chain(5);
        edited[2].detail = serde_json::json!({"n": 99});
        assert_eq!(verify(None, &edited).unwrap_err().seq, 3);

        let mut deleted = chain(5);
        deleted.remove(2);
        assert_eq!(verify(None, &deleted).unwrap_err().seq, 3);

        let mut swapped = chain(5);
        swapped.swap(1, 3);
        (swapped[1].seq, swapped[3].seq) = (2, 4);
        assert_eq!(verify(None, &swapped).unwrap_err().seq, 2);
    }

    /// Details are stored as the text that was hashed and parsed back to be re-hashed: the text
    /// must survive that round trip exactly, floats included.
    #[test]
    fn detail_text_round_trips_through_json() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let value =
                serde_json::json!({"f": f64::from_bits(x >> 2), "g": (x >> 11) as f64 / 3.0});
            let text = value.to_string();
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_string(), text);
        }
    }
}
