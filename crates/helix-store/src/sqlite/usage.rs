//! [`Usage`] on SQLite: a batch is multi-row `INSERT`s plus one counter `UPDATE` per user and month,
//! in one `BEGIN IMMEDIATE` transaction. Days are the first ten characters of the stored RFC 3339
//! UTC time, and stored times compare as text in time order.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::SqliteStore;
use crate::usage::{self, QuotaStatus, Usage, UsageDay, UsageRow};
use crate::{rules, StoreError};

/// Rows per statement: 9 parameters each stays under SQLite's parameter limit.
const ROWS_PER_INSERT: usize = 500;

#[async_trait]
impl Usage for SqliteStore {
    async fn record_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO usage_tracking (id, user_id, api_key_id, endpoint, model, tokens_in, \
                 tokens_out, cost_micros, created_at) ",
            );
            insert.push_values(chunk, |mut b, r| {
                b.push_bind(Uuid::now_v7().hyphenated())
                    .push_bind(r.user_id.hyphenated())
                    .push_bind(r.api_key_id.map(|k| k.hyphenated()))
                    .push_bind(&r.endpoint)
                    .push_bind(&r.model)
                    .push_bind(r.tokens_in)
                    .push_bind(r.tokens_out)
                    .push_bind(r.cost_micros)
                    .push_bind(rules::exact(r.at));
            });
            insert.build().execute(&mut *tx).await.map_err(self.err())?;
        }
        for step in usage::counter_steps(rows) {
            sqlx::query(usage::COUNT_TOKENS)
                .bind(step.user_id.hyphenated())
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
        let rows = sqlx::query(&usage::summary_sql("substr(created_at, 1, 10)"))
            .bind(user_id.hyphenated())
            .bind(rules::exact(from))
            .bind(rules::exact(to))
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
            .bind(user_id.hyphenated())
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
