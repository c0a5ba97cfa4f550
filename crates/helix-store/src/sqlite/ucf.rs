//! [`UcfMetrics`] on SQLite: a batch is one multi-row `INSERT` in one transaction.

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::SqliteStore;
use crate::ucf::{self, HistoryQuery, UcfMetrics, UcfPoint, UcfSample, SAMPLE_COLUMNS};
use crate::StoreError;

/// Rows per statement: 9 parameters each stays under SQLite's parameter limit.
const ROWS_PER_INSERT: usize = 500;

#[async_trait]
impl UcfMetrics for SqliteStore {
    async fn record_samples(&self, samples: &[UcfSample]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for chunk in samples.chunks(ROWS_PER_INSERT) {
            let mut insert =
                QueryBuilder::new(format!("INSERT INTO ucf_samples ({SAMPLE_COLUMNS}) "));
            insert.push_values(chunk, |mut row, s| {
                row.push_bind(&s.agent_id)
                    .push_bind(s.consciousness_level)
                    .push_bind(s.harmony)
                    .push_bind(s.resilience)
                    .push_bind(s.prana)
                    .push_bind(s.drishti)
                    .push_bind(s.klesha)
                    .push_bind(s.zoom)
                    .push_bind(s.at_us);
            });
            insert.build().execute(&mut *tx).await.map_err(self.err())?;
        }
        tx.commit().await.map_err(self.err())
    }

    async fn latest_sample(&self, agent_id: Option<&str>) -> Result<Option<UcfSample>, StoreError> {
        sqlx::query(&ucf::latest_sql("$1"))
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
        let rows = sqlx::query(&ucf::history_sql("$3"))
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
