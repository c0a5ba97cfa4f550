//! Metered calls over HTTP: `POST /api/usage` takes a call without waiting for the database,
//! `GET /api/usage` sums a user's calls per day and model (their own; admins anyone's), bad
//! reports get the status a client can act on, and rows reported just before a clean shutdown are
//! in the database after it.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use helix_store::StoreOptions;
use serde_json::{json, Value};

use crate::admin::with_admin;
use crate::support::bin::{free_ports, helix, signal, wait_bounded, wait_healthy};
use crate::support::db::Raw;
use crate::support::spawn_app::TestApp;
use crate::support::users::{key, signup, User};
use crate::support::TestBackends;

fn call(model: &str, tokens_in: i64, tokens_out: i64) -> Value {
    json!({
        "endpoint": "/v1/messages", "model": model, "tokens_in": tokens_in,
        "tokens_out": tokens_out, "cost_micros": tokens_in * 3 + tokens_out * 15,
    })
}

async fn report(app: &TestApp, who: &str, body: Value) -> (u16, Value) {
    app.post("/api/usage", Some(who), body).await
}

/// The caller's summary once it counts `calls` calls (rows are written a flush interval later).
async fn summary_with(app: &TestApp, who: &str, path: &str, calls: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = app.get_as(path, who).await;
        assert_eq!(status, 200, "{body}");
        if body["totals"]["calls"] == calls {
            return body;
        }
        assert!(Instant::now() < deadline, "never {calls} calls: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn metered_calls_are_summed_by_day_and_model_for_their_user() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let (ada, bob) = (signup(&app, "ada").await, signup(&app, "bob").await);
    let ada_key = key(&app, &ada, &["read", "write"]).await;
    for (who, body) in [
        (&ada.jwt, call("opus", 10, 20)),
        (&ada_key, call("opus", 1, 2)),
        (&ada.jwt, call("haiku", 100, 0)),
        (&bob.jwt, call("opus", 5, 5)),
    ] {
        let (status, answer) = report(&app, who, body).await;
        assert_eq!((status, answer), (202, json!({"accepted": true})));
    }
    let mut for_ada = call("opus", 1000, 0);
    for_ada["user_id"] = json!(ada.id);
    assert_eq!(
        report(&app, &admin, for_ada).await.0,
        202,
        "a service reports for ada"
    );

    let mine = summary_with(&app, &ada.jwt, "/api/usage", 4).await;

    let today = Utc::now().date_naive().to_string();
    assert_eq!(mine["user_id"], ada.id);
    assert_eq!(
        mine["days"],
        json!([
            {"day": today, "model": "haiku", "calls": 1, "tokens_in": 100, "tokens_out": 0, "cost_micros": 300},
            {"day": today, "model": "opus", "calls": 3, "tokens_in": 1011, "tokens_out": 22, "cost_micros": 3363},
        ])
    );
    assert_eq!(mine["totals"]["tokens_in"], 1111);
    let bobs = summary_with(&app, &bob.jwt, "/api/usage", 1).await;
    assert_eq!(bobs["days"][0]["tokens_in"], 5, "bob sees only his");
    let (status, _) = app
        .get_as(&format!("/api/usage?user_id={}", bob.id), &ada.jwt)
        .await;
    assert_eq!(status, 403, "user_id is for admins");
    let as_admin = summary_with(&app, &admin, &format!("/api/usage?user_id={}", ada.id), 4).await;
    assert_eq!(as_admin["totals"], mine["totals"]);
    let unknown = format!("/api/usage?user_id={}", uuid::Uuid::new_v4());
    assert_eq!(app.get_as(&unknown, &admin).await.0, 404);
    let keyed = "SELECT COUNT(*) FROM usage_tracking WHERE api_key_id IS NOT NULL";
    assert_eq!(
        Raw::of(&app).await.scalar(keyed).await,
        1,
        "the key ada used is recorded"
    );
    let (status, q) = app.get_as("/api/quota", &ada.jwt).await;
    assert_eq!(
        (status, &q["tokens_per_month"]["used"]),
        (200, &json!(1133)),
        "{q}"
    );
}

#[tokio::test]
async fn a_range_of_days_is_summed_and_bad_ranges_are_refused() {
    let (app, _) = with_admin(TestBackends::new(), &[]).await;
    let ada = signup(&app, "ada").await;
    report(&app, &ada.jwt, call("opus", 1, 1)).await;
    let today = Utc::now().date_naive();
    let path = format!("/api/usage?from={today}&to={today}");
    let body = summary_with(&app, &ada.jwt, &path, 1).await;
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str()),
        (Some(&*today.to_string()), Some(&*today.to_string()))
    );

    let yesterday = today.pred_opt().unwrap();
    let (status, before) = app
        .get_as(
            &format!("/api/usage?from={yesterday}&to={yesterday}"),
            &ada.jwt,
        )
        .await;
    assert_eq!(
        (status, &before["totals"]["calls"]),
        (200, &json!(0)),
        "{before}"
    );
    for bad in [
        format!("/api/usage?from={today}&to={yesterday}"),
        "/api/usage?from=2020-01-01&to=2021-06-01".to_owned(),
        "/api/usage?from=yesterday".to_owned(),
        "/api/usage?colour=blue".to_owned(),
    ] {
        let (status, answer) = app.get_as(&bad, &ada.jwt).await;
        assert_eq!(status, 422, "{bad}: {answer}");
    }
}

#[tokio::test]
async fn bad_reports_get_the_status_a_client_can_act_on() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let (ada, bob): (User, User) = (signup(&app, "ada").await, signup(&app, "bob").await);
    let read_only = key(&app, &ada, &["read"]).await;
    let with = |field: &str, value: Value| {
        let mut body = call("opus", 1, 1);
        body[field] = value;
        body
    };
    let cases = [
        (
            &ada.jwt,
            with("tokens_in", json!(-1)),
            422,
            Some("tokens_in"),
        ),
        (
            &ada.jwt,
            with("cost_micros", json!(-5)),
            422,
            Some("cost_micros"),
        ),
        (&ada.jwt, with("model", json!("")), 422, Some("model")),
        (
            &ada.jwt,
            with("endpoint", json!("a\u{0}b")),
            422,
            Some("endpoint"),
        ),
        (&ada.jwt, with("tokens_out", json!("ten")), 422, None),
        (&ada.jwt, with("colour", json!("blue")), 422, None),
        (&ada.jwt, with("user_id", json!(bob.id)), 403, None),
        (
            &ada.jwt,
            with("api_key_id", json!(uuid::Uuid::new_v4())),
            403,
            None,
        ),
        (&read_only, call("opus", 1, 1), 403, None),
        (
            &admin,
            with("user_id", json!(uuid::Uuid::new_v4())),
            404,
            None,
        ),
    ];
    for (who, body, status, field) in cases {
        let (got, answer) = report(&app, who, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        if let Some(field) = field {
            assert!(answer["error"]["fields"].get(field).is_some(), "{answer}");
        }
    }
    let (status, _) = app.post("/api/usage", None, call("opus", 1, 1)).await;
    assert_eq!(status, 401);
    assert_eq!(
        Raw::of(&app)
            .await
            .scalar("SELECT COUNT(*) FROM usage_tracking")
            .await,
        0
    );
}

/// The real binary, with batches due only after a minute: what was reported is buffered, and a
/// SIGTERM writes it before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reported_just_before_shutdown_is_in_the_database_after_it() {
    let backends = TestBackends::new();
    let mut env = backends.env();
    let port = free_ports(1)[0];
    env.extend(BTreeMap::from([
        ("PORT".to_owned(), port.to_string()),
        ("HELIX_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("HELIX_USAGE_FLUSH_MS".to_owned(), "60000".to_owned()),
    ]));
    let child = helix(backends.dir.path(), &env)
        .args(["serve", "backend-api"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("helix serve starts");
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&format!("{base}/health")).await;
    let client = reqwest::Client::new();
    let signed_up: Value = client
        .post(format!("{base}/api/auth/signup"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery", "display_name": "Ada"}))
        .send()
        .await
        .expect("signup")
        .json()
        .await
        .expect("json");
    let token = signed_up["access_token"].as_str().expect("a token");
    for n in 1..=3 {
        let response = client
            .post(format!("{base}/api/usage"))
            .bearer_auth(token)
            .json(&call("opus", n, 10))
            .send()
            .await
            .expect("report");
        assert_eq!(response.status(), 202);
    }
    let buffered: Value = client
        .get(format!("{base}/api/usage"))
        .bearer_auth(token)
        .send()
        .await
        .expect("summary")
        .json()
        .await
        .expect("json");
    assert_eq!(buffered["totals"]["calls"], 0, "still buffered: {buffered}");

    signal(&child, "TERM");
    let out = tokio::task::spawn_blocking(move || wait_bounded(child, Duration::from_secs(60)))
        .await
        .expect("join");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (url, schema) = match &backends.database_url {
        Some(url) => (url.clone(), Some(backends.schema.clone())),
        None => (format!("sqlite://{}/helix.db", env["HELIX_DATA_DIR"]), None),
    };
    let options = StoreOptions {
        schema,
        ..StoreOptions::default()
    };
    let store = helix_store::open(&url, &options)
        .await
        .expect("open the database");
    let user = signed_up["user"]["id"].as_str().unwrap().parse().unwrap();
    let today = Utc::now().date_naive();
    let from = today.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let days = store
        .usage()
        .usage_summary(user, from, from + chrono::TimeDelta::days(1))
        .await
        .expect("summary");
    assert_eq!(days.iter().map(|d| d.calls).sum::<i64>(), 3, "{days:?}");
    let status = store
        .usage()
        .quota_status(user, today)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.tokens_this_month, 1 + 2 + 3 + 30);
    store.close().await;
}
