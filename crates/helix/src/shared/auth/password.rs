//! Passwords: Argon2id at OWASP's minimum (19 MiB, t=2, p=1), the rules checked server-side, and
//! a verification path that costs the same for an unknown email as for a wrong password.
//!
//! Hashing is CPU-bound for tens of milliseconds, so it runs on the blocking pool, never on the
//! async workers that serve other requests.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's minimum for Argon2id: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 256;

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a random password, verified against when the email is unknown so that both failures
/// cost one Argon2 run.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_now(&uuid::Uuid::new_v4().to_string()));

/// Why a password was refused at signup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    #[error("must be between {MIN_LEN} and {MAX_LEN} characters")]
    Length,
    #[error("must not be the email address")]
    EqualsEmail,
}

/// Check the rules for a new password. Length counts characters, not bytes.
pub fn check_rules(password: &str, email: &str) -> Result<(), PasswordRule> {
    let len = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(PasswordRule::Length);
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err(PasswordRule::EqualsEmail);
    }
    Ok(())
}

fn hash_now(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 hashing with valid parameters cannot fail")
        .to_string()
}

/// Hash a password (PHC string) off the async workers.
pub async fn hash(password: String) -> String {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .expect("the hashing task does not panic")
}

/// Verify a password against a stored PHC string, or against the dummy hash when there is none,
/// so that an unknown email costs the same as a wrong password. `false` for a malformed hash.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let ok = PasswordHash::new(&phc)
            .map(|parsed| {
                argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && known
    })
    .await
    .expect("the verifying task does not panic")
}

/// Compute the dummy hash now rather than on the first login for an unknown email, whose timing
/// would otherwise differ.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(check_rules("short", "a@b.c"), Err(PasswordRule::Length));
        assert_eq!(
            check_rules(&"x".repeat(257), "a@b.c"),
            Err(PasswordRule::Length)
        );
        assert_eq!(
            check_rules("Person@Example.com", "person@example.com"),
            Err(PasswordRule::EqualsEmail)
        );
        assert_eq!(check_rules("correct horse battery", "a@b.c"), Ok(()));
        // Ten characters, more bytes: accepted.
        assert_eq!(check_rules("ééééééééééé", "a@b.c"), Ok(()));
    }

    #[tokio::test]
    async fn hashes_are_argon2id_at_owasp_minimum_and_verify() {
        let phc = hash("correct horse battery".into()).await;
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery".into(), Some(phc.clone())).await);
        assert!(!verify("wrong horse battery".into(), Some(phc)).await);
        assert!(!verify("anything".into(), None).await);
        assert!(!verify("anything".into(), Some("not a hash".into())).await);
    }
}
