//! Credential checks for services without a database: they ask backend-api, which owns sessions
//! and API keys, through `GET /api/auth/introspect` with the very credential presented (so no
//! service secret is needed: only the holder of a credential can ask about it). Answers are
//! cached by the caller like database lookups, with the same bound.

use std::time::Duration;

use axum::http::StatusCode;
use helix_store::accounts::Role;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuthError, Principal, Via};

/// How long one introspection may take before the request is answered 503.
const TIMEOUT: Duration = Duration::from_secs(3);

/// What `GET /api/auth/introspect` answers for a valid credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Introspection {
    pub user_id: Uuid,
    /// `user`, `admin` or `creator`.
    #[schema(value_type = String)]
    pub role: Role,
    pub session_id: Option<Uuid>,
    pub key_id: Option<Uuid>,
    /// The API key's scopes; absent for a session.
    pub scopes: Option<Vec<String>>,
}

impl From<&Principal> for Introspection {
    fn from(p: &Principal) -> Self {
        let (session_id, key_id, scopes) = match &p.via {
            Via::Session { session_id } => (Some(*session_id), None, None),
            Via::ApiKey { key_id, scopes } => (None, Some(*key_id), Some(scopes.clone())),
        };
        Self {
            user_id: p.user_id,
            role: p.role,
            session_id,
            key_id,
            scopes,
        }
    }
}

impl Introspection {
    fn into_principal(self) -> Result<Principal, AuthError> {
        let via = match (self.session_id, self.key_id) {
            (Some(session_id), None) => Via::Session { session_id },
            (None, Some(key_id)) => Via::ApiKey {
                key_id,
                scopes: self.scopes.unwrap_or_default(),
            },
            _ => return Err(AuthError::Unavailable),
        };
        Ok(Principal {
            user_id: self.user_id,
            role: self.role,
            via,
        })
    }
}

/// A client of backend-api's introspection endpoint.
pub struct Remote {
    url: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorCode,
}

#[derive(Deserialize)]
struct ErrorCode {
    code: String,
}

impl Remote {
    pub fn new(base_url: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .expect("a plain HTTP client builds");
        Self {
            url: format!("{}/api/auth/introspect", base_url.trim_end_matches('/')),
            client,
        }
    }

    /// Ask backend-api about `credential`: the principal, or why it is refused. `Unavailable`
    /// when backend-api cannot answer.
    pub async fn introspect(&self, credential: &str) -> Result<Principal, AuthError> {
        let response = self
            .client
            .get(&self.url)
            .bearer_auth(credential)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "backend-api introspection failed");
                AuthError::Unavailable
            })?;
        match response.status() {
            StatusCode::OK => {
                let answer: Introspection =
                    response.json().await.map_err(|_| AuthError::Unavailable)?;
                answer.into_principal()
            }
            StatusCode::UNAUTHORIZED => {
                let code = response
                    .json::<ErrorBody>()
                    .await
                    .map(|b| b.error.code)
                    .unwrap_or_default();
                Err(match code.as_str() {
                    "session_revoked" | "account_deleted" => AuthError::Revoked,
                    "token_expired" => AuthError::Expired,
                    "invalid_api_key" => AuthError::InvalidKey,
                    "api_key_checksum" => AuthError::KeyChecksum,
                    _ => AuthError::InvalidToken,
                })
            }
            other => {
                tracing::warn!(status = %other, "backend-api introspection answered unexpectedly");
                Err(AuthError::Unavailable)
            }
        }
    }
}
