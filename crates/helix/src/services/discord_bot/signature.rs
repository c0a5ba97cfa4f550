//! Discord's request signature: every interaction arrives with `X-Signature-Ed25519` (the hex
//! Ed25519 signature, 64 bytes) and `X-Signature-Timestamp` (Unix seconds), and the signature
//! covers `<timestamp><raw body>` (no separator), made with the key pair whose public half the
//! developer portal shows as the application's public key.
//!
//! Verification is strict (`verify_strict`: no small-order keys, no malleable signatures). A
//! timestamp more than [`TOLERANCE_SECS`] from now, in the past or in the future, is refused even
//! with a valid signature, so a captured request cannot be replayed later.

use ed25519_dalek::{Signature, VerifyingKey};

/// How far the signed timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;
pub const SIGNATURE_HEADER: &str = "x-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Signature-Ed25519 header is missing")]
    MissingSignature,
    #[error("the X-Signature-Timestamp header is missing")]
    MissingTimestamp,
    #[error("X-Signature-Ed25519 is not 64 bytes in hex")]
    MalformedSignature,
    #[error("X-Signature-Timestamp is not a Unix time in seconds")]
    MalformedTimestamp,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the signature's timestamp is more than 300 seconds from now")]
    Stale,
}

/// Check a request: the two headers as received (`None`: absent), `body` its exact bytes, `now`
/// in Unix seconds.
pub fn verify(
    key: &VerifyingKey,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::MissingSignature)?;
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    let bytes: [u8; 64] = hex::decode(signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::MalformedSignature)?;
    let at = parse_timestamp(timestamp).ok_or(SignatureError::MalformedTimestamp)?;
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    key.verify_strict(&signed, &Signature::from_bytes(&bytes))
        .map_err(|_| SignatureError::Mismatch)?;
    if now.abs_diff(at) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// Digits only (no sign, no blanks: the header is signed as sent).
fn parse_timestamp(raw: &str) -> Option<i64> {
    let digits = !raw.is_empty() && raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| raw.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const NOW: i64 = 1_790_000_000;
    const BODY: &[u8] = br#"{"type":1,"id":"1"}"#;

    fn signer() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn sign(key: &SigningKey, t: &str, body: &[u8]) -> String {
        let mut message = t.as_bytes().to_vec();
        message.extend_from_slice(body);
        hex::encode(key.sign(&message).to_bytes())
    }

    fn check(sig: Option<&str>, t: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        verify(&signer().verifying_key(), sig, t, body, NOW)
    }

    #[test]
    fn a_signature_made_as_discord_makes_it_passes() {
        for t in [NOW, NOW - 300, NOW + 300] {
            let t = t.to_string();
            let sig = sign(&signer(), &t, BODY);
            assert_eq!(check(Some(&sig), Some(&t), BODY), Ok(()), "{t}");
            assert_eq!(
                check(Some(&sig.to_uppercase()), Some(&t), BODY),
                Ok(()),
                "hex in either case"
            );
        }
    }

    #[test]
    fn everything_else_is_refused() {
        use SignatureError::*;
        let t = NOW.to_string();
        let sig = sign(&signer(), &t, BODY);
        let other = sign(&SigningKey::from_bytes(&[8; 32]), &t, BODY);
        let (old, new) = ((NOW - 301).to_string(), (NOW + 301).to_string());
        type Case<'a> = (Option<String>, Option<String>, &'a [u8], SignatureError);
        let cases: Vec<Case> = vec![
            (None, Some(t.clone()), BODY, MissingSignature),
            (Some(sig.clone()), None, BODY, MissingTimestamp),
            (
                Some("zz".repeat(64)),
                Some(t.clone()),
                BODY,
                MalformedSignature,
            ),
            (
                Some(sig[..126].into()),
                Some(t.clone()),
                BODY,
                MalformedSignature,
            ),
            (
                Some(format!("{sig}00")),
                Some(t.clone()),
                BODY,
                MalformedSignature,
            ),
            (
                Some(String::new()),
                Some(t.clone()),
                BODY,
                MalformedSignature,
            ),
            (
                Some(sig.clone()),
                Some(format!(" {t}")),
                BODY,
                MalformedTimestamp,
            ),
            (
                Some(sig.clone()),
                Some("-1".into()),
                BODY,
                MalformedTimestamp,
            ),
            (
                Some(sig.clone()),
                Some(String::new()),
                BODY,
                MalformedTimestamp,
            ),
            (Some(other), Some(t.clone()), BODY, Mismatch),
            (
                Some(sig.clone()),
                Some(t.clone()),
                b"{\"type\":2}",
                Mismatch,
            ),
            (
                Some(sig.clone()),
                Some((NOW + 1).to_string()),
                BODY,
                Mismatch,
            ),
            (Some(sign(&signer(), &old, BODY)), Some(old), BODY, Stale),
            (Some(sign(&signer(), &new, BODY)), Some(new), BODY, Stale),
        ];
        for (sig, t, body, expected) in cases {
            assert_eq!(
                check(sig.as_deref(), t.as_deref(), body),
                Err(expected),
                "{sig:?} {t:?}"
            );
        }
    }
}
