//! Sessions and rotating refresh tokens on every backend: rotation, the grace window for two tabs,
//! reuse detection revoking the family, dead sessions, logout, and concurrent refreshes of one
//! token (which must agree on one truth).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use helix_store::accounts::{RefreshOutcome, Role};
use helix_store::audit::AuditEvent;
use helix_store::{Store, StoreError};
use uuid::Uuid;

use crate::accounts::{actions, entries, login, refresh_at, rotated, signup, GRACE};
use crate::support::Db;

on_every_backend!(
    refresh_rotates_tokens,
    refresh_within_grace_succeeds_again,
    reuse_after_grace_revokes_the_session,
    refresh_is_invalid_for_dead_sessions_and_changes_nothing,
    revoke_session_is_idempotent_and_audited_once,
    concurrent_refreshes_within_grace_all_rotate,
    concurrent_refreshes_without_grace_agree,
);

async fn refresh_rotates_tokens(db: Db) {
    let store = db.open_migrated().await;
    let (user, _) = signup(&*store, "ada@example.com").await;
    let t = Utc::now();
    let session = login(&*store, user.id, "t0", t + TimeDelta::days(30)).await;
    assert_eq!(
        store.accounts().session(session.id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        store.accounts().session(Uuid::new_v4()).await.unwrap(),
        None
    );

    let first = refresh_at(&*store, "t0", "t1", t).await;
    let second = refresh_at(&*store, "t1", "t2", t + TimeDelta::minutes(15)).await;

    let expected = RefreshOutcome::Rotated {
        session: session.clone(),
        role: Role::User,
    };
    assert_eq!((&first, &second), (&expected, &expected));
    assert_eq!(
        refresh_at(&*store, "nope", "t3", t).await,
        RefreshOutcome::Invalid
    );
    let taken = store.accounts().refresh("t2", "t1", t, GRACE).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert!(rotated(
        &refresh_at(&*store, "t2", "t3", t + TimeDelta::minutes(16)).await
    ));
    assert_eq!(
        actions(&*store).await,
        ["signup", "login"],
        "rotations are not audited"
    );
}

async fn refresh_within_grace_succeeds_again(db: Db) {
    let store = db.open_migrated().await;
    let (user, _) = signup(&*store, "ada@example.com").await;
    let t = Utc::now();
    login(&*store, user.id, "t0", t + TimeDelta::days(30)).await;

    let first = refresh_at(&*store, "t0", "t1", t).await;
    let second = refresh_at(&*store, "t0", "t2", t + TimeDelta::seconds(9)).await;

    assert!(rotated(&first) && rotated(&second), "{first:?} {second:?}");
    assert!(rotated(
        &refresh_at(&*store, "t2", "t3", t + TimeDelta::seconds(10)).await
    ));
    assert_eq!(actions(&*store).await, ["signup", "login"]);
}

async fn reuse_after_grace_revokes_the_session(db: Db) {
    let store = db.open_migrated().await;
    let (user, _) = signup(&*store, "ada@example.com").await;
    let t = Utc::now();
    let session = login(&*store, user.id, "t0", t + TimeDelta::days(30)).await;
    assert!(rotated(&refresh_at(&*store, "t0", "t1", t).await));

    let reused = refresh_at(&*store, "t0", "stolen", t + TimeDelta::seconds(10)).await;

    let detected = RefreshOutcome::ReuseDetected {
        session_id: session.id,
        user_id: user.id,
    };
    assert_eq!(reused, detected);
    let revoked = store.accounts().session(session.id).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    let later = t + TimeDelta::seconds(11);
    assert_eq!(
        refresh_at(&*store, "t1", "t2", later).await,
        RefreshOutcome::Invalid
    );
    assert_eq!(
        refresh_at(&*store, "stolen", "t3", later).await,
        RefreshOutcome::Invalid
    );
    assert_eq!(
        refresh_at(&*store, "t0", "t4", later).await,
        RefreshOutcome::Invalid
    );
    let log = entries(&*store).await;
    let last = log.last().unwrap();
    assert_eq!(log.len(), 3, "exactly one reuse entry: {log:?}");
    assert_eq!(
        (last.action.as_str(), last.actor),
        ("refresh_reuse_detected", Some(user.id))
    );
    assert_eq!(last.target, Some(format!("session:{}", session.id)));
}

async fn refresh_is_invalid_for_dead_sessions_and_changes_nothing(db: Db) {
    let store = db.open_migrated().await;
    let (ada, _) = signup(&*store, "ada@example.com").await;
    let (bob, _) = signup(&*store, "bob@example.com").await;
    let t = Utc::now();
    let accounts = store.accounts();
    login(&*store, ada.id, "expiring", t + TimeDelta::hours(1)).await;
    let revoked = login(&*store, ada.id, "revoked", t + TimeDelta::hours(1)).await;
    login(&*store, bob.id, "deleted", t + TimeDelta::hours(1)).await;
    accounts
        .revoke_session(revoked.id, AuditEvent::new("logout"))
        .await
        .unwrap();
    accounts
        .delete_user(bob.id, AuditEvent::new("user_deleted"))
        .await
        .unwrap();
    let before = entries(&*store).await.len();

    let expired = refresh_at(&*store, "expiring", "n1", t + TimeDelta::hours(1)).await;
    let of_revoked = refresh_at(&*store, "revoked", "n2", t).await;
    let of_deleted = refresh_at(&*store, "deleted", "n3", t).await;

    for outcome in [expired, of_revoked, of_deleted] {
        assert_eq!(outcome, RefreshOutcome::Invalid);
    }
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM refresh_tokens WHERE rotated_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(entries(&*store).await.len(), before);
    assert!(
        rotated(&refresh_at(&*store, "expiring", "n1", t).await),
        "still live before expiry"
    );
}

async fn revoke_session_is_idempotent_and_audited_once(db: Db) {
    let store = db.open_migrated().await;
    let (user, _) = signup(&*store, "ada@example.com").await;
    let session = login(&*store, user.id, "t0", Utc::now() + TimeDelta::days(1)).await;
    let logout = || {
        AuditEvent::new("logout")
            .actor(user.id)
            .target(format!("session:{}", session.id))
    };
    let accounts = store.accounts();

    accounts.revoke_session(session.id, logout()).await.unwrap();
    accounts.revoke_session(session.id, logout()).await.unwrap();
    accounts
        .revoke_session(Uuid::new_v4(), logout())
        .await
        .unwrap();

    let found = accounts.session(session.id).await.unwrap().unwrap();
    assert!(found.revoked_at.is_some());
    assert_eq!(
        (found.id, found.created_at, found.expires_at),
        (session.id, session.created_at, session.expires_at)
    );
    assert_eq!(actions(&*store).await, ["signup", "login", "logout"]);
    assert_eq!(
        refresh_at(&*store, "t0", "t1", Utc::now()).await,
        RefreshOutcome::Invalid
    );
}

/// Eight tabs present the same token at the same moment with a grace window: every one gets new
/// tokens, and the session still has exactly one live token afterwards.
async fn concurrent_refreshes_within_grace_all_rotate(db: Db) {
    let store = db.open_migrated().await;
    let (user, _) = signup(&*store, "ada@example.com").await;
    let t = Utc::now();
    login(&*store, user.id, "t0", t + TimeDelta::days(1)).await;

    let outcomes = refresh_concurrently(&store, t, Duration::from_secs(30)).await;

    assert!(outcomes.iter().all(rotated), "{outcomes:?}");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM refresh_tokens").await, 9);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM refresh_tokens WHERE rotated_at IS NULL")
            .await,
        1
    );
    assert_eq!(actions(&*store).await, ["signup", "login"]);
}

/// The same race without a grace window: exactly one rotates, exactly one detects the reuse and
/// revokes the session, and the rest find it revoked.
async fn concurrent_refreshes_without_grace_agree(db: Db) {
    let store = db.open_migrated().await;
    let (user, _) = signup(&*store, "ada@example.com").await;
    let t = Utc::now();
    let session = login(&*store, user.id, "t0", t + TimeDelta::days(1)).await;

    let outcomes = refresh_concurrently(&store, t, Duration::ZERO).await;

    let count = |f: fn(&RefreshOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    assert_eq!(count(rotated), 1, "{outcomes:?}");
    assert_eq!(
        count(|o| matches!(o, RefreshOutcome::ReuseDetected { .. })),
        1,
        "{outcomes:?}"
    );
    assert_eq!(count(|o| *o == RefreshOutcome::Invalid), 6, "{outcomes:?}");
    assert!(store
        .accounts()
        .session(session.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    assert_eq!(
        actions(&*store).await,
        ["signup", "login", "refresh_reuse_detected"]
    );
}

async fn refresh_concurrently(
    store: &Arc<dyn Store>,
    at: DateTime<Utc>,
    grace: Duration,
) -> Vec<RefreshOutcome> {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                store
                    .accounts()
                    .refresh("t0", &format!("n{i}"), at, grace)
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("refresh"));
    }
    outcomes
}
