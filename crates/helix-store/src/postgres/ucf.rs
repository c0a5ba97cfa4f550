//! [`UcfMetrics`] on PostgreSQL: a batch is one `INSERT … SELECT FROM UNNEST(…)` of column arrays.

use async_trait::async_trait;

use super::PgStore;
use crate::ucf::{self, HistoryQuery, UcfMetrics, UcfPoint, UcfSample, SAMPLE_COLUMNS};
use crate::StoreError;

#[async_trait]
impl UcfMetrics for PgStore {
    async fn record_samples(&self, samples: &[UcfSample]) -> Result<(), StoreError> {
        let column = |f: fn(&UcfSample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
        let sql = format!(
            "INSERT INTO ucf_samples ({SAMPLE_COLUMNS}) SELECT * FROM UNNEST($1::text[], \
             $2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], \
             $8::float8[], $9::int8[])"
        );
        sqlx::query(&sql)
            .bind(
                samples
                    .iter()
                    .map(|s| s.agent_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(column(|s| s.consciousness_level))
            .bind(column(|s| s.harmony))
            .bind(column(|s| s.resilience))
            .bind(column(|s| s.prana))
            .bind(column(|s| s.drishti))
            .bind(column(|s| s.klesha))
            .bind(column(|s| s.zoom))
            .bind(samples.iter().map(|s| s.at_us).collect::<Vec<_>>())
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    async fn latest_sample(&self, agent_id: Option<&str>) -> Result<Option<UcfSample>, StoreError> {
        sqlx::query(&ucf::latest_sql("$1::text"))
            .bind(agent_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?
            .as_ref()
            .map(ucf::sample)
            .transpose()
            .map_err(self.err())
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<UcfPoint>, StoreError> {
        let rows = sqlx::query(&ucf::history_sql("$3::text"))
            .bind(query.from_us)
            .bind(query.to_us)
            .bind(&query.agent_id)
            .bind(query.step_us)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(ucf::point)
            .collect::<Result<_, _>>()
            .map_err(self.err())
    }
}
