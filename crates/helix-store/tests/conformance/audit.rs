//! The `AuditLog` contract on every backend: one entry per audited call, a chain that
//! `audit::verify` accepts page by page, appends that never fork under concurrency (two pools, as
//! two processes), and tampering with raw SQL found at the right entry.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use helix_store::accounts::{NewApiKey, NewUser, ProfilePatch, Role};
use helix_store::audit::{self, AuditEntry, AuditEvent};
use helix_store::Store;
use serde_json::json;
use uuid::Uuid;

use crate::accounts::entries;
use crate::support::Db;

on_every_backend!(
    audited_calls_append_one_entry_each_in_order,
    verify_passes_page_by_page_and_details_round_trip,
    concurrent_appends_form_one_chain,
    edited_detail_is_found_at_its_entry,
    deleted_middle_row_is_found,
    swapped_rows_are_found,
);

/// Append `n` entries with varied details.
async fn fill(store: &dyn Store, n: usize) -> Vec<AuditEntry> {
    let mut appended = Vec::new();
    for i in 0..n {
        let event = AuditEvent::new("login_failed")
            .target(format!("user:{i}"))
            .ip(Some("203.0.113.7".into()))
            .detail(json!({"email": format!("u{i}@example.com"), "i": i}));
        appended.push(store.audit().append(event).await.expect("append"));
    }
    appended
}

fn verified_head(log: &[AuditEntry]) -> Option<audit::AuditHead> {
    audit::verify(None, log).expect("an intact chain")
}

async fn audited_calls_append_one_entry_each_in_order(db: Db) {
    let store = db.open_migrated().await;
    let accounts = store.accounts();
    let new = NewUser {
        email: "ada@example.com".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        display_name: "Ada".into(),
        role: Role::User,
        trust_level: 0.0,
    };
    let (user, _) = accounts
        .create_user(&new, AuditEvent::new("signup"))
        .await
        .unwrap();
    let (admin, _) = accounts
        .create_user(
            &NewUser {
                email: "root@example.com".into(),
                ..new.clone()
            },
            AuditEvent::new("signup"),
        )
        .await
        .unwrap();
    let as_user = |action: &str| AuditEvent::new(action).actor(user.id);
    let t = Utc::now();

    let session = accounts
        .create_session(user.id, "t0", t + TimeDelta::days(1), as_user("login"))
        .await
        .unwrap();
    accounts
        .refresh("t0", "t1", t, std::time::Duration::ZERO)
        .await
        .unwrap();
    accounts
        .update_profile(
            user.id,
            &ProfilePatch {
                onboarding_step: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let key = NewApiKey {
        user_id: user.id,
        name: "ci".into(),
        prefix: "hx_ci".into(),
        hash: "keyhash".into(),
        scopes: vec!["read".into()],
        expires_at: None,
    };
    let key = accounts
        .create_api_key(&key, as_user("key_created"))
        .await
        .unwrap();
    accounts
        .revoke_api_key(user.id, key.id, as_user("key_revoked"))
        .await
        .unwrap();
    accounts
        .revoke_api_key(user.id, key.id, as_user("key_revoked"))
        .await
        .unwrap();
    let role_change = AuditEvent::new("role_changed")
        .actor(admin.id)
        .detail(json!({"to": "admin"}));
    accounts
        .set_role(user.id, Role::Admin, 0.5, role_change)
        .await
        .unwrap();
    store
        .audit()
        .append(AuditEvent::new("login_failed").detail(json!({"email": "x@example.com"})))
        .await
        .unwrap();
    let maintenance = AuditEvent::new("maintenance_changed")
        .actor(admin.id)
        .target("maintenance");
    store
        .meta_put_audited("maintenance", "{\"on\":true}", maintenance)
        .await
        .unwrap();
    accounts
        .refresh(
            "t0",
            "t2",
            t + TimeDelta::minutes(1),
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    accounts
        .revoke_session(session.id, as_user("logout"))
        .await
        .unwrap();
    accounts
        .delete_user(user.id, as_user("user_deleted"))
        .await
        .unwrap();

    let log = entries(&*store).await;
    let seen: Vec<(i64, &str, Option<Uuid>)> = log
        .iter()
        .map(|e| (e.seq, e.action.as_str(), e.actor))
        .collect();
    let (u, a) = (Some(user.id), Some(admin.id));
    assert_eq!(
        seen,
        [
            (1, "signup", u),
            (2, "signup", a),
            (3, "login", u),
            (4, "key_created", u),
            (5, "key_revoked", u),
            (6, "role_changed", a),
            (7, "login_failed", None),
            (8, "maintenance_changed", a),
            (9, "refresh_reuse_detected", u),
            (10, "user_deleted", u),
        ],
        "logout of an already revoked session and a second key revocation changed nothing"
    );
    assert_eq!(log[5].detail, json!({"to": "admin"}));
    assert_eq!(log[8].target, Some(format!("session:{}", session.id)));
    assert_eq!(
        store.meta_get("maintenance").await.unwrap().as_deref(),
        Some("{\"on\":true}")
    );
    let head = verified_head(&log).unwrap();
    assert_eq!(store.audit().head().await.unwrap(), Some(head));
}

async fn verify_passes_page_by_page_and_details_round_trip(db: Db) {
    let store = db.open_migrated().await;
    assert_eq!(store.audit().head().await.unwrap(), None);
    assert!(store.audit().page(0, 10).await.unwrap().is_empty());
    let details = [
        json!(null),
        json!({"ratio": 0.1 + 0.2, "third": 1.0 / 3.0, "big": 1e300, "tiny": 5e-324}),
        json!({"nested": {"b": [1, 2, {"c": "é✓\u{0}\"\\"}], "a": true}, "neg": -0.0}),
        json!("plain string"),
        json!([u64::MAX, i64::MIN, 985.6906946328695]),
    ];
    let mut appended = Vec::new();
    for (i, detail) in details.iter().cycle().take(23).enumerate() {
        let event = AuditEvent::new("probe")
            .actor(Uuid::new_v4())
            .target(format!("n:{i}"))
            .detail(detail.clone());
        appended.push(store.audit().append(event).await.unwrap());
    }

    let mut head = None;
    let mut read = Vec::new();
    loop {
        let after = head.as_ref().map_or(0, |h: &audit::AuditHead| h.seq);
        let page = store.audit().page(after, 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        head = audit::verify(head.as_ref(), &page).expect("intact");
        read.extend(page);
    }

    assert_eq!(read, appended, "entries read back exactly as appended");
    assert_eq!(head.as_ref().map(|h| h.seq), Some(23));
    assert_eq!(store.audit().head().await.unwrap(), head);
    let tail = store.audit().page(20, 100).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [21, 22, 23]);
}

/// 200 appends from 8 tasks over two stores (two pools, as two processes would have): one chain,
/// seq 1 to 200 without gaps.
async fn concurrent_appends_form_one_chain(db: Db) {
    let stores: [Arc<dyn Store>; 2] = [db.open_migrated().await, db.open_migrated().await];
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = Arc::clone(&stores[task % 2]);
            tokio::spawn(async move {
                for i in 0..25 {
                    let event = AuditEvent::new("probe").detail(json!({"task": task, "i": i}));
                    store.audit().append(event).await.expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }

    let log = entries(&*stores[0]).await;

    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    assert_eq!(verified_head(&log).map(|h| h.seq), Some(200));
    for task in 0..8 {
        let mine: Vec<_> = log
            .iter()
            .filter(|e| e.detail["task"] == task)
            .map(|e| e.detail["i"].clone())
            .collect();
        assert_eq!(
            mine,
            (0..25).map(|i| json!(i)).collect::<Vec<_>>(),
            "task {task} in order"
        );
    }
}

async fn edited_detail_is_found_at_its_entry(db: Db) {
    let store = db.open_migrated().await;
    fill(&*store, 6).await;
    verified_head(&entries(&*store).await);

    db.exec(
        "UPDATE audit_log SET detail = '{\"email\":\"mallory@example.com\",\"i\":2}' WHERE seq = 3",
    )
    .await;
    let broken = audit::verify(None, &entries(&*store).await).expect_err("an edited detail");
    assert_eq!(broken.seq, 3, "{broken}");

    db.exec("UPDATE audit_log SET detail = 'not json {' WHERE seq = 2")
        .await;
    let broken =
        audit::verify(None, &entries(&*store).await).expect_err("a detail that is not JSON");
    assert_eq!(broken.seq, 2, "{broken}");
}

async fn deleted_middle_row_is_found(db: Db) {
    let store = db.open_migrated().await;
    fill(&*store, 6).await;

    db.exec("DELETE FROM audit_log WHERE seq = 4").await;

    let broken = audit::verify(None, &entries(&*store).await).expect_err("a deleted row");
    assert_eq!(broken.seq, 4, "{broken}");
}

async fn swapped_rows_are_found(db: Db) {
    let store = db.open_migrated().await;
    fill(&*store, 6).await;

    // Three steps: the primary key refuses a swap in one statement on PostgreSQL.
    db.exec("UPDATE audit_log SET seq = 1000 WHERE seq = 2")
        .await;
    db.exec("UPDATE audit_log SET seq = 2 WHERE seq = 5").await;
    db.exec("UPDATE audit_log SET seq = 5 WHERE seq = 1000")
        .await;

    let broken = audit::verify(None, &entries(&*store).await).expect_err("swapped rows");
    assert_eq!(broken.seq, 2, "{broken}");
}
