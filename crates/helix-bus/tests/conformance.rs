//! The `Bus` contract, written once and run on every backend: `PubSub` and the bus as a whole
//! (identity, opening, closing, reconnects) here, `KeyValue` and `RateLimiter` in
//! `conformance/state.rs` (tests named `state::…`), `History` in `conformance/history.rs`
//! (`history::…`).
//!
//! Each test listed in `on_every_backend!` (see `conformance/support.rs`) runs twice:
//! `memory::<name>` on a fresh in-process bus, and `redis::<name>` on the Redis named by
//! `HELIX_TEST_REDIS_URL` under its own key prefix (`helix_test_<uuid>:`), whose keys are deleted
//! when the test ends, passed or failed. Without that variable the Redis variants print a note and
//! return. `on_redis_only!` tests cover what only Redis has: reconnects and buses sharing state.
//!
//! No test sleeps to "let things settle": waits poll with a deadline, and absence of a message is
//! proven with a sentinel published after it on the same path.

use std::time::Duration;

use bytes::Bytes;
use helix_bus::{
    open, Backend, Bus, BusError, BusOptions, Event, History, KeyValue, Position, PubSub,
    RateLimiter, RedisBus, Replay, Retention, Since, Subscription,
};

// Not `tests/support.rs`: Cargo would build that as a test binary of its own.
#[macro_use]
#[path = "conformance/support.rs"]
mod support;

// After `support`, so its macros are in scope there.
#[path = "conformance/state.rs"]
mod state;

#[path = "conformance/history.rs"]
mod history;

use support::{eventually, next_event, next_payload, Engine, Fixture, PATIENCE};

on_every_backend!(
    backend_describe_and_ping,
    a_subscriber_gets_messages_in_publish_order,
    each_publisher_keeps_its_order,
    every_subscriber_gets_every_message,
    a_publish_right_after_subscribe_is_delivered,
    a_subscriber_never_gets_what_was_published_before,
    dropping_a_subscription_unsubscribes_it_alone,
    channels_are_isolated,
    prefixes_isolate_buses,
    a_slow_subscriber_lags_without_blocking_others,
    after_close_calls_fail_and_subscriptions_end,
);

on_redis_only!(
    buses_sharing_a_prefix_share_channels_and_state,
    resubscribes_after_the_pubsub_connection_is_killed,
    commands_recover_after_the_command_connection_is_killed,
    recovers_after_losing_every_connection,
    close_and_drop_release_the_connections,
);

fn msg(text: impl Into<String>) -> Bytes {
    Bytes::from(text.into())
}

/// The offsets and data of a complete replay (a gap fails the test).
fn replayed(replay: Result<Replay, BusError>) -> Vec<(u64, Bytes)> {
    match replay.expect("replay") {
        Replay::Complete { entries, .. } => {
            entries.into_iter().map(|e| (e.offset, e.data)).collect()
        }
        Replay::Gap { head } => panic!("expected entries, got a gap at {head:?}"),
    }
}

#[track_caller]
fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: Result<T, BusError>) {
    let unavailable = matches!(result, Err(BusError::Unavailable { .. }));
    assert!(unavailable, "{what} after close: {result:?}");
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

async fn backend_describe_and_ping(fx: Fixture) {
    let bus = fx.open().await;

    bus.ping().await.expect("ping");
    let described = bus.describe();
    match fx.engine {
        Engine::Memory => {
            assert_eq!(bus.backend(), Backend::Memory);
            assert_eq!(described, "memory");
        }
        Engine::Redis => {
            assert_eq!(bus.backend(), Backend::Redis);
            assert!(described.starts_with("redis "), "{described}");
            assert!(!described.contains('@'), "no credentials: {described}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Publish / subscribe
// ---------------------------------------------------------------------------------------------

async fn a_subscriber_gets_messages_in_publish_order(fx: Fixture) {
    let bus = fx.open().await;
    let mut sub = bus.subscribe("consciousness:stream").await.unwrap();

    for i in 0..100 {
        bus.publish("consciousness:stream", msg(format!("m{i}")))
            .await
            .unwrap();
    }

    for i in 0..100 {
        // The channel comes back without the prefix (checked inside `next_payload`).
        let got = next_payload(&mut sub, "consciousness:stream").await;
        assert_eq!(got, msg(format!("m{i}")));
    }
}

/// Two publishers interleave on one channel: each one's messages keep their relative order.
async fn each_publisher_keeps_its_order(fx: Fixture) {
    let bus = fx.open().await;
    let mut sub = bus.subscribe("c").await.unwrap();

    let publishers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    bus.publish("c", msg(format!("{name}{i}"))).await.unwrap();
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }

    let (mut next_a, mut next_b) = (0, 0);
    for _ in 0..100 {
        let got = next_payload(&mut sub, "c").await;
        let text = std::str::from_utf8(&got).unwrap();
        let (who, n) = text.split_at(1);
        let n: u32 = n.parse().unwrap();
        let expected = if who == "a" { &mut next_a } else { &mut next_b };
        assert_eq!(n, *expected, "{who}'s messages out of order");
        *expected += 1;
    }
    assert_eq!((next_a, next_b), (50, 50));
}

async fn every_subscriber_gets_every_message(fx: Fixture) {
    let bus = fx.open().await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(bus.subscribe("service:health").await.unwrap());
    }

    for i in 0..20 {
        bus.publish("service:health", msg(format!("m{i}")))
            .await
            .unwrap();
    }

    for sub in &mut subs {
        for i in 0..20 {
            let got = next_payload(sub, "service:health").await;
            assert_eq!(got, msg(format!("m{i}")));
        }
    }
}

/// `subscribe` returning means active: no message published afterwards may be missed, for a
/// channel's first subscriber (which waits for Redis's confirmation) as for later ones. Repeated
/// on fresh channels, as it is a race.
async fn a_publish_right_after_subscribe_is_delivered(fx: Fixture) {
    let bus = fx.open().await;

    for round in 0..20 {
        let channel = format!("conversation:{round}");
        let mut first = bus.subscribe(&channel).await.unwrap();
        bus.publish(&channel, msg("one")).await.unwrap();
        let mut second = bus.subscribe(&channel).await.unwrap();
        bus.publish(&channel, msg("two")).await.unwrap();

        assert_eq!(next_payload(&mut first, &channel).await, msg("one"));
        assert_eq!(next_payload(&mut first, &channel).await, msg("two"));
        assert_eq!(next_payload(&mut second, &channel).await, msg("two"));
    }
}

/// A subscriber's first message is the first one published after it subscribed, even while
/// earlier ones are still on their way to the subscribers that existed then, or to one that
/// has just left. Repeated, as it is a race.
async fn a_subscriber_never_gets_what_was_published_before(fx: Fixture) {
    let bus = fx.open().await;

    for round in 0..20 {
        let channel = format!("c{round}");
        let mut early = bus.subscribe(&channel).await.unwrap();
        for i in 0..10 {
            bus.publish(&channel, msg(format!("before{i}")))
                .await
                .unwrap();
        }
        let mut late = bus.subscribe(&channel).await.unwrap();
        bus.publish(&channel, msg("after")).await.unwrap();

        assert_eq!(next_payload(&mut late, &channel).await, msg("after"));
        for i in 0..10 {
            let got = next_payload(&mut early, &channel).await;
            assert_eq!(got, msg(format!("before{i}")));
        }
        assert_eq!(next_payload(&mut early, &channel).await, msg("after"));

        // The channel's last subscriber leaves with messages possibly still in flight to it.
        bus.publish(&channel, msg("stale")).await.unwrap();
        drop((early, late));
        let mut again = bus.subscribe(&channel).await.unwrap();
        bus.publish(&channel, msg("fresh")).await.unwrap();
        assert_eq!(next_payload(&mut again, &channel).await, msg("fresh"));
    }
}

async fn dropping_a_subscription_unsubscribes_it_alone(fx: Fixture) {
    let bus = fx.open().await;
    let prefix = fx.prefix();
    let mut kept = bus.subscribe("c").await.unwrap();
    let dropped = bus.subscribe("c").await.unwrap();

    drop(dropped);
    bus.publish("c", msg("after one drop")).await.unwrap();

    assert_eq!(next_payload(&mut kept, "c").await, msg("after one drop"));
    if let Some(count) = fx.subscribers(&prefix, "c").await {
        // Redis sees one connection per bus, still needed by `kept`.
        assert_eq!(count, 1);
    }

    drop(kept);
    if fx.engine == Engine::Redis {
        eventually("Redis sees the channel unsubscribed", || async {
            (fx.subscribers(&prefix, "c").await == Some(0)).then_some(())
        })
        .await;
    }

    // Subscribing again after the last one left works (UNSUBSCRIBE then SUBSCRIBE on Redis).
    let mut again = bus.subscribe("c").await.unwrap();
    bus.publish("c", msg("again")).await.unwrap();
    assert_eq!(next_payload(&mut again, "c").await, msg("again"));
    if let Some(count) = fx.subscribers(&prefix, "c").await {
        assert_eq!(count, 1);
    }
}

/// A message on one channel never reaches another channel's subscriber. Proven with a sentinel:
/// everything goes through the same connections in order, so a stray message would arrive before
/// the sentinel that follows it.
async fn channels_are_isolated(fx: Fixture) {
    let bus = fx.open().await;
    let mut a = bus.subscribe("agent:coordination").await.unwrap();
    let mut b = bus.subscribe("agent:coordination:x").await.unwrap();

    bus.publish("agent:coordination:x", msg("for b"))
        .await
        .unwrap();
    bus.publish("agent:coordination", msg("for a"))
        .await
        .unwrap();
    bus.publish("agent:coordinatio", msg("for nobody"))
        .await
        .unwrap();
    bus.publish("agent:coordination", msg("end a"))
        .await
        .unwrap();
    bus.publish("agent:coordination:x", msg("end b"))
        .await
        .unwrap();

    assert_eq!(
        next_payload(&mut a, "agent:coordination").await,
        msg("for a")
    );
    assert_eq!(
        next_payload(&mut a, "agent:coordination").await,
        msg("end a")
    );
    let channel_b = "agent:coordination:x";
    assert_eq!(next_payload(&mut b, channel_b).await, msg("for b"));
    assert_eq!(next_payload(&mut b, channel_b).await, msg("end b"));
}

/// Two buses with different prefixes share nothing: not channels, not channel logs. On memory
/// two buses never share anything; on Redis they share a server. (Keys and rate limits:
/// `state::prefixes_isolate_keys_and_limits`.)
async fn prefixes_isolate_buses(fx: Fixture) {
    let one = fx.open().await;
    let two_options = BusOptions {
        prefix: fx.other_prefix("two"),
        ..fx.options()
    };
    let two = fx.open_with(&two_options).await;
    let mut sub_one = one.subscribe("shared").await.unwrap();
    let mut sub_two = two.subscribe("shared").await.unwrap();

    one.publish("shared", msg("from one")).await.unwrap();
    two.publish("shared", msg("from two")).await.unwrap();
    // Published after the other bus's message was accepted, so it would arrive after it.
    one.publish("shared", msg("end one")).await.unwrap();
    two.publish("shared", msg("end two")).await.unwrap();

    assert_eq!(next_payload(&mut sub_one, "shared").await, msg("from one"));
    assert_eq!(next_payload(&mut sub_one, "shared").await, msg("end one"));
    assert_eq!(next_payload(&mut sub_two, "shared").await, msg("from two"));
    assert_eq!(next_payload(&mut sub_two, "shared").await, msg("end two"));

    let retention = Retention::default();
    let appended = one.append("log", msg("entry"), &retention).await.unwrap();
    let since = Since::default();
    assert_eq!(two.head("log").await.unwrap(), Position::default());
    let twos = replayed(two.replay("log", &since, &retention).await);
    assert!(twos.is_empty(), "{twos:?}");
    assert_eq!(one.head("log").await.unwrap(), appended);
    let ones = replayed(one.replay("log", &since, &retention).await);
    assert_eq!(ones, [(1, msg("entry"))]);
}

/// A subscriber that stops reading loses messages (and is told how many) while the others, and
/// the publisher, carry on. The fast subscriber reads in lockstep with the publisher, so it never
/// holds more than one message and the slow one's losses are exact.
async fn a_slow_subscriber_lags_without_blocking_others(fx: Fixture) {
    let options = BusOptions {
        subscription_buffer: 4,
        ..fx.options()
    };
    let bus = fx.open_with(&options).await;
    let mut slow = bus.subscribe("c").await.unwrap();
    let mut fast = bus.subscribe("c").await.unwrap();

    for i in 0..100 {
        let publish = bus.publish("c", msg(format!("m{i}")));
        tokio::time::timeout(PATIENCE, publish)
            .await
            .expect("publish never waits for a slow subscriber")
            .unwrap();
        assert_eq!(next_payload(&mut fast, "c").await, msg(format!("m{i}")));
    }

    for i in 0..4 {
        assert_eq!(next_payload(&mut slow, "c").await, msg(format!("m{i}")));
    }
    bus.publish("c", msg("after")).await.unwrap();
    assert_eq!(next_payload(&mut fast, "c").await, msg("after"));
    assert_eq!(next_event(&mut slow).await, Event::Lagged { skipped: 96 });
    assert_eq!(next_payload(&mut slow, "c").await, msg("after"));
}

async fn after_close_calls_fail_and_subscriptions_end(fx: Fixture) {
    let bus = fx.open().await;
    let mut sub = bus.subscribe("c").await.unwrap();
    let retention = Retention::default();
    bus.append("log", msg("x"), &retention).await.unwrap();
    bus.set("k", msg("x"), None).await.unwrap();

    tokio::time::timeout(PATIENCE, bus.close())
        .await
        .expect("close returns");

    let end = tokio::time::timeout(PATIENCE, sub.recv()).await;
    assert_eq!(end.expect("the subscription ends"), None);
    assert_unavailable("ping", bus.ping().await);
    assert_unavailable("publish", bus.publish("c", msg("x")).await);
    assert_unavailable("subscribe", bus.subscribe("c").await);
    assert_unavailable("append", bus.append("log", msg("x"), &retention).await);
    let since = Since::default();
    assert_unavailable("replay", bus.replay("log", &since, &retention).await);
    assert_unavailable("head", bus.head("log").await);
    assert_unavailable("get", bus.get("k").await);
    assert_unavailable("set", bus.set("k", msg("x"), None).await);
    assert_unavailable("delete", bus.delete("k").await);
    assert_unavailable("hit", bus.hit("k", 1, Duration::from_secs(1)).await);
    // Closing twice is harmless.
    tokio::time::timeout(PATIENCE, bus.close())
        .await
        .expect("a second close returns");
}

// ---------------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------------

async fn open_err(url: &str, options: &BusOptions) -> BusError {
    match open(Some(url), options).await {
        Ok(bus) => panic!("{url} opened as {}", bus.describe()),
        Err(e) => e,
    }
}

#[tokio::test]
async fn no_url_opens_the_memory_bus() {
    let bus = open(None, &BusOptions::default()).await.expect("open");
    assert_eq!(bus.backend(), Backend::Memory);
    bus.ping().await.expect("ping");
}

#[tokio::test]
async fn other_schemes_are_rejected() {
    let options = BusOptions::default();

    let err = open_err("nats://x", &options).await;
    assert!(
        matches!(&err, BusError::UnsupportedScheme { scheme } if scheme == "nats"),
        "{err:?}"
    );
    let err = open_err("not a url", &options).await;
    assert!(matches!(err, BusError::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn unreachable_redis_is_unavailable_without_password() {
    let options = BusOptions {
        connect_attempts: 2,
        connect_timeout: Duration::from_millis(500),
        ..BusOptions::default()
    };

    // A guard against a hang, not a timing assertion.
    let opened = open_err("redis://:secretpw@127.0.0.1:1", &options);
    let err = tokio::time::timeout(Duration::from_secs(30), opened)
        .await
        .expect("open gave up");

    assert!(
        matches!(&err, BusError::Unavailable { target, .. } if target == "127.0.0.1:1"),
        "{err:?}"
    );
    let text = format!("{err} {err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("secretpw"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Redis only
// ---------------------------------------------------------------------------------------------

/// Two buses on one prefix are two processes of one deployment: they share channels, and what
/// one bus stored (a channel's log, a key) outlives that bus.
async fn buses_sharing_a_prefix_share_channels_and_state(fx: Fixture) {
    let one = fx.open().await;
    let two = fx.open().await;
    let mut sub = two.subscribe("c").await.unwrap();

    one.publish("c", msg("across")).await.unwrap();
    let retention = Retention::default();
    let appended = one.append("log", msg("entry"), &retention).await.unwrap();
    one.set("flag", msg("on"), None).await.unwrap();
    one.close().await;
    drop(one);

    assert_eq!(next_payload(&mut sub, "c").await, msg("across"));
    let three = fx.open().await;
    assert_eq!(three.head("log").await.unwrap(), appended);
    let since = Since::default();
    let entries = replayed(three.replay("log", &since, &retention).await);
    assert_eq!(entries, [(1, msg("entry"))]);
    assert_eq!(three.get("flag").await.unwrap(), Some(msg("on")));
}

async fn open_redis(fx: &Fixture) -> RedisBus {
    let url = fx.url().expect("a Redis URL");
    RedisBus::open(url, &fx.options()).await.expect("open")
}

/// `CLIENT KILL ID <id>`; returns how many connections went.
async fn kill_client(fx: &Fixture, id: i64) -> i64 {
    let mut conn = fx.raw().await.expect("redis");
    ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut conn)
        .await
        .expect("CLIENT KILL")
}

/// The `name=` field of one connection in `CLIENT LIST`, if that connection exists.
async fn client_name(fx: &Fixture, id: i64) -> Option<String> {
    let mut conn = fx.raw().await.expect("redis");
    let list: String = ::redis::cmd("CLIENT")
        .arg("LIST")
        .arg("ID")
        .arg(id)
        .query_async(&mut conn)
        .await
        .expect("CLIENT LIST");
    let line = list.lines().next()?;
    let name = line.split(' ').find_map(|kv| kv.strip_prefix("name="))?;
    Some(name.to_owned())
}

async fn resubscribes_after_the_pubsub_connection_is_killed(fx: Fixture) {
    let bus = open_redis(&fx).await;
    let mut a = bus.subscribe("a").await.unwrap();
    let mut b = bus.subscribe("b").await.unwrap();
    bus.publish("a", msg("before")).await.unwrap();
    assert_eq!(next_payload(&mut a, "a").await, msg("before"));
    let old = bus.pubsub_client_id().expect("connected");
    assert_eq!(client_name(&fx, old).await.as_deref(), Some("helix-bus"));

    assert_eq!(kill_client(&fx, old).await, 1);

    // Every subscriber of every channel hears about the gap, then gets what follows it.
    assert_eq!(next_event(&mut a).await, Event::Resubscribed);
    assert_eq!(next_event(&mut b).await, Event::Resubscribed);
    let new = bus.pubsub_client_id().expect("reconnected");
    assert_ne!(new, old);
    assert_eq!(client_name(&fx, new).await.as_deref(), Some("helix-bus"));
    bus.publish("a", msg("after a")).await.unwrap();
    bus.publish("b", msg("after b")).await.unwrap();
    assert_eq!(next_payload(&mut a, "a").await, msg("after a"));
    assert_eq!(next_payload(&mut b, "b").await, msg("after b"));
    // New subscriptions work on the new connection too.
    let mut c = bus.subscribe("c").await.unwrap();
    bus.publish("c", msg("fresh")).await.unwrap();
    assert_eq!(next_payload(&mut c, "c").await, msg("fresh"));
}

/// Retry `call` a bounded number of times while it reports the connection as unavailable.
async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BusError>>,
{
    const ATTEMPTS: u32 = 20;
    for attempt in 1..=ATTEMPTS {
        match tokio::time::timeout(PATIENCE, call()).await {
            Ok(Ok(out)) => return out,
            Ok(Err(e @ BusError::Unavailable { .. })) if attempt < ATTEMPTS => {
                eprintln!("{what}: attempt {attempt}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(e)) => panic!("{what}: {e:?}"),
            Err(_) => panic!("{what}: no answer within {PATIENCE:?}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

async fn commands_recover_after_the_command_connection_is_killed(fx: Fixture) {
    let bus = open_redis(&fx).await;
    let mut sub: Subscription = bus.subscribe("c").await.unwrap();
    let old = bus.command_client_id().await.expect("command client id");
    assert_ne!(Some(old), bus.pubsub_client_id(), "two connections");
    assert_eq!(client_name(&fx, old).await.as_deref(), Some("helix-bus"));

    assert_eq!(kill_client(&fx, old).await, 1);

    with_retries("publish", || bus.publish("c", msg("after kill"))).await;
    with_retries("set", || bus.set("k", msg("after kill"), None)).await;
    // The pub/sub connection was not touched: no gap, just the message.
    assert_eq!(next_payload(&mut sub, "c").await, msg("after kill"));
    assert_eq!(bus.get("k").await.unwrap(), Some(msg("after kill")));
    // Scripts run on the new connection too.
    let hit = bus.hit("r", 5, Duration::from_secs(3600)).await.unwrap();
    assert!(hit.allowed, "{hit:?}");
    let retention = Retention::default();
    let appended = bus.append("log", msg("x"), &retention).await.unwrap();
    assert_eq!(appended.offset, 1);
    let new = bus.command_client_id().await.expect("command client id");
    assert_ne!(new, old, "a new command connection");
    eventually("the new command connection is named", || async {
        (client_name(&fx, new).await.as_deref() == Some("helix-bus")).then_some(())
    })
    .await;
}

/// What a Redis restart does to a bus: both its connections go at once. Subscribers hear about
/// the gap, and every kind of call works again after a bounded number of retries.
async fn recovers_after_losing_every_connection(fx: Fixture) {
    let bus = open_redis(&fx).await;
    let mut sub = bus.subscribe("c").await.unwrap();
    let pubsub = bus.pubsub_client_id().expect("connected");
    let command = bus.command_client_id().await.expect("command client id");

    assert_eq!(kill_client(&fx, pubsub).await, 1);
    assert_eq!(kill_client(&fx, command).await, 1);

    assert_eq!(next_event(&mut sub).await, Event::Resubscribed);
    with_retries("ping", || bus.ping()).await;
    with_retries("publish", || bus.publish("c", msg("back"))).await;
    assert_eq!(next_payload(&mut sub, "c").await, msg("back"));
    with_retries("set", || bus.set("k", msg("back"), None)).await;
    let value = with_retries("get", || bus.get("k")).await;
    assert_eq!(value, Some(msg("back")));
    let hit = with_retries("hit", || bus.hit("r", 5, Duration::from_secs(3600))).await;
    assert!(hit.allowed, "{hit:?}");
    let retention = Retention::default();
    let appended = with_retries("append", || bus.append("log", msg("back"), &retention)).await;
    let since = Since::default();
    let entries = with_retries("replay", || bus.replay("log", &since, &retention)).await;
    assert_eq!(replayed(Ok(entries)), [(appended.offset, msg("back"))]);
}

/// `close` ends the pub/sub connection; dropping the bus ends the command connection too, so a
/// process that opens and drops buses does not pile up connections on Redis.
async fn close_and_drop_release_the_connections(fx: Fixture) {
    let bus = open_redis(&fx).await;
    let _sub = bus.subscribe("c").await.unwrap();
    let pubsub = bus.pubsub_client_id().expect("connected");
    let command = bus.command_client_id().await.expect("command client id");
    assert!(client_name(&fx, pubsub).await.is_some());
    assert!(client_name(&fx, command).await.is_some());

    bus.close().await;
    eventually("the pub/sub connection is gone after close", || async {
        client_name(&fx, pubsub).await.is_none().then_some(())
    })
    .await;
    drop(bus);
    eventually("the command connection is gone after drop", || async {
        client_name(&fx, command).await.is_none().then_some(())
    })
    .await;
}
