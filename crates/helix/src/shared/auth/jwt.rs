//! Access tokens: JWT HS256 signed with the platform's shared `JWT_SECRET`, so every service of the
//! platform (and its older Python services) can verify them.
//!
//! Verification pins the algorithm to HS256 (a token claiming `none` or any other algorithm is
//! refused before its signature is looked at) and requires `exp`, `iat`, `aud`, `iss`, `sub`,
//! `sid` and `jti`.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use helix_store::accounts::Role;

/// Who the tokens are issued by and for.
pub const ISSUER: &str = "helix";
pub const AUDIENCE: &str = "helix-platform";

/// Clock skew tolerated between services when checking `exp`.
const LEEWAY_SECS: u64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    /// The session (refresh-token family) the token belongs to; revoking it stops the token.
    pub sid: Uuid,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    pub aud: String,
    pub iss: String,
}

/// Why a token was refused. Deliberately coarse: clients learn only what they can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

/// Signs and verifies access tokens with one secret.
#[derive(Clone)]
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Jwt {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// The same keys issuing tokens that live `ttl` (short-lived tokens for tests and tools).
    pub fn with_ttl(&self, ttl: Duration) -> Self {
        Self {
            encoding: self.encoding.clone(),
            decoding: self.decoding.clone(),
            validation: self.validation.clone(),
            ttl,
        }
    }

    /// How long an issued token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issue a token for a user's session.
    pub fn issue(&self, user: Uuid, session: Uuid, role: Role) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            sid: session,
            role,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            jti: Uuid::new_v4(),
            aud: AUDIENCE.into(),
            iss: ISSUER.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Verify a token and return its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt() -> Jwt {
        Jwt::new(
            b"test-secret-0123456789abcdef0123",
            Duration::from_secs(3600),
        )
    }

    fn b64(s: &str) -> String {
        use base64_engine::encode;
        encode(s.as_bytes())
    }

    /// A tiny URL-safe base64 encoder so the tests can forge tokens by hand.
    mod base64_engine {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        pub fn encode(bytes: &[u8]) -> String {
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
                let chars = chunk.len() + 1;
                for i in 0..chars {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let jwt = jwt();
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let claims = jwt
            .verify(&jwt.issue(user, session, Role::Admin))
            .expect("valid");
        assert_eq!(
            (claims.sub, claims.sid, claims.role),
            (user, session, Role::Admin)
        );
        assert_eq!(
            (claims.aud.as_str(), claims.iss.as_str()),
            (AUDIENCE, ISSUER)
        );
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn another_key_is_refused() {
        let token = Jwt::new(b"some-other-secret-0123456789abcd", Duration::from_secs(60)).issue(
            Uuid::new_v4(),
            Uuid::new_v4(),
            Role::User,
        );
        assert_eq!(jwt().verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn alg_none_is_refused() {
        let token = jwt().issue(Uuid::new_v4(), Uuid::new_v4(), Role::Creator);
        let payload = token.split('.').nth(1).expect("payload");
        let forged = format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
        assert_eq!(jwt().verify(&forged), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_wrong_audience_and_garbage_are_refused() {
        let jwt = jwt();
        let expired = Jwt::new(b"test-secret-0123456789abcdef0123", Duration::ZERO);
        let mut claims = expired
            .verify(&jwt.issue(Uuid::new_v4(), Uuid::new_v4(), Role::User))
            .expect("fresh");
        claims.exp = Utc::now().timestamp() - 60;
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"test-secret-0123456789abcdef0123"),
        )
        .expect("encode");
        assert_eq!(jwt.verify(&old), Err(TokenError::Expired));
        claims.exp = Utc::now().timestamp() + 60;
        claims.aud = "somebody-else".into();
        let wrong_aud = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"test-secret-0123456789abcdef0123"),
        )
        .expect("encode");
        assert_eq!(jwt.verify(&wrong_aud), Err(TokenError::Invalid));
        assert_eq!(jwt.verify("not.a.token"), Err(TokenError::Invalid));
        assert_eq!(jwt.verify(""), Err(TokenError::Invalid));
    }
}
