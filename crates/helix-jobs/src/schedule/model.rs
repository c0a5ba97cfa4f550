//! The plain data of schedules: what a caller adds ([`NewSchedule`]), what the table holds and the
//! API shows ([`Schedule`]), and the checks every field passes before it is stored.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::cadence::{truncate_ms, Cadence};
use super::ScheduleError;
use crate::model::{JobId, MAX_PAYLOAD_BYTES, PRIORITY_RANGE};

/// The longest schedule name (also for kinds and queues).
pub const MAX_NAME_CHARS: usize = 100;

/// The queue a schedule's jobs go to unless it names one.
pub const DEFAULT_QUEUE: &str = "default";

/// What a beat does with fire times that passed while no beat was running (or all were stuck).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Drop them: the next job is the one of the first fire time after the beat is back.
    Skip,
    /// One job for the whole missed run, at once, then on as usual (what Celery beat does).
    #[default]
    RunOnce,
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::RunOnce => "run_once",
        }
    }
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CatchUp {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(CatchUp::Skip),
            "run_once" | "run-once" => Ok(CatchUp::RunOnce),
            other => Err(ScheduleError::invalid(format!(
                "invalid catch-up policy {other:?}: expected \"skip\" or \"run_once\""
            ))),
        }
    }
}

/// A schedule to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    /// Unique; `[a-z0-9._:-]{1,100}`.
    pub name: String,
    /// The job kind each firing enqueues.
    pub kind: String,
    pub queue: String,
    /// JSON text, enqueued verbatim with every job.
    pub payload: String,
    /// See [`PRIORITY_RANGE`].
    pub priority: i32,
    pub cadence: Cadence,
    pub catch_up: CatchUp,
    /// Added paused: it fires only after a resume.
    pub paused: bool,
}

impl NewSchedule {
    /// A schedule with the defaults: queue `default`, payload `{}`, priority 0, catch-up
    /// `run_once`, active.
    pub fn new(name: impl Into<String>, kind: impl Into<String>, cadence: Cadence) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            queue: DEFAULT_QUEUE.into(),
            payload: "{}".into(),
            priority: 0,
            cadence,
            catch_up: CatchUp::default(),
            paused: false,
        }
    }

    /// Every field, with a message that names the field and what it must be.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        validate_name(&self.name)?;
        validate_word("job kind", &self.kind)?;
        crate::client::check_queue_name(&self.queue).map_err(invalid_job)?;
        validate_payload(&self.payload)?;
        if !PRIORITY_RANGE.contains(&self.priority) {
            return Err(ScheduleError::invalid(format!(
                "invalid priority {}: it must be between {} and {}",
                self.priority,
                PRIORITY_RANGE.start(),
                PRIORITY_RANGE.end()
            )));
        }
        self.cadence.validate()
    }

    /// Check the kind and payload against the job kinds a process knows (what the HTTP API and
    /// the CLI call before [`super::ScheduleStore::add`] when they hold a registry): an unknown
    /// kind, or a payload that does not fit it, would otherwise make jobs that can never run.
    pub fn check_job(&self, jobs: &crate::Jobs) -> Result<(), ScheduleError> {
        let options = crate::EnqueueOptions {
            queue: Some(self.queue.clone()),
            priority: self.priority,
            ..Default::default()
        };
        jobs.build(&self.kind, &self.payload, &options, 1)
            .map(drop)
            .map_err(invalid_job)
    }

    /// The row to insert at `now`: checked, with its first fire time.
    pub(crate) fn into_schedule(self, now: DateTime<Utc>) -> Result<Schedule, ScheduleError> {
        self.validate()?;
        let now = truncate_ms(now);
        let next_fire_at = self.cadence.timer(now)?.next_after(now)?;
        Ok(Schedule {
            name: self.name,
            kind: self.kind,
            queue: self.queue,
            payload: self.payload,
            priority: self.priority,
            cadence: self.cadence,
            catch_up: self.catch_up,
            paused: self.paused,
            next_fire_at,
            last_fire_at: None,
            last_job: None,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    pub name: String,
    pub kind: String,
    pub queue: String,
    /// JSON text.
    pub payload: String,
    pub priority: i32,
    #[serde(flatten)]
    pub cadence: Cadence,
    pub catch_up: CatchUp,
    pub paused: bool,
    /// The fire time the beat waits for (meaningless while paused: a resume recomputes it).
    pub next_fire_at: DateTime<Utc>,
    /// The last fire time a job was enqueued for (its due time, not when the beat ran).
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The job of that fire time.
    pub last_job: Option<JobId>,
    /// Also the anchor of an interval: it fires at created_at + k·every.
    pub created_at: DateTime<Utc>,
    /// The last change of definition or state by an operator (add, pause, resume); firing does
    /// not touch it.
    pub updated_at: DateTime<Utc>,
}

impl Schedule {
    /// The first fire time of this schedule strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        self.cadence.timer(self.created_at)?.next_after(t)
    }

    /// The definition as a [`NewSchedule`] (what [`NewSchedule::validate`] and
    /// [`NewSchedule::check_job`] check).
    pub fn definition(&self) -> NewSchedule {
        NewSchedule {
            name: self.name.clone(),
            kind: self.kind.clone(),
            queue: self.queue.clone(),
            payload: self.payload.clone(),
            priority: self.priority,
            cadence: self.cadence.clone(),
            catch_up: self.catch_up,
            paused: self.paused,
        }
    }
}

/// A change to a schedule's definition (an HTTP `PATCH`); `None` keeps a field. Pause and resume
/// have their own calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulePatch {
    pub kind: Option<String>,
    pub queue: Option<String>,
    pub payload: Option<String>,
    pub priority: Option<i32>,
    pub cadence: Option<Cadence>,
    pub catch_up: Option<CatchUp>,
}

impl SchedulePatch {
    /// The definition with this patch applied, unchecked.
    pub fn apply_to(&self, current: &Schedule) -> NewSchedule {
        let mut new = current.definition();
        let pick = |patched: &Option<String>, kept: &mut String| {
            if let Some(value) = patched {
                kept.clone_from(value);
            }
        };
        pick(&self.kind, &mut new.kind);
        pick(&self.queue, &mut new.queue);
        pick(&self.payload, &mut new.payload);
        new.priority = self.priority.unwrap_or(new.priority);
        new.cadence = self.cadence.clone().unwrap_or(new.cadence);
        new.catch_up = self.catch_up.unwrap_or(new.catch_up);
        new
    }

    /// What an update writes at `now`: the patched, checked schedule. A changed cadence starts
    /// from its first fire time after `now` (an interval keeps counting from `created_at`); an
    /// unchanged one keeps its `next_fire_at`, so an edit of the payload never skips or repeats a
    /// fire time.
    pub(crate) fn applied(
        &self,
        current: Schedule,
        now: DateTime<Utc>,
    ) -> Result<Schedule, ScheduleError> {
        let new = self.apply_to(&current);
        new.validate()?;
        let recompute = new.cadence != current.cadence;
        let now = truncate_ms(now);
        let mut next = Schedule {
            kind: new.kind,
            queue: new.queue,
            payload: new.payload,
            priority: new.priority,
            cadence: new.cadence,
            catch_up: new.catch_up,
            updated_at: now,
            ..current
        };
        if recompute {
            next.next_fire_at = next.next_after(now)?;
        }
        Ok(next)
    }
}

/// A fire time that produced a job, as [`super::ScheduleStore::advance`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FireRecord {
    /// The due time the job stands for.
    pub fire_at: DateTime<Utc>,
    pub job: JobId,
}

/// `[a-z0-9._:-]{1,100}`: safe in URLs, shell arguments and the unique key.
pub fn validate_name(name: &str) -> Result<(), ScheduleError> {
    let ok = (1..=MAX_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._:-".contains(&b));
    if ok {
        return Ok(());
    }
    Err(ScheduleError::invalid(format!(
        "invalid schedule name {name:?}: use 1 to {MAX_NAME_CHARS} characters among a-z, 0-9, \
         '.', '_', ':' and '-'"
    )))
}

/// A job kind: 1 to 100 characters among letters, digits and `._:-`.
fn validate_word(what: &str, value: &str) -> Result<(), ScheduleError> {
    let ok = (1..=MAX_NAME_CHARS).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        return Ok(());
    }
    Err(ScheduleError::invalid(format!(
        "invalid {what} {value:?}: use 1 to {MAX_NAME_CHARS} characters among letters, digits, \
         '.', '_', ':' and '-'"
    )))
}

/// The job layer's refusal as this layer's `Invalid` (`invalid queue name "…": …`).
fn invalid_job(err: crate::JobError) -> ScheduleError {
    match err {
        crate::JobError::Invalid(reason) => ScheduleError::invalid(format!("invalid {reason}")),
        other => ScheduleError::invalid(other.to_string()),
    }
}

fn validate_payload(payload: &str) -> Result<(), ScheduleError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ScheduleError::invalid(format!(
            "invalid payload: {} bytes, more than the {MAX_PAYLOAD_BYTES} a job may carry",
            payload.len()
        )));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(payload)
        .map(drop)
        .map_err(|e| ScheduleError::invalid(format!("invalid payload: not JSON ({e})")))
}
