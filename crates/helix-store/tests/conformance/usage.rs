//! The `Usage` contract on every backend: batches stored all or nothing, sums per UTC day and model
//! within a half-open range, and the monthly token counter kept exact by the batches themselves
//! (across months, out-of-order rows and concurrent batches), read back with the day's messages in
//! one quota status.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use helix_store::conversations::{Appended, DailyLimit, MessageRole, NewConversation, NewMessage};
use helix_store::subscriptions::Tier;
use helix_store::usage::{QuotaStatus, UsageDay, UsageRow};
use helix_store::Store;
use serde_json::json;
use uuid::Uuid;

use crate::accounts::signup;
use crate::support::Db;

on_every_backend!(
    a_batch_is_summed_per_day_and_model_within_the_range,
    a_batch_with_an_unknown_user_stores_nothing,
    the_token_counter_follows_the_month_of_each_row,
    concurrent_batches_keep_the_token_counter_exact,
    quota_status_reads_tier_messages_and_tokens_in_one_row,
);

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("a date")
}

fn call(user_id: Uuid, model: &str, when: &str, tokens_in: i64, tokens_out: i64) -> UsageRow {
    UsageRow {
        user_id,
        api_key_id: None,
        endpoint: "/v1/messages".into(),
        model: model.into(),
        tokens_in,
        tokens_out,
        cost_micros: tokens_in * 3 + tokens_out * 15,
        at: at(when),
    }
}

async fn user(store: &dyn Store) -> Uuid {
    signup(store, &format!("{}@example.com", Uuid::new_v4()))
        .await
        .0
        .id
}

async fn tokens(store: &dyn Store, user_id: Uuid, on: &str) -> i64 {
    let status = store.usage().quota_status(user_id, day(on)).await.unwrap();
    status.expect("a live user").tokens_this_month
}

async fn a_batch_is_summed_per_day_and_model_within_the_range(db: Db) {
    let store = db.open_migrated().await;
    let (alice, bob) = (user(&*store).await, user(&*store).await);
    let mut with_key = call(alice, "opus", "2026-03-01T23:59:59.999999Z", 10, 20);
    with_key.api_key_id = Some(Uuid::new_v4());
    let rows = vec![
        call(alice, "opus", "2026-03-01T00:00:00Z", 1, 2),
        with_key,
        call(alice, "haiku", "2026-03-01T12:00:00Z", 100, 200),
        call(alice, "opus", "2026-03-02T00:00:00Z", 1000, 2000),
        call(alice, "opus", "2026-03-03T00:00:00Z", 7, 7),
        call(bob, "opus", "2026-03-01T12:00:00Z", 5, 5),
    ];

    store.usage().record_usage(&rows).await.expect("record");

    let summary = store
        .usage()
        .usage_summary(
            alice,
            at("2026-03-01T00:00:00Z"),
            at("2026-03-03T00:00:00Z"),
        )
        .await
        .unwrap();
    let row = |d: &str, model: &str, calls, tokens_in, tokens_out| UsageDay {
        day: day(d),
        model: model.into(),
        calls,
        tokens_in,
        tokens_out,
        cost_micros: tokens_in * 3 + tokens_out * 15,
    };
    assert_eq!(
        summary,
        vec![
            row("2026-03-01", "haiku", 1, 100, 200),
            row("2026-03-01", "opus", 2, 11, 22),
            row("2026-03-02", "opus", 1, 1000, 2000),
        ],
        "grouped by UTC day then model; `to` is exclusive; bob's row is not alice's"
    );
    let bobs = store
        .usage()
        .usage_summary(bob, at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(bobs, vec![row("2026-03-01", "opus", 1, 5, 5)]);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM usage_tracking").await, 6);
    let keyed = "SELECT COUNT(*) FROM usage_tracking WHERE api_key_id IS NOT NULL";
    assert_eq!(db.scalar(keyed).await, 1);
}

async fn a_batch_with_an_unknown_user_stores_nothing(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let rows = vec![
        call(alice, "opus", "2026-03-01T00:00:00Z", 1, 2),
        call(Uuid::new_v4(), "opus", "2026-03-01T00:00:00Z", 1, 2),
    ];

    let recorded = store.usage().record_usage(&rows).await;

    assert!(recorded.is_err(), "{recorded:?}");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM usage_tracking").await, 0);
    assert_eq!(
        tokens(&*store, alice, "2026-03-01").await,
        0,
        "counter untouched"
    );
    store
        .usage()
        .record_usage(&[])
        .await
        .expect("an empty batch is fine");
}

async fn the_token_counter_follows_the_month_of_each_row(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let usage = store.usage();
    usage
        .record_usage(&[
            call(alice, "opus", "2026-02-27T10:00:00Z", 100, 50),
            call(alice, "opus", "2026-02-28T23:59:59Z", 10, 0),
        ])
        .await
        .unwrap();
    assert_eq!(tokens(&*store, alice, "2026-02-28").await, 160);

    // A batch that crosses into March, with a February row flushed after March began.
    usage
        .record_usage(&[
            call(alice, "opus", "2026-03-01T00:00:01Z", 7, 0),
            call(alice, "opus", "2026-02-28T23:59:59.5Z", 1000, 0),
        ])
        .await
        .unwrap();
    assert_eq!(
        tokens(&*store, alice, "2026-03-01").await,
        7,
        "a new month starts at 0"
    );
    assert_eq!(
        tokens(&*store, alice, "2026-02-28").await,
        0,
        "the counter moved on"
    );

    // A February row arriving after the counter moved on is stored but not counted in March.
    usage
        .record_usage(&[call(alice, "opus", "2026-02-28T12:00:00Z", 5, 5)])
        .await
        .unwrap();
    assert_eq!(tokens(&*store, alice, "2026-03-15").await, 7);
    assert_eq!(
        tokens(&*store, alice, "2026-04-01").await,
        0,
        "read in April: nothing yet"
    );
    let february = usage
        .usage_summary(
            alice,
            at("2026-02-01T00:00:00Z"),
            at("2026-03-01T00:00:00Z"),
        )
        .await
        .unwrap();
    let stored: i64 = february.iter().map(|d| d.tokens_in + d.tokens_out).sum();
    assert_eq!(stored, 160 + 1000 + 10, "every row is stored all the same");
}

async fn concurrent_batches_keep_the_token_counter_exact(db: Db) {
    let store = db.open_migrated().await;
    let (alice, bob) = (user(&*store).await, user(&*store).await);
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            // Each batch touches both users, in either order, as two instances' batches would.
            let (first, second) = if n % 2 == 0 {
                (alice, bob)
            } else {
                (bob, alice)
            };
            let rows = vec![
                call(first, "opus", "2026-05-10T00:00:00Z", 1, 2),
                call(second, "opus", "2026-05-10T00:00:00Z", 10, 20),
            ];
            store.usage().record_usage(&rows).await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("record");
    }

    let (a, b) = (
        tokens(&*store, alice, "2026-05-31").await,
        tokens(&*store, bob, "2026-05-31").await,
    );
    assert_eq!(a + b, 16 * 33);
    assert_eq!((a, b), (8 * 33, 8 * 33));
}

async fn quota_status_reads_tier_messages_and_tokens_in_one_row(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let today = day("2026-06-15");
    let (conv, _) = store
        .conversations()
        .create_conversation(
            alice,
            &NewConversation {
                session_key: None,
                title: "t".into(),
            },
        )
        .await
        .unwrap();
    let message = NewMessage {
        role: MessageRole::User,
        content: "hi".into(),
        client_id: None,
        metadata: json!({}),
    };
    for _ in 0..3 {
        let daily = DailyLimit {
            day: today,
            limit: None,
        };
        let appended = store
            .conversations()
            .append_message(alice, conv.id, &message, daily)
            .await
            .unwrap();
        assert!(matches!(appended, Appended::New { .. }));
    }
    store
        .usage()
        .record_usage(&[call(alice, "opus", "2026-06-01T00:00:00Z", 40, 2)])
        .await
        .unwrap();

    let status = store.usage().quota_status(alice, today).await.unwrap();
    assert_eq!(
        status,
        Some(QuotaStatus {
            tier: Tier::Free,
            messages_today: 3,
            tokens_this_month: 42,
        })
    );
    let tomorrow = today.succ_opt().unwrap();
    let next = store.usage().quota_status(alice, tomorrow).await.unwrap();
    assert_eq!(next.unwrap().messages_today, 0, "a new day counts from 0");
    let unknown = store.usage().quota_status(Uuid::new_v4(), today).await;
    assert!(matches!(unknown, Ok(None)), "{unknown:?}");
}
