//! The `Agents` contract on every backend: the roster (create once, partial updates, seeding,
//! heartbeats and silence), and tasks (their agent required, listing newest first, moves as one
//! compare-and-set with exactly one winner among concurrent claims, and the re-offer of claims
//! whose agent went silent). Every time is given by the test, so each assertion is exact.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use helix_store::agents::{
    Agent, AgentChange, AgentStatus, Moved, NewAgent, NewTask, Task, TaskPatch, TaskQuery,
    TaskStatus,
};
use helix_store::{Store, StoreError};
use serde_json::{json, Value};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::support::Db;

on_every_backend!(
    agents_are_registered_once_and_start_inactive,
    updates_change_only_the_fields_given,
    deleting_an_agent_removes_its_tasks,
    seeding_adds_only_the_missing_agents,
    heartbeats_stamp_and_wake_inactive_agents,
    silent_agents_become_inactive,
    silence_is_judged_to_the_microsecond,
    tasks_start_pending_and_need_their_agent,
    json_values_round_trip_exactly,
    tasks_are_listed_newest_first_with_filters_and_a_cursor,
    moves_follow_the_state_machine,
    moves_write_the_patch_only_where_given,
    concurrent_claims_have_exactly_one_winner,
    stale_claims_return_to_pending,
    an_agent_moves_only_its_own_tasks,
);

/// A fixed instant; `secs` later than a base time with microseconds, so truncation would show.
fn t(secs: i64) -> DateTime<Utc> {
    let base: DateTime<Utc> = "2026-03-01T12:00:00.123456Z".parse().unwrap();
    base + TimeDelta::seconds(secs)
}

fn new_agent(id: &str) -> NewAgent {
    NewAgent {
        agent_id: id.into(),
        name: format!("Agent {id}"),
        role: "worker".into(),
        description: format!("does {id} things"),
        capabilities: vec!["search".into(), "write".into()],
    }
}

async fn register(store: &dyn Store, id: &str, at: DateTime<Utc>) -> Agent {
    let agents = store.agents();
    agents.create_agent(&new_agent(id), at).await.expect(id)
}

fn new_task(agent_id: &str, data: Value) -> NewTask {
    NewTask {
        id: Uuid::now_v7(),
        agent_id: agent_id.into(),
        task_type: "research".into(),
        task_data: data,
        created_by: Uuid::new_v4(),
    }
}

async fn add_task(store: &dyn Store, agent_id: &str, at: DateTime<Utc>) -> Task {
    let new = new_task(agent_id, json!({"q": "x"}));
    store.agents().create_task(&new, at).await.expect("task")
}

async fn move_to(store: &dyn Store, id: Uuid, to: TaskStatus, at: DateTime<Utc>) -> Moved {
    let agents = store.agents();
    agents
        .move_task(id, to, &TaskPatch::default(), None, at)
        .await
        .expect("move")
}

/// A move that must succeed: the task after it.
async fn moved(store: &dyn Store, id: Uuid, to: TaskStatus, at: DateTime<Utc>) -> Task {
    match move_to(store, id, to, at).await {
        Moved::Moved(task) => task,
        other => panic!("move to {to:?}: {other:?}"),
    }
}

fn ids(tasks: &[Task]) -> Vec<Uuid> {
    tasks.iter().map(|t| t.id).collect()
}

fn agent_ids(agents: &[Agent]) -> Vec<&str> {
    agents.iter().map(|a| a.agent_id.as_str()).collect()
}

async fn agents_are_registered_once_and_start_inactive(db: Db) {
    let store = db.open_migrated().await;
    // Nanoseconds given: the store keeps microseconds, and returns what it stored.
    let at = t(0) + TimeDelta::nanoseconds(789);

    let kael = register(&*store, "kael", at).await;

    assert_eq!(kael.agent_id, "kael");
    assert_eq!(kael.name, "Agent kael");
    assert_eq!(kael.role, "worker");
    assert_eq!(kael.description, "does kael things");
    assert_eq!(kael.capabilities, ["search", "write"]);
    assert_eq!(kael.status, AgentStatus::Inactive);
    assert_eq!(kael.last_heartbeat, None);
    assert_eq!((kael.created_at, kael.updated_at), (t(0), t(0)));
    let agents = store.agents();
    assert_eq!(agents.agent("kael").await.unwrap(), Some(kael.clone()));
    assert_eq!(agents.agent("nobody").await.unwrap(), None);

    let again = agents.create_agent(&new_agent("kael"), t(5)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(agents.agent("kael").await.unwrap(), Some(kael), "unchanged");

    for id in ["ab", "a_b", "a-b", "discord-bridge"] {
        register(&*store, id, t(1)).await;
    }
    let all = agents.agents().await.unwrap();
    assert_eq!(
        agent_ids(&all),
        ["a-b", "a_b", "ab", "discord-bridge", "kael"],
        "by id, in byte order on every engine"
    );
}

async fn updates_change_only_the_fields_given(db: Db) {
    let store = db.open_migrated().await;
    let before = register(&*store, "kael", t(0)).await;
    let agents = store.agents();

    let renamed = AgentChange {
        name: Some("Kael".into()),
        ..AgentChange::default()
    };
    let after = agents.update_agent("kael", &renamed, t(10)).await.unwrap();

    let expected = Agent {
        name: "Kael".into(),
        updated_at: t(10),
        ..before.clone()
    };
    assert_eq!(after, Some(expected.clone()));
    let everything = AgentChange {
        name: Some("K".into()),
        role: Some("lead".into()),
        description: Some(String::new()),
        capabilities: Some(vec![]),
        status: Some(AgentStatus::Busy),
    };
    let after = agents.update_agent("kael", &everything, t(20)).await;
    let expected = Agent {
        name: "K".into(),
        role: "lead".into(),
        description: String::new(),
        capabilities: vec![],
        status: AgentStatus::Busy,
        updated_at: t(20),
        ..before
    };
    assert_eq!(after.unwrap(), Some(expected.clone()));
    assert_eq!(agents.agent("kael").await.unwrap(), Some(expected));
    let unknown = agents.update_agent("nobody", &renamed, t(30)).await;
    assert_eq!(unknown.unwrap(), None);
}

async fn deleting_an_agent_removes_its_tasks(db: Db) {
    let store = db.open_migrated().await;
    register(&*store, "kael", t(0)).await;
    register(&*store, "vega", t(0)).await;
    let doomed = [
        add_task(&*store, "kael", t(1)).await,
        add_task(&*store, "kael", t(2)).await,
    ];
    let kept = add_task(&*store, "vega", t(3)).await;
    moved(&*store, doomed[0].id, TaskStatus::Claimed, t(4)).await;
    let agents = store.agents();

    assert!(agents.delete_agent("kael").await.unwrap());

    assert_eq!(agents.agent("kael").await.unwrap(), None);
    for task in doomed {
        assert_eq!(agents.task(task.id).await.unwrap(), None);
    }
    assert_eq!(agents.task(kept.id).await.unwrap(), Some(kept));
    let rows = "SELECT COUNT(*) FROM agent_tasks WHERE agent_id = 'kael'";
    assert_eq!(db.scalar(rows).await, 0, "the cascade removed the rows");
    assert!(!agents.delete_agent("kael").await.unwrap(), "already gone");
    assert_eq!(agents_ids_of(&*store).await, ["vega"]);
}

async fn agents_ids_of(store: &dyn Store) -> Vec<String> {
    let all = store.agents().agents().await.unwrap();
    all.into_iter().map(|a| a.agent_id).collect()
}

async fn seeding_adds_only_the_missing_agents(db: Db) {
    let store = db.open_migrated().await;
    register(&*store, "kael", t(0)).await;
    let agents = store.agents();
    let busy = AgentChange {
        status: Some(AgentStatus::Busy),
        ..AgentChange::default()
    };
    let kael = agents.update_agent("kael", &busy, t(1)).await.unwrap();
    let mut roster: Vec<NewAgent> = ["kael", "vega", "lumina"]
        .into_iter()
        .map(new_agent)
        .collect();
    roster[0].name = "Renamed by the roster".into();

    let added = agents.seed_agents(&roster, t(10)).await.unwrap();

    assert_eq!(added, 2);
    assert_eq!(agents.agent("kael").await.unwrap(), kael, "left as it was");
    let vega = agents.agent("vega").await.unwrap().unwrap();
    assert_eq!(vega.status, AgentStatus::Inactive);
    assert_eq!((vega.created_at, vega.last_heartbeat), (t(10), None));
    assert_eq!(agents_ids_of(&*store).await, ["kael", "lumina", "vega"]);
    assert_eq!(agents.seed_agents(&roster, t(20)).await.unwrap(), 0);
    assert_eq!(agents.seed_agents(&[], t(20)).await.unwrap(), 0);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM agents").await, 3);
}

async fn heartbeats_stamp_and_wake_inactive_agents(db: Db) {
    let store = db.open_migrated().await;
    let kael = register(&*store, "kael", t(0)).await;
    let agents = store.agents();

    let beat = agents.heartbeat("kael", t(5)).await.unwrap().unwrap();

    assert_eq!(beat.status, AgentStatus::Active);
    assert_eq!(beat.last_heartbeat, Some(t(5)));
    assert_eq!(beat.updated_at, t(5), "the status changed");
    assert_eq!(beat.created_at, kael.created_at);
    let again = agents.heartbeat("kael", t(6)).await.unwrap().unwrap();
    assert_eq!(again.last_heartbeat, Some(t(6)));
    assert_eq!(again.updated_at, t(5), "only the heartbeat moved");
    let busy = AgentChange {
        status: Some(AgentStatus::Busy),
        ..AgentChange::default()
    };
    agents.update_agent("kael", &busy, t(7)).await.unwrap();
    let still_busy = agents.heartbeat("kael", t(8)).await.unwrap().unwrap();
    assert_eq!(still_busy.status, AgentStatus::Busy);
    assert_eq!(still_busy.last_heartbeat, Some(t(8)));
    assert_eq!(agents.agent("kael").await.unwrap(), Some(still_busy));
    assert_eq!(agents.heartbeat("nobody", t(9)).await.unwrap(), None);
}

async fn silent_agents_become_inactive(db: Db) {
    let store = db.open_migrated().await;
    let agents = store.agents();
    let set = |status| AgentChange {
        status: Some(status),
        ..AgentChange::default()
    };
    // Heartbeat long ago, heartbeat recently, never one (busy, created long ago), never one but
    // created recently, and already inactive.
    for (id, created) in [
        ("old", 0),
        ("fresh", 0),
        ("mute", 0),
        ("new", 90),
        ("off", 0),
    ] {
        register(&*store, id, t(created)).await;
    }
    agents.heartbeat("old", t(10)).await.unwrap();
    agents.heartbeat("fresh", t(95)).await.unwrap();
    agents
        .update_agent("mute", &set(AgentStatus::Busy), t(20))
        .await
        .unwrap();
    agents
        .update_agent("new", &set(AgentStatus::Active), t(91))
        .await
        .unwrap();
    agents.heartbeat("off", t(10)).await.unwrap();
    agents
        .update_agent("off", &set(AgentStatus::Inactive), t(11))
        .await
        .unwrap();
    let untouched = [
        agents.agent("fresh").await.unwrap(),
        agents.agent("new").await.unwrap(),
        agents.agent("off").await.unwrap(),
    ];

    let silent = agents.mark_silent(t(60), t(100)).await.unwrap();

    assert_eq!(agent_ids(&silent), ["mute", "old"]);
    for agent in &silent {
        assert_eq!(agent.status, AgentStatus::Inactive);
        assert_eq!(agent.updated_at, t(100));
        assert_eq!(
            agents.agent(&agent.agent_id).await.unwrap().as_ref(),
            Some(agent)
        );
    }
    let now = [
        agents.agent("fresh").await.unwrap(),
        agents.agent("new").await.unwrap(),
        agents.agent("off").await.unwrap(),
    ];
    assert_eq!(now, untouched);
    assert!(agents.mark_silent(t(60), t(101)).await.unwrap().is_empty());
    let edge = agents.mark_silent(t(95), t(102)).await.unwrap();
    assert_eq!(
        agent_ids(&edge),
        ["new"],
        "a heartbeat at the cut-off is not silent"
    );
}

/// Times with fractions of different lengths (none, milliseconds, microseconds) compare as times,
/// also where SQLite compares their text.
async fn silence_is_judged_to_the_microsecond(db: Db) {
    let store = db.open_migrated().await;
    let agents = store.agents();
    let second: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
    let half = second + TimeDelta::milliseconds(500);
    let micro = TimeDelta::microseconds(1);
    register(&*store, "whole", second - TimeDelta::hours(1)).await;
    register(&*store, "half", second - TimeDelta::hours(1)).await;
    agents.heartbeat("whole", second).await.unwrap();
    agents.heartbeat("half", half).await.unwrap();

    assert!(agents.mark_silent(second, half).await.unwrap().is_empty());
    let whole = agents.mark_silent(second + micro, half).await.unwrap();
    assert_eq!(agent_ids(&whole), ["whole"]);
    assert!(agents.mark_silent(half, half).await.unwrap().is_empty());
    let later = agents
        .mark_silent(half + micro, half + micro)
        .await
        .unwrap();
    assert_eq!(agent_ids(&later), ["half"]);
}

async fn tasks_start_pending_and_need_their_agent(db: Db) {
    let store = db.open_migrated().await;
    register(&*store, "kael", t(0)).await;
    let agents = store.agents();
    let new = new_task("kael", json!({"topic": "tides"}));

    let task = agents.create_task(&new, t(1)).await.unwrap();

    let expected = Task {
        id: new.id,
        agent_id: "kael".into(),
        task_type: "research".into(),
        task_data: json!({"topic": "tides"}),
        status: TaskStatus::Pending,
        progress: None,
        result: None,
        error: None,
        attempts: 0,
        created_by: new.created_by,
        created_at: t(1),
        updated_at: t(1),
        claimed_at: None,
    };
    assert_eq!(task, expected);
    assert_eq!(agents.task(new.id).await.unwrap(), Some(expected));
    assert_eq!(agents.task(Uuid::now_v7()).await.unwrap(), None);
    let orphan = agents
        .create_task(&new_task("nobody", json!({})), t(2))
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound)), "{orphan:?}");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM agent_tasks").await, 1);
}

async fn json_values_round_trip_exactly(db: Db) {
    let store = db.open_migrated().await;
    register(&*store, "kael", t(0)).await;
    let agents = store.agents();
    let values = [
        json!({"nested": {"list": [1, 2.5, -0.1, 1e-7, null, true], "é✓": "\"quoted\"\n"}}),
        json!([{"a": 1}, "two", 3, 12345678901234567_u64]),
        json!("just a string"),
        json!(42),
        json!({}),
    ];

    for value in values {
        let new = new_task("kael", value.clone());
        let created = agents.create_task(&new, t(1)).await.unwrap();
        assert_eq!(created.task_data, value);
        let claimed = moved(&*store, new.id, TaskStatus::Claimed, t(2)).await;
        assert_eq!(claimed.task_data, value);
        let progress = TaskPatch {
            progress: Some(value.clone()),
            ..TaskPatch::default()
        };
        let running = agents.move_task(new.id, TaskStatus::Running, &progress, None, t(3));
        assert!(matches!(running.await.unwrap(), Moved::Moved(_)));
        let done = TaskPatch {
            result: Some(value.clone()),
            progress: Some(Value::Null),
            ..TaskPatch::default()
        };
        agents
            .move_task(new.id, TaskStatus::Completed, &done, None, t(4))
            .await
            .unwrap();

        let read = agents.task(new.id).await.unwrap().unwrap();
        assert_eq!(read.task_data, value);
        assert_eq!(read.result, Some(value));
        assert_eq!(read.progress, Some(Value::Null), "a JSON null is a value");
    }
}

async fn tasks_are_listed_newest_first_with_filters_and_a_cursor(db: Db) {
    let store = db.open_migrated().await;
    register(&*store, "kael", t(0)).await;
    register(&*store, "vega", t(0)).await;
    let mut made = Vec::new();
    for n in 0..6 {
        let agent = if n % 2 == 0 { "kael" } else { "vega" };
        made.push(add_task(&*store, agent, t(n)).await);
    }
    for task in &made[..3] {
        moved(&*store, task.id, TaskStatus::Claimed, t(10)).await;
    }
    let list = |query: TaskQuery| {
        let store = Arc::clone(&store);
        async move { ids(&store.agents().tasks(&query).await.unwrap()) }
    };
    let newest_first =
        |picks: &[usize]| -> Vec<Uuid> { picks.iter().rev().map(|&i| made[i].id).collect() };

    let all = TaskQuery {
        limit: 100,
        ..TaskQuery::default()
    };
    assert_eq!(list(all.clone()).await, newest_first(&[0, 1, 2, 3, 4, 5]));
    let kaels = TaskQuery {
        agent_id: Some("kael".into()),
        ..all.clone()
    };
    assert_eq!(list(kaels.clone()).await, newest_first(&[0, 2, 4]));
    let claimed = TaskQuery {
        status: Some(TaskStatus::Claimed),
        ..all.clone()
    };
    assert_eq!(list(claimed.clone()).await, newest_first(&[0, 1, 2]));
    let kaels_claimed = TaskQuery {
        status: Some(TaskStatus::Claimed),
        ..kaels.clone()
    };
    assert_eq!(list(kaels_claimed).await, newest_first(&[0, 2]));
    let nobody = TaskQuery {
        agent_id: Some("nobody".into()),
        ..all.clone()
    };
    assert!(list(nobody).await.is_empty());

    // Pages of two, each starting before the last id of the previous page.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = list(TaskQuery {
            before,
            limit: 2,
            ..TaskQuery::default()
        })
        .await;
        if page.is_empty() {
            break;
        }
        before = page.last().copied();
        pages.push(page);
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), newest_first(&[0, 1, 2, 3, 4, 5]));
    let older_claimed = TaskQuery {
        before: Some(made[2].id),
        ..claimed
    };
    assert_eq!(list(older_claimed).await, newest_first(&[0, 1]));
    let none = TaskQuery { limit: 0, ..all };
    assert!(list(none).await.is_empty());
}

async fn moves_follow_the_state_machine(db: Db) {
    use TaskStatus::*;
    let store = db.open_migrated().await;
    register(&*store, "kael", t(0)).await;
    let task = add_task(&*store, "kael", t(1)).await;
    let s = &*store;

    assert_eq!(
        move_to(s, task.id, Running, t(2)).await,
        Moved::Refused { current: Pending }
    );
    let claimed = moved(s, task.id, Claimed, t(3)).await;
    assert_eq!(claimed.status, Claimed);
    assert_eq!((claimed.claimed_at, claimed.attempts), (Some(t(3)), 1));
    assert_eq!(claimed.updated_at, t(3));
    assert_eq!(claimed.created_at, t(1));
    assert_eq!(
        move_to(s, task.id, Claimed, t(4)).await,
        Moved::Refused { current: Claimed }
    );
    assert_eq!(
        move_to(s, task.id, Pending, t(4)).await,
        Moved::Refused { current: Claimed },
        "only a re-offer makes a task pending"
    );
    let running = moved(s, task.id, Running, t(5)).await;
    assert_eq!((running.claimed_at, running.attempts), (Some(t(3)), 1));
    let done = moved(s, task.id, Completed, t(6)).await;
    assert_eq!((done.status, done.updated_at), (Completed, t(6)));
    assert_eq!(s.agents().task(task.id).await.unwrap(), Some(done));
    for to in [Pending, Claimed, Running, Completed, Failed, Cancelled] {
        let again = move_to(s, task.id, to, t(7)).await;
        assert_eq!(again, Moved::Refused { current: Completed }, "{to:?}");
    }

    // Cancelled from pending, claimed and running; failed only from running.
    for steps in [&[][..], &[Claimed][..], &[Claimed, Running][..]] {
        let task = add_task(s, "kael", t(10)).await;
        for &step in steps {
            moved(s, task.id, step, t(11)).await;
        }
        if steps.len() < 2 {
            let failed = move_to(s, task.id, Failed, t(12)).await;
            assert!(matches!(failed, Moved::Refused { .. }), "{failed:?}");
        }
        assert_eq!(moved(s, task.id, Cancelled, t(12)).await.status, Cancelled);
    }
    let task = add_task(s, "kael", t(20)).await;
    moved(s, task.id, Claimed, t(21)).await;
    moved(s, task.id, Running, t(22)).await;
    assert_eq!(moved(s, task.id, Failed, t(23)).await.status, Failed);

    let unknown = Uuid::now_v7();
    for to in [Pending, Claimed, Cancelled] {
        assert_eq!(move_to(s, unknown, to, t(30)).await, Moved::NotFound);
    }
}

async fn moves_write_the_patch_only_where_given(db: Db) {
    let store = db.open_migrated().await;
    register(&*store, "kael", t(0)).await;
    let task = add_task(&*store, "kael", t(1)).await;
    let agents = store.agents();
    moved(&*store, task.id, TaskStatus::Claimed, t(2)).await;
    let half = TaskPatch {
        progress: Some(json!({"done": 0.5})),
        ..TaskPatch::default()
    };
    let running = agents.move_task(task.id, TaskStatus::Running, &half, None, t(3));
    let Moved::Moved(running) = running.await.unwrap() else {
        panic!("running refused");
    };
    assert_eq!(running.progress, Some(json!({"done": 0.5})));
    assert_eq!(
        (running.result.as_ref(), running.error.as_ref()),
        (None, None)
    );

    let failure = TaskPatch {
        error: Some("the tide turned".into()),
        ..TaskPatch::default()
    };
    let failed = agents.move_task(task.id, TaskStatus::Failed, &failure, None, t(4));
    let Moved::Moved(failed) = failed.await.unwrap() else {
        panic!("failed refused");
    };

    assert_eq!(
        failed.progress,
        Some(json!({"done": 0.5})),
        "kept: not in the patch"
    );
    assert_eq!(failed.error.as_deref(), Some("the tide turned"));
    assert_eq!(failed.result, None);
    assert_eq!(agents.task(task.id).await.unwrap(), Some(failed));
    // A refused move writes nothing of its patch either.
    let late = TaskPatch {
        result: Some(json!("late")),
        ..TaskPatch::default()
    };
    let refused = agents.move_task(task.id, TaskStatus::Completed, &late, None, t(5));
    let refused = refused.await.unwrap();
    assert_eq!(
        refused,
        Moved::Refused {
            current: TaskStatus::Failed
        }
    );
    assert_eq!(agents.task(task.id).await.unwrap().unwrap().result, None);
}

async fn concurrent_claims_have_exactly_one_winner(db: Db) {
    const CLAIMS: usize = 8;
    let store = db.open_migrated().await;
    register(&*store, "kael", t(0)).await;
    let task = add_task(&*store, "kael", t(1)).await;
    let start = Arc::new(Barrier::new(CLAIMS));
    let mut claims = Vec::new();
    for n in 0..CLAIMS {
        let (store, start) = (Arc::clone(&store), Arc::clone(&start));
        claims.push(tokio::spawn(async move {
            start.wait().await;
            move_to(&*store, task.id, TaskStatus::Claimed, t(2 + n as i64)).await
        }));
    }
    let mut outcomes = Vec::new();
    for claim in claims {
        outcomes.push(claim.await.unwrap());
    }

    let won: Vec<&Task> = outcomes
        .iter()
        .filter_map(|o| match o {
            Moved::Moved(task) => Some(task),
            _ => None,
        })
        .collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    let refused = Moved::Refused {
        current: TaskStatus::Claimed,
    };
    let lost = outcomes.iter().filter(|&o| *o == refused).count();
    assert_eq!(lost, CLAIMS - 1, "{outcomes:?}");
    assert_eq!(won[0].attempts, 1);
    let stored = store.agents().task(task.id).await.unwrap().unwrap();
    assert_eq!(&stored, won[0]);
}

async fn stale_claims_return_to_pending(db: Db) {
    use TaskStatus::*;
    let store = db.open_migrated().await;
    let s = &*store;
    for id in ["gone", "alive", "mute"] {
        register(s, id, t(0)).await;
    }
    let agents = store.agents();
    agents.heartbeat("gone", t(5)).await.unwrap();
    agents.heartbeat("alive", t(5)).await.unwrap();
    // "mute" never heartbeats.
    let stale_claim = add_task(s, "gone", t(1)).await;
    let stale_run = add_task(s, "mute", t(1)).await;
    let recent_claim = add_task(s, "gone", t(1)).await;
    let alive_claim = add_task(s, "alive", t(1)).await;
    let pending = add_task(s, "gone", t(1)).await;
    let finished = add_task(s, "gone", t(1)).await;
    moved(s, stale_claim.id, Claimed, t(10)).await;
    moved(s, stale_run.id, Claimed, t(10)).await;
    let progress = TaskPatch {
        progress: Some(json!({"step": 3})),
        ..TaskPatch::default()
    };
    agents
        .move_task(stale_run.id, Running, &progress, None, t(11))
        .await
        .unwrap();
    moved(s, recent_claim.id, Claimed, t(70)).await;
    moved(s, alive_claim.id, Claimed, t(10)).await;
    agents.heartbeat("alive", t(65)).await.unwrap();
    moved(s, finished.id, Claimed, t(10)).await;
    moved(s, finished.id, Running, t(11)).await;
    moved(s, finished.id, Completed, t(12)).await;
    let untouched = [recent_claim.id, alive_claim.id, pending.id, finished.id];
    let mut before = Vec::new();
    for id in untouched {
        before.push(agents.task(id).await.unwrap());
    }

    let reoffered = agents.reoffer_stale(t(60), t(100)).await.unwrap();

    let mut expected = vec![stale_claim.id, stale_run.id];
    expected.sort();
    assert_eq!(ids(&reoffered), expected);
    for task in &reoffered {
        assert_eq!(task.status, Pending);
        assert_eq!((task.claimed_at, task.updated_at), (None, t(100)));
        assert_eq!(task.attempts, 1, "kept: it counts claims");
        assert_eq!(agents.task(task.id).await.unwrap().as_ref(), Some(task));
    }
    let run = reoffered.iter().find(|t| t.id == stale_run.id).unwrap();
    assert_eq!(run.progress, Some(json!({"step": 3})), "progress is kept");
    let mut after = Vec::new();
    for id in untouched {
        after.push(agents.task(id).await.unwrap());
    }
    assert_eq!(after, before);
    assert!(agents
        .reoffer_stale(t(60), t(101))
        .await
        .unwrap()
        .is_empty());

    let again = moved(s, stale_claim.id, Claimed, t(110)).await;
    assert_eq!((again.attempts, again.claimed_at), (2, Some(t(110))));
}

async fn an_agent_moves_only_its_own_tasks(db: Db) {
    let store = db.open_migrated().await;
    register(&*store, "kael", t(0)).await;
    register(&*store, "vega", t(0)).await;
    let task = add_task(&*store, "kael", t(1)).await;
    let agents = store.agents();
    let none = TaskPatch::default();
    // Vega does not even learn that the task exists, whatever its status.
    let by_vega = agents.move_task(task.id, TaskStatus::Claimed, &none, Some("vega"), t(2));
    assert_eq!(by_vega.await.expect("move"), Moved::NotFound);
    let by_kael = agents.move_task(task.id, TaskStatus::Claimed, &none, Some("kael"), t(2));
    assert!(matches!(by_kael.await.expect("move"), Moved::Moved(_)));
    let again = agents.move_task(task.id, TaskStatus::Claimed, &none, Some("vega"), t(3));
    assert_eq!(again.await.expect("move"), Moved::NotFound);
    let refused = agents.move_task(task.id, TaskStatus::Claimed, &none, Some("kael"), t(3));
    assert_eq!(
        refused.await.expect("move"),
        Moved::Refused {
            current: TaskStatus::Claimed
        }
    );
}
