//! Webhook signatures, both ways.
//!
//! Standard Webhooks (what Helix signs its deliveries with, and what `/api/hooks/{source}`
//! accepts): headers `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, a
//! space-separated list of `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`; the key is the
//! base64 after `whsec_` in the secret. One matching `v1` is enough (several appear while a
//! secret is rolled); the timestamp must be within [`TOLERANCE_SECS`] of now, either way.
//!
//! The old Zapier shape: `X-Zapier-Signature: <hex HMAC-SHA256 of the body>` (optionally
//! `sha256=<hex>`), keyed with the secret's bytes. It has no timestamp, so a replay is caught
//! only by the event id.
//!
//! Every comparison is constant time (`Mac::verify_slice`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far `webhook-timestamp` may be from now.
pub const TOLERANCE_SECS: i64 = 300;

/// Why an inbound event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature: webhook-id, webhook-timestamp and webhook-signature (or X-Zapier-Signature) are required")]
    Missing,
    #[error("the signature or timestamp is not in the expected encoding")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the timestamp is more than 300 seconds from now")]
    Stale,
}

/// A signing key from a secret: the base64 after `whsec_`, else the secret's own bytes.
pub fn key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b| STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length")
}

/// The `webhook-signature` value of a message.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(key);
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The three Standard Webhooks headers as received.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

/// Check a Standard Webhooks message against `key`, `now` in Unix seconds.
pub fn verify(signed: Signed<'_>, body: &[u8], key: &[u8], now: i64) -> Result<(), SignatureError> {
    if signed.id.is_empty() || signed.timestamp.is_empty() || signed.signature.is_empty() {
        return Err(SignatureError::Missing);
    }
    let at: i64 = signed
        .timestamp
        .parse()
        .map_err(|_| SignatureError::Malformed)?;
    let candidates: Vec<Vec<u8>> = signed
        .signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .map(|b| STANDARD.decode(b).map_err(|_| SignatureError::Malformed))
        .collect::<Result<_, _>>()?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let check = |candidate: &[u8]| {
        let mut mac = mac(key);
        mac.update(format!("{}.{}.", signed.id, signed.timestamp).as_bytes());
        mac.update(body);
        mac.verify_slice(candidate).is_ok()
    };
    // Every candidate is checked: the time taken says nothing about which came closest.
    if !candidates.iter().fold(false, |found, c| check(c) | found) {
        return Err(SignatureError::Mismatch);
    }
    if now.abs_diff(at) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// Check the old `X-Zapier-Signature` header.
pub fn verify_zapier(header: &str, body: &[u8], key: &[u8]) -> Result<(), SignatureError> {
    let hex_text = header.trim();
    let hex_text = hex_text.strip_prefix("sha256=").unwrap_or(hex_text);
    let expected = hex::decode(hex_text).map_err(|_| SignatureError::Malformed)?;
    let mut mac = mac(key);
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// `X-Zapier-Signature` of a body (what tests and senders compute).
pub fn sign_zapier(key: &[u8], body: &[u8]) -> String {
    let mut mac = mac(key);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn matches_the_reference_signature() {
        let key = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let got = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(got, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    fn signed<'a>(id: &'a str, t: &'a str, s: &'a str) -> Signed<'a> {
        Signed {
            id,
            timestamp: t,
            signature: s,
        }
    }

    #[test]
    fn verifies_and_refuses() {
        let key = key("whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=");
        let body = b"{\"a\":1}";
        let good = sign(&key, "m1", 1000, body);
        let both = format!("v1,AAAA {good}");
        assert_eq!(
            verify(signed("m1", "1000", &good), body, &key, 1100),
            Ok(())
        );
        assert_eq!(
            verify(signed("m1", "1000", &both), body, &key, 1000),
            Ok(())
        );
        assert_eq!(
            verify(signed("m2", "1000", &good), body, &key, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(signed("m1", "1000", &good), b"{}", &key, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(signed("m1", "1000", &good), body, &key, 1301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(signed("m1", "1000", &good), body, &key, 699),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(signed("m1", "soon", &good), body, &key, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(signed("m1", "1000", "v1,not base64!"), body, &key, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(signed("m1", "1000", "v2,abc"), body, &key, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(signed("", "1000", &good), body, &key, 1000),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn zapier_signatures() {
        let key = key("plain-secret");
        let body = b"{\"lead\":1}";
        let sig = sign_zapier(&key, body);
        assert_eq!(verify_zapier(&sig, body, &key), Ok(()));
        assert_eq!(verify_zapier(&format!("sha256={sig}"), body, &key), Ok(()));
        assert_eq!(
            verify_zapier(&sig, b"{}", &key),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_zapier("zz", body, &key),
            Err(SignatureError::Malformed)
        );
    }
}
