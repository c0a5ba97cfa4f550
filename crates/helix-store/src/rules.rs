//! The engine-neutral half of the accounts and audit implementations: what a presented refresh
//! token leads to, how the next audit entry is chained, how a create's audit event is completed,
//! and the checks and decodings both engines apply the same way. The engine modules own only their
//! SQL, their transactions and their locks.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::accounts::Role;
use crate::audit::{self, AuditEntry, AuditEvent, GENESIS};
use crate::conversations::MessageRole;
use crate::StoreError;

/// Now, truncated to microseconds: every time the store writes round-trips exactly on both engines.
pub(crate) fn now() -> DateTime<Utc> {
    audit::stamp(Utc::now())
}

/// A caller-given time, truncated as [`now`] is, so what a call returns equals what is read back.
pub(crate) fn exact(at: DateTime<Utc>) -> DateTime<Utc> {
    audit::stamp(at)
}

/// What the store knows about a presented refresh token, read under the session's lock.
pub(crate) struct TokenState {
    pub(crate) rotated_at: Option<DateTime<Utc>>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) session_revoked: bool,
    pub(crate) user_deleted: bool,
}

/// What to do with a presented refresh token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefreshStep {
    /// Unknown token, dead session or deleted user: change nothing.
    Invalid,
    /// The live token, or one rotated away within the grace window: mark the session's live token
    /// used and make the new one live.
    Rotate,
    /// A token rotated away before the grace window: revoke the session and audit it.
    Reuse,
}

pub(crate) fn refresh_step(
    state: &TokenState,
    now: DateTime<Utc>,
    grace: std::time::Duration,
) -> RefreshStep {
    if state.session_revoked || state.user_deleted || state.expires_at <= now {
        return RefreshStep::Invalid;
    }
    match state.rotated_at {
        None => RefreshStep::Rotate,
        // A negative age (another instance's clock runs ahead) counts as within the window.
        Some(rotated) => match (now - rotated).to_std() {
            Ok(age) if age >= grace => RefreshStep::Reuse,
            _ => RefreshStep::Rotate,
        },
    }
}

/// The entry that follows `head` (`(seq, hash)` of the last entry, `None` for an empty log),
/// stamped now. The caller holds the append lock from reading `head` until its commit.
pub(crate) fn next_entry(head: Option<(i64, String)>, event: AuditEvent) -> AuditEntry {
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let at = now();
    let hash = audit::entry_hash(&prev_hash, seq, at, &event);
    AuditEntry {
        seq,
        at,
        actor: event.actor,
        action: event.action,
        target: event.target,
        ip: event.ip,
        detail: event.detail,
        prev_hash,
        hash,
    }
}

/// The text stored for a detail: exactly what [`audit::entry_hash`] hashed.
pub(crate) fn detail_text(entry: &AuditEntry) -> String {
    entry.detail.to_string()
}

/// A stored detail back as JSON. Text that is not JSON (only a hand-edited row has that) comes
/// back as a JSON string of itself, so the entry then fails `verify` at its own seq instead of
/// making the whole page unreadable.
pub(crate) fn detail_value(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

/// A signup's event names the new user, whom the caller cannot know yet, unless it says otherwise.
pub(crate) fn signup_event(mut event: AuditEvent, user: Uuid) -> AuditEvent {
    event.actor = event.actor.or(Some(user));
    event.target = event.target.or_else(|| Some(format!("user:{user}")));
    event
}

/// A created key's event targets the new key, whose id the caller cannot know yet.
pub(crate) fn key_event(mut event: AuditEvent, key: Uuid) -> AuditEvent {
    event.target = event.target.or_else(|| Some(format!("key:{key}")));
    event
}

/// The event of a detected refresh-token reuse.
pub(crate) fn reuse_event(user: Uuid, session: Uuid) -> AuditEvent {
    AuditEvent::new("refresh_reuse_detected")
        .actor(user)
        .target(format!("session:{session}"))
}

/// Trust levels are 0.0 to 1.0 (the tables check it too; this gives the better error).
pub(crate) fn check_trust(trust_level: f64) -> Result<(), StoreError> {
    if (0.0..=1.0).contains(&trust_level) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "trust level {trust_level} is outside 0.0..=1.0"
        )))
    }
}

/// A stored role; anything else is a decode error (the tables check it, so only a hand edit).
pub(crate) fn role(stored: &str) -> Result<Role, sqlx::Error> {
    Role::parse(stored)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown role `{stored}`").into()))
}

/// A stored message role.
pub(crate) fn message_role(stored: &str) -> Result<MessageRole, sqlx::Error> {
    MessageRole::parse(stored)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown message role `{stored}`").into()))
}

/// A stored tier.
pub(crate) fn tier(stored: &str) -> Result<crate::subscriptions::Tier, sqlx::Error> {
    crate::subscriptions::Tier::parse(stored)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown tier `{stored}`").into()))
}

/// Why a unique violation happened, in words for the caller; other errors pass through.
pub(crate) fn conflict_as(err: StoreError, what: &str) -> StoreError {
    match err {
        StoreError::Conflict(_) => StoreError::Conflict(what.to_string()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn state(rotated_ago: Option<i64>, now: DateTime<Utc>) -> TokenState {
        TokenState {
            rotated_at: rotated_ago.map(|s| now - chrono::TimeDelta::seconds(s)),
            expires_at: now + chrono::TimeDelta::hours(1),
            session_revoked: false,
            user_deleted: false,
        }
    }

    #[test]
    fn refresh_steps() {
        let now = Utc::now();
        let grace = Duration::from_secs(10);
        assert_eq!(
            refresh_step(&state(None, now), now, grace),
            RefreshStep::Rotate
        );
        assert_eq!(
            refresh_step(&state(Some(9), now), now, grace),
            RefreshStep::Rotate
        );
        assert_eq!(
            refresh_step(&state(Some(-5), now), now, grace),
            RefreshStep::Rotate
        );
        assert_eq!(
            refresh_step(&state(Some(10), now), now, grace),
            RefreshStep::Reuse
        );
        let mut dead = state(None, now);
        dead.expires_at = now;
        assert_eq!(refresh_step(&dead, now, grace), RefreshStep::Invalid);
        let mut revoked = state(Some(60), now);
        revoked.session_revoked = true;
        assert_eq!(refresh_step(&revoked, now, grace), RefreshStep::Invalid);
        let mut deleted = state(None, now);
        deleted.user_deleted = true;
        assert_eq!(refresh_step(&deleted, now, grace), RefreshStep::Invalid);
    }

    #[test]
    fn next_entry_chains_from_genesis_then_from_head() {
        let first = next_entry(None, AuditEvent::new("a"));
        assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS));
        let second = next_entry(Some((first.seq, first.hash.clone())), AuditEvent::new("b"));
        assert_eq!((second.seq, &second.prev_hash), (2, &first.hash));
        assert!(audit::verify(None, [&first, &second]).is_ok());
    }

    #[test]
    fn trust_bounds() {
        assert!(check_trust(0.0).is_ok() && check_trust(1.0).is_ok());
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(check_trust(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
