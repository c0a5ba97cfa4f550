//! Inbound events: `POST /api/hooks/{source}` and the old `POST /webhook/zapier`.
//!
//! Data flow: the raw body (the signature covers its exact bytes) → the source's secret (none
//! configured: 404, never accepted unsigned) → the signature, Standard Webhooks when its headers
//! are there, else `X-Zapier-Signature` (neither: 401) → the body must be JSON (400) → the event's
//! id and type → [`Ingest`] stores and queues it → 200. Anything refused is stored nowhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use bytes::Bytes;
use helix_store::webhooks::{Event, Recorded};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ingest::{Ingest, IngestError};
use super::signature::{self, SignatureError, Signed};
use crate::shared::coalesce::Failed;
use crate::shared::error::ApiError;

/// The source the old path receives for.
pub const ZAPIER: &str = "zapier";

/// Each source's signing key.
#[derive(Debug, Clone, Default)]
pub struct Secrets(BTreeMap<String, Vec<u8>>);

impl Secrets {
    /// From `HELIX_HOOK_SECRETS` (`source=secret,…`) and `ZAPIER_SECRET` (the `zapier` source).
    pub fn parse(list: Option<&str>, zapier: Option<&str>) -> Result<Secrets, String> {
        let mut secrets = BTreeMap::new();
        for entry in list.unwrap_or_default().split(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let Some((source, secret)) = entry.split_once('=') else {
                return Err("entries are source=secret".into());
            };
            let source = source.trim();
            if !is_source(source) || secret.trim().is_empty() {
                return Err(format!("`{source}` is not a source name or has no secret"));
            }
            secrets.insert(source.to_owned(), signature::key(secret.trim()));
        }
        if let Some(secret) = zapier.filter(|s| !s.is_empty()) {
            secrets.insert(ZAPIER.to_owned(), signature::key(secret));
        }
        Ok(Secrets(secrets))
    }

    /// The sources that are accepted, by name.
    pub fn sources(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    fn get(&self, source: &str) -> Option<&[u8]> {
        self.0.get(source).map(Vec::as_slice)
    }
}

/// 1 to 64 of `a-z 0-9 _ -`.
pub fn is_source(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// What the sender gets back.
#[derive(Debug, Serialize)]
pub struct Ack {
    pub received: bool,
    /// `accepted`, or `duplicate` when this event id was received before (nothing new stored).
    pub status: &'static str,
    /// Helix's id of the stored event.
    pub id: Uuid,
}

pub async fn receive(
    Extension(inbound): Extension<Arc<Inbound>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Ack>, ApiError> {
    inbound.take(&source, &headers, body).await
}

pub async fn receive_zapier(
    Extension(inbound): Extension<Arc<Inbound>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Ack>, ApiError> {
    inbound.take(ZAPIER, &headers, body).await
}

/// The receiving side of the service.
pub struct Inbound {
    pub secrets: Secrets,
    pub ingest: Ingest,
}

impl Inbound {
    async fn take(
        &self,
        source: &str,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Json<Ack>, ApiError> {
        let key = self.secrets.get(source).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_source",
                format!("no secret is configured for the source `{source}` (HELIX_HOOK_SECRETS)"),
            )
        })?;
        let body = body.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(e.status(), "too_large", e.body_text())
            } else {
                ApiError::new(e.status(), "bad_request", e.body_text())
            }
        })?;
        let sender_id = verify(headers, &body, key).map_err(|e| {
            tracing::info!(source, reason = %e, "refused an inbound webhook");
            ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", e.to_string())
        })?;
        let json: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not JSON: {e}"),
            )
        })?;
        let event = Event {
            id: Uuid::now_v7(),
            source: source.to_owned(),
            event_id: sender_id.unwrap_or_else(|| body_id(&json, &body)),
            event_type: event_type(&json, source),
            payload: String::from_utf8_lossy(&body).into_owned(),
            received_us: chrono::Utc::now().timestamp_micros(),
        };
        let recorded = self.ingest.submit(event).await.map_err(unavailable)?;
        Ok(Json(match recorded {
            Recorded::New(id) => Ack {
                received: true,
                status: "accepted",
                id,
            },
            Recorded::Duplicate(id) => Ack {
                received: true,
                status: "duplicate",
                id,
            },
        }))
    }
}

/// Verify the signature; the Standard Webhooks `webhook-id` when that scheme was used.
fn verify(headers: &HeaderMap, body: &[u8], key: &[u8]) -> Result<Option<String>, SignatureError> {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or_default());
    let standard = ["webhook-id", "webhook-timestamp", "webhook-signature"].map(header);
    if standard.iter().any(Option::is_some) {
        let [id, timestamp, signature] = standard.map(Option::unwrap_or_default);
        let signed = Signed {
            id,
            timestamp,
            signature,
        };
        let now = chrono::Utc::now().timestamp();
        signature::verify(signed, body, key, now)?;
        return Ok(Some(id.to_owned()));
    }
    match header("x-zapier-signature") {
        Some(sig) => signature::verify_zapier(sig, body, key).map(|()| None),
        None => Err(SignatureError::Missing),
    }
}

/// The old shape's event id: the body's `id` (or `event_id`), else the body's SHA-256, so a
/// resent body is still caught as a repeat.
fn body_id(json: &Value, body: &[u8]) -> String {
    let field = ["id", "event_id"].iter().find_map(|k| match &json[*k] {
        Value::String(s) if !s.is_empty() && s.len() <= 200 => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    field.unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(body))))
}

/// The body's `type` (or `event_type`, `event`), else `<source>.event`.
fn event_type(json: &Value, source: &str) -> String {
    ["type", "event_type", "event"]
        .iter()
        .find_map(|k| {
            json[*k]
                .as_str()
                .filter(|s| !s.is_empty() && s.len() <= 200)
        })
        .map_or_else(|| format!("{source}.event"), str::to_owned)
}

pub(super) fn unavailable(e: Failed<IngestError>) -> ApiError {
    let mut err = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the event could not be stored right now; send it again",
    );
    if let Failed::Stopped = e {
        err.message = "the service is stopping; send the event again".into();
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_and_refuse_bad_entries() {
        let s = Secrets::parse(Some("github=whsec_c2VjcmV0, crm = plain"), Some("z")).unwrap();
        assert_eq!(s.get("github"), Some(&b"secret"[..]));
        assert_eq!(s.get("crm"), Some(&b"plain"[..]));
        assert_eq!(s.get(ZAPIER), Some(&b"z"[..]));
        assert!(s.get("other").is_none());
        assert!(Secrets::parse(Some("nosecret"), None).is_err());
        assert!(Secrets::parse(Some("Bad Name=x"), None).is_err());
        assert!(Secrets::parse(Some("a="), None).is_err());
    }

    #[test]
    fn ids_and_types_come_from_the_body() {
        let json: Value = serde_json::from_str(r#"{"id": 42, "type": "lead.created"}"#).unwrap();
        assert_eq!(body_id(&json, b"x"), "42");
        assert_eq!(event_type(&json, "zapier"), "lead.created");
        let bare: Value = serde_json::from_str(r#"{"x": 1}"#).unwrap();
        assert!(body_id(&bare, b"{\"x\": 1}").starts_with("sha256:"));
        assert_eq!(event_type(&bare, "crm"), "crm.event");
    }
}
