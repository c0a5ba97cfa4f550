//! Tiers and quotas over HTTP: the free tier's messages per day end in 429 naming the quota and
//! its reset, a month's tokens are checked when a metered call is reported, an upgrade through a
//! Stripe event raises the limits at once on the instance that applied it, and `GET /api/quota`
//! shows it all.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::{json, Value};

use crate::support::spawn_app::{spawn_app_with, TestApp};
use crate::support::stripe::{now, send, subscription_event, Sub, SECRET};
use crate::support::users::{signup, User};
use crate::support::TestBackends;

async fn app_with(vars: &[(&str, &str)]) -> TestApp {
    let mut env: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.insert("STRIPE_WEBHOOK_SECRET".into(), SECRET.into());
    spawn_app_with("backend-api", TestBackends::new(), env).await
}

async fn conversation(app: &TestApp, user: &User) -> String {
    let (status, body) = app
        .post("/api/conversations", Some(&user.jwt), json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn send_message(app: &TestApp, user: &User, id: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/conversations/{id}/messages")))
        .bearer_auth(&user.jwt)
        .json(&json!({"role": "user", "content": "hello"}))
        .send()
        .await
        .expect("sent")
}

fn next_midnight() -> DateTime<Utc> {
    (Utc::now().date_naive() + chrono::TimeDelta::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

fn resets_at(error: &Value) -> DateTime<Utc> {
    error["error"]["fields"]["resets_at"]
        .as_str()
        .unwrap_or_else(|| panic!("a resets_at: {error}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_free_tier_allows_its_messages_per_day_then_answers_429() {
    let app = app_with(&[("HELIX_TIER_FREE_MESSAGES_PER_DAY", "2")]).await;
    let ada = signup(&app, "ada").await;
    let id = conversation(&app, &ada).await;
    for _ in 0..2 {
        assert_eq!(send_message(&app, &ada, &id).await.status(), 201);
    }

    let refused = send_message(&app, &ada, &id).await;

    assert_eq!(refused.status(), 429);
    let wait: i64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(body["error"]["fields"]["quota"], "messages_per_day");
    assert_eq!(resets_at(&body), next_midnight());
    let (_, q) = app.get_as("/api/quota", &ada.jwt).await;
    assert_eq!(q["tier"], "free");
    assert_eq!(
        q["messages_per_day"],
        json!({"limit": 2, "used": 2, "resets_at": q["messages_per_day"]["resets_at"]})
    );
    // Another user's allowance is their own.
    let bob = signup(&app, "bob").await;
    let bobs = conversation(&app, &bob).await;
    assert_eq!(send_message(&app, &bob, &bobs).await.status(), 201);
}

#[tokio::test]
async fn an_upgrade_raises_the_limit_at_once_on_the_instance_that_applied_it() {
    let app = app_with(&[
        ("HELIX_TIER_FREE_MESSAGES_PER_DAY", "1"),
        ("HELIX_TIER_PRO_MESSAGES_PER_DAY", "3"),
    ])
    .await;
    let ada = signup(&app, "ada").await;
    let id = conversation(&app, &ada).await;
    assert_eq!(send_message(&app, &ada, &id).await.status(), 201);
    assert_eq!(
        send_message(&app, &ada, &id).await.status(),
        429,
        "the tier is now cached as free"
    );

    let pro = Sub {
        customer: "cus_ada",
        user_id: Some(&ada.id),
        status: "active",
        lookup_key: "pro",
    };
    let event = subscription_event("evt_pro", "customer.subscription.created", now(), &pro);
    assert_eq!(send(&app, &event).await.1["outcome"], "applied");

    for _ in 0..2 {
        assert_eq!(send_message(&app, &ada, &id).await.status(), 201);
    }
    assert_eq!(send_message(&app, &ada, &id).await.status(), 429);
    let (_, q) = app.get_as("/api/quota", &ada.jwt).await;
    assert_eq!(
        (&q["tier"], &q["messages_per_day"]["used"]),
        (&json!("pro"), &json!(3))
    );
}

#[tokio::test]
async fn the_month_s_tokens_are_checked_when_a_call_is_reported() {
    let app = app_with(&[("HELIX_TIER_FREE_TOKENS_PER_MONTH", "100")]).await;
    let ada = signup(&app, "ada").await;
    let big = json!({"endpoint": "/v1/messages", "model": "opus", "tokens_in": 120, "tokens_out": 30, "cost_micros": 9});
    let (status, _) = app.post("/api/usage", Some(&ada.jwt), big.clone()).await;
    assert_eq!(
        status, 202,
        "the call that crosses the allowance is recorded in full"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, q) = app.get_as("/api/quota", &ada.jwt).await;
        if q["tokens_per_month"]["used"] == 150 {
            assert_eq!(q["tokens_per_month"]["limit"], 100);
            break;
        }
        assert!(Instant::now() < deadline, "never counted: {q}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let (status, body) = app.post("/api/usage", Some(&ada.jwt), big).await;

    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["fields"]["quota"], "tokens_per_month");
    let resets = resets_at(&body);
    assert_eq!((resets.day(), resets.num_seconds_from_midnight()), (1, 0));
    assert!(resets > Utc::now() && resets <= Utc::now() + chrono::TimeDelta::days(31));
}

#[tokio::test]
async fn enterprise_limits_are_unlimited_by_default() {
    let app = app_with(&[]).await;
    let ada = signup(&app, "ada").await;
    let enterprise = Sub {
        customer: "cus_big",
        user_id: Some(&ada.id),
        status: "active",
        lookup_key: "enterprise",
    };
    let event = subscription_event("evt_e", "customer.subscription.created", now(), &enterprise);
    send(&app, &event).await;

    let (status, q) = app.get_as("/api/quota", &ada.jwt).await;

    assert_eq!(status, 200);
    assert_eq!(q["tier"], "enterprise");
    assert_eq!(q["messages_per_day"]["limit"], Value::Null);
    assert_eq!(q["tokens_per_month"]["limit"], Value::Null);
    let (status, _) = app
        .get_as(
            &format!("/api/quota?user_id={}", signup(&app, "bob").await.id),
            &ada.jwt,
        )
        .await;
    assert_eq!(status, 403, "another user's quota is for admins");
}
