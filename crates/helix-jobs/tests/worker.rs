//! The worker runtime, end to end on every engine: a real `Worker::run` in a task of its own,
//! stopped with its `CancellationToken`, running test job kinds from a `Registry`, against the
//! private backend the conformance suite gives each test (`conformance/support.rs`).
//!
//! Each test runs three times: `<file>::redis::<name>` (with `HELIX_TEST_REDIS_URL`),
//! `<file>::postgres::<name>` (with `HELIX_TEST_DATABASE_URL`) and `<file>::sqlite::<name>`;
//! without a variable its variants print a note and return.
//!
//! - `outcomes`: jobs run once and complete; retries wait the stored backoff and keep every
//!   error; permanent failures, panics, timeouts, unknown kinds and payloads that do not fit each
//!   end their attempt with a clear error while the worker goes on.
//! - `client`: what `Jobs` refuses before storing anything, and unique keys.
//! - `shutdown`: a graceful shutdown within and past its grace.
//! - `leases`: an operator's cancel of a running job; leases of dead or stalled workers reclaimed
//!   by another, whose stale handler is stopped.
//! - `scheduling`: priority order, the concurrency bound, several queues, delayed jobs.
//!
//! Times are leases, delays and timeouts of a few hundred milliseconds; tests assert outcomes and
//! orderings, never speeds, and every wait gives up after 20 s so a broken build fails instead of
//! hanging.

// Why allow dead code: the shared fixture has helpers only the conformance suite uses.
#[allow(dead_code)]
#[macro_use]
#[path = "conformance/support.rs"]
mod support;

#[path = "worker/harness.rs"]
mod harness;

#[path = "worker/client.rs"]
mod client;
#[path = "worker/leases.rs"]
mod leases;
#[path = "worker/outcomes.rs"]
mod outcomes;
#[path = "worker/scheduling.rs"]
mod scheduling;
#[path = "worker/shutdown.rs"]
mod shutdown;
