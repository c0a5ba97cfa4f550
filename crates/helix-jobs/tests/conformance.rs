//! The `JobBackend` contract, written once and run on every engine.
//!
//! Each test listed in an `on_every_engine!` runs three times: `<file>::redis::<name>` under a
//! private key prefix of the Redis named by `HELIX_TEST_REDIS_URL`, `<file>::postgres::<name>` in
//! a private schema of the database named by `HELIX_TEST_DATABASE_URL` (dropped afterwards), and
//! `<file>::sqlite::<name>` on a temporary file. Without a variable, its variants print a note and
//! return. Times here are leases and delays of a few hundred milliseconds, measured on the
//! backend's clock; no test asserts how fast anything is.

#[macro_use]
#[path = "conformance/support.rs"]
mod support;

#[path = "conformance/enqueue.rs"]
mod enqueue;
#[path = "conformance/fetch.rs"]
mod fetch;
#[path = "conformance/finish.rs"]
mod finish;
#[path = "conformance/operators.rs"]
mod operators;
