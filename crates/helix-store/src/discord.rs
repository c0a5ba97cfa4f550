//! The Discord contract: every verified interaction discord-bot received (a ping, a slash
//! command), kept as a log of who asked what, where, and how fast the answer went out.
//!
//! An interaction is recorded once: Discord's `interaction_id` is unique, so a second delivery of
//! the same interaction changes nothing ([`DiscordLog::record_interaction`] answers `false`).
//! Nothing secret is stored: no interaction token, no message content.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::StoreError;

/// An interaction to record. Discord's ids (snowflakes) are kept as the text Discord sends.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInteraction {
    pub interaction_id: String,
    /// Discord's interaction type: 1 ping, 2 application command, …
    pub kind: i16,
    /// The command's name, for an application command.
    pub command: Option<String>,
    /// Who invoked it (`member.user.id` in a guild, `user.id` in a direct message).
    pub user_id: Option<String>,
    pub guild_id: Option<String>,
    pub channel_id: Option<String>,
    /// Whether the first answer was deferred ("thinking…") and the result sent as a follow-up.
    pub deferred: bool,
    /// How long the first answer took, in milliseconds.
    pub latency_ms: i64,
    pub created_at: DateTime<Utc>,
}

/// A recorded interaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interaction {
    /// The row's own id, in the order interactions were recorded.
    pub id: i64,
    pub interaction_id: String,
    pub kind: i16,
    pub command: Option<String>,
    pub user_id: Option<String>,
    pub guild_id: Option<String>,
    pub channel_id: Option<String>,
    pub deferred: bool,
    pub latency_ms: i64,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait DiscordLog: Send + Sync {
    /// Record an interaction; `false` when this `interaction_id` was recorded before (nothing
    /// changes then, also when two deliveries race).
    async fn record_interaction(&self, new: &NewInteraction) -> Result<bool, StoreError>;

    /// One recorded interaction by Discord's id.
    async fn interaction(&self, interaction_id: &str) -> Result<Option<Interaction>, StoreError>;

    /// The newest `limit` interactions, newest first.
    async fn recent_interactions(&self, limit: u32) -> Result<Vec<Interaction>, StoreError>;
}

// The engine-neutral half: the statements both dialects run verbatim (`$n` placeholders work on
// both) and the decoding of a row.

pub(crate) const COLUMNS: &str = "id, interaction_id, type, command, user_id, guild_id, \
     channel_id, deferred, latency_ms, created_at";

/// Parameters: interaction id, type, command, user, guild, channel, deferred, latency, created.
/// A taken interaction id inserts nothing (and returns no row).
pub(crate) const INSERT_SQL: &str = "INSERT INTO discord_interactions (interaction_id, type, \
     command, user_id, guild_id, channel_id, deferred, latency_ms, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (interaction_id) DO NOTHING";

pub(crate) fn by_id_sql() -> String {
    format!("SELECT {COLUMNS} FROM discord_interactions WHERE interaction_id = $1")
}

pub(crate) fn recent_sql() -> String {
    format!("SELECT {COLUMNS} FROM discord_interactions ORDER BY id DESC LIMIT $1")
}

/// An interaction row, on either engine.
pub(crate) fn interaction<R>(row: &R) -> Result<Interaction, sqlx::Error>
where
    R: Row,
    for<'r> i16: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(Interaction {
        id: row.try_get("id")?,
        interaction_id: row.try_get("interaction_id")?,
        kind: row.try_get("type")?,
        command: row.try_get("command")?,
        user_id: row.try_get("user_id")?,
        guild_id: row.try_get("guild_id")?,
        channel_id: row.try_get("channel_id")?,
        deferred: row.try_get("deferred")?,
        latency_ms: row.try_get("latency_ms")?,
        created_at: row.try_get("created_at")?,
    })
}
