//! discord-bot: Discord interactions endpoint, slash commands and the seven logging channels.
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, JWT_SECRET_VAR};

/// What discord-bot declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "discord-bot",
    port: Some(8001),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Discord interactions endpoint, slash commands and the seven logging channels.",
    postgres_why: "reads users and writes discord_interactions (shares backend-api's schema)",
    redis_why: "caches Discord bot state",
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
            "DISCORD_PUBLIC_KEY",
            "verifies the Ed25519 signature of incoming interactions",
        ),
        VarSpec::optional(
            "DISCORD_GUILD_ID",
            "registers slash commands on one guild instead of globally",
        ),
        VarSpec::optional("CLAUDE_API_URL", "where claude-api answers")
            .fallback("http://127.0.0.1:${{claude-api.PORT}}"),
        VarSpec::optional("DISCORD_WEBHOOK_COMMANDS", "webhook of #helix-commands").secret(),
        VarSpec::optional("DISCORD_WEBHOOK_API", "webhook of #helix-api").secret(),
        VarSpec::optional("DISCORD_WEBHOOK_HEARTBEAT", "webhook of #helix-heartbeat").secret(),
        VarSpec::optional(
            "DISCORD_WEBHOOK_FILE_CHANGES",
            "webhook of #helix-file-changes",
        )
        .secret(),
        VarSpec::optional(
            "DISCORD_WEBHOOK_CONSCIOUSNESS",
            "webhook of #helix-consciousness",
        )
        .secret(),
        VarSpec::optional("DISCORD_WEBHOOK_ALERTS", "webhook of #helix-alerts").secret(),
        VarSpec::optional("DISCORD_WEBHOOK_HASH_CHAIN", "webhook of #helix-hash-chain").secret(),
    ],
    api_ready: false,
};
