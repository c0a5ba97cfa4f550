//! What a beat does with one due schedule at one instant: fire its due time, fire once for a missed
//! run, or skip the missed run; and where the schedule goes next. Pure: no I/O and no clock, so
//! every rule is testable with plain values.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::model::{CatchUp, Schedule};
use super::ScheduleError;

/// The shortest time a fire time's unique key is held: a stale beat, or one restarted after a
/// crash between its enqueue and its advance, meets the key within this long.
pub const MIN_UNIQUE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The decision for one due schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The schedule's stored `next_fire_at`: the compare-and-set's expected value.
    pub(crate) due: DateTime<Utc>,
    /// Where the schedule moves.
    pub(crate) next: DateTime<Utc>,
    /// `None`: the missed run is skipped, no job.
    pub(crate) fire: Option<Firing>,
}

/// One job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Firing {
    /// The fire time the job stands for; its unique key names it. Always the stored `due`, never
    /// a time derived from the beat's clock: every beat that sees the same row must build the
    /// same key, or two beats could enqueue two jobs for one due time.
    pub(crate) fire_at: DateTime<Utc>,
    /// Fired after the tolerance had passed (a catch-up under `run_once`).
    pub(crate) late: bool,
    /// How long the key is held: 2 periods, at least a day and at most 31 days. Long enough that a beat which read the row
    /// before another one advanced it, or that crashed between enqueue and advance and came back,
    /// still meets the key and gets the same job.
    pub(crate) window: Duration,
}

/// Decide for `schedule`, due at or before `now`. Within `tolerance` of its due time it fires
/// that time and moves to the following one. Later than that, the beat was down or stuck: by the
/// schedule's policy it fires once (`run_once`) or not at all (`skip`), and moves to the first fire
/// time after `now`, so a long outage never turns into a flood of jobs.
pub(crate) fn plan(
    schedule: &Schedule,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Plan, ScheduleError> {
    let due = schedule.next_fire_at;
    let after_due = schedule.next_after(due)?;
    let window = unique_window(due, after_due);
    let late = (now - due)
        .to_std()
        .is_ok_and(|lateness| lateness > tolerance);
    if !late {
        let fire = Firing {
            fire_at: due,
            late: false,
            window,
        };
        return Ok(Plan {
            due,
            next: after_due,
            fire: Some(fire),
        });
    }
    let next = schedule.next_after(now)?;
    let fire = match schedule.catch_up {
        CatchUp::Skip => None,
        CatchUp::RunOnce => Some(Firing {
            fire_at: due,
            late: true,
            window,
        }),
    };
    Ok(Plan { due, next, fire })
}

fn unique_window(due: DateTime<Utc>, after_due: DateTime<Utc>) -> Duration {
    let period = (after_due - due).to_std().unwrap_or_default();
    // Capped at what the job layer accepts; a month is still far longer than any beat stays on a
    // stale read or down between its enqueue and its advance.
    period
        .saturating_mul(2)
        .clamp(MIN_UNIQUE_WINDOW, crate::client::MAX_UNIQUE_WINDOW)
}

/// The idempotency key of one fire time: every beat builds the same one for the same due time.
pub(crate) fn unique_key(name: &str, fire_at: DateTime<Utc>) -> String {
    format!("schedule:{name}:{}", fire_at.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, TimeDelta, TimeZone, Utc};

    use super::*;
    use crate::schedule::{Cadence, NewSchedule};

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, h, m, s).unwrap()
    }

    fn hourly(catch_up: CatchUp) -> Schedule {
        let mut new = NewSchedule::new("s", "k", Cadence::Every(Duration::from_secs(3600)));
        new.catch_up = catch_up;
        new.into_schedule(at(0, 0, 0)).unwrap()
    }

    const TOLERANCE: Duration = Duration::from_secs(1);

    #[test]
    fn on_time_fires_the_due_time_and_moves_one_period() {
        let s = hourly(CatchUp::Skip);
        let p = plan(&s, at(1, 0, 0) + TimeDelta::milliseconds(900), TOLERANCE).unwrap();
        assert_eq!(p.due, at(1, 0, 0));
        assert_eq!(p.next, at(2, 0, 0));
        let fire = p.fire.unwrap();
        assert_eq!((fire.fire_at, fire.late), (at(1, 0, 0), false));
        assert_eq!(fire.window, MIN_UNIQUE_WINDOW);
    }

    #[test]
    fn late_skip_fires_nothing_and_jumps_past_now() {
        let p = plan(&hourly(CatchUp::Skip), at(5, 30, 0), TOLERANCE).unwrap();
        assert_eq!((p.due, p.next, p.fire), (at(1, 0, 0), at(6, 0, 0), None));
    }

    #[test]
    fn late_run_once_fires_once_under_the_stored_due_time() {
        let p = plan(&hourly(CatchUp::RunOnce), at(5, 30, 0), TOLERANCE).unwrap();
        assert_eq!(p.next, at(6, 0, 0));
        let fire = p.fire.unwrap();
        assert_eq!((fire.fire_at, fire.late), (at(1, 0, 0), true));
    }

    #[test]
    fn two_beats_at_different_instants_build_the_same_key() {
        let s = hourly(CatchUp::RunOnce);
        let a = plan(&s, at(1, 0, 0), TOLERANCE).unwrap().fire.unwrap();
        let b = plan(&s, at(3, 0, 1), TOLERANCE).unwrap().fire.unwrap();
        assert_eq!(unique_key("s", a.fire_at), unique_key("s", b.fire_at));
        assert_eq!(unique_key("s", a.fire_at), "schedule:s:1735693200000");
    }

    #[test]
    fn the_window_covers_two_long_periods() {
        let mut s = hourly(CatchUp::Skip);
        s.cadence = Cadence::Every(Duration::from_secs(7 * 24 * 3600));
        s.next_fire_at = s.next_after(s.created_at).unwrap();
        let fire = plan(&s, s.next_fire_at, TOLERANCE).unwrap().fire.unwrap();
        assert_eq!(fire.window, Duration::from_secs(14 * 24 * 3600));
    }
}
