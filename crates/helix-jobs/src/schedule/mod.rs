//! Schedules and the beat that fires them: what replaces Celery beat.
//!
//! Owns the schedule table `helix_schedules` (migration 8 of helix-store, on the store's own
//! database, PostgreSQL or SQLite), the library API the CLI (`helix schedule add|list|pause|resume|
//! remove`) and the HTTP API call (those plus `get` and `update`, all taking effect without a
//! restart: beats re-read the table at least once a second), and the beat process loop.
//!
//! - [`cadence`]: when a schedule fires: `every` an interval from its creation, or a cron
//!   expression (5 fields, or 6 with seconds) in an IANA time zone, DST-correct; fire times are
//!   stored in UTC.
//! - [`model`]: [`NewSchedule`], [`Schedule`], [`CatchUp`] and the input checks.
//! - `store`: the [`ScheduleStore`] contract, opened for a store with [`open`]; engines in
//!   `postgres` and `sqlite`.
//! - `plan`: the pure decision for one due schedule at one instant.
//! - [`beat`]: [`Beat::tick`] (one pass at a given instant) and [`Beat::run`] (the real clock).
//!
//! Data flow: an operator adds a schedule → the row holds its `next_fire_at` → a beat's pass reads
//! the due rows → enqueues one job per firing into the [`crate::JobBackend`] (Redis, PostgreSQL or
//! SQLite) → moves each row to its next fire time with a compare-and-set.
//!
//! # One job per due time, however many beats run
//!
//! Jobs may live in Redis while schedules live in the database, so "claim the fire time and insert
//! its job" cannot be one transaction. It is one atomic step all the same, because it is an
//! idempotent enqueue followed by a compare-and-set:
//!
//! 1. Enqueue first, with the unique key `schedule:<name>:<fire time in ms>`. The fire time is the
//!    row's stored `next_fire_at`, never a time derived from a beat's clock, so every beat that
//!    sees the row in that state builds the same key; the backend adds the job once and answers
//!    every later enqueue of the key with the same job id (`inserted: false`). The key is held for
//!    2 periods, at least a day and at most 31 days (the job layer's limit).
//! 2. Then `advance(name, expected = that next_fire_at, next)`: an `UPDATE … WHERE next_fire_at =
//!    expected`. One beat wins and moves the schedule on; the others lose and change nothing.
//!
//! Two beats racing on one due time both enqueue, get one job, and one advance wins. A beat that
//! crashes between the two steps leaves the row unmoved; the next pass (its own after a restart,
//! or another beat's) enqueues the same key, gets the same job, and advances. The reverse order
//! (advance, then enqueue) would lose the job in that crash. Nothing else coordinates beats: no
//! leader, no lease; a second beat is a hot standby for free.
//!
//! # Missed fire times
//!
//! A fire time counts as on time while the beat is within `tolerance` (1 s by default) of it: it
//! fires and the schedule moves to the following fire time. Later than that, the beat was down or
//! stuck, and the schedule's [`CatchUp`] policy decides: `skip` drops the missed times, `run_once`
//! enqueues one job for the whole missed run (keyed by the first missed time, the stored one, for
//! the reason above); either way the schedule moves to the first fire time after now, so an
//! outage of any length yields at most one job per schedule. A resumed schedule also starts from
//! the first fire time after the resume, whatever its policy.
//!
//! # Races with operators
//!
//! A pause, resume, update or removal that lands while a beat is between enqueue and advance may still
//! see that one job enqueued (its advance then fails, harmlessly). Beats use their host's clock
//! to decide what is due: keep hosts synchronised (NTP), or a fast clock fires early by its skew.

pub mod beat;
pub mod cadence;
mod error;
pub mod model;
mod plan;
mod postgres;
mod sqlite;
mod store;

pub use beat::{Beat, BeatOptions, Fired};
pub use cadence::{format_every, parse_every, Cadence, MAX_EVERY, MIN_EVERY};
pub use error::ScheduleError;
pub use model::{
    validate_name, CatchUp, FireRecord, NewSchedule, Schedule, SchedulePatch, DEFAULT_QUEUE,
};
pub use plan::MIN_UNIQUE_WINDOW;
pub use store::{open, ScheduleStore};
