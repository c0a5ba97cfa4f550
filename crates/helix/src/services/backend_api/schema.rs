//! What backend-api answers, as typed bodies. They are the API's contract (and the source of the
//! OpenAPI document), kept apart from the storage models so a column can change without changing
//! what clients see.

use chrono::{DateTime, Utc};
use helix_store::accounts::{ApiKey, Profile, User};
use helix_store::audit::AuditEntry;
use helix_store::conversations::{Conversation, Message};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: Uuid,
    pub email: String,
    /// `user`, `admin` or `creator`.
    #[schema(example = "user")]
    pub role: String,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            role: u.role.as_str().to_owned(),
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileOut {
    pub user_id: Uuid,
    pub display_name: String,
    pub avatar_url: Option<String>,
    /// 0.0 to 1.0; the creator has 1.0.
    pub trust_level: f64,
    pub conversation_count: i64,
    pub message_count: i64,
    pub messages_today: i64,
    pub onboarding_step: i32,
    pub updated_at: DateTime<Utc>,
}

impl From<Profile> for ProfileOut {
    fn from(p: Profile) -> Self {
        Self {
            user_id: p.user_id,
            display_name: p.display_name,
            avatar_url: p.avatar_url,
            trust_level: p.trust_level,
            conversation_count: p.conversation_count,
            message_count: p.message_count,
            messages_today: p.messages_today,
            onboarding_step: p.onboarding_step,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: UserOut,
    pub profile: ProfileOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileBody {
    pub profile: ProfileOut,
}

/// The OAuth2 token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT (HS256) for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque; single use: each refresh returns a new one.
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedUp {
    pub user: UserOut,
    pub profile: ProfileOut,
    #[serde(flatten)]
    pub tokens: TokenResponse,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    #[schema(example = "hx_AbC123")]
    pub prefix: String,
    #[schema(example = json!(["read", "write"]))]
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for KeyOut {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key: the only time `key` is ever shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyCreated {
    #[serde(flatten)]
    pub meta: KeyOut,
    #[schema(example = "hx_…")]
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryOut {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: Option<Uuid>,
    #[schema(example = "login_failed")]
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            ip: e.ip,
            detail: e.detail,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryOut>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next_after: Option<i64>,
}

/// Every error: `{"error": {"code", "message", "fields"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "invalid_fields")]
    pub code: String,
    pub message: String,
    /// For 422: each offending field and what is wrong with it.
    #[schema(value_type = Option<Object>)]
    pub fields: Option<serde_json::Value>,
}

/// A conversation, as `conversations` holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationOut {
    pub id: Uuid,
    pub session_key: String,
    pub title: String,
    pub message_count: i64,
    /// The `seq` of the newest message (0: none yet).
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_message_at: Option<DateTime<Utc>>,
}

impl From<Conversation> for ConversationOut {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id,
            session_key: c.session_key,
            title: c.title,
            message_count: c.message_count,
            last_seq: c.last_seq,
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_message_at: c.last_message_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    /// Newest first.
    pub conversations: Vec<ConversationOut>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A message, as `session_messages` holds it, with its per-conversation sequence number.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageOut {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub session_key: String,
    /// 1, 2, 3… in commit order within the conversation.
    pub seq: i64,
    /// `user`, `assistant` or `system`.
    #[schema(example = "user")]
    pub role: String,
    pub content: String,
    pub client_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub is_pending: bool,
    pub synced_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            user_id: m.user_id,
            session_key: m.session_key,
            seq: m.seq,
            role: m.role.as_str().to_owned(),
            content: m.content,
            client_id: m.client_id,
            created_at: m.created_at,
            is_pending: m.is_pending,
            synced_at: m.synced_at,
            metadata: m.metadata,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePageOut {
    /// Ascending `seq`.
    pub messages: Vec<MessageOut>,
    /// More older messages exist: pass this as `before`.
    pub next_before: Option<i64>,
    /// More newer messages exist (with `since`): pass this as `since`.
    pub next_since: Option<i64>,
}
