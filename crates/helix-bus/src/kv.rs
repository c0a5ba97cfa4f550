//! Small shared state: the [`KeyValue`] contract (a flag such as maintenance mode, a session
//! marker), shared by every process attached to the same backend and prefix.
//!
//! Not a database: values are meant to be small, nothing is durable on the memory bus, and on
//! Redis durability is whatever the server is configured for. On Redis a key `k` lives at
//! `{prefix}helix:kv:k`; on the memory bus every `MemoryBus` has its own map.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::BusError;

/// The longest TTL kept as given; longer ones are cut to this (still "practically never"),
/// so that `now + ttl` overflows neither an `Instant` nor Redis's expiry arithmetic.
const MAX_TTL: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

#[async_trait]
pub trait KeyValue: Send + Sync + 'static {
    /// The value of `key`, or `None` when it was never set, was deleted or has expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BusError>;

    /// Store `value` under `key`, replacing any previous value and its TTL. With `ttl`, the key
    /// disappears once it has elapsed (millisecond precision: a sub-millisecond remainder is
    /// rounded up, never down); a zero TTL is [`BusError::Backend`]. `None`: no expiry.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), BusError>;

    /// Remove `key`; true when something was deleted (an expired key counts as absent).
    async fn delete(&self, key: &str) -> Result<bool, BusError>;
}

/// A TTL as whole milliseconds, rounded up so it is never shortened; `None` stays `None`.
/// Both backends use this, so they honour exactly the same expiry.
pub(crate) fn ttl_ms(ttl: Option<Duration>) -> Result<Option<u64>, BusError> {
    let Some(ttl) = ttl else {
        return Ok(None);
    };
    if ttl.is_zero() {
        return Err(BusError::Backend(
            "a key/value TTL must be positive (use delete to remove a key now)".into(),
        ));
    }
    let ttl = ttl.min(MAX_TTL);
    let whole = ttl.as_millis() + u128::from(ttl.subsec_nanos() % 1_000_000 != 0);
    // Bounded by MAX_TTL, so the conversion cannot fail.
    Ok(Some(u64::try_from(whole).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_milliseconds() {
        assert_eq!(ttl_ms(None).unwrap(), None);
        assert_eq!(ttl_ms(Some(Duration::from_millis(250))).unwrap(), Some(250));
        assert_eq!(ttl_ms(Some(Duration::from_micros(1))).unwrap(), Some(1));
        assert_eq!(ttl_ms(Some(Duration::from_micros(2001))).unwrap(), Some(3));
        assert_eq!(
            ttl_ms(Some(Duration::MAX)).unwrap(),
            Some(MAX_TTL.as_millis() as u64)
        );
        assert!(matches!(
            ttl_ms(Some(Duration::ZERO)),
            Err(BusError::Backend(_))
        ));
    }
}
