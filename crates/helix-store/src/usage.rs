//! The usage contract: one row per metered call (who, with which key, which endpoint and model,
//! tokens in and out, cost in micro-dollars, when), sums by day and model, and what a quota check
//! needs about a user in one row read.
//!
//! Rows arrive in batches from a write-behind buffer. A batch is one transaction: its rows and the
//! per-user token counters of `user_profiles` commit together, so `tokens_this_month` is exact as of
//! the last committed batch and reading it never needs a `SUM` over the month.

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::subscriptions::Tier;
use crate::StoreError;

/// One metered call.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub user_id: Uuid,
    /// The key the call was made with, if any.
    pub api_key_id: Option<Uuid>,
    pub endpoint: String,
    pub model: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// Micro-dollars (1 = $0.000001).
    pub cost_micros: i64,
    /// When the call was made (not when the batch was written): it decides the day and month.
    pub at: DateTime<Utc>,
}

impl UsageRow {
    /// What the row counts against the monthly token allowance.
    pub fn tokens(&self) -> i64 {
        self.tokens_in.saturating_add(self.tokens_out)
    }
}

/// The calls of one UTC day with one model, summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageDay {
    pub day: NaiveDate,
    pub model: String,
    pub calls: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micros: i64,
}

/// What a quota check needs about a user, as of the last committed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStatus {
    pub tier: Tier,
    /// Messages appended on the day asked about.
    pub messages_today: i64,
    /// Tokens of the month the day asked about falls in.
    pub tokens_this_month: i64,
}

#[async_trait]
pub trait Usage: Send + Sync {
    /// Store a batch of rows and count their tokens in each user's monthly counter, all in one
    /// transaction: all or nothing. A row of an earlier month than a user's counter is stored but
    /// not counted (that month is over); a row of a later month starts the counter again.
    async fn record_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError>;

    /// A user's calls with `from <= at < to`, summed per UTC day and model, oldest day first and
    /// models in name order.
    async fn usage_summary(
        &self,
        user_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageDay>, StoreError>;

    /// The user's tier, messages on `day` and tokens in the month of `day`; `None` for an unknown
    /// or deleted user.
    async fn quota_status(
        &self,
        user_id: Uuid,
        day: NaiveDate,
    ) -> Result<Option<QuotaStatus>, StoreError>;
}

/// The first day of `day`'s month: what `tokens_month_start` holds.
pub fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("every month has a first day")
}

/// One counter update: `tokens` more for `user_id` in the month starting `month`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CounterStep {
    pub(crate) user_id: Uuid,
    pub(crate) month: NaiveDate,
    pub(crate) tokens: i64,
}

/// A batch's counter updates: one per user and month, earliest month first, so applying them in
/// order moves each counter forward only.
pub(crate) fn counter_steps(rows: &[UsageRow]) -> Vec<CounterStep> {
    let mut sums: std::collections::BTreeMap<(NaiveDate, Uuid), i64> = Default::default();
    for row in rows {
        let key = (month_start(row.at.date_naive()), row.user_id);
        let sum = sums.entry(key).or_default();
        *sum = sum.saturating_add(row.tokens());
    }
    sums.into_iter()
        .map(|((month, user_id), tokens)| CounterStep {
            user_id,
            month,
            tokens,
        })
        .collect()
}

/// The counter update of both engines. Parameters: user, month start, tokens. A step of the
/// counter's month adds; a later month replaces (the counter moves on); an earlier one changes
/// nothing. `tokens_month_start` compares as a date on PostgreSQL and as ISO text on SQLite.
pub(crate) const COUNT_TOKENS: &str = "UPDATE user_profiles SET \
     tokens_month = CASE \
         WHEN tokens_month_start = $2 THEN tokens_month + $3 \
         WHEN tokens_month_start IS NULL OR tokens_month_start < $2 THEN $3 \
         ELSE tokens_month END, \
     tokens_month_start = CASE \
         WHEN tokens_month_start IS NULL OR tokens_month_start < $2 THEN $2 \
         ELSE tokens_month_start END \
     WHERE user_id = $1";

/// What a quota check reads, on both engines. Parameters: user, day, month start.
pub(crate) const QUOTA_STATUS: &str = "SELECT p.tier, \
     CASE WHEN p.messages_day = $2 THEN p.messages_today ELSE 0 END AS messages_today, \
     CASE WHEN p.tokens_month_start = $3 THEN p.tokens_month ELSE 0 END AS tokens_this_month \
     FROM user_profiles p JOIN users u ON u.id = p.user_id \
     WHERE p.user_id = $1 AND u.deleted_at IS NULL";

/// The summary query; `day` is the dialect's UTC day of `created_at`. Parameters: user, from, to.
pub(crate) fn summary_sql(day: &str) -> String {
    format!(
        "SELECT {day} AS day, model, COUNT(*) AS calls, \
         CAST(SUM(tokens_in) AS BIGINT) AS tokens_in, CAST(SUM(tokens_out) AS BIGINT) AS tokens_out, \
         CAST(SUM(cost_micros) AS BIGINT) AS cost_micros \
         FROM usage_tracking WHERE user_id = $1 AND created_at >= $2 AND created_at < $3 \
         GROUP BY 1, 2 ORDER BY 1, 2"
    )
}

/// A summary row, on either engine.
pub(crate) fn usage_day<R>(row: &R) -> Result<UsageDay, sqlx::Error>
where
    R: sqlx::Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> NaiveDate: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    Ok(UsageDay {
        day: row.try_get("day")?,
        model: row.try_get("model")?,
        calls: row.try_get("calls")?,
        tokens_in: row.try_get("tokens_in")?,
        tokens_out: row.try_get("tokens_out")?,
        cost_micros: row.try_get("cost_micros")?,
    })
}

/// A quota row, on either engine.
pub(crate) fn quota_status<R>(row: &R) -> Result<QuotaStatus, sqlx::Error>
where
    R: sqlx::Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    Ok(QuotaStatus {
        tier: crate::rules::tier(row.try_get("tier")?)?,
        messages_today: row.try_get("messages_today")?,
        tokens_this_month: row.try_get("tokens_this_month")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: Uuid, at: &str, tokens_in: i64) -> UsageRow {
        UsageRow {
            user_id: user,
            api_key_id: None,
            endpoint: "/v1/chat".into(),
            model: "m".into(),
            tokens_in,
            tokens_out: 1,
            cost_micros: 0,
            at: at.parse().unwrap(),
        }
    }

    #[test]
    fn steps_sum_per_user_and_month_earliest_first() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let rows = [
            row(a, "2026-02-01T00:00:00Z", 10),
            row(a, "2026-01-31T23:59:59Z", 5),
            row(b, "2026-02-14T12:00:00Z", 1),
            row(a, "2026-02-28T23:59:59Z", 20),
        ];
        let steps = counter_steps(&rows);
        let jan = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let feb = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[0],
            CounterStep {
                user_id: a,
                month: jan,
                tokens: 6
            }
        );
        assert!(steps[1..].iter().all(|s| s.month == feb));
        let a_feb = steps.iter().find(|s| s.user_id == a && s.month == feb);
        assert_eq!(a_feb.unwrap().tokens, 32);
    }
}
