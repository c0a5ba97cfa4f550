//! What every service shares: HTTP errors, redaction, request metrics, the usage recorder.

pub mod auth;
pub mod checkpoint;
pub mod coalesce;
pub mod cors;
pub mod error;
pub mod jobs;
pub mod json;
pub mod lease;
pub mod maintenance;
pub mod metrics;
pub mod outbound;
pub mod rate_limit;
pub mod redact;
pub mod usage;
