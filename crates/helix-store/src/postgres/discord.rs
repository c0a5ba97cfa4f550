//! [`DiscordLog`] on PostgreSQL: the statements of `crate::discord`.

use async_trait::async_trait;

use super::PgStore;
use crate::discord::{self, DiscordLog, Interaction, NewInteraction};
use crate::StoreError;

#[async_trait]
impl DiscordLog for PgStore {
    async fn record_interaction(&self, new: &NewInteraction) -> Result<bool, StoreError> {
        let done = sqlx::query(discord::INSERT_SQL)
            .bind(&new.interaction_id)
            .bind(new.kind)
            .bind(&new.command)
            .bind(&new.user_id)
            .bind(&new.guild_id)
            .bind(&new.channel_id)
            .bind(new.deferred)
            .bind(new.latency_ms)
            .bind(new.created_at)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(done.rows_affected() == 1)
    }

    async fn interaction(&self, interaction_id: &str) -> Result<Option<Interaction>, StoreError> {
        sqlx::query(&discord::by_id_sql())
            .bind(interaction_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?
            .as_ref()
            .map(discord::interaction)
            .transpose()
            .map_err(self.err())
    }

    async fn recent_interactions(&self, limit: u32) -> Result<Vec<Interaction>, StoreError> {
        let rows = sqlx::query(&discord::recent_sql())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(discord::interaction)
            .collect::<Result<_, _>>()
            .map_err(self.err())
    }
}
