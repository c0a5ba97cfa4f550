//! `/health` and `/metrics` on every service, and 503 when a dependency is gone.

use std::collections::BTreeMap;

use helix::platform::catalog;

use crate::support::proxy::{host_port, through, Proxy};
use crate::support::{spawn_app, TestBackends};

fn http_services() -> impl Iterator<Item = &'static catalog::ServiceSpec> {
    catalog::all().iter().filter(|s| s.port.is_some())
}

#[tokio::test]
async fn every_service_reports_exactly_the_dependencies_it_uses() {
    for spec in http_services() {
        let app = spawn_app(spec.name).await;
        let (status, body) = app.get_json("/health").await;
        assert_eq!(
            status,
            200,
            "{} on {}: {body}",
            spec.name,
            app.backends.label()
        );
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["service"], spec.name);
        assert_eq!(
            body.get("database").is_some(),
            spec.postgres.is_needed(),
            "{}: {body}",
            spec.name
        );
        assert_eq!(
            body.get("redis").is_some(),
            spec.redis.is_needed(),
            "{}: {body}",
            spec.name
        );
        if spec.postgres.is_needed() {
            assert_eq!(body["database"], "connected");
        }
        if spec.redis.is_needed() {
            assert_eq!(body["redis"], "connected");
        }
    }
}

#[tokio::test]
async fn health_is_503_once_the_database_is_closed() {
    let app = spawn_app("backend-api").await;
    app.state
        .store()
        .expect("backend-api has a store")
        .close()
        .await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["database"], "disconnected");
    assert_eq!(body["redis"], "connected");
}

#[tokio::test]
async fn health_is_503_once_the_bus_is_closed() {
    let app = spawn_app("websocket-streaming").await;
    app.state
        .bus()
        .expect("websocket-streaming has a bus")
        .close()
        .await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["redis"], "disconnected");
    assert!(body.get("database").is_none());
}

/// A real outage: the connection to PostgreSQL and Redis is cut under a running service, then
/// given back. Runs on PostgreSQL + Redis only (SQLite has no connection to cut).
#[tokio::test]
async fn health_follows_a_real_outage_and_recovery() {
    let backends = TestBackends::new();
    let (Some(db), Some(redis)) = (backends.database_url.clone(), backends.redis_url.clone())
    else {
        eprintln!("skipped: needs HELIX_TEST_DATABASE_URL and HELIX_TEST_REDIS_URL");
        return;
    };
    let pg_proxy = Proxy::start(host_port(&db)).await;
    let redis_proxy = Proxy::start(host_port(&redis)).await;
    let extra = BTreeMap::from([
        ("DATABASE_URL".to_owned(), through(&db, &pg_proxy)),
        ("REDIS_URL".to_owned(), through(&redis, &redis_proxy)),
    ]);
    let app = crate::support::spawn_app::spawn_app_with("backend-api", backends, extra).await;
    assert_eq!(app.get_json("/health").await.0, 200);

    pg_proxy.cut();
    redis_proxy.cut();
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "disconnected");
    assert_eq!(body["redis"], "disconnected");

    pg_proxy.restore();
    redis_proxy.restore();
    let mut last = (0, serde_json::Value::Null);
    for _ in 0..50 {
        last = app.get_json("/health").await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(last.0, 200, "health did not recover: {}", last.1);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app("agent-orchestration").await;
    app.get("/health").await;
    app.get("/no/such/path").await;
    let text = app
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics text");
    let health_line = text
        .lines()
        .find(|l| l.starts_with("helix_http_requests_total") && l.contains("route=\"/health\""))
        .unwrap_or_else(|| panic!("no /health counter in:\n{text}"));
    assert!(
        health_line.contains("status=\"200\"")
            && health_line.contains("service=\"agent-orchestration\""),
        "{health_line}"
    );
    assert!(health_line.ends_with(" 1"), "{health_line}");
    assert!(text.contains("status=\"404\""), "{text}");
    assert!(
        text.contains("helix_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_paths_get_a_json_error() {
    let app = spawn_app("claude-api").await;
    let (status, body) = app.get_json("/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let response = app
        .client
        .post(app.url("/health"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 405);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "method_not_allowed");
}
