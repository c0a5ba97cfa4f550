//! The jobs one queue loop is running now, with the token each holds and a way to stop each:
//! what the lease extender renews and what shutdown releases.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use crate::model::{JobId, Ticket};

#[derive(Default)]
pub(crate) struct Running {
    // Why a std mutex: every critical section is a map insert, remove or copy, never held across
    // an await.
    jobs: Mutex<HashMap<JobId, (u64, CancellationToken)>>,
}

impl Running {
    /// Track a new attempt. An earlier attempt of the same job on this worker (its lease lapsed
    /// during a stall and this worker fetched the job again) has lost its lease: stop it.
    pub(crate) fn insert(&self, ticket: Ticket, stop: CancellationToken) {
        if let Some((token, old)) = self.lock().insert(ticket.id, (ticket.token, stop)) {
            if token != ticket.token {
                old.cancel();
            }
        }
    }

    pub(crate) fn remove(&self, ticket: Ticket) {
        let mut jobs = self.lock();
        if jobs
            .get(&ticket.id)
            .is_some_and(|(t, _)| *t == ticket.token)
        {
            jobs.remove(&ticket.id);
        }
    }

    pub(crate) fn tickets(&self) -> Vec<Ticket> {
        self.lock()
            .iter()
            .map(|(id, (token, _))| Ticket {
                id: *id,
                token: *token,
            })
            .collect()
    }

    /// Stop the handler holding `ticket` (its lease is gone); true if it was still running.
    pub(crate) fn stop(&self, ticket: Ticket) -> bool {
        match self.lock().get(&ticket.id) {
            Some((token, stop)) if *token == ticket.token => {
                stop.cancel();
                true
            }
            _ => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, (u64, CancellationToken)>> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
