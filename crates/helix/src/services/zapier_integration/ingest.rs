//! Durable intake of verified events, coalesced ([`crate::shared::coalesce`]).
//!
//! A request hands its event to [`Ingest::submit`] and waits; an intake task stores every event
//! waiting (up to [`MAX_BATCH`]) in one statement, queues one fan-out job for the batch, and only
//! then answers each request. So the 2xx a sender gets always means "stored and queued".
//!
//! A repeated event id is answered as a duplicate without a second row, and is fanned out again
//! all the same (which creates nothing twice): if a crash fell between storing an event and
//! queuing it, the sender never got its 2xx, retries, and the retry queues it.

use std::sync::Arc;

use helix_jobs::JobBackend;
use helix_store::webhooks::{Event, Recorded};
use helix_store::Store;

use super::kinds::fanout_job;
use crate::shared::coalesce::{Coalescer, Failed};

/// The most events one intake task stores at once.
pub const MAX_BATCH: usize = 256;
/// Intake tasks: while one commits, the next gathers.
const TASKS: usize = 4;

/// Why an event could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("storing the event failed: {0}")]
    Store(#[from] helix_store::StoreError),
    #[error("queueing the event failed: {0}")]
    Queue(#[from] helix_jobs::JobError),
}

/// The intake: cheap to clone.
#[derive(Clone)]
pub struct Ingest(Coalescer<Event, Recorded, IngestError>);

impl Ingest {
    /// Start the intake tasks; they end when every `Ingest` is dropped.
    pub fn start(store: Arc<dyn Store>, jobs: Arc<dyn JobBackend>) -> Ingest {
        Ingest(Coalescer::start(TASKS, MAX_BATCH, move |events| {
            let (store, jobs) = (store.clone(), jobs.clone());
            async move { take(&*store, &*jobs, &events).await }
        }))
    }

    /// Store and queue one event; answers once both are done.
    pub async fn submit(&self, event: Event) -> Result<Recorded, Failed<IngestError>> {
        self.0.submit(event).await
    }
}

async fn take(
    store: &dyn Store,
    jobs: &dyn JobBackend,
    events: &[Event],
) -> Result<Vec<Recorded>, IngestError> {
    let recorded = store
        .webhooks()
        .record_events(events)
        .await
        .inspect_err(|e| {
            tracing::warn!(error = %e, events = events.len(), "storing webhook events failed");
        })?;
    let mut ids: Vec<_> = recorded.iter().map(|r| r.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    jobs.enqueue(&[fanout_job(ids)]).await.inspect_err(|e| {
        tracing::warn!(error = %e, events = events.len(), "queueing webhook events failed");
    })?;
    Ok(recorded)
}
