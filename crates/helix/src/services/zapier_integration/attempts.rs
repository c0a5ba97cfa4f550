//! Attempts recorded together ([`crate::shared::coalesce`]): concurrent deliveries hand their
//! attempt to a couple of writer tasks, which store everything waiting in one statement and one
//! commit, then answer each. At a thousand deliveries in flight, one commit per attempt was most
//! of the database's work.

use std::sync::{Arc, OnceLock};

use helix_store::webhooks::AttemptRecord;
use helix_store::{Store, StoreError};
use uuid::Uuid;

use crate::shared::coalesce::Coalescer;

/// The most attempts one statement stores.
const MAX_BATCH: usize = 256;
const TASKS: usize = 2;

/// Started on first use, inside the worker's runtime.
pub struct AttemptWriter {
    store: Arc<dyn Store>,
    writer: OnceLock<Coalescer<(Uuid, AttemptRecord), bool, StoreError>>,
}

impl AttemptWriter {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            writer: OnceLock::new(),
        }
    }

    /// Store one attempt; false when the delivery was no longer pending.
    pub async fn record(&self, id: Uuid, record: AttemptRecord) -> Result<bool, String> {
        let writer = self.writer.get_or_init(|| {
            let store = self.store.clone();
            Coalescer::start(
                TASKS,
                MAX_BATCH,
                move |batch: Vec<(Uuid, AttemptRecord)>| {
                    let store = store.clone();
                    async move { store.webhooks().record_attempts(&batch).await }
                },
            )
        });
        writer.submit((id, record)).await.map_err(|e| e.to_string())
    }
}
