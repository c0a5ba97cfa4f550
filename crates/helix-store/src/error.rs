//! Errors of the storage layer. None of them carries a password: targets are described as
//! `host:port/database` or a file path.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL scheme `{scheme}`: expected postgres://, postgresql:// or sqlite://")]
    UnsupportedScheme { scheme: String },
    #[error("invalid database URL: {reason}")]
    InvalidUrl { reason: String },
    #[error("cannot connect to {target}: {reason}")]
    Unavailable { target: String, reason: String },
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("migration {version} failed: {reason}")]
    Migration { version: i64, reason: String },
    #[error("database error: {0}")]
    Database(String),
}
