//! The schedule math: parsing, time zones, daylight saving changes, intervals.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn cron(expr: &str, zone: &str) -> Timer {
    Cadence::cron(expr, Some(zone))
        .unwrap()
        .timer(DateTime::UNIX_EPOCH)
        .unwrap()
}

/// The next `n` fire times after `from`.
fn fires(timer: &Timer, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from;
    for _ in 0..n {
        t = timer.next_after(t).unwrap();
        out.push(t);
    }
    out
}

fn message(err: ScheduleError) -> String {
    err.to_string()
}

#[test]
fn five_and_six_field_expressions_parse() {
    let t = cron("*/15 * * * *", "UTC");
    assert_eq!(
        fires(&t, utc(2025, 1, 1, 10, 7, 30), 2),
        [utc(2025, 1, 1, 10, 15, 0), utc(2025, 1, 1, 10, 30, 0)]
    );
    let t = cron("*/10 * * * * *", "UTC");
    assert_eq!(
        fires(&t, utc(2025, 1, 1, 10, 0, 0), 2),
        [utc(2025, 1, 1, 10, 0, 10), utc(2025, 1, 1, 10, 0, 20)]
    );
    let t = cron("0 9 * * MON-FRI", "UTC");
    // 2025-01-03 is a Friday: the next fire after it is Monday the 6th.
    assert_eq!(
        fires(&t, utc(2025, 1, 3, 9, 0, 0), 1),
        [utc(2025, 1, 6, 9, 0, 0)]
    );
    let t = cron("@daily", "UTC");
    assert_eq!(
        fires(&t, utc(2025, 1, 3, 9, 0, 0), 1),
        [utc(2025, 1, 4, 0, 0, 0)]
    );
}

#[test]
fn next_is_strictly_after_even_between_seconds() {
    let t = cron("* * * * * *", "UTC");
    let half = utc(2025, 1, 1, 0, 0, 0) + chrono::TimeDelta::milliseconds(500);
    assert_eq!(fires(&t, half, 1), [utc(2025, 1, 1, 0, 0, 1)]);
    let t = cron("0 * * * *", "UTC");
    assert_eq!(
        fires(&t, utc(2025, 1, 1, 1, 0, 0), 1),
        [utc(2025, 1, 1, 2, 0, 0)]
    );
}

#[test]
fn bad_expressions_say_what_is_wrong() {
    let err = message(Cadence::cron("* * *", None).unwrap_err());
    assert!(
        err.starts_with("invalid cron expression \"* * *\": expected 5 fields"),
        "{err}"
    );
    let err = message(Cadence::cron("61 * * * *", None).unwrap_err());
    assert!(
        err.starts_with("invalid cron expression \"61 * * * *\": "),
        "{err}"
    );
    let err = message(Cadence::cron("0 0 * * * * 2030", None).unwrap_err());
    assert!(err.contains("got 7"), "{err}");
    let err = message(Cadence::cron("banana * * * *", None).unwrap_err());
    assert!(err.starts_with("invalid cron expression"), "{err}");
    assert!(Cadence::cron("", None).is_err());
}

#[test]
fn unknown_time_zones_are_named() {
    let err = message(Cadence::cron("0 9 * * *", Some("Mars/Olympus")).unwrap_err());
    assert!(
        err.starts_with("unknown time zone \"Mars/Olympus\""),
        "{err}"
    );
    assert!(Cadence::cron("0 9 * * *", Some("europe/paris")).is_err());
    assert!(Cadence::cron("0 9 * * *", Some("Europe/Paris")).is_ok());
    assert_eq!(
        Cadence::cron(" 0 9 * * * ", None).unwrap(),
        Cadence::Cron {
            expr: "0 9 * * *".into(),
            timezone: "UTC".into()
        }
    );
}

#[test]
fn local_time_stays_put_across_daylight_saving() {
    let t = cron("0 9 * * *", "Europe/Paris");
    // Winter: UTC+1; summer (from 2025-03-30): UTC+2.
    assert_eq!(
        fires(&t, utc(2025, 3, 28, 12, 0, 0), 3),
        [
            utc(2025, 3, 29, 8, 0, 0),
            utc(2025, 3, 30, 7, 0, 0),
            utc(2025, 3, 31, 7, 0, 0)
        ]
    );
}

#[test]
fn a_time_in_the_spring_gap_fires_once_right_after_it() {
    // Berlin jumps from 02:00 to 03:00 local (01:00 UTC) on 2025-03-30: 02:30 does not exist.
    let t = cron("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        fires(&t, utc(2025, 3, 29, 12, 0, 0), 2),
        [utc(2025, 3, 30, 1, 0, 0), utc(2025, 3, 31, 0, 30, 0)]
    );
}

#[test]
fn a_fixed_time_in_the_autumn_overlap_fires_once() {
    // New York goes from 02:00 EDT back to 01:00 EST (06:00 UTC) on 2025-11-02: 01:30 happens
    // twice; a daily job runs on the first pass only.
    let t = cron("30 1 * * *", "America/New_York");
    assert_eq!(
        fires(&t, utc(2025, 11, 1, 12, 0, 0), 2),
        [utc(2025, 11, 2, 5, 30, 0), utc(2025, 11, 3, 6, 30, 0)]
    );
}

#[test]
fn an_interval_cron_runs_through_both_passes_of_the_overlap() {
    let t = cron("*/30 * * * *", "America/New_York");
    // 01:00 EDT, 01:30 EDT, 01:00 EST, 01:30 EST, 02:00 EST: every 30 real minutes.
    assert_eq!(
        fires(&t, utc(2025, 11, 2, 4, 59, 0), 5),
        [
            utc(2025, 11, 2, 5, 0, 0),
            utc(2025, 11, 2, 5, 30, 0),
            utc(2025, 11, 2, 6, 0, 0),
            utc(2025, 11, 2, 6, 30, 0),
            utc(2025, 11, 2, 7, 0, 0)
        ]
    );
}

#[test]
fn a_cron_that_never_matches_is_refused_when_evaluated() {
    let t = cron("0 0 30 2 *", "UTC");
    let err = message(t.next_after(utc(2025, 1, 1, 0, 0, 0)).unwrap_err());
    assert!(err.contains("has no fire time after"), "{err}");
}

#[test]
fn intervals_count_from_the_anchor() {
    let anchor = utc(2025, 1, 1, 0, 0, 0) + chrono::TimeDelta::milliseconds(250);
    let t = Cadence::every(Duration::from_secs(90))
        .unwrap()
        .timer(anchor)
        .unwrap();
    let ms = |s: i64| anchor + chrono::TimeDelta::seconds(s);
    assert_eq!(t.next_after(anchor).unwrap(), ms(90));
    assert_eq!(t.next_after(ms(89)).unwrap(), ms(90));
    assert_eq!(t.next_after(ms(90)).unwrap(), ms(180));
    assert_eq!(t.next_after(ms(10_000)).unwrap(), ms(10_080));
    // Before the anchor (a clock behind the creator's): still the first period.
    assert_eq!(t.next_after(ms(-500)).unwrap(), ms(90));
}

#[test]
fn intervals_are_bounded() {
    let err = message(Cadence::every(Duration::from_millis(500)).unwrap_err());
    assert_eq!(
        err,
        "invalid interval 500ms: it must be between 1s and 366d"
    );
    assert!(Cadence::every(Duration::from_secs(367 * 86_400)).is_err());
    assert!(Cadence::every(Duration::from_secs(1)).is_ok());
}

#[test]
fn intervals_read_as_users_type_them() {
    assert_eq!(parse_every("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_every("5m").unwrap(), Duration::from_secs(300));
    assert_eq!(parse_every("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_every("1d").unwrap(), Duration::from_secs(86_400));
    assert_eq!(parse_every("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_every("42").unwrap(), Duration::from_secs(42));
    for bad in ["", "m", "5x", "1.5h", "-3s", "h5"] {
        let err = message(parse_every(bad).unwrap_err());
        assert!(err.starts_with("invalid interval"), "{bad}: {err}");
    }
    assert_eq!(format_every(Duration::from_secs(5400)), "1h30m");
    assert_eq!(format_every(Duration::from_millis(1_250)), "1s250ms");
}

#[test]
fn cadences_show_as_the_api_returns_them() {
    let every = Cadence::every(Duration::from_secs(60)).unwrap();
    assert_eq!(
        serde_json::to_value(&every).unwrap(),
        serde_json::json!({"every_ms": 60000})
    );
    assert_eq!(every.to_string(), "every 1m");
    let cron = Cadence::cron("0 9 * * *", Some("Europe/Paris")).unwrap();
    assert_eq!(
        serde_json::to_value(&cron).unwrap(),
        serde_json::json!({"cron": "0 9 * * *", "timezone": "Europe/Paris"})
    );
    assert_eq!(cron.to_string(), "cron \"0 9 * * *\" (Europe/Paris)");
}
