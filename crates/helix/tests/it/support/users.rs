//! Accounts the tests need: a signed-up user's token and id, and an API key of theirs.

use serde_json::json;

use super::spawn_app::TestApp;

pub const PASSWORD: &str = "correct horse battery staple";

/// A freshly signed-up user.
pub struct User {
    pub id: String,
    pub jwt: String,
}

pub async fn signup(app: &TestApp, name: &str) -> User {
    let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, body) = app
        .post(
            "/api/auth/signup",
            None,
            json!({"email": email, "password": PASSWORD, "display_name": name}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    User {
        id: body["user"]["id"].as_str().expect("an id").to_owned(),
        jwt: body["access_token"].as_str().expect("a token").to_owned(),
    }
}

/// A new API key of `user` with `scopes`.
pub async fn key(app: &TestApp, user: &User, scopes: &[&str]) -> String {
    let (status, body) = app
        .post(
            "/api/keys",
            Some(&user.jwt),
            json!({"name": "test", "scopes": scopes}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().expect("a key").to_owned()
}
