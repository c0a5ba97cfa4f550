//! service-integration watches every service's `/health`: a signed-in caller sees each one's
//! status at `GET /api/services`, its own `/health` sums the platform up, and every change is
//! published on `service:health`.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use helix_bus::Event;
use serde_json::Value;

use crate::support::bin::free_ports;
use crate::support::spawn_app::{spawn_app, spawn_sibling};
use crate::support::{eventually, users};

/// A stand-in service whose `/health` answers whatever status the test sets.
async fn fake_service(status: Arc<AtomicU16>) -> String {
    let app = axum::Router::new().route(
        "/health",
        get(move || {
            let code = status.load(Ordering::Relaxed);
            async move { StatusCode::from_u16(code).unwrap() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn status_of<'a>(services: &'a Value, name: &str) -> &'a Value {
    services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("{name} is watched: {services}"))
}

#[tokio::test]
async fn every_service_is_watched_and_changes_are_published() {
    let api = spawn_app("backend-api").await;
    let ops = users::signup(&api, "ops").await;
    let dashboard_status = Arc::new(AtomicU16::new(200));
    let dashboard = fake_service(dashboard_status.clone()).await;
    let closed = format!("http://127.0.0.1:{}", free_ports(1)[0]);
    let bus = api.state.bus().expect("a bus").clone();
    let mut changes = bus.subscribe("service:health").await.unwrap();
    let api_url = format!("http://{}", api.addr);
    let coordinator = spawn_sibling(
        &api,
        "service-integration",
        &[
            ("BACKEND_API_URL", api_url.as_str()),
            ("DASHBOARD_URL", dashboard.as_str()),
            ("DISCORD_BOT_URL", closed.as_str()),
            ("CLAUDE_API_URL", closed.as_str()),
            ("WEBSOCKET_SERVICE_URL", closed.as_str()),
            ("AGENT_ORCHESTRATOR_URL", closed.as_str()),
            ("ZAPIER_SERVICE_URL", closed.as_str()),
            ("VOICE_PROCESSOR_URL", closed.as_str()),
            ("HELIX_HEALTH_INTERVAL_MS", "100"),
        ],
    )
    .await;

    let (status, body) = coordinator.get_as("/api/services", "not-a-token").await;
    assert_eq!(status, 401, "{body}");
    eventually("every service checked once", async || {
        let (_, services) = coordinator.get_as("/api/services", &ops.jwt).await;
        services["services"]
            .as_array()
            .is_some_and(|all| all.len() == 8 && all.iter().all(|s| s["status"] != "unknown"))
    })
    .await;
    let (_, services) = coordinator.get_as("/api/services", &ops.jwt).await;
    assert_eq!(status_of(&services, "backend-api")["status"], "up");
    assert_eq!(status_of(&services, "dashboard")["http_status"], 200);
    let discord = status_of(&services, "discord-bot");
    assert_eq!(discord["status"], "down");
    assert_eq!(discord["error"], "connection refused or unreachable");
    let health = coordinator.get("/health").await;
    assert_eq!(health.status(), 200, "the coordinator itself works");
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "healthy", "its own dependencies");
    assert_eq!(health["platform"], "degraded");
    assert_eq!(health["services"]["dashboard"], "up");
    assert_eq!(health["services"]["voice-processing"], "down");

    dashboard_status.store(503, Ordering::Relaxed);
    let went_down = async {
        loop {
            let Some(Event::Message(m)) = changes.recv().await else {
                continue;
            };
            let event: Value = crate::support::published_json(&m.payload);
            if event["service"] == "dashboard" && event["status"] == "down" {
                return event;
            }
        }
    };
    let event = tokio::time::timeout(Duration::from_secs(20), went_down)
        .await
        .expect("the dashboard going down is published");
    assert_eq!(event["type"], "service.health");
    assert_eq!(event["http_status"], 503);
    assert_eq!(event["error"], "answered 503 Service Unavailable");
    let (_, services) = coordinator.get_as("/api/services", &ops.jwt).await;
    assert_eq!(status_of(&services, "dashboard")["status"], "down");
}
