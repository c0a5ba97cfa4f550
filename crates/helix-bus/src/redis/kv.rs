//! [`KeyValue`] on Redis: plain string keys `{prefix}helix:kv:<key>`, one command per call
//! (`GET`, `SET … [PX ms]`, `DEL`), so each call is atomic on the server and expiry is Redis's
//! own, on the server's clock at millisecond precision. No hash tag: each call touches one key.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::RedisBus;
use crate::kv::ttl_ms;
use crate::{BusError, KeyValue};

impl RedisBus {
    fn kv_key(&self, key: &str) -> String {
        format!("{}helix:kv:{key}", self.prefix)
    }
}

#[async_trait]
impl KeyValue for RedisBus {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BusError> {
        let mut conn = self.conn()?;
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.kv_key(key))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(value.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), BusError> {
        let mut conn = self.conn()?;
        let ttl = ttl_ms(ttl)?;
        let mut set = redis::cmd("SET");
        set.arg(self.kv_key(key)).arg(value.as_ref());
        // Without PX, SET also clears a previous TTL: the same "replace value and TTL" as memory.
        if let Some(ms) = ttl {
            set.arg("PX").arg(ms);
        }
        set.exec_async(&mut conn).await.map_err(|e| self.fail(e))
    }

    async fn delete(&self, key: &str) -> Result<bool, BusError> {
        let mut conn = self.conn()?;
        let deleted: u64 = redis::cmd("DEL")
            .arg(self.kv_key(key))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(deleted > 0)
    }
}
