//! The slash commands and the messages they answer with, in Discord's message JSON (`content`,
//! `embeds`, `flags`; mentions never ping anyone):
//!
//! - `/status`: every service's health as service-integration sees it (its `/health`).
//! - `/ucf`: the latest UCF gauges (the bus's latest sample, else the database's).
//! - `/agents`: the agent roster and each agent's state.
//! - `/health`: this bot's own health, as its `/health` reports it.
//!
//! A command never fails the interaction: what it could not read is said in the message.

use std::sync::Arc;

use helix_store::agents::{Agent, AgentStatus};
use serde_json::{json, Map, Value};

use super::Bot;
use crate::services::backend_api::ucf::{latest_on_bus, Sample};
use crate::services::{common, ServiceState};

/// Commands this bot answers, as registered in the developer portal.
pub const COMMANDS: &[(&str, &str)] = &[
    ("status", "Health of every Helix service"),
    ("ucf", "The latest UCF gauges"),
    ("agents", "The agent roster and each agent's state"),
    ("health", "This bot's own health"),
];
/// Flags of a message only its invoker sees.
pub const EPHEMERAL: u64 = 64;
/// Lines of a list in one embed; Discord caps a description at 4096 characters.
const MAX_LINES: usize = 25;

const GREEN: u32 = 0x2ecc71;
const ORANGE: u32 = 0xe67e22;
const RED: u32 = 0xe74c3c;
const BLURPLE: u32 = 0x5865f2;

pub fn is_known(name: &str) -> bool {
    COMMANDS.iter().any(|(known, _)| *known == name)
}

/// The answer to a command this bot does not have: seen by its invoker only.
pub fn unknown(name: &str) -> Value {
    let known: Vec<String> = COMMANDS.iter().map(|(n, _)| format!("`/{n}`")).collect();
    let shown: String = name.chars().take(32).collect();
    json!({
        "content": format!("Unknown command `/{shown}`. Try {}.", known.join(", ")),
        "flags": EPHEMERAL,
        "allowed_mentions": {"parse": []},
    })
}

/// Run a known command; the message data it answers with.
pub async fn run(state: ServiceState, bot: Arc<Bot>, name: String) -> Value {
    match name.as_str() {
        "status" => status(&bot).await,
        "ucf" => ucf(&state).await,
        "agents" => agents(&state).await,
        "health" => health(&state).await,
        other => unknown(other),
    }
}

fn embed(embed: Value) -> Value {
    json!({"embeds": [embed], "allowed_mentions": {"parse": []}})
}

fn text(content: &str) -> Value {
    json!({"content": content, "allowed_mentions": {"parse": []}})
}

fn dot(status: &str) -> &'static str {
    match status {
        "up" | "healthy" | "connected" | "active" => "🟢",
        "busy" | "degraded" => "🟠",
        "unknown" | "inactive" => "⚪",
        _ => "🔴",
    }
}

async fn status(bot: &Bot) -> Value {
    let Some(base) = &bot.platform_url else {
        return text("SERVICE_INTEGRATION_URL is not set: this bot cannot see the platform.");
    };
    let answer = match bot.client.get(format!("{base}/health")).send().await {
        Ok(answer) => answer.json::<Value>().await.ok(),
        Err(error) => {
            tracing::warn!(error = %error.without_url(), "service-integration did not answer");
            None
        }
    };
    let Some(board) = answer.filter(|b| b["services"].is_object()) else {
        return embed(json!({
            "title": "Platform status unknown",
            "description": "service-integration did not answer; it watches every service.",
            "color": RED,
        }));
    };
    let platform = board["platform"].as_str().unwrap_or("unknown");
    let services = board["services"].as_object().cloned().unwrap_or_default();
    let up = services.values().filter(|s| *s == "up").count();
    let fields: Vec<Value> = services
        .iter()
        .take(MAX_LINES)
        .map(|(name, status)| {
            let status = status.as_str().unwrap_or("unknown");
            json!({"name": name, "value": format!("{} {status}", dot(status)), "inline": true})
        })
        .collect();
    embed(json!({
        "title": format!("{} Platform {platform}", dot(platform)),
        "description": format!("{up} of {} services up, as service-integration sees them.", services.len()),
        "color": if platform == "healthy" { GREEN } else { ORANGE },
        "fields": fields,
    }))
}

async fn ucf(state: &ServiceState) -> Value {
    let mut latest = match state.bus() {
        Some(bus) => latest_on_bus(&**bus, None).await,
        None => None,
    };
    if latest.is_none() {
        if let Some(store) = state.store() {
            match store.ucf().latest_sample(None).await {
                Ok(found) => latest = found.map(Sample::from),
                Err(error) => {
                    tracing::warn!(%error, "reading the latest UCF sample");
                    return text("Could not read the UCF gauges right now.");
                }
            }
        }
    }
    let Some(sample) = latest.and_then(|s| serde_json::to_value(s).ok()) else {
        return text("No UCF sample has been recorded yet.");
    };
    let gauges = sample["ucf_metrics"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let fields: Vec<Value> = [
        "harmony",
        "resilience",
        "prana",
        "drishti",
        "klesha",
        "zoom",
    ]
    .iter()
    .map(|name| {
        let value = gauges
            .get(*name)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        json!({"name": name, "value": format!("{value:.2}"), "inline": true})
    })
    .collect();
    let level = sample["consciousness_level"].as_f64().unwrap_or(f64::NAN);
    let mut card = Map::new();
    card.insert("title".into(), json!("UCF gauges"));
    card.insert(
        "description".into(),
        json!(format!(
            "Consciousness level **{level:.2}**, reported by `{}`.",
            sample["agent_id"].as_str().unwrap_or("?")
        )),
    );
    card.insert("color".into(), json!(BLURPLE));
    card.insert("fields".into(), json!(fields));
    if let Some(at) = sample.get("timestamp").filter(|t| t.is_string()) {
        card.insert("timestamp".into(), at.clone());
    }
    embed(Value::Object(card))
}

async fn agents(state: &ServiceState) -> Value {
    let Some(store) = state.store() else {
        return text("This bot has no database to read the roster from.");
    };
    let roster = match store.agents().agents().await {
        Ok(roster) => roster,
        Err(error) => {
            tracing::warn!(%error, "reading the agent roster");
            return text("Could not read the agent roster right now.");
        }
    };
    if roster.is_empty() {
        return text("No agent is registered yet (`helix agents seed` adds the default roster).");
    }
    let count = |status: AgentStatus| roster.iter().filter(|a| a.status == status).count();
    let mut lines: Vec<String> = roster.iter().take(MAX_LINES).map(line).collect();
    if roster.len() > MAX_LINES {
        lines.push(format!("… and {} more", roster.len() - MAX_LINES));
    }
    embed(json!({
        "title": format!("Agents ({})", roster.len()),
        "description": lines.join("\n"),
        "color": BLURPLE,
        "footer": {"text": format!(
            "{} active · {} busy · {} inactive",
            count(AgentStatus::Active), count(AgentStatus::Busy), count(AgentStatus::Inactive)
        )},
    }))
}

fn line(agent: &Agent) -> String {
    let status = agent.status.as_str();
    let seen = match agent.last_heartbeat {
        // Discord renders <t:…:R> as "3 minutes ago" in the reader's language.
        Some(at) => format!(", last heartbeat <t:{}:R>", at.timestamp()),
        None => ", no heartbeat yet".into(),
    };
    let name: String = agent.name.chars().take(64).collect();
    format!(
        "{} **{name}** (`{}`): {status}{seen}",
        dot(status),
        agent.agent_id
    )
}

async fn health(state: &ServiceState) -> Value {
    let (healthy, body) = common::checks(state).await;
    let status = if healthy { "healthy" } else { "unhealthy" };
    let mut fields = Vec::new();
    for dependency in ["database", "redis"] {
        if let Some(value) = body.get(dependency).and_then(Value::as_str) {
            let backend = body["backends"][dependency].as_str().unwrap_or("?");
            fields.push(json!({
                "name": dependency,
                "value": format!("{} {value} ({backend})", dot(value)),
                "inline": true,
            }));
        }
    }
    fields.push(json!({"name": "version", "value": env!("CARGO_PKG_VERSION"), "inline": true}));
    embed(json!({
        "title": format!("{} {} {status}", dot(if healthy { "healthy" } else { "down" }), state.spec().name),
        "color": if healthy { GREEN } else { RED },
        "fields": fields,
    }))
}
