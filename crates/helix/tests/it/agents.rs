//! agent-orchestration end to end: the roster, tasks moving only forward by their agent, one
//! winner among concurrent claims, silent agents and their tasks, commands with replies, and
//! `helix agents seed`. backend-api (for accounts and keys) runs beside it on the same backends.

use std::time::Duration;

use helix_bus::Event;
use serde_json::{json, Value};

use crate::support::bin::{helix, run};
use crate::support::spawn_app::{spawn_sibling, TestApp};
use crate::support::{eventually, users, TestBackends};

struct Fixture {
    api: TestApp,
    agents: TestApp,
    admin: String,
}

async fn fixture(extra: &[(&str, &str)]) -> Fixture {
    let (api, admin) = crate::admin::with_admin(TestBackends::new(), &[]).await;
    let agents = spawn_sibling(&api, "agent-orchestration", extra).await;
    Fixture { api, agents, admin }
}

impl Fixture {
    async fn register(&self, agent_id: &str) {
        let (status, body) = self
            .agents
            .post(
                "/api/agents",
                Some(&self.admin),
                json!({"agent_id": agent_id, "name": agent_id, "role": "test", "capabilities": ["x"]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// An API key of the admin scoped to `agent_id`: the agent's credential.
    async fn agent_key(&self, agent_id: &str) -> String {
        let (status, body) = self
            .api
            .post(
                "/api/keys",
                Some(&self.admin),
                json!({"name": agent_id, "scopes": ["read", format!("agent:{agent_id}")]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().expect("a key").to_owned()
    }

    async fn task(&self, agent_id: &str) -> String {
        let (status, body) = self
            .agents
            .post(
                "/api/tasks",
                Some(&self.admin),
                json!({"agent_id": agent_id, "task_type": "summarise", "task_data": {"text": "hi"}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("an id").to_owned()
    }

    async fn act(&self, task: &str, action: &str, who: &str, body: Value) -> (u16, Value) {
        self.agents
            .post(&format!("/api/tasks/{task}/{action}"), Some(who), body)
            .await
    }
}

#[tokio::test]
async fn the_roster_is_read_by_anyone_and_changed_by_admins() {
    let fx = fixture(&[]).await;
    let user = users::signup(&fx.api, "ada").await;
    fx.register("kael").await;
    let (status, body) = fx
        .agents
        .post(
            "/api/agents",
            Some(&fx.admin),
            json!({"agent_id": "kael", "name": "Kael"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("agent_exists"))
    );
    let (status, _) = fx
        .agents
        .post(
            "/api/agents",
            Some(&user.jwt),
            json!({"agent_id": "vega", "name": "Vega"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = fx
        .agents
        .post(
            "/api/agents",
            Some(&fx.admin),
            json!({"agent_id": "Bad Id", "name": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["fields"]["agent_id"].is_string()),
        (422, true)
    );

    let (status, list) = fx.agents.get_as("/api/agents", &user.jwt).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["agent_id"], "kael");
    assert_eq!(list[0]["status"], "inactive");
    assert_eq!(list[0]["capabilities"], json!(["x"]));
    assert_eq!(
        fx.agents.get_as("/api/agents/nobody", &user.jwt).await.0,
        404
    );

    let (status, changed) = fx
        .agents
        .call(
            reqwest::Method::PUT,
            "/api/agents/kael",
            Some(&fx.admin),
            Some(json!({"status": "busy", "description": "thinks"})),
        )
        .await;
    assert_eq!((status, changed["status"].as_str()), (200, Some("busy")));
    let (status, _) = fx
        .agents
        .call(
            reqwest::Method::PUT,
            "/api/agents/kael",
            Some(&fx.admin),
            Some(json!({"status": "asleep"})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = fx
        .agents
        .call(
            reqwest::Method::DELETE,
            "/api/agents/kael",
            Some(&fx.admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(fx.agents.get_as("/api/agents/kael", &user.jwt).await.0, 404);
}

#[tokio::test]
async fn a_task_moves_forward_only_and_only_by_its_agent() {
    let fx = fixture(&[]).await;
    fx.register("kael").await;
    fx.register("vega").await;
    let kael = fx.agent_key("kael").await;
    let vega = fx.agent_key("vega").await;
    let bus = fx.agents.state.bus().expect("a bus").clone();
    let mut changes = bus
        .subscribe("agent:coordination")
        .await
        .expect("subscribe");

    let task = fx.task("kael").await;
    let offered = next_change(&mut changes).await;
    assert_eq!(
        (offered["type"].as_str(), offered["task"]["id"].as_str()),
        (Some("task.offered"), Some(task.as_str()))
    );

    // Another agent cannot see it, let alone move it.
    assert_eq!(fx.act(&task, "claim", &vega, json!({})).await.0, 404);
    let (status, claimed) = fx.act(&task, "claim", &kael, json!({})).await;
    assert_eq!(
        (
            status,
            claimed["status"].as_str(),
            claimed["attempts"].as_i64()
        ),
        (200, Some("claimed"), Some(1))
    );
    let (status, body) = fx.act(&task, "complete", &kael, json!({"result": 1})).await;
    assert_eq!(
        (status, body["error"]["fields"]["status"].as_str()),
        (409, Some("claimed"))
    );
    assert_eq!(fx.act(&task, "start", &kael, json!({})).await.0, 200);
    let (status, body) = fx
        .act(&task, "progress", &kael, json!({"progress": {"done": 0.5}}))
        .await;
    assert_eq!(
        (status, body["progress"]["done"].as_f64()),
        (200, Some(0.5))
    );
    let (status, done) = fx
        .act(
            &task,
            "complete",
            &kael,
            json!({"result": {"summary": "ok"}}),
        )
        .await;
    assert_eq!(
        (
            status,
            done["status"].as_str(),
            done["result"]["summary"].as_str()
        ),
        (200, Some("completed"), Some("ok"))
    );
    // No going back, not even for an admin.
    let (status, body) = fx.act(&task, "cancel", &fx.admin, json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("illegal_transition"))
    );
    for expected in [
        "task.claimed",
        "task.running",
        "task.running",
        "task.completed",
    ] {
        assert_eq!(next_change(&mut changes).await["type"], expected);
    }

    let (status, listed) = fx
        .agents
        .get_as("/api/tasks?agent_id=kael&status=completed", &kael)
        .await;
    assert_eq!(
        (status, listed["tasks"][0]["id"].as_str()),
        (200, Some(task.as_str()))
    );
    assert_eq!(fx.agents.get_as("/api/tasks", &kael).await.0, 403);

    // Bad input.
    let big = "x".repeat(40 * 1024);
    let (status, _) = fx
        .agents
        .post(
            "/api/tasks",
            Some(&fx.admin),
            json!({"agent_id": "kael", "task_type": "t", "task_data": {"big": big}}),
        )
        .await;
    assert_eq!(status, 413);
    let (status, _) = fx
        .agents
        .post(
            "/api/tasks",
            Some(&fx.admin),
            json!({"agent_id": "ghost", "task_type": "t"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(fx.act(&task, "teleport", &kael, json!({})).await.0, 404);
    assert_eq!(fx.act("not-a-uuid", "claim", &kael, json!({})).await.0, 404);
    let raw = |content_type: &'static str, body: &'static str| {
        fx.agents
            .client
            .post(fx.agents.url(&format!("/api/tasks/{task}/progress")))
            .bearer_auth(&kael)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_eq!(raw("application/json", "{").await.unwrap().status(), 400);
    assert_eq!(raw("text/plain", "hi").await.unwrap().status(), 415);
    assert_eq!(
        raw("application/json", r#"{"mood":1}"#)
            .await
            .unwrap()
            .status(),
        422
    );
}

async fn next_change(changes: &mut helix_bus::Subscription) -> Value {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), changes.recv())
            .await
            .expect("a change within 10 s")
            .expect("the bus is open");
        if let Event::Message(m) = event {
            return crate::support::published_json(&m.payload);
        }
    }
}

#[tokio::test]
async fn of_concurrent_claims_exactly_one_wins() {
    let fx = fixture(&[]).await;
    fx.register("kael").await;
    let kael = fx.agent_key("kael").await;
    let task = fx.task("kael").await;
    let claims = (0..8).map(|_| fx.act(&task, "claim", &kael, json!({})));
    let outcomes = futures::future::join_all(claims).await;
    let won = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let lost = outcomes
        .iter()
        .filter(|(s, b)| *s == 409 && b["error"]["fields"]["status"] == "claimed")
        .count();
    assert_eq!((won, lost), (1, 7), "{outcomes:?}");
}

#[tokio::test]
async fn a_silent_agent_goes_inactive_and_its_task_is_offered_again() {
    let fx = fixture(&[("HELIX_AGENT_TIMEOUT_SECS", "1")]).await;
    fx.register("kael").await;
    let kael = fx.agent_key("kael").await;
    let (status, beat) = fx
        .agents
        .post("/api/agents/kael/heartbeat", Some(&kael), json!({}))
        .await;
    assert_eq!((status, beat["status"].as_str()), (200, Some("active")));
    let task = fx.task("kael").await;
    assert_eq!(fx.act(&task, "claim", &kael, json!({})).await.0, 200);
    eventually(
        "kael marked inactive and the task pending again",
        async || {
            let (_, status) = fx.agents.get_as("/api/agents/status", &fx.admin).await;
            let (_, t) = fx
                .agents
                .get_as(&format!("/api/tasks/{task}"), &fx.admin)
                .await;
            status["agents"][0]["status"] == "inactive" && t["status"] == "pending"
        },
    )
    .await;
    // Claimed again, it counts a second attempt.
    let (status, again) = fx.act(&task, "claim", &kael, json!({})).await;
    assert_eq!((status, again["attempts"].as_i64()), (200, Some(2)));
    let other = users::signup(&fx.api, "ada").await;
    assert_eq!(
        fx.agents
            .post("/api/agents/kael/heartbeat", Some(&other.jwt), json!({}))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn a_command_returns_the_agents_reply_or_times_out() {
    let fx = fixture(&[]).await;
    fx.register("kael").await;
    let kael = fx.agent_key("kael").await;
    let bus = fx.agents.state.bus().expect("a bus").clone();
    let mut commands = bus.subscribe("agent:kael").await.expect("subscribe");
    let url = fx.agents.url("");
    let client = fx.agents.client.clone();
    let agent = tokio::spawn(async move {
        let Some(Event::Message(m)) = commands.recv().await else {
            panic!("no command")
        };
        let command: Value = crate::support::published_json(&m.payload);
        assert_eq!(command["command"], "ping");
        let id = command["command_id"].as_str().expect("an id");
        let response = client
            .post(format!("{url}/api/agents/kael/commands/{id}/reply"))
            .bearer_auth(&kael)
            .json(&json!({"pong": true}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 202);
    });
    let (status, body) = fx
        .agents
        .post(
            "/api/agents/kael/command",
            Some(&fx.admin),
            json!({"command": "ping"}),
        )
        .await;
    assert_eq!(
        (status, body["reply"]["pong"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    agent.await.expect("the agent answered");

    let (status, body) = fx
        .agents
        .post(
            "/api/agents/kael/command",
            Some(&fx.admin),
            json!({"command": "ping", "timeout_ms": 200}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (504, Some("timeout"))
    );
    let (status, _) = fx
        .agents
        .post(
            "/api/agents/nobody/command",
            Some(&fx.admin),
            json!({"command": "ping"}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn helix_agents_seed_registers_the_default_roster_once() {
    let fx = fixture(&[]).await;
    let env = fx.api.env.clone();
    let first = run(helix(fx.api.backends.dir.path(), &env).args(["agents", "seed"]));
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(first.stdout.contains("14 registered"), "{first:?}");
    let again = run(helix(fx.api.backends.dir.path(), &env).args(["agents", "seed"]));
    assert!(
        again.stdout.contains("0 registered, 14 already there"),
        "{again:?}"
    );
    let (_, list) = fx.agents.get_as("/api/agents", &fx.admin).await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["agent_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 14);
    assert!(
        ids.contains(&"discord-bridge") && ids.contains(&"kael"),
        "{ids:?}"
    );
}

#[tokio::test]
async fn agent_keys_are_one_agent_minted_by_admins_and_work_on_agent_orchestration_only() {
    let fx = fixture(&[]).await;
    fx.register("kael").await;
    let user = users::signup(&fx.api, "ada").await;
    let mint = |who: String, scopes: Value| {
        let api = &fx.api;
        async move {
            api.post(
                "/api/keys",
                Some(&who),
                json!({"name": "k", "scopes": scopes}),
            )
            .await
        }
    };
    assert_eq!(mint(user.jwt.clone(), json!(["agent:kael"])).await.0, 403);
    for scopes in [
        json!(["write", "agent:kael"]),
        json!(["admin", "agent:kael"]),
        json!(["agent:kael", "agent:vega"]),
    ] {
        let (status, body) = mint(fx.admin.clone(), scopes.clone()).await;
        assert_eq!(status, 422, "{scopes}: {body}");
    }
    let kael = fx.agent_key("kael").await;
    // On backend-api the key would act as the admin who minted it: refused.
    let (status, body) = fx.api.get_as("/api/me", &kael).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("agent_key"))
    );
    // Nor is it an admin on agent-orchestration.
    let (status, _) = fx
        .agents
        .post(
            "/api/agents",
            Some(&kael),
            json!({"agent_id": "vega", "name": "Vega"}),
        )
        .await;
    assert_eq!(status, 403);
    // On the WebSocket hub (which asks backend-api about keys) it reads its own channel only,
    // where its task offers arrive, and heartbeats there.
    let api_url = format!("http://{}", fx.api.addr);
    let ws = spawn_sibling(
        &fx.api,
        "websocket-streaming",
        &[("BACKEND_API_URL", api_url.as_str())],
    )
    .await;
    let mut client = crate::support::ws::Client::connect(&ws, &kael).await;
    client
        .send(json!({"type": "subscribe", "channel": "consciousness:stream"}))
        .await;
    assert_eq!(client.next().await["code"], "forbidden");
    client.subscribe("agent:kael").await;
    let task = fx.task("kael").await;
    let offer = client.next().await;
    assert_eq!(
        (
            offer["data"]["type"].as_str(),
            offer["data"]["task"]["id"].as_str()
        ),
        (Some("task.offered"), Some(task.as_str()))
    );
    client.send(json!({"type": "heartbeat", "id": 1})).await;
    assert_eq!(client.next().await["type"], "heartbeat_ack");
    eventually("kael active after a heartbeat over the hub", async || {
        let (_, agent) = fx.agents.get_as("/api/agents/kael", &fx.admin).await;
        agent["status"] == "active"
    })
    .await;
}
