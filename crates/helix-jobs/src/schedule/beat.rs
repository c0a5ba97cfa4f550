//! The beat: reads due schedules, enqueues their jobs and moves them on. [`Beat::tick`] does one
//! pass at an instant the caller gives (tests drive it with made-up times); [`Beat::run`] ticks on
//! the real clock until shut down. Any number of beats may run against one database: see the
//! module doc of [`crate::schedule`] for why each due time still makes one job.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::model::{FireRecord, Schedule};
use super::plan::{plan, unique_key, Firing, Plan};
use super::{ScheduleError, ScheduleStore};
use crate::model::{Enqueued, JobId, NewJob, Unique};
use crate::JobBackend;

/// How a beat behaves; `Default` suits production.
#[derive(Debug, Clone)]
pub struct BeatOptions {
    /// How late a fire time may be and still count as on time. Later than that, the schedule's
    /// catch-up policy decides. Keep it below the shortest interval, or a beat that was away
    /// fires a few stale times in a row before catching up.
    pub tolerance: Duration,
    /// The longest sleep between passes, so schedules added, resumed or edited by another process
    /// are seen within about this long.
    pub max_sleep: Duration,
    /// The most schedules one pass handles (a full pass is followed by another at once).
    pub batch: u32,
}

impl Default for BeatOptions {
    fn default() -> Self {
        Self {
            tolerance: Duration::from_secs(1),
            max_sleep: Duration::from_secs(1),
            batch: 100,
        }
    }
}

/// One job a pass enqueued for a schedule (or found enqueued already under the same key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub schedule: String,
    /// The due time the job stands for (for a catch-up, the first missed time).
    pub fire_at: DateTime<Utc>,
    /// Fired past the tolerance, by the `run_once` policy.
    pub late: bool,
    pub job: JobId,
    /// False: another beat (or this one before a restart) had already enqueued this fire time,
    /// and `job` is that job.
    pub inserted: bool,
    /// True when this pass moved the schedule on; false when another beat or an operator did.
    pub advanced: bool,
    /// Where this pass moved the schedule (meaningful when `advanced`).
    pub next_fire_at: DateTime<Utc>,
}

/// Fires schedules from a [`ScheduleStore`] into a [`JobBackend`].
pub struct Beat {
    store: Arc<dyn ScheduleStore>,
    jobs: Arc<dyn JobBackend>,
    options: BeatOptions,
}

impl std::fmt::Debug for Beat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beat")
            .field("jobs", &self.jobs.describe())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What one pass did, for the run loop.
struct Pass {
    fired: Vec<Fired>,
    /// Due schedules read (a full batch means more may be waiting).
    seen: usize,
    /// Schedules whose cadence could not be evaluated (logged; retried next pass).
    broken: usize,
}

impl Beat {
    pub fn new(store: Arc<dyn ScheduleStore>, jobs: Arc<dyn JobBackend>) -> Self {
        Self::with_options(store, jobs, BeatOptions::default())
    }

    pub fn with_options(
        store: Arc<dyn ScheduleStore>,
        jobs: Arc<dyn JobBackend>,
        options: BeatOptions,
    ) -> Self {
        Self {
            store,
            jobs,
            options,
        }
    }

    /// One pass at `now`: every active schedule due at or before `now` (up to the batch size) is
    /// fired or skipped by its policy and moved on. The jobs of the pass go in one enqueue call,
    /// before any schedule moves; if that call fails nothing moves, and the next pass enqueues the
    /// same keys again.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<Fired>, ScheduleError> {
        self.pass(now).await.map(|pass| pass.fired)
    }

    async fn pass(&self, now: DateTime<Utc>) -> Result<Pass, ScheduleError> {
        let due = self.store.due(now, self.options.batch).await?;
        let seen = due.len();
        let plans: Vec<(Schedule, Plan)> = due
            .into_iter()
            .filter_map(|s| match plan(&s, now, self.options.tolerance) {
                Ok(p) => Some((s, p)),
                Err(e) => {
                    tracing::error!(schedule = %s.name, error = %e, "cannot evaluate schedule");
                    None
                }
            })
            .collect();
        let broken = seen - plans.len();
        let mut enqueued = self.enqueue(&plans).await?.into_iter();
        let mut fired = Vec::new();
        for (schedule, plan) in &plans {
            let job = plan.fire.as_ref().and_then(|_| enqueued.next());
            if let Some(f) = self.advance(schedule, plan, job).await? {
                fired.push(f);
            }
        }
        Ok(Pass {
            fired,
            seen,
            broken,
        })
    }

    /// Enqueue the jobs of every firing plan, in plan order, in one round trip.
    async fn enqueue(&self, plans: &[(Schedule, Plan)]) -> Result<Vec<Enqueued>, ScheduleError> {
        let jobs: Vec<NewJob> = plans
            .iter()
            .filter_map(|(s, p)| p.fire.as_ref().map(|f| new_job(s, f)))
            .collect();
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let enqueued = self.jobs.enqueue(&jobs).await?;
        if enqueued.len() != jobs.len() {
            return Err(ScheduleError::Jobs(crate::JobError::Backend(format!(
                "enqueue answered {} entries for {} jobs",
                enqueued.len(),
                jobs.len()
            ))));
        }
        Ok(enqueued)
    }

    /// The compare-and-set that moves one schedule on, and what to report for it.
    async fn advance(
        &self,
        schedule: &Schedule,
        plan: &Plan,
        job: Option<Enqueued>,
    ) -> Result<Option<Fired>, ScheduleError> {
        let record = plan.fire.as_ref().zip(job).map(|(f, e)| FireRecord {
            fire_at: f.fire_at,
            job: e.id,
        });
        let advanced = self
            .store
            .advance(&schedule.name, plan.due, plan.next, record)
            .await?;
        let (Some(fire), Some(job)) = (&plan.fire, job) else {
            if advanced {
                tracing::warn!(schedule = %schedule.name, missed = %plan.due, next = %plan.next,
                    "skipped missed fire times (catch-up policy skip)");
            }
            return Ok(None);
        };
        if job.inserted {
            tracing::info!(schedule = %schedule.name, fire_at = %fire.fire_at, late = fire.late,
                job = %job.id, "fired schedule");
        }
        Ok(Some(Fired {
            schedule: schedule.name.clone(),
            fire_at: fire.fire_at,
            late: fire.late,
            job: job.id,
            inserted: job.inserted,
            advanced,
            next_fire_at: plan.next,
        }))
    }

    /// Tick on the real clock until `shutdown`: at each due time (sleeping until the earliest
    /// `next_fire_at`, at most `max_sleep`), and again at once after a full batch. Errors are
    /// logged and retried after `max_sleep`; they never end the loop.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(jobs = %self.jobs.describe(), "beat started");
        while !shutdown.is_cancelled() {
            let wait = match self.pass(Utc::now()).await {
                // Why first: a broken schedule stays due, and must not turn this into a busy loop.
                Ok(pass) if pass.broken > 0 => self.options.max_sleep,
                Ok(pass) if pass.seen >= self.options.batch as usize => Duration::ZERO,
                Ok(_) => self.until_next().await,
                Err(e) => {
                    tracing::warn!(error = %e, "beat pass failed; retrying");
                    self.options.max_sleep
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("beat stopped");
    }

    /// How long to sleep: until the earliest fire time, at most `max_sleep`.
    async fn until_next(&self) -> Duration {
        match self.store.earliest().await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.options.max_sleep),
            Ok(None) => self.options.max_sleep,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next fire time");
                self.options.max_sleep
            }
        }
    }
}

/// The job of one firing: the schedule's kind, queue, payload and priority, available now, under
/// the fire time's unique key.
fn new_job(schedule: &Schedule, fire: &Firing) -> NewJob {
    NewJob {
        id: JobId::new(),
        kind: schedule.kind.clone(),
        queue: schedule.queue.clone(),
        payload: schedule.payload.clone(),
        priority: schedule.priority,
        delay: Duration::ZERO,
        max_attempts: None,
        timeout: None,
        unique: Some(Unique {
            key: unique_key(&schedule.name, fire.fire_at),
            window: fire.window,
        }),
    }
}
