//! Attempts recorded together: concurrent deliveries hand their attempt to a couple of writer
//! tasks, which store everything waiting in one statement and one commit, then answer each. At
//! a thousand deliveries in flight, one commit per attempt was most of the database's work.

use std::sync::{Arc, OnceLock};

use helix_store::webhooks::AttemptRecord;
use helix_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

/// The most attempts one statement stores.
const MAX_BATCH: usize = 256;
const TASKS: usize = 2;

type Reply = oneshot::Sender<Result<bool, Arc<StoreError>>>;

/// Started on first use, inside the worker's runtime.
pub struct AttemptWriter {
    store: Arc<dyn Store>,
    tx: OnceLock<mpsc::Sender<(Uuid, AttemptRecord, Reply)>>,
}

impl AttemptWriter {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            tx: OnceLock::new(),
        }
    }

    /// Store one attempt; false when the delivery was no longer pending.
    pub async fn record(&self, id: Uuid, record: AttemptRecord) -> Result<bool, String> {
        let tx = self.tx.get_or_init(|| self.start());
        let (reply, answer) = oneshot::channel();
        tx.send((id, record, reply))
            .await
            .map_err(|_| "the attempt writer stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the attempt writer stopped".to_owned())?
            .map_err(|e| e.to_string())
    }

    fn start(&self) -> mpsc::Sender<(Uuid, AttemptRecord, Reply)> {
        let (tx, rx) = mpsc::channel(MAX_BATCH * TASKS * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..TASKS {
            tokio::spawn(write(rx.clone(), self.store.clone()));
        }
        tx
    }
}

async fn write(
    rx: Arc<Mutex<mpsc::Receiver<(Uuid, AttemptRecord, Reply)>>>,
    store: Arc<dyn Store>,
) {
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut waiting, MAX_BATCH).await == 0 {
                return;
            }
        }
        let mut batch = Vec::with_capacity(waiting.len());
        let mut replies = Vec::with_capacity(waiting.len());
        for (id, record, reply) in waiting.drain(..) {
            batch.push((id, record));
            replies.push(reply);
        }
        match store.webhooks().record_attempts(&batch).await {
            Ok(done) => {
                for (reply, done) in replies.into_iter().zip(done) {
                    let _ = reply.send(Ok(done));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
