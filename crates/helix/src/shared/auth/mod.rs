//! Authentication shared by every service: one extractor, [`Principal`], that accepts
//! `Authorization: Bearer <jwt>`, `Authorization: Bearer hx_…` or `X-API-Key: hx_…`.
//!
//! A JWT is verified locally (signature, algorithm, `exp`/`aud`/`iss`); its session is then checked
//! for revocation, and an API key is looked up by hash. Both lookups go through a short-lived
//! cache ([`CACHE_TTL`]) so the hot path costs no database round trip; that TTL is also the bound
//! on how long a revoked session or key keeps working on another instance. The instance that
//! revokes forgets the entry at once.

pub mod api_key;
pub mod cache;
pub mod jwt;
pub mod password;
pub mod remote;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use helix_store::accounts::{KeyOwner, Role};
use helix_store::Store;
use uuid::Uuid;

use self::cache::TtlCache;
use self::jwt::{Jwt, TokenError};
use self::remote::Remote;
use crate::services::ServiceState;
use crate::shared::error::ApiError;
use crate::shared::rate_limit;

/// How long a session's revocation state or a key lookup is trusted without asking the database:
/// the documented bound on how late a revocation takes effect elsewhere.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Entries per cache; beyond this, expired entries are swept and then the oldest half dropped.
const CACHE_CAPACITY: usize = 100_000;

/// The only service that accepts agent keys.
const AGENT_SERVICE: &str = "agent-orchestration";

/// Whether `id` can name an agent: 1–64 of a-z, 0-9, '-', '_', and not `coordination` or
/// `heartbeats` (`agent:coordination` and `agent:heartbeats` are channels of their own). One rule
/// for agent ids, agent key scopes and agent channels.
pub fn is_agent_id(id: &str) -> bool {
    !["coordination", "heartbeats"].contains(&id)
        && !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c))
}

/// What an API key may do. A session (JWT) may do everything its role allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub const ALL: [&'static str; 3] = ["read", "write", "admin"];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq)]
pub enum Via {
    Session { session_id: Uuid },
    ApiKey { key_id: Uuid, scopes: Vec<String> },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub user_id: Uuid,
    pub role: Role,
    pub via: Via,
}

impl Principal {
    /// Whether this caller may act with `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        match &self.via {
            Via::Session { .. } => scope != Scope::Admin || self.role.is_admin(),
            Via::ApiKey { scopes, .. } => {
                let granted = scopes.iter().any(|s| s == scope.as_str() || s == "admin");
                granted && (scope != Scope::Admin || self.role.is_admin())
            }
        }
    }

    /// 403 unless this caller may act with `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.allows(scope) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this requires the {} scope or role", scope.as_str()),
        ))
    }

    /// The agent an agent key acts for (its `agent:<agent_id>` scope): such a key is accepted by
    /// agent-orchestration only.
    pub fn agent_scope(&self) -> Option<&str> {
        match &self.via {
            Via::ApiKey { scopes, .. } => scopes.iter().find_map(|s| s.strip_prefix("agent:")),
            Via::Session { .. } => None,
        }
    }

    /// 403 for an agent key on a service other than agent-orchestration: the key belongs to the
    /// admin who minted it, and must not reach that admin's own data.
    pub fn refuse_agent_key(&self, service: &str) -> Result<(), ApiError> {
        if self.agent_scope().is_none() || service == AGENT_SERVICE {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "agent_key",
            "agent keys are accepted by agent-orchestration only",
        ))
    }

    pub fn session_id(&self) -> Option<Uuid> {
        match self.via {
            Via::Session { session_id } => Some(session_id),
            Via::ApiKey { .. } => None,
        }
    }
}

/// Why a request was not authenticated; each maps to a 401 a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send Authorization: Bearer <token> or X-API-Key")]
    Missing,
    #[error("the access token has expired; refresh it")]
    Expired,
    #[error("the access token is not valid")]
    InvalidToken,
    #[error("the session has ended; log in again")]
    Revoked,
    #[error("the API key is not valid")]
    InvalidKey,
    #[error("the API key's checksum does not match (mistyped or truncated)")]
    KeyChecksum,
    #[error("this service cannot check credentials right now")]
    Unavailable,
}

impl AuthError {
    fn code(self) -> &'static str {
        match self {
            AuthError::Missing => "unauthenticated",
            AuthError::Expired => "token_expired",
            AuthError::InvalidToken => "invalid_token",
            AuthError::Revoked => "session_revoked",
            AuthError::InvalidKey => "invalid_api_key",
            AuthError::KeyChecksum => "api_key_checksum",
            AuthError::Unavailable => "auth_unavailable",
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = match e {
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = ApiError::from(self).into_response();
        if self != AuthError::Unavailable {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"helix\""),
            );
        }
        response
    }
}

/// Verifies credentials for one service. Services with a database check sessions and keys in
/// it; services without one verify JWTs by signature alone.
pub struct Authenticator {
    jwt: Jwt,
    store: Option<Arc<dyn Store>>,
    /// session id → revoked?
    sessions: TtlCache<Uuid, bool>,
    /// key hash → owner (`None`: no such live key).
    keys: TtlCache<String, Option<KeyOwner>>,
    /// Without a store: backend-api, asked instead.
    remote: Option<Remote>,
    /// key hash → what backend-api said, for services that ask it.
    remote_keys: TtlCache<String, Result<Principal, AuthError>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("jwt", &self.jwt)
            .field("checks_store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// `remote` (backend-api's URL) is used only when there is no store.
    pub fn new(jwt: Jwt, store: Option<Arc<dyn Store>>, remote: Option<&str>) -> Self {
        Self {
            jwt,
            remote: remote.filter(|_| store.is_none()).map(Remote::new),
            store,
            sessions: TtlCache::new(CACHE_TTL, CACHE_CAPACITY),
            keys: TtlCache::new(CACHE_TTL, CACHE_CAPACITY),
            remote_keys: TtlCache::new(CACHE_TTL, CACHE_CAPACITY),
        }
    }

    pub fn jwt(&self) -> &Jwt {
        &self.jwt
    }

    /// Authenticate the credential of a request's headers.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        match credential(parts)? {
            Credential::Key(key) => self.api_key(key).await,
            Credential::Token(token) => self.token(token).await,
        }
    }

    /// Authenticate a bare credential (a JWT or an `hx_` key) that did not come in a header,
    /// as the WebSocket hub receives it; also when it stops being valid (Unix seconds; `None`
    /// for API keys, which are re-checked only when a connection presents a new credential).
    pub async fn authenticate_credential(
        &self,
        credential: &str,
    ) -> Result<(Principal, Option<i64>), AuthError> {
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(AuthError::Missing);
        }
        if api_key::looks_like_key(credential) {
            return Ok((self.api_key(credential).await?, None));
        }
        let (principal, expires) = self.token_until(credential).await?;
        Ok((principal, Some(expires)))
    }

    async fn token(&self, token: &str) -> Result<Principal, AuthError> {
        Ok(self.token_until(token).await?.0)
    }

    /// A token's principal and its `exp` (Unix seconds).
    async fn token_until(&self, token: &str) -> Result<(Principal, i64), AuthError> {
        let claims = self.jwt.verify(token).map_err(|e| match e {
            TokenError::Expired => AuthError::Expired,
            TokenError::Invalid => AuthError::InvalidToken,
        })?;
        if self.session_revoked(claims.sid, token).await? {
            return Err(AuthError::Revoked);
        }
        Ok((
            Principal {
                user_id: claims.sub,
                role: claims.role,
                via: Via::Session {
                    session_id: claims.sid,
                },
            },
            claims.exp,
        ))
    }

    /// Whether the session of a verified token has ended: from the store, else from backend-api
    /// (asked with the token itself), else (no way to know) not.
    async fn session_revoked(&self, sid: Uuid, token: &str) -> Result<bool, AuthError> {
        if let Some(revoked) = self.sessions.get(&sid) {
            return Ok(revoked);
        }
        let Some(store) = &self.store else {
            let Some(remote) = &self.remote else {
                return Ok(false);
            };
            let revoked = match remote.introspect(token).await {
                Ok(_) => false,
                Err(AuthError::Revoked) => true,
                Err(other) => return Err(other),
            };
            self.sessions.put(sid, revoked);
            return Ok(revoked);
        };
        let session = store
            .accounts()
            .session(sid)
            .await
            .map_err(|e| unavailable(&e))?;
        let revoked = session.is_none_or(|s| s.revoked_at.is_some() || s.expires_at <= Utc::now());
        self.sessions.put(sid, revoked);
        Ok(revoked)
    }

    async fn api_key(&self, key: &str) -> Result<Principal, AuthError> {
        let hash = api_key::check(key).map_err(|e| match e {
            api_key::KeyFormatError::BadChecksum => AuthError::KeyChecksum,
            api_key::KeyFormatError::Malformed => AuthError::InvalidKey,
        })?;
        let owner = match self.keys.get(&hash) {
            Some(cached) => cached,
            None => {
                let Some(store) = &self.store else {
                    return self.remote_key(key, hash).await;
                };
                let found = store
                    .accounts()
                    .api_key_by_hash(&hash, Utc::now())
                    .await
                    .map_err(|e| unavailable(&e))?;
                self.keys.put(hash, found.clone());
                found
            }
        };
        let owner = owner.ok_or(AuthError::InvalidKey)?;
        // A cached key may have expired since it was cached.
        if owner.key.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(AuthError::InvalidKey);
        }
        Ok(Principal {
            user_id: owner.key.user_id,
            role: owner.role,
            via: Via::ApiKey {
                key_id: owner.key.id,
                scopes: owner.key.scopes,
            },
        })
    }

    /// An API key checked by backend-api; definite answers are cached, outages are not.
    async fn remote_key(&self, key: &str, hash: String) -> Result<Principal, AuthError> {
        if let Some(cached) = self.remote_keys.get(&hash) {
            return cached;
        }
        let Some(remote) = &self.remote else {
            return Err(AuthError::InvalidKey);
        };
        let answer = remote.introspect(key).await;
        if answer != Err(AuthError::Unavailable) {
            self.remote_keys.put(hash, answer.clone());
        }
        answer
    }

    /// Forget what is cached about a session (this instance revoked it).
    pub fn forget_session(&self, sid: Uuid) {
        self.sessions.remove(&sid);
    }

    /// Forget every cached key (this instance revoked one; keys are cached by hash, which the
    /// revoking request does not know).
    pub fn forget_keys(&self) {
        self.keys.clear();
    }
}

fn unavailable(e: &helix_store::StoreError) -> AuthError {
    tracing::warn!(error = %e, "credential lookup failed");
    AuthError::Unavailable
}

enum Credential<'a> {
    Token(&'a str),
    Key(&'a str),
}

/// The credential of a request: `Authorization: Bearer …` first, then `X-API-Key`.
fn credential(parts: &Parts) -> Result<Credential<'_>, AuthError> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::InvalidToken)?;
        let (scheme, rest) = value.split_once(' ').ok_or(AuthError::InvalidToken)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::InvalidToken);
        }
        let token = rest.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        return Ok(if api_key::looks_like_key(token) {
            Credential::Key(token)
        } else {
            Credential::Token(token)
        });
    }
    if let Some(value) = parts.headers.get("x-api-key") {
        let key = value.to_str().map_err(|_| AuthError::InvalidKey)?.trim();
        return Ok(Credential::Key(key));
    }
    Err(AuthError::Missing)
}

impl FromRequestParts<ServiceState> for Principal {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServiceState,
    ) -> Result<Self, Self::Rejection> {
        let principal = extract(parts, state).await?;
        principal
            .refuse_agent_key(state.spec().name)
            .map_err(IntoResponse::into_response)?;
        Ok(principal)
    }
}

/// Any authenticated caller, agent keys included on every service: for introspection, which
/// must describe an agent key to the service asking rather than refuse it.
#[derive(Debug, Clone)]
pub struct AnyPrincipal(pub Principal);

impl FromRequestParts<ServiceState> for AnyPrincipal {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServiceState,
    ) -> Result<Self, Self::Rejection> {
        extract(parts, state).await.map(AnyPrincipal)
    }
}

/// Authenticate a request's credential and charge it to its rate limit.
async fn extract(parts: &Parts, state: &ServiceState) -> Result<Principal, Response> {
    let Some(auth) = state.auth() else {
        return Err(
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource").into_response(),
        );
    };
    let principal = auth
        .authenticate(parts)
        .await
        .map_err(IntoResponse::into_response)?;
    if let Some(bus) = state.bus() {
        let (name, id) = match &principal.via {
            Via::Session { .. } => ("user", principal.user_id),
            Via::ApiKey { key_id, .. } => ("key", *key_id),
        };
        let limit = rate_limit::Limit {
            name,
            limit: state.rate_per_minute(),
            window: rate_limit::MINUTE,
        };
        state
            .leases()
            .check(&**bus, limit, &id.to_string())
            .await
            .map_err(IntoResponse::into_response)?;
    }
    Ok(principal)
}
