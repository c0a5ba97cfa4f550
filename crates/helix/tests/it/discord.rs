//! `POST /discord/interactions` over HTTP, with interactions built and signed as Discord builds
//! and signs them: PING gets PONG, each slash command answers with its message (or defers, and
//! the message reaches Discord's API as an edit of the original response), an unknown command
//! gets an ephemeral note; a request not signed by the application's key, signed too long ago or
//! in the future, not JSON or too large is refused, and nothing of it is stored.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::routing::get;
use chrono::Utc;
use helix::config::resolve::Mode;
use helix::config::Config;
use helix::platform::deployment::{Deployment, Generate};
use helix_store::ucf::UcfSample;
use serde_json::{json, Value};

use crate::support::bin::free_ports;
use crate::support::discord::{
    command, deliver, fresh_id, interaction, now, other_signer, ping, public_key, send, sign,
    signer, token_of, FakeDiscord, APPLICATION_ID, CHANNEL_ID, GUILD_ID, USER_ID,
};
use crate::support::spawn_app::{spawn_app_with, spawn_sibling, TestApp};
use crate::support::{eventually, TestBackends};

async fn bot_with(extra: &[(&str, &str)]) -> TestApp {
    let mut env = BTreeMap::from([
        ("DISCORD_PUBLIC_KEY".to_owned(), public_key()),
        // Generous: these tests answer at once unless they ask for a deferral.
        (
            "HELIX_DISCORD_ANSWER_BUDGET_MS".to_owned(),
            "2500".to_owned(),
        ),
    ]);
    env.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    spawn_app_with("discord-bot", TestBackends::new(), env).await
}

async fn bot() -> TestApp {
    bot_with(&[]).await
}

async fn recorded(app: &TestApp, id: &str) -> Option<helix_store::discord::Interaction> {
    let store = app.state.store().expect("discord-bot has a store");
    store.discord().interaction(id).await.expect("readable")
}

async fn stored_count(app: &TestApp) -> usize {
    let store = app.state.store().expect("discord-bot has a store");
    store
        .discord()
        .recent_interactions(1000)
        .await
        .unwrap()
        .len()
}

/// The message of a type 4 answer.
fn message(status: u16, answer: &Value) -> &Value {
    assert_eq!((status, &answer["type"]), (200, &json!(4)), "{answer}");
    &answer["data"]
}

fn embed(data: &Value) -> &Value {
    &data["embeds"][0]
}

#[tokio::test]
async fn ping_answers_pong_and_is_recorded_once() {
    let app = bot().await;
    let id = fresh_id();

    let (status, answer) = send(&app, &ping(&id)).await;

    assert_eq!((status, answer), (200, json!({"type": 1})));
    let row = recorded(&app, &id).await.expect("the ping is recorded");
    assert_eq!((row.kind, row.command, row.deferred), (1, None, false));
    // Delivered again (a retry): answered again, recorded once.
    let (status, answer) = send(&app, &ping(&id)).await;
    assert_eq!((status, answer), (200, json!({"type": 1})));
    assert_eq!(stored_count(&app).await, 1);
}

#[tokio::test]
async fn status_reports_every_service_as_service_integration_sees_it() {
    let app = bot().await;
    let closed = format!("http://127.0.0.1:{}", free_ports(1)[0]);
    let me = format!("http://{}", app.addr);
    let mut targets: Vec<(&str, &str)> = [
        "BACKEND_API_URL",
        "DASHBOARD_URL",
        "CLAUDE_API_URL",
        "WEBSOCKET_SERVICE_URL",
        "AGENT_ORCHESTRATOR_URL",
        "ZAPIER_SERVICE_URL",
        "VOICE_PROCESSOR_URL",
    ]
    .iter()
    .map(|var| (*var, closed.as_str()))
    .collect();
    targets.extend([
        ("DISCORD_BOT_URL", me.as_str()),
        ("HELIX_HEALTH_INTERVAL_MS", "100"),
    ]);
    let coordinator = spawn_sibling(&app, "service-integration", &targets).await;
    let coordinator_url = format!("http://{}", coordinator.addr);
    eventually("the coordinator checked every service", async || {
        let (_, health) = coordinator.get_json("/health").await;
        health["services"]
            .as_object()
            .is_some_and(|all| all.values().all(|s| s != "unknown"))
    })
    .await;
    let asking = spawn_sibling(
        &app,
        "discord-bot",
        &[("SERVICE_INTEGRATION_URL", coordinator_url.as_str())],
    )
    .await;

    let (status, answer) = send(&asking, &command(&fresh_id(), "status")).await;

    let card = embed(message(status, &answer)).clone();
    assert!(
        card["title"].as_str().unwrap().contains("degraded"),
        "{card}"
    );
    let fields = card["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 8, "{card}");
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {card}"))["value"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(field("discord-bot").ends_with("up"), "{card}");
    assert!(field("dashboard").ends_with("down"), "{card}");
    assert_eq!(
        card["description"],
        "1 of 8 services up, as service-integration sees them."
    );
}

#[tokio::test]
async fn ucf_reports_the_latest_gauges() {
    let app = bot().await;

    let (status, answer) = send(&app, &command(&fresh_id(), "ucf")).await;
    assert_eq!(
        message(status, &answer)["content"],
        "No UCF sample has been recorded yet."
    );

    let store = app.state.store().unwrap();
    let at = Utc::now();
    let sample = |agent: &str, level: f64, at_us: i64| UcfSample {
        agent_id: agent.into(),
        consciousness_level: level,
        harmony: 7.25,
        resilience: 6.0,
        prana: 5.5,
        drishti: 4.0,
        klesha: 0.5,
        zoom: 9.0,
        at_us,
    };
    store
        .ucf()
        .record_samples(&[
            sample("vega", 3.0, at.timestamp_micros() - 60_000_000),
            sample("kael", 7.5, at.timestamp_micros()),
        ])
        .await
        .unwrap();

    let (status, answer) = send(&app, &command(&fresh_id(), "ucf")).await;

    let card = embed(message(status, &answer)).clone();
    assert_eq!(
        card["description"], "Consciousness level **7.50**, reported by `kael`.",
        "{card}"
    );
    let gauges: BTreeMap<&str, &str> = card["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        gauges,
        BTreeMap::from([
            ("harmony", "7.25"),
            ("resilience", "6.00"),
            ("prana", "5.50"),
            ("drishti", "4.00"),
            ("klesha", "0.50"),
            ("zoom", "9.00"),
        ])
    );
    assert!(card["timestamp"].is_string(), "{card}");
}

#[tokio::test]
async fn agents_lists_the_roster_and_states() {
    let app = bot().await;
    let (status, answer) = send(&app, &command(&fresh_id(), "agents")).await;
    assert!(message(status, &answer)["content"]
        .as_str()
        .unwrap()
        .starts_with("No agent is registered yet"));
    let store = app.state.store().unwrap();
    let roster = helix::services::agent_orchestration::roster::default_roster();
    store
        .agents()
        .seed_agents(&roster, Utc::now())
        .await
        .unwrap();
    store.agents().heartbeat("kael", Utc::now()).await.unwrap();

    let (status, answer) = send(&app, &command(&fresh_id(), "agents")).await;

    let card = embed(message(status, &answer)).clone();
    assert_eq!(
        card["title"],
        format!("Agents ({})", roster.len()),
        "{card}"
    );
    let lines: Vec<&str> = card["description"].as_str().unwrap().lines().collect();
    let kael = lines
        .iter()
        .find(|l| l.contains("(`kael`)"))
        .expect("kael listed");
    assert!(kael.contains(": active, last heartbeat <t:"), "{kael}");
    let vega = lines
        .iter()
        .find(|l| l.contains("(`vega`)"))
        .expect("vega listed");
    assert!(vega.ends_with(": inactive, no heartbeat yet"), "{vega}");
    assert_eq!(
        card["footer"]["text"],
        format!("1 active · 0 busy · {} inactive", roster.len() - 1)
    );
}

#[tokio::test]
async fn health_reports_the_bot_itself_and_the_interaction_is_recorded() {
    let app = bot().await;
    let id = fresh_id();

    let (status, answer) = send(&app, &command(&id, "health")).await;

    let card = embed(message(status, &answer)).clone();
    assert_eq!(card["title"], "🟢 discord-bot healthy", "{card}");
    let values: Vec<&str> = card["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["value"].as_str().unwrap())
        .collect();
    let db = if app.backends.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert!(
        values.contains(&format!("🟢 connected ({db})").as_str()),
        "{card}"
    );
    assert_eq!(answer["data"]["allowed_mentions"], json!({"parse": []}));
    let row = recorded(&app, &id).await.expect("recorded");
    assert_eq!(
        (
            row.kind,
            row.command.as_deref(),
            row.user_id.as_deref(),
            row.guild_id.as_deref(),
            row.channel_id.as_deref(),
            row.deferred,
        ),
        (
            2,
            Some("health"),
            Some(USER_ID),
            Some(GUILD_ID),
            Some(CHANNEL_ID),
            false
        )
    );
}

/// A stand-in for service-integration whose `/health` takes a while to answer.
async fn slow_coordinator() -> String {
    let app = axum::Router::new().route(
        "/health",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            axum::Json(json!({
                "status": "healthy", "service": "service-integration",
                "platform": "healthy", "services": {"backend-api": "up", "discord-bot": "up"},
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_slow_command_is_deferred_and_its_answer_follows_up() {
    let discord = FakeDiscord::start().await;
    let coordinator = slow_coordinator().await;
    let app = bot_with(&[
        ("HELIX_DISCORD_ANSWER_BUDGET_MS", "0"),
        ("DISCORD_API_URL", &discord.api_url),
        ("SERVICE_INTEGRATION_URL", &coordinator),
    ])
    .await;
    let id = fresh_id();

    let (status, answer) = send(&app, &command(&id, "status")).await;

    assert_eq!((status, answer), (200, json!({"type": 5})));
    eventually("the follow-up reached Discord", async || {
        !discord.requests().is_empty()
    })
    .await;
    let requests = discord.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let followup = &requests[0];
    assert_eq!(followup.method, reqwest::Method::PATCH);
    assert_eq!(
        followup.path,
        format!(
            "/api/v10/webhooks/{APPLICATION_ID}/{}/messages/@original",
            token_of(&id)
        )
    );
    let card = &followup.body["embeds"][0];
    assert_eq!(card["title"], "🟢 Platform healthy", "{}", followup.body);
    assert_eq!(card["fields"].as_array().unwrap().len(), 2);
    let row = recorded(&app, &id).await.expect("recorded");
    assert!(row.deferred);
    assert_eq!(row.command.as_deref(), Some("status"));
}

#[tokio::test]
async fn an_unknown_command_gets_an_ephemeral_note() {
    let app = bot().await;
    let id = fresh_id();

    let (status, answer) = send(&app, &command(&id, "dance")).await;

    let data = message(status, &answer);
    assert_eq!(data["flags"], 64);
    let content = data["content"].as_str().unwrap();
    assert!(
        content.starts_with("Unknown command `/dance`."),
        "{content}"
    );
    assert!(content.contains("`/status`"), "{content}");
    let row = recorded(&app, &id).await.expect("recorded");
    assert_eq!(row.command.as_deref(), Some("dance"));
}

fn refused(status: u16, answer: &Value, expected: u16, code: &str) {
    assert_eq!(status, expected, "{answer}");
    assert_eq!(answer["error"]["code"], code, "{answer}");
    assert!(answer["error"]["message"].is_string(), "{answer}");
}

#[tokio::test]
async fn requests_not_signed_by_the_application_are_refused_and_store_nothing() {
    let app = bot().await;
    let body = command(&fresh_id(), "health");
    let t = now();
    let good = sign(&signer(), &t, &body);
    let cases: Vec<(&str, &str, Option<String>, Option<String>)> = vec![
        ("no headers", &body, None, None),
        ("no signature", &body, None, Some(t.clone())),
        ("no timestamp", &body, Some(good.clone()), None),
        (
            "another key",
            &body,
            Some(sign(&other_signer(), &t, &body)),
            Some(t.clone()),
        ),
        ("not hex", &body, Some("g".repeat(128)), Some(t.clone())),
        (
            "too short",
            &body,
            Some(good[..64].to_owned()),
            Some(t.clone()),
        ),
        (
            "too long",
            &body,
            Some(format!("{good}{}", &good[..2])),
            Some(t.clone()),
        ),
        ("empty", &body, Some(String::new()), Some(t.clone())),
        (
            "timestamp not a number",
            &body,
            Some(good.clone()),
            Some("soon".into()),
        ),
        (
            "another timestamp",
            &body,
            Some(good.clone()),
            Some((t.parse::<i64>().unwrap() - 1).to_string()),
        ),
    ];
    for (case, body, signature, timestamp) in cases {
        let (status, answer) = deliver(&app, body.to_owned(), signature, timestamp).await;
        assert_eq!(status, 401, "{case}: {answer}");
        refused(status, &answer, 401, "invalid_signature");
    }
    // A signed body changed on the way.
    let tampered = body.replace("health", "status");
    let (status, answer) = deliver(&app, tampered, Some(good), Some(t)).await;
    refused(status, &answer, 401, "invalid_signature");
    assert_eq!(stored_count(&app).await, 0);
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() {
    let app = bot().await;
    let body = command(&fresh_id(), "health");
    let now = Utc::now().timestamp();
    for t in [now - 600, now + 600, 0] {
        let t = t.to_string();
        let signature = sign(&signer(), &t, &body);
        let (status, answer) = deliver(&app, body.clone(), Some(signature), Some(t)).await;
        refused(status, &answer, 401, "invalid_signature");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("300 seconds"),
            "{answer}"
        );
    }
    assert_eq!(stored_count(&app).await, 0);
}

#[tokio::test]
async fn signed_bodies_that_are_not_interactions_get_400_and_store_nothing() {
    let app = bot().await;
    let component = interaction(
        &fresh_id(),
        3,
        json!({"custom_id": "b1", "component_type": 2}),
    );
    let cases = [
        ("not json", "type=1&id=5", "invalid_json"),
        ("truncated", "{\"type\": 1, \"id\"", "invalid_json"),
        (
            "not an interaction",
            "{\"hello\": \"world\"}",
            "invalid_interaction",
        ),
        (
            "a component",
            component.as_str(),
            "unsupported_interaction_type",
        ),
    ];
    for (case, body, code) in cases {
        let (status, answer) = send(&app, body).await;
        assert_eq!(status, 400, "{case}: {answer}");
        refused(status, &answer, 400, code);
    }
    assert_eq!(stored_count(&app).await, 0);
}

#[tokio::test]
async fn an_oversized_body_gets_413_and_stores_nothing() {
    let app = bot().await;
    let padding = "x".repeat(70 * 1024);
    let body = interaction(
        &fresh_id(),
        2,
        json!({"name": "health", "padding": padding}),
    );

    let (status, answer) = send(&app, &body).await;

    refused(status, &answer, 413, "payload_too_large");
    assert_eq!(stored_count(&app).await, 0);
}

#[tokio::test]
async fn without_a_public_key_every_interaction_gets_503() {
    let app = spawn_app_with("discord-bot", TestBackends::new(), BTreeMap::new()).await;

    let (status, answer) = send(&app, &ping(&fresh_id())).await;

    refused(status, &answer, 503, "interactions_not_configured");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("DISCORD_PUBLIC_KEY"));
    assert_eq!(stored_count(&app).await, 0);
}

#[test]
fn a_public_key_that_is_not_32_bytes_of_hex_stops_the_start() {
    for bad in ["not-hex", "abcd", &"ab".repeat(33), &"zz".repeat(32)] {
        let dir = tempfile::tempdir().unwrap();
        let env = BTreeMap::from([
            ("DISCORD_PUBLIC_KEY".to_owned(), bad.to_owned()),
            (
                "HELIX_DATA_DIR".to_owned(),
                dir.path().display().to_string(),
            ),
        ]);
        let config = Config::from_parts(env, None, None).expect("config parses");
        let spec = helix::platform::catalog::find("discord-bot").unwrap();
        let deployment = Deployment::plan(
            &config,
            Mode::Serve("discord-bot".into()),
            BTreeMap::new(),
            &[spec],
            Generate::ReadOnly,
        );
        let problem = deployment
            .problems
            .iter()
            .find(|p| p.var.as_deref() == Some("DISCORD_PUBLIC_KEY"))
            .unwrap_or_else(|| panic!("{bad}: {:#?}", deployment.problems));
        assert!(
            problem.message.contains("32 bytes in hex"),
            "{}",
            problem.message
        );
        assert!(deployment.into_startable().is_err(), "{bad}");
    }
}
