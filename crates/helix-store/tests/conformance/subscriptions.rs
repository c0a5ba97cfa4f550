//! The `Subscriptions` contract on every backend: a Stripe event is recorded and applied in one
//! transaction, at most once per id (also when delivered twice at once); the first event of a
//! customer finds its user by the id the subscription names, later ones by customer; events for
//! nobody, of other types or older than what was applied are recorded and change nothing.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use helix_store::subscriptions::{BillingChange, EventOutcome, StripeEvent, Tier};
use helix_store::Store;
use uuid::Uuid;

use crate::accounts::signup;
use crate::support::Db;

on_every_backend!(
    the_first_event_names_the_user_and_later_ones_find_them_by_customer,
    a_replayed_event_changes_nothing,
    the_same_event_delivered_twice_at_once_is_applied_once,
    an_unknown_customer_is_recorded_and_changes_nothing,
    other_types_are_recorded_as_ignored,
    an_older_event_arriving_late_does_not_undo_a_newer_one,
    a_failed_payment_marks_past_due_and_keeps_the_tier,
    the_end_of_a_replaced_subscription_keeps_the_new_one,
);

fn t0() -> DateTime<Utc> {
    "2026-04-01T10:00:00Z".parse().unwrap()
}

fn subscription_event(
    id: &str,
    customer: &str,
    hint: Option<Uuid>,
    tier: Tier,
    status: &str,
    created: DateTime<Utc>,
) -> StripeEvent {
    StripeEvent {
        id: id.into(),
        kind: "customer.subscription.updated".into(),
        created,
        change: Some(BillingChange::Subscription {
            customer_id: customer.into(),
            subscription_id: "sub_1".into(),
            user_hint: hint,
            status: status.into(),
            tier,
            current_period_end: Some(created + TimeDelta::days(30)),
        }),
    }
}

async fn user(store: &dyn Store) -> Uuid {
    signup(store, &format!("{}@example.com", Uuid::new_v4()))
        .await
        .0
        .id
}

async fn tier_of(store: &dyn Store, user_id: Uuid) -> Tier {
    let today = Utc::now().date_naive();
    let status = store.usage().quota_status(user_id, today).await.unwrap();
    status.expect("a live user").tier
}

async fn apply(store: &dyn Store, event: &StripeEvent) -> EventOutcome {
    store
        .subscriptions()
        .apply_stripe_event(event)
        .await
        .expect("apply")
}

async fn the_first_event_names_the_user_and_later_ones_find_them_by_customer(db: Db) {
    let store = db.open_migrated().await;
    let (alice, mallory) = (user(&*store).await, user(&*store).await);
    let created = subscription_event("evt_1", "cus_A", Some(alice), Tier::Pro, "active", t0());

    assert_eq!(
        apply(&*store, &created).await,
        EventOutcome::Applied { user_id: alice }
    );

    assert_eq!(tier_of(&*store, alice).await, Tier::Pro);
    let subs = store.subscriptions();
    assert_eq!(subs.user_by_customer("cus_A").await.unwrap(), Some(alice));
    let sub = subs.subscription(alice).await.unwrap().expect("a row");
    assert_eq!(
        (
            sub.stripe_customer_id.as_str(),
            sub.status.as_str(),
            sub.tier
        ),
        ("cus_A", "active", Tier::Pro)
    );
    assert_eq!(sub.current_period_end, Some(t0() + TimeDelta::days(30)));
    // Later events find alice by customer, whoever their metadata names.
    let later = t0() + TimeDelta::minutes(5);
    let upgrade = subscription_event(
        "evt_2",
        "cus_A",
        Some(mallory),
        Tier::Enterprise,
        "active",
        later,
    );
    assert_eq!(
        apply(&*store, &upgrade).await,
        EventOutcome::Applied { user_id: alice }
    );
    assert_eq!(tier_of(&*store, alice).await, Tier::Enterprise);
    assert_eq!(tier_of(&*store, mallory).await, Tier::Free);
    let recorded = subs.stripe_event("evt_2").await.unwrap().expect("recorded");
    assert_eq!(
        (
            recorded.outcome.as_str(),
            recorded.user_id,
            recorded.customer_id.as_deref()
        ),
        ("applied", Some(alice), Some("cus_A"))
    );
    assert_eq!(recorded.created_at, later);
}

async fn a_replayed_event_changes_nothing(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let pro = subscription_event("evt_pro", "cus_A", Some(alice), Tier::Pro, "active", t0());
    apply(&*store, &pro).await;
    let later = t0() + TimeDelta::minutes(1);
    let canceled = subscription_event("evt_cancel", "cus_A", None, Tier::Free, "canceled", later);
    apply(&*store, &canceled).await;

    // The pro event again, even stamped as new, is known by its id.
    let mut replay = pro.clone();
    replay.created = t0() + TimeDelta::hours(1);
    assert_eq!(apply(&*store, &replay).await, EventOutcome::Duplicate);

    assert_eq!(tier_of(&*store, alice).await, Tier::Free);
    let sub = store
        .subscriptions()
        .subscription(alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (sub.status.as_str(), sub.last_event_at),
        ("canceled", later)
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM stripe_events").await, 2);
}

async fn the_same_event_delivered_twice_at_once_is_applied_once(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let event = subscription_event("evt_race", "cus_A", Some(alice), Tier::Pro, "active", t0());
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (store, event) = (Arc::clone(&store), event.clone());
        tasks.push(tokio::spawn(async move {
            store.subscriptions().apply_stripe_event(&event).await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().expect("apply"));
    }

    let applied = outcomes
        .iter()
        .filter(|o| **o == EventOutcome::Applied { user_id: alice });
    assert_eq!(applied.count(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .filter(|o| **o != EventOutcome::Applied { user_id: alice })
            .all(|o| *o == EventOutcome::Duplicate),
        "{outcomes:?}"
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM stripe_events").await, 1);
    assert_eq!(tier_of(&*store, alice).await, Tier::Pro);
}

async fn an_unknown_customer_is_recorded_and_changes_nothing(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let nobody = subscription_event("evt_x", "cus_X", None, Tier::Pro, "active", t0());
    let stranger = Some(Uuid::new_v4());
    let ghost = subscription_event("evt_y", "cus_Y", stranger, Tier::Pro, "active", t0());

    assert_eq!(apply(&*store, &nobody).await, EventOutcome::UnknownCustomer);
    assert_eq!(apply(&*store, &ghost).await, EventOutcome::UnknownCustomer);
    assert_eq!(
        apply(&*store, &nobody).await,
        EventOutcome::Duplicate,
        "acknowledged once"
    );

    let recorded = store
        .subscriptions()
        .stripe_event("evt_x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            recorded.outcome.as_str(),
            recorded.customer_id.as_deref(),
            recorded.user_id
        ),
        ("unknown_customer", Some("cus_X"), None)
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM subscriptions").await, 0);
    assert_eq!(tier_of(&*store, alice).await, Tier::Free);
}

async fn other_types_are_recorded_as_ignored(db: Db) {
    let store = db.open_migrated().await;
    let event = StripeEvent {
        id: "evt_charge".into(),
        kind: "charge.succeeded".into(),
        created: t0(),
        change: None,
    };

    assert_eq!(apply(&*store, &event).await, EventOutcome::Ignored);
    assert_eq!(apply(&*store, &event).await, EventOutcome::Duplicate);

    let recorded = store
        .subscriptions()
        .stripe_event("evt_charge")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (recorded.kind.as_str(), recorded.outcome.as_str()),
        ("charge.succeeded", "ignored")
    );
    assert!(store
        .subscriptions()
        .stripe_event("evt_none")
        .await
        .unwrap()
        .is_none());
}

async fn an_older_event_arriving_late_does_not_undo_a_newer_one(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let newer = t0() + TimeDelta::minutes(10);
    let deleted = subscription_event(
        "evt_del",
        "cus_A",
        Some(alice),
        Tier::Free,
        "canceled",
        newer,
    );
    apply(&*store, &deleted).await;

    let older = subscription_event("evt_upd", "cus_A", Some(alice), Tier::Pro, "active", t0());

    assert_eq!(
        apply(&*store, &older).await,
        EventOutcome::Stale { user_id: alice }
    );
    assert_eq!(tier_of(&*store, alice).await, Tier::Free);
    let sub = store
        .subscriptions()
        .subscription(alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.status, "canceled");
    let recorded = store
        .subscriptions()
        .stripe_event("evt_upd")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.outcome, "stale");
}

async fn a_failed_payment_marks_past_due_and_keeps_the_tier(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    apply(
        &*store,
        &subscription_event("evt_1", "cus_A", Some(alice), Tier::Pro, "active", t0()),
    )
    .await;
    let failed = |id: &str, customer: &str| StripeEvent {
        id: id.into(),
        kind: "invoice.payment_failed".into(),
        created: t0() + TimeDelta::days(30),
        change: Some(BillingChange::PaymentFailed {
            customer_id: customer.into(),
            status: "past_due".into(),
        }),
    };

    let outcome = apply(&*store, &failed("evt_2", "cus_A")).await;

    assert_eq!(outcome, EventOutcome::Applied { user_id: alice });
    let sub = store
        .subscriptions()
        .subscription(alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((sub.status.as_str(), sub.tier), ("past_due", Tier::Pro));
    assert_eq!(tier_of(&*store, alice).await, Tier::Pro);
    let unknown = apply(&*store, &failed("evt_3", "cus_nobody")).await;
    assert_eq!(unknown, EventOutcome::UnknownCustomer);
}

/// A customer moves from sub_1 to sub_2; sub_1's cancellation, sent later than sub_2's creation,
/// must not drop them to free.
async fn the_end_of_a_replaced_subscription_keeps_the_new_one(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let first = subscription_event("evt_1", "cus_A", Some(alice), Tier::Pro, "active", t0());
    apply(&*store, &first).await;
    let mut second = subscription_event(
        "evt_2",
        "cus_A",
        Some(alice),
        Tier::Enterprise,
        "active",
        t0() + TimeDelta::minutes(1),
    );
    if let Some(BillingChange::Subscription {
        subscription_id, ..
    }) = &mut second.change
    {
        *subscription_id = "sub_2".into();
    }
    assert_eq!(
        apply(&*store, &second).await,
        EventOutcome::Applied { user_id: alice }
    );
    let old_ends = subscription_event(
        "evt_3",
        "cus_A",
        Some(alice),
        Tier::Free,
        "canceled",
        t0() + TimeDelta::minutes(2),
    );
    assert_eq!(
        apply(&*store, &old_ends).await,
        EventOutcome::Stale { user_id: alice }
    );
    assert_eq!(tier_of(&*store, alice).await, Tier::Enterprise);
}
