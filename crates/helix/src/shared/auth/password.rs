//! Passwords: Argon2id at OWASP's minimum (19 MiB, t=2, p=1), the rules checked server-side, and
//! a verification path that costs the same for an unknown email as for a wrong password.
//!
//! Hashing is CPU-bound for tens of milliseconds, so it runs on the blocking pool, never on the
//! async workers that serve other requests. At most one hash per core runs at once (more would
//! only share the same cores), each in one of a few reused 19 MiB work areas: a fresh area per
//! hash left the process holding hundreds of MiB the allocator never gave back.

use std::sync::{LazyLock, Mutex};

use argon2::password_hash::{Output, PasswordHash, PasswordVerifier, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

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

/// The reused work areas, and the permits that bound how many hashes run at once.
struct WorkAreas {
    permits: Semaphore,
    free: Mutex<Vec<Box<[Block]>>>,
}

static AREAS: LazyLock<WorkAreas> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    WorkAreas {
        permits: Semaphore::new(cores),
        free: Mutex::new(Vec::new()),
    }
});

fn new_area() -> Box<[Block]> {
    vec![Block::new(); MEMORY_KIB as usize].into_boxed_slice()
}

/// Run `work` on the blocking pool with a work area, waiting (asynchronously) for a free core.
/// The permit and the area travel with the blocking task: a caller that gives up (a client that
/// hung up) neither frees a core still hashing nor loses the area.
async fn with_area<R: Send + 'static>(work: impl FnOnce(&mut [Block]) -> R + Send + 'static) -> R {
    let permit = AREAS
        .permits
        .acquire()
        .await
        .expect("the permits are never closed");
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let spare = lock_free_areas().pop();
        // Outside the lock: zeroing 19 MiB is not something other hashes should wait on.
        let mut area = spare.unwrap_or_else(new_area);
        let result = work(&mut area);
        lock_free_areas().push(area);
        result
    })
    .await
    .expect("the hashing task does not panic")
}

fn lock_free_areas() -> std::sync::MutexGuard<'static, Vec<Box<[Block]>>> {
    // A list of spare buffers cannot be left inconsistent by a panic: use it as is.
    AREAS.free.lock().unwrap_or_else(|e| e.into_inner())
}

/// The raw Argon2id output for `password` and `salt` with the server's parameters.
fn compute(area: &mut [Block], password: &[u8], salt: Salt<'_>) -> Option<Output> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).ok()?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2()
        .hash_password_into_with_memory(password, salt_bytes, &mut out, area)
        .ok()?;
    Output::new(&out).ok()
}

fn hash_with(area: &mut [Block], password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let params = argon2().params().clone();
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().expect("constant parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(
            compute(area, password.as_bytes(), salt.as_salt())
                .expect("Argon2 hashing with valid parameters cannot fail"),
        ),
    };
    phc.to_string()
}

fn hash_now(password: &str) -> String {
    hash_with(&mut new_area(), password)
}

/// Hash a password (PHC string) off the async workers.
pub async fn hash(password: String) -> String {
    with_area(move |area| hash_with(area, &password)).await
}

/// Whether a stored hash was made with today's algorithm and parameters, so the pooled work
/// area fits it. (Parameters parsed from a hash carry its output length, which ours leave unset:
/// compare the costs, not the whole `Params`.)
fn made_with_ours(parsed: &PasswordHash<'_>) -> bool {
    let costs = Params::try_from(parsed).map(|p| (p.m_cost(), p.t_cost(), p.p_cost()));
    parsed.algorithm == Algorithm::Argon2id.ident()
        && parsed.version == Some(Version::V0x13.into())
        && costs == Ok((MEMORY_KIB, PASSES, LANES))
        && parsed
            .hash
            .is_some_and(|h| h.len() == Params::DEFAULT_OUTPUT_LEN)
}

/// Whether `password` matches the PHC string `phc`. A hash made with other parameters (an older
/// policy) is checked with its own, in memory of its own size.
fn matches(area: &mut [Block], password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    match (made_with_ours(&parsed), parsed.salt, &parsed.hash) {
        // `Output`'s equality is constant-time.
        (true, Some(salt), Some(expected)) => {
            compute(area, password.as_bytes(), salt).is_some_and(|got| &got == expected)
        }
        _ => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
    }
}

/// Verify a password against a stored PHC string, or against the dummy hash when there is none,
/// so that an unknown email costs the same as a wrong password. `false` for a malformed hash.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    let known = stored.is_some();
    let phc = stored.unwrap_or_else(|| DUMMY_HASH.clone());
    with_area(move |area| matches(area, &password, &phc)).await && known
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

    #[tokio::test]
    async fn hashes_made_with_other_parameters_still_verify() {
        use argon2::password_hash::PasswordHasher;
        let older = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 3, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let phc = older
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(verify("correct horse battery".into(), Some(phc.clone())).await);
        assert!(!verify("wrong horse battery".into(), Some(phc)).await);
    }

    #[tokio::test]
    async fn todays_hashes_are_verified_in_the_pooled_work_areas() {
        let phc = hash("correct horse battery".into()).await;
        assert!(made_with_ours(&PasswordHash::new(&phc).unwrap()));
        let older = phc.replace("m=19456", "m=8192");
        assert!(!made_with_ours(&PasswordHash::new(&older).unwrap()));
    }

    #[tokio::test]
    async fn pooled_hashes_match_the_reference_implementation() {
        use argon2::password_hash::PasswordHasher;
        let phc = hash("correct horse battery".into()).await;
        let parsed = PasswordHash::new(&phc).unwrap();
        let reference = argon2()
            .hash_password(b"correct horse battery", parsed.salt.unwrap())
            .unwrap();
        assert_eq!(reference.to_string(), phc);
    }
}
