//! Tiers and their quotas: what each tier allows (messages per day, tokens per month, from the
//! `HELIX_TIER_*` variables), which tier a user is on, and `GET /api/quota`.
//!
//! Messages per day are enforced by the store inside the append transaction (exact under
//! concurrency); tokens per month are checked against the user's counter when a metered call is
//! reported (see `usage.rs`). The tier is read from `user_profiles` and kept per instance for
//! [`TIER_TTL`], so an append costs no extra round trip: a tier change (a Stripe event) takes effect
//! at once on the instance that applied it and within that time on every other instance.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::{Extension, Json};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use helix_store::subscriptions::Tier;
use helix_store::usage::{month_start, QuotaStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::accounts::store;
use super::schema::ErrorBody;
use super::usage::subject;
use crate::config::parse_limit;
use crate::config::ServiceEnv;
use crate::services::ServiceState;
use crate::shared::auth::cache::TtlCache;
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;

/// How long an instance trusts the tier it read for a user.
pub const TIER_TTL: Duration = Duration::from_secs(5);

/// The variables that set each tier's limits.
pub const FREE_MESSAGES_VAR: &str = "HELIX_TIER_FREE_MESSAGES_PER_DAY";
pub const FREE_TOKENS_VAR: &str = "HELIX_TIER_FREE_TOKENS_PER_MONTH";
pub const PRO_MESSAGES_VAR: &str = "HELIX_TIER_PRO_MESSAGES_PER_DAY";
pub const PRO_TOKENS_VAR: &str = "HELIX_TIER_PRO_TOKENS_PER_MONTH";
pub const ENTERPRISE_MESSAGES_VAR: &str = "HELIX_TIER_ENTERPRISE_MESSAGES_PER_DAY";
pub const ENTERPRISE_TOKENS_VAR: &str = "HELIX_TIER_ENTERPRISE_TOKENS_PER_MONTH";

/// The variables of one tier and their defaults (`None`: unlimited).
pub struct TierVars {
    pub tier: Tier,
    pub messages_per_day: &'static str,
    pub messages_default: Option<i64>,
    pub tokens_per_month: &'static str,
    pub tokens_default: Option<i64>,
}

pub const TIER_VARS: [TierVars; 3] = [
    TierVars {
        tier: Tier::Free,
        messages_per_day: FREE_MESSAGES_VAR,
        messages_default: Some(200),
        tokens_per_month: FREE_TOKENS_VAR,
        tokens_default: Some(200_000),
    },
    TierVars {
        tier: Tier::Pro,
        messages_per_day: PRO_MESSAGES_VAR,
        messages_default: Some(5_000),
        tokens_per_month: PRO_TOKENS_VAR,
        tokens_default: Some(5_000_000),
    },
    TierVars {
        tier: Tier::Enterprise,
        messages_per_day: ENTERPRISE_MESSAGES_VAR,
        messages_default: None,
        tokens_per_month: ENTERPRISE_TOKENS_VAR,
        tokens_default: None,
    },
];

/// What one tier allows; `None`: unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub messages_per_day: Option<i64>,
    pub tokens_per_month: Option<i64>,
}

/// The configured tiers and the per-instance tier cache.
pub struct Quotas {
    limits: [Limits; 3],
    tiers: TtlCache<Uuid, Tier>,
}

impl Quotas {
    /// The limits the service's variables set (validated at start).
    pub fn from_env(env: &ServiceEnv) -> Self {
        let read = |var: &str, default: Option<i64>| {
            env.get(var)
                .map_or(default, |raw| parse_limit(raw).flatten())
        };
        let limits = TIER_VARS.map(|t| Limits {
            messages_per_day: read(t.messages_per_day, t.messages_default),
            tokens_per_month: read(t.tokens_per_month, t.tokens_default),
        });
        Self {
            limits,
            tiers: TtlCache::new(TIER_TTL, 100_000),
        }
    }

    pub fn limits(&self, tier: Tier) -> Limits {
        let index = Tier::ALL.iter().position(|t| *t == tier).unwrap_or(0);
        self.limits[index]
    }

    /// The user's tier: cached, else read (an unknown user counts as free; what they try next
    /// answers 404 on its own).
    pub async fn tier(&self, state: &ServiceState, user_id: Uuid) -> Result<Tier, ApiError> {
        if let Some(tier) = self.tiers.get(&user_id) {
            return Ok(tier);
        }
        let status = store(state)?
            .usage()
            .quota_status(user_id, Utc::now().date_naive())
            .await
            .map_err(ApiError::store)?;
        let tier = status.map_or(Tier::Free, |s| s.tier);
        self.tiers.put(user_id, tier);
        Ok(tier)
    }

    /// The caller's daily message allowance, for the append transaction to enforce.
    pub async fn messages_per_day(
        &self,
        state: &ServiceState,
        user_id: Uuid,
    ) -> Result<Option<i64>, ApiError> {
        Ok(self
            .limits(self.tier(state, user_id).await?)
            .messages_per_day)
    }

    /// A tier just read from the database.
    pub fn remember(&self, user_id: Uuid, tier: Tier) {
        self.tiers.put(user_id, tier);
    }

    /// This instance changed the user's tier.
    pub fn forget(&self, user_id: Uuid) {
        self.tiers.remove(&user_id);
    }
}

/// The next UTC midnight after `now`: when messages per day reset.
pub fn next_day(now: DateTime<Utc>) -> DateTime<Utc> {
    midnight(now.date_naive() + TimeDelta::days(1))
}

/// The first moment of the next UTC month: when tokens per month reset.
pub fn next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let start = month_start(now.date_naive());
    let next = match start.month() {
        12 => NaiveDate::from_ymd_opt(start.year() + 1, 1, 1),
        m => NaiveDate::from_ymd_opt(start.year(), m + 1, 1),
    };
    midnight(next.expect("the first of a month exists"))
}

/// The start of a UTC day.
pub(super) fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// 429 `quota_exceeded` naming the quota and when it resets, with `Retry-After`.
pub fn exceeded(quota: &'static str, used: i64, limit: i64, resets_at: DateTime<Utc>) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
        format!("{quota} quota used up ({used} of {limit}); it resets at {resets_at}"),
    );
    e.fields.insert("quota".into(), json!(quota));
    e.fields.insert("resets_at".into(), json!(resets_at));
    let wait = (resets_at - Utc::now()).num_seconds().max(1);
    if let Ok(value) = wait.to_string().parse() {
        e.headers.insert(header::RETRY_AFTER, value);
    }
    e
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QuotaQuery {
    /// Another user's quota (admins only); default: the caller's.
    user_id: Option<Uuid>,
}

/// One allowance: its limit (`null`: unlimited), what is used, and when it starts again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Allowance {
    pub limit: Option<i64>,
    pub used: i64,
    pub resets_at: DateTime<Utc>,
}

/// A user's tier, allowances and subscription status.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaOut {
    pub user_id: Uuid,
    /// `free`, `pro` or `enterprise`.
    #[schema(example = "free")]
    pub tier: String,
    pub messages_per_day: Allowance,
    /// Tokens in plus tokens out this UTC month, as of the last written batch (at most the usage
    /// flush interval behind).
    pub tokens_per_month: Allowance,
    /// Stripe's status of the user's subscription (`active`, `past_due`, `canceled`…); `null`
    /// without one.
    pub subscription_status: Option<String>,
}

/// The caller's tier, limits and what is used (admins: anyone's with `user_id`).
#[utoipa::path(get, path = "/api/quota", tag = "usage", params(QuotaQuery), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = QuotaOut),
    (status = 403, description = "user_id names another user and the caller is not an admin", body = ErrorBody),
    (status = 404, description = "No such user", body = ErrorBody),
))]
pub async fn get(
    State(state): State<ServiceState>,
    Extension(quotas): Extension<Arc<Quotas>>,
    principal: Principal,
    query: Result<Query<QuotaQuery>, QueryRejection>,
) -> Result<Json<QuotaOut>, ApiError> {
    principal.require(Scope::Read)?;
    let Query(query) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    let user_id = subject(&principal, query.user_id)?;
    let now = Utc::now();
    let store = store(&state)?;
    let status = store
        .usage()
        .quota_status(user_id, now.date_naive())
        .await
        .map_err(ApiError::store)?
        .ok_or_else(ApiError::not_found)?;
    quotas.remember(user_id, status.tier);
    let subscription = store
        .subscriptions()
        .subscription(user_id)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(quota_out(
        user_id,
        status,
        quotas.limits(status.tier),
        now,
        subscription.map(|s| s.status),
    )))
}

fn quota_out(
    user_id: Uuid,
    status: QuotaStatus,
    limits: Limits,
    now: DateTime<Utc>,
    subscription_status: Option<String>,
) -> QuotaOut {
    QuotaOut {
        user_id,
        tier: status.tier.as_str().to_owned(),
        messages_per_day: Allowance {
            limit: limits.messages_per_day,
            used: status.messages_today,
            resets_at: next_day(now),
        },
        tokens_per_month: Allowance {
            limit: limits.tokens_per_month,
            used: status.tokens_this_month,
            resets_at: next_month(now),
        },
        subscription_status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_the_next_utc_midnight_and_first_of_month() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            next_day(at("2026-02-28T23:59:59Z")),
            at("2026-03-01T00:00:00Z")
        );
        assert_eq!(
            next_month(at("2026-02-28T23:59:59Z")),
            at("2026-03-01T00:00:00Z")
        );
        assert_eq!(
            next_month(at("2026-12-31T12:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            next_month(at("2026-03-01T00:00:00Z")),
            at("2026-04-01T00:00:00Z")
        );
    }

    #[test]
    fn exceeded_names_the_quota_and_reset() {
        let resets = Utc::now() + TimeDelta::hours(2);
        let e = exceeded("tokens_per_month", 120, 100, resets);
        assert_eq!((e.status.as_u16(), e.code), (429, "quota_exceeded"));
        assert_eq!(e.fields["quota"], "tokens_per_month");
        let wait: i64 = e.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((7000..=7200).contains(&wait), "{wait}");
    }
}
