//! The `DiscordLog` contract on every backend: an interaction is recorded with everything the
//! bot knew about it, once per interaction id (also when two deliveries race), and read back by
//! id or newest first.

use chrono::{DateTime, TimeDelta, Utc};
use helix_store::discord::NewInteraction;

use crate::support::Db;

on_every_backend!(
    an_interaction_is_recorded_and_read_back_whole,
    a_repeated_interaction_is_recorded_once,
    the_same_interaction_delivered_twice_at_once_is_recorded_once,
    recent_interactions_come_newest_first,
);

fn t0() -> DateTime<Utc> {
    "2026-04-01T10:00:00.123456Z".parse().unwrap()
}

fn command(interaction_id: &str, name: &str) -> NewInteraction {
    NewInteraction {
        interaction_id: interaction_id.into(),
        kind: 2,
        command: Some(name.into()),
        user_id: Some("80351110224678912".into()),
        guild_id: Some("613425648685547541".into()),
        channel_id: Some("645027906669510667".into()),
        deferred: false,
        latency_ms: 12,
        created_at: t0(),
    }
}

async fn an_interaction_is_recorded_and_read_back_whole(db: Db) {
    let store = db.open_migrated().await;
    let mut deferred = command("1234567890123456789", "status");
    deferred.deferred = true;
    deferred.latency_ms = 2_001;
    let ping = NewInteraction {
        interaction_id: "1234567890123456790".into(),
        kind: 1,
        command: None,
        user_id: None,
        guild_id: None,
        channel_id: None,
        deferred: false,
        latency_ms: 0,
        created_at: t0() + TimeDelta::seconds(1),
    };

    assert!(store.discord().record_interaction(&deferred).await.unwrap());
    assert!(store.discord().record_interaction(&ping).await.unwrap());

    let read = store
        .discord()
        .interaction("1234567890123456789")
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(
        (
            read.interaction_id.as_str(),
            read.kind,
            read.command.as_deref(),
            read.user_id.as_deref(),
            read.guild_id.as_deref(),
            read.channel_id.as_deref(),
        ),
        (
            "1234567890123456789",
            2,
            Some("status"),
            Some("80351110224678912"),
            Some("613425648685547541"),
            Some("645027906669510667"),
        )
    );
    assert!(read.deferred);
    assert_eq!(read.latency_ms, 2_001);
    assert_eq!(read.created_at, t0());
    let ping_read = store
        .discord()
        .interaction("1234567890123456790")
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(
        (ping_read.kind, ping_read.command, ping_read.user_id),
        (1, None, None)
    );
    assert!(!ping_read.deferred);
    assert_eq!(store.discord().interaction("42").await.unwrap(), None);
}

async fn a_repeated_interaction_is_recorded_once(db: Db) {
    let store = db.open_migrated().await;
    let first = command("1111", "ucf");
    let mut again = command("1111", "agents");
    again.latency_ms = 99;

    assert!(store.discord().record_interaction(&first).await.unwrap());
    assert!(!store.discord().record_interaction(&again).await.unwrap());

    let kept = store.discord().interaction("1111").await.unwrap().unwrap();
    assert_eq!(
        (kept.command.as_deref(), kept.latency_ms),
        (Some("ucf"), 12)
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM discord_interactions").await,
        1
    );
}

async fn the_same_interaction_delivered_twice_at_once_is_recorded_once(db: Db) {
    let store = db.open_migrated().await;
    let (a, b) = (command("2222", "health"), command("2222", "health"));

    let (ra, rb) = tokio::join!(
        store.discord().record_interaction(&a),
        store.discord().record_interaction(&b)
    );

    let mut outcomes = [ra.unwrap(), rb.unwrap()];
    outcomes.sort_unstable();
    assert_eq!(outcomes, [false, true]);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM discord_interactions").await,
        1
    );
}

async fn recent_interactions_come_newest_first(db: Db) {
    let store = db.open_migrated().await;
    for (i, name) in ["status", "ucf", "agents"].iter().enumerate() {
        let mut new = command(&format!("33{i}"), name);
        new.created_at = t0() + TimeDelta::seconds(i as i64);
        store.discord().record_interaction(&new).await.unwrap();
    }

    let recent = store.discord().recent_interactions(2).await.unwrap();

    let names: Vec<_> = recent.iter().map(|r| r.command.as_deref()).collect();
    assert_eq!(names, [Some("agents"), Some("ucf")]);
    assert!(recent[0].id > recent[1].id);
    assert_eq!(
        store.discord().recent_interactions(10).await.unwrap().len(),
        3
    );
}
