//! Refresh tokens and the OAuth2 token response.
//!
//! A refresh token is `hxr_` + 64 hex characters (256 random bits); only its SHA-256 is stored.

use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::schema::TokenResponse;
use crate::shared::auth::jwt::Jwt;
use helix_store::accounts::Role;
use uuid::Uuid;

const PREFIX: &str = "hxr_";

/// How long a login session (and so its refresh tokens) lives without logging in again.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// A rotated-away refresh token presented within this many seconds is not treated as theft: two
/// tabs of one user may refresh at the same moment.
pub const REFRESH_GRACE_VAR: &str = "HELIX_REFRESH_GRACE_SECS";

/// The configured grace window (validated at start, default 10 s).
pub fn refresh_grace(env: &crate::config::ServiceEnv) -> Duration {
    Duration::from_secs(
        env.integer(REFRESH_GRACE_VAR)
            .map_or(10, |n| n.max(0) as u64),
    )
}

/// A new refresh token and the hash to store.
pub fn new_refresh() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{PREFIX}{}", hex::encode(bytes));
    let hash = hash(&token);
    (token, hash)
}

/// The hash a presented refresh token is looked up by; `None` when it cannot be one of ours.
pub fn presented(token: &str) -> Option<String> {
    let body = token.strip_prefix(PREFIX)?;
    (body.len() == 64 && body.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hash(token))
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issue an access token for a session beside its refresh token.
pub fn response(
    jwt: &Jwt,
    user: Uuid,
    session: Uuid,
    role: Role,
    refresh_token: String,
) -> TokenResponse {
    TokenResponse {
        access_token: jwt.issue(user, session, role),
        refresh_token,
        token_type: "Bearer",
        expires_in: jwt.ttl().as_secs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_round_trip_and_junk_is_refused() {
        let (token, hash) = new_refresh();
        assert_eq!(presented(&token), Some(hash));
        assert_eq!(presented("hxr_xyz"), None);
        assert_eq!(presented("' OR 1=1 --"), None);
    }
}
