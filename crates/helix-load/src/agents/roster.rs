//! The agents, before the run: registered on agent-orchestration by the admin (a 409 means an
//! earlier run registered it: reused), each given an API key with the scope `agent:<id>` on
//! backend-api, and each heartbeating once with that key, which proves the key works where the run
//! will use it. After the run the keys are revoked again.
//!
//! Key secrets are shown once, so a key left by a run that crashed is useless; as the admin may
//! hold only 50 live keys, such leftovers (named `bench-bench-agent-…`) are revoked first.

use std::time::Instant;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::http::RequestTemplate;
use crate::setup;
use crate::target::Target;

/// Agents enrolled at once (each: register, mint a key, heartbeat).
const SETUP_CONCURRENCY: usize = 8;
/// Progress is printed each time this many more agents are ready.
const PROGRESS_EVERY: usize = 10;
/// What every benchmark agent's id starts with.
const AGENT_PREFIX: &str = "bench-agent-";

/// One enrolled agent.
#[derive(Clone)]
pub struct Agent {
    pub id: String,
    /// Its `hx_…` API key (scopes `read` and `agent:<id>`).
    pub key: String,
    /// The key's id, to revoke it after the run.
    key_id: Uuid,
}

#[derive(Deserialize)]
struct MintedKey {
    id: Uuid,
    key: String,
}

#[derive(Deserialize)]
struct KeyList {
    keys: Vec<ListedKey>,
}

#[derive(Deserialize)]
struct ListedKey {
    id: Uuid,
    name: String,
    revoked_at: Option<serde_json::Value>,
}

/// The name of an agent's key: `bench-<agent_id>`.
fn key_name(agent_id: &str) -> String {
    format!("bench-{agent_id}")
}

/// Enrol `count` agents `bench-agent-0` …, in order.
pub async fn set_up(
    target: &Target,
    api: &Target,
    admin: &str,
    count: usize,
) -> Result<Vec<Agent>> {
    revoke_stale(api, admin).await?;
    eprintln!("registering {count} agents and minting their keys…");
    let started = Instant::now();
    let mut ready = 0usize;
    futures::stream::iter(0..count)
        .map(|index| enrol(target, api, admin, index))
        .buffered(SETUP_CONCURRENCY)
        .inspect_ok(|_| {
            ready += 1;
            if ready.is_multiple_of(PROGRESS_EVERY) || ready == count {
                let secs = started.elapsed().as_secs_f64();
                eprintln!("  agents: {ready}/{count} after {secs:.1} s");
            }
        })
        .try_collect()
        .await
}

/// Register agent `index`, mint its key and heartbeat with it.
async fn enrol(target: &Target, api: &Target, admin: &str, index: usize) -> Result<Agent> {
    let id = format!("{AGENT_PREFIX}{index}");
    register(target, admin, &id).await?;
    let minted = mint_key(api, admin, &id).await?;
    heartbeat(target, &id, &minted.key).await?;
    Ok(Agent {
        id,
        key: minted.key,
        key_id: minted.id,
    })
}

/// `POST /api/agents`: 201, or 409 when an earlier run registered it (reused as it is).
async fn register(target: &Target, admin: &str, id: &str) -> Result<()> {
    let body = json!({
        "agent_id": id,
        "name": format!("helix-load {id}"),
        "role": "bench",
        "capabilities": [],
    });
    let request = RequestTemplate::post_json(target, "/api/agents", &body)?.bearer(admin)?;
    let accepted = [StatusCode::CREATED, StatusCode::CONFLICT];
    let what = format!("registering agent {id}");
    setup::expect_one_of(target, &request, &accepted, &what).await?;
    Ok(())
}

/// `POST /api/keys` on backend-api: a key for the agent only (`read`, `agent:<id>`).
async fn mint_key(api: &Target, admin: &str, id: &str) -> Result<MintedKey> {
    let body = json!({"name": key_name(id), "scopes": ["read", format!("agent:{id}")]});
    let request = RequestTemplate::post_json(api, "/api/keys", &body)?.bearer(admin)?;
    let what = format!(
        "minting agent {id}'s key (the admin may hold 50 live keys: revoke others, or use fewer \
         --agents)"
    );
    let response = setup::expect(api, &request, StatusCode::CREATED, &what).await?;
    serde_json::from_slice(&response.body)
        .with_context(|| format!("POST /api/keys for {id} answered 201 without an id and key"))
}

/// `POST /api/agents/{id}/heartbeat` with the agent's own key.
async fn heartbeat(target: &Target, id: &str, key: &str) -> Result<()> {
    let path = format!("/api/agents/{id}/heartbeat");
    let request = RequestTemplate::post_json(target, &path, &json!({}))?.bearer(key)?;
    let what = format!("heartbeat of agent {id} with its new key");
    setup::expect(target, &request, StatusCode::OK, &what).await?;
    Ok(())
}

/// Revoke the admin's live keys named like ours, left by an earlier run that did not finish.
async fn revoke_stale(api: &Target, admin: &str) -> Result<()> {
    let request = RequestTemplate::get(api, "/api/keys")?.bearer(admin)?;
    let response = setup::expect(api, &request, StatusCode::OK, "listing the admin's keys").await?;
    let list: KeyList =
        serde_json::from_slice(&response.body).context("GET /api/keys answered without keys")?;
    let stale = stale_keys(&list.keys);
    if stale.is_empty() {
        return Ok(());
    }
    eprintln!(
        "revoking {} agent keys left by an earlier run…",
        stale.len()
    );
    for id in stale {
        revoke_key(api, admin, id).await?;
    }
    Ok(())
}

/// The live keys whose names say an earlier run of this command minted them.
fn stale_keys(keys: &[ListedKey]) -> Vec<Uuid> {
    let prefix = key_name(AGENT_PREFIX);
    keys.iter()
        .filter(|key| key.revoked_at.is_none() && key.name.starts_with(&prefix))
        .map(|key| key.id)
        .collect()
}

async fn revoke_key(api: &Target, admin: &str, id: Uuid) -> Result<()> {
    let request = RequestTemplate::delete(api, &format!("/api/keys/{id}"))?.bearer(admin)?;
    setup::expect(api, &request, StatusCode::NO_CONTENT, "revoking a key").await?;
    Ok(())
}

/// Revoke the run's keys; a failure is only a warning (the next run revokes leftovers).
pub async fn revoke(api: &Target, admin: &str, agents: &[Agent]) {
    let outcome = futures::stream::iter(agents)
        .map(|agent| revoke_key(api, admin, agent.key_id))
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_for_each(|()| async { Ok(()) })
        .await;
    if let Err(err) = outcome {
        eprintln!("warning: revoking the agents' keys: {err:#} (the next run revokes them)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, revoked: bool) -> ListedKey {
        ListedKey {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            revoked_at: revoked.then(|| json!("2025-01-01T00:00:00Z")),
        }
    }

    #[test]
    fn only_live_keys_of_earlier_runs_are_stale() {
        let keys = [
            key("bench-bench-agent-0", false),
            key("bench-bench-agent-1", true),
            key("helix-load", false),
            key("bench-other", false),
        ];
        assert_eq!(stale_keys(&keys), vec![keys[0].id]);
        assert_eq!(key_name("bench-agent-7"), "bench-bench-agent-7");
    }
}
