//! The `History` half of the contract, on every backend (`history::memory::<name>`,
//! `history::redis::<name>`, `history::redis_only::<name>`): offsets, the published envelope,
//! replay, and the three ways a replay no longer reaches back (count, age, epoch).

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use helix_bus::{Bus, Envelope, Event, Position, Replay, Retention, Since, Subscription};

use crate::support::{next_payload, Fixture};

on_every_backend!(
    appends_take_consecutive_offsets_and_publish_envelopes,
    a_replay_returns_exactly_what_was_missed,
    a_replay_past_the_kept_count_is_a_gap,
    a_replay_past_the_kept_age_is_a_gap,
    a_replay_from_another_epoch_is_a_gap,
    head_of_an_unknown_channel_is_empty,
    concurrent_appends_get_distinct_consecutive_offsets,
);

on_redis_only!(instances_sharing_a_prefix_share_one_log,);

const KEEP_10: Retention = Retention {
    max_messages: 10,
    max_age: Duration::from_secs(300),
};

fn data(n: u64) -> Bytes {
    Bytes::from(format!("{{\"n\":{n}}}"))
}

async fn append_n(bus: &dyn Bus, channel: &str, n: u64) -> Position {
    let mut last = Position::default();
    for i in 1..=n {
        last = bus
            .append(channel, data(i), &KEEP_10)
            .await
            .expect("append");
    }
    last
}

fn since(epoch: &str, offset: u64) -> Since {
    Since {
        epoch: epoch.into(),
        offset,
    }
}

fn offsets(replay: &Replay) -> Vec<u64> {
    match replay {
        Replay::Complete { entries, .. } => entries.iter().map(|e| e.offset).collect(),
        Replay::Gap { head } => panic!("expected entries, got a gap at {head:?}"),
    }
}

async fn next_envelope(sub: &mut Subscription, channel: &str) -> Envelope {
    let payload = next_payload(sub, channel).await;
    Envelope::parse(&payload).expect("an envelope")
}

async fn appends_take_consecutive_offsets_and_publish_envelopes(fx: Fixture) {
    let bus = fx.open().await;
    let mut sub = bus.subscribe("room").await.expect("subscribe");
    let first = bus.append("room", data(1), &KEEP_10).await.expect("append");
    let second = bus.append("room", data(2), &KEEP_10).await.expect("append");
    assert_eq!((first.offset, second.offset), (1, 2));
    assert_eq!(first.epoch, second.epoch);
    assert_eq!(first.epoch.len(), 16, "an epoch of 16 hex digits");
    for (expected, position) in [(1, &first), (2, &second)] {
        let envelope = next_envelope(&mut sub, "room").await;
        assert_eq!(
            (envelope.epoch.as_str(), envelope.offset, envelope.data),
            (position.epoch.as_str(), position.offset, data(expected))
        );
    }
    assert_eq!(bus.head("room").await.expect("head"), second);
}

async fn a_replay_returns_exactly_what_was_missed(fx: Fixture) {
    let bus = fx.open().await;
    let head = append_n(&*bus, "room", 5).await;
    let replay = bus
        .replay("room", &since(&head.epoch, 2), &KEEP_10)
        .await
        .expect("replay");
    assert_eq!(offsets(&replay), vec![3, 4, 5]);
    assert_eq!(replay.head(), &head);
    let Replay::Complete { entries, .. } = &replay else {
        unreachable!()
    };
    assert_eq!(entries[0].data, data(3));
    // Up to date, and a client that never saw anything: everything kept.
    let up_to_date = bus.replay("room", &since(&head.epoch, 5), &KEEP_10).await;
    assert_eq!(offsets(&up_to_date.expect("replay")), Vec::<u64>::new());
    let from_start = bus.replay("room", &since("", 0), &KEEP_10).await;
    assert_eq!(offsets(&from_start.expect("replay")), vec![1, 2, 3, 4, 5]);
}

async fn a_replay_past_the_kept_count_is_a_gap(fx: Fixture) {
    let bus = fx.open().await;
    let head = append_n(&*bus, "room", 15).await;
    // Ten kept: 6..=15. Offset 5 was seen, so 6 onwards is complete; 4 is not.
    let complete = bus.replay("room", &since(&head.epoch, 5), &KEEP_10).await;
    assert_eq!(
        offsets(&complete.expect("replay")),
        (6..=15).collect::<Vec<_>>()
    );
    let gap = bus.replay("room", &since(&head.epoch, 4), &KEEP_10).await;
    assert_eq!(gap.expect("replay"), Replay::Gap { head });
}

async fn a_replay_past_the_kept_age_is_a_gap(fx: Fixture) {
    let bus = fx.open().await;
    let short = Retention {
        max_messages: 10,
        max_age: Duration::from_millis(200),
    };
    let old = bus.append("room", data(1), &short).await.expect("append");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fresh = bus.append("room", data(2), &short).await.expect("append");
    let gap = bus.replay("room", &since(&old.epoch, 0), &short).await;
    assert_eq!(
        gap.expect("replay"),
        Replay::Gap {
            head: fresh.clone()
        }
    );
    let complete = bus.replay("room", &since(&old.epoch, 1), &short).await;
    assert_eq!(offsets(&complete.expect("replay")), vec![2]);
}

async fn a_replay_from_another_epoch_is_a_gap(fx: Fixture) {
    let bus = fx.open().await;
    let head = append_n(&*bus, "room", 3).await;
    let gap = bus
        .replay("room", &since("0123456789abcdef", 1), &KEEP_10)
        .await;
    assert_eq!(gap.expect("replay"), Replay::Gap { head: head.clone() });
    // An offset beyond the head cannot be from this epoch either.
    let ahead = bus.replay("room", &since("", 9), &KEEP_10).await;
    assert_eq!(ahead.expect("replay"), Replay::Gap { head });
}

async fn head_of_an_unknown_channel_is_empty(fx: Fixture) {
    let bus = fx.open().await;
    assert_eq!(bus.head("nobody").await.expect("head"), Position::default());
    let empty = bus.replay("nobody", &since("", 0), &KEEP_10).await;
    assert_eq!(offsets(&empty.expect("replay")), Vec::<u64>::new());
    let gap = bus
        .replay("nobody", &since("0123456789abcdef", 4), &KEEP_10)
        .await;
    assert!(matches!(gap.expect("replay"), Replay::Gap { .. }));
}

async fn concurrent_appends_get_distinct_consecutive_offsets(fx: Fixture) {
    let bus = fx.open().await;
    let mut sub = bus.subscribe("room").await.expect("subscribe");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let bus = bus.clone();
            tokio::spawn(async move { append_n(&*bus, "room", 25).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("appender");
    }
    // Every subscriber sees offsets 1..=200 in order: appends are serialised with publishing.
    for expected in 1..=200 {
        let envelope = next_envelope(&mut sub, "room").await;
        assert_eq!(envelope.offset, expected);
    }
}

async fn instances_sharing_a_prefix_share_one_log(fx: Fixture) {
    let (a, b) = (fx.open().await, fx.open().await);
    let mut sub = b.subscribe("room").await.expect("subscribe");
    let first = a.append("room", data(1), &KEEP_10).await.expect("append");
    let second = b.append("room", data(2), &KEEP_10).await.expect("append");
    assert_eq!((first.offset, second.offset), (1, 2));
    let mut seen = HashSet::new();
    for _ in 0..2 {
        match crate::support::next_event(&mut sub).await {
            Event::Message(m) => {
                seen.insert(Envelope::parse(&m.payload).expect("envelope").offset);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, HashSet::from([1, 2]));
    let replay = a.replay("room", &since(&first.epoch, 0), &KEEP_10).await;
    assert_eq!(offsets(&replay.expect("replay")), vec![1, 2]);
}
