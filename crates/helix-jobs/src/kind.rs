//! Typed job kinds: a name, a serde payload and a handler, and the [`Registry`] a worker runs them
//! from. The built-in [`Noop`] kind (payload `{"sleep_ms": N}`) is there for checks and benchmarks.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::model::JobId;

/// One kind of job. The payload is what callers enqueue (as JSON); the handler runs it.
pub trait JobKind: Send + Sync + 'static {
    /// The name jobs carry; unique in a registry.
    const NAME: &'static str;
    /// The queue jobs of this kind go to unless the caller names another.
    const QUEUE: &'static str = "default";
    type Payload: Serialize + DeserializeOwned + Send + 'static;

    fn run(
        &self,
        payload: Self::Payload,
        ctx: JobContext,
    ) -> impl Future<Output = Result<(), JobFailure>> + Send;
}

/// What a handler knows about the attempt it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: JobId,
    pub queue: String,
    /// This attempt, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    /// Cancelled when the worker gives the job up (shutdown past its grace, lease lost, operator
    /// cancel); a handler doing long work may watch it to stop early. The future is dropped anyway.
    pub cancel: CancellationToken,
}

/// Why an attempt did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// Try again later (with backoff) while attempts remain.
    Retry(String),
    /// Try again after exactly this delay (a schedule of the kind's own, or a server's
    /// `Retry-After`) while attempts remain.
    RetryAfter(String, Duration),
    /// Retrying cannot help: fail the job now (the dead letter keeps the reason).
    Permanent(String),
}

impl JobFailure {
    pub fn retry(reason: impl std::fmt::Display) -> Self {
        JobFailure::Retry(reason.to_string())
    }

    pub fn retry_after(reason: impl std::fmt::Display, delay: Duration) -> Self {
        JobFailure::RetryAfter(reason.to_string(), delay)
    }

    pub fn permanent(reason: impl std::fmt::Display) -> Self {
        JobFailure::Permanent(reason.to_string())
    }
}

/// A kind with its payload type erased, as the registry holds it.
pub(crate) trait Handler: Send + Sync {
    /// Whether `payload` deserializes into the kind's payload type (checked at enqueue).
    fn check(&self, payload: &str) -> Result<(), String>;

    /// Decode the payload and start the handler; `Err` is the decoding error.
    fn start(
        &self,
        payload: &str,
        ctx: JobContext,
    ) -> Result<BoxFuture<'static, Result<(), JobFailure>>, String>;

    fn queue(&self) -> &'static str;
}

struct Typed<K>(Arc<K>);

impl<K: JobKind> Handler for Typed<K> {
    fn check(&self, payload: &str) -> Result<(), String> {
        serde_json::from_str::<K::Payload>(payload)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn start(
        &self,
        payload: &str,
        ctx: JobContext,
    ) -> Result<BoxFuture<'static, Result<(), JobFailure>>, String> {
        let payload = serde_json::from_str::<K::Payload>(payload).map_err(|e| e.to_string())?;
        let kind = self.0.clone();
        Ok(async move { kind.run(payload, ctx).await }.boxed())
    }

    fn queue(&self) -> &'static str {
        K::QUEUE
    }
}

/// The job kinds a process knows, by name.
#[derive(Clone)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn Handler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry with the built-in kinds ([`Noop`]).
    pub fn new() -> Self {
        let mut registry = Self {
            kinds: BTreeMap::new(),
        };
        registry.register(Noop);
        registry
    }

    /// Add a kind; a later kind with the same name replaces the earlier one.
    pub fn register<K: JobKind>(&mut self, kind: K) -> &mut Self {
        self.kinds.insert(K::NAME, Arc::new(Typed(Arc::new(kind))));
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn Handler>> {
        self.kinds.get(name)
    }
}

/// The built-in no-op job: sleeps `sleep_ms` (0 by default), then succeeds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

/// The payload of [`Noop`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopPayload {
    #[serde(default)]
    pub sleep_ms: u64,
}

impl JobKind for Noop {
    const NAME: &'static str = "noop";
    type Payload = NoopPayload;

    async fn run(&self, payload: NoopPayload, _ctx: JobContext) -> Result<(), JobFailure> {
        if payload.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(payload.sleep_ms)).await;
        }
        Ok(())
    }
}
