//! Background jobs as operators and services meet them: the admin HTTP surface on backend-api,
//! the worker service running what was enqueued (and its metrics), and `helix jobs` on the
//! command line, on the same backends as every other test.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::with_admin;
use crate::support::bin::{helix, run};
use crate::support::eventually;
use crate::support::spawn_app::{spawn_sibling, TestApp};
use crate::support::users::signup;
use crate::support::TestBackends;

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    app.call(Method::POST, path, Some(token), Some(body)).await
}

async fn stats_of(app: &TestApp, token: &str, queue: &str) -> Value {
    let (status, body) = app.get_as("/api/jobs/stats", token).await;
    assert_eq!(status, 200, "{body}");
    body["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["queue"] == queue)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_enqueues_lists_inspects_cancels_and_retries_jobs() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;

    let (status, body) = post(
        &app,
        "/api/jobs",
        &admin,
        json!({"kind": "noop", "payload": {"sleep_ms": 1}, "count": 3, "queue": "ops"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["inserted"], 3);
    let ids: Vec<String> = serde_json::from_value(body["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 3);

    let (status, page) = app
        .get_as("/api/jobs?state=available&queue=ops&limit=2", &admin)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(page["jobs"][0]["id"], ids[2], "newest first");
    let next = page["next_before"].as_str().expect("a next page");
    let (_, rest) = app
        .get_as(&format!("/api/jobs?queue=ops&before={next}"), &admin)
        .await;
    assert_eq!(rest["jobs"][0]["id"], ids[0]);

    let (status, job) = app.get_as(&format!("/api/jobs/{}", ids[0]), &admin).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["kind"], "noop");
    assert_eq!(job["state"], "available");
    assert_eq!(job["payload"], r#"{"sleep_ms":1}"#);

    let cancel = format!("/api/jobs/{}/cancel", ids[0]);
    let (status, job) = post(&app, &cancel, &admin, json!({})).await;
    assert_eq!(
        (status, job["state"].as_str()),
        (200, Some("cancelled")),
        "{job}"
    );
    let (status, again) = post(&app, &cancel, &admin, json!({})).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["fields"]["state"], "cancelled");

    let retry = format!("/api/jobs/{}/retry", ids[0]);
    let (status, job) = post(&app, &retry, &admin, json!({})).await;
    assert_eq!(
        (status, job["state"].as_str()),
        (200, Some("available")),
        "{job}"
    );
    let (status, _) = post(
        &app,
        &format!("/api/jobs/{}/retry", ids[1]),
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "an available job has nothing to retry");

    let ops = stats_of(&app, &admin, "ops").await;
    assert_eq!(ops["available"], 3, "{ops}");
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        app.get_as(&format!("/api/jobs/{unknown}"), &admin).await.0,
        404
    );
    assert_eq!(app.get_as("/api/jobs/not-an-id", &admin).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_and_non_admins_get_clear_errors() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let cases = [
        (json!({"kind": "nope"}), "unknown job kind"),
        (
            json!({"kind": "noop", "payload": {"sleep": 5}}),
            "payload does not fit noop",
        ),
        (json!({"kind": "noop", "priority": 500}), "priority 500"),
        (json!({"kind": "noop", "queue": "no spaces"}), "queue name"),
        (json!({"kind": "noop", "count": 0}), "count 0"),
        (
            json!({"kind": "noop", "delay_secs": -1}),
            "0 or more seconds",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = post(&app, "/api/jobs", &admin, body.clone()).await;
        assert_eq!(status, 422, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{body} → {message}");
    }
    let (status, answer) = app.get_as("/api/jobs?state=bogus", &admin).await;
    assert_eq!(status, 422, "{answer}");

    let unique = json!({"kind": "noop", "unique_key": "nightly", "on_duplicate": "reject"});
    assert_eq!(post(&app, "/api/jobs", &admin, unique.clone()).await.0, 201);
    let (status, dup) = post(&app, "/api/jobs", &admin, unique).await;
    assert_eq!(status, 409, "{dup}");
    assert_eq!(dup["error"]["code"], "duplicate");
    let merge = json!({"kind": "noop", "unique_key": "nightly"});
    let (status, merged) = post(&app, "/api/jobs", &admin, merge).await;
    assert_eq!(
        (status, merged["inserted"].as_u64()),
        (201, Some(0)),
        "{merged}"
    );

    let user = signup(&app, "plain").await;
    let (status, _) = post(&app, "/api/jobs", &user.jwt, json!({"kind": "noop"})).await;
    assert_eq!(status, 403);
    assert_eq!(app.get_as("/api/jobs/stats", &user.jwt).await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_service_runs_what_the_api_enqueued() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let worker = spawn_sibling(&app, "worker", &[("HELIX_WORKER_QUEUES", "default;slow")]).await;
    helix::services::start(&worker.state).expect("the worker loop starts");

    let jobs = json!({"kind": "noop", "payload": {"sleep_ms": 2}, "count": 20});
    assert_eq!(post(&app, "/api/jobs", &admin, jobs).await.0, 201);
    let slow = json!({"kind": "noop", "queue": "slow", "count": 2});
    assert_eq!(post(&app, "/api/jobs", &admin, slow).await.0, 201);

    eventually("every job completed", async || {
        let default = stats_of(&app, &admin, "default").await;
        let slow = stats_of(&app, &admin, "slow").await;
        default["completed_total"] == 20 && slow["completed_total"] == 2
    })
    .await;
    eventually("the worker's metrics show them", async || {
        let text = worker
            .get("/metrics")
            .await
            .text()
            .await
            .unwrap_or_default();
        text.lines().any(|l| {
            l.contains("jobs_worker_events_total")
                && l.contains("queue=\"default\"")
                && l.contains("event=\"completed\"")
                && l.trim_end().ends_with(" 20")
        })
    })
    .await;
    let default = stats_of(&app, &admin, "default").await;
    assert_eq!(
        (
            default["failed_total"].as_u64(),
            default["running"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

#[test]
fn helix_jobs_on_the_command_line() {
    let backends = TestBackends::new();
    let env: BTreeMap<String, String> = backends.env();
    let dir = backends.dir.path();

    let added =
        run(helix(dir, &env).args(["jobs", "enqueue", "noop", "--count", "3", "--queue", "cli"]));
    assert_eq!(added.code, Some(0), "{}", added.all());
    assert!(
        added.stdout.contains("enqueued 3 of 3 jobs of noop"),
        "{}",
        added.all()
    );

    let stats = run(helix(dir, &env).args(["jobs", "stats", "--format", "json"]));
    assert_eq!(stats.code, Some(0), "{}", stats.all());
    let stats: Value = serde_json::from_str(&stats.stdout).expect("json stats");
    let cli = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "cli")
        .expect("cli queue");
    assert_eq!(cli["available"], 3);

    let listed =
        run(helix(dir, &env).args(["jobs", "list", "--state", "available", "--format", "json"]));
    let listed: Value = serde_json::from_str(&listed.stdout).expect("json list");
    let id = listed[0]["id"].as_str().expect("an id").to_owned();
    let cancelled = run(helix(dir, &env).args(["jobs", "cancel", &id]));
    assert!(
        cancelled.stdout.contains("cancelled"),
        "{}",
        cancelled.all()
    );
    let again = run(helix(dir, &env).args(["jobs", "cancel", &id]));
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("cannot cancel"), "{}", again.all());

    let unknown = run(helix(dir, &env).args(["jobs", "enqueue", "nope"]));
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("unknown job kind \"nope\""),
        "{}",
        unknown.all()
    );
    let bad = run(helix(dir, &env).args(["jobs", "enqueue", "noop", "--payload", "{not json"]));
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.stderr.contains("payload does not fit noop"),
        "{}",
        bad.all()
    );
    let state = run(helix(dir, &env).args(["jobs", "list", "--state", "bogus"]));
    assert_eq!(state.code, Some(2), "{}", state.all());
    assert!(
        state.stderr.contains("unknown job state"),
        "{}",
        state.all()
    );
}
