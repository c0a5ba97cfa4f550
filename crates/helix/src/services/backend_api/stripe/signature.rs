//! Stripe's webhook signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`,
//! where each `v1` is the hex HMAC-SHA256, keyed with the endpoint's signing secret, of
//! `<t>.<raw body>`. Several `v1` entries appear while a secret is being rolled; one match is
//! enough. `v0` and unknown schemes are ignored (never accepted alone). Comparison is constant
//! time (`Mac::verify_slice`). A timestamp more than [`TOLERANCE_SECS`] from now is refused even
//! with a valid signature, so a captured delivery cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far the signed timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header has no t= timestamp or no v1= signature")]
    Malformed,
    #[error("no v1 signature matches the body")]
    Mismatch,
    #[error("the signature's timestamp is more than 300 seconds from now")]
    Stale,
}

/// Check a delivery: `header` as received, `body` the exact bytes, `now` in Unix seconds.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let (t, signatures) = parse(header.ok_or(SignatureError::Missing)?)?;
    let signed = |candidate: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(candidate).is_ok()
    };
    // Why every candidate is checked without stopping early: the time taken says nothing about
    // which one came closest.
    let matched = signatures.iter().fold(false, |found, s| signed(s) | found);
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let at: i64 = t.parse().map_err(|_| SignatureError::Malformed)?;
    if now.abs_diff(at) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// The timestamp (as sent: it is part of what was signed) and the decoded `v1` signatures.
fn parse(header: &str) -> Result<(&str, Vec<Vec<u8>>), SignatureError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for (key, value) in header
        .split(',')
        .filter_map(|item| item.trim().split_once('='))
    {
        match key {
            "t" if t.is_none() => t = Some(value),
            // A v1 that is not hex cannot match; it is kept out rather than refused, as Stripe's
            // own libraries do.
            "v1" => v1.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let t = t.filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
    match t {
        Some(t) if !v1.is_empty() => Ok((t, v1)),
        _ => Err(SignatureError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"customer.subscription.updated"}"#;
    const NOW: i64 = 1_790_000_000;

    fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn header(t: i64, sigs: &[String]) -> String {
        let mut h = format!("t={t}");
        for s in sigs {
            h.push_str(&format!(",v1={s}"));
        }
        h
    }

    #[test]
    fn a_signature_made_as_stripe_makes_it_passes() {
        let good = header(NOW, &[sign(SECRET, NOW, BODY)]);
        assert_eq!(verify(Some(&good), BODY, SECRET, NOW), Ok(()));
        let edge = header(NOW - 300, &[sign(SECRET, NOW - 300, BODY)]);
        assert_eq!(verify(Some(&edge), BODY, SECRET, NOW), Ok(()));
    }

    #[test]
    fn one_matching_v1_among_several_is_enough() {
        let rolled = header(NOW, &["00".repeat(32), sign(SECRET, NOW, BODY)]);
        assert_eq!(verify(Some(&rolled), BODY, SECRET, NOW), Ok(()));
        let with_v0 = format!(
            "t={NOW},v0={},v1={}",
            "ab".repeat(32),
            sign(SECRET, NOW, BODY)
        );
        assert_eq!(verify(Some(&with_v0), BODY, SECRET, NOW), Ok(()));
    }

    #[test]
    fn everything_else_is_refused() {
        let sig = sign(SECRET, NOW, BODY);
        let cases: Vec<(Option<String>, &[u8], SignatureError)> = vec![
            (None, BODY, SignatureError::Missing),
            (Some(String::new()), BODY, SignatureError::Malformed),
            (Some(format!("v1={sig}")), BODY, SignatureError::Malformed),
            (Some(format!("t={NOW}")), BODY, SignatureError::Malformed),
            (
                Some(format!("t={NOW},v0={sig}")),
                BODY,
                SignatureError::Malformed,
            ),
            (
                Some(format!("t=soon,v1={sig}")),
                BODY,
                SignatureError::Malformed,
            ),
            (
                Some(format!("t={NOW},v1=not-hex")),
                BODY,
                SignatureError::Malformed,
            ),
            (
                Some(header(NOW, std::slice::from_ref(&sig))),
                b"{\"id\":\"evt_2\"}",
                SignatureError::Mismatch,
            ),
            (
                Some(header(NOW + 1, std::slice::from_ref(&sig))),
                BODY,
                SignatureError::Mismatch,
            ),
            (
                Some(header(NOW, &[sign(b"whsec_other", NOW, BODY)])),
                BODY,
                SignatureError::Mismatch,
            ),
            (
                Some(header(NOW, &[sig[..32].to_owned()])),
                BODY,
                SignatureError::Mismatch,
            ),
            (
                Some(header(NOW - 301, &[sign(SECRET, NOW - 301, BODY)])),
                BODY,
                SignatureError::Stale,
            ),
            (
                Some(header(NOW + 301, &[sign(SECRET, NOW + 301, BODY)])),
                BODY,
                SignatureError::Stale,
            ),
        ];
        for (h, body, expected) in cases {
            assert_eq!(
                verify(h.as_deref(), body, SECRET, NOW),
                Err(expected),
                "{h:?}"
            );
        }
    }
}
