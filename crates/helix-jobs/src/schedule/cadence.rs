//! When a schedule fires: a fixed interval counted from an anchor, or a cron expression evaluated
//! in an IANA time zone. Owns parsing and checking what users type (`--every 5m`, `--cron
//! "0 9 * * MON-FRI" --tz Europe/Paris`) and the one question the beat asks: the first fire time
//! strictly after an instant.
//!
//! Cron rules: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first;
//! names (`JAN`, `MON`), ranges, lists, steps, `L`, `W`, `#` and the `@daily` family, as `croner`
//! reads them; day-of-month and day-of-week combine with OR, as in Vixie cron. Evaluation is in the
//! schedule's zone, so `0 9 * * *` stays at 09:00 local across daylight saving changes. Around a
//! change `croner` follows the Open Cron Pattern Specification: a fixed-time job whose wall-clock
//! time falls in the skipped hour runs at the first instant after the gap; in the repeated hour a
//! fixed-time job runs once (the first pass) while an interval job (`*/15 * * * *`) runs in both.
//! Fire times are whole seconds; interval fire times keep the anchor's milliseconds.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::ser::SerializeMap;
use serde::Serialize;

use super::ScheduleError;

/// The shortest interval: a beat polls about once a second, and a job per second is already a lot.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

/// The longest interval (a year and a day): longer cadences are cron expressions.
pub const MAX_EVERY: Duration = Duration::from_secs(366 * 24 * 3600);

/// The longest cron expression accepted.
const MAX_CRON_CHARS: usize = 200;

/// How a schedule repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cadence {
    /// At anchor + k·every for k = 1, 2, …; the anchor is the schedule's `created_at`.
    Every(Duration),
    /// At the times a cron expression matches on the wall clock of `timezone` (an IANA name).
    Cron { expr: String, timezone: String },
}

impl Cadence {
    /// A checked interval cadence.
    pub fn every(every: Duration) -> Result<Self, ScheduleError> {
        let cadence = Cadence::Every(every);
        cadence.validate()?;
        Ok(cadence)
    }

    /// A checked cron cadence; `timezone` `None` means UTC. The expression is kept trimmed.
    pub fn cron(expr: &str, timezone: Option<&str>) -> Result<Self, ScheduleError> {
        let cadence = Cadence::Cron {
            expr: expr.trim().to_string(),
            timezone: timezone.unwrap_or("UTC").trim().to_string(),
        };
        cadence.validate()?;
        Ok(cadence)
    }

    /// Check what the variants' public fields may hold: an interval in range, a cron expression
    /// that parses and a time zone that exists.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        self.timer(DateTime::UNIX_EPOCH).map(drop)
    }

    /// The clock of this cadence, with interval fire times counted from `anchor`.
    pub(crate) fn timer(&self, anchor: DateTime<Utc>) -> Result<Timer, ScheduleError> {
        match self {
            Cadence::Every(every) => Ok(Timer::Every {
                anchor: truncate_ms(anchor),
                every_ms: every_ms(*every)?,
            }),
            Cadence::Cron { expr, timezone } => Ok(Timer::Cron {
                cron: Box::new(parse_cron(expr)?),
                zone: parse_zone(timezone)?,
            }),
        }
    }

    /// The interval in milliseconds (what the table stores), `None` for cron.
    pub fn every_ms(&self) -> Option<u64> {
        match self {
            Cadence::Every(every) => Some(every.as_millis() as u64),
            Cadence::Cron { .. } => None,
        }
    }
}

impl fmt::Display for Cadence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cadence::Every(every) => write!(f, "every {}", format_every(*every)),
            Cadence::Cron { expr, timezone } => write!(f, "cron {expr:?} ({timezone})"),
        }
    }
}

/// As the API shows it: `{"every_ms": 60000}` or `{"cron": "0 9 * * *", "timezone": "UTC"}`
/// (flattened into the schedule).
impl Serialize for Cadence {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            Cadence::Every(every) => {
                map.serialize_entry("every_ms", &(every.as_millis() as u64))?
            }
            Cadence::Cron { expr, timezone } => {
                map.serialize_entry("cron", expr)?;
                map.serialize_entry("timezone", timezone)?;
            }
        }
        map.end()
    }
}

/// A compiled cadence: answers "when next".
#[derive(Debug)]
pub(crate) enum Timer {
    Every {
        anchor: DateTime<Utc>,
        every_ms: i64,
    },
    /// Boxed: a parsed pattern is a few hundred bytes, an interval a few.
    Cron { cron: Box<Cron>, zone: Tz },
}

impl Timer {
    /// The first fire time strictly after `t`, in UTC, to the millisecond.
    pub(crate) fn next_after(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        match self {
            Timer::Every { anchor, every_ms } => Ok(next_interval(*anchor, *every_ms, t)),
            Timer::Cron { cron, zone } => next_cron(cron, zone, t),
        }
    }
}

/// anchor + k·every for the smallest k ≥ 1 that lands after `t`. Integer milliseconds, so no
/// rounding drifts the phase however long the schedule lives.
fn next_interval(anchor: DateTime<Utc>, every_ms: i64, t: DateTime<Utc>) -> DateTime<Utc> {
    let since = t.timestamp_millis() - anchor.timestamp_millis();
    let k = if since < 0 { 1 } else { since / every_ms + 1 };
    anchor + TimeDelta::milliseconds(k * every_ms)
}

fn next_cron(cron: &Cron, zone: &Tz, t: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
    let local = t.with_timezone(zone);
    let next = cron.find_next_occurrence(&local, false).map_err(|e| {
        ScheduleError::invalid(format!(
            "cron expression {:?} has no fire time after {}: {e}",
            cron.as_str(),
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
    })?;
    Ok(truncate_ms(next.with_timezone(&Utc)))
}

fn every_ms(every: Duration) -> Result<i64, ScheduleError> {
    if every < MIN_EVERY || every > MAX_EVERY {
        return Err(ScheduleError::invalid(format!(
            "invalid interval {}: it must be between {} and {}",
            format_every(every),
            format_every(MIN_EVERY),
            format_every(MAX_EVERY)
        )));
    }
    Ok(every.as_millis() as i64)
}

/// Parse a cron expression of 5 fields, or 6 with seconds first, or an `@daily`-style nickname.
pub(crate) fn parse_cron(expr: &str) -> Result<Cron, ScheduleError> {
    let invalid = |reason: &dyn fmt::Display| {
        ScheduleError::invalid(format!("invalid cron expression {expr:?}: {reason}"))
    };
    if expr.chars().count() > MAX_CRON_CHARS {
        return Err(invalid(&format!("longer than {MAX_CRON_CHARS} characters")));
    }
    let fields = expr.split_whitespace().count();
    // Why count here: croner also takes a 7th (year) field and reports field counts in its own
    // terms; users get one rule stated plainly.
    if !expr.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
        return Err(invalid(&format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds \
             first; got {fields}"
        )));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| invalid(&e))
}

/// An IANA zone name (`Europe/Paris`, `America/New_York`, `UTC`).
pub(crate) fn parse_zone(name: &str) -> Result<Tz, ScheduleError> {
    Tz::from_str(name).map_err(|_| {
        ScheduleError::invalid(format!(
            "unknown time zone {name:?}: expected an IANA name such as \"Europe/Paris\" or \"UTC\""
        ))
    })
}

/// Parse an interval as users type it: `90s`, `5m`, `1h30m`, `1d`, `250ms`; a bare number is
/// seconds.
pub fn parse_every(text: &str) -> Result<Duration, ScheduleError> {
    let invalid = || {
        ScheduleError::invalid(format!(
            "invalid interval {text:?}: expected a number with a unit (ms, s, m, h, d), such as \
             \"30s\", \"5m\" or \"1h30m\""
        ))
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let unit = unit_ms(&rest[digits..digits + unit_len]).ok_or_else(invalid)?;
        let ms = number.checked_mul(unit).ok_or_else(invalid)?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(invalid)?;
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

fn unit_ms(unit: &str) -> Option<u64> {
    match unit {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        "d" => Some(86_400_000),
        _ => None,
    }
}

/// The inverse of [`parse_every`], largest units first (`1h30m`, `250ms`).
pub fn format_every(every: Duration) -> String {
    let mut ms = every.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

/// Every time the schedule layer keeps is whole milliseconds: the unique key names the fire time
/// in milliseconds, and the compare-and-set on `next_fire_at` must compare equal values on both
/// engines (PostgreSQL keeps microseconds, the SQLite text keeps milliseconds).
pub(crate) fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

#[cfg(test)]
mod tests;
