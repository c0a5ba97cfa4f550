//! The `Webhooks` contract on every backend: events stored once per source and id (also within a
//! batch), subscriptions matched by event type, deliveries created once per event and endpoint,
//! attempts appended while pending, unsubscribes and disables ending pending deliveries, and
//! replays.

use helix_store::webhooks::{
    Attempt, AttemptRecord, DeliveryFilter, DeliveryStatus, Event, Recorded, Subscription,
    SubscriptionStatus,
};
use uuid::Uuid;

use crate::support::Db;

on_every_backend!(
    events_are_stored_once_per_source_and_id,
    events_are_listed_newest_first,
    subscriptions_match_their_event_types,
    deliveries_are_created_once_per_event_and_endpoint,
    attempts_are_appended_while_pending,
    unsubscribing_cancels_pending_deliveries,
    disabling_ends_pending_deliveries_and_replays_need_an_active_endpoint,
    failure_runs_start_once_and_clear_on_success,
    attempts_are_recorded_in_batches,
);

fn event(source: &str, event_id: &str, event_type: &str) -> Event {
    Event {
        id: Uuid::now_v7(),
        source: source.into(),
        event_id: event_id.into(),
        event_type: event_type.into(),
        payload: format!(r#"{{"id":"{event_id}"}}"#),
        received_us: 1_700_000_000_000_000,
    }
}

fn subscription(owner: Uuid, types: &[&str]) -> Subscription {
    Subscription {
        id: Uuid::now_v7(),
        owner,
        target_url: "https://example.com/hook".into(),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        secret: "whsec_c2VjcmV0".into(),
        status: SubscriptionStatus::Active,
        disabled_reason: None,
        failing_since_us: None,
        created_us: 1,
        updated_us: 1,
    }
}

fn attempt(n: u32, code: Option<u16>) -> Attempt {
    Attempt {
        n,
        at_us: 1_000 + i64::from(n),
        status_code: code,
        duration_ms: 3,
        error: code.filter(|c| *c >= 300).map(|c| format!("HTTP {c}")),
    }
}

async fn events_are_stored_once_per_source_and_id(db: Db) {
    let store = db.open_migrated().await;
    let hooks = store.webhooks();
    let a = event("zapier", "e1", "lead.created");
    let first = hooks.record_events(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(first, vec![Recorded::New(a.id)]);

    let again = event("zapier", "e1", "lead.created");
    let other_source = event("github", "e1", "push");
    let twin = event("github", "e1", "push");
    let got = hooks
        .record_events(&[again, other_source.clone(), twin])
        .await
        .unwrap();

    assert_eq!(
        got,
        vec![
            Recorded::Duplicate(a.id),
            Recorded::New(other_source.id),
            Recorded::Duplicate(other_source.id),
        ]
    );
    let stored = hooks.event(a.id).await.unwrap().unwrap();
    assert_eq!(stored, a);
    assert!(hooks.event(Uuid::now_v7()).await.unwrap().is_none());
}

async fn events_are_listed_newest_first(db: Db) {
    let store = db.open_migrated().await;
    let hooks = store.webhooks();
    let batch: Vec<_> = (0..5)
        .map(|n| event(if n % 2 == 0 { "a" } else { "b" }, &n.to_string(), "t"))
        .collect();
    hooks.record_events(&batch).await.unwrap();

    let all = hooks.list_events(None, None, 10).await.unwrap();
    let ids: Vec<_> = all.iter().map(|e| e.id).collect();
    let mut expected: Vec<_> = batch.iter().map(|e| e.id).collect();
    expected.reverse();
    assert_eq!(ids, expected);
    let of_a = hooks.list_events(Some("a"), None, 10).await.unwrap();
    assert_eq!(of_a.len(), 3);
    let page = hooks.list_events(None, Some(ids[1]), 2).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[2..4].to_vec()
    );
}

async fn subscriptions_match_their_event_types(db: Db) {
    let store = db.open_migrated().await;
    let hooks = store.webhooks();
    let owner = Uuid::now_v7();
    let leads = subscription(owner, &["lead.created"]);
    let all = subscription(Uuid::now_v7(), &["*"]);
    let mut off = subscription(owner, &["lead.created"]);
    off.status = SubscriptionStatus::Disabled;
    for s in [&leads, &all, &off] {
        hooks.create_subscription(s).await.unwrap();
    }

    let active = hooks.active_subscriptions().await.unwrap();
    let matching =
        |t: &str| -> Vec<_> { active.iter().filter(|s| s.wants(t)).map(|s| s.id).collect() };
    assert_eq!(matching("lead.created"), vec![leads.id, all.id]);
    assert_eq!(matching("push"), vec![all.id]);
    assert_eq!(hooks.subscription(leads.id).await.unwrap().unwrap(), leads);
    let mine = hooks.list_subscriptions(Some(owner)).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(hooks.list_subscriptions(None).await.unwrap().len(), 3);
}

async fn deliveries_are_created_once_per_event_and_endpoint(db: Db) {
    let store = db.open_migrated().await;
    let hooks = store.webhooks();
    let e = event("zapier", "e1", "t");
    hooks.record_events(std::slice::from_ref(&e)).await.unwrap();
    let s1 = subscription(Uuid::now_v7(), &["*"]);
    let s2 = subscription(Uuid::now_v7(), &["*"]);
    for s in [&s1, &s2] {
        hooks.create_subscription(s).await.unwrap();
    }

    let first = hooks
        .create_deliveries(&e, &[s1.clone(), s2.clone()], 5)
        .await
        .unwrap();
    let second = hooks
        .create_deliveries(&e, std::slice::from_ref(&s2), 9)
        .await
        .unwrap();

    assert_eq!(first.len(), 2);
    assert_eq!(second, vec![first[1]]);
    let d = hooks.delivery(first[0]).await.unwrap().unwrap();
    assert_eq!(
        (d.subscription_id, d.owner, d.event_id, d.status),
        (s1.id, s1.owner, e.id, DeliveryStatus::Pending)
    );
    assert!(d.attempts.is_empty());
    let of_s2 = hooks
        .list_deliveries(&DeliveryFilter {
            subscription_id: Some(s2.id),
            limit: 10,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(of_s2.len(), 1);
}

/// One event delivered to one fresh endpoint: (delivery id, subscription).
async fn one_delivery(hooks: &dyn helix_store::Webhooks) -> (Uuid, Subscription) {
    let e = event("zapier", &Uuid::now_v7().to_string(), "t");
    hooks.record_events(std::slice::from_ref(&e)).await.unwrap();
    let s = subscription(Uuid::now_v7(), &["*"]);
    hooks.create_subscription(&s).await.unwrap();
    let ids = hooks
        .create_deliveries(&e, std::slice::from_ref(&s), 5)
        .await
        .unwrap();
    (ids[0], s)
}

async fn attempts_are_appended_while_pending(db: Db) {
    let store = db.open_migrated().await;
    let hooks = store.webhooks();
    let (id, _) = one_delivery(hooks).await;

    let failed = AttemptRecord {
        attempt: attempt(1, Some(500)),
        status: DeliveryStatus::Pending,
        next_attempt_us: Some(9_000),
    };
    let ok = AttemptRecord {
        attempt: attempt(2, Some(204)),
        status: DeliveryStatus::Succeeded,
        next_attempt_us: None,
    };
    assert!(hooks.record_attempt(id, &failed).await.unwrap());
    assert!(hooks.record_attempt(id, &ok).await.unwrap());
    assert!(
        !hooks.record_attempt(id, &ok).await.unwrap(),
        "a finished delivery takes no attempt"
    );

    let d = hooks.delivery(id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Succeeded);
    assert_eq!(d.attempts, vec![failed.attempt, ok.attempt]);
    assert_eq!(d.attempt_count, 2);
    assert_eq!(d.next_attempt_us, None);
    let context = hooks.delivery_context(id).await.unwrap().unwrap();
    assert_eq!(context.delivery, d);
    assert_eq!(context.subscription.unwrap().id, d.subscription_id);
    assert_eq!(context.event.unwrap().id, d.event_id);
    assert!(hooks
        .delivery_context(Uuid::now_v7())
        .await
        .unwrap()
        .is_none());
    let succeeded = hooks
        .list_deliveries(&DeliveryFilter {
            status: Some(DeliveryStatus::Succeeded),
            limit: 10,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(succeeded.len(), 1);
}

async fn unsubscribing_cancels_pending_deliveries(db: Db) {
    let store = db.open_migrated().await;
    let hooks = store.webhooks();
    let (id, s) = one_delivery(hooks).await;

    assert!(
        !hooks
            .delete_subscription(s.id, Some(Uuid::now_v7()))
            .await
            .unwrap(),
        "someone else's subscription"
    );
    assert!(hooks
        .delete_subscription(s.id, Some(s.owner))
        .await
        .unwrap());
    assert!(!hooks.delete_subscription(s.id, None).await.unwrap());

    assert!(hooks.subscription(s.id).await.unwrap().is_none());
    let d = hooks.delivery(id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Cancelled);
    let orphan = hooks.delivery_context(id).await.unwrap().unwrap();
    assert!(orphan.subscription.is_none(), "the endpoint is gone");
    assert!(orphan.event.is_some());
    assert!(!hooks.reset_delivery(id, 10).await.unwrap());
}

async fn disabling_ends_pending_deliveries_and_replays_need_an_active_endpoint(db: Db) {
    let store = db.open_migrated().await;
    let hooks = store.webhooks();
    let (id, s) = one_delivery(hooks).await;
    let (done, other) = one_delivery(hooks).await;
    let ok = AttemptRecord {
        attempt: attempt(1, Some(200)),
        status: DeliveryStatus::Succeeded,
        next_attempt_us: None,
    };
    hooks.record_attempt(done, &ok).await.unwrap();

    assert!(hooks
        .disable_subscription(s.id, "410 Gone", DeliveryStatus::Gone, 7)
        .await
        .unwrap());
    assert!(!hooks
        .disable_subscription(s.id, "again", DeliveryStatus::Gone, 8)
        .await
        .unwrap());

    let sub = hooks.subscription(s.id).await.unwrap().unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Disabled);
    assert_eq!(sub.disabled_reason.as_deref(), Some("410 Gone"));
    assert_eq!(
        hooks.delivery(id).await.unwrap().unwrap().status,
        DeliveryStatus::Gone
    );
    assert!(!hooks.reset_delivery(id, 9).await.unwrap(), "endpoint off");
    assert!(hooks.reset_delivery(done, 9).await.unwrap(), "a replay");
    assert!(!hooks.reset_delivery(done, 9).await.unwrap(), "pending now");
    let replayed = hooks.delivery(done).await.unwrap().unwrap();
    assert_eq!(replayed.status, DeliveryStatus::Pending);
    assert_eq!(replayed.attempts.len(), 1, "its history stays");
    assert_eq!(replayed.subscription_id, other.id);
}

async fn failure_runs_start_once_and_clear_on_success(db: Db) {
    let store = db.open_migrated().await;
    let hooks = store.webhooks();
    let (_, s) = one_delivery(hooks).await;

    assert_eq!(
        hooks.mark_endpoint(s.id, false, 100).await.unwrap(),
        Some(100)
    );
    assert_eq!(
        hooks.mark_endpoint(s.id, false, 200).await.unwrap(),
        Some(100)
    );
    assert_eq!(hooks.mark_endpoint(s.id, true, 300).await.unwrap(), None);
    assert_eq!(
        hooks
            .subscription(s.id)
            .await
            .unwrap()
            .unwrap()
            .failing_since_us,
        None
    );
    assert_eq!(
        hooks.mark_endpoint(s.id, false, 400).await.unwrap(),
        Some(400)
    );
}

async fn attempts_are_recorded_in_batches(db: Db) {
    let store = db.open_migrated().await;
    let hooks = store.webhooks();
    let (a, _) = one_delivery(hooks).await;
    let (b, _) = one_delivery(hooks).await;
    let (c, _) = one_delivery(hooks).await;
    let done = AttemptRecord {
        attempt: attempt(1, Some(200)),
        status: DeliveryStatus::Succeeded,
        next_attempt_us: None,
    };
    let again = AttemptRecord {
        attempt: attempt(1, Some(503)),
        status: DeliveryStatus::Pending,
        next_attempt_us: Some(77),
    };
    hooks.record_attempt(c, &done).await.unwrap();

    let got = hooks
        .record_attempts(&[(a, done.clone()), (b, again.clone()), (c, again.clone())])
        .await
        .unwrap();

    assert_eq!(got, vec![true, true, false], "c had finished");
    let a = hooks.delivery(a).await.unwrap().unwrap();
    assert_eq!((a.status, a.attempt_count), (DeliveryStatus::Succeeded, 1));
    let b = hooks.delivery(b).await.unwrap().unwrap();
    assert_eq!(
        (b.status, b.next_attempt_us, b.attempts.clone()),
        (DeliveryStatus::Pending, Some(77), vec![again.attempt])
    );
    let c = hooks.delivery(c).await.unwrap().unwrap();
    assert_eq!(c.attempt_count, 1, "unchanged");
    assert!(hooks.record_attempts(&[]).await.unwrap().is_empty());
}
