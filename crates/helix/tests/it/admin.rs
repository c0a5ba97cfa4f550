//! Admin surfaces: maintenance mode across services, the audit log over HTTP and on the command
//! line (verify, tamper detection, signed checkpoints), role changes.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::bin::{helix, run};
use crate::support::eventually;
use crate::support::spawn_app::{spawn_app_with, TestApp};
use crate::support::TestBackends;

const PASSWORD: &str = "correct horse battery staple";

/// backend-api with an admin account (the creator); returns the app and the admin's token.
pub(crate) async fn with_admin(
    backends: TestBackends,
    extra: &[(&str, &str)],
) -> (TestApp, String) {
    let mut env: BTreeMap<String, String> = extra
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    env.insert("HELIX_CREATOR_EMAIL".into(), "root@helix.dev".into());
    let app = spawn_app_with("backend-api", backends, env).await;
    let (status, body) = app
        .post(
            "/api/auth/signup",
            None,
            json!({"email": "root@helix.dev", "password": PASSWORD, "display_name": "Root"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["access_token"].as_str().expect("token").to_owned();
    (app, token)
}

#[tokio::test]
async fn maintenance_mode_answers_503_except_health_and_the_switch() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/admin/maintenance",
            Some(&admin),
            Some(json!({"on": true, "message": "upgrading", "retry_after": 120})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let response = app
        .client
        .get(app.url("/api/me"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "120");
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["message"].as_str()
        ),
        (Some("maintenance"), Some("upgrading"))
    );
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/metrics").await.status(), 200);
    let (status, _) = app
        .call(Method::GET, "/api/admin/maintenance", Some(&admin), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/admin/maintenance",
            Some(&admin),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.get_as("/api/me", &admin).await.0, 200);
}

/// The switch reaches a service without a database (the dashboard) through the bus, and a
/// switch written by `helix maintenance` (straight into the database) reaches both.
#[tokio::test]
async fn maintenance_reaches_every_service_sharing_the_backends() {
    let backends = TestBackends::new();
    let env = backends.env();
    let (api, admin) = with_admin(backends, &[]).await;
    // A dashboard in the same deployment: same bus (in process, or the same Redis prefix).
    let dashboard = crate::support::spawn_app::spawn_sibling(&api, "dashboard", &[]).await;
    let (status, _) = api
        .call(
            Method::PUT,
            "/api/admin/maintenance",
            Some(&admin),
            Some(json!({"on": true})),
        )
        .await;
    assert_eq!(status, 200);
    eventually("the dashboard entering maintenance", async || {
        dashboard.get("/nothing").await.status() == 503
    })
    .await;
    assert_eq!(dashboard.get("/health").await.status(), 200);

    let out = run(helix(api.backends.dir.path(), &env).args(["maintenance", "off"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    eventually("backend-api leaving maintenance", async || {
        api.get_as("/api/me", &admin).await.0 == 200
    })
    .await;
    eventually("the dashboard leaving maintenance", async || {
        dashboard.get("/nothing").await.status() == 404
    })
    .await;
    let out = run(helix(api.backends.dir.path(), &env).args([
        "maintenance",
        "on",
        "--message",
        "cli says so",
    ]));
    assert_eq!(out.code, Some(0), "{out:?}");
    eventually("backend-api entering maintenance", async || {
        api.get_as("/api/me", &admin).await.0 == 503
    })
    .await;
    let status = run(helix(api.backends.dir.path(), &env).args(["maintenance", "status"]));
    assert!(status.stdout.contains("cli says so"), "{status:?}");
}

#[tokio::test]
async fn only_admins_reach_admin_endpoints() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let (_, user) = app
        .post(
            "/api/auth/signup",
            None,
            json!({"email": "user@example.com", "password": PASSWORD, "display_name": "U"}),
        )
        .await;
    let user_token = user["access_token"].as_str().expect("token");
    let user_id = user["user"]["id"].as_str().expect("id");
    for (method, path) in [
        (Method::GET, "/api/admin/audit"),
        (Method::GET, "/api/admin/maintenance"),
    ] {
        let (status, _) = app.call(method, path, Some(user_token), None).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, body) = app
        .call(Method::GET, "/api/admin/audit?limit=2", Some(&admin), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["next_after"], 2);
    let (_, page2) = app
        .call(Method::GET, "/api/admin/audit?after=2", Some(&admin), None)
        .await;
    assert_eq!(page2["entries"][0]["seq"], 3);
    assert!(
        !page2.to_string().contains(PASSWORD),
        "no secret in the audit log"
    );

    let path = format!("/api/admin/users/{user_id}/role");
    let (status, _) = app
        .call(
            Method::PUT,
            &path,
            Some(&admin),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = app
        .call(
            Method::PUT,
            &path,
            Some(&admin),
            Some(json!({"role": "creator"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (_, audit) = app
        .call(
            Method::GET,
            "/api/admin/audit?limit=1000",
            Some(&admin),
            None,
        )
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"role_changed"), "{actions:?}");
}

/// `helix audit verify` passes on an intact log, names the first broken entry after a row is
/// edited behind Helix's back, and a signed checkpoint detects a log cut short.
#[tokio::test]
async fn audit_verify_detects_tampering_and_truncation() {
    let backends = TestBackends::new();
    let mut env = backends.env();
    let key = "4f".repeat(32);
    env.insert("HELIX_AUDIT_SIGNING_KEY".into(), key.clone());
    let (app, admin) = with_admin(backends, &[("HELIX_AUDIT_SIGNING_KEY", &key)]).await;
    for name in ["a", "b", "c"] {
        let (status, _) = app
            .post("/api/keys", Some(&admin), json!({"name": name}))
            .await;
        assert_eq!(status, 201);
    }
    let dir = app.backends.dir.path().to_owned();
    let verify = run(helix(&dir, &env).args(["audit", "verify"]));
    assert_eq!(verify.code, Some(0), "{verify:?}");
    assert!(
        verify.stdout.contains("intact: 5 entries"),
        "{}",
        verify.stdout
    );

    let checkpoint = run(helix(&dir, &env).args(["audit", "checkpoint"]));
    assert_eq!(checkpoint.code, Some(0), "{checkpoint:?}");
    let cp_path = dir.join("checkpoint.json");
    std::fs::write(&cp_path, &checkpoint.stdout).expect("write");
    let with_cp = run(helix(&dir, &env).args([
        "audit",
        "verify",
        "--checkpoint",
        cp_path.to_str().expect("utf-8"),
    ]));
    assert_eq!(with_cp.code, Some(0), "{with_cp:?}");

    // Cut the log short: the chain that remains is valid, the checkpoint says otherwise.
    let db = crate::support::db::Raw::of(&app).await;
    db.exec("DELETE FROM audit_log WHERE seq >= 4").await;
    let cut = run(helix(&dir, &env).args(["audit", "verify"]));
    assert_eq!(
        cut.code,
        Some(0),
        "a shorter chain is still a chain: {cut:?}"
    );
    let cut = run(helix(&dir, &env).args([
        "audit",
        "verify",
        "--checkpoint",
        cp_path.to_str().expect("utf-8"),
    ]));
    assert_eq!(cut.code, Some(1), "{cut:?}");
    assert!(
        cut.stdout.contains("no longer holds checkpoint entry 5"),
        "{}",
        cut.stdout
    );

    // Edit a row: verify names it.
    db.exec(
        "UPDATE audit_log SET detail = '{\"email\":\"someone-else@example.com\"}' WHERE seq = 2",
    )
    .await;
    let edited = run(helix(&dir, &env).args(["audit", "verify"]));
    assert_eq!(edited.code, Some(1), "{edited:?}");
    assert!(
        edited.stdout.contains("broken at entry 2"),
        "{}",
        edited.stdout
    );
}
