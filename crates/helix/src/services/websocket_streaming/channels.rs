//! Channel names and who may use them.
//!
//! | channel                | subscribe                | publish                  |
//! |------------------------|--------------------------|--------------------------|
//! | `consciousness:stream` | anyone signed in         | services and admins      |
//! | `service:health`       | anyone signed in         | services and admins      |
//! | `agent:coordination`   | services and admins      | services and admins      |
//! | `conversation:<uuid>`  | its owner                | its owner                |
//! | `user:<uuid>`          | that user                | services and admins      |
//! | `agent:<agent_id>`     | that agent, services, admins | services and admins  |
//!
//! An agent key (an `agent:<agent_id>` scope) reaches its own agent channel and nothing else:
//! agent-orchestration offers tasks and sends commands there.
//! "Services and admins": an admin (or the creator) signed in, or an API key of such an account
//! with the `write` or `admin` scope (how the platform's services authenticate). Whether a
//! conversation belongs to the caller is asked of backend-api ([`Ownership`]), with the caller's
//! own credential, and remembered for a while: ownership never moves between users.

use std::time::Duration;

use reqwest::StatusCode;
use uuid::Uuid;

use crate::shared::auth::cache::TtlCache;
use crate::shared::auth::{is_agent_id, Principal, Scope};

/// Longest channel name accepted.
pub const MAX_NAME: usize = 128;

/// A channel the hub serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    Consciousness,
    ServiceHealth,
    AgentCoordination,
    Conversation(Uuid),
    User(Uuid),
    /// One agent's own channel (`agent:kael`).
    Agent(String),
}

/// Why a channel cannot be used; each becomes an error frame with this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("channel names are at most 128 characters of a-z, 0-9, ':', '-', '_' and '.'")]
    BadName,
    #[error("no such channel: expected consciousness:stream, service:health, agent:coordination, conversation:<id>, user:<id> or agent:<agent_id>")]
    Unknown,
    #[error("this channel is not yours to use")]
    Forbidden,
    #[error("cannot check who owns this conversation right now; retry shortly")]
    Unavailable,
}

impl ChannelError {
    pub fn code(self) -> &'static str {
        match self {
            ChannelError::BadName => "bad_channel",
            ChannelError::Unknown => "unknown_channel",
            ChannelError::Forbidden => "forbidden",
            ChannelError::Unavailable => "unavailable",
        }
    }
}

impl Channel {
    pub fn parse(name: &str) -> Result<Self, ChannelError> {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ":-_.".contains(c);
        if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(allowed) {
            return Err(ChannelError::BadName);
        }
        match name {
            "consciousness:stream" => return Ok(Channel::Consciousness),
            "service:health" => return Ok(Channel::ServiceHealth),
            "agent:coordination" => return Ok(Channel::AgentCoordination),
            _ => {}
        }
        let (kind, id) = name.split_once(':').ok_or(ChannelError::Unknown)?;
        if kind == "agent" {
            return is_agent_id(id)
                .then(|| Channel::Agent(id.to_owned()))
                .ok_or(ChannelError::Unknown);
        }
        // Only the canonical spelling: the name is the channel, so `conversation:<ID>` in
        // capitals or without hyphens would pass the owner check and then never hear anything.
        let id = Uuid::parse_str(id)
            .ok()
            .filter(|uuid| uuid.hyphenated().to_string() == id)
            .ok_or(ChannelError::Unknown)?;
        match kind {
            "conversation" => Ok(Channel::Conversation(id)),
            "user" => Ok(Channel::User(id)),
            _ => Err(ChannelError::Unknown),
        }
    }
}

/// Whether the caller acts for a service or as an admin.
pub fn is_service(principal: &Principal) -> bool {
    principal.role.is_admin() && principal.allows(Scope::Write)
}

/// Checks subscribe and publish rights, asking backend-api about conversations.
pub struct Ownership {
    client: reqwest::Client,
    backend_api: String,
    /// (user, conversation) → owns it.
    known: TtlCache<(Uuid, Uuid), bool>,
}

/// How long an ownership answer is reused. Ownership never changes; a deleted conversation
/// simply has no more messages.
const KNOWN_FOR: Duration = Duration::from_secs(600);
const TIMEOUT: Duration = Duration::from_secs(5);

impl Ownership {
    pub fn new(backend_api: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("a plain HTTP client builds"),
            backend_api: backend_api.trim_end_matches('/').to_owned(),
            known: TtlCache::new(KNOWN_FOR, 100_000),
        }
    }

    /// May `principal` (who presented `credential`) subscribe to `channel`?
    pub async fn may_subscribe(
        &self,
        principal: &Principal,
        credential: &str,
        channel: Channel,
    ) -> Result<(), ChannelError> {
        if let Some(agent) = principal.agent_scope() {
            let own = channel == Channel::Agent(agent.to_owned());
            return own.then_some(()).ok_or(ChannelError::Forbidden);
        }
        let allowed = match channel {
            Channel::Agent(_) => is_service(principal),
            Channel::Consciousness | Channel::ServiceHealth => principal.allows(Scope::Read),
            Channel::AgentCoordination => is_service(principal),
            Channel::User(id) => id == principal.user_id && principal.allows(Scope::Read),
            Channel::Conversation(id) => {
                principal.allows(Scope::Read) && self.owns(principal, credential, id).await?
            }
        };
        allowed.then_some(()).ok_or(ChannelError::Forbidden)
    }

    /// May `principal` publish on `channel`?
    pub async fn may_publish(
        &self,
        principal: &Principal,
        credential: &str,
        channel: Channel,
    ) -> Result<(), ChannelError> {
        if principal.agent_scope().is_some() {
            return Err(ChannelError::Forbidden);
        }
        let allowed = match channel {
            Channel::Conversation(id) => {
                principal.allows(Scope::Write) && self.owns(principal, credential, id).await?
            }
            _ => is_service(principal),
        };
        allowed.then_some(()).ok_or(ChannelError::Forbidden)
    }

    async fn owns(
        &self,
        principal: &Principal,
        credential: &str,
        conversation: Uuid,
    ) -> Result<bool, ChannelError> {
        let key = (principal.user_id, conversation);
        if let Some(known) = self.known.get(&key) {
            return Ok(known);
        }
        let url = format!("{}/api/conversations/{conversation}", self.backend_api);
        let response = self.client.get(url).bearer_auth(credential).send().await;
        let owns = match response.map(|r| r.status()) {
            Ok(StatusCode::OK) => true,
            Ok(StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED) => false,
            Ok(status) => {
                tracing::warn!(%status, "backend-api answered a conversation check unexpectedly");
                return Err(ChannelError::Unavailable);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reach backend-api to check a conversation");
                return Err(ChannelError::Unavailable);
            }
        };
        // Only a yes is remembered: a conversation created a moment after a refusal must
        // become usable at once.
        if owns {
            self.known.put(key, true);
        }
        Ok(owns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_channels_or_say_why_not() {
        let id = Uuid::now_v7();
        assert_eq!(
            Channel::parse("consciousness:stream"),
            Ok(Channel::Consciousness)
        );
        assert_eq!(
            Channel::parse(&format!("conversation:{id}")),
            Ok(Channel::Conversation(id))
        );
        assert_eq!(Channel::parse(&format!("user:{id}")), Ok(Channel::User(id)));
        assert_eq!(
            Channel::parse("agent:kael"),
            Ok(Channel::Agent("kael".into()))
        );
        assert_eq!(
            Channel::parse("agent:coordination"),
            Ok(Channel::AgentCoordination)
        );
        for bad in [
            "",
            "Conversation:x",
            "a b",
            "über",
            "x{y}",
            &"a".repeat(129),
        ] {
            assert_eq!(Channel::parse(bad), Err(ChannelError::BadName), "{bad}");
        }
        let bare = id.simple().to_string();
        for unknown in [
            "news",
            "conversation:12",
            "room:abc",
            &format!("team:{id}"),
            &format!("user:{bare}"),
        ] {
            assert_eq!(
                Channel::parse(unknown),
                Err(ChannelError::Unknown),
                "{unknown}"
            );
        }
    }
}
