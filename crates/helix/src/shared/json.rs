//! Request bodies: [`ApiJson`] parses JSON and turns every way a body can be wrong into the error
//! a client can act on — 415 without a JSON content type, 400 for malformed JSON, 413 over the
//! size limit, 422 naming the field for unknown fields, missing fields and wrong types.
//!
//! Also [`ClientIp`], the peer address for audit entries and per-IP limits.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::shared::error::ApiError;

/// Largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body of type `T`; declare `T` with `#[serde(deny_unknown_fields)]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(rejected(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::new(e.status(), "bad_request", e.body_text())
            }
        })?;
        match axum::Json::<T>::from_bytes(&body) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::JsonSyntaxError(_)) if non_finite(&body).is_some() => {
                let field = non_finite(&body).flatten().unwrap_or_else(|| "body".into());
                Err(ApiError::unprocessable(
                    &field,
                    "must be a finite number (NaN and Infinity are not JSON numbers)",
                ))
            }
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

/// `Option<ApiJson<T>>`: no body at all (no content type, no length) is `None`; anything else is
/// checked exactly as [`ApiJson`] checks it.
impl<T, S> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let headers = req.headers();
        let length = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok());
        let chunked = headers.contains_key(axum::http::header::TRANSFER_ENCODING);
        let empty = !headers.contains_key(axum::http::header::CONTENT_TYPE)
            && !chunked
            && length.is_none_or(|l| l.trim() == "0");
        if empty {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// `application/json` or any `application/*+json`, as axum's `Json` accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(mime) = value.to_str() else {
        return false;
    };
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|s| s.ends_with("+json"))
}

/// Whether the body holds a bare `NaN`, `Infinity` or `-Infinity` (as Python's `json.dumps`
/// writes them) outside strings; if so, `Some` of the key it is the value of, when there is one.
fn non_finite(body: &[u8]) -> Option<Option<String>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut in_string = false;
    let mut escaped = false;
    let mut last_key: Option<String> = None;
    let mut string_start = 0;
    let mut last_string: Option<String> = None;
    for (i, c) in text.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    in_string = false;
                    last_string = Some(text[string_start..i].to_owned());
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                string_start = i + 1;
            }
            ':' => last_key = last_string.take(),
            'N' if text[i..].starts_with("NaN") => return Some(last_key),
            'I' if text[i..].starts_with("Infinity") => return Some(last_key),
            _ => {}
        }
    }
    None
}

fn rejected(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body is not valid JSON",
        ),
        JsonRejection::JsonDataError(e) => invalid_field(&e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => ApiError::new(other.status(), "bad_request", other.body_text()),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the body is larger than this endpoint accepts ({MAX_BODY_BYTES} bytes for most; \
             a metrics batch or a Stripe event may be larger)"
        ),
    )
}

/// axum reports data errors as `Failed to deserialize the JSON body into the target type:
/// <path>: <reason> at line L column C`; keep the field and the reason.
fn invalid_field(text: &str) -> ApiError {
    let detail = text
        .split_once("target type: ")
        .map_or(text, |(_, rest)| rest);
    let detail = detail.split(" at line ").next().unwrap_or(detail);
    let (field, reason) = match detail.split_once(": ") {
        Some((path, reason)) if !path.contains(' ') => (path.to_owned(), reason.to_owned()),
        // A missing or unknown field at the top level names itself in the reason.
        _ => (
            field_in(detail).unwrap_or_else(|| "body".to_owned()),
            detail.to_owned(),
        ),
    };
    ApiError::unprocessable(&field, &reason)
}

/// The backticked field name serde puts in "missing field `x`" and "unknown field `x`".
fn field_in(reason: &str) -> Option<String> {
    let start = reason.find('`')? + 1;
    let len = reason[start..].find('`')?;
    Some(reason[start..start + len].to_owned())
}

/// The address of the peer, when the server was started with connection info.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    pub fn to_string_opt(self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Build the `fields` map of a 422.
pub fn fields(pairs: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_non_finite_numbers_are_found_with_their_key() {
        let found = |body: &str| non_finite(body.as_bytes());
        assert_eq!(found(r#"{"a": {"zoom": NaN}}"#), Some(Some("zoom".into())));
        assert_eq!(
            found(r#"{"x": "NaN", "y": -Infinity}"#),
            Some(Some("y".into()))
        );
        assert_eq!(found(r#"[Infinity]"#), Some(None));
        assert_eq!(found(r#"{"s": "Infinity \" NaN"}"#), None);
        assert_eq!(found(r#"{"s": 1.5}"#), None);
    }

    #[test]
    fn data_errors_name_the_field() {
        let e = invalid_field("Failed to deserialize the JSON body into the target type: email: invalid type: integer `1`, expected a string at line 1 column 10");
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.fields.get("email").and_then(Value::as_str),
            Some("invalid type: integer `1`, expected a string")
        );
        let e = invalid_field("Failed to deserialize the JSON body into the target type: unknown field `admin`, expected one of `email`, `password` at line 1 column 9");
        assert!(e.fields.contains_key("admin"), "{:?}", e.fields);
        let e = invalid_field("Failed to deserialize the JSON body into the target type: missing field `password` at line 1 column 2");
        assert!(e.fields.contains_key("password"), "{:?}", e.fields);
    }
}
