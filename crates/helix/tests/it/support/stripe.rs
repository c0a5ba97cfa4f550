//! Stripe as the tests meet it: events shaped as Stripe sends them (envelope, `data.object`,
//! `previous_attributes`), signed as Stripe signs them — `Stripe-Signature: t=<unix>,v1=<hex>`
//! where the hex is HMAC-SHA256, keyed with the endpoint secret, of `<t>.<raw body>` — with a
//! test secret, and delivered to `POST /api/webhooks/stripe`.

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::spawn_app::TestApp;

pub const SECRET: &str = "whsec_test_5b2c1e0f9d8a7b6c5d4e3f2a1b0c9d8e";

/// Unix seconds now.
pub fn now() -> i64 {
    Utc::now().timestamp()
}

/// `t=…,v1=…` for `body` signed with `secret` at `t`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A subscription as Stripe's API version 2024-06-20 shapes it.
pub struct Sub<'a> {
    pub customer: &'a str,
    /// Put in the metadata as `helix_user_id`, as a checkout session would.
    pub user_id: Option<&'a str>,
    pub status: &'a str,
    /// The price's lookup key: `pro`, `enterprise` or anything else.
    pub lookup_key: &'a str,
}

/// An event envelope around `object`.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {"object": object, "previous_attributes": {}},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": "req_test", "idempotency_key": null},
        "type": kind,
    })
    .to_string()
}

/// `customer.subscription.created|updated|deleted` for `sub`.
pub fn subscription_event(id: &str, kind: &str, created: i64, sub: &Sub) -> String {
    let metadata = match sub.user_id {
        Some(user) => json!({"helix_user_id": user}),
        None => json!({}),
    };
    let object = json!({
        "id": format!("sub_{}", sub.customer.trim_start_matches("cus_")),
        "object": "subscription",
        "billing_cycle_anchor": created,
        "cancel_at_period_end": false,
        "created": created,
        "currency": "usd",
        "current_period_start": created,
        "current_period_end": created + 30 * 86_400,
        "customer": sub.customer,
        "items": {
            "object": "list",
            "data": [{
                "id": "si_test",
                "object": "subscription_item",
                "price": {
                    "id": format!("price_{}", sub.lookup_key),
                    "object": "price",
                    "active": true,
                    "currency": "usd",
                    "lookup_key": sub.lookup_key,
                    "product": "prod_test",
                    "recurring": {"interval": "month", "interval_count": 1},
                    "type": "recurring",
                    "unit_amount": 2000,
                },
                "quantity": 1,
            }],
            "has_more": false,
            "url": "/v1/subscription_items?subscription=sub_test",
        },
        "latest_invoice": "in_test",
        "livemode": false,
        "metadata": metadata,
        "status": sub.status,
    });
    event(id, kind, created, object)
}

/// `invoice.payment_failed` for `customer`.
pub fn payment_failed(id: &str, created: i64, customer: &str) -> String {
    let object = json!({
        "id": "in_test",
        "object": "invoice",
        "amount_due": 2000,
        "attempt_count": 1,
        "billing_reason": "subscription_cycle",
        "customer": customer,
        "status": "open",
        "subscription": "sub_test",
    });
    event(id, "invoice.payment_failed", created, object)
}

/// POST `body` with the given `Stripe-Signature` header (none when `None`).
pub async fn deliver(app: &TestApp, body: &str, signature: Option<String>) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/api/webhooks/stripe"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned());
    if let Some(value) = signature {
        request = request.header("Stripe-Signature", value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// Deliver `body` signed now with the test secret.
pub async fn send(app: &TestApp, body: &str) -> (u16, Value) {
    deliver(app, body, Some(signature(SECRET, now(), body))).await
}
