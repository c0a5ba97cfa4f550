//! [`Conversations`] on PostgreSQL. Every statement runs with `helix.user_id` set for its
//! transaction, so the row-level security policies of migration 0003 apply on top of the explicit
//! `user_id` filters. The hot paths (append, read a page) are one round trip each: the functions
//! `helix_append_message` and `helix_messages` of that migration.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row, Transaction};
use uuid::Uuid;

use super::accounts::lock_live_user;
use super::PgStore;
use crate::conversations::{
    Appended, Conversation, ConversationCursor, Conversations, DailyLimit, Message, MessagePage,
    NewConversation, NewMessage,
};
use crate::{rules, StoreError};

const CONVERSATION_COLUMNS: &str = "id, user_id, session_key, title, message_count, last_seq, \
     created_at, updated_at, last_message_at";

fn conversation(row: &PgRow) -> Result<Conversation, sqlx::Error> {
    Ok(Conversation {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        session_key: row.try_get("session_key")?,
        title: row.try_get("title")?,
        message_count: row.try_get("message_count")?,
        last_seq: row.try_get("last_seq")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_message_at: row.try_get("last_message_at")?,
    })
}

/// A `session_messages` row (as `helix_messages` returns it).
fn message(row: &PgRow) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: row.try_get("id")?,
        conversation_id: row.try_get("conversation_id")?,
        user_id: row.try_get("user_id")?,
        session_key: row.try_get("session_key")?,
        seq: row.try_get("seq")?,
        role: rules::message_role(row.try_get("role")?)?,
        content: row.try_get("content")?,
        client_id: row.try_get("client_id")?,
        created_at: row.try_get("created_at")?,
        is_pending: row.try_get("is_pending")?,
        synced_at: row.try_get("synced_at")?,
        metadata: row.try_get("metadata")?,
    })
}

/// A row of `helix_append_message` (its `o_` columns) for `new`/`existing` outcomes.
fn appended_message(
    row: &PgRow,
    user_id: Uuid,
    conversation_id: Uuid,
) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: row.try_get("o_id")?,
        conversation_id,
        user_id,
        session_key: row.try_get("o_session_key")?,
        seq: row.try_get("o_seq")?,
        role: rules::message_role(row.try_get("o_role")?)?,
        content: row.try_get("o_content")?,
        client_id: row.try_get("o_client_id")?,
        created_at: row.try_get("o_created_at")?,
        is_pending: row.try_get("o_is_pending")?,
        synced_at: row.try_get("o_synced_at")?,
        metadata: row.try_get("o_metadata")?,
    })
}

impl PgStore {
    /// A transaction in which the row-level security policies see `user_id` as the caller.
    async fn as_user(&self, user_id: Uuid) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        sqlx::query("SELECT set_config('helix.user_id', $1, true)")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(self.err())?;
        Ok(tx)
    }
}

/// Move a user's conversation count by `delta`.
async fn count_conversation(
    conn: &mut PgConnection,
    user_id: Uuid,
    delta: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE user_profiles SET conversation_count = conversation_count + $2 WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(delta)
    .execute(conn)
    .await?;
    Ok(())
}

async fn find_by_key(
    conn: &mut PgConnection,
    user_id: Uuid,
    key: &str,
) -> Result<Option<Conversation>, sqlx::Error> {
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 AND session_key = $2"
    );
    sqlx::query(&sql)
        .bind(user_id)
        .bind(key)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(conversation)
        .transpose()
}

#[async_trait]
impl Conversations for PgStore {
    async fn create_conversation(
        &self,
        user_id: Uuid,
        new: &NewConversation,
    ) -> Result<(Conversation, bool), StoreError> {
        let mut tx = self.as_user(user_id).await?;
        if !lock_live_user(&mut tx, user_id).await.map_err(self.err())? {
            return Err(StoreError::NotFound);
        }
        let id = Uuid::now_v7();
        let key = new.session_key.clone().unwrap_or_else(|| id.to_string());
        let now = rules::now();
        let sql = format!(
            "INSERT INTO conversations (id, user_id, session_key, title, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (user_id, session_key) DO NOTHING \
             RETURNING {CONVERSATION_COLUMNS}"
        );
        let inserted = sqlx::query(&sql)
            .bind(id)
            .bind(user_id)
            .bind(&key)
            .bind(&new.title)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.err())?;
        let Some(row) = inserted else {
            let existing = find_by_key(&mut tx, user_id, &key)
                .await
                .map_err(self.err())?;
            tx.commit().await.map_err(self.err())?;
            return existing.map(|c| (c, false)).ok_or(StoreError::NotFound);
        };
        let created = conversation(&row).map_err(self.err())?;
        count_conversation(&mut tx, user_id, 1)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok((created, true))
    }

    async fn conversations(
        &self,
        user_id: Uuid,
        cursor: Option<ConversationCursor>,
        limit: i64,
    ) -> Result<Vec<Conversation>, StoreError> {
        let mut tx = self.as_user(user_id).await?;
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 \
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(cursor.map(|c| c.created_at))
            .bind(cursor.map(|c| c.id))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        rows.iter()
            .map(conversation)
            .collect::<Result<_, _>>()
            .map_err(self.err())
    }

    async fn conversation(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Conversation>, StoreError> {
        let mut tx = self.as_user(user_id).await?;
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        row.as_ref()
            .map(conversation)
            .transpose()
            .map_err(self.err())
    }

    async fn rename_conversation(
        &self,
        user_id: Uuid,
        id: Uuid,
        title: &str,
    ) -> Result<Conversation, StoreError> {
        let mut tx = self.as_user(user_id).await?;
        let sql = format!(
            "UPDATE conversations SET title = $3, updated_at = $4 WHERE id = $1 AND user_id = $2 \
             RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(user_id)
            .bind(title)
            .bind(rules::now())
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.err())?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(self.err())?;
        conversation(&row).map_err(self.err())
    }

    async fn delete_conversation(&self, user_id: Uuid, id: Uuid) -> Result<(), StoreError> {
        let mut tx = self.as_user(user_id).await?;
        let deleted = sqlx::query("DELETE FROM conversations WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(self.err())?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        count_conversation(&mut tx, user_id, -1)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())
    }

    async fn append_message(
        &self,
        user_id: Uuid,
        conversation_id: Uuid,
        new: &NewMessage,
        daily: DailyLimit,
    ) -> Result<Appended, StoreError> {
        match self.try_append(user_id, conversation_id, new, daily).await {
            // A send with the same client_id committed first: this call now finds it.
            Err(e) if new.client_id.is_some() && is_client_id_race(&e) => self
                .try_append(user_id, conversation_id, new, daily)
                .await
                .map_err(self.err()),
            Err(e) => match over_daily_limit(&e) {
                Some(used) => Ok(Appended::OverDailyLimit {
                    used,
                    limit: daily.limit.unwrap_or_default(),
                }),
                None => Err(self.err()(e)),
            },
            Ok(appended) => Ok(appended),
        }
    }

    async fn messages(
        &self,
        user_id: Uuid,
        conversation_id: Uuid,
        page: MessagePage,
    ) -> Result<Vec<Message>, StoreError> {
        let (before, since, limit) = match page {
            MessagePage::Latest { before, limit } => (before, None, limit),
            MessagePage::Since { since, limit } => (None, Some(since), limit),
        };
        let rows = sqlx::query("SELECT * FROM helix_messages($1, $2, $3, $4, $5)")
            .bind(user_id)
            .bind(conversation_id)
            .bind(before)
            .bind(since)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        // Why only when empty: a page with rows proves the conversation is the caller's.
        if rows.is_empty() && self.conversation(user_id, conversation_id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        rows.iter()
            .map(message)
            .collect::<Result<_, _>>()
            .map_err(self.err())
    }
}

impl PgStore {
    /// One call of `helix_append_message` (see migration 0003).
    async fn try_append(
        &self,
        user_id: Uuid,
        conversation_id: Uuid,
        new: &NewMessage,
        daily: DailyLimit,
    ) -> Result<Appended, sqlx::Error> {
        let row = sqlx::query(
            "SELECT * FROM helix_append_message($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(user_id)
        .bind(conversation_id)
        .bind(Uuid::now_v7())
        .bind(new.role.as_str())
        .bind(&new.content)
        .bind(&new.client_id)
        .bind(&new.metadata)
        .bind(rules::now())
        .bind(daily.day)
        .bind(daily.limit)
        .fetch_one(&self.pool)
        .await?;
        let outcome: String = row.try_get("o_outcome")?;
        match outcome.as_str() {
            "new" => Ok(Appended::New {
                message: appended_message(&row, user_id, conversation_id)?,
                messages_today: row.try_get("o_used")?,
            }),
            "existing" => Ok(Appended::Existing(appended_message(
                &row,
                user_id,
                conversation_id,
            )?)),
            _ => Err(sqlx::Error::RowNotFound),
        }
    }
}

/// The daily count so far, when the function refused the append as over the limit (HX429).
fn over_daily_limit(e: &sqlx::Error) -> Option<i64> {
    let db = e.as_database_error()?;
    if db.code().as_deref() != Some("HX429") {
        return None;
    }
    let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    pg.detail()?.parse().ok()
}

fn is_client_id_race(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|db| {
        db.is_unique_violation() && db.constraint().is_some_and(|c| c.contains("client_id"))
    })
}
