//! Errors of the bus. None of them carries a password.

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("unsupported bus URL scheme `{scheme}`: expected redis:// or rediss://")]
    UnsupportedScheme { scheme: String },
    #[error("invalid bus URL: {reason}")]
    InvalidUrl { reason: String },
    #[error("cannot connect to {target}: {reason}")]
    Unavailable { target: String, reason: String },
    #[error("bus error: {0}")]
    Backend(String),
}
