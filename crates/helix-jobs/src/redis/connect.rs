//! Reaching Redis: the URL turned into a client plus password-free names for errors, the shared
//! command connection (bounded retries at open), driver errors mapped to [`JobError`], and the
//! backoff the wake-up listener reconnects with.

use std::time::Duration;

use rand::Rng;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, ProtocolVersion, RedisError};

use crate::JobError;

/// Bound on reaching the server once (TCP connect and handshake).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one reply. Every script is bounded on the server side (sweeps, scans and prune
/// chunks have limits), so a slower reply means Redis is in trouble.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection attempts after the first, at open and whenever the manager reconnects.
const RECONNECT_RETRIES: usize = 4;

/// A parsed `redis://` / `rediss://` URL.
#[derive(Clone)]
pub(super) struct Endpoint {
    /// For commands.
    pub(super) client: Client,
    /// For the wake-up listener's subscriptions.
    pub(super) pubsub: Client,
    /// `redis host:port/db`: what errors and `describe()` name, never a user or password.
    pub(super) description: String,
    /// Kept only to scrub it from driver messages, in case one ever echoes it.
    password: Option<String>,
}

impl Endpoint {
    pub(super) fn parse(url: &str) -> Result<Self, JobError> {
        let invalid = |reason: String| JobError::Invalid(format!("bad Redis URL: {reason}"));
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            let scheme = parsed.scheme().to_owned();
            return Err(invalid(format!(
                "scheme {scheme:?}; expected redis:// or rediss://"
            )));
        }
        let host = match parsed.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err(invalid("the URL has no host".into())),
        };
        let port = parsed.port().unwrap_or(6379);
        let password = parsed.password().map(str::to_owned);
        // The driver's own messages name the faulty part, never the URL itself.
        let info = parsed
            .into_connection_info()
            .map_err(|e| invalid(e.to_string()))?;
        let db = info.redis_settings().db();
        // Why RESP3 for pub/sub: the subscribed connection then stays a normal connection that
        // also accepts `CLIENT SETNAME` and `PING`, and reports its loss as a push (Redis 6+).
        let speaking = |protocol| {
            let settings = info.redis_settings().clone().set_protocol(protocol);
            Client::open(info.clone().set_redis_settings(settings))
                .map_err(|e| invalid(e.to_string()))
        };
        Ok(Self {
            client: speaking(ProtocolVersion::RESP2)?,
            pubsub: speaking(ProtocolVersion::RESP3)?,
            description: format!("redis {host}:{port}/{db}"),
            password,
        })
    }

    /// Map a driver error: connection trouble is `Unavailable`, the rest `Backend`.
    pub(super) fn error(&self, e: &RedisError) -> JobError {
        if is_connection_error(e) {
            self.unavailable(e.to_string())
        } else {
            JobError::Backend(self.scrub(e.to_string()))
        }
    }

    pub(super) fn unavailable(&self, reason: String) -> JobError {
        JobError::Unavailable {
            backend: self.description.clone(),
            reason: self.scrub(reason),
        }
    }

    fn scrub(&self, text: String) -> String {
        match &self.password {
            Some(password) if !password.is_empty() && text.contains(password.as_str()) => {
                text.replace(password.as_str(), "***")
            }
            _ => text,
        }
    }

    /// The shared command connection, connected now (with bounded retries) so that `open`
    /// reports an unreachable server at once.
    pub(super) async fn command_connection(&self) -> Result<ConnectionManager, JobError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(Duration::from_secs(2));
        ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(|e| self.unavailable(e.to_string()))
    }
}

/// Is this error a lost or unreachable connection (as opposed to a refused command)?
pub(super) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// Exponential backoff with jitter: 100 ms doubling up to 5 s.
pub(super) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    pub(super) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        let jitter = rand::thread_rng().gen_range(0..=base.as_millis() as u64 / 4);
        base + Duration::from_millis(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_carry_credentials() {
        let endpoint = Endpoint::parse("redis://admin:s3cretpw@cache.internal:6380/2").unwrap();
        assert_eq!(endpoint.description, "redis cache.internal:6380/2");
        let default_port = Endpoint::parse("redis://:pw@example.com").unwrap();
        assert_eq!(default_port.description, "redis example.com:6379/0");
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for url in [
            "redis://:s3cretpw@host/notadb",
            "redis://:s3cretpw@/0",
            "http://:s3cretpw@host",
        ] {
            let err = Endpoint::parse(url).err().unwrap().to_string();
            assert!(err.contains("bad Redis URL"), "{err}");
            assert!(!err.contains("s3cretpw"), "{err}");
        }
    }
}
