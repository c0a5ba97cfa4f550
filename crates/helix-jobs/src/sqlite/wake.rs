//! Wake-ups on SQLite: a process-wide registry with one `watch` channel per database file, bumped
//! after each committed step that makes jobs available (enqueue, and also retry and release), so
//! every [`SqliteJobs`] of this process on that file wakes its workers at once.
//!
//! SQLite cannot tell other processes: a worker in another process sharing the file finds new
//! jobs only when it polls. The registry is keyed by the file's canonical path (two stores that
//! spell one file differently share an entry), falling back to the store's description for a
//! database without a file. Entries are never removed: one small channel per database opened.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use tokio::sync::watch;

use super::SqliteJobs;
use crate::error::JobError;

/// Why a std mutex: held only to find or add an entry, never across an await.
static REGISTRY: LazyLock<Mutex<HashMap<String, watch::Sender<u64>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The channel of one database, created on first use.
fn channel(key: &str) -> watch::Sender<u64> {
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    registry
        .entry(key.to_string())
        .or_insert_with(|| watch::channel(0).0)
        .clone()
}

impl SqliteJobs {
    /// This database's channel (one query the first time, to learn the file's path).
    pub(super) async fn waker(&self) -> Result<&watch::Sender<u64>, JobError> {
        self.wake
            .get_or_try_init(|| async { Ok(channel(&self.database_key().await?)) })
            .await
    }

    /// Wake this process's workers on this database. Called after a commit; a failure to learn
    /// the key only loses a hint (workers still poll), so it is not the caller's error.
    pub(super) async fn wake(&self) {
        match self.waker().await {
            Ok(sender) => sender.send_modify(|count| *count = count.wrapping_add(1)),
            Err(e) => tracing::debug!(error = %e, "no job wake-up sent"),
        }
    }

    /// The canonical path of the main database file, as SQLite opened it.
    async fn database_key(&self) -> Result<String, JobError> {
        let file: Option<String> =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_optional(&self.read)
                .await
                .map_err(self.err())?;
        Ok(match file.filter(|f| !f.is_empty()) {
            Some(file) => std::fs::canonicalize(&file)
                .map(|p| p.display().to_string())
                .unwrap_or(file),
            None => self.describe.clone(),
        })
    }
}
