//! The contract of the schedule table ([`ScheduleStore`]) and what both engines share: opening the
//! right one for a store, and turning a row's plain columns into a [`Schedule`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::cadence::Cadence;
use super::model::{FireRecord, NewSchedule, Schedule, SchedulePatch};
use super::{postgres::PgSchedules, sqlite::SqliteSchedules, ScheduleError};
use crate::model::JobId;

/// The table `helix_schedules` on the store's database (migration 8 of helix-store).
///
/// Times are passed in, never read from a clock here, so the beat and tests decide what "now" is.
/// Every method is one statement or one transaction.
#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// Check and insert a schedule created at `now`; its first fire time is the first one after
    /// `now`. [`ScheduleError::Duplicate`] when the name is taken.
    async fn add(&self, new: NewSchedule, now: DateTime<Utc>) -> Result<Schedule, ScheduleError>;

    async fn get(&self, name: &str) -> Result<Option<Schedule>, ScheduleError>;

    /// Every schedule, by name.
    async fn list(&self) -> Result<Vec<Schedule>, ScheduleError>;

    /// Stop firing. Idempotent; [`ScheduleError::NotFound`] for an unknown name.
    async fn pause(&self, name: &str, now: DateTime<Utc>) -> Result<Schedule, ScheduleError>;

    /// Fire again, from the first fire time after `now`: the times that passed while paused are
    /// dropped whatever the catch-up policy, so a resume never floods. Idempotent on an active
    /// schedule (nothing changes).
    async fn resume(&self, name: &str, now: DateTime<Utc>) -> Result<Schedule, ScheduleError>;

    /// Change a schedule's definition at `now` (see [`SchedulePatch`] for what happens to its
    /// next fire time). Checked like an add; [`ScheduleError::NotFound`] for an unknown name.
    async fn update(
        &self,
        name: &str,
        patch: &SchedulePatch,
        now: DateTime<Utc>,
    ) -> Result<Schedule, ScheduleError>;

    /// Delete a schedule and return what it was. Jobs it enqueued stay.
    async fn remove(&self, name: &str) -> Result<Schedule, ScheduleError>;

    /// Active schedules whose `next_fire_at` is at or before `now`, earliest first, `limit` at most.
    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Schedule>, ScheduleError>;

    /// The earliest `next_fire_at` of the active schedules (`None` when there are none): how long
    /// the beat may sleep.
    async fn earliest(&self) -> Result<Option<DateTime<Utc>>, ScheduleError>;

    /// Compare-and-set: move `name` from `expected` to `next` (recording `fired` when a job was
    /// enqueued), only if it is active and its `next_fire_at` is still `expected`. Returns whether
    /// this call won; false means another beat moved it first, or an operator paused, resumed or
    /// removed it meanwhile.
    async fn advance(
        &self,
        name: &str,
        expected: DateTime<Utc>,
        next: DateTime<Utc>,
        fired: Option<FireRecord>,
    ) -> Result<bool, ScheduleError>;
}

/// The schedule table of the database behind `store`.
pub fn open(store: &dyn helix_store::Store) -> Arc<dyn ScheduleStore> {
    match store.pools() {
        helix_store::Pools::Postgres(pool) => Arc::new(PgSchedules::new(pool)),
        helix_store::Pools::Sqlite { read, write } => Arc::new(SqliteSchedules::new(read, write)),
    }
}

/// One row as both engines read it, before the checks that make it a [`Schedule`].
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) queue: String,
    pub(crate) payload: String,
    pub(crate) priority: i32,
    pub(crate) every_ms: Option<i64>,
    pub(crate) cron: Option<String>,
    pub(crate) timezone: String,
    pub(crate) catch_up: String,
    pub(crate) paused: bool,
    pub(crate) next_fire_at: DateTime<Utc>,
    pub(crate) last_fire_at: Option<DateTime<Utc>>,
    pub(crate) last_job_id: Option<uuid::Uuid>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for Schedule {
    type Error = ScheduleError;

    fn try_from(row: Row) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| ScheduleError::Store(format!("schedule {:?}: {what}", row.name));
        let cadence = match (row.every_ms, &row.cron) {
            (Some(ms), None) if ms > 0 => Cadence::Every(Duration::from_millis(ms as u64)),
            (None, Some(expr)) => Cadence::Cron {
                expr: expr.clone(),
                timezone: row.timezone.clone(),
            },
            _ => return Err(corrupt("needs exactly one of every_ms and cron")),
        };
        let catch_up = row
            .catch_up
            .parse()
            .map_err(|_| corrupt("unknown catch_up"))?;
        Ok(Schedule {
            name: row.name,
            kind: row.kind,
            queue: row.queue,
            payload: row.payload,
            priority: row.priority,
            cadence,
            catch_up,
            paused: row.paused,
            next_fire_at: row.next_fire_at,
            last_fire_at: row.last_fire_at,
            last_job: row.last_job_id.map(JobId),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The columns every read selects, in [`Row`] order.
pub(crate) const COLUMNS: &str = "name, kind, queue, payload, priority, every_ms, cron, timezone, \
     catch_up, paused, next_fire_at, last_fire_at, last_job_id, created_at, updated_at";

/// The parts of a schedule's cadence as columns: `(every_ms, cron, timezone)`.
pub(crate) fn cadence_columns(cadence: &Cadence) -> (Option<i64>, Option<&str>, &str) {
    match cadence {
        Cadence::Every(_) => (cadence.every_ms().map(|ms| ms as i64), None, "UTC"),
        Cadence::Cron { expr, timezone } => (None, Some(expr), timezone),
    }
}

/// What a resume writes: the schedule active again from the first fire time after `now`.
pub(crate) fn resumed(
    mut schedule: Schedule,
    now: DateTime<Utc>,
) -> Result<Schedule, ScheduleError> {
    let now = super::cadence::truncate_ms(now);
    schedule.next_fire_at = schedule.next_after(now)?;
    schedule.paused = false;
    schedule.updated_at = now;
    Ok(schedule)
}
