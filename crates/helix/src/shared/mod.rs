//! What every service shares: HTTP errors, redaction, request metrics.

pub mod error;
pub mod metrics;
pub mod redact;
