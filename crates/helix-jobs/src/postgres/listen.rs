//! Wake-up hints over `LISTEN helix_jobs`: one listener per [`super::PgJobs`], shared by every
//! [`Wakeups`] handed out, started by the first and stopped when the last is dropped.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::{watch, Mutex};
use tokio_util::sync::CancellationToken;

use crate::backend::Wakeups;
use crate::error::JobError;

/// The channel enqueues notify (the payload is the queue; receivers do not read it).
pub(super) const CHANNEL: &str = "helix_jobs";

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The running listener task, alive while some [`Wakeups`] holds it.
struct Listener {
    /// Shared with the task; receivers subscribe here so they start with nothing unseen.
    tx: Arc<watch::Sender<u64>>,
    stop: CancellationToken,
    /// The server process of the current connection (for operators' logs and for tests).
    pid: Arc<AtomicI32>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        // The last Wakeups is gone: end the task, which closes its connection.
        self.stop.cancel();
    }
}

/// Hands out [`Wakeups`], starting the listener when none is running.
#[derive(Default)]
pub(super) struct Hub {
    // Why a tokio Mutex held across the first LISTEN: two first callers must share one
    // listener rather than each open a connection.
    current: Mutex<Weak<Listener>>,
}

impl Hub {
    /// A receiver of hints. A new listener is listening before this returns, so an enqueue made
    /// after it is never missed (short of a dropped connection, after which receivers are bumped).
    pub(super) async fn subscribe(
        &self,
        pool: &PgPool,
        backend: &str,
    ) -> Result<Wakeups, JobError> {
        let mut current = self.current.lock().await;
        let listener = match current.upgrade() {
            Some(listener) => listener,
            None => {
                let own = own_pool(pool);
                let (conn, pid) = connect(&own)
                    .await
                    .map_err(|e| super::rows::error(e, backend))?;
                let listener = Arc::new(start(pool.clone(), own, conn, pid));
                *current = Arc::downgrade(&listener);
                listener
            }
        };
        Ok(Wakeups {
            rx: listener.tx.subscribe(),
            guard: Some(Box::new(listener)),
        })
    }

    /// The server process the running listener is connected to, if one runs.
    #[cfg(test)]
    pub(super) async fn pid(&self) -> Option<i32> {
        let current = self.current.lock().await;
        current.upgrade().map(|l| l.pid.load(Ordering::Relaxed))
    }
}

/// The listener's own pool of one connection, on the store's settings (server, credentials).
/// Why not the store's pool: the listener holds its connection for good, which would leave one
/// fewer for queries, and a busy pool would delay its reconnect.
fn own_pool(store: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(store.options().get_acquire_timeout())
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with((*store.connect_options()).clone())
}

/// A listener on [`CHANNEL`], and its server process id.
async fn connect(pool: &PgPool) -> Result<(PgListener, i32), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnection is done by `run`, which must know of it to bump receivers afterwards.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut listener)
        .await?;
    tracing::debug!(pid, "job wake-up listener connected");
    Ok((listener, pid))
}

fn start(store: PgPool, own: PgPool, conn: PgListener, pid: i32) -> Listener {
    let (tx, _) = watch::channel(0u64);
    let listener = Listener {
        tx: Arc::new(tx),
        stop: CancellationToken::new(),
        pid: Arc::new(AtomicI32::new(pid)),
    };
    let task = Task {
        store,
        own,
        tx: listener.tx.clone(),
        stop: listener.stop.clone(),
        pid: listener.pid.clone(),
    };
    // Why a task: notifications arrive on a connection that must be read continuously; it
    // lives until `stop` (the last Wakeups dropped) or the store's pool is closed.
    tokio::spawn(task.run(conn));
    listener
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

/// What the listener task holds.
struct Task {
    /// The store's pool, only to notice it was closed.
    store: PgPool,
    /// The listener's own pool (see [`own_pool`]).
    own: PgPool,
    tx: Arc<watch::Sender<u64>>,
    stop: CancellationToken,
    pid: Arc<AtomicI32>,
}

impl Task {
    /// Bump per notification; on a lost connection reconnect with backoff and bump once, since
    /// notifications sent meanwhile were lost.
    async fn run(self, conn: PgListener) {
        let mut conn = Some(conn);
        while let Some(listener) = conn.as_mut() {
            let received = tokio::select! {
                _ = self.stop.cancelled() => break,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(_)) => bump(&self.tx),
                Ok(None) | Err(_) => {
                    // The broken listener goes first: its connection is the pool's only one.
                    drop(conn.take());
                    conn = self.reconnect().await;
                    if conn.is_some() {
                        bump(&self.tx);
                    }
                }
            }
        }
        // Dropping the listener sends UNLISTEN and returns its connection; then close it
        // politely (bounded, should the connection be hanging).
        drop(conn);
        let _ = tokio::time::timeout(MAX_BACKOFF, self.own.close()).await;
    }

    /// `None` when told to stop or the store is closed.
    async fn reconnect(&self) -> Option<PgListener> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            if self.store.is_closed() {
                return None;
            }
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            match connect(&self.own).await {
                Ok((conn, pid)) => {
                    self.pid.store(pid, Ordering::Relaxed);
                    return Some(conn);
                }
                Err(error) => {
                    tracing::warn!(%error, "job wake-up listener: reconnect failed");
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
