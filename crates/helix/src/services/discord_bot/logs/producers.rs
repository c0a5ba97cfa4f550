//! What discord-bot logs on its own, as tasks of the service that end when it stops:
//!
//! - **heartbeat** every `HELIX_DISCORD_HEARTBEAT_SECS` (60) → `heartbeat`: the bot is alive,
//!   its database and Redis connected or not, its version and uptime. One message per interval
//!   whatever the number of instances (the interval number is the unique key).
//! - **`service:health`** → `alerts`: a service service-integration sees going `down`, with the
//!   reason. Recoveries and first checks are not posted.
//! - **`agent:coordination`** → `consciousness`: each event as one line (agent registered,
//!   updated, removed, its status; a task offered, claimed, completed…). The event's offset in the
//!   channel's history is the unique key, so several instances post it once.
//!
//! Slash commands are logged by the interactions endpoint itself (→ `commands`).

use std::time::{Duration, Instant};

use helix_bus::{Envelope, Event};
use serde_json::Value;

use super::{Channel, Embed, Field, Logger, Message, BLUE, GREEN, RED};
use crate::services::ServiceState;

/// Seconds between heartbeats.
pub const HEARTBEAT_VAR: &str = "HELIX_DISCORD_HEARTBEAT_SECS";
pub const DEFAULT_HEARTBEAT_SECS: i64 = 60;

/// Start every producer whose channel is logged.
pub fn start(state: &ServiceState) {
    let logger = Logger::new(state);
    if logger.is_on(Channel::Heartbeat) {
        let every = state
            .env()
            .integer(HEARTBEAT_VAR)
            .unwrap_or(DEFAULT_HEARTBEAT_SECS)
            .max(1) as u64;
        // Why a tracked task: it posts until the service stops, and the service waits for it.
        state.tasks().spawn(heartbeat(
            state.clone(),
            logger.clone(),
            Duration::from_secs(every),
        ));
    }
    let Some(bus) = state.bus() else { return };
    if logger.is_on(Channel::Alerts) {
        let channel = crate::services::service_integration::health::CHANNEL;
        state.tasks().spawn(listen(
            state.clone(),
            bus.clone(),
            channel,
            logger.clone(),
            Channel::Alerts,
            alert,
        ));
    }
    if logger.is_on(Channel::Consciousness) {
        let channel = crate::services::agent_orchestration::CHANNEL;
        state.tasks().spawn(listen(
            state.clone(),
            bus.clone(),
            channel,
            logger,
            Channel::Consciousness,
            coordination,
        ));
    }
}

async fn heartbeat(state: ServiceState, logger: Logger, every: Duration) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.stopping().cancelled() => return,
            _ = tick.tick() => {}
        }
        let (healthy, checks) = crate::services::common::checks(&state).await;
        let mut fields: Vec<Field> = checks
            .iter()
            .map(|(name, v)| Field {
                name: name.clone(),
                value: v.as_str().unwrap_or_default().to_owned(),
                inline: true,
            })
            .collect();
        fields.push(Field {
            name: "uptime".into(),
            value: format!("{} s", started.elapsed().as_secs()),
            inline: true,
        });
        fields.push(Field {
            name: "version".into(),
            value: env!("CARGO_PKG_VERSION").into(),
            inline: true,
        });
        let now = chrono::Utc::now();
        let message = Message::embed(Embed {
            title: Some("💓 discord-bot heartbeat".into()),
            description: Some(if healthy { "healthy" } else { "degraded" }.into()),
            color: Some(if healthy { GREEN } else { RED }),
            fields,
            timestamp: Some(now.to_rfc3339()),
        });
        let slot = now.timestamp() / every.as_secs().max(1) as i64;
        logger
            .log(Channel::Heartbeat, message, Some(&slot.to_string()))
            .await;
    }
}

/// Turns one bus event into a message, or `None` when it is not worth posting.
type Render = fn(&Value) -> Option<Message>;

/// Post what `render` makes of every event on `bus_channel`, until the service stops.
async fn listen(
    state: ServiceState,
    bus: std::sync::Arc<dyn helix_bus::Bus>,
    bus_channel: &'static str,
    logger: Logger,
    channel: Channel,
    render: Render,
) {
    let mut events = match bus.subscribe(bus_channel).await {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(%error, bus_channel, "cannot follow a channel for Discord logging");
            return;
        }
    };
    loop {
        let event = tokio::select! {
            () = state.stopping().cancelled() => return,
            event = events.recv() => event,
        };
        let message = match event {
            Some(Event::Message(m)) => m,
            Some(Event::Lagged { skipped }) => {
                tracing::warn!(
                    skipped,
                    bus_channel,
                    "Discord logging fell behind; events not posted"
                );
                continue;
            }
            Some(Event::Resubscribed) => continue,
            None => return,
        };
        // Written through the history (an envelope with an offset), or a plain publish.
        let (data, key) = match Envelope::parse(&message.payload) {
            Some(e) => (e.data, Some(format!("{}:{}", e.epoch, e.offset))),
            None => (message.payload, None),
        };
        let Ok(value) = serde_json::from_slice::<Value>(&data) else {
            continue;
        };
        if let Some(text) = render(&value) {
            logger.log(channel, text, key.as_deref()).await;
        }
    }
}

/// A service gone down: an alert. Anything else on `service:health`: nothing.
pub fn alert(event: &Value) -> Option<Message> {
    if event["status"] != "down" {
        return None;
    }
    let service = event["service"].as_str().unwrap_or("a service");
    let mut fields = Vec::new();
    if let Some(error) = event["error"].as_str() {
        fields.push(Field {
            name: "reason".into(),
            value: error.to_owned(),
            inline: false,
        });
    }
    if let Some(url) = event["url"].as_str() {
        fields.push(Field {
            name: "checked at".into(),
            value: format!("{url}/health"),
            inline: false,
        });
    }
    Some(Message::embed(Embed {
        title: Some(format!("🔴 {service} is down")),
        description: Some("service-integration's health check failed".into()),
        color: Some(RED),
        fields,
        timestamp: event["since"].as_str().map(str::to_owned),
    }))
}

/// One `agent:coordination` event as one line.
pub fn coordination(event: &Value) -> Option<Message> {
    let kind = event["type"].as_str()?;
    let agent = event["agent_id"]
        .as_str()
        .or_else(|| event["task"]["agent_id"].as_str())
        .unwrap_or("?");
    let line = match kind {
        "agent.registered" => format!("🤖 agent `{agent}` registered"),
        "agent.removed" => format!("🤖 agent `{agent}` removed"),
        "agent.updated" | "agent.status" => format!(
            "🤖 agent `{agent}` is {}",
            event["status"].as_str().unwrap_or("updated")
        ),
        task if task.starts_with("task.") => {
            let what = event["task"]["task_type"].as_str().unwrap_or("?");
            let id = event["task"]["id"].as_str().unwrap_or("?");
            format!(
                "📋 task `{what}` ({id}) for agent `{agent}`: {}",
                task.trim_start_matches("task.")
            )
        }
        other => format!("🔹 {other}"),
    };
    Some(Message::embed(Embed {
        description: Some(line),
        color: Some(BLUE),
        ..Embed::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_service_going_down_is_an_alert() {
        let down = json!({"type": "service.health", "service": "claude-api", "status": "down", "error": "answered 503", "url": "http://h:1"});
        let message = alert(&down).expect("an alert");
        assert_eq!(
            message.embeds[0].title.as_deref(),
            Some("🔴 claude-api is down")
        );
        assert!(alert(&json!({"service": "claude-api", "status": "up"})).is_none());
    }

    #[test]
    fn coordination_events_become_one_line() {
        let m = coordination(
            &json!({"type": "agent.status", "agent_id": "kael", "status": "inactive"}),
        )
        .unwrap();
        assert_eq!(
            m.embeds[0].description.as_deref(),
            Some("🤖 agent `kael` is inactive")
        );
        let m = coordination(
            &json!({"type": "task.offered", "task": {"agent_id": "lumina", "task_type": "sync", "id": "t1"}}),
        )
        .unwrap();
        assert_eq!(
            m.embeds[0].description.as_deref(),
            Some("📋 task `sync` (t1) for agent `lumina`: offered")
        );
        assert!(coordination(&json!({"no": "type"})).is_none());
    }
}
