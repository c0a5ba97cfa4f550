//! Setup before the load: accounts, tokens, API keys, and one checked request of the kind about to
//! be sent. Any surprise here stops the run with the status and body, since figures measured
//! against a misconfigured server would be meaningless.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::http::{Collected, Conn, RequestTemplate};
use crate::target::Target;

/// Setup calls answer in well under this unless something is wrong (a signup is one Argon2 hash).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh account's credentials.
#[derive(Debug, Clone)]
pub struct Account {
    pub email: String,
    pub password: String,
}

impl Account {
    /// A unique address in a domain that is obviously a benchmark's, and a random password well
    /// over the server's 10-character minimum.
    pub fn generate() -> Account {
        let id = uuid::Uuid::new_v4();
        Account {
            email: format!("load-{id}@bench.local"),
            password: format!("pw-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    pub fn login_body(&self) -> serde_json::Value {
        json!({ "email": self.email, "password": self.password })
    }
}

#[derive(Debug, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    /// Seconds the access token stays valid.
    pub expires_in: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct CreatedKey {
    key: String,
}

/// `POST /api/auth/signup`; the tokens it answers with.
pub async fn signup(target: &Target, account: &Account) -> Result<Tokens> {
    let body = json!({
        "email": account.email,
        "password": account.password,
        "display_name": "helix-load",
    });
    let request = RequestTemplate::post_json(target, "/api/auth/signup", &body)?;
    let response = expect(target, &request, StatusCode::CREATED, "signup").await?;
    serde_json::from_slice(&response.body).context("signup answered 201 without an access_token")
}

/// `POST /api/keys` with a read-scoped key; the `hx_…` secret it answers with.
pub async fn create_key(target: &Target, access_token: &str) -> Result<String> {
    let body = json!({ "name": "helix-load", "scopes": ["read"] });
    let request = RequestTemplate::post_json(target, "/api/keys", &body)?.bearer(access_token)?;
    let response = expect(target, &request, StatusCode::CREATED, "creating an API key").await?;
    let created: CreatedKey = serde_json::from_slice(&response.body)
        .context("POST /api/keys answered 201 without a key")?;
    Ok(created.key)
}

/// Send `request` once on a fresh connection and insist on `expected`.
pub async fn expect(
    target: &Target,
    request: &RequestTemplate,
    expected: StatusCode,
    what: &str,
) -> Result<Collected> {
    expect_one_of(target, request, &[expected], what).await
}

/// Send `request` once on a fresh connection and insist on one of `expected` (e.g. 201, or 409
/// for something an earlier run already created).
pub async fn expect_one_of(
    target: &Target,
    request: &RequestTemplate,
    expected: &[StatusCode],
    what: &str,
) -> Result<Collected> {
    check(target, request.build(), expected, what).await
}

/// [`expect`] for a request built by hand (one whose headers change per send).
pub async fn expect_request(
    target: &Target,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
    expected: StatusCode,
    what: &str,
) -> Result<Collected> {
    check(target, request, &[expected], what).await
}

async fn check(
    target: &Target,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
    expected: &[StatusCode],
    what: &str,
) -> Result<Collected> {
    let exchange = async {
        let mut conn = Conn::open(target).await?;
        anyhow::Ok(conn.collect(request).await?)
    };
    let response = tokio::time::timeout(SETUP_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{what} failed: no answer from {} within 30 s", target.base))?
        .with_context(|| format!("{what} failed: {} did not answer over HTTP", target.base))?;
    if !expected.contains(&response.status) {
        bail!(
            "{what} failed: {}{} {}",
            response.status,
            hint(&response),
            response.body_excerpt()
        );
    }
    Ok(response)
}

/// What to do about a status that stops the setup.
fn hint(response: &Collected) -> String {
    match response.status {
        StatusCode::TOO_MANY_REQUESTS => {
            let retry = response
                .headers
                .get(hyper::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("?");
            format!(
                " (rate limited, Retry-After: {retry} s; start the server with higher \
                 HELIX_AUTH_LIMIT_PER_IP_PER_MINUTE / HELIX_LOGIN_LIMIT_PER_ACCOUNT_PER_MINUTE / \
                 HELIX_RATE_LIMIT_PER_MINUTE)"
            )
        }
        StatusCode::NOT_FOUND => " (is backend-api serving on this URL?)".to_owned(),
        _ => String::new(),
    }
}
