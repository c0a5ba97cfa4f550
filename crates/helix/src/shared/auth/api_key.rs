//! API keys: `hx_` + 32 base62 characters of randomness (190 bits) + 6 base62 characters of
//! CRC-32 checksum. The checksum lets a typo or a truncated key be refused without a lookup, and
//! lets secret scanners recognise a real key. Only the SHA-256 of the whole key is stored.

use rand::RngCore;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "hx_";
const BODY_LEN: usize = 32;
const CHECK_LEN: usize = 6;
/// How much of a key is kept in clear so a user can tell keys apart.
const SHOWN_LEN: usize = PREFIX.len() + 6;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key: `key` is shown to its owner exactly once.
#[derive(Debug)]
pub struct Generated {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

/// Why a presented key was refused without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("not a Helix API key")]
    Malformed,
    #[error("the API key's checksum does not match (mistyped or truncated)")]
    BadChecksum,
}

pub fn generate() -> Generated {
    let mut rng = rand::rngs::OsRng;
    let body: String = (0..BODY_LEN)
        .map(|_| {
            // Rejection sampling keeps every character equally likely.
            loop {
                let b = (rng.next_u32() & 0xff) as u8;
                if b < 248 {
                    return BASE62[usize::from(b % 62)] as char;
                }
            }
        })
        .collect();
    let key = format!("{PREFIX}{body}{}", checksum(&body));
    Generated {
        prefix: key[..SHOWN_LEN].to_owned(),
        hash: hash(&key),
        key,
    }
}

/// Check a presented key's shape and checksum; returns the hash to look up.
pub fn check(key: &str) -> Result<String, KeyFormatError> {
    let rest = key.strip_prefix(PREFIX).ok_or(KeyFormatError::Malformed)?;
    if rest.len() != BODY_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyFormatError::Malformed);
    }
    let (body, check) = rest.split_at(BODY_LEN);
    if checksum(body) != check {
        return Err(KeyFormatError::BadChecksum);
    }
    Ok(hash(key))
}

/// Whether a credential looks like an API key rather than a JWT.
pub fn looks_like_key(credential: &str) -> bool {
    credential.starts_with(PREFIX)
}

fn checksum(body: &str) -> String {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("base62 is ASCII")
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_check_and_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a.key, b.key);
        assert_eq!(a.key.len(), PREFIX.len() + BODY_LEN + CHECK_LEN);
        assert!(a.key.starts_with(&a.prefix));
        assert_eq!(check(&a.key), Ok(a.hash.clone()));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.key[3..]));
    }

    #[test]
    fn typos_truncation_and_junk_are_refused() {
        let key = generate().key;
        let mut typo: Vec<char> = key.chars().collect();
        typo[10] = if typo[10] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(check(&typo), Err(KeyFormatError::BadChecksum));
        assert_eq!(check(&key[..key.len() - 1]), Err(KeyFormatError::Malformed));
        assert_eq!(check("hx_' OR 1=1 --"), Err(KeyFormatError::Malformed));
        assert_eq!(check("sk_live_abc"), Err(KeyFormatError::Malformed));
    }
}
