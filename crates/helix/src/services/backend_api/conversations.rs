//! The caller's conversations and their messages: create, list (newest first, by cursor), get,
//! rename, delete; append and page through messages.
//!
//! Data flow of an append: validate → the store assigns the next `seq`, counts the message and
//! checks the daily allowance in one transaction → after the commit, the message is published on
//! `conversation:<id>` (with its `seq`) so the realtime service can push it to the user's other
//! clients; a client that was offline catches up with `GET …/messages?since=<seq>`. A publish that
//! fails is logged, never undone: the message is committed and `since=` still finds it.
//!
//! Another user's conversation answers 404, exactly like one that does not exist.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use helix_store::conversations::{
    Appended, ConversationCursor, DailyLimit, MessagePage, MessageRole, NewConversation, NewMessage,
};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::accounts::store;
use super::quota::{self, Quotas};
use super::recent::RecentPages;
use super::schema::{ConversationOut, ConversationPage, ErrorBody, MessageOut, MessagePageOut};
use crate::services::ServiceState;
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;

/// The variable bounding one message's content, in bytes.
pub const MAX_MESSAGE_BYTES_VAR: &str = "HELIX_MAX_MESSAGE_BYTES";
pub const DEFAULT_MAX_MESSAGE_BYTES: i64 = 32 * 1024;
const MAX_TITLE_CHARS: usize = 200;
const MAX_KEY_CHARS: usize = 128;
const MAX_METADATA_BYTES: usize = 8 * 1024;
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    /// Default: "New conversation".
    title: Option<String>,
    /// The client's key for the conversation (unique per user); creating with a key that exists
    /// returns that conversation (200) instead of a new one (201). Default: the new id.
    session_key: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameConversation {
    title: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// `user`, `assistant` or `system`.
    #[schema(value_type = String, example = "user")]
    role: MessageRole,
    content: String,
    /// The client's id for this send: a retry with the same id returns the original message.
    client_id: Option<String>,
    /// Free-form JSON object (at most 8 KiB).
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConversationQuery {
    /// At most this many (default 50, at most 200).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// At most this many (default 50, at most 200).
    limit: Option<i64>,
    /// Messages with a smaller `seq` (older pages); without `before` or `since`: the newest.
    before: Option<i64>,
    /// Messages with a larger `seq`, oldest first: what a client that has seen `since` missed.
    since: Option<i64>,
}

/// What is published on `conversation:<id>` after each append.
pub fn channel(conversation_id: Uuid) -> String {
    format!("conversation:{conversation_id}")
}

/// Start a conversation (or get the caller's conversation with the same `session_key`).
#[utoipa::path(post, path = "/api/conversations", tag = "conversations", request_body = CreateConversation, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 201, description = "Created", body = ConversationOut),
    (status = 200, description = "A conversation with this session_key existed", body = ConversationOut),
    (status = 422, description = "A field breaks a rule", body = ErrorBody),
))]
pub async fn create(
    State(state): State<ServiceState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateConversation>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::Write)?;
    let new = NewConversation {
        title: match body.title {
            Some(title) => title_of(&title)?,
            None => "New conversation".into(),
        },
        session_key: body.session_key.as_deref().map(session_key).transpose()?,
    };
    let (conversation, created) = store(&state)?
        .conversations()
        .create_conversation(principal.user_id, &new)
        .await
        .map_err(ApiError::store)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ConversationOut::from(conversation))))
}

/// The caller's conversations, newest first.
#[utoipa::path(get, path = "/api/conversations", tag = "conversations", params(ConversationQuery), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = ConversationPage),
    (status = 422, description = "A bad limit or cursor", body = ErrorBody),
))]
pub async fn list(
    State(state): State<ServiceState>,
    principal: Principal,
    query: Result<Query<ConversationQuery>, QueryRejection>,
) -> Result<Json<ConversationPage>, ApiError> {
    principal.require(Scope::Read)?;
    let Query(query) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    let limit = page_limit(query.limit)?;
    let cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let found = store(&state)?
        .conversations()
        .conversations(principal.user_id, cursor, limit)
        .await
        .map_err(ApiError::store)?;
    let next_cursor = (found.len() as i64 == limit)
        .then(|| found.last().map(|c| format_cursor(c.created_at, c.id)))
        .flatten();
    Ok(Json(ConversationPage {
        conversations: found.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One of the caller's conversations.
#[utoipa::path(get, path = "/api/conversations/{id}", tag = "conversations", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = ConversationOut),
    (status = 404, description = "No such conversation of the caller's", body = ErrorBody),
))]
pub async fn get(
    State(state): State<ServiceState>,
    principal: Principal,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<ConversationOut>, ApiError> {
    principal.require(Scope::Read)?;
    let id = path_id(id)?;
    store(&state)?
        .conversations()
        .conversation(principal.user_id, id)
        .await
        .map_err(ApiError::store)?
        .map(|c| Json(c.into()))
        .ok_or_else(ApiError::not_found)
}

/// Rename one of the caller's conversations.
#[utoipa::path(patch, path = "/api/conversations/{id}", tag = "conversations", request_body = RenameConversation, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = ConversationOut),
    (status = 404, description = "No such conversation of the caller's", body = ErrorBody),
))]
pub async fn rename(
    State(state): State<ServiceState>,
    principal: Principal,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(body): ApiJson<RenameConversation>,
) -> Result<Json<ConversationOut>, ApiError> {
    principal.require(Scope::Write)?;
    let id = path_id(id)?;
    let title = title_of(&body.title)?;
    let renamed = store(&state)?
        .conversations()
        .rename_conversation(principal.user_id, id, &title)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(renamed.into()))
}

/// Delete one of the caller's conversations and all its messages.
#[utoipa::path(delete, path = "/api/conversations/{id}", tag = "conversations", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 204, description = "Deleted with its messages"),
    (status = 404, description = "No such conversation of the caller's", body = ErrorBody),
))]
pub async fn delete(
    State(state): State<ServiceState>,
    Extension(recent): Extension<Arc<RecentPages>>,
    principal: Principal,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Write)?;
    let id = path_id(id)?;
    store(&state)?
        .conversations()
        .delete_conversation(principal.user_id, id)
        .await
        .map_err(ApiError::store)?;
    recent.change(id, state.bus());
    Ok(StatusCode::NO_CONTENT)
}

/// Append a message; it gets the conversation's next `seq` and is published on
/// `conversation:<id>`. Idempotent on `client_id`.
#[utoipa::path(post, path = "/api/conversations/{id}/messages", tag = "conversations", request_body = SendMessage, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 201, description = "Stored and published", body = MessageOut),
    (status = 200, description = "A message with this client_id was already stored: the original", body = MessageOut),
    (status = 404, description = "No such conversation of the caller's", body = ErrorBody),
    (status = 413, description = "content over the configured size", body = ErrorBody),
    (status = 422, description = "Empty content, unknown role, …", body = ErrorBody),
    (status = 429, description = "Daily message quota used up", body = ErrorBody),
))]
pub async fn append(
    State(state): State<ServiceState>,
    Extension(recent): Extension<Arc<RecentPages>>,
    Extension(quotas): Extension<Arc<Quotas>>,
    principal: Principal,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(body): ApiJson<SendMessage>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::Write)?;
    let id = path_id(id)?;
    let new = new_message(&state, body)?;
    let daily = DailyLimit {
        day: Utc::now().date_naive(),
        limit: quotas.messages_per_day(&state, principal.user_id).await?,
    };
    let appended = store(&state)?
        .conversations()
        .append_message(principal.user_id, id, &new, daily)
        .await
        .map_err(ApiError::store)?;
    match appended {
        Appended::New { message, .. } => {
            let out = MessageOut::from(message);
            let body = to_json(&out)?;
            recent.change(id, state.bus());
            publish(&state, &out, &body).await;
            Ok(json_response(StatusCode::CREATED, body))
        }
        Appended::Existing(message) => {
            let body = to_json(&MessageOut::from(message))?;
            Ok(json_response(StatusCode::OK, body))
        }
        Appended::OverDailyLimit { used, limit } => Err(quota::exceeded(
            "messages_per_day",
            used,
            limit,
            quota::next_day(Utc::now()),
        )),
    }
}

/// A page of a conversation's messages, ascending `seq`.
#[utoipa::path(get, path = "/api/conversations/{id}/messages", tag = "conversations", params(MessageQuery), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = MessagePageOut),
    (status = 404, description = "No such conversation of the caller's", body = ErrorBody),
    (status = 422, description = "A bad limit, or both before and since", body = ErrorBody),
))]
pub async fn messages(
    State(state): State<ServiceState>,
    Extension(recent): Extension<Arc<RecentPages>>,
    principal: Principal,
    id: Result<Path<Uuid>, PathRejection>,
    query: Result<Query<MessageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let id = path_id(id)?;
    let Query(query) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    let limit = page_limit(query.limit)?;
    let page = match (query.before, query.since) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "since",
                "give either before or since, not both",
            ))
        }
        (before, None) => MessagePage::Latest { before, limit },
        (None, Some(since)) => MessagePage::Since {
            since: since.max(0),
            limit,
        },
    };
    // Only the newest page is cached: it is what opening a conversation reads.
    let newest = matches!(page, MessagePage::Latest { before: None, .. });
    if let Some(bus) = state.bus().filter(|_| newest) {
        recent.follow(bus);
        if let Some(hit) = recent.get(id, principal.user_id, limit) {
            return Ok(json_response(StatusCode::OK, hit));
        }
    }
    let ticket = recent.ticket().filter(|_| newest);
    let body = to_json(&read_page(&state, principal.user_id, id, page, limit).await?)?;
    if let Some(ticket) = ticket {
        recent.put(id, principal.user_id, limit, ticket, body.clone());
    }
    Ok(json_response(StatusCode::OK, body))
}

async fn read_page(
    state: &ServiceState,
    user_id: Uuid,
    id: Uuid,
    page: MessagePage,
    limit: i64,
) -> Result<MessagePageOut, ApiError> {
    let found = store(state)?
        .conversations()
        .messages(user_id, id, page)
        .await
        .map_err(ApiError::store)?;
    let full = found.len() as i64 == limit;
    let (next_before, next_since) = match page {
        MessagePage::Latest { .. } => {
            let first = found.first().map(|m| m.seq).filter(|&s| full && s > 1);
            (first, None)
        }
        MessagePage::Since { .. } => (None, found.last().map(|m| m.seq).filter(|_| full)),
    };
    Ok(MessagePageOut {
        messages: found.into_iter().map(Into::into).collect(),
        next_before,
        next_since,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(ApiError::internal)
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// Publish a committed message for the realtime service; `body` is the message's JSON, as
/// answered to the sender, so it is serialised once.
async fn publish(state: &ServiceState, message: &MessageOut, body: &[u8]) {
    let Some(bus) = state.bus() else {
        return;
    };
    let mut event = format!(
        r#"{{"type":"message.created","conversation_id":"{}","seq":{},"message":"#,
        message.conversation_id, message.seq
    )
    .into_bytes();
    event.extend_from_slice(body);
    event.push(b'}');
    let payload = Bytes::from(event);
    if let Err(error) = bus
        .append(
            &channel(message.conversation_id),
            payload,
            &helix_bus::Retention::default(),
        )
        .await
    {
        tracing::warn!(conversation = %message.conversation_id, seq = message.seq, %error,
            "publishing a committed message failed; clients catch up with since=");
    }
}

fn new_message(state: &ServiceState, body: SendMessage) -> Result<NewMessage, ApiError> {
    let max = state
        .env()
        .integer(MAX_MESSAGE_BYTES_VAR)
        .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
    if body.content.len() as i64 > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_large",
            format!(
                "content is {} bytes; at most {max} are allowed",
                body.content.len()
            ),
        ));
    }
    if body.content.trim().is_empty() {
        return Err(ApiError::unprocessable("content", "must not be empty"));
    }
    let metadata = match body.metadata {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(map)) => Value::Object(map),
        Some(_) => return Err(ApiError::unprocessable("metadata", "must be a JSON object")),
    };
    if metadata.to_string().len() > MAX_METADATA_BYTES {
        return Err(ApiError::unprocessable("metadata", "must be at most 8 KiB"));
    }
    let client_id = body
        .client_id
        .as_deref()
        .map(|c| bounded_text("client_id", c, MAX_KEY_CHARS))
        .transpose()?;
    Ok(NewMessage {
        role: body.role,
        content: body.content,
        client_id,
        metadata,
    })
}

fn path_id(id: Result<Path<Uuid>, PathRejection>) -> Result<Uuid, ApiError> {
    // A malformed id names nothing that exists: the same 404 as any unknown id.
    id.map(|Path(id)| id).map_err(|_| ApiError::not_found())
}

fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::unprocessable("limit", "must be 1 to 200")),
    }
}

fn title_of(raw: &str) -> Result<String, ApiError> {
    bounded_text("title", raw.trim(), MAX_TITLE_CHARS)
}

fn session_key(raw: &str) -> Result<String, ApiError> {
    bounded_text("session_key", raw, MAX_KEY_CHARS)
}

/// 1 to `max` characters, no control characters.
fn bounded_text(field: &str, raw: &str, max: usize) -> Result<String, ApiError> {
    let len = raw.chars().count();
    if len == 0 || len > max {
        return Err(ApiError::unprocessable(
            field,
            &format!("must be 1 to {max} characters"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            field,
            "must not contain control characters",
        ));
    }
    Ok(raw.to_owned())
}

/// `<microseconds since the epoch>_<id>`: where the next page of conversations starts.
fn format_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", created_at.timestamp_micros(), id.simple())
}

fn parse_cursor(raw: &str) -> Result<ConversationCursor, ApiError> {
    let bad = || ApiError::unprocessable("cursor", "not a cursor this API returned");
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok(ConversationCursor {
        created_at: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
        id: Uuid::parse_str(id).map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        let cursor = parse_cursor(&format_cursor(at, id)).unwrap();
        assert_eq!((cursor.created_at, cursor.id), (at, id));
        for bad in ["", "x", "12_", "_abc", "abc_12", "1_not-a-uuid"] {
            assert_eq!(parse_cursor(bad).unwrap_err().status, 422, "{bad}");
        }
    }
}
