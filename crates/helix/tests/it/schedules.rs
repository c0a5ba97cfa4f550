//! The beat's schedules as operators meet them: the admin HTTP surface on backend-api, the beat
//! service firing into the job queue, and `helix schedule` on the command line.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::with_admin;
use crate::support::bin::{helix, run};
use crate::support::eventually;
use crate::support::spawn_app::{spawn_sibling, TestApp};
use crate::support::TestBackends;

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> (u16, Value) {
    app.call(method, path, Some(token), Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_manages_schedules_over_http() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let nightly = json!({"name": "nightly", "kind": "noop", "cron": "0 3 * * *",
        "timezone": "Europe/Paris", "payload": {"sleep_ms": 1}, "catch_up": "skip"});

    let (status, added) = call(
        &app,
        Method::POST,
        "/api/schedules",
        &admin,
        nightly.clone(),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["cron"], "0 3 * * *");
    assert_eq!(added["timezone"], "Europe/Paris");
    assert_eq!(added["catch_up"], "skip");
    let next = added["next_fire_at"].as_str().expect("a next fire time");
    assert!(
        next.contains("T02:00:00") || next.contains("T01:00:00"),
        "3:00 in Paris is {next}"
    );
    let (status, _) = call(&app, Method::POST, "/api/schedules", &admin, nightly).await;
    assert_eq!(status, 409);

    let (status, changed) = call(
        &app,
        Method::PATCH,
        "/api/schedules/nightly",
        &admin,
        json!({"every": "90m"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["every_ms"], 5_400_000);
    let pause = call(
        &app,
        Method::POST,
        "/api/schedules/nightly/pause",
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(
        (pause.0, &pause.1["paused"]),
        (200, &json!(true)),
        "{}",
        pause.1
    );
    let resume = call(
        &app,
        Method::POST,
        "/api/schedules/nightly/resume",
        &admin,
        json!({}),
    )
    .await;
    assert_eq!((resume.0, &resume.1["paused"]), (200, &json!(false)));
    let (status, all) = app.get_as("/api/schedules", &admin).await;
    assert_eq!(
        (status, all["schedules"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (status, _) = call(
        &app,
        Method::DELETE,
        "/api/schedules/nightly",
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(app.get_as("/api/schedules/nightly", &admin).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_get_clear_errors() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let cases = [
        (
            json!({"name": "a", "kind": "noop", "cron": "* * *"}),
            "invalid cron expression",
        ),
        (
            json!({"name": "a", "kind": "noop", "cron": "0 3 * * *", "timezone": "Mars/Olympus"}),
            "unknown time zone",
        ),
        (json!({"name": "a", "kind": "noop"}), "give cron or every"),
        (
            json!({"name": "a", "kind": "noop", "cron": "0 3 * * *", "every": "1h"}),
            "not both",
        ),
        (
            json!({"name": "a", "kind": "nope", "every": "1h"}),
            "unknown job kind",
        ),
        (
            json!({"name": "a", "kind": "noop", "every": "1h", "payload": {"x": 1}}),
            "payload does not fit",
        ),
        (
            json!({"name": "a", "kind": "noop", "every": "1h", "catch_up": "all"}),
            "catch-up",
        ),
        (
            json!({"name": "Bad Name", "kind": "noop", "every": "1h"}),
            "name",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) =
            call(&app, Method::POST, "/api/schedules", &admin, body.clone()).await;
        assert_eq!(status, 422, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{body} → {message}");
    }
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/schedules/none/pause",
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_beat_service_fires_each_due_time_once() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let every = json!({"name": "tick", "kind": "noop", "every": "1s", "queue": "beat"});
    assert_eq!(
        call(&app, Method::POST, "/api/schedules", &admin, every)
            .await
            .0,
        201
    );
    // Two beats on one database: a hot standby, never a doubler.
    let one = spawn_sibling(&app, "beat", &[]).await;
    let two = spawn_sibling(&app, "beat", &[]).await;
    helix::services::start(&one.state).expect("beat one starts");
    helix::services::start(&two.state).expect("beat two starts");

    let mut jobs = Vec::new();
    eventually("three firings", async || {
        let (_, page) = app.get_as("/api/jobs?queue=beat&limit=100", &admin).await;
        jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        jobs.len() >= 3
    })
    .await;
    one.stop();
    two.stop();
    let keys: std::collections::BTreeSet<_> = jobs
        .iter()
        .map(|j| j["unique_key"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(keys.len(), jobs.len(), "one job per fire time: {keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("schedule:tick:")),
        "{keys:?}"
    );
}

#[test]
fn helix_schedule_on_the_command_line() {
    let backends = TestBackends::new();
    let env: BTreeMap<String, String> = backends.env();
    let dir = backends.dir.path();
    let helix_run = |args: &[&str]| run(helix(dir, &env).args(args));

    let added = helix_run(&[
        "schedule",
        "add",
        "nightly",
        "noop",
        "--cron",
        "0 3 * * *",
        "--tz",
        "America/New_York",
    ]);
    assert_eq!(added.code, Some(0), "{}", added.all());
    assert!(
        added
            .stdout
            .contains("nightly: noop on default cron \"0 3 * * *\" America/New_York"),
        "{}",
        added.all()
    );
    let every = helix_run(&[
        "schedule",
        "add",
        "often",
        "noop",
        "--every",
        "5m",
        "--catch-up",
        "skip",
    ]);
    assert_eq!(every.code, Some(0), "{}", every.all());

    let listed = helix_run(&["schedule", "list"]);
    assert!(
        listed
            .stdout
            .contains("often: noop on default every 5m, catch-up skip"),
        "{}",
        listed.all()
    );
    let paused = helix_run(&["schedule", "pause", "often"]);
    assert!(paused.stdout.contains("paused"), "{}", paused.all());
    let resumed = helix_run(&["schedule", "resume", "often"]);
    assert!(resumed.stdout.contains("next "), "{}", resumed.all());
    let removed = helix_run(&["schedule", "remove", "often"]);
    assert_eq!(removed.code, Some(0), "{}", removed.all());
    let json = helix_run(&["schedule", "list", "--format", "json"]);
    let json: Value = serde_json::from_str(&json.stdout).expect("json list");
    assert_eq!(json.as_array().map(Vec::len), Some(1));

    let bad_cron = helix_run(&["schedule", "add", "x", "noop", "--cron", "61 * * * *"]);
    assert_eq!(bad_cron.code, Some(1));
    assert!(
        bad_cron.stderr.contains("invalid cron expression"),
        "{}",
        bad_cron.all()
    );
    let bad_tz = helix_run(&[
        "schedule",
        "add",
        "x",
        "noop",
        "--cron",
        "0 3 * * *",
        "--tz",
        "Nowhere/City",
    ]);
    assert!(
        bad_tz.stderr.contains("unknown time zone"),
        "{}",
        bad_tz.all()
    );
    let dup = helix_run(&["schedule", "add", "nightly", "noop", "--every", "1h"]);
    assert!(dup.stderr.contains("already exists"), "{}", dup.all());
    let unknown = helix_run(&["schedule", "pause", "ghost"]);
    assert!(
        unknown.stderr.contains("no schedule named \"ghost\""),
        "{}",
        unknown.all()
    );
}
