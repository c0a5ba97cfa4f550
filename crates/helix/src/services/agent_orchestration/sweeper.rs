//! The sweeper: every quarter of the agent timeout, marks agents silent past it `inactive` and
//! offers their claimed or running tasks again, announcing each change on `agent:coordination`.
//! Every instance sweeps; the store's updates are conditional, so two sweeps of one change
//! announce it once (the second finds nothing left to change).

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::tasks::TaskOut;
use super::{announce, offer, HEARTBEATS};
use crate::services::ServiceState;

pub fn spawn(state: ServiceState, timeout: Duration) {
    let every = (timeout / 4).max(Duration::from_millis(250));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = state.stopping().cancelled() => return,
                _ = tick.tick() => sweep(&state, timeout).await,
            }
        }
    });
}

/// Record the heartbeats the WebSocket hub hands over on [`HEARTBEATS`] (`{"agent_id":…}`,
/// from connections authenticated with that agent's key), until the service stops.
pub fn listen_for_heartbeats(state: ServiceState) {
    let Some(bus) = state.bus().cloned() else {
        return;
    };
    tokio::spawn(async move {
        let mut beats = match bus.subscribe(HEARTBEATS).await {
            Ok(beats) => beats,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for heartbeats from the WebSocket hub");
                return;
            }
        };
        loop {
            let event = tokio::select! {
                () = state.stopping().cancelled() => return,
                event = beats.recv() => event,
            };
            match event {
                Some(helix_bus::Event::Message(m)) => {
                    let beat: Option<serde_json::Value> = serde_json::from_slice(&m.payload).ok();
                    if let Some(agent) = beat.as_ref().and_then(|b| b["agent_id"].as_str()) {
                        if let Err(error) = super::agents::record_heartbeat(&state, agent).await {
                            tracing::warn!(%error, "recording a heartbeat failed");
                        }
                    }
                }
                Some(_) => {}
                None => return,
            }
        }
    });
}

async fn sweep(state: &ServiceState, timeout: Duration) {
    let Some(store) = state.store() else { return };
    let now = Utc::now();
    let silent_since = now - chrono::Duration::from_std(timeout).unwrap_or_default();
    match store.agents().mark_silent(silent_since, now).await {
        Ok(agents) => {
            for agent in agents {
                announce(state, json!({"type": "agent.status", "agent_id": agent.agent_id, "status": "inactive"})).await;
            }
        }
        Err(error) => tracing::warn!(%error, "marking silent agents failed"),
    }
    match store.agents().reoffer_stale(silent_since, now).await {
        Ok(tasks) => {
            for task in tasks {
                offer(state, &TaskOut::from(task)).await;
            }
        }
        Err(error) => tracing::warn!(%error, "offering stale tasks again failed"),
    }
}
