//! The sweeper: every quarter of the agent timeout, marks agents silent past it `inactive` and
//! offers their claimed or running tasks again, announcing each change on `agent:coordination`.
//! Every instance sweeps; the store's updates are conditional, so two sweeps of one change
//! announce it once (the second finds nothing left to change).

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::announce;
use super::tasks::TaskOut;
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
                let out = TaskOut::from(task);
                announce(state, json!({"type": "task.offered", "task": &out})).await;
            }
        }
        Err(error) => tracing::warn!(%error, "offering stale tasks again failed"),
    }
}
