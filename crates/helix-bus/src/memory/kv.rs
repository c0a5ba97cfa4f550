//! [`KeyValue`] on the memory bus: one [`Expiring`] map of this process, swept as it is used.
//!
//! TTLs go through the same whole-millisecond rounding as on Redis (`kv::ttl_ms`), measured on
//! `tokio::time::Instant`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use super::{lock, MemoryBus};
use crate::kv::ttl_ms;
use crate::{BusError, KeyValue};

#[async_trait]
impl KeyValue for MemoryBus {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BusError> {
        self.check_open()?;
        let now = Instant::now();
        Ok(lock(&self.kv).get(key, now).cloned())
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), BusError> {
        self.check_open()?;
        let ttl = ttl_ms(ttl)?;
        let now = Instant::now();
        // `now + ttl` cannot overflow: `ttl_ms` caps the TTL at decades.
        let expires = ttl.and_then(|ms| now.checked_add(Duration::from_millis(ms)));
        lock(&self.kv).insert(key.to_owned(), value, expires, now);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, BusError> {
        self.check_open()?;
        let now = Instant::now();
        Ok(lock(&self.kv).remove(key, now).is_some())
    }
}
