//! [`Conversations`] on SQLite. There is no row-level security here: every query filters on the
//! calling user, and the isolation tests that run on both engines prove it. Appends run in one
//! `BEGIN IMMEDIATE` transaction (SQLite's single writer), so the next `seq` read is the one
//! committed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::fmt::Hyphenated;
use uuid::Uuid;

use super::accounts::{is_live_user, uuid};
use super::SqliteStore;
use crate::conversations::{
    Appended, Conversation, ConversationCursor, Conversations, DailyLimit, Message, MessagePage,
    NewConversation, NewMessage,
};
use crate::{rules, StoreError};

const CONVERSATION_COLUMNS: &str = "id, user_id, session_key, title, message_count, last_seq, \
     created_at, updated_at, last_message_at";

const MESSAGE_COLUMNS: &str = "id, conversation_id, user_id, session_key, seq, role, content, \
     client_id, created_at, is_pending, synced_at, metadata";

fn conversation(row: &SqliteRow) -> Result<Conversation, sqlx::Error> {
    Ok(Conversation {
        id: uuid(row, "id")?,
        user_id: uuid(row, "user_id")?,
        session_key: row.try_get("session_key")?,
        title: row.try_get("title")?,
        message_count: row.try_get("message_count")?,
        last_seq: row.try_get("last_seq")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_message_at: row.try_get("last_message_at")?,
    })
}

fn message(row: &SqliteRow) -> Result<Message, sqlx::Error> {
    let metadata: String = row.try_get("metadata")?;
    Ok(Message {
        id: uuid(row, "id")?,
        conversation_id: uuid(row, "conversation_id")?,
        user_id: uuid(row, "user_id")?,
        session_key: row.try_get("session_key")?,
        seq: row.try_get("seq")?,
        role: rules::message_role(row.try_get("role")?)?,
        content: row.try_get("content")?,
        client_id: row.try_get("client_id")?,
        created_at: row.try_get("created_at")?,
        is_pending: row.try_get("is_pending")?,
        synced_at: row.try_get("synced_at")?,
        metadata: serde_json::from_str(&metadata).map_err(|e| sqlx::Error::Decode(e.into()))?,
    })
}

async fn count_conversation(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    delta: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE user_profiles SET conversation_count = conversation_count + $2 WHERE user_id = $1",
    )
    .bind(user_id.hyphenated())
    .bind(delta)
    .execute(conn)
    .await?;
    Ok(())
}

async fn find_by_key(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    key: &str,
) -> Result<Option<Conversation>, sqlx::Error> {
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 AND session_key = $2"
    );
    sqlx::query(&sql)
        .bind(user_id.hyphenated())
        .bind(key)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(conversation)
        .transpose()
}

/// The user's message with this client id in the conversation. Why the user too: another user
/// naming this conversation and a client id must learn nothing (the append then answers 404).
async fn by_client_id(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    conversation_id: Uuid,
    client_id: &str,
) -> Result<Option<Message>, sqlx::Error> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM session_messages \
         WHERE conversation_id = $1 AND client_id = $2 AND user_id = $3"
    );
    sqlx::query(&sql)
        .bind(conversation_id.hyphenated())
        .bind(client_id)
        .bind(user_id.hyphenated())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(message)
        .transpose()
}

/// Today's count so far: `messages_today` counts only while `messages_day` is today.
/// Today's count so far (for the answer to an append over the limit).
async fn used_today(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    day: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CASE WHEN messages_day >= $2 THEN messages_today ELSE 0 END \
         FROM user_profiles WHERE user_id = $1",
    )
    .bind(user_id.hyphenated())
    .bind(day)
    .fetch_one(conn)
    .await
}

/// Take the conversation's next `seq` (and its session key), if it is the user's.
async fn next_seq(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    conversation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE conversations SET last_seq = last_seq + 1, message_count = message_count + 1, \
         updated_at = $3, last_message_at = $3 WHERE id = $1 AND user_id = $2 \
         RETURNING last_seq, session_key",
    )
    .bind(conversation_id.hyphenated())
    .bind(user_id.hyphenated())
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Count the message in the profile, unless today's count has reached `limit`: then `None`.
/// An instance whose clock is still on yesterday counts into the later day already stored
/// (`>=`, `MAX`) rather than moving the day back, which would start the count again.
async fn count_message(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    daily: DailyLimit,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE user_profiles SET \
         messages_today = CASE WHEN messages_day >= $2 THEN messages_today + 1 ELSE 1 END, \
         messages_day = MAX(COALESCE(messages_day, $2), $2), message_count = message_count + 1 \
         WHERE user_id = $1 AND ($3 IS NULL OR \
               CASE WHEN messages_day >= $2 THEN messages_today ELSE 0 END < $3) \
         RETURNING messages_today",
    )
    .bind(user_id.hyphenated())
    .bind(daily.day.to_string())
    .bind(daily.limit)
    .fetch_optional(conn)
    .await
}

/// Store the message under the `seq` taken.
async fn insert_message(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    conversation_id: Uuid,
    new: &NewMessage,
    (seq, session_key): (i64, String),
    now: DateTime<Utc>,
) -> Result<Message, sqlx::Error> {
    let sql = format!(
        "INSERT INTO session_messages (id, conversation_id, user_id, session_key, seq, role, \
         content, client_id, created_at, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         RETURNING {MESSAGE_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(Uuid::now_v7().hyphenated())
        .bind(conversation_id.hyphenated())
        .bind(user_id.hyphenated())
        .bind(session_key)
        .bind(seq)
        .bind(new.role.as_str())
        .bind(&new.content)
        .bind(&new.client_id)
        .bind(now)
        .bind(new.metadata.to_string())
        .fetch_one(conn)
        .await?;
    message(&row)
}

#[async_trait]
impl Conversations for SqliteStore {
    async fn create_conversation(
        &self,
        user_id: Uuid,
        new: &NewConversation,
    ) -> Result<(Conversation, bool), StoreError> {
        let mut tx = self.write().await?;
        if !is_live_user(&mut tx, user_id).await.map_err(self.err())? {
            return Err(StoreError::NotFound);
        }
        let id = Uuid::now_v7();
        let key = new.session_key.clone().unwrap_or_else(|| id.to_string());
        if let Some(existing) = find_by_key(&mut tx, user_id, &key)
            .await
            .map_err(self.err())?
        {
            tx.commit().await.map_err(self.err())?;
            return Ok((existing, false));
        }
        let now = rules::now();
        let sql = format!(
            "INSERT INTO conversations (id, user_id, session_key, title, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.hyphenated())
            .bind(user_id.hyphenated())
            .bind(&key)
            .bind(&new.title)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(self.err())?;
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
        // Times are stored as fixed-width RFC 3339 text in UTC, so text order is time order.
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 \
             AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id.hyphenated())
            .bind(cursor.map(|c| c.created_at))
            .bind(cursor.map(|c| Hyphenated::from_uuid(c.id)))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
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
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2"
        );
        sqlx::query(&sql)
            .bind(id.hyphenated())
            .bind(user_id.hyphenated())
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?
            .as_ref()
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
        let sql = format!(
            "UPDATE conversations SET title = $3, updated_at = $4 WHERE id = $1 AND user_id = $2 \
             RETURNING {CONVERSATION_COLUMNS}"
        );
        let mut tx = self.write().await?;
        let row = sqlx::query(&sql)
            .bind(id.hyphenated())
            .bind(user_id.hyphenated())
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
        let mut tx = self.write().await?;
        let deleted = sqlx::query("DELETE FROM conversations WHERE id = $1 AND user_id = $2")
            .bind(id.hyphenated())
            .bind(user_id.hyphenated())
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
        // As few statements as can be (each is a hop to SQLite's thread): taking the seq checks
        // ownership, counting checks the allowance; leaving early drops the transaction, which
        // rolls both back.
        let mut tx = self.write().await?;
        if let Some(client_id) = &new.client_id {
            let found = by_client_id(&mut tx, user_id, conversation_id, client_id)
                .await
                .map_err(self.err())?;
            if let Some(existing) = found {
                return Ok(Appended::Existing(existing));
            }
        }
        let now = rules::now();
        let Some(seq) = next_seq(&mut tx, user_id, conversation_id, now)
            .await
            .map_err(self.err())?
        else {
            return Err(StoreError::NotFound);
        };
        let Some(messages_today) = count_message(&mut tx, user_id, daily)
            .await
            .map_err(self.err())?
        else {
            let used = used_today(&mut tx, user_id, &daily.day.to_string())
                .await
                .map_err(self.err())?;
            let limit = daily.limit.unwrap_or_default();
            return Ok(Appended::OverDailyLimit { used, limit });
        };
        let message = insert_message(&mut tx, user_id, conversation_id, new, seq, now)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok(Appended::New {
            message,
            messages_today,
        })
    }

    async fn messages(
        &self,
        user_id: Uuid,
        conversation_id: Uuid,
        page: MessagePage,
    ) -> Result<Vec<Message>, StoreError> {
        let filter = "conversation_id = $1 AND user_id = $2";
        let sql = match page {
            MessagePage::Since { .. } => format!(
                "SELECT {MESSAGE_COLUMNS} FROM session_messages WHERE {filter} AND seq > $3 \
                 ORDER BY seq LIMIT $4"
            ),
            MessagePage::Latest { .. } => format!(
                "SELECT * FROM (SELECT {MESSAGE_COLUMNS} FROM session_messages WHERE {filter} \
                 AND seq < $3 ORDER BY seq DESC LIMIT $4) ORDER BY seq"
            ),
        };
        let (bound, limit) = match page {
            MessagePage::Since { since, limit } => (since, limit),
            MessagePage::Latest { before, limit } => (before.unwrap_or(i64::MAX), limit),
        };
        let rows = sqlx::query(&sql)
            .bind(conversation_id.hyphenated())
            .bind(user_id.hyphenated())
            .bind(bound)
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
