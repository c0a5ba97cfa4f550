//! The shared-state half of the `Bus` contract (`KeyValue` and `RateLimiter`), declared once per
//! backend like the rest of the suite (see `support.rs`): `state::memory::<name>`,
//! `state::redis::<name>` and `state::redis_only::<name>`.
//!
//! Time-dependent checks never assert speed: they poll with a deadline, wait for durations the
//! bus itself reported (`retry_after`, `reset_after`), or check a bound only when the run was
//! quick enough for it to apply (and say so when it was not). Tests that must not see a window
//! boundary use an hour-long window, so one boundary at most can fall inside a test, which the
//! sliding window absorbs (see `rate_a_fresh_window_allows_exactly_the_limit`).

use std::time::Duration;

use bytes::Bytes;
use helix_bus::{Bus, BusError, BusOptions, RateDecision};
use tokio::time::Instant;

use crate::support::{eventually, Engine, Fixture, PATIENCE};

on_every_backend!(
    kv_set_get_delete_round_trip,
    kv_set_replaces_the_value_and_the_ttl,
    kv_a_ttl_expires_the_key,
    kv_a_zero_ttl_is_rejected,
    prefixes_isolate_keys_and_limits,
    rate_a_fresh_window_allows_exactly_the_limit,
    rate_denied_hits_do_not_count,
    rate_retry_after_is_honoured,
    rate_keys_are_independent,
    rate_concurrent_hits_allow_exactly_the_limit,
    rate_capacity_returns_gradually_after_a_boundary,
    rate_limit_zero_and_bad_arguments,
    rate_take_counts_a_batch_all_or_nothing,
);

on_redis_only!(
    buses_sharing_a_prefix_share_keys_and_one_limit,
    keys_live_under_the_prefix_and_expire,
);

fn msg(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// Long enough that at most one window boundary can fall inside a test (bounded to 60 s).
const HOUR: Duration = Duration::from_secs(3600);

async fn hit(bus: &dyn Bus, key: &str, limit: u64, window: Duration) -> RateDecision {
    bus.hit(key, limit, window).await.expect("hit")
}

/// How many of `n` hits are allowed.
async fn burst(bus: &dyn Bus, key: &str, limit: u64, window: Duration, n: u64) -> u64 {
    let mut allowed = 0;
    for _ in 0..n {
        allowed += u64::from(hit(bus, key, limit, window).await.allowed);
    }
    allowed
}

/// Hit until a hit is denied (bounded); returns that denial.
async fn fill(bus: &dyn Bus, key: &str, limit: u64, window: Duration) -> RateDecision {
    for _ in 0..=4 * limit {
        let d = hit(bus, key, limit, window).await;
        if !d.allowed {
            return d;
        }
    }
    panic!("{key}: never denied after {} hits", 4 * limit + 1)
}

#[track_caller]
fn assert_backend_error<T: std::fmt::Debug>(what: &str, result: Result<T, BusError>) {
    assert!(
        matches!(result, Err(BusError::Backend(_))),
        "{what}: {result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Key/value
// ---------------------------------------------------------------------------------------------

async fn kv_set_get_delete_round_trip(fx: Fixture) {
    let bus = fx.open().await;
    assert_eq!(bus.get("flag").await.unwrap(), None);
    assert!(!bus.delete("flag").await.unwrap(), "nothing to delete yet");

    bus.set("flag", msg("on"), None).await.unwrap();

    assert_eq!(bus.get("flag").await.unwrap(), Some(msg("on")));
    // Binary and empty values, and keys with separators and braces, come back unchanged.
    let binary = Bytes::from_static(&[0, 255, b'\n', b'\r', 0]);
    bus.set("session:{abc} x", binary.clone(), None)
        .await
        .unwrap();
    bus.set("empty", Bytes::new(), None).await.unwrap();
    assert_eq!(bus.get("session:{abc} x").await.unwrap(), Some(binary));
    assert_eq!(bus.get("empty").await.unwrap(), Some(Bytes::new()));

    assert!(bus.delete("flag").await.unwrap(), "deleted");
    assert_eq!(bus.get("flag").await.unwrap(), None);
    assert!(!bus.delete("flag").await.unwrap(), "already gone");
    assert!(bus.get("empty").await.unwrap().is_some(), "other keys stay");
}

async fn kv_set_replaces_the_value_and_the_ttl(fx: Fixture) {
    let bus = fx.open().await;
    bus.set("k", msg("one"), None).await.unwrap();
    bus.set("k", msg("two"), None).await.unwrap();
    assert_eq!(bus.get("k").await.unwrap(), Some(msg("two")));

    // A TTL, then an overwrite without one: the key must outlive its first TTL. The sentinel is
    // set later with the same TTL, so once it is gone the first TTL has passed too.
    let ttl = Duration::from_millis(200);
    bus.set("k", msg("short-lived"), Some(ttl)).await.unwrap();
    bus.set("k", msg("kept"), None).await.unwrap();
    bus.set("sentinel", msg("x"), Some(ttl)).await.unwrap();
    eventually("the sentinel expires", || async {
        bus.get("sentinel").await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(bus.get("k").await.unwrap(), Some(msg("kept")));

    // And the other way round: an overwrite with a TTL makes a permanent key expire.
    bus.set("k", msg("now expiring"), Some(ttl)).await.unwrap();
    eventually("the overwritten key expires", || async {
        bus.get("k").await.unwrap().is_none().then_some(())
    })
    .await;
}

async fn kv_a_ttl_expires_the_key(fx: Fixture) {
    let bus = fx.open().await;
    let ttl = Duration::from_millis(300);
    let start = Instant::now();
    bus.set("k", msg("v"), Some(ttl)).await.unwrap();
    bus.set("forever", msg("v"), None).await.unwrap();

    let early = bus.get("k").await.unwrap();
    if start.elapsed() < ttl {
        assert_eq!(early, Some(msg("v")), "still there before its TTL");
    }
    eventually("the key expires", || async {
        bus.get("k").await.unwrap().is_none().then_some(())
    })
    .await;

    assert!(start.elapsed() >= ttl, "expired before its TTL of {ttl:?}");
    assert!(!bus.delete("k").await.unwrap(), "an expired key is absent");
    assert_eq!(bus.get("forever").await.unwrap(), Some(msg("v")));
}

async fn kv_a_zero_ttl_is_rejected(fx: Fixture) {
    let bus = fx.open().await;
    assert_backend_error(
        "zero TTL",
        bus.set("k", msg("v"), Some(Duration::ZERO)).await,
    );
    assert_eq!(bus.get("k").await.unwrap(), None);
    assert_eq!(fx.keys().await, Vec::<String>::new(), "nothing was written");
    // The smallest TTL is honoured (rounded up to 1 ms), not refused.
    bus.set("k", msg("v"), Some(Duration::from_micros(1)))
        .await
        .unwrap();
    eventually("a 1 µs TTL expires", || async {
        bus.get("k").await.unwrap().is_none().then_some(())
    })
    .await;
}

async fn prefixes_isolate_keys_and_limits(fx: Fixture) {
    let one = fx.open().await;
    let two_options = BusOptions {
        prefix: fx.other_prefix("two"),
        ..fx.options()
    };
    let two = fx.open_with(&two_options).await;

    one.set("k", msg("one"), None).await.unwrap();
    assert_eq!(two.get("k").await.unwrap(), None);
    two.set("k", msg("two"), None).await.unwrap();
    assert_eq!(one.get("k").await.unwrap(), Some(msg("one")));
    assert!(one.delete("k").await.unwrap());
    assert_eq!(two.get("k").await.unwrap(), Some(msg("two")));

    assert_eq!(burst(&*one, "r", 2, HOUR, 5).await, 2);
    let other = hit(&*two, "r", 2, HOUR).await;
    assert!(other.allowed, "{other:?}");
    assert_eq!(other.remaining, 1);
}

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

/// Exactly `limit` in a fresh window. Should an hour boundary fall after `k` of them, the `k`
/// weigh `k × (1 − e/window)` in the next window, which still leaves exactly `limit − k` for a
/// test that takes less than `window / limit` (72 s here; the whole test is bounded to 60 s).
async fn rate_a_fresh_window_allows_exactly_the_limit(fx: Fixture) {
    let bus = fx.open().await;
    for n in 1..=5 {
        let d = hit(&*bus, "k", 5, HOUR).await;
        assert!(d.allowed, "hit {n}: {d:?}");
        assert_eq!((d.limit, d.remaining, d.retry_after), (5, 5 - n, None));
        assert!(
            d.reset_after > Duration::ZERO && d.reset_after <= 2 * HOUR,
            "{d:?}"
        );
    }

    let denied = hit(&*bus, "k", 5, HOUR).await;

    assert!(!denied.allowed, "{denied:?}");
    assert_eq!((denied.limit, denied.remaining), (5, 0));
    let retry = denied.retry_after.expect("retry_after when denied");
    assert!(
        retry > Duration::ZERO && retry <= denied.reset_after,
        "{denied:?}"
    );
    assert!(denied.reset_after <= 2 * HOUR, "{denied:?}");
}

async fn rate_take_counts_a_batch_all_or_nothing(fx: Fixture) {
    let bus = fx.open().await;
    let d = bus.take("batch", 30, 50, HOUR).await.expect("take");
    assert!(d.allowed && d.remaining == 20, "{d:?}");
    let d = bus.take("batch", 30, 50, HOUR).await.expect("take");
    assert!(
        !d.allowed && d.retry_after.is_some(),
        "a batch that does not fit takes nothing: {d:?}"
    );
    let d = bus.take("batch", 20, 50, HOUR).await.expect("take");
    assert!(d.allowed && d.remaining == 0, "{d:?}");
    assert!(!hit(&*bus, "batch", 50, HOUR).await.allowed);
    assert!(
        bus.take("batch", 0, 50, HOUR).await.is_err(),
        "a zero cost is refused"
    );
}

async fn rate_denied_hits_do_not_count(fx: Fixture) {
    let bus = fx.open().await;
    assert_eq!(burst(&*bus, "long", 3, HOUR, 3).await, 3);
    let first = hit(&*bus, "long", 3, HOUR).await;

    assert_eq!(burst(&*bus, "long", 3, HOUR, 20).await, 0);
    let last = hit(&*bus, "long", 3, HOUR).await;

    // `retry_after` points at a fixed moment while the counts stand still, so it can only
    // shrink. Had the 21 denials counted (24 instead of 3), it would have grown by over 20 min.
    let (first_retry, last_retry) = (first.retry_after.unwrap(), last.retry_after.unwrap());
    assert!(last_retry <= first_retry, "{first:?} then {last:?}");

    // The same on a short window, checked the direct way: after 20 denials, the wait announced
    // before them is still enough.
    let window = Duration::from_millis(400);
    let denied = fill(&*bus, "short", 2, window).await;
    let announced = Instant::now() + denied.retry_after.unwrap();
    let slipped = burst(&*bus, "short", 2, window, 20).await;
    tokio::time::sleep_until(announced).await;
    let after = hit(&*bus, "short", 2, window).await;
    if slipped == 0 {
        assert!(after.allowed, "denials were counted: {after:?}");
    } else {
        eprintln!("note: the run was too slow to check the short window ({slipped} slipped in)");
    }
}

async fn rate_retry_after_is_honoured(fx: Fixture) {
    let bus = fx.open().await;
    let window = Duration::from_millis(300);
    for round in 0..3 {
        let denied = fill(&*bus, "k", 3, window).await;
        let retry = denied.retry_after.expect("denied");
        assert!(
            retry > Duration::ZERO && retry <= denied.reset_after,
            "{denied:?}"
        );
        assert!(denied.reset_after <= 2 * window, "{denied:?}");

        tokio::time::sleep(retry).await;

        let d = hit(&*bus, "k", 3, window).await;
        assert!(
            d.allowed,
            "round {round}: not allowed {retry:?} after {denied:?}: {d:?}"
        );
    }
}

async fn rate_keys_are_independent(fx: Fixture) {
    let bus = fx.open().await;
    assert_eq!(burst(&*bus, "a", 2, HOUR, 5).await, 2);

    // Lookalikes of `a` (on Redis `a` is also the hash tag) keep their own counts.
    for key in ["b", "a:1", "{a}", "a}", "login:{a}"] {
        assert_eq!(burst(&*bus, key, 2, HOUR, 5).await, 2, "{key}");
    }
    assert!(!hit(&*bus, "a", 2, HOUR).await.allowed);
}

/// 10 tasks × 20 hits at once against a limit of 50: the check and the count are one atomic
/// step, so exactly 50 get through.
async fn rate_concurrent_hits_allow_exactly_the_limit(fx: Fixture) {
    let bus = fx.open().await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let bus = bus.clone();
            tokio::spawn(async move { burst(&*bus, "shared", 50, HOUR, 20).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        allowed += task.await.unwrap();
    }

    assert_eq!(allowed, 50);
    let d = hit(&*bus, "shared", 50, HOUR).await;
    assert_eq!((d.allowed, d.remaining), (false, 0));
}

/// After the limit is used up, capacity comes back gradually, as the previous window's weight
/// fades, and fully once two windows have passed.
///
/// Why the partial-return check holds whatever the window alignment: a count never exceeds the
/// limit, so without hits the estimate falls by at most `limit` per window; right after a
/// denial it is above `limit − 1`, so within a quarter window fewer than `limit / 4 + 1` hits
/// get through. The check runs when the client saw less than a quarter window between the last
/// denial and the end of the burst (the server saw no more).
async fn rate_capacity_returns_gradually_after_a_boundary(fx: Fixture) {
    const LIMIT: u64 = 10;
    let window = Duration::from_millis(500);
    let bus = fx.open().await;
    let mut denied_at = Instant::now();
    fill(&*bus, "k", LIMIT, window).await;

    // Poll until capacity starts coming back (at the earliest, past the next boundary).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let sent = Instant::now();
        if hit(&*bus, "k", LIMIT, window).await.allowed {
            break;
        }
        denied_at = sent;
        assert!(Instant::now() < deadline, "capacity never came back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut back = 1;
    let mut last = hit(&*bus, "k", LIMIT, window).await;
    back += u64::from(last.allowed);
    for _ in 1..LIMIT {
        last = hit(&*bus, "k", LIMIT, window).await;
        back += u64::from(last.allowed);
    }
    let span = denied_at.elapsed();
    if span < window / 4 {
        assert!(back <= LIMIT / 2, "{back} of {LIMIT} came back at once");
    } else {
        eprintln!("note: the run was too slow ({span:?}) to check the partial return");
    }

    // Once everything counted has faded (at most two windows), the whole limit is back.
    assert!(last.reset_after <= 2 * window, "{last:?}");
    tokio::time::sleep(last.reset_after).await;
    assert_eq!(burst(&*bus, "k", LIMIT, window, LIMIT).await, LIMIT);
}

async fn rate_limit_zero_and_bad_arguments(fx: Fixture) {
    let bus = fx.open().await;
    for _ in 0..3 {
        let d = hit(&*bus, "k", 0, HOUR).await;
        assert_eq!((d.allowed, d.limit, d.remaining), (false, 0, 0), "{d:?}");
        assert!(d.retry_after.is_some_and(|r| r > Duration::ZERO), "{d:?}");
    }
    assert_backend_error("zero window", bus.hit("k", 5, Duration::ZERO).await);
    assert_backend_error(
        "sub-ms window",
        bus.hit("k", 5, Duration::from_micros(10)).await,
    );
    assert_backend_error("empty key", bus.hit("", 5, HOUR).await);
    assert_eq!(fx.keys().await, Vec::<String>::new(), "nothing was counted");
}

// ---------------------------------------------------------------------------------------------
// Redis only
// ---------------------------------------------------------------------------------------------

/// Two buses on one prefix are two instances of one deployment: one switch, one limit.
async fn buses_sharing_a_prefix_share_keys_and_one_limit(fx: Fixture) {
    let one = fx.open().await;
    let two = fx.open().await;

    one.set("maintenance", msg("on"), None).await.unwrap();
    assert_eq!(two.get("maintenance").await.unwrap(), Some(msg("on")));
    assert!(two.delete("maintenance").await.unwrap());
    assert_eq!(one.get("maintenance").await.unwrap(), None);

    let mut allowed = 0;
    for i in 0..10 {
        let bus = if i % 2 == 0 { &one } else { &two };
        allowed += u64::from(hit(&**bus, "login", 6, HOUR).await.allowed);
    }
    assert_eq!(allowed, 6);
    let three = fx.open().await;
    assert!(!hit(&*three, "login", 6, HOUR).await.allowed);
}

async fn pttl(fx: &Fixture, key: &str) -> i64 {
    let mut conn = fx.raw().await.expect("redis");
    ::redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("PTTL")
}

/// The documented layout: `{prefix}helix:kv:<key>` and `{prefix}helix:rl:{<key>}:<window>`,
/// rate keys expiring after two windows.
async fn keys_live_under_the_prefix_and_expire(fx: Fixture) {
    let bus = fx.open().await;
    let window = Duration::from_secs(10);
    bus.set("flag", msg("on"), None).await.unwrap();
    bus.set("temp", msg("x"), Some(HOUR)).await.unwrap();
    assert!(hit(&*bus, "login:1.2.3.4", 5, window).await.allowed);

    let mut keys = fx.keys().await;
    keys.sort();
    let p = fx.prefix();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(keys[0], format!("{p}helix:kv:flag"));
    assert_eq!(keys[1], format!("{p}helix:kv:temp"));
    let index = keys[2]
        .strip_prefix(&format!("{p}helix:rl:{{login:1.2.3.4}}:"))
        .unwrap_or_else(|| panic!("rate key {}", keys[2]));
    assert!(index.parse::<u64>().is_ok(), "window index {index}");

    assert_eq!(pttl(&fx, &keys[0]).await, -1, "no TTL");
    let temp = pttl(&fx, &keys[1]).await;
    assert!(temp > 0 && temp <= 3_600_000, "{temp}");
    let rate = pttl(&fx, &keys[2]).await;
    assert!(rate > 0 && rate <= 20_000, "two windows: {rate}");
    assert_eq!(fx.engine, Engine::Redis);
}
