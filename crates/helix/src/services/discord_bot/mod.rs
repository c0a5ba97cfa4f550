//! discord-bot: Discord's interactions endpoint and slash commands, and the seven logging
//! channels ([`logs`]: what the platform does, posted to Discord channel webhooks through the
//! job queue).
//!
//! Data flow of an interaction (`POST /discord/interactions`, see [`interactions`]): verify the
//! Ed25519 signature over the raw body ([`signature`]) → read the interaction → PING answers
//! PONG; a slash command runs ([`commands`]) for at most the answer budget → its message goes back
//! at once, or Discord gets "thinking…" (deferred) and the message follows later by editing the
//! original response through Discord's API ([`followup`]) → the interaction is recorded in
//! `discord_interactions`, once per interaction id. Nothing is stored, and no command runs, for a
//! request that is not signed by Discord.

pub mod commands;
pub mod followup;
pub mod interactions;
pub mod logs;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::{Extension, Router};
use ed25519_dalek::VerifyingKey;

use crate::config::ServiceEnv;
use crate::platform::catalog::{Need, ServiceSpec, VarSpec, JWT_SECRET_VAR};
use crate::services::ServiceState;
use crate::shared::jobs::QUEUE_BACKEND_VAR;

/// The application's public key (hex, 32 bytes), as the developer portal shows it.
pub const PUBLIC_KEY_VAR: &str = "DISCORD_PUBLIC_KEY";
/// Discord's API, where deferred answers are sent.
pub const API_URL_VAR: &str = "DISCORD_API_URL";
pub const DEFAULT_API_URL: &str = "https://discord.com/api/v10";
/// How long a command may take before the answer is deferred, in milliseconds.
pub const ANSWER_BUDGET_VAR: &str = "HELIX_DISCORD_ANSWER_BUDGET_MS";
pub const DEFAULT_ANSWER_BUDGET_MS: i64 = 2_000;
/// Where service-integration answers: `/status` reports what it sees.
pub const SERVICE_INTEGRATION_URL_VAR: &str = "SERVICE_INTEGRATION_URL";

/// What the interactions endpoint needs, read once at start.
pub struct Bot {
    /// `None`: DISCORD_PUBLIC_KEY is unset (or not a point of the curve); every request gets 503.
    pub key: Option<VerifyingKey>,
    /// Discord's API base, without a trailing slash.
    pub api_url: String,
    /// How long a command may run before the answer is deferred.
    pub budget: Duration,
    /// service-integration's base URL, without a trailing slash.
    pub platform_url: Option<String>,
    /// For service-integration and Discord's API; every request has a timeout.
    pub client: reqwest::Client,
}

impl Bot {
    pub fn from_env(env: &ServiceEnv) -> Self {
        let key = env.hex_key(PUBLIC_KEY_VAR, 32).and_then(|raw| {
            let bytes: [u8; 32] = raw.try_into().ok()?;
            let key = VerifyingKey::from_bytes(&bytes);
            if key.is_err() {
                tracing::error!(
                    "DISCORD_PUBLIC_KEY is not an Ed25519 public key; interactions get 503"
                );
            }
            key.ok()
        });
        let trimmed = |var: &str| {
            env.get(var)
                .map(|v| v.trim().trim_end_matches('/').to_owned())
                .filter(|v| !v.is_empty())
        };
        let budget = env
            .integer(ANSWER_BUDGET_VAR)
            .unwrap_or(DEFAULT_ANSWER_BUDGET_MS)
            .max(0) as u64;
        Self {
            key,
            api_url: trimmed(API_URL_VAR).unwrap_or_else(|| DEFAULT_API_URL.to_owned()),
            budget: Duration::from_millis(budget),
            platform_url: trimmed(SERVICE_INTEGRATION_URL_VAR),
            client: reqwest::Client::builder()
                .timeout(followup::TIMEOUT)
                .build()
                .expect("a client with a timeout builds"),
        }
    }
}

/// The routes discord-bot adds.
pub fn routes(state: &ServiceState) -> Router<ServiceState> {
    let bot = Arc::new(Bot::from_env(state.env()));
    Router::new()
        .route("/discord/interactions", post(interactions::receive))
        .layer(Extension(bot))
        .layer(Extension(logs::Logger::new(state)))
}

/// Start what discord-bot runs beside its routes: the logging producers (heartbeat, health
/// alerts, agent coordination), as tasks that end when the service stops.
pub fn start(state: &ServiceState) -> anyhow::Result<()> {
    logs::producers::start(state);
    Ok(())
}

/// Register the `discord.post` job kind (it runs where the webhook variables are set: the worker).
pub fn register(
    registry: &mut helix_jobs::Registry,
    store: Arc<dyn helix_store::Store>,
    env: &ServiceEnv,
) {
    registry.register(logs::Post::new(store, env));
}

/// What discord-bot declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "discord-bot",
    port: Some(8001),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Discord interactions endpoint, slash commands and the seven logging channels.",
    postgres_why: "reads users and writes discord_interactions (shares backend-api's schema); \
                   the queue of log messages with HELIX_QUEUE_BACKEND=database",
    redis_why: "caches Discord bot state; follows service:health and agent:coordination for the \
                logging channels; the queue of log messages (the default with REDIS_URL)",
    vars: &[
        JWT_SECRET_VAR,
        VarSpec::optional(
            "DISCORD_BOT_TOKEN",
            "bot token for Discord's API; set on this service only",
        )
        .secret()
        .scoped(),
        VarSpec::optional("DISCORD_CLIENT_ID", "the Discord application id"),
        VarSpec::optional(
            PUBLIC_KEY_VAR,
            "the application's public key (64 hex): verifies the Ed25519 signature of incoming \
             interactions; unset: /discord/interactions answers 503",
        )
        .hex_key(32),
        VarSpec::optional(
            API_URL_VAR,
            "Discord's API, where deferred answers are sent as follow-ups",
        )
        .fallback(DEFAULT_API_URL),
        VarSpec::optional(
            ANSWER_BUDGET_VAR,
            "milliseconds a slash command may take before its answer is deferred and sent as a \
             follow-up (Discord waits 3 s at most; default 2000)",
        )
        .integer(0, 2_500),
        VarSpec::optional(
            SERVICE_INTEGRATION_URL_VAR,
            "where service-integration answers; /status reports its view of every service",
        )
        .fallback("http://127.0.0.1:${{service-integration.PORT}}"),
        VarSpec::optional(
            "DISCORD_GUILD_ID",
            "registers slash commands on one guild instead of globally",
        ),
        VarSpec::optional("CLAUDE_API_URL", "where claude-api answers")
            .fallback("http://127.0.0.1:${{claude-api.PORT}}"),
        VarSpec::optional(
            logs::producers::HEARTBEAT_VAR,
            "seconds between heartbeats posted to DISCORD_WEBHOOK_HEARTBEAT (default 60)",
        )
        .integer(1, 86_400),
        QUEUE_BACKEND_VAR,
        logs::WEBHOOK_COMMANDS,
        logs::WEBHOOK_API,
        logs::WEBHOOK_HEARTBEAT,
        logs::WEBHOOK_FILE_CHANGES,
        logs::WEBHOOK_CONSCIOUSNESS,
        logs::WEBHOOK_ALERTS,
        logs::WEBHOOK_HASH_CHAIN,
    ],
    api_ready: true,
};
