//! Durable intake of verified events, coalesced.
//!
//! A request hands its event to [`Ingest::submit`] and waits; a few intake tasks each take every
//! event waiting (up to [`MAX_BATCH`]), store them in one statement, queue one fan-out job per
//! event in one call, and only then answer each request. So the 2xx a sender gets always means
//! "stored and queued", and under load one commit serves many requests.
//!
//! One fan-out job carries the whole batch. A repeated event id is answered as a duplicate
//! without a second row, and is fanned out again all the same (which creates nothing twice): if
//! a crash fell between storing an event and queuing it, the sender never got its 2xx, retries,
//! and the retry queues it.

use std::sync::Arc;

use helix_jobs::JobBackend;
use helix_store::webhooks::{Event, Recorded};
use helix_store::Store;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::kinds::fanout_job;

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
    #[error("the service is stopping")]
    Stopped,
}

type Reply = oneshot::Sender<Result<Recorded, Arc<IngestError>>>;

/// The intake: cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<(Event, Reply)>,
}

impl Ingest {
    /// Start the intake tasks; they end when every `Ingest` is dropped.
    pub fn start(store: Arc<dyn Store>, jobs: Arc<dyn JobBackend>) -> Ingest {
        let (tx, rx) = mpsc::channel(MAX_BATCH * TASKS * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..TASKS {
            tokio::spawn(intake(rx.clone(), store.clone(), jobs.clone()));
        }
        Ingest { tx }
    }

    /// Store and queue one event; answers once both are done.
    pub async fn submit(&self, event: Event) -> Result<Recorded, Arc<IngestError>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((event, reply))
            .await
            .map_err(|_| Arc::new(IngestError::Stopped))?;
        answer.await.map_err(|_| Arc::new(IngestError::Stopped))?
    }
}

async fn intake(
    rx: Arc<Mutex<mpsc::Receiver<(Event, Reply)>>>,
    store: Arc<dyn Store>,
    jobs: Arc<dyn JobBackend>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        let (events, replies): (Vec<Event>, Vec<Reply>) = batch.drain(..).unzip();
        match take(&*store, &*jobs, &events).await {
            Ok(recorded) => {
                for (reply, r) in replies.into_iter().zip(recorded) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, events = events.len(), "webhook intake failed");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn take(
    store: &dyn Store,
    jobs: &dyn JobBackend,
    events: &[Event],
) -> Result<Vec<Recorded>, IngestError> {
    let recorded = store.webhooks().record_events(events).await?;
    let mut ids: Vec<_> = recorded.iter().map(|r| r.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    jobs.enqueue(&[fanout_job(ids)]).await?;
    Ok(recorded)
}
