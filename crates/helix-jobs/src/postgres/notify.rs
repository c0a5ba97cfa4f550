//! Sending the wake-up hints (`pg_notify('helix_jobs', queue)`) of steps that made jobs
//! available through the pool: after their commit, from one task, coalesced.
//!
//! Why not `pg_notify` inside the enqueue statement: PostgreSQL serialises the commits of all
//! transactions that notify (a database-wide lock held until the commit is flushed), so
//! concurrent enqueues would flush one by one instead of sharing a flush (8 clients enqueueing
//! one job each: 386/s with the notify inside, 1,583/s without, measured with pgbench on the
//! 2-core dev machine). A notify on its own writes nothing to flush and holds that lock only
//! briefly. [`super::enqueue_in`] still notifies inside the caller's transaction, where only
//! the commit may announce the jobs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

/// One statement for every queue hinted since the last one.
const NOTIFY: &str = "SELECT pg_notify('helix_jobs', left(q, 1000)) FROM unnest($1::text[]) q";

pub(super) struct Notifier {
    pool: PgPool,
    shared: Arc<Shared>,
    /// Started by the first hint (it needs a runtime); stops the task when the backend is
    /// dropped.
    task: OnceLock<DropGuard>,
}

#[derive(Default)]
struct Shared {
    /// Queues to announce. Why a std Mutex: held for a few inserts, never across an await.
    pending: Mutex<BTreeSet<String>>,
    /// Wakes the task; a wake given while it is busy is kept for its next wait.
    wake: Notify,
}

impl Notifier {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            shared: Arc::default(),
            task: OnceLock::new(),
        }
    }

    /// Announce that jobs of these queues may be available (after the caller's commit).
    pub(super) fn hint<'a>(&self, queues: impl IntoIterator<Item = &'a str>) {
        let mut any = false;
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for queue in queues {
                any = true;
                if !pending.contains(queue) {
                    pending.insert(queue.to_string());
                }
            }
        }
        if !any {
            return;
        }
        self.task.get_or_init(|| {
            let stop = CancellationToken::new();
            // Why a task: the caller's step has committed and returns at once; the hint follows
            // on its own round trip, and hints given meanwhile share the next one.
            tokio::spawn(run(self.pool.clone(), self.shared.clone(), stop.clone()));
            stop.drop_guard()
        });
        self.shared.wake.notify_one();
    }
}

async fn run(pool: PgPool, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.wake.notified() => {}
        }
        let queues: Vec<String> = {
            let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *pending).into_iter().collect()
        };
        if queues.is_empty() {
            continue;
        }
        if let Err(error) = sqlx::query(NOTIFY).bind(queues).execute(&pool).await {
            // Only a hint: workers poll as well.
            tracing::debug!(%error, "job wake-up hint not sent");
        }
    }
}
