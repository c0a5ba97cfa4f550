//! The bounded retry of the first connection at [`crate::open`].
//!
//! A database that is still starting (a container booting next to ours) gets
//! `StoreOptions::connect_attempts` tries, each bounded by `connect_timeout`, with a doubling
//! backoff in between. Errors that will not heal by waiting (bad credentials, a missing database)
//! fail at once. Each failed attempt is logged with the target only, never the URL.

use std::future::Future;
use std::time::Duration;

use crate::target::redact;
use crate::{StoreError, StoreOptions};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Who is being connected to, for logs and the final [`StoreError::Unavailable`].
pub(crate) struct Attempts<'a> {
    /// `host:port/db` or a file path.
    pub(crate) target: &'a str,
    /// Strings to scrub from driver messages.
    pub(crate) secrets: &'a [String],
    /// Whether an error of this engine may go away by itself.
    pub(crate) retryable: fn(&sqlx::Error) -> bool,
}

impl Attempts<'_> {
    /// Run `attempt` until it succeeds, fails for good, or the attempts are used up.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        options: &StoreOptions,
        mut attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let total = options.connect_attempts.max(1);
        let mut backoff = FIRST_BACKOFF;
        for n in 1..=total {
            let (reason, retry) =
                match tokio::time::timeout(options.connect_timeout, attempt()).await {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(err)) => (
                        redact(&err.to_string(), self.secrets),
                        (self.retryable)(&err),
                    ),
                    Err(_) => (
                        format!("timed out after {:?}", options.connect_timeout),
                        true,
                    ),
                };
            tracing::warn!(db = %self.target, attempt = n, of = total, %reason, "database connection attempt failed");
            if n == total || !retry {
                return Err(self.unavailable(reason));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        unreachable!("the loop returns on its last attempt")
    }

    fn unavailable(&self, reason: String) -> StoreError {
        StoreError::Unavailable {
            target: self.target.to_string(),
            reason,
        }
    }
}

/// Errors of the transport itself, which any engine may outgrow by waiting.
pub(crate) fn is_transport_error(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut
    )
}
