//! The conversations contract: a user's conversations and their messages, as the platform's web
//! and desktop clients keep them in sync.
//!
//! Every method takes the calling user and touches only that user's rows: another user's
//! conversation is indistinguishable from one that does not exist ([`StoreError::NotFound`]). On
//! PostgreSQL row-level security enforces the same inside the database. Each appended message gets
//! the next per-conversation sequence number `seq`, assigned under the conversation's row lock in
//! the transaction that commits it, so `seq` order is commit order within a conversation.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

/// `conversations`, as the platform's clients know the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    pub id: Uuid,
    pub user_id: Uuid,
    pub session_key: String,
    pub title: String,
    pub message_count: i64,
    /// The `seq` of the newest message (0 when there is none).
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_message_at: Option<DateTime<Utc>>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
    System,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<MessageRole> {
        match s {
            "user" => Some(MessageRole::User),
            "assistant" => Some(MessageRole::Assistant),
            "system" => Some(MessageRole::System),
            _ => None,
        }
    }
}

/// `session_messages`, plus the conversation it belongs to and its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub session_key: String,
    pub seq: i64,
    pub role: MessageRole,
    pub content: String,
    pub client_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub is_pending: bool,
    pub synced_at: Option<DateTime<Utc>>,
    pub metadata: serde_json::Value,
}

/// What creating a conversation stores.
#[derive(Debug, Clone)]
pub struct NewConversation {
    /// `None`: the conversation's id, as text, becomes its key.
    pub session_key: Option<String>,
    pub title: String,
}

/// What appending a message stores.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub role: MessageRole,
    pub content: String,
    /// A retried append with the same `client_id` returns the original message.
    pub client_id: Option<String>,
    pub metadata: serde_json::Value,
}

/// The user's daily message allowance for an append, checked in the transaction that counts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DailyLimit {
    /// The UTC day the append counts towards.
    pub day: NaiveDate,
    /// At most this many messages that day; `None`: no limit.
    pub limit: Option<i64>,
}

/// What an append led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Stored with the next `seq`; `messages_today` is the user's count including it.
    New {
        message: Message,
        messages_today: i64,
    },
    /// A message with the same `client_id` was already stored: it, unchanged.
    Existing(Message),
    /// The user already sent `used` messages today, `limit` allowed: nothing stored.
    OverDailyLimit { used: i64, limit: i64 },
}

/// Where a page of a user's conversations starts: strictly older than this one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConversationCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// Which messages of a conversation to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MessagePage {
    /// The newest `limit` messages with `seq < before` (all, without `before`).
    Latest { before: Option<i64>, limit: i64 },
    /// The oldest `limit` messages with `seq > since`: what a client that saw `since` missed.
    Since { since: i64, limit: i64 },
}

#[async_trait]
pub trait Conversations: Send + Sync {
    /// Create a conversation, or return the user's existing one with the same session key
    /// (`false`: it existed). Counts it in the user's profile. [`StoreError::NotFound`] for an
    /// unknown or deleted user.
    async fn create_conversation(
        &self,
        user_id: Uuid,
        new: &NewConversation,
    ) -> Result<(Conversation, bool), StoreError>;

    /// The user's conversations, newest first, strictly after `cursor`.
    async fn conversations(
        &self,
        user_id: Uuid,
        cursor: Option<ConversationCursor>,
        limit: i64,
    ) -> Result<Vec<Conversation>, StoreError>;

    /// One of the user's conversations.
    async fn conversation(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Conversation>, StoreError>;

    /// Rename one of the user's conversations. [`StoreError::NotFound`] when it is not theirs.
    async fn rename_conversation(
        &self,
        user_id: Uuid,
        id: Uuid,
        title: &str,
    ) -> Result<Conversation, StoreError>;

    /// Delete one of the user's conversations and its messages in one transaction, and uncount it.
    /// [`StoreError::NotFound`] when it is not theirs.
    async fn delete_conversation(&self, user_id: Uuid, id: Uuid) -> Result<(), StoreError>;

    /// Append a message with the conversation's next `seq`, count it in the conversation and the
    /// user's profile, all in one transaction. [`StoreError::NotFound`] when the conversation is
    /// not theirs.
    async fn append_message(
        &self,
        user_id: Uuid,
        conversation_id: Uuid,
        new: &NewMessage,
        daily: DailyLimit,
    ) -> Result<Appended, StoreError>;

    /// A page of one conversation's messages in ascending `seq` order. [`StoreError::NotFound`]
    /// when the conversation is not theirs.
    async fn messages(
        &self,
        user_id: Uuid,
        conversation_id: Uuid,
        page: MessagePage,
    ) -> Result<Vec<Message>, StoreError>;
}
