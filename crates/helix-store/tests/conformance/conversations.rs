//! The `Conversations` contract on every backend: per-conversation sequence numbers, idempotent
//! appends, pages, exact counters under concurrency, the daily allowance, and isolation between
//! users (on PostgreSQL also by row-level security, without any filter in the query).

use std::sync::Arc;

use chrono::{NaiveDate, TimeDelta, Utc};
use helix_store::conversations::{
    Appended, ConversationCursor, DailyLimit, Message, MessagePage, MessageRole, NewConversation,
    NewMessage,
};
use helix_store::{Store, StoreError};
use serde_json::json;
use sqlx::Executor;
use uuid::Uuid;

use crate::accounts::signup;
use crate::support::{Db, Engine};

on_every_backend!(
    conversations_are_created_once_per_key_listed_newest_first_and_counted,
    rename_and_delete_touch_only_the_owners_conversation,
    appends_get_consecutive_seqs_and_pages_read_them_back,
    a_retried_client_id_returns_the_original,
    concurrent_appends_keep_seqs_and_counters_exact,
    the_daily_allowance_is_checked_in_the_append_and_resets_next_day,
    other_users_cannot_read_or_write_a_conversation,
    deleting_a_conversation_removes_its_messages,
    rows_of_other_users_stay_hidden_without_a_filter,
);

fn today() -> DailyLimit {
    DailyLimit {
        day: Utc::now().date_naive(),
        limit: None,
    }
}

fn text(content: &str) -> NewMessage {
    NewMessage {
        role: MessageRole::User,
        content: content.into(),
        client_id: None,
        metadata: json!({}),
    }
}

async fn user(store: &dyn Store) -> Uuid {
    signup(store, &format!("{}@example.com", Uuid::new_v4()))
        .await
        .0
        .id
}

async fn conversation(store: &dyn Store, user_id: Uuid, key: Option<&str>) -> Uuid {
    let new = NewConversation {
        session_key: key.map(str::to_string),
        title: "chat".into(),
    };
    let (created, _) = store
        .conversations()
        .create_conversation(user_id, &new)
        .await
        .expect("create conversation");
    created.id
}

async fn append(store: &dyn Store, user_id: Uuid, id: Uuid, new: &NewMessage) -> Message {
    match store
        .conversations()
        .append_message(user_id, id, new, today())
        .await
        .expect("append")
    {
        Appended::New { message, .. } => message,
        other => panic!("expected a new message, got {other:?}"),
    }
}

async fn seqs(store: &dyn Store, user_id: Uuid, id: Uuid, page: MessagePage) -> Vec<i64> {
    let page = store.conversations().messages(user_id, id, page).await;
    page.expect("messages").iter().map(|m| m.seq).collect()
}

async fn conversations_are_created_once_per_key_listed_newest_first_and_counted(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let convs = store.conversations();
    let first = conversation(&*store, alice, Some("desktop-1")).await;
    let new = NewConversation {
        session_key: Some("desktop-1".into()),
        title: "other title".into(),
    };
    let (again, created) = convs.create_conversation(alice, &new).await.unwrap();
    assert!(!created, "same key: the existing conversation");
    assert_eq!((again.id, again.title.as_str()), (first, "chat"));
    let mut ids = vec![first];
    for _ in 0..4 {
        ids.push(conversation(&*store, alice, None).await);
    }

    let page1 = convs.conversations(alice, None, 3).await.unwrap();
    let last = page1.last().unwrap();
    let cursor = ConversationCursor {
        created_at: last.created_at,
        id: last.id,
    };
    let page2 = convs.conversations(alice, Some(cursor), 3).await.unwrap();

    let listed: Vec<Uuid> = page1.iter().chain(&page2).map(|c| c.id).collect();
    ids.reverse();
    assert_eq!(listed, ids, "newest first, no gap or repeat across pages");
    assert_eq!(page1[0].session_key, ids[0].to_string(), "default key");
    let (_, profile) = store.accounts().user(alice).await.unwrap().unwrap();
    assert_eq!(profile.conversation_count, 5);
}

async fn rename_and_delete_touch_only_the_owners_conversation(db: Db) {
    let store = db.open_migrated().await;
    let (alice, bob) = (user(&*store).await, user(&*store).await);
    let id = conversation(&*store, alice, None).await;
    let convs = store.conversations();

    let renamed = convs.rename_conversation(alice, id, "Plans").await.unwrap();
    assert_eq!(renamed.title, "Plans");
    let theirs = convs.rename_conversation(bob, id, "mine now").await;
    assert!(matches!(theirs, Err(StoreError::NotFound)), "{theirs:?}");
    let theirs = convs.delete_conversation(bob, id).await;
    assert!(matches!(theirs, Err(StoreError::NotFound)), "{theirs:?}");

    convs.delete_conversation(alice, id).await.unwrap();
    assert!(convs.conversation(alice, id).await.unwrap().is_none());
    let again = convs.delete_conversation(alice, id).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    let (_, profile) = store.accounts().user(alice).await.unwrap().unwrap();
    assert_eq!(profile.conversation_count, 0);
}

async fn appends_get_consecutive_seqs_and_pages_read_them_back(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let id = conversation(&*store, alice, None).await;
    for n in 1..=7 {
        let mut new = text(&format!("message {n}"));
        new.metadata = json!({"n": n, "nested": {"ok": true}});
        let message = append(&*store, alice, id, &new).await;
        assert_eq!(message.seq, n);
        assert_eq!(message.metadata["n"], n);
    }

    let latest = MessagePage::Latest {
        before: None,
        limit: 3,
    };
    assert_eq!(seqs(&*store, alice, id, latest).await, [5, 6, 7]);
    let older = MessagePage::Latest {
        before: Some(5),
        limit: 3,
    };
    assert_eq!(seqs(&*store, alice, id, older).await, [2, 3, 4]);
    let since = MessagePage::Since { since: 4, limit: 2 };
    assert_eq!(seqs(&*store, alice, id, since).await, [5, 6]);
    let beyond = MessagePage::Since {
        since: 99,
        limit: 10,
    };
    assert!(seqs(&*store, alice, id, beyond).await.is_empty());

    let read = store
        .conversations()
        .messages(alice, id, MessagePage::Since { since: 6, limit: 1 })
        .await
        .unwrap();
    assert_eq!(read[0].content, "message 7");
    assert_eq!(read[0].metadata, json!({"n": 7, "nested": {"ok": true}}));
    let conv = store.conversations().conversation(alice, id).await.unwrap();
    let conv = conv.unwrap();
    assert_eq!((conv.message_count, conv.last_seq), (7, 7));
    assert_eq!(conv.last_message_at, Some(read[0].created_at));
}

async fn a_retried_client_id_returns_the_original(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let id = conversation(&*store, alice, None).await;
    let mut new = text("hello");
    new.client_id = Some("c-1".into());
    let original = append(&*store, alice, id, &new).await;

    new.content = "hello (edited retry)".into();
    let retried = store
        .conversations()
        .append_message(alice, id, &new, today())
        .await
        .unwrap();

    assert_eq!(retried, Appended::Existing(original.clone()));
    let other = conversation(&*store, alice, None).await;
    let elsewhere = append(&*store, alice, other, &new).await;
    assert_eq!(elsewhere.seq, 1, "client ids are per conversation");
    let conv = store.conversations().conversation(alice, id).await.unwrap();
    assert_eq!(conv.unwrap().message_count, 1);
}

async fn concurrent_appends_keep_seqs_and_counters_exact(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let ids = [
        conversation(&*store, alice, None).await,
        conversation(&*store, alice, None).await,
    ];
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = Arc::clone(&store);
        // Every fourth send is a retry of the one before it (same conversation, same client id).
        let key = n - n % 4 / 3;
        let id = ids[key % 2];
        tasks.push(tokio::spawn(async move {
            let mut new = text("x");
            new.client_id = Some(format!("c-{key}"));
            store
                .conversations()
                .append_message(alice, id, &new, today())
                .await
                .expect("append")
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let mut stored = 0;
    for id in ids {
        let all = MessagePage::Since {
            since: 0,
            limit: 100,
        };
        let got = seqs(&*store, alice, id, all).await;
        assert_eq!(got, (1..=got.len() as i64).collect::<Vec<_>>(), "no gaps");
        stored += got.len() as i64;
    }
    assert_eq!(stored, 30, "40 sends, 10 of them retries");
    let (_, profile) = store.accounts().user(alice).await.unwrap().unwrap();
    assert_eq!(profile.message_count, stored);
    assert_eq!(profile.messages_today, stored);
}

async fn the_daily_allowance_is_checked_in_the_append_and_resets_next_day(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let id = conversation(&*store, alice, None).await;
    let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let limited = DailyLimit {
        day,
        limit: Some(2),
    };
    let convs = store.conversations();
    for _ in 0..2 {
        let appended = convs.append_message(alice, id, &text("x"), limited).await;
        assert!(matches!(appended, Ok(Appended::New { .. })), "{appended:?}");
    }

    let over = convs.append_message(alice, id, &text("x"), limited).await;
    assert_eq!(
        over.unwrap(),
        Appended::OverDailyLimit { used: 2, limit: 2 }
    );
    let next_day = DailyLimit {
        day: day + TimeDelta::days(1),
        limit: Some(2),
    };
    match convs.append_message(alice, id, &text("x"), next_day).await {
        Ok(Appended::New {
            message,
            messages_today,
        }) => assert_eq!((message.seq, messages_today), (3, 1)),
        other => panic!("a new day allows again: {other:?}"),
    }
    // An instance whose clock is still on the day before counts into the new day: it must not
    // start the count again (which would let a user past the allowance around midnight).
    match convs.append_message(alice, id, &text("x"), limited).await {
        Ok(Appended::New { messages_today, .. }) => assert_eq!(messages_today, 2),
        other => panic!("a late clock counts into the stored day: {other:?}"),
    }
    let late = convs.append_message(alice, id, &text("x"), limited).await;
    assert_eq!(
        late.unwrap(),
        Appended::OverDailyLimit { used: 2, limit: 2 }
    );
    let conv = convs.conversation(alice, id).await.unwrap().unwrap();
    assert_eq!(conv.message_count, 4, "the refused appends stored nothing");
}

async fn other_users_cannot_read_or_write_a_conversation(db: Db) {
    let store = db.open_migrated().await;
    let (alice, bob) = (user(&*store).await, user(&*store).await);
    let id = conversation(&*store, alice, Some("shared-key")).await;
    let mut sent = text("secret");
    sent.client_id = Some("c-1".into());
    append(&*store, alice, id, &sent).await;
    let convs = store.conversations();
    // Bob guessing the conversation and a client id of Alice's learns nothing, not her message.
    let mut guess = text("x");
    guess.client_id = Some("c-1".into());
    let guessed = convs.append_message(bob, id, &guess, today()).await;
    assert!(matches!(guessed, Err(StoreError::NotFound)), "{guessed:?}");

    assert!(convs.conversation(bob, id).await.unwrap().is_none());
    assert!(convs.conversations(bob, None, 50).await.unwrap().is_empty());
    let page = MessagePage::Since {
        since: 0,
        limit: 50,
    };
    let read = convs.messages(bob, id, page).await;
    assert!(matches!(read, Err(StoreError::NotFound)), "{read:?}");
    let write = convs.append_message(bob, id, &text("x"), today()).await;
    assert!(matches!(write, Err(StoreError::NotFound)), "{write:?}");
    let unknown = convs.messages(alice, Uuid::new_v4(), page).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    // The same key is free for another user: keys are per user and never tell of another's.
    let bobs = conversation(&*store, bob, Some("shared-key")).await;
    assert_ne!(bobs, id);
}

async fn deleting_a_conversation_removes_its_messages(db: Db) {
    let store = db.open_migrated().await;
    let alice = user(&*store).await;
    let id = conversation(&*store, alice, None).await;
    let keep = conversation(&*store, alice, None).await;
    for _ in 0..3 {
        append(&*store, alice, id, &text("x")).await;
    }
    append(&*store, alice, keep, &text("x")).await;

    store
        .conversations()
        .delete_conversation(alice, id)
        .await
        .unwrap();

    assert_eq!(db.scalar("SELECT COUNT(*) FROM session_messages").await, 1);
}

/// On PostgreSQL the policies alone hide other users' rows from an ordinary role that sets
/// `helix.user_id` (superusers, like the test's own connection, are exempt by design). On SQLite,
/// where only the store's filters protect rows, the same data is checked through the store.
async fn rows_of_other_users_stay_hidden_without_a_filter(db: Db) {
    let store = db.open_migrated().await;
    let (alice, bob) = (user(&*store).await, user(&*store).await);
    for (who, n) in [(alice, 2), (bob, 3)] {
        let id = conversation(&*store, who, None).await;
        for _ in 0..n {
            append(&*store, who, id, &text("x")).await;
        }
    }
    if db.engine == Engine::Sqlite {
        let mine = store.conversations().conversations(alice, None, 50).await;
        assert_eq!(mine.unwrap().len(), 1);
        return;
    }
    let schema = db.schema.clone().unwrap();
    let mut conn = db.postgres().await;
    let setup = format!(
        "DO $$ BEGIN CREATE ROLE helix_rls_probe NOLOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
         GRANT USAGE ON SCHEMA {schema} TO helix_rls_probe; \
         GRANT SELECT ON conversations, session_messages TO helix_rls_probe; \
         SET ROLE helix_rls_probe"
    );
    conn.execute(setup.as_str()).await.expect("probe role");
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);

    let nobody = count("SELECT COUNT(*) FROM session_messages").fetch_one(&mut conn);
    assert_eq!(nobody.await.unwrap(), 0, "no user set: no rows");
    sqlx::query("SELECT set_config('helix.user_id', $1, false)")
        .bind(alice.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    let messages = count("SELECT COUNT(*) FROM session_messages").fetch_one(&mut conn);
    assert_eq!(messages.await.unwrap(), 2, "only alice's messages");
    let convs = count("SELECT COUNT(*) FROM conversations").fetch_one(&mut conn);
    assert_eq!(convs.await.unwrap(), 1, "only alice's conversation");
}
