//! Metered calls: `POST /api/usage` reports one (a user their own; an admin or admin-scoped
//! service key anyone's), `GET /api/usage` sums a user's calls per day and model.
//!
//! Data flow of a report: validate → read the user's quota status (one row: tier and this month's
//! tokens) → 429 if the month's tokens are already used up → hand the row to the usage recorder,
//! which writes it with the next batch (at most the flush interval later, and before the process
//! exits on a clean shutdown) → 202. The report never waits for the row's write. A call that takes
//! the month over its allowance is recorded in full; the next one is refused.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use helix_store::usage::{month_start, UsageDay, UsageRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::accounts::store;
use super::quota::{self, midnight, Quotas};
use super::schema::ErrorBody;
use crate::services::ServiceState;
use crate::shared::auth::{Principal, Scope, Via};
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;
use crate::shared::usage::RecordError;

const MAX_NAME_CHARS: usize = 200;
/// Per call: far above any model's context, far below what could overflow a month's sums.
const MAX_TOKENS: i64 = 1_000_000_000;
/// Per call: $1,000,000.
const MAX_COST_MICROS: i64 = 1_000_000_000_000;
const MAX_DAYS: i64 = 366;

/// One metered call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportUsage {
    /// Whose call it was (admins and admin-scoped keys only); default: the caller.
    user_id: Option<Uuid>,
    /// The key the call was made with (admins only); default: the caller's key, if it used one.
    api_key_id: Option<Uuid>,
    /// What was called, e.g. `/v1/messages`.
    #[schema(example = "/v1/messages")]
    endpoint: String,
    #[schema(example = "claude-sonnet-4")]
    model: String,
    tokens_in: i64,
    tokens_out: i64,
    /// Cost in micro-dollars (1 = $0.000001).
    cost_micros: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageAccepted {
    /// Always true: the row is buffered and written with the next batch.
    pub accepted: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// First UTC day (YYYY-MM-DD, inclusive); default: the first of this month.
    from: Option<NaiveDate>,
    /// Last UTC day (inclusive); default: today. At most 366 days after `from`.
    to: Option<NaiveDate>,
    /// Another user's usage (admins only); default: the caller's.
    user_id: Option<Uuid>,
}

/// The calls of one UTC day with one model.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDayOut {
    pub day: NaiveDate,
    pub model: String,
    pub calls: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micros: i64,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct UsageTotals {
    pub calls: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micros: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageSummary {
    pub user_id: Uuid,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Oldest day first, models in name order; days without calls are left out.
    pub days: Vec<UsageDayOut>,
    pub totals: UsageTotals,
}

/// The user a request is about: the caller, or (admins only) the one it names.
pub(super) fn subject(principal: &Principal, named: Option<Uuid>) -> Result<Uuid, ApiError> {
    match named {
        Some(id) if id != principal.user_id => {
            principal.require(Scope::Admin)?;
            Ok(id)
        }
        _ => Ok(principal.user_id),
    }
}

/// Report one metered call; it is written with the next batch.
#[utoipa::path(post, path = "/api/usage", tag = "usage", request_body = ReportUsage, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 202, description = "Taken; written with the next batch", body = UsageAccepted),
    (status = 403, description = "user_id or api_key_id given by a caller who is not an admin", body = ErrorBody),
    (status = 404, description = "No such user", body = ErrorBody),
    (status = 422, description = "A field breaks a rule", body = ErrorBody),
    (status = 429, description = "The month's tokens are used up: `quota` and `resets_at` say which and until when", body = ErrorBody),
    (status = 503, description = "The usage buffer is full (the database is not keeping up); retry", body = ErrorBody),
))]
pub async fn record(
    State(state): State<ServiceState>,
    Extension(quotas): Extension<Arc<Quotas>>,
    principal: Principal,
    ApiJson(body): ApiJson<ReportUsage>,
) -> Result<(StatusCode, Json<UsageAccepted>), ApiError> {
    principal.require(Scope::Write)?;
    let user_id = subject(&principal, body.user_id)?;
    let api_key_id = match (body.api_key_id, &principal.via) {
        (Some(key), _) => {
            principal.require(Scope::Admin)?;
            Some(key)
        }
        (None, Via::ApiKey { key_id, .. }) if user_id == principal.user_id => Some(*key_id),
        (None, _) => None,
    };
    let row = checked(body, user_id, api_key_id, Utc::now())?;
    check_tokens(&state, &quotas, user_id, row.at).await?;
    let recorder = state
        .usage()
        .ok_or_else(|| ApiError::internal("backend-api started without a usage recorder"))?;
    recorder.record(row).map_err(busy)?;
    Ok((StatusCode::ACCEPTED, Json(UsageAccepted { accepted: true })))
}

/// A user's calls summed per UTC day and model (admins: anyone's with `user_id`). Calls reported
/// within the last flush interval may not be counted yet.
#[utoipa::path(get, path = "/api/usage", tag = "usage", params(UsageQuery), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = UsageSummary),
    (status = 403, description = "user_id names another user and the caller is not an admin", body = ErrorBody),
    (status = 404, description = "No such user", body = ErrorBody),
    (status = 422, description = "from after to, or more than 366 days", body = ErrorBody),
))]
pub async fn summary(
    State(state): State<ServiceState>,
    principal: Principal,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<UsageSummary>, ApiError> {
    principal.require(Scope::Read)?;
    let Query(query) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    let user_id = subject(&principal, query.user_id)?;
    let today = Utc::now().date_naive();
    let (from, to) = (
        query.from.unwrap_or(month_start(today)),
        query.to.unwrap_or(today),
    );
    if from > to {
        return Err(ApiError::unprocessable("from", "must not be after to"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::unprocessable(
            "from",
            "the range may span at most 366 days",
        ));
    }
    let store = store(&state)?;
    if user_id != principal.user_id
        && store
            .accounts()
            .user(user_id)
            .await
            .map_err(ApiError::store)?
            .is_none()
    {
        return Err(ApiError::not_found());
    }
    let days = store
        .usage()
        .usage_summary(user_id, midnight(from), midnight(to + TimeDelta::days(1)))
        .await
        .map_err(ApiError::store)?;
    Ok(Json(UsageSummary {
        user_id,
        from,
        to,
        totals: totals(&days),
        days: days.into_iter().map(UsageDayOut::from).collect(),
    }))
}

/// 429 when the user's tokens this month already reached their tier's allowance; 404 for an
/// unknown user (so no row that cannot be written is ever buffered).
async fn check_tokens(
    state: &ServiceState,
    quotas: &Quotas,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let status = store(state)?
        .usage()
        .quota_status(user_id, now.date_naive())
        .await
        .map_err(ApiError::store)?
        .ok_or_else(ApiError::not_found)?;
    quotas.remember(user_id, status.tier);
    match quotas.limits(status.tier).tokens_per_month {
        Some(limit) if status.tokens_this_month >= limit => Err(quota::exceeded(
            "tokens_per_month",
            status.tokens_this_month,
            limit,
            quota::next_month(now),
        )),
        _ => Ok(()),
    }
}

fn busy(e: RecordError) -> ApiError {
    let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "usage_busy", e.to_string());
    error
        .headers
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    error
}

fn checked(
    body: ReportUsage,
    user_id: Uuid,
    api_key_id: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<UsageRow, ApiError> {
    let name = |field: &str, value: String| -> Result<String, ApiError> {
        let len = value.chars().count();
        if len == 0 || len > MAX_NAME_CHARS || value.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(
                field,
                "must be 1 to 200 characters without control characters",
            ));
        }
        Ok(value)
    };
    let count = |field: &str, value: i64, max: i64| {
        if (0..=max).contains(&value) {
            Ok(value)
        } else {
            Err(ApiError::unprocessable(
                field,
                &format!("must be 0 to {max}"),
            ))
        }
    };
    Ok(UsageRow {
        user_id,
        api_key_id,
        endpoint: name("endpoint", body.endpoint)?,
        model: name("model", body.model)?,
        tokens_in: count("tokens_in", body.tokens_in, MAX_TOKENS)?,
        tokens_out: count("tokens_out", body.tokens_out, MAX_TOKENS)?,
        cost_micros: count("cost_micros", body.cost_micros, MAX_COST_MICROS)?,
        at,
    })
}

fn totals(days: &[UsageDay]) -> UsageTotals {
    days.iter()
        .fold(UsageTotals::default(), |t, d| UsageTotals {
            calls: t.calls + d.calls,
            tokens_in: t.tokens_in + d.tokens_in,
            tokens_out: t.tokens_out + d.tokens_out,
            cost_micros: t.cost_micros + d.cost_micros,
        })
}

impl From<UsageDay> for UsageDayOut {
    fn from(d: UsageDay) -> Self {
        Self {
            day: d.day,
            model: d.model,
            calls: d.calls,
            tokens_in: d.tokens_in,
            tokens_out: d.tokens_out,
            cost_micros: d.cost_micros,
        }
    }
}
