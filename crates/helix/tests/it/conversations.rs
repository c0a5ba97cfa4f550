//! backend-api conversations over HTTP: two clients of one user (a web app with a JWT, a desktop
//! app with an API key) see the same conversation; every append is published with its `seq`;
//! retries never duplicate; other users get 404; bad input gets the status a client can act on.

use std::time::Duration;

use helix_bus::Event;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::spawn_app::TestApp;
use crate::support::{eventually, spawn_app, users};

/// A signed-up user: a JWT (the web app) and a read+write API key (the desktop app).
struct Client {
    jwt: String,
    key: String,
}

async fn user(app: &TestApp, name: &str) -> Client {
    let user = users::signup(app, name).await;
    let key = users::key(app, &user, &["read", "write"]).await;
    Client { jwt: user.jwt, key }
}

async fn create(app: &TestApp, who: &str, body: Value) -> String {
    let (status, conv) = app.post("/api/conversations", Some(who), body).await;
    assert_eq!(status, 201, "{conv}");
    conv["id"].as_str().unwrap().to_owned()
}

async fn send(app: &TestApp, who: &str, id: &str, body: Value) -> (u16, Value) {
    app.post(
        &format!("/api/conversations/{id}/messages"),
        Some(who),
        body,
    )
    .await
}

fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn two_clients_share_a_conversation_and_every_append_is_published() {
    let app = spawn_app("backend-api").await;
    let ada = user(&app, "ada").await;
    let id = create(
        &app,
        &ada.jwt,
        json!({"title": "Trip", "session_key": "web-1"}),
    )
    .await;
    let bus = app.state.bus().expect("backend-api has a bus");
    let mut live = bus
        .subscribe(&format!("conversation:{id}"))
        .await
        .expect("subscribe");

    let (status, first) = send(
        &app,
        &ada.jwt,
        &id,
        json!({"role": "user", "content": "hi", "client_id": "w-1"}),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = send(
        &app,
        &ada.key,
        &id,
        json!({"role": "assistant", "content": "hello", "metadata": {"model": "claude"}}),
    )
    .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(
        (first["seq"].as_i64(), second["seq"].as_i64()),
        (Some(1), Some(2))
    );

    for expected in [1, 2] {
        let event = tokio::time::timeout(Duration::from_secs(5), live.recv())
            .await
            .expect("published within 5 s")
            .expect("bus open");
        let Event::Message(message) = event else {
            panic!("unexpected {event:?}");
        };
        let published: Value = crate::support::published_json(&message.payload);
        assert_eq!(published["type"], "message.created");
        assert_eq!(published["seq"], expected);
        assert_eq!(published["message"]["conversation_id"], id.as_str());
    }
    // The desktop app was offline after seq 1: it catches up with since=1.
    let (status, missed) = app
        .get_as(
            &format!("/api/conversations/{id}/messages?since=1"),
            &ada.key,
        )
        .await;
    assert_eq!(status, 200, "{missed}");
    assert_eq!(seqs(&missed), [2]);
    assert_eq!(missed["messages"][0]["metadata"]["model"], "claude");
    let (_, web) = app
        .get_as(&format!("/api/conversations/{id}/messages"), &ada.jwt)
        .await;
    let (_, desktop) = app
        .get_as(&format!("/api/conversations/{id}/messages"), &ada.key)
        .await;
    assert_eq!(web, desktop, "both clients read the same conversation");
    let (_, conv) = app
        .get_as(&format!("/api/conversations/{id}"), &ada.key)
        .await;
    assert_eq!(
        (conv["message_count"].as_i64(), conv["last_seq"].as_i64()),
        (Some(2), Some(2))
    );
}

#[tokio::test]
async fn a_retried_send_returns_the_original_and_publishes_nothing_new() {
    let app = spawn_app("backend-api").await;
    let ada = user(&app, "ada").await;
    let id = create(&app, &ada.jwt, json!({})).await;
    let body = json!({"role": "user", "content": "once", "client_id": "retry-me"});
    let (status, original) = send(&app, &ada.jwt, &id, body.clone()).await;
    assert_eq!(status, 201, "{original}");

    let (status, retried) = send(&app, &ada.key, &id, body).await;

    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried, original);
    let (_, page) = app
        .get_as(&format!("/api/conversations/{id}/messages"), &ada.jwt)
        .await;
    assert_eq!(seqs(&page), [1]);
}

#[tokio::test]
async fn conversations_are_listed_newest_first_by_cursor_and_renamed_and_deleted() {
    let app = spawn_app("backend-api").await;
    let ada = user(&app, "ada").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(create(&app, &ada.jwt, json!({"title": format!("c{n}")})).await);
    }
    let (status, same) = app
        .post(
            "/api/conversations",
            Some(&ada.jwt),
            json!({"session_key": ids[0]}),
        )
        .await;
    assert_eq!(
        (status, same["id"].as_str()),
        (200, Some(ids[0].as_str())),
        "{same}"
    );

    let (status, page1) = app.get_as("/api/conversations?limit=3", &ada.jwt).await;
    assert_eq!(status, 200, "{page1}");
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, page2) = app
        .get_as(
            &format!("/api/conversations?limit=3&cursor={cursor}"),
            &ada.jwt,
        )
        .await;
    let listed: Vec<&str> = [&page1, &page2]
        .iter()
        .flat_map(|p| p["conversations"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    assert!(page2["next_cursor"].is_null(), "{page2}");

    let path = format!("/api/conversations/{}", ids[1]);
    let (status, renamed) = app
        .call(
            Method::PATCH,
            &path,
            Some(&ada.key),
            Some(json!({"title": "  Plans "})),
        )
        .await;
    assert_eq!(
        (status, renamed["title"].as_str()),
        (200, Some("Plans")),
        "{renamed}"
    );
    send(
        &app,
        &ada.jwt,
        &ids[1],
        json!({"role": "user", "content": "x"}),
    )
    .await;
    let (status, _) = app.call(Method::DELETE, &path, Some(&ada.jwt), None).await;
    assert_eq!(status, 204);
    let (status, _) = app.get_as(&path, &ada.jwt).await;
    assert_eq!(status, 404);
    let (status, _) = app.get_as(&format!("{path}/messages"), &ada.jwt).await;
    assert_eq!(status, 404, "its messages went with it");
    let (_, me) = app.get_as("/api/me", &ada.jwt).await;
    assert_eq!(me["profile"]["conversation_count"], 4, "{me}");
}

#[tokio::test]
async fn another_users_conversation_is_404_whatever_the_method() {
    let app = spawn_app("backend-api").await;
    let (ada, eve) = (user(&app, "ada").await, user(&app, "eve").await);
    let id = create(&app, &ada.jwt, json!({"title": "private"})).await;
    send(
        &app,
        &ada.jwt,
        &id,
        json!({"role": "user", "content": "secret"}),
    )
    .await;
    let path = format!("/api/conversations/{id}");
    let unknown = format!("/api/conversations/{}", uuid::Uuid::new_v4());

    for (method, path, body) in [
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"title": "mine"}))),
        (Method::DELETE, path.clone(), None),
        (Method::GET, format!("{path}/messages"), None),
        (
            Method::POST,
            format!("{path}/messages"),
            Some(json!({"role": "user", "content": "hi"})),
        ),
        (Method::GET, unknown.clone(), None),
        (
            Method::GET,
            "/api/conversations/not-a-uuid".to_owned(),
            None,
        ),
    ] {
        let (status, body) = app.call(method.clone(), &path, Some(&eve.jwt), body).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    }
    let (_, theirs) = app.get_as("/api/conversations", &eve.key).await;
    assert_eq!(theirs["conversations"], json!([]));
    let (_, mine) = app.get_as(&format!("{path}/messages"), &ada.jwt).await;
    assert_eq!(mine["messages"][0]["content"], "secret", "untouched");
}

#[tokio::test]
async fn bad_messages_and_queries_get_statuses_a_client_can_act_on() {
    let app = spawn_app("backend-api").await;
    let ada = user(&app, "ada").await;
    let id = create(&app, &ada.jwt, json!({})).await;
    let big = "x".repeat(32 * 1024 + 1);
    let cases = [
        (
            json!({"role": "user", "content": big}),
            413,
            "message_too_large",
            None,
        ),
        (
            json!({"role": "user", "content": "  "}),
            422,
            "invalid_fields",
            Some("content"),
        ),
        (
            json!({"role": "robot", "content": "hi"}),
            422,
            "invalid_fields",
            Some("role"),
        ),
        (
            json!({"role": "user", "content": "hi", "metadata": [1]}),
            422,
            "invalid_fields",
            Some("metadata"),
        ),
        (
            json!({"role": "user", "content": "hi", "extra": 1}),
            422,
            "invalid_fields",
            Some("extra"),
        ),
        (
            json!({"role": "user"}),
            422,
            "invalid_fields",
            Some("content"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, answer) = send(&app, &ada.jwt, &id, body.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        if let Some(field) = field {
            assert!(
                answer["error"]["fields"].get(field).is_some(),
                "{field} named: {answer}"
            );
        }
    }
    let base = format!("/api/conversations/{id}/messages");
    for query in [
        "?limit=0",
        "?limit=201",
        "?before=3&since=1",
        "?since=abc",
        "?sort=asc",
    ] {
        let (status, body) = app.get_as(&format!("{base}{query}"), &ada.jwt).await;
        assert_eq!(status, 422, "{query}: {body}");
    }
    let (status, body) = app
        .get_as("/api/conversations?cursor=garbage", &ada.jwt)
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, empty) = app.get_as(&format!("{base}?since=1000"), &ada.jwt).await;
    assert_eq!(
        (status, seqs(&empty)),
        (200, vec![]),
        "beyond the head: an empty page"
    );
    let (_, page) = app.get_as(&base, &ada.jwt).await;
    assert_eq!(
        seqs(&page),
        Vec::<i64>::new(),
        "nothing was stored by the refused sends"
    );

    let (_, read_only) = app
        .post(
            "/api/keys",
            Some(&ada.jwt),
            json!({"name": "ro", "scopes": ["read"]}),
        )
        .await;
    let read_only = read_only["key"].as_str().unwrap();
    let (status, body) = send(
        &app,
        read_only,
        &id,
        json!({"role": "user", "content": "hi"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn concurrent_sends_get_distinct_consecutive_seqs_and_exact_counters() {
    let app = spawn_app("backend-api").await;
    let ada = user(&app, "ada").await;
    let id = create(&app, &ada.jwt, json!({})).await;
    let mut sends = Vec::new();
    for n in 0..30 {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/api/conversations/{id}/messages")),
            if n % 2 == 0 {
                ada.jwt.clone()
            } else {
                ada.key.clone()
            },
        );
        sends.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"role": "user", "content": format!("m{n}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            let body: Value = response.json().await.unwrap();
            body["seq"].as_i64().unwrap()
        }));
    }
    let mut got = Vec::new();
    for send in sends {
        got.push(send.await.unwrap());
    }
    got.sort();

    assert_eq!(got, (1..=30).collect::<Vec<_>>());
    let (_, page) = app
        .get_as(
            &format!("/api/conversations/{id}/messages?limit=10"),
            &ada.jwt,
        )
        .await;
    assert_eq!(seqs(&page), (21..=30).collect::<Vec<_>>());
    assert_eq!(page["next_before"], 21);
    let (_, me) = app.get_as("/api/me", &ada.jwt).await;
    assert_eq!(me["profile"]["message_count"], 30, "{me}");
    assert_eq!(me["profile"]["messages_today"], 30, "{me}");
}

/// The newest page is cached per instance: an append or delete through one instance must reach
/// the page another instance serves, and the instance that appended must never serve it stale.
#[tokio::test]
async fn every_instance_serves_the_newest_page_after_an_append_or_delete_anywhere() {
    let app = spawn_app("backend-api").await;
    let sibling = spawn_app::spawn_sibling(&app, "backend-api", &[]).await;
    let ada = user(&app, "ada").await;
    let id = create(&app, &ada.jwt, json!({})).await;
    let path = format!("/api/conversations/{id}/messages");
    let newest = async |on: &TestApp| {
        let (status, page) = on.get_as(&path, &ada.jwt).await;
        (status, if status == 200 { seqs(&page) } else { vec![] })
    };
    for (seq, content) in [(1, "one"), (2, "two")] {
        // Read on both first, so both hold the page the append makes stale.
        assert_eq!(newest(&app).await.0, 200);
        assert_eq!(newest(&sibling).await.0, 200);
        let (status, sent) = send(
            &app,
            &ada.jwt,
            &id,
            json!({"role": "user", "content": content}),
        )
        .await;
        assert_eq!((status, sent["seq"].as_i64()), (201, Some(seq)), "{sent}");
        let expected: Vec<i64> = (1..=seq).collect();
        assert_eq!(
            newest(&app).await,
            (200, expected.clone()),
            "the appending instance"
        );
        eventually("the sibling serving the appended message", async || {
            newest(&sibling).await == (200, expected.clone())
        })
        .await;
    }
    let (status, _) = sibling
        .call(
            Method::DELETE,
            &format!("/api/conversations/{id}"),
            Some(&ada.jwt),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(newest(&sibling).await.0, 404);
    eventually(
        "the first instance forgetting the deleted conversation",
        async || newest(&app).await.0 == 404,
    )
    .await;
}
