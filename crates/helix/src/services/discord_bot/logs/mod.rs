//! Channel logging: what happens on the platform, posted to seven Discord channel webhooks
//! (`DISCORD_WEBHOOK_COMMANDS`, `_API`, `_HEARTBEAT`, `_FILE_CHANGES`, `_CONSCIOUSNESS`,
//! `_ALERTS`, `_HASH_CHAIN`; an unset one is a channel that is not logged).
//!
//! Data flow: a producer ([`producers`]: the heartbeat, `service:health`, `agent:coordination`;
//! the interactions endpoint for slash commands) builds a [`Message`] and hands it to the
//! [`Logger`] → the logger scrubs every text field of secrets (`shared::redact::scrub`), cuts
//! each field to Discord's limits, and enqueues one `discord.post` job naming the channel (never
//! the URL, which is a secret and stays in the environment) → a worker runs the job ([`post`]):
//! `POST {webhook_url}?wait=true`, waiting out exhausted rate-limit buckets ([`limiter`]) and
//! 429s, disabling a channel whose webhook answers 404.

pub mod limiter;
pub mod post;
pub mod producers;

use std::collections::BTreeSet;
use std::time::Duration;

use helix_jobs::{EnqueueOptions, JobId, Jobs, OnDuplicate, Unique};
use serde::{Deserialize, Serialize};

use crate::config::ServiceEnv;
use crate::platform::catalog::VarSpec;
use crate::services::ServiceState;
use crate::shared::redact;

pub use post::{Post, PostPayload};

/// One logging channel. Payloads name it in snake case (`file_changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Commands,
    Api,
    Heartbeat,
    FileChanges,
    Consciousness,
    Alerts,
    HashChain,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::Commands,
        Channel::Api,
        Channel::Heartbeat,
        Channel::FileChanges,
        Channel::Consciousness,
        Channel::Alerts,
        Channel::HashChain,
    ];

    /// The variable holding the channel's webhook URL.
    pub fn var(self) -> &'static str {
        self.spec().name
    }

    pub fn spec(self) -> VarSpec {
        match self {
            Channel::Commands => WEBHOOK_COMMANDS,
            Channel::Api => WEBHOOK_API,
            Channel::Heartbeat => WEBHOOK_HEARTBEAT,
            Channel::FileChanges => WEBHOOK_FILE_CHANGES,
            Channel::Consciousness => WEBHOOK_CONSCIOUSNESS,
            Channel::Alerts => WEBHOOK_ALERTS,
            Channel::HashChain => WEBHOOK_HASH_CHAIN,
        }
    }

    /// The name payloads and log lines use.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Commands => "commands",
            Channel::Api => "api",
            Channel::Heartbeat => "heartbeat",
            Channel::FileChanges => "file_changes",
            Channel::Consciousness => "consciousness",
            Channel::Alerts => "alerts",
            Channel::HashChain => "hash_chain",
        }
    }

    /// The channels whose webhook `env` sets (non-empty).
    pub fn configured(env: &ServiceEnv) -> BTreeSet<Channel> {
        Channel::ALL
            .into_iter()
            .filter(|c| env.get(c.var()).is_some_and(|v| !v.trim().is_empty()))
            .collect()
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// The seven webhooks, declared by discord-bot (which decides what to log) and by worker (which
// posts): both read them.
pub const WEBHOOK_COMMANDS: VarSpec = VarSpec::optional(
    "DISCORD_WEBHOOK_COMMANDS",
    "webhook URL of #helix-commands: every slash command handled",
)
.secret();
pub const WEBHOOK_API: VarSpec = VarSpec::optional(
    "DISCORD_WEBHOOK_API",
    "webhook URL of #helix-api (no producer yet; a hook for API call logs)",
)
.secret();
pub const WEBHOOK_HEARTBEAT: VarSpec = VarSpec::optional(
    "DISCORD_WEBHOOK_HEARTBEAT",
    "webhook URL of #helix-heartbeat: discord-bot's heartbeat (HELIX_DISCORD_HEARTBEAT_SECS)",
)
.secret();
pub const WEBHOOK_FILE_CHANGES: VarSpec = VarSpec::optional(
    "DISCORD_WEBHOOK_FILE_CHANGES",
    "webhook URL of #helix-file-changes (no producer yet; a hook for file change logs)",
)
.secret();
pub const WEBHOOK_CONSCIOUSNESS: VarSpec = VarSpec::optional(
    "DISCORD_WEBHOOK_CONSCIOUSNESS",
    "webhook URL of #helix-consciousness: agent:coordination events, one line each",
)
.secret();
pub const WEBHOOK_ALERTS: VarSpec = VarSpec::optional(
    "DISCORD_WEBHOOK_ALERTS",
    "webhook URL of #helix-alerts: a service going down on service:health",
)
.secret();
pub const WEBHOOK_HASH_CHAIN: VarSpec = VarSpec::optional(
    "DISCORD_WEBHOOK_HASH_CHAIN",
    "webhook URL of #helix-hash-chain (no producer yet; a hook for audit checkpoints)",
)
.secret();

/// Discord's limits (characters), applied when a message is logged.
pub const MAX_CONTENT: usize = 2_000;
const MAX_TITLE: usize = 256;
const MAX_DESCRIPTION: usize = 4_096;
const MAX_FIELD_NAME: usize = 256;
const MAX_FIELD_VALUE: usize = 1_024;
const MAX_FIELDS: usize = 25;
const MAX_EMBEDS: usize = 10;

/// Embed colours.
pub const GREEN: u32 = 0x2e_cc_71;
pub const RED: u32 = 0xe7_4c_3c;
pub const BLUE: u32 = 0x34_98_db;

/// A message as Discord's webhook takes it: content and/or embeds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeds: Vec<Embed>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// ISO 8601, shown by Discord in the reader's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub inline: bool,
}

impl Message {
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: Some(content.into()),
            embeds: Vec::new(),
        }
    }

    pub fn embed(embed: Embed) -> Self {
        Self {
            content: None,
            embeds: vec![embed],
        }
    }

    /// Every text field scrubbed of secrets and cut to Discord's limits (an ellipsis marks a
    /// cut); embeds and fields past Discord's counts are dropped.
    pub fn cleaned(mut self) -> Self {
        self.content = self.content.map(|c| clean(&c, MAX_CONTENT));
        self.embeds.truncate(MAX_EMBEDS);
        for embed in &mut self.embeds {
            embed.title = embed.title.take().map(|t| clean(&t, MAX_TITLE));
            embed.description = embed.description.take().map(|d| clean(&d, MAX_DESCRIPTION));
            embed.timestamp = embed.timestamp.take().map(|t| clean(&t, 64));
            embed.fields.truncate(MAX_FIELDS);
            for field in &mut embed.fields {
                field.name = clean(&field.name, MAX_FIELD_NAME);
                field.value = clean(&field.value, MAX_FIELD_VALUE);
            }
        }
        self
    }

    /// Whether there is anything to post (Discord refuses an empty message).
    pub fn is_empty(&self) -> bool {
        self.content.as_deref().is_none_or(str::is_empty) && self.embeds.is_empty()
    }

    /// The JSON body of `POST {webhook}?wait=true`; nobody is ever pinged.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(self).expect("a message serialises");
        body["allowed_mentions"] = serde_json::json!({"parse": []});
        body
    }
}

/// Scrub `text` of secrets, then keep at most `max` characters, the last one an ellipsis when cut.
pub fn clean(text: &str, max: usize) -> String {
    let scrubbed = redact::scrub(text);
    if scrubbed.chars().count() <= max {
        return scrubbed.into_owned();
    }
    let mut out: String = scrubbed.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// How long a message may wait in the queue (attempts in all: retries after 5xx, network errors,
/// 429s and exhausted buckets).
pub const MAX_ATTEMPTS: u32 = 12;
/// The queue `discord.post` jobs go to; a small concurrency keeps within Discord's limits.
pub const QUEUE: &str = "discord";
/// How long a key given to [`Logger::log`] keeps a second message with it out.
const UNIQUE_WINDOW: Duration = Duration::from_secs(3600);

/// Hands messages to the queue: the hook every producer calls. Cheap to clone.
#[derive(Clone, Default)]
pub struct Logger {
    jobs: Option<Jobs>,
    /// Channels with a webhook in this service's environment; messages for others are not
    /// enqueued at all.
    on: BTreeSet<Channel>,
}

impl Logger {
    pub fn new(state: &ServiceState) -> Self {
        Self {
            jobs: state.jobs().cloned(),
            on: Channel::configured(state.env()),
        }
    }

    pub fn is_on(&self, channel: Channel) -> bool {
        self.jobs.is_some() && self.on.contains(&channel)
    }

    /// Queue `message` for `channel`, scrubbed and cut to Discord's limits. With `key`, a
    /// message with the same key for the same channel within an hour is queued once (several
    /// instances logging one event). The job's id, or `None` when the channel is not logged or
    /// the queue refused (logged).
    pub async fn log(
        &self,
        channel: Channel,
        message: Message,
        key: Option<&str>,
    ) -> Option<JobId> {
        if !self.is_on(channel) {
            return None;
        }
        let jobs = self.jobs.as_ref()?;
        let message = message.cleaned();
        if message.is_empty() {
            return None;
        }
        let options = EnqueueOptions {
            max_attempts: Some(MAX_ATTEMPTS),
            timeout: Some(post::TIMEOUT * 2),
            unique: key.map(|k| {
                let key = format!("{}:{channel}:{k}", Post::NAME_PREFIX);
                (
                    Unique {
                        key,
                        window: UNIQUE_WINDOW,
                    },
                    OnDuplicate::Merge,
                )
            }),
            ..EnqueueOptions::default()
        };
        let payload = PostPayload { channel, message };
        match jobs.enqueue::<Post>(&payload, options).await {
            Ok(enqueued) => Some(enqueued.id),
            Err(error) => {
                tracing::warn!(%channel, %error, "could not queue a Discord log message");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_content_is_cut_with_an_ellipsis() {
        let message = Message::text("é".repeat(2_500)).cleaned();
        let content = message.content.unwrap();
        assert_eq!(content.chars().count(), MAX_CONTENT);
        assert!(content.ends_with('…'));
        assert_eq!(clean("short", 10), "short");
    }

    #[test]
    fn every_text_field_is_scrubbed() {
        redact::register("planted-log-secret-77");
        let message = Message {
            content: Some("a planted-log-secret-77 b".into()),
            embeds: vec![Embed {
                title: Some("planted-log-secret-77".into()),
                description: Some("Bearer abc.def".into()),
                fields: vec![Field {
                    name: "planted-log-secret-77".into(),
                    value: "postgres://u:pw-planted-9@h/db".into(),
                    inline: false,
                }],
                ..Embed::default()
            }],
        }
        .cleaned();
        let text = message.body().to_string();
        for planted in ["planted-log-secret-77", "abc.def", "pw-planted-9"] {
            assert!(!text.contains(planted), "{text}");
        }
    }

    #[test]
    fn the_body_pings_nobody_and_names_the_channel_in_snake_case() {
        let body = Message::text("hi").body();
        assert_eq!(
            body,
            serde_json::json!({"content": "hi", "allowed_mentions": {"parse": []}})
        );
        let payload = serde_json::to_value(PostPayload {
            channel: Channel::FileChanges,
            message: Message::text("x"),
        })
        .unwrap();
        assert_eq!(payload["channel"], "file_changes");
    }
}
