//! websocket-streaming, end to end over real WebSockets: authentication at connect, who may use
//! which channel, offsets and recovery, bad input, slow consumers, token expiry, the drain, and
//! the old consciousness endpoints. Each test runs on the test backends (SQLite + in-process bus,
//! or PostgreSQL + Redis), with backend-api beside the hub as in a deployment.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::users::{self, User};
use crate::support::ws::{hub, Client, Closed};

const STREAM: &str = "consciousness:stream";

async fn conversation(hub: &crate::support::ws::Hub, user: &User) -> String {
    let (status, body) = hub
        .api
        .post("/api/conversations", Some(&user.jwt), json!({"title": "t"}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("an id").to_owned()
}

/// Publish `data` on `channel` over HTTP as the admin; the offset it got.
async fn publish(hub: &crate::support::ws::Hub, channel: &str, data: Value) -> u64 {
    let (status, body) = hub
        .ws
        .post(
            "/api/publish",
            Some(&hub.admin),
            json!({"channel": channel, "data": data}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["offset"].as_u64().expect("an offset")
}

async fn expect_message(client: &mut Client, channel: &str, offset: u64) -> Value {
    let frame = client.next().await;
    assert_eq!(
        (
            frame["type"].as_str(),
            frame["channel"].as_str(),
            frame["offset"].as_u64()
        ),
        (Some("message"), Some(channel), Some(offset)),
        "{frame}"
    );
    frame
}

/// The connection still answers, and nothing else was waiting to be read.
async fn still_open(client: &mut Client) {
    client.send(json!({"type": "ping", "id": 9})).await;
    let frame = client.next().await;
    assert_eq!(
        (frame["type"].as_str(), frame["id"].as_i64()),
        (Some("pong"), Some(9)),
        "{frame}"
    );
}

#[tokio::test]
async fn a_connection_needs_a_valid_credential_and_is_told_why_not() {
    let hub = hub(&[]).await;
    let user = users::signup(&hub.api, "ada").await;
    let mut none = Client::open(hub.ws.addr, "/ws", &[]).await;
    let closed = none.closed().await;
    assert_eq!(closed.code, 4401);
    assert!(
        closed.reason.contains("authentication required"),
        "{closed:?}"
    );
    let mut forged = Client::open(hub.ws.addr, "/ws?token=not.a.jwt", &[]).await;
    assert_eq!(forged.closed().await.code, 4401);

    // The three ways in: a header, the query (browsers), the subprotocol (browsers).
    Client::connect(&hub.ws, &user.jwt).await;
    let key = users::key(&hub.api, &user, &["read"]).await;
    Client::connect(&hub.ws, &key).await;
    let mut by_query = Client::open(hub.ws.addr, &format!("/ws?token={}", user.jwt), &[]).await;
    assert_eq!(by_query.next().await["user_id"], user.id.as_str());
    let protocols = format!("helix.v1, bearer.{}", user.jwt);
    let mut by_protocol = Client::open(
        hub.ws.addr,
        "/ws",
        &[("sec-websocket-protocol", &protocols)],
    )
    .await;
    assert_eq!(by_protocol.protocol.as_deref(), Some("helix.v1"));
    assert_eq!(by_protocol.next().await["type"], "welcome");

    // A plain GET is told to upgrade, in JSON.
    let (status, body) = hub.ws.get_as("/ws", &user.jwt).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (426, Some("upgrade_required"))
    );
}

#[tokio::test]
async fn every_subscriber_gets_every_message_with_consecutive_offsets() {
    let hub = hub(&[]).await;
    let user = users::signup(&hub.api, "ada").await;
    let mut a = Client::connect(&hub.ws, &user.jwt).await;
    let mut b = Client::connect(&hub.ws, &user.jwt).await;
    let start = a.subscribe(STREAM).await["offset"].as_u64().unwrap();
    b.subscribe(STREAM).await;
    // Over HTTP and over the admin's own WebSocket.
    let first = publish(&hub, STREAM, json!({"n": 1})).await;
    assert_eq!(first, start + 1);
    let mut admin = Client::connect(&hub.ws, &hub.admin).await;
    admin
        .send(json!({"type": "publish", "channel": STREAM, "data": {"n": 2}, "id": "p2"}))
        .await;
    let ack = admin.next().await;
    assert_eq!(
        (ack["type"].as_str(), ack["id"].as_str()),
        (Some("published"), Some("p2"))
    );
    assert_eq!(ack["offset"].as_u64(), Some(first + 1));
    for client in [&mut a, &mut b] {
        let one = expect_message(client, STREAM, first).await;
        assert_eq!(one["data"], json!({"n": 1}));
        let two = expect_message(client, STREAM, first + 1).await;
        assert_eq!(two["epoch"], one["epoch"]);
    }
    // A user may read the stream but not write it; the refusal leaves the connection up.
    a.send(json!({"type": "publish", "channel": STREAM, "data": {}}))
        .await;
    let refused = a.next().await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    still_open(&mut a).await;
    let (status, _) = hub
        .ws
        .post(
            "/api/publish",
            Some(&user.jwt),
            json!({"channel": STREAM, "data": 1}),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn conversations_and_user_channels_are_their_owners_alone() {
    let hub = hub(&[]).await;
    let (ada, bob) = (
        users::signup(&hub.api, "ada").await,
        users::signup(&hub.api, "bob").await,
    );
    let id = conversation(&hub, &ada).await;
    let channel = format!("conversation:{id}");
    let mut web = Client::connect(&hub.ws, &ada.jwt).await;
    let mut desktop = Client::connect(&hub.ws, &ada.jwt).await;
    web.subscribe(&channel).await;
    desktop.subscribe(&channel).await;
    let mut intruder = Client::connect(&hub.ws, &bob.jwt).await;
    for refused in [
        channel.clone(),
        format!("user:{}", ada.id),
        "agent:coordination".into(),
    ] {
        intruder
            .send(json!({"type": "subscribe", "channel": refused}))
            .await;
        let frame = intruder.next().await;
        assert_eq!(
            (frame["code"].as_str(), frame["channel"].as_str()),
            (Some("forbidden"), Some(refused.as_str()))
        );
    }
    intruder.subscribe(&format!("user:{}", bob.id)).await;
    still_open(&mut intruder).await;

    // A message appended over REST reaches both of the owner's clients, with its seq.
    let (status, body) = hub
        .api
        .post(
            &format!("/api/conversations/{id}/messages"),
            Some(&ada.jwt),
            json!({"role": "user", "content": "hello"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for client in [&mut web, &mut desktop] {
        let frame = expect_message(client, &channel, 1).await;
        assert_eq!(frame["data"]["type"], "message.created");
        assert_eq!(frame["data"]["seq"], 1);
        assert_eq!(frame["data"]["message"]["content"], "hello");
    }
    // The owner may publish ephemeral events (typing…) on it; nobody else may.
    web.send(json!({"type": "publish", "channel": channel, "data": {"typing": true}}))
        .await;
    assert_eq!(web.next().await["type"], "published");
    assert_eq!(
        expect_message(&mut desktop, &channel, 2).await["data"]["typing"],
        true
    );
    let (status, _) = hub
        .ws
        .post(
            "/api/publish",
            Some(&bob.jwt),
            json!({"channel": channel, "data": 1}),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_reconnecting_client_gets_exactly_what_it_missed_or_is_told_it_cannot() {
    let hub = hub(&[("HELIX_WS_HISTORY_SIZE", "5")]).await;
    let user = users::signup(&hub.api, "ada").await;
    let mut client = Client::connect(&hub.ws, &user.jwt).await;
    let base = client.subscribe(STREAM).await["offset"].as_u64().unwrap();
    publish(&hub, STREAM, json!({"n": 1})).await;
    let seen = expect_message(&mut client, STREAM, base + 1).await;
    let epoch = seen["epoch"].as_str().unwrap().to_owned();
    client.close().await;

    for n in 2..=4 {
        publish(&hub, STREAM, json!({"n": n})).await;
    }
    let mut back = Client::connect(&hub.ws, &user.jwt).await;
    back.send(json!({"type": "subscribe", "channel": STREAM, "since": base + 1, "epoch": epoch}))
        .await;
    let subscribed = back.next().await;
    assert_eq!(
        (
            subscribed["recovered"].as_bool(),
            subscribed["offset"].as_u64()
        ),
        (Some(true), Some(base + 4))
    );
    for n in 2..=4 {
        let frame = expect_message(&mut back, STREAM, base + n).await;
        assert_eq!(frame["data"]["n"], n);
    }
    publish(&hub, STREAM, json!({"n": 5})).await;
    expect_message(&mut back, STREAM, base + 5).await;

    // Six more: the five kept no longer reach back to base + 5.
    for n in 6..=11 {
        publish(&hub, STREAM, json!({"n": n})).await;
    }
    let mut late = Client::connect(&hub.ws, &user.jwt).await;
    late.send(json!({"type": "subscribe", "channel": STREAM, "since": base + 5, "epoch": epoch}))
        .await;
    let gap = late.next().await;
    assert_eq!(
        (gap["recovered"].as_bool(), gap["offset"].as_u64()),
        (Some(false), Some(base + 11))
    );
    let mut stranger = Client::connect(&hub.ws, &user.jwt).await;
    stranger
        .send(json!({"type": "subscribe", "channel": STREAM, "since": base + 10, "epoch": "0000000000000000"}))
        .await;
    assert_eq!(stranger.next().await["recovered"], false);
    // Both go on live from the head.
    publish(&hub, STREAM, json!({"n": 12})).await;
    expect_message(&mut late, STREAM, base + 12).await;
    expect_message(&mut stranger, STREAM, base + 12).await;
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_connection_stays_up() {
    let hub = hub(&[("HELIX_WS_MAX_SUBSCRIPTIONS", "2")]).await;
    let user = users::signup(&hub.api, "ada").await;
    let mut client = Client::connect(&hub.ws, &user.jwt).await;
    let cases: Vec<(Message, &str)> = vec![
        (Message::text("not json"), "bad_frame"),
        (Message::text(r#"{"type":"shout"}"#), "bad_frame"),
        (Message::text(r#"{"type":"subscribe"}"#), "bad_frame"),
        (Message::binary(vec![1, 2, 3]), "bad_frame"),
        (
            Message::text(r#"{"type":"subscribe","channel":"news"}"#),
            "unknown_channel",
        ),
        (
            Message::text(r#"{"type":"subscribe","channel":"x y{}"}"#),
            "bad_channel",
        ),
        (
            Message::text(r#"{"type":"unsubscribe","channel":"service:health"}"#),
            "not_subscribed",
        ),
    ];
    for (frame, code) in cases {
        client.send_raw(frame).await;
        let reply = client.next().await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{reply}"
        );
    }
    client.subscribe(STREAM).await;
    client.subscribe("service:health").await;
    client
        .send(json!({"type": "subscribe", "channel": format!("user:{}", user.id)}))
        .await;
    assert_eq!(client.next().await["code"], "too_many_subscriptions");
    client
        .send(json!({"type": "subscribe", "channel": STREAM}))
        .await;
    assert_eq!(client.next().await["code"], "already_subscribed");
    client
        .send(json!({"type": "unsubscribe", "channel": STREAM}))
        .await;
    assert_eq!(client.next().await["type"], "unsubscribed");
    still_open(&mut client).await;
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009_and_a_flood_with_4429() {
    let hub = hub(&[
        ("HELIX_WS_MAX_FRAME_BYTES", "1024"),
        ("HELIX_WS_FRAMES_PER_SECOND", "5"),
        ("HELIX_WS_MAX_SUBSCRIPTIONS", "1"),
    ])
    .await;
    let user = users::signup(&hub.api, "ada").await;
    let mut big = Client::connect(&hub.ws, &user.jwt).await;
    big.send(json!({"type": "ping", "id": "x".repeat(2000)}))
        .await;
    assert_eq!(big.closed().await.code, 1009);

    let mut flood = Client::connect(&hub.ws, &user.jwt).await;
    for _ in 0..100 {
        flood.send(json!({"type": "ping"})).await;
    }
    let mut limited = 0;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), flood.next_or_close()).await {
            Ok(Ok(frame)) if frame["code"] == "rate_limited" => limited += 1,
            Ok(Ok(_)) => {}
            Ok(Err(closed)) => break closed,
            Err(_) => panic!("the flood was never closed"),
        }
    };
    assert!(limited > 0, "told to slow down first");
    assert_eq!(closed.code, 4429);
}

#[tokio::test]
async fn a_slow_consumer_is_cut_off_and_nobody_else_waits_for_it() {
    let hub = hub(&[("HELIX_WS_SEND_QUEUE", "16")]).await;
    let user = users::signup(&hub.api, "ada").await;
    let mut slow = Client::connect(&hub.ws, &user.jwt).await;
    let mut fast = Client::connect(&hub.ws, &user.jwt).await;
    slow.subscribe(STREAM).await;
    let base = fast.subscribe(STREAM).await["offset"].as_u64().unwrap();
    let reader = tokio::spawn(async move {
        for n in 1..=400 {
            expect_message(&mut fast, STREAM, base + n).await;
        }
    });
    // 400 × 48 KiB: far more than the slow client's socket buffers and queue can hold.
    let pad = "x".repeat(48 * 1024);
    for n in 1..=400 {
        publish(&hub, STREAM, json!({"n": n, "pad": pad})).await;
    }
    reader.await.expect("the fast client got all 400, in order");
    let closed = slow.closed().await;
    assert_eq!(
        closed,
        Closed {
            code: 4001,
            reason: "slow consumer".into()
        }
    );
    let metrics = hub.ws.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"reason="slow_consumer""#), "{metrics}");
}

#[tokio::test]
async fn an_expiring_token_is_renewed_or_the_connection_closes() {
    let hub = hub(&[("HELIX_WS_TOKEN_GRACE_SECS", "1")]).await;
    let user = users::signup(&hub.api, "ada").await;
    let short = short_lived_token(&hub, &user, 1);
    let mut renews = Client::connect(&hub.ws, &short).await;
    let mut lapses = Client::connect(&hub.ws, &short).await;
    let asked = renews.next().await;
    assert_eq!(asked["type"], "token_expiring", "{asked}");
    renews
        .send(json!({"type": "auth", "token": user.jwt, "id": 1}))
        .await;
    let renewed = renews.next().await;
    assert_eq!(
        (renewed["type"].as_str(), renewed["id"].as_i64()),
        (Some("authenticated"), Some(1))
    );
    assert_eq!(lapses.next().await["type"], "token_expiring");
    let closed = lapses.closed().await;
    assert_eq!(
        closed,
        Closed {
            code: 4401,
            reason: "token expired".into()
        }
    );
    // The renewed one is still up after the grace period.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    still_open(&mut renews).await;
}

/// A token of `user`'s session that expires in `secs`, signed as backend-api signs.
fn short_lived_token(hub: &crate::support::ws::Hub, user: &User, secs: u64) -> String {
    let jwt = hub
        .api
        .state
        .auth()
        .expect("backend-api checks tokens")
        .jwt();
    let claims = jwt.verify(&user.jwt).expect("a valid token");
    jwt.with_ttl(Duration::from_secs(secs))
        .issue(claims.sub, claims.sid, claims.role)
}

#[tokio::test]
async fn stopping_closes_every_connection_with_going_away() {
    let hub = hub(&[("HELIX_WS_DRAIN_SECS", "0")]).await;
    let user = users::signup(&hub.api, "ada").await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = Client::connect(&hub.ws, &user.jwt).await;
        client.subscribe(STREAM).await;
        clients.push(client);
    }
    hub.ws.stop();
    for client in &mut clients {
        assert_eq!(client.closed().await.code, 1001);
    }
}

#[tokio::test]
async fn the_old_consciousness_endpoints_keep_their_shapes() {
    let hub = hub(&[]).await;
    let user = users::signup(&hub.api, "ada").await;
    let path = format!("/ws/consciousness?client_id=dash-1&token={}", user.jwt);
    let mut old = Client::open(hub.ws.addr, &path, &[]).await;
    assert_eq!(old.next().await["type"], "welcome");
    assert_eq!(old.next().await["channel"], STREAM);
    let sample = json!({
        "agent_id": "kael", "consciousness_level": 7.5,
        "ucf_metrics": {"harmony": 0.5, "resilience": 1.0, "prana": 2.0, "drishti": 3.0, "klesha": 0.1, "zoom": 1.0},
    });
    let (status, body) = hub
        .ws
        .post(
            "/api/consciousness/publish",
            Some(&hub.admin),
            sample.clone(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let frame = old.next().await;
    assert_eq!(
        (
            frame["data"]["agent_id"].as_str(),
            frame["data"]["consciousness_level"].as_f64()
        ),
        (Some("kael"), Some(7.5))
    );
    let (status, latest) = hub.ws.get_as("/api/consciousness/metrics", &user.jwt).await;
    assert_eq!((status, latest["agent_id"].as_str()), (200, Some("kael")));

    let (status, _) = hub
        .ws
        .post(
            "/api/consciousness/publish",
            Some(&user.jwt),
            sample.clone(),
        )
        .await;
    assert_eq!(status, 403);
    let mut bad = sample;
    bad["consciousness_level"] = json!(11);
    let (status, body) = hub
        .ws
        .post("/api/consciousness/publish", Some(&hub.admin), bad)
        .await;
    assert_eq!(
        (
            status,
            body["error"]["fields"]["consciousness_level"].is_string()
        ),
        (422, true),
        "{body}"
    );
    let (status, _) = hub
        .ws
        .call(
            reqwest::Method::POST,
            "/api/consciousness/publish",
            Some(&hub.admin),
            None,
        )
        .await;
    assert_eq!(status, 415);
}

#[tokio::test]
async fn two_instances_deliver_every_message_to_every_subscriber_once() {
    let hub = hub(&[]).await;
    let api_url = format!("http://{}", hub.api.addr);
    let second = crate::support::spawn_app::spawn_sibling(
        &hub.api,
        "websocket-streaming",
        &[("BACKEND_API_URL", api_url.as_str())],
    )
    .await;
    let user = users::signup(&hub.api, "ada").await;
    let mut on_first = Client::connect(&hub.ws, &user.jwt).await;
    let mut on_second = Client::connect(&second, &user.jwt).await;
    let base = on_first.subscribe(STREAM).await["offset"].as_u64().unwrap();
    on_second.subscribe(STREAM).await;
    for n in 1..=20 {
        // Alternate the instance that takes the publish.
        let app = if n % 2 == 0 { &hub.ws } else { &second };
        let (status, _) = app
            .post(
                "/api/publish",
                Some(&hub.admin),
                json!({"channel": STREAM, "data": n}),
            )
            .await;
        assert_eq!(status, 200);
    }
    for client in [&mut on_first, &mut on_second] {
        for n in 1..=20 {
            expect_message(client, STREAM, base + n).await;
        }
        // Nothing twice: the next frame is the answer to a ping, not a repeat.
        still_open(client).await;
    }
}

#[tokio::test]
async fn messages_published_while_the_bus_reconnects_are_recovered_in_order() {
    let hub = hub(&[]).await;
    let Some(redis_url) = hub.api.backends.redis_url.clone() else {
        eprintln!("note: HELIX_TEST_REDIS_URL is unset; the bus cannot be interrupted in process");
        return;
    };
    let user = users::signup(&hub.api, "ada").await;
    let mut client = Client::connect(&hub.ws, &user.jwt).await;
    let base = client.subscribe(STREAM).await["offset"].as_u64().unwrap();
    publish(&hub, STREAM, json!({"n": 1})).await;
    expect_message(&mut client, STREAM, base + 1).await;

    // Cut the hub's pub/sub connection; publishes go on through the command connection, so
    // they land in the history while no live message can arrive.
    let bus = hub.ws.state.bus().expect("a bus");
    let id = bus.pubsub_client_id().expect("a pub/sub connection");
    let mut raw = redis::Client::open(redis_url.as_str())
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("a Redis connection");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut raw)
        .await
        .expect("CLIENT KILL");
    assert_eq!(killed, 1);
    for n in 2..=6 {
        publish(&hub, STREAM, json!({"n": n})).await;
    }
    for n in 2..=6 {
        let frame = expect_message(&mut client, STREAM, base + n).await;
        assert_eq!(frame["data"]["n"], n);
    }
    still_open(&mut client).await;
    let metrics = hub.ws.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("helix_ws_recoveries_total{service=\"websocket-streaming\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn credentials_that_cannot_be_checked_get_try_again_later_not_unauthorized() {
    let (api, _admin) = crate::admin::with_admin(crate::support::TestBackends::new(), &[]).await;
    let user = users::signup(&api, "ada").await;
    let key = users::key(&api, &user, &["read"]).await;
    let closed = format!("http://127.0.0.1:{}", crate::support::bin::free_ports(1)[0]);
    let ws = crate::support::spawn_app::spawn_sibling(
        &api,
        "websocket-streaming",
        &[("BACKEND_API_URL", closed.as_str())],
    )
    .await;
    let bearer = format!("Bearer {key}");
    let mut client = Client::open(ws.addr, "/ws", &[("authorization", &bearer)]).await;
    let closed = client.closed().await;
    assert_eq!(closed.code, 1013, "{closed:?}");
}
