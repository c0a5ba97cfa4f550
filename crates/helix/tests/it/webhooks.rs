//! zapier-integration end to end: signed events in (Standard Webhooks and the old Zapier shape),
//! stored once and queued before the 2xx; endpoints subscribing; the worker delivering each
//! event to every matching endpoint, signed, on its retry schedule, with 410, 429, timeouts, the
//! five-day disable and replays; the old read endpoints. Receivers are local servers, allowed
//! through the SSRF guard explicitly.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::admin::with_admin;
use crate::support::db::Raw;
use crate::support::eventually;
use crate::support::receiver::{Mode, Receiver};
use crate::support::spawn_app::{spawn_sibling, TestApp};
use crate::support::users::signup;
use crate::support::TestBackends;

/// The `crm` source's secret: `whsec_` + base64 of "crm-signing-key-for-tests".
const CRM_SECRET: &str = "whsec_Y3JtLXNpZ25pbmcta2V5LWZvci10ZXN0cw==";
const ZAPIER_SECRET: &str = "zapier-plain-secret";

struct World {
    api: TestApp,
    hooks: TestApp,
    admin: String,
    receiver: Receiver,
    _worker: Option<TestApp>,
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ZAPIER_SECRET", ZAPIER_SECRET),
        (
            "HELIX_HOOK_SECRETS",
            "crm=whsec_Y3JtLXNpZ25pbmcta2V5LWZvci10ZXN0cw==",
        ),
        ("HELIX_OUTBOUND_ALLOW", "127.0.0.1/32"),
        ("HELIX_WEBHOOK_TIMEOUT_SECS", "1"),
    ]
}

/// Both webhook lanes.
const BOTH_LANES: Option<&str> = Some("webhooks:concurrency=50;webhooks-slow:concurrency=10");

/// backend-api (for accounts), zapier-integration, and a worker on `queues` if given.
async fn world(queues: Option<&'static str>) -> World {
    let (api, admin) = with_admin(TestBackends::new(), &[]).await;
    let hooks = spawn_sibling(&api, "zapier-integration", &env()).await;
    let worker = if let Some(queues) = queues {
        let mut vars = env();
        vars.push(("HELIX_WORKER_QUEUES", queues));
        let worker = spawn_sibling(&api, "worker", &vars).await;
        helix::services::start(&worker.state).expect("the worker starts");
        Some(worker)
    } else {
        None
    };
    World {
        api,
        hooks,
        admin,
        receiver: Receiver::start().await,
        _worker: worker,
    }
}

/// A refused delivery: what is wrong with it, its headers, its body.
type Refusal<'a> = (&'a str, Vec<(&'static str, String)>, &'a str);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The Standard Webhooks signature of a message, computed here.
fn sign(secret: &str, id: &str, t: i64, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{t}.{body}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{sig}")
}

fn zapier_sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(ZAPIER_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// POST a body with the given headers; the status and JSON answer.
async fn send(app: &TestApp, path: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn standard(id: &str, t: i64, signature: String) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", signature),
    ]
}

/// Send a signed `crm` event; the answer.
async fn crm_event(app: &TestApp, id: &str, body: &str) -> (u16, Value) {
    let t = now();
    let headers = standard(id, t, sign(CRM_SECRET, id, t, body));
    send(app, "/api/hooks/crm", &headers, body).await
}

async fn event_rows(app: &TestApp) -> i64 {
    Raw::of(app)
        .await
        .scalar("SELECT COUNT(*) FROM webhook_events")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_are_stored_once_and_anything_else_is_refused() {
    let w = world(None).await;
    let body = r#"{"type":"lead.created","lead":{"name":"Ada"}}"#;

    let (status, first) = crm_event(&w.hooks, "msg_1", body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "accepted");
    let (status, again) = crm_event(&w.hooks, "msg_1", body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["id"], first["id"], "the first copy's id");

    let t = now();
    let good = sign(CRM_SECRET, "msg_2", t, body);
    // What is wrong, the headers sent, the body: each one is refused with 401.
    let refusals: Vec<Refusal> = vec![
        ("no signature", vec![], body),
        (
            "wrong secret",
            standard("msg_2", t, sign("whsec_b3RoZXI=", "msg_2", t, body)),
            body,
        ),
        ("another body", standard("msg_2", t, good.clone()), "{}"),
        (
            "stale",
            standard("msg_2", t - 600, sign(CRM_SECRET, "msg_2", t - 600, body)),
            body,
        ),
        (
            "from the future",
            standard("msg_2", t + 600, sign(CRM_SECRET, "msg_2", t + 600, body)),
            body,
        ),
        (
            "signature not base64",
            standard("msg_2", t, "v1,***not-base64***".into()),
            body,
        ),
        (
            "timestamp not a number",
            vec![
                ("webhook-id", "msg_2".into()),
                ("webhook-timestamp", "yesterday".into()),
                ("webhook-signature", good.clone()),
            ],
            body,
        ),
        (
            "only some headers",
            vec![("webhook-signature", good.clone())],
            body,
        ),
    ];
    for (what, headers, body) in refusals {
        let (status, answer) = send(&w.hooks, "/api/hooks/crm", &headers, body).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_signature", "{what}");
    }

    let not_json = "lead=Ada";
    let (status, answer) = crm_event(&w.hooks, "msg_3", not_json).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("malformed_json"))
    );
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(70 * 1024));
    let (status, answer) = crm_event(&w.hooks, "msg_4", &huge).await;
    assert_eq!(status, 413, "{answer}");
    let (status, answer) = send(&w.hooks, "/api/hooks/nobody", &standard("m", t, good), body).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (404, json!("unknown_source"))
    );

    assert_eq!(
        event_rows(&w.api).await,
        1,
        "only the accepted event is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_zapier_path_requires_its_signature() {
    let w = world(None).await;
    let body = r#"{"id":"zap-77","event":"form.submitted","email":"a@example.com"}"#;

    let (status, answer) = send(&w.hooks, "/webhook/zapier", &[], body).await;
    assert_eq!(status, 401, "unsigned is refused: {answer}");
    let (status, _) = send(
        &w.hooks,
        "/webhook/zapier",
        &[("x-zapier-signature", "not hex at all".into())],
        body,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send(
        &w.hooks,
        "/webhook/zapier",
        &[("x-zapier-signature", zapier_sign("{}"))],
        body,
    )
    .await;
    assert_eq!(status, 401, "a signature of another body");

    let signed = [("x-zapier-signature", zapier_sign(body))];
    let (status, first) = send(&w.hooks, "/webhook/zapier", &signed, body).await;
    assert_eq!((status, first["status"].clone()), (200, json!("accepted")));
    let (status, again) = send(&w.hooks, "/webhook/zapier", &signed, body).await;
    assert_eq!((status, again["status"].clone()), (200, json!("duplicate")));
    let prefixed = [(
        "x-zapier-signature",
        format!("sha256={}", zapier_sign(body)),
    )];
    let (status, _) = send(&w.hooks, "/api/hooks/zapier", &prefixed, body).await;
    assert_eq!(status, 200, "the same source on the new path");

    assert_eq!(event_rows(&w.api).await, 1);
    let (_, events) = w.hooks.get_as("/api/events?source=zapier", &w.admin).await;
    assert_eq!(events["count"], 1, "{events}");
    assert_eq!(events["events"][0]["type"], "form.submitted");
    assert_eq!(events["events"][0]["event_id"], "zap-77");
}

async fn subscribe(w: &World, token: &str, path: &str, types: Value) -> Value {
    let (status, sub) = w
        .hooks
        .post(
            "/api/hooks/subscriptions",
            Some(token),
            json!({"target_url": w.receiver.url(path), "event_types": types}),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    assert!(sub["secret"].as_str().unwrap().starts_with("whsec_"));
    sub
}

/// The deliveries the token's owner sees, by status.
async fn deliveries(w: &World, token: &str, query: &str) -> Vec<Value> {
    let (status, page) = w
        .hooks
        .get_as(&format!("/api/hooks/deliveries?{query}"), token)
        .await;
    assert_eq!(status, 200, "{page}");
    page["deliveries"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_every_matching_endpoint_signed() {
    let w = world(BOTH_LANES).await;
    let ada = signup(&w.api, "ada").await;
    let bob = signup(&w.api, "bob").await;
    let leads = subscribe(&w, &ada.jwt, "/ada", json!(["lead.created"])).await;
    let all = subscribe(&w, &bob.jwt, "/bob", json!(["*"])).await;
    subscribe(&w, &bob.jwt, "/other", json!(["invoice.paid"])).await;

    let body = r#"{"type":"lead.created","lead":{"name":"Ada"}}"#;
    let (status, event) = crm_event(&w.hooks, "msg_fan", body).await;
    assert_eq!(status, 200, "{event}");

    eventually("both endpoints got the event", async || {
        w.receiver.hits("/ada").len() == 1 && w.receiver.hits("/bob").len() == 1
    })
    .await;
    let ada_hit = &w.receiver.hits("/ada")[0];
    let bob_hit = &w.receiver.hits("/bob")[0];
    assert!(ada_hit.signed_with(leads["secret"].as_str().unwrap()));
    assert!(bob_hit.signed_with(all["secret"].as_str().unwrap()));
    assert!(!ada_hit.signed_with(all["secret"].as_str().unwrap()));
    assert_eq!(ada_hit.id, bob_hit.id, "one message id per event");
    assert_eq!(ada_hit.json()["type"], "lead.created");
    assert_eq!(ada_hit.json()["data"]["lead"]["name"], "Ada");
    assert!(w.receiver.hits("/other").is_empty());

    eventually("ada's delivery is recorded as succeeded", async || {
        deliveries(&w, &ada.jwt, "status=succeeded").await.len() == 1
    })
    .await;
    let mine = deliveries(&w, &ada.jwt, "").await;
    assert_eq!(mine.len(), 1, "ada sees only her own");
    let attempts = mine[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status_code"], 204);
    let id = mine[0]["id"].as_str().unwrap();
    let (status, _) = w
        .hooks
        .get_as(&format!("/api/hooks/deliveries/{id}"), &bob.jwt)
        .await;
    assert_eq!(status, 404, "not bob's");
    let (status, one) = w
        .hooks
        .get_as(&format!("/api/hooks/deliveries/{id}"), &ada.jwt)
        .await;
    assert_eq!((status, one["status"].clone()), (200, json!("succeeded")));

    // A replay sends it again, under the same message id.
    let (status, replayed) = w
        .hooks
        .call(
            Method::POST,
            &format!("/api/hooks/deliveries/{id}/replay"),
            Some(&ada.jwt),
            None,
        )
        .await;
    assert_eq!(status, 202, "{replayed}");
    eventually("the replay arrived", async || {
        w.receiver.hits("/ada").len() == 2
    })
    .await;
    assert_eq!(w.receiver.hits("/ada")[1].id, ada_hit.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_targets_must_be_http_and_outside_the_network() {
    let w = world(None).await;
    let ada = signup(&w.api, "ada").await;
    for target in [
        "ftp://example.com/hook",
        "not a url",
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/hook",
        "http://user:pw@example.com/hook",
    ] {
        let (status, body) = w
            .hooks
            .post(
                "/api/hooks/subscriptions",
                Some(&ada.jwt),
                json!({"target_url": target}),
            )
            .await;
        assert_eq!(status, 422, "{target}: {body}");
        assert!(body["error"]["fields"]["target_url"].is_string(), "{body}");
    }
    let (status, body) = w
        .hooks
        .post(
            "/api/hooks/subscriptions",
            Some(&ada.jwt),
            json!({"target_url": w.receiver.url("/x"), "event_types": ["bad type!"]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = w
        .hooks
        .post(
            "/api/hooks/subscriptions",
            None,
            json!({"target_url": w.receiver.url("/x")}),
        )
        .await;
    assert_eq!(status, 401);
    let (_, list) = w.hooks.get_as("/api/hooks/subscriptions", &ada.jwt).await;
    assert_eq!(
        list["subscriptions"],
        json!([]),
        "nothing refused was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_unsubscribes_and_a_failure_is_retried_on_schedule() {
    let w = world(BOTH_LANES).await;
    let ada = signup(&w.api, "ada").await;
    w.receiver.set("/gone", Mode::Status(410));
    w.receiver.set("/flaky", Mode::Status(500));
    let gone = subscribe(&w, &ada.jwt, "/gone", json!(["*"])).await;
    subscribe(&w, &ada.jwt, "/flaky", json!(["*"])).await;

    crm_event(&w.hooks, "msg_g", r#"{"type":"t"}"#).await;
    eventually("the 410 endpoint was disabled", async || {
        let (_, list) = w.hooks.get_as("/api/hooks/subscriptions", &ada.jwt).await;
        list["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == gone["id"] && s["status"] == "disabled")
    })
    .await;
    assert_eq!(deliveries(&w, &ada.jwt, "status=gone").await.len(), 1);

    eventually(
        "the failing endpoint's first attempt is recorded",
        async || {
            let pending = deliveries(&w, &ada.jwt, "status=pending").await;
            pending.len() == 1 && pending[0]["attempts"].as_array().unwrap().len() == 1
        },
    )
    .await;
    let pending = deliveries(&w, &ada.jwt, "status=pending").await;
    let first = &pending[0]["attempts"][0];
    assert_eq!(first["status_code"], 500);
    assert_eq!(first["error"], "HTTP 500");
    let at = chrono::DateTime::parse_from_rfc3339(first["at"].as_str().unwrap()).unwrap();
    let next =
        chrono::DateTime::parse_from_rfc3339(pending[0]["next_attempt_at"].as_str().unwrap())
            .unwrap();
    let wait = (next - at).num_milliseconds();
    assert!((4_000..=6_000).contains(&wait), "about 5 s, got {wait} ms");

    w.receiver.set("/flaky", Mode::Status(200));
    eventually("the second attempt succeeds", async || {
        deliveries(&w, &ada.jwt, "status=succeeded").await.len() == 1
    })
    .await;
    let hits = w.receiver.hits("/flaky");
    assert_eq!(hits.len(), 2);
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(3_900));
    assert_eq!(w.receiver.hits("/gone").len(), 1, "never called again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_slow_endpoints_wait_a_minute_and_hold_up_nobody() {
    let w = world(Some("webhooks:concurrency=50")).await;
    let ada = signup(&w.api, "ada").await;
    w.receiver.set("/throttled", Mode::Throttle("120"));
    w.receiver
        .set("/slow", Mode::Slow(Duration::from_secs(300)));
    subscribe(&w, &ada.jwt, "/throttled", json!(["*"])).await;
    subscribe(&w, &ada.jwt, "/slow", json!(["*"])).await;
    subscribe(&w, &ada.jwt, "/healthy", json!(["*"])).await;

    crm_event(&w.hooks, "msg_s", r#"{"type":"t"}"#).await;
    eventually("the healthy endpoint got it", async || {
        w.receiver.hits("/healthy").len() == 1
    })
    .await;
    eventually("both others have an attempt recorded", async || {
        let pending = deliveries(&w, &ada.jwt, "status=pending").await;
        pending.len() == 2
            && pending
                .iter()
                .all(|d| d["attempts"].as_array().unwrap().len() == 1)
    })
    .await;
    for d in deliveries(&w, &ada.jwt, "status=pending").await {
        let attempt = &d["attempts"][0];
        let at = chrono::DateTime::parse_from_rfc3339(attempt["at"].as_str().unwrap()).unwrap();
        let next =
            chrono::DateTime::parse_from_rfc3339(d["next_attempt_at"].as_str().unwrap()).unwrap();
        let wait = (next - at).num_seconds();
        match attempt["status_code"].as_u64() {
            Some(429) => assert!(wait >= 119, "Retry-After 120 honoured, got {wait} s"),
            None => {
                assert_eq!(attempt["error"], "timed out");
                assert!(
                    wait >= 59,
                    "at least a minute after a timeout, got {wait} s"
                );
            }
            other => panic!("unexpected attempt {other:?}: {d}"),
        }
    }

    // Both endpoints are failing now: the next event's deliveries to them wait in the slow
    // lane (which this worker does not serve), and the healthy endpoint still gets it at once.
    crm_event(&w.hooks, "msg_s2", r#"{"type":"t"}"#).await;
    eventually("the healthy endpoint got the second event", async || {
        w.receiver.hits("/healthy").len() == 2
    })
    .await;
    let jobs = w
        .hooks
        .state
        .jobs()
        .expect("a job backend")
        .backend()
        .clone();
    eventually("two deliveries wait in the slow lane", async || {
        let filter = helix_jobs::ListFilter {
            queue: Some("webhooks-slow".into()),
            limit: 10,
            ..helix_jobs::ListFilter::default()
        };
        jobs.list(&filter).await.unwrap().len() == 2
    })
    .await;
    assert_eq!(
        w.receiver.hits("/slow").len(),
        1,
        "not tried again in the main lane"
    );
    assert_eq!(w.receiver.hits("/throttled").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_five_days_is_disabled_and_its_owner_told() {
    let w = world(BOTH_LANES).await;
    let ada = signup(&w.api, "ada").await;
    w.receiver.set("/down", Mode::Status(503));
    let sub = subscribe(&w, &ada.jwt, "/down", json!(["*"])).await;
    let six_days_ago = chrono::Utc::now().timestamp_micros() - 6 * 86_400 * 1_000_000;
    Raw::of(&w.api)
        .await
        .exec(&format!(
            "UPDATE webhook_subscriptions SET failing_since_us = {six_days_ago} WHERE id = '{}'",
            sub["id"].as_str().unwrap()
        ))
        .await;

    crm_event(&w.hooks, "msg_d", r#"{"type":"t"}"#).await;
    eventually("the endpoint was disabled", async || {
        let (_, list) = w.hooks.get_as("/api/hooks/subscriptions", &ada.jwt).await;
        list["subscriptions"][0]["status"] == "disabled"
    })
    .await;
    let (_, list) = w.hooks.get_as("/api/hooks/subscriptions", &ada.jwt).await;
    assert_eq!(
        list["subscriptions"][0]["disabled_reason"],
        "every delivery failed for 5 days"
    );
    assert_eq!(deliveries(&w, &ada.jwt, "status=failed").await.len(), 1);
    let audit = w
        .api
        .state
        .store()
        .unwrap()
        .audit()
        .page(0, 1000)
        .await
        .unwrap();
    let told = audit
        .iter()
        .find(|e| e.action == "webhook_endpoint_disabled")
        .expect("an audit entry");
    assert_eq!(told.actor.map(|a| a.to_string()), Some(ada.id.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_is_for_the_owner_and_stops_deliveries() {
    let w = world(BOTH_LANES).await;
    let ada = signup(&w.api, "ada").await;
    let bob = signup(&w.api, "bob").await;
    w.receiver.set("/a", Mode::Status(502));
    let sub = subscribe(&w, &ada.jwt, "/a", json!(["*"])).await;
    crm_event(&w.hooks, "msg_u", r#"{"type":"t"}"#).await;
    let path = format!("/api/hooks/subscriptions/{}", sub["id"].as_str().unwrap());
    eventually("the delivery waits for its retry", async || {
        let pending = deliveries(&w, &ada.jwt, "status=pending").await;
        pending.len() == 1 && pending[0]["attempts"].as_array().unwrap().len() == 1
    })
    .await;

    let (status, _) = w
        .hooks
        .call(Method::DELETE, &path, Some(&bob.jwt), None)
        .await;
    assert_eq!(status, 404, "not bob's");
    let (status, _) = w
        .hooks
        .call(Method::DELETE, &path, Some(&ada.jwt), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = w
        .hooks
        .call(Method::DELETE, &path, Some(&ada.jwt), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(deliveries(&w, &ada.jwt, "status=cancelled").await.len(), 1);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        w.receiver.hits("/a").len(),
        1,
        "no retry after the unsubscribe"
    );
    let (status, body) = w
        .hooks
        .get_as("/api/hooks/deliveries?status=lost", &ada.jwt)
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_endpoints_keep_working() {
    let w = world(BOTH_LANES).await;
    let ada = signup(&w.api, "ada").await;
    subscribe(&w, &ada.jwt, "/zap", json!(["deal.won"])).await;

    let (status, fired) = w
        .hooks
        .post(
            "/api/trigger",
            Some(&ada.jwt),
            json!({"event_type": "deal.won", "data": {"amount": 5}}),
        )
        .await;
    assert_eq!((status, fired["status"].clone()), (202, json!("accepted")));
    eventually("the trigger was delivered", async || {
        w.receiver.hits("/zap").len() == 1
    })
    .await;
    assert_eq!(
        w.receiver.hits("/zap")[0].json()["data"]["data"]["amount"],
        5
    );

    let (status, done) = w
        .hooks
        .post(
            "/api/action",
            Some(&ada.jwt),
            json!({"action": "record_event", "data": {"event_type": "note.added", "data": {}}}),
        )
        .await;
    assert_eq!(status, 202, "{done}");
    let (status, bad) = w
        .hooks
        .post(
            "/api/action",
            Some(&ada.jwt),
            json!({"action": "launch", "data": {}}),
        )
        .await;
    assert_eq!(status, 422, "{bad}");

    let (_, triggers) = w.hooks.get_as("/api/triggers", &ada.jwt).await;
    let keys: Vec<&str> = triggers["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"*") && keys.contains(&"deal.won"),
        "{keys:?}"
    );
    let (_, actions) = w.hooks.get_as("/api/actions", &ada.jwt).await;
    assert_eq!(actions["actions"][0]["key"], "record_event");
    let (_, status_page) = w.hooks.get_as("/api/webhooks/status", &ada.jwt).await;
    assert_eq!(status_page["subscriptions"]["active"], 1);
    assert_eq!(status_page["sources"], json!(["crm", "zapier"]));
    let (status, _) = w.hooks.get_as("/api/events", &ada.jwt).await;
    assert_eq!(status, 403, "events are for admins");
    let (_, events) = w.hooks.get_as("/api/events", &w.admin).await;
    assert_eq!(events["count"], 2);
}
