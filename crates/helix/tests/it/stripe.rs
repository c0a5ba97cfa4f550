//! `POST /api/webhooks/stripe` over HTTP, with events built and signed as Stripe builds and signs
//! them: subscription events set the user's tier and subscription, a failed payment marks it past
//! due, every event counts once however often it is delivered, and an unsigned, wrongly signed,
//! tampered or stale delivery changes nothing at all.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::db::Raw;
use crate::support::spawn_app::{spawn_app_with, TestApp};
use crate::support::stripe::{
    deliver, event, now, payment_failed, send, signature, subscription_event, Sub, SECRET,
};
use crate::support::users::{signup, User};
use crate::support::TestBackends;

async fn billing_app() -> TestApp {
    let env = BTreeMap::from([("STRIPE_WEBHOOK_SECRET".to_owned(), SECRET.to_owned())]);
    spawn_app_with("backend-api", TestBackends::new(), env).await
}

async fn quota(app: &TestApp, user: &User) -> Value {
    let (status, body) = app.get_as("/api/quota", &user.jwt).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn sub<'a>(customer: &'a str, user: &'a User, status: &'a str, tier: &'a str) -> Sub<'a> {
    Sub {
        customer,
        user_id: Some(&user.id),
        status,
        lookup_key: tier,
    }
}

async fn stored_events(app: &TestApp) -> i64 {
    Raw::of(app)
        .await
        .scalar("SELECT COUNT(*) FROM stripe_events")
        .await
}

#[tokio::test]
async fn subscription_events_set_the_tier_and_a_replay_changes_nothing() {
    let app = billing_app().await;
    let ada = signup(&app, "ada").await;
    let t = now() - 600;
    let created = subscription_event(
        "evt_created",
        "customer.subscription.created",
        t,
        &sub("cus_ada", &ada, "active", "pro"),
    );

    let (status, ack) = send(&app, &created).await;

    assert_eq!(
        (status, ack["outcome"].as_str()),
        (200, Some("applied")),
        "{ack}"
    );
    let q = quota(&app, &ada).await;
    assert_eq!(q["tier"], "pro", "{q}");
    assert_eq!(q["subscription_status"], "active");
    assert_eq!(q["messages_per_day"]["limit"], 5000);
    // Later events find ada by customer alone.
    let mut later = sub("cus_ada", &ada, "active", "enterprise");
    later.user_id = None;
    let upgraded = subscription_event("evt_up", "customer.subscription.updated", t + 60, &later);
    assert_eq!(send(&app, &upgraded).await.1["outcome"], "applied");
    let q = quota(&app, &ada).await;
    assert_eq!(
        (q["tier"].as_str(), &q["messages_per_day"]["limit"]),
        (Some("enterprise"), &Value::Null)
    );

    // The first event delivered again (Stripe retries, or someone replays a captured body with a
    // fresh signature): acknowledged, nothing changes.
    let (status, ack) = send(&app, &created).await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("duplicate")));
    assert_eq!(quota(&app, &ada).await["tier"], "enterprise");

    let deleted = subscription_event("evt_del", "customer.subscription.deleted", t + 120, &later);
    assert_eq!(send(&app, &deleted).await.1["outcome"], "applied");
    let q = quota(&app, &ada).await;
    assert_eq!(
        (q["tier"].as_str(), q["subscription_status"].as_str()),
        (Some("free"), Some("canceled"))
    );
    assert_eq!(stored_events(&app).await, 3);
}

#[tokio::test]
async fn a_failed_payment_marks_past_due_and_keeps_the_tier() {
    let app = billing_app().await;
    let ada = signup(&app, "ada").await;
    let t = now() - 600;
    let created = subscription_event(
        "evt_1",
        "customer.subscription.created",
        t,
        &sub("cus_pay", &ada, "active", "pro"),
    );
    send(&app, &created).await;

    let (status, ack) = send(&app, &payment_failed("evt_2", t + 60, "cus_pay")).await;

    assert_eq!(
        (status, ack["outcome"].as_str()),
        (200, Some("applied")),
        "{ack}"
    );
    let q = quota(&app, &ada).await;
    assert_eq!(
        (q["tier"].as_str(), q["subscription_status"].as_str()),
        (Some("pro"), Some("past_due"))
    );
    // Stripe gives up on the payment: the subscription becomes unpaid, and the tier goes.
    let unpaid = subscription_event(
        "evt_3",
        "customer.subscription.updated",
        t + 120,
        &sub("cus_pay", &ada, "unpaid", "pro"),
    );
    send(&app, &unpaid).await;
    assert_eq!(quota(&app, &ada).await["tier"], "free");
}

#[tokio::test]
async fn unsigned_wrongly_signed_tampered_or_stale_deliveries_change_nothing() {
    let app = billing_app().await;
    let ada = signup(&app, "ada").await;
    let body = subscription_event(
        "evt_forged",
        "customer.subscription.created",
        now(),
        &sub("cus_x", &ada, "active", "enterprise"),
    );
    let tampered = body
        .replace("\"pro\"", "\"enterprise\"")
        .replace("evt_forged", "evt_forged2");
    let signed_now = signature(SECRET, now(), &body);
    let cases: Vec<(&str, &str, Option<String>)> = vec![
        ("no header", &body, None),
        ("empty header", &body, Some(String::new())),
        ("no v1", &body, Some(format!("t={}", now()))),
        ("v0 only", &body, Some(signed_now.replace("v1=", "v0="))),
        (
            "wrong secret",
            &body,
            Some(signature("whsec_not_the_secret", now(), &body)),
        ),
        ("tampered body", &tampered, Some(signed_now.clone())),
        ("stale", &body, Some(signature(SECRET, now() - 301, &body))),
        (
            "from the future",
            &body,
            Some(signature(SECRET, now() + 400, &body)),
        ),
    ];

    for (case, sent, header) in cases {
        let (status, answer) = deliver(&app, sent, header).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_signature")),
            "{case}: {answer}"
        );
    }

    assert_eq!(stored_events(&app).await, 0);
    assert_eq!(quota(&app, &ada).await["tier"], "free");
    // The genuine delivery still works afterwards.
    assert_eq!(send(&app, &body).await.1["outcome"], "applied");
}

#[tokio::test]
async fn signed_bodies_that_are_not_events_are_refused_and_not_stored() {
    let app = billing_app().await;
    for body in ["[]", "{\"id\": \"evt_1\"}", "not json"] {
        let (status, answer) = send(&app, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_event")),
            "{body}"
        );
    }
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn without_a_secret_every_delivery_is_refused() {
    let app = spawn_app_with("backend-api", TestBackends::new(), BTreeMap::new()).await;
    let body = event(
        "evt_1",
        "charge.succeeded",
        now(),
        serde_json::json!({"id": "ch_1"}),
    );

    let (status, answer) = send(&app, &body).await;

    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (503, Some("webhook_not_configured"))
    );
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn unknown_customers_and_other_types_are_recorded_and_acknowledged_once() {
    let app = billing_app().await;
    let stranger = Sub {
        customer: "cus_nobody",
        user_id: None,
        status: "active",
        lookup_key: "pro",
    };
    let unknown = subscription_event("evt_u", "customer.subscription.updated", now(), &stranger);
    let other = event(
        "evt_c",
        "charge.succeeded",
        now(),
        serde_json::json!({"id": "ch_1"}),
    );

    assert_eq!(
        send(&app, &unknown).await,
        (
            200,
            serde_json::json!({"received": true, "outcome": "unknown_customer"})
        )
    );
    assert_eq!(
        send(&app, &unknown).await.1["outcome"],
        "duplicate",
        "not retried forever"
    );
    assert_eq!(send(&app, &other).await.1["outcome"], "ignored");

    let raw = Raw::of(&app).await;
    let unknowns = "SELECT COUNT(*) FROM stripe_events WHERE outcome = 'unknown_customer' AND customer_id = 'cus_nobody'";
    assert_eq!(raw.scalar(unknowns).await, 1);
    assert_eq!(stored_events(&app).await, 2);
    assert_eq!(raw.scalar("SELECT COUNT(*) FROM subscriptions").await, 0);
}

#[tokio::test]
async fn an_older_event_arriving_late_does_not_undo_a_newer_one() {
    let app = billing_app().await;
    let ada = signup(&app, "ada").await;
    let t = now() - 600;
    let deleted = subscription_event(
        "evt_del",
        "customer.subscription.deleted",
        t,
        &sub("cus_late", &ada, "canceled", "pro"),
    );
    send(&app, &deleted).await;
    let older = subscription_event(
        "evt_old",
        "customer.subscription.updated",
        t - 60,
        &sub("cus_late", &ada, "active", "pro"),
    );

    let (status, ack) = send(&app, &older).await;

    assert_eq!((status, ack["outcome"].as_str()), (200, Some("stale")));
    assert_eq!(quota(&app, &ada).await["tier"], "free");
}
