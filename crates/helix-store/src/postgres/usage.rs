//! [`Usage`] on PostgreSQL: a batch is one `INSERT … SELECT FROM UNNEST(…)` of column arrays plus
//! one counter `UPDATE` per user and month, in one transaction. Counter updates run in (month,
//! user) order, so two instances flushing batches for the same users lock rows in the same order
//! and cannot deadlock.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::PgStore;
use crate::usage::{self, QuotaStatus, Usage, UsageDay, UsageRow};
use crate::{rules, StoreError};

#[async_trait]
impl Usage for PgStore {
    async fn record_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&UsageRow) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        let text =
            |f: fn(&UsageRow) -> &str| rows.iter().map(|r| f(r).to_owned()).collect::<Vec<_>>();
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        sqlx::query(
            "INSERT INTO usage_tracking (id, user_id, api_key_id, endpoint, model, tokens_in, \
             tokens_out, cost_micros, created_at) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], \
             $3::uuid[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::int8[], \
             $9::timestamptz[])",
        )
        .bind(rows.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.api_key_id).collect::<Vec<_>>())
        .bind(text(|r| &r.endpoint))
        .bind(text(|r| &r.model))
        .bind(column(|r| r.tokens_in))
        .bind(column(|r| r.tokens_out))
        .bind(column(|r| r.cost_micros))
        .bind(rows.iter().map(|r| rules::exact(r.at)).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        for step in usage::counter_steps(rows) {
            sqlx::query(usage::COUNT_TOKENS)
                .bind(step.user_id)
                .bind(step.month)
                .bind(step.tokens)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        }
        tx.commit().await.map_err(self.err())
    }

    async fn usage_summary(
        &self,
        user_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageDay>, StoreError> {
        let rows = sqlx::query(&usage::summary_sql("(created_at AT TIME ZONE 'UTC')::date"))
            .bind(user_id)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(usage::usage_day)
            .collect::<Result<_, _>>()
            .map_err(self.err())
    }

    async fn quota_status(
        &self,
        user_id: Uuid,
        day: NaiveDate,
    ) -> Result<Option<QuotaStatus>, StoreError> {
        sqlx::query(usage::QUOTA_STATUS)
            .bind(user_id)
            .bind(day)
            .bind(usage::month_start(day))
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?
            .as_ref()
            .map(usage::quota_status)
            .transpose()
            .map_err(self.err())
    }
}
