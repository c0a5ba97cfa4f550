//! Leased rate limiting for the hot path: per-user and per-key request budgets without a round
//! trip to the counter on every request.
//!
//! An instance takes a batch of a key's budget from the shared limiter in one call (counted there
//! at once) and admits that many requests locally. The batch grows while a key is busy (doubling
//! each time one is used up within its lifetime, up to a tenth of the limit) and shrinks to what was
//! used when one expires, so a quiet key asks for one request at a time, exactly as without
//! leases. Because tokens are counted when leased, the limit is never exceeded; at worst a client
//! is refused while some of its budget sits unused in another instance's lease, which expires
//! after [`LEASE_LIFETIME`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use helix_bus::Bus;

use super::error::ApiError;
use super::rate_limit::{self, Limit};

/// How long leased tokens may be spent; unspent ones are then forgotten.
pub const LEASE_LIFETIME: Duration = Duration::from_millis(250);
/// Keys tracked per instance; beyond this, expired leases are swept.
const MAX_KEYS: usize = 100_000;

struct Lease {
    left: u64,
    size: u64,
    until: Instant,
}

#[derive(Default)]
pub struct Leases {
    leases: Mutex<HashMap<String, Lease>>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").finish_non_exhaustive()
    }
}

impl Leases {
    /// Admit one request of `key` under `limit`, from a local lease when one has tokens left.
    pub async fn check(&self, bus: &dyn Bus, limit: Limit, key: &str) -> Result<(), ApiError> {
        let bucket = format!("{}:{key}", limit.name);
        let size = match self.spend(&bucket, limit) {
            Spend::Admitted => return Ok(()),
            Spend::Lease(size) => size,
        };
        if size > 1 {
            if let Ok(d) = bus.take(&bucket, size, limit.limit, limit.window).await {
                if d.allowed {
                    self.store(bucket, size);
                    return Ok(());
                }
            }
        }
        // One request at a time near the limit: exact, and the 429 carries exact headers.
        self.forget(&bucket);
        rate_limit::check(bus, limit, key).await
    }

    /// Take a token from a live lease, or say how big the next lease should be.
    fn spend(&self, bucket: &str, limit: Limit) -> Spend {
        let now = Instant::now();
        let mut leases = self.lock();
        let max = (limit.limit / 10).clamp(1, 4096);
        match leases.get_mut(bucket) {
            Some(l) if l.left > 0 && now < l.until => {
                l.left -= 1;
                Spend::Admitted
            }
            // Used up while still fresh: the key is busy, grow.
            Some(l) if now < l.until => Spend::Lease((l.size * 2).min(max)),
            // Expired: next time, lease what was actually used.
            Some(l) => Spend::Lease((l.size - l.left).clamp(1, max)),
            None => Spend::Lease(1),
        }
    }

    /// Record a new lease of `size`, one token of which the current request spends.
    fn store(&self, bucket: String, size: u64) {
        let now = Instant::now();
        let mut leases = self.lock();
        if leases.len() >= MAX_KEYS {
            leases.retain(|_, l| now < l.until);
        }
        leases.insert(
            bucket,
            Lease {
                left: size - 1,
                size,
                until: now + LEASE_LIFETIME,
            },
        );
    }

    /// After a single-request check, remember a lease of one (used) so growth starts from there.
    fn forget(&self, bucket: &str) {
        let now = Instant::now();
        let mut leases = self.lock();
        if leases.len() < MAX_KEYS || leases.contains_key(bucket) {
            leases.insert(
                bucket.to_owned(),
                Lease {
                    left: 0,
                    size: 1,
                    until: now + LEASE_LIFETIME,
                },
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        // The map holds only counters; a panic elsewhere cannot leave it inconsistent.
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Spend {
    Admitted,
    Lease(u64),
}
