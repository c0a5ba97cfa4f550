//! The `Accounts` contract on every backend: users and profiles, roles, API keys and account
//! deletion (sessions and refresh tokens are in `sessions.rs`). Also the helpers both use.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use helix_store::accounts::{
    ApiKey, NewApiKey, NewUser, Profile, ProfilePatch, RefreshOutcome, Role, Session, User,
};
use helix_store::audit::{AuditEntry, AuditEvent};
use helix_store::{Store, StoreError};
use uuid::Uuid;

use crate::support::Db;

on_every_backend!(
    signup_creates_user_profile_and_one_audit_entry,
    duplicate_email_is_a_conflict_without_an_audit_entry,
    login_record_is_absent_for_unknown_and_deleted_users,
    deleted_users_email_is_free_again,
    profile_patch_sets_keeps_and_clears_fields,
    set_role_changes_role_and_trust,
    api_keys_listed_newest_first_and_revoked_only_by_owner,
    api_key_by_hash_finds_only_live_keys,
    delete_user_revokes_sessions_and_keys,
);

pub const GRACE: Duration = Duration::from_secs(10);

pub fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.to_string(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_string(),
        display_name: "Ada".to_string(),
        role: Role::User,
        trust_level: 0.25,
    }
}

pub async fn signup(store: &dyn Store, email: &str) -> (User, Profile) {
    let event = AuditEvent::new("signup");
    store
        .accounts()
        .create_user(&new_user(email), event)
        .await
        .expect("signup")
}

pub async fn login(
    store: &dyn Store,
    user: Uuid,
    hash: &str,
    expires_at: DateTime<Utc>,
) -> Session {
    let event = AuditEvent::new("login")
        .actor(user)
        .target(format!("user:{user}"));
    let accounts = store.accounts();
    accounts
        .create_session(user, hash, expires_at, event)
        .await
        .expect("login")
}

pub fn new_key(user_id: Uuid, hash: &str, expires_at: Option<DateTime<Utc>>) -> NewApiKey {
    NewApiKey {
        user_id,
        name: format!("key {hash}"),
        prefix: format!("hx_{}", &hash[..4]),
        hash: hash.to_string(),
        scopes: vec!["read".to_string(), "write".to_string()],
        expires_at,
    }
}

pub async fn create_key(store: &dyn Store, key: &NewApiKey) -> ApiKey {
    let event = AuditEvent::new("key_created").actor(key.user_id);
    store
        .accounts()
        .create_api_key(key, event)
        .await
        .expect("create key")
}

pub async fn entries(store: &dyn Store) -> Vec<AuditEntry> {
    store.audit().page(0, 10_000).await.expect("audit page")
}

pub async fn actions(store: &dyn Store) -> Vec<String> {
    entries(store).await.into_iter().map(|e| e.action).collect()
}

pub async fn refresh_at(
    store: &dyn Store,
    old: &str,
    new: &str,
    at: DateTime<Utc>,
) -> RefreshOutcome {
    store
        .accounts()
        .refresh(old, new, at, GRACE)
        .await
        .expect("refresh")
}

pub fn rotated(outcome: &RefreshOutcome) -> bool {
    matches!(outcome, RefreshOutcome::Rotated { .. })
}

async fn signup_creates_user_profile_and_one_audit_entry(db: Db) {
    let store = db.open_migrated().await;

    let (user, profile) = signup(&*store, "ada@example.com").await;

    assert_eq!(
        (user.email.as_str(), user.role),
        ("ada@example.com", Role::User)
    );
    assert_eq!(profile.user_id, user.id);
    assert_eq!(
        (profile.display_name.as_str(), profile.trust_level),
        ("Ada", 0.25)
    );
    assert_eq!(profile.avatar_url, None);
    assert_eq!((profile.conversation_count, profile.message_count), (0, 0));
    assert_eq!((profile.messages_today, profile.onboarding_step), (0, 0));
    let stored = store.accounts().user(user.id).await.unwrap();
    assert_eq!(
        stored,
        Some((user.clone(), profile)),
        "ids and times round-trip"
    );
    let record = store
        .accounts()
        .login_record("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((record.user_id, record.role), (user.id, Role::User));
    assert_eq!(record.password_hash, new_user("x").password_hash);
    let log = entries(&*store).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].action.as_str(), log[0].actor),
        ("signup", Some(user.id))
    );
    assert_eq!(log[0].target, Some(format!("user:{}", user.id)));
    assert_eq!(store.accounts().user(Uuid::new_v4()).await.unwrap(), None);
}

async fn duplicate_email_is_a_conflict_without_an_audit_entry(db: Db) {
    let store = db.open_migrated().await;
    signup(&*store, "ada@example.com").await;

    let again = store
        .accounts()
        .create_user(&new_user("ada@example.com"), AuditEvent::new("signup"))
        .await;

    let err = again.expect_err("same email twice");
    assert!(matches!(&err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        actions(&*store).await,
        ["signup"],
        "the failed signup left no entry"
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM user_profiles").await, 1);
    let bad_trust = NewUser {
        trust_level: 1.5,
        ..new_user("bob@example.com")
    };
    let err = store
        .accounts()
        .create_user(&bad_trust, AuditEvent::new("signup"))
        .await;
    assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
}

async fn login_record_is_absent_for_unknown_and_deleted_users(db: Db) {
    let store = db.open_migrated().await;
    let (user, _) = signup(&*store, "ada@example.com").await;
    let accounts = store.accounts();
    assert!(accounts
        .login_record("nobody@example.com")
        .await
        .unwrap()
        .is_none());

    accounts
        .delete_user(user.id, AuditEvent::new("user_deleted").actor(user.id))
        .await
        .unwrap();

    assert!(accounts
        .login_record("ada@example.com")
        .await
        .unwrap()
        .is_none());
    assert_eq!(accounts.user(user.id).await.unwrap(), None);
    let again = accounts
        .delete_user(user.id, AuditEvent::new("user_deleted"))
        .await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    let unknown = accounts
        .delete_user(Uuid::new_v4(), AuditEvent::new("user_deleted"))
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    assert_eq!(actions(&*store).await, ["signup", "user_deleted"]);
    let sql = format!("SELECT COUNT(*) FROM users WHERE id = '{}'", user.id);
    assert_eq!(db.scalar(&sql).await, 1, "the row stays for the audit log");
}

async fn deleted_users_email_is_free_again(db: Db) {
    let store = db.open_migrated().await;
    let (old, _) = signup(&*store, "ada@example.com").await;
    store
        .accounts()
        .delete_user(old.id, AuditEvent::new("user_deleted"))
        .await
        .unwrap();

    let (new, _) = signup(&*store, "ada@example.com").await;

    assert_ne!(new.id, old.id);
    let record = store
        .accounts()
        .login_record("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.user_id, new.id);
}

async fn profile_patch_sets_keeps_and_clears_fields(db: Db) {
    let store = db.open_migrated().await;
    let (user, before) = signup(&*store, "ada@example.com").await;
    let accounts = store.accounts();

    let set = ProfilePatch {
        display_name: Some("Ada L.".into()),
        avatar_url: Some(Some("https://example.com/a.png".into())),
        onboarding_step: Some(3),
    };
    let after_set = accounts.update_profile(user.id, &set).await.unwrap();
    let kept = accounts
        .update_profile(user.id, &ProfilePatch::default())
        .await
        .unwrap();
    let clear = ProfilePatch {
        avatar_url: Some(None),
        ..ProfilePatch::default()
    };
    let cleared = accounts.update_profile(user.id, &clear).await.unwrap();

    assert_eq!(after_set.display_name, "Ada L.");
    assert_eq!(
        after_set.avatar_url.as_deref(),
        Some("https://example.com/a.png")
    );
    assert_eq!(after_set.onboarding_step, 3);
    assert!(after_set.updated_at >= before.updated_at);
    assert_eq!(
        (&kept.display_name, &kept.avatar_url),
        (&after_set.display_name, &after_set.avatar_url)
    );
    assert_eq!(cleared.avatar_url, None);
    assert_eq!(
        (cleared.display_name.as_str(), cleared.onboarding_step),
        ("Ada L.", 3)
    );
    assert_eq!(cleared.trust_level, before.trust_level);
    assert_eq!(accounts.user(user.id).await.unwrap().unwrap().1, cleared);
    let unknown = accounts.update_profile(Uuid::new_v4(), &set).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    accounts
        .delete_user(user.id, AuditEvent::new("user_deleted"))
        .await
        .unwrap();
    let deleted = accounts.update_profile(user.id, &set).await;
    assert!(matches!(deleted, Err(StoreError::NotFound)), "{deleted:?}");
    assert_eq!(
        actions(&*store).await,
        ["signup", "user_deleted"],
        "patches are not audited"
    );
}

async fn set_role_changes_role_and_trust(db: Db) {
    let store = db.open_migrated().await;
    let (user, _) = signup(&*store, "ada@example.com").await;
    let accounts = store.accounts();
    let event = || AuditEvent::new("role_changed").target(format!("user:{}", user.id));

    accounts
        .set_role(user.id, Role::Admin, 0.5, event())
        .await
        .unwrap();

    let (changed, profile) = accounts.user(user.id).await.unwrap().unwrap();
    assert_eq!((changed.role, profile.trust_level), (Role::Admin, 0.5));
    let record = accounts
        .login_record("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.role, Role::Admin);
    let bad = accounts.set_role(user.id, Role::User, 1.5, event()).await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    let unknown = accounts
        .set_role(Uuid::new_v4(), Role::User, 0.0, event())
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    assert_eq!(actions(&*store).await, ["signup", "role_changed"]);
    assert_eq!(
        accounts.user(user.id).await.unwrap().unwrap().0.role,
        Role::Admin
    );
}

async fn api_keys_listed_newest_first_and_revoked_only_by_owner(db: Db) {
    let store = db.open_migrated().await;
    let (ada, _) = signup(&*store, "ada@example.com").await;
    let (bob, _) = signup(&*store, "bob@example.com").await;
    let accounts = store.accounts();
    let expires = Some(Utc::now() + TimeDelta::days(30));

    let first = create_key(&*store, &new_key(ada.id, "aaaa1111", None)).await;
    let second = create_key(&*store, &new_key(ada.id, "bbbb2222", expires)).await;

    assert_eq!(
        accounts.api_keys(ada.id).await.unwrap(),
        [second.clone(), first.clone()]
    );
    assert!(accounts.api_keys(bob.id).await.unwrap().is_empty());
    assert_eq!(first.scopes, ["read", "write"]);
    let dup = accounts
        .create_api_key(
            &new_key(bob.id, "aaaa1111", None),
            AuditEvent::new("key_created"),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let orphan = accounts
        .create_api_key(
            &new_key(Uuid::new_v4(), "cccc3333", None),
            AuditEvent::new("key_created"),
        )
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound)), "{orphan:?}");

    let revoke = |user: Uuid, key: Uuid| {
        let event = AuditEvent::new("key_revoked")
            .actor(user)
            .target(format!("key:{key}"));
        accounts.revoke_api_key(user, key, event)
    };
    let by_bob = revoke(bob.id, first.id).await;
    assert!(matches!(by_bob, Err(StoreError::NotFound)), "{by_bob:?}");
    let unknown = revoke(ada.id, Uuid::new_v4()).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    revoke(ada.id, first.id).await.expect("owner revokes");
    revoke(ada.id, first.id)
        .await
        .expect("revoking again is fine");

    let listed = accounts.api_keys(ada.id).await.unwrap();
    assert_eq!(listed[0], second);
    assert!(listed[1].revoked_at.is_some());
    let log = entries(&*store).await;
    let audited: Vec<_> = log
        .iter()
        .map(|e| (e.action.as_str(), e.target.clone()))
        .skip(2)
        .collect();
    assert_eq!(
        audited,
        [
            ("key_created", Some(format!("key:{}", first.id))),
            ("key_created", Some(format!("key:{}", second.id))),
            ("key_revoked", Some(format!("key:{}", first.id))),
        ]
    );
}

async fn api_key_by_hash_finds_only_live_keys(db: Db) {
    let store = db.open_migrated().await;
    let (ada, _) = signup(&*store, "ada@example.com").await;
    let (bob, _) = signup(&*store, "bob@example.com").await;
    let accounts = store.accounts();
    let now = Utc::now();

    let live = create_key(&*store, &new_key(ada.id, "live0000", None)).await;
    let expiring = create_key(
        &*store,
        &new_key(ada.id, "expiring", Some(now + TimeDelta::hours(1))),
    )
    .await;
    let revoked = create_key(&*store, &new_key(ada.id, "revoked0", None)).await;
    create_key(&*store, &new_key(bob.id, "bobs0000", None)).await;
    accounts
        .revoke_api_key(ada.id, revoked.id, AuditEvent::new("key_revoked"))
        .await
        .unwrap();
    accounts
        .delete_user(bob.id, AuditEvent::new("user_deleted"))
        .await
        .unwrap();

    let found = accounts
        .api_key_by_hash("live0000", now)
        .await
        .unwrap()
        .expect("live key");
    assert_eq!((found.key, found.role), (live, Role::User));
    let before_expiry = accounts.api_key_by_hash("expiring", now).await.unwrap();
    assert_eq!(before_expiry.map(|o| o.key), Some(expiring.clone()));
    let at_expiry = expiring.expires_at.unwrap();
    assert!(accounts
        .api_key_by_hash("expiring", at_expiry)
        .await
        .unwrap()
        .is_none());
    assert!(accounts
        .api_key_by_hash("revoked0", now)
        .await
        .unwrap()
        .is_none());
    assert!(
        accounts
            .api_key_by_hash("bobs0000", now)
            .await
            .unwrap()
            .is_none(),
        "owner deleted"
    );
    assert!(accounts
        .api_key_by_hash("unknown0", now)
        .await
        .unwrap()
        .is_none());
}

async fn delete_user_revokes_sessions_and_keys(db: Db) {
    let store = db.open_migrated().await;
    let (user, _) = signup(&*store, "ada@example.com").await;
    let (other, _) = signup(&*store, "bob@example.com").await;
    let expires = Utc::now() + TimeDelta::days(1);
    let sessions = [
        login(&*store, user.id, "s1", expires).await,
        login(&*store, user.id, "s2", expires).await,
    ];
    let kept = login(&*store, other.id, "s3", expires).await;
    create_key(&*store, &new_key(user.id, "key10000", None)).await;
    create_key(&*store, &new_key(user.id, "key20000", None)).await;
    let accounts = store.accounts();

    accounts
        .delete_user(user.id, AuditEvent::new("user_deleted").actor(user.id))
        .await
        .unwrap();

    for s in &sessions {
        assert!(accounts
            .session(s.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some());
    }
    assert!(accounts
        .api_keys(user.id)
        .await
        .unwrap()
        .iter()
        .all(|k| k.revoked_at.is_some()));
    assert_eq!(
        accounts.session(kept.id).await.unwrap().unwrap().revoked_at,
        None
    );
    assert!(accounts
        .api_key_by_hash("key10000", Utc::now())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        refresh_at(&*store, "s1", "n1", Utc::now()).await,
        RefreshOutcome::Invalid
    );
    let relogin = accounts
        .create_session(user.id, "s4", expires, AuditEvent::new("login"))
        .await;
    assert!(matches!(relogin, Err(StoreError::NotFound)), "{relogin:?}");
    let last = entries(&*store).await.pop().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor),
        ("user_deleted", Some(user.id))
    );
}
