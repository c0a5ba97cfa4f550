//! Rate limits: per user and per API key on every authenticated request, and stricter limits per
//! client address (and per account) on signup and login.
//!
//! Counting is the bus's sliding-window limiter, so with Redis every instance of a service shares
//! one limit; on the embedded default the in-process bus counts. A refused request gets 429 with
//! `Retry-After` and the `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers.
//! When the bus cannot be reached the request is let through and a warning logged: an outage of
//! the counter must not become an outage of the API.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use helix_bus::{Bus, RateDecision};

use crate::config::ServiceEnv;
use crate::shared::error::ApiError;

pub const MINUTE: Duration = Duration::from_secs(60);

/// One limit: `limit` requests per `window` for keys in namespace `name`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub name: &'static str,
    pub limit: u64,
    pub window: Duration,
}

/// The variable that sets requests per minute per user or API key.
pub const PER_MINUTE_VAR: &str = "HELIX_RATE_LIMIT_PER_MINUTE";

/// The declaration of [`PER_MINUTE_VAR`], for every service that authenticates requests (the
/// budget of a user or key is shared by all of them through the bus).
pub const PER_MINUTE_SPEC: crate::platform::catalog::VarSpec =
    crate::platform::catalog::VarSpec::optional(
        PER_MINUTE_VAR,
        "requests per minute per user or API key; over it: 429",
    )
    .integer(1, 10_000_000)
    .fallback("1200");
pub const DEFAULT_PER_MINUTE: u64 = 1200;

/// Login and signup attempts per client address per minute.
pub const PER_IP_VAR: &str = "HELIX_AUTH_LIMIT_PER_IP_PER_MINUTE";
pub const DEFAULT_PER_IP: u64 = 30;
/// Login attempts per account per minute: a password-guessing run against one account stops
/// here, from however many addresses it comes.
pub const PER_ACCOUNT_VAR: &str = "HELIX_LOGIN_LIMIT_PER_ACCOUNT_PER_MINUTE";
pub const DEFAULT_PER_ACCOUNT: u64 = 10;

/// A per-minute limit named `name`, configured by `var` (validated at start) or `default`.
pub fn per_minute(env: &ServiceEnv, name: &'static str, var: &str, default: u64) -> Limit {
    let limit = env.integer(var).map_or(default, |n| n.max(1) as u64);
    Limit {
        name,
        limit,
        window: MINUTE,
    }
}

/// Count one request against `limit` for `key`; a 429 when over.
pub async fn check(bus: &dyn Bus, limit: Limit, key: &str) -> Result<(), ApiError> {
    let bucket = format!("{}:{key}", limit.name);
    match bus.hit(&bucket, limit.limit, limit.window).await {
        Ok(decision) if decision.allowed => Ok(()),
        Ok(decision) => Err(too_many(&decision, limit.name)),
        Err(e) => {
            tracing::warn!(error = %e, limit = limit.name, "rate limiter unavailable; letting the request through");
            Ok(())
        }
    }
}

fn too_many(d: &RateDecision, name: &str) -> ApiError {
    let retry = d
        .retry_after
        .unwrap_or(Duration::from_secs(1))
        .as_secs_f64()
        .ceil()
        .max(1.0) as u64;
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests ({name}); retry in {retry} s"),
    );
    let reset = d.reset_after.as_secs_f64().ceil() as u64;
    for (header, value) in [
        ("retry-after", retry),
        ("ratelimit-limit", d.limit),
        ("ratelimit-remaining", d.remaining),
        ("ratelimit-reset", reset),
    ] {
        e.headers
            .insert(HeaderName::from_static(header), HeaderValue::from(value));
    }
    e.fields.insert("retry_after".into(), retry.into());
    e
}
