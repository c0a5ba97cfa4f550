//! The one HTTP error type: `{"error": {"code", "message", "fields"}}` with the right status.
//!
//! Handlers return `Result<_, ApiError>`. A 5xx body never carries internal text: the detail is
//! logged with the request's id and the client gets an opaque message.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Map<String, Value>,
    /// Extra response headers (`Retry-After`, `RateLimit-*`); boxed because most errors have none
    /// and a header map would make every `Result<_, ApiError>` large.
    pub headers: Box<HeaderMap>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Map::new(),
            headers: Box::default(),
        }
    }

    /// 422 with one field named and what is wrong with it.
    pub fn unprocessable(field: &str, reason: &str) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fields",
            format!("{field}: {reason}"),
        );
        e.fields
            .insert(field.to_owned(), Value::String(reason.to_owned()));
        e
    }

    /// A storage failure: `NotFound` and `Conflict` keep their meaning, an unreachable database
    /// is a 503, anything else an opaque 500.
    pub fn store(e: helix_store::StoreError) -> Self {
        use helix_store::StoreError;
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", "already exists")
            }
            StoreError::Unavailable { .. } => {
                tracing::warn!(error = %e, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unreachable; retry shortly",
                )
            }
            other => Self::internal(other),
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this path",
        )
    }

    /// An internal failure: logged in full, answered opaquely.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, "internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error (id {id})"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.fields.is_empty() {
            error["fields"] = Value::Object(self.fields);
        }
        (self.status, *self.headers, Json(json!({ "error": error }))).into_response()
    }
}
