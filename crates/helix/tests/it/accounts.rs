//! backend-api accounts over HTTP: signup, login, refresh rotation and reuse detection, logout,
//! the caller's profile, API keys, and the bad input each of them must refuse cleanly.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::spawn_app::{spawn_app_with, TestApp};
use crate::support::{spawn_app, TestBackends};

const PASSWORD: &str = "correct horse battery staple";

struct Account {
    access: String,
    refresh: String,
}

async fn signup(app: &TestApp, email: &str) -> Account {
    let (status, body) = app
        .post(
            "/api/auth/signup",
            None,
            json!({"email": email, "password": PASSWORD, "display_name": "Ada"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    tokens(&body)
}

fn tokens(body: &Value) -> Account {
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert_eq!(body["expires_in"], 3600, "{body}");
    Account {
        access: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    }
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    let store = app.state.store().expect("backend-api has a store");
    let entries = store.audit().page(0, 1000).await.expect("audit page");
    helix_store::audit::verify(None, &entries).expect("the chain is intact");
    entries.into_iter().map(|e| e.action).collect()
}

#[tokio::test]
async fn signup_login_me_and_profile() {
    let app = spawn_app("backend-api").await;
    let account = signup(&app, "  Ada@Example.COM ").await;
    let (status, me) = app.get_as("/api/me", &account.access).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["email"], "ada@example.com");
    assert_eq!(me["user"]["role"], "user");
    assert_eq!(me["profile"]["display_name"], "Ada");
    assert_eq!(me["profile"]["trust_level"], 0.0);
    assert!(me["user"].get("password_hash").is_none(), "{me}");

    let (status, body) = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "ADA@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let login = tokens(&body);
    assert_ne!(login.refresh, account.refresh);

    let patch = json!({"display_name": "Ada L.", "avatar_url": "https://cdn.example.com/ada.png", "onboarding_step": 3});
    let (status, body) = app
        .call(Method::PATCH, "/api/me", Some(&login.access), Some(patch))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["profile"]["display_name"], "Ada L.");
    assert_eq!(body["profile"]["onboarding_step"], 3);
    let (_, body) = app
        .call(
            Method::PATCH,
            "/api/me",
            Some(&login.access),
            Some(json!({"avatar_url": null})),
        )
        .await;
    assert_eq!(body["profile"]["avatar_url"], Value::Null);
    assert_eq!(
        body["profile"]["display_name"], "Ada L.",
        "untouched fields stay"
    );

    assert_eq!(
        audit_actions(&app).await,
        ["signup", "signup_session", "login"]
    );
}

#[tokio::test]
async fn the_creator_email_gets_the_creator_role() {
    let extra = BTreeMap::from([(
        "HELIX_CREATOR_EMAIL".to_owned(),
        "Owner@Helix.dev".to_owned(),
    )]);
    let app = spawn_app_with("backend-api", TestBackends::new(), extra).await;
    let account = signup(&app, "owner@helix.dev").await;
    let (_, me) = app.get_as("/api/me", &account.access).await;
    assert_eq!(me["user"]["role"], "creator");
    assert_eq!(me["profile"]["trust_level"], 1.0);
}

#[tokio::test]
async fn duplicate_emails_conflict_case_insensitively_without_leftovers() {
    let app = spawn_app("backend-api").await;
    signup(&app, "grace@example.com").await;
    let before = audit_actions(&app).await.len();
    let (status, body) = app
        .post(
            "/api/auth/signup",
            None,
            json!({"email": "GRACE@example.com", "password": PASSWORD, "display_name": "G"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "email_taken");
    assert_eq!(
        audit_actions(&app).await.len(),
        before,
        "a refused signup leaves no audit entry"
    );
}

#[tokio::test]
async fn password_and_field_rules_name_the_field() {
    let app = spawn_app("backend-api").await;
    let cases = [
        (
            json!({"email": "a@example.com", "password": "short", "display_name": "A"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": "A@Example.com", "display_name": "A"}),
            "password",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD, "display_name": "A"}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "display_name": "  "}),
            "display_name",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "display_name": "A", "role": "admin"}),
            "role",
        ),
        (
            json!({"email": 42, "password": PASSWORD, "display_name": "A"}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "display_name": "A"}),
            "password",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/api/auth/signup", None, body.clone()).await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], "invalid_fields", "{answer}");
        assert!(
            answer["error"]["fields"].get(field).is_some(),
            "{field} not named: {answer}"
        );
    }
    assert!(audit_actions(&app).await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app("backend-api").await;
    signup(&app, "lin@example.com").await;
    let wrong = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "lin@example.com", "password": "wrong password!"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "wrong password!"}),
        )
        .await;
    let junk = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "' OR 1=1 --", "password": "x"}),
        )
        .await;
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, junk);
    assert_eq!(wrong.1["error"]["code"], "invalid_credentials");
    let actions = audit_actions(&app).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "login_failed").count(),
        3,
        "{actions:?}"
    );
}

#[tokio::test]
async fn refresh_rotates_and_tolerates_a_second_tab() {
    let app = spawn_app("backend-api").await;
    let account = signup(&app, "tabs@example.com").await;
    let (status, first) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": account.refresh}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let first = tokens(&first);
    // The other tab presents the same (now rotated) token within the grace window.
    let (status, second) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": account.refresh}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    let second = tokens(&second);
    assert_ne!(first.refresh, second.refresh);
    for access in [&first.access, &second.access] {
        assert_eq!(app.get_as("/api/me", access).await.0, 200);
    }
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_ends_the_session() {
    let extra = BTreeMap::from([("HELIX_REFRESH_GRACE_SECS".to_owned(), "0".to_owned())]);
    let app = spawn_app_with("backend-api", TestBackends::new(), extra).await;
    let account = signup(&app, "victim@example.com").await;
    let (_, rotated) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": account.refresh}),
        )
        .await;
    let rotated = tokens(&rotated);
    // An attacker replays the stolen, already rotated token.
    let (status, body) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": account.refresh}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "refresh_token_reused");
    // The whole family is gone: the legitimate user's newer tokens stop working too.
    let (status, body) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": rotated.refresh}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_refresh_token"))
    );
    let (status, body) = app.get_as("/api/me", &rotated.access).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("session_revoked"))
    );
    assert!(audit_actions(&app)
        .await
        .contains(&"refresh_reuse_detected".to_owned()));
}

#[tokio::test]
async fn logout_revokes_the_session_at_once() {
    let app = spawn_app("backend-api").await;
    let account = signup(&app, "bye@example.com").await;
    assert_eq!(
        app.get_as("/api/me", &account.access).await.0,
        200,
        "cached as live"
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/auth/logout",
            Some(&account.access),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = app.get_as("/api/me", &account.access).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("session_revoked"))
    );
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": account.refresh}),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn api_keys_are_shown_once_work_everywhere_and_revoke_at_once() {
    let app = spawn_app("backend-api").await;
    let account = signup(&app, "keys@example.com").await;
    let (status, created) = app
        .post(
            "/api/keys",
            Some(&account.access),
            json!({"name": "laptop", "scopes": ["read", "write"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().expect("the key, once").to_owned();
    assert!(key.starts_with("hx_"), "{key}");
    assert_eq!(created["scopes"], json!(["read", "write"]));

    let (status, listed) = app.get_as("/api/keys", &account.access).await;
    assert_eq!(status, 200);
    assert!(
        !listed.to_string().contains(&key[8..]),
        "the secret is never listed: {listed}"
    );
    assert_eq!(listed["keys"][0]["name"], "laptop");

    // Bearer and X-API-Key both authenticate.
    assert_eq!(app.get_as("/api/me", &key).await.0, 200);
    let response = app
        .client
        .get(app.url("/api/me"))
        .header("X-API-Key", &key)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);

    // A key cannot mint keys, nor act beyond its scopes.
    let (status, _) = app
        .post("/api/keys", Some(&key), json!({"name": "child"}))
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .post(
            "/api/keys",
            Some(&account.access),
            json!({"name": "ro", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let read_only = body["key"].as_str().expect("key").to_owned();
    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/me",
            Some(&read_only),
            Some(json!({"onboarding_step": 1})),
        )
        .await;
    assert_eq!(status, 403);

    let id = created["id"].as_str().expect("id");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/keys/{id}"),
            Some(&account.access),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = app.get_as("/api/me", &key).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );

    let actions = audit_actions(&app).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "key_created").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"key_revoked".to_owned()));
}

#[tokio::test]
async fn keys_of_others_are_not_found_and_bad_keys_are_told_apart() {
    let app = spawn_app("backend-api").await;
    let alice = signup(&app, "alice@example.com").await;
    let bob = signup(&app, "bob@example.com").await;
    let (_, created) = app
        .post("/api/keys", Some(&alice.access), json!({"name": "a"}))
        .await;
    let id = created["id"].as_str().expect("id");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/keys/{id}"),
            Some(&bob.access),
            None,
        )
        .await;
    assert_eq!(status, 404, "another user's key is not found");
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/keys/not-a-uuid",
            Some(&bob.access),
            None,
        )
        .await;
    assert_eq!(status, 404);

    let key = created["key"].as_str().expect("key");
    let mut typo = key.to_owned();
    typo.replace_range(5..6, if &key[5..6] == "A" { "B" } else { "A" });
    let (status, body) = app.get_as("/api/me", &typo).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("api_key_checksum"))
    );
    let (_, body) = app
        .post(
            "/api/keys",
            Some(&alice.access),
            json!({"name": "x", "scopes": ["root"]}),
        )
        .await;
    assert!(body["error"]["fields"].get("scopes").is_some(), "{body}");
    let (status, _) = app
        .post(
            "/api/keys",
            Some(&alice.access),
            json!({"name": "x", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(status, 403, "admin keys need an admin");
    let (_, body) = app
        .post(
            "/api/keys",
            Some(&alice.access),
            json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert!(
        body["error"]["fields"].get("expires_at").is_some(),
        "{body}"
    );
}

#[tokio::test]
async fn missing_garbled_and_forged_credentials_are_401() {
    let app = spawn_app("backend-api").await;
    let cases: [(Option<&str>, &str); 4] = [
        (None, "unauthenticated"),
        (Some("garbage"), "invalid_token"),
        (
            Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
            "invalid_token",
        ),
        (Some("hx_tooshort"), "invalid_api_key"),
    ];
    for (bearer, code) in cases {
        let (status, body) = app.call(Method::GET, "/api/me", bearer, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some(code)),
            "{bearer:?}"
        );
    }
    let response = app
        .client
        .get(app.url("/api/me"))
        .header("Authorization", "Basic YTpi")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn deleted_accounts_lose_every_credential() {
    let app = spawn_app("backend-api").await;
    let account = signup(&app, "gone@example.com").await;
    let (_, created) = app
        .post("/api/keys", Some(&account.access), json!({"name": "k"}))
        .await;
    let key = created["key"].as_str().expect("key").to_owned();
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/me",
            Some(&account.access),
            Some(json!({"password": "wrong one!!"})),
        )
        .await;
    assert_eq!(status, 401, "the password is asked again");
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/me",
            Some(&key),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 403, "a key cannot delete its owner");
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/me",
            Some(&account.access),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(app.get_as("/api/me", &account.access).await.0, 401);
    assert_eq!(app.get_as("/api/me", &key).await.0, 401);
    let (status, _) = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "gone@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401);
    // The email is free again.
    signup(&app, "gone@example.com").await;
}

#[tokio::test]
async fn malformed_bodies_get_400_415_and_413() {
    let app = spawn_app("backend-api").await;
    let url = app.url("/api/auth/login");
    let send = |body: Vec<u8>, content_type: &'static str| {
        let client = app.client.clone();
        let url = url.clone();
        async move {
            let r = client
                .post(url)
                .header("Content-Type", content_type)
                .body(body)
                .send()
                .await
                .expect("sent");
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (
                status,
                body["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    assert_eq!(
        send(b"{\"email\": ".to_vec(), "application/json").await,
        (400, "malformed_json".into())
    );
    assert_eq!(
        send(b"email=a".to_vec(), "application/x-www-form-urlencoded").await,
        (415, "unsupported_media_type".into())
    );
    let huge = format!(
        "{{\"email\":\"{}\",\"password\":\"x\"}}",
        "a".repeat(10 * 1024 * 1024)
    );
    assert_eq!(
        send(huge.into_bytes(), "application/json").await,
        (413, "payload_too_large".into())
    );
}

#[tokio::test]
async fn a_thousand_rapid_logins_for_one_account_are_throttled() {
    let app = spawn_app("backend-api").await;
    signup(&app, "target@example.com").await;
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    let mut throttled = None;
    for _ in 0..1000 {
        let response = app
            .client
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": "target@example.com", "password": "guess guess guess"}))
            .send()
            .await
            .expect("sent");
        let status = response.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        if status == 429 && throttled.is_none() {
            throttled = Some(response);
        }
    }
    assert_eq!(statuses.get(&401), Some(&10), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&990), "{statuses:?}");
    let response = throttled.expect("a 429");
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    // A sliding window of 60 s frees capacity at most a little over one window later.
    assert!((1..=120).contains(&retry), "{retry}");
    for header in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(response.headers().contains_key(header), "{header} missing");
    }
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    // The right password is refused too while throttled: guessing cannot tell them apart.
    let (status, _) = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "target@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 429);
    let failed = audit_actions(&app)
        .await
        .iter()
        .filter(|a| *a == "login_failed")
        .count();
    assert_eq!(failed, 10, "throttled attempts write nothing");
}

#[tokio::test]
async fn each_user_has_a_request_budget() {
    let extra = BTreeMap::from([("HELIX_RATE_LIMIT_PER_MINUTE".to_owned(), "5".to_owned())]);
    let app = spawn_app_with("backend-api", TestBackends::new(), extra).await;
    let account = signup(&app, "busy@example.com").await;
    let other = signup(&app, "calm@example.com").await;
    for _ in 0..5 {
        assert_eq!(app.get_as("/api/me", &account.access).await.0, 200);
    }
    let (status, body) = app.get_as("/api/me", &account.access).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    assert_eq!(
        app.get_as("/api/me", &other.access).await.0,
        200,
        "budgets are per user"
    );
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let extra = BTreeMap::from([(
        "HELIX_CORS_ORIGINS".to_owned(),
        "https://app.helix.dev, http://localhost:5173".to_owned(),
    )]);
    let app = spawn_app_with("backend-api", TestBackends::new(), extra).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/auth/login"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.helix.dev").await.expect("sent");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("https://app.helix.dev")
    );
    let refused = preflight("https://evil.example.com").await.expect("sent");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        refused.headers()
    );
}

/// Budgets are admitted in leased batches on the hot path; the limit still holds exactly, also
/// across two instances sharing one counter.
#[tokio::test]
async fn leased_budgets_never_exceed_the_limit() {
    let extra = BTreeMap::from([("HELIX_RATE_LIMIT_PER_MINUTE".to_owned(), "50".to_owned())]);
    let app = spawn_app_with("backend-api", TestBackends::new(), extra).await;
    let twin = crate::support::spawn_app::spawn_sibling(&app, "backend-api", &[]).await;
    let account = signup(&app, "leases@example.com").await;
    let mut ok = 0;
    for i in 0..120 {
        let instance = if i % 3 == 0 { &twin } else { &app };
        match instance.get_as("/api/me", &account.access).await.0 {
            200 => ok += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok <= 50, "{ok} requests admitted over a limit of 50");
    assert!(
        ok >= 40,
        "leases must not waste most of the budget: {ok} admitted"
    );
}

#[tokio::test]
async fn expired_tokens_are_told_apart_from_invalid_ones() {
    let app = spawn_app("backend-api").await;
    let account = signup(&app, "clock@example.com").await;
    let secret = app
        .state
        .env()
        .get("JWT_SECRET")
        .expect("a JWT secret")
        .to_owned();
    let jwt =
        helix::shared::auth::jwt::Jwt::new(secret.as_bytes(), std::time::Duration::from_secs(3600));
    let claims = jwt.verify(&account.access).expect("a valid token");
    // The same session, signed with the right key, but an hour and more in the past.
    let expired = helix::shared::auth::jwt::Claims {
        iat: claims.iat - 7200,
        exp: claims.iat - 3600,
        ..claims
    };
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &expired,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode");
    let (status, body) = app.get_as("/api/me", &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("token_expired"))
    );
}

#[tokio::test]
async fn sql_looking_input_is_stored_as_text_or_refused() {
    let app = spawn_app("backend-api").await;
    let nasty = "Robert'); DROP TABLE users;--";
    let (status, body) = app
        .post("/api/auth/signup", None, json!({"email": "o'brien@example.com", "password": format!("{nasty} pw"), "display_name": nasty}))
        .await;
    assert_eq!(status, 201, "{body}");
    let access = body["access_token"].as_str().expect("token").to_owned();
    assert_eq!(body["profile"]["display_name"], nasty);
    let (status, _) = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "o'brien@example.com", "password": format!("{nasty} pw")}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post("/api/keys", Some(&access), json!({"name": "' OR '1'='1"}))
        .await;
    assert_eq!((status, body["name"].as_str()), (201, Some("' OR '1'='1")));
    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/me",
            Some(&access),
            Some(json!({"avatar_url": "https://x.example/'; --"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/keys/1%20OR%201=1",
            Some(&access),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, me) = app.get_as("/api/me", &access).await;
    assert_eq!(
        (status, me["user"]["email"].as_str()),
        (200, Some("o'brien@example.com"))
    );
}

/// A service without a database (service-integration) accepts the same JWTs and API keys, asking
/// backend-api about keys and sessions it has not seen.
#[tokio::test]
async fn services_without_a_database_accept_the_same_credentials() {
    let api = spawn_app("backend-api").await;
    let base = api.url("");
    let other = crate::support::spawn_app::spawn_sibling(
        &api,
        "service-integration",
        &[("BACKEND_API_URL", &base)],
    )
    .await;
    assert!(other.state.store().is_none(), "the sibling has no database");
    let account = signup(&api, "everywhere@example.com").await;
    let (status, who) = other.get_as("/api/auth/introspect", &account.access).await;
    assert_eq!(status, 200, "{who}");
    let (_, me) = api.get_as("/api/me", &account.access).await;
    assert_eq!(who["user_id"], me["user"]["id"]);

    let (_, created) = api
        .post(
            "/api/keys",
            Some(&account.access),
            json!({"name": "svc", "scopes": ["read"]}),
        )
        .await;
    let key = created["key"].as_str().expect("key").to_owned();
    let (status, who) = other.get_as("/api/auth/introspect", &key).await;
    assert_eq!(
        (status, who["scopes"].clone()),
        (200, json!(["read"])),
        "{who}"
    );
    let (status, body) = other
        .get_as(
            "/api/auth/introspect",
            "hx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000",
        )
        .await;
    assert_eq!(status, 401, "{body}");

    // A session ended on backend-api is refused by the other service.
    let (_, login) = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": "everywhere@example.com", "password": PASSWORD}),
        )
        .await;
    let ended = login["access_token"].as_str().expect("token").to_owned();
    let (status, _) = api
        .call(Method::POST, "/api/auth/logout", Some(&ended), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = other.get_as("/api/auth/introspect", &ended).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("session_revoked"))
    );

    // Without backend-api, an unknown key cannot be checked: 503, not a guess.
    let orphan = crate::support::spawn_app::spawn_sibling(
        &api,
        "service-integration",
        &[("BACKEND_API_URL", "http://127.0.0.1:1")],
    )
    .await;
    let (status, body) = orphan.get_as("/api/auth/introspect", &key).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("auth_unavailable"))
    );
}
