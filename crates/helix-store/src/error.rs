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

impl StoreError {
    /// Map a driver error. `target` (`host:port/db` or a path) names the database when it is
    /// unreachable; driver messages carry no URL, so none can leak through here.
    pub(crate) fn from_sqlx(err: sqlx::Error, target: &str) -> Self {
        match err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_string())
            }
            sqlx::Error::PoolClosed
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable {
                target: target.to_string(),
                reason: err.to_string(),
            },
            other => StoreError::Database(other.to_string()),
        }
    }
}
