//! The agent-orchestration contract: the roster of agents (profiles, status, last heartbeat) and
//! the tasks addressed to them, whose status only moves forward.
//!
//! Task states: pending → claimed → running → completed | failed | cancelled (cancelled also from
//! pending and claimed). Every move is a compare-and-set on the current status
//! ([`Agents::move_task`]), so of two concurrent claims exactly one wins and the other learns the
//! status it lost to. The only way back is [`Agents::reoffer_stale`]: a claimed or running task
//! whose agent stopped heartbeating returns to pending (its `attempts` counts how often).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::StoreError;

/// An agent's state as the roster shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    Active,
    Inactive,
    Busy,
}

impl AgentStatus {
    pub const ALL: [&'static str; 3] = ["active", "inactive", "busy"];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Inactive => "inactive",
            AgentStatus::Busy => "busy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(AgentStatus::Active),
            "inactive" => Some(AgentStatus::Inactive),
            "busy" => Some(AgentStatus::Busy),
            _ => None,
        }
    }
}

/// One agent of the roster.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// Chosen by whoever registers it (`kael`, `discord-bridge`): 1–64 of a-z, 0-9, '-', '_'.
    pub agent_id: String,
    pub name: String,
    pub role: String,
    pub description: String,
    pub capabilities: Vec<String>,
    pub status: AgentStatus,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new agent (checked by the caller). It starts `inactive`, with no heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAgent {
    pub agent_id: String,
    pub name: String,
    pub role: String,
    pub description: String,
    pub capabilities: Vec<String>,
}

/// A change of an agent's profile; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentChange {
    pub name: Option<String>,
    pub role: Option<String>,
    pub description: Option<String>,
    pub capabilities: Option<Vec<String>>,
    pub status: Option<AgentStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Pending,
    Claimed,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [&'static str; 6] = [
        "pending",
        "claimed",
        "running",
        "completed",
        "failed",
        "cancelled",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Claimed => "claimed",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => TaskStatus::Pending,
            "claimed" => TaskStatus::Claimed,
            "running" => TaskStatus::Running,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }

    /// The statuses a task may move to `self` from (empty for `pending`: only a new task or
    /// [`Agents::reoffer_stale`] makes a task pending). Running → running is how an agent
    /// reports progress.
    pub fn allowed_from(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Pending => &[],
            Claimed => &[Pending],
            Running => &[Claimed, Running],
            Completed | Failed => &[Running],
            Cancelled => &[Pending, Claimed, Running],
        }
    }

    /// No move leaves a finished task.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// A task addressed to one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// UUIDv7: ordered by creation, the pagination cursor.
    pub id: Uuid,
    pub agent_id: String,
    pub task_type: String,
    pub task_data: Value,
    pub status: TaskStatus,
    /// The last progress report of the agent (any JSON), if any.
    pub progress: Option<Value>,
    /// What a completed task produced.
    pub result: Option<Value>,
    /// Why a task failed or was cancelled.
    pub error: Option<String>,
    /// How many times the task was claimed.
    pub attempts: i32,
    /// Who created it (a user id).
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the current claim was taken (`None` while pending and after a re-offer).
    pub claimed_at: Option<DateTime<Utc>>,
}

/// A new task (checked by the caller). It starts `pending`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub id: Uuid,
    pub agent_id: String,
    pub task_type: String,
    pub task_data: Value,
    pub created_by: Uuid,
}

/// What a move writes besides the status; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPatch {
    pub progress: Option<Value>,
    pub result: Option<Value>,
    pub error: Option<String>,
}

/// The outcome of [`Agents::move_task`].
// Why allowed: one value per call, matched at once by the caller; boxing the task would cost an
// allocation on the common path and change the pattern every caller matches on.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Moved {
    /// The task as it is after the move.
    Moved(Task),
    /// Its status was not one the move is allowed from: nothing changed.
    Refused {
        current: TaskStatus,
    },
    NotFound,
}

/// Which tasks to list: newest first, after the cursor (a task id), at most `limit`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskQuery {
    pub agent_id: Option<String>,
    pub status: Option<TaskStatus>,
    /// Only tasks older than this one (ids are UUIDv7).
    pub before: Option<Uuid>,
    pub limit: u32,
}

#[async_trait]
pub trait Agents: Send + Sync {
    /// Register an agent; `Conflict` when the id is taken.
    async fn create_agent(&self, new: &NewAgent, now: DateTime<Utc>) -> Result<Agent, StoreError>;

    async fn agent(&self, agent_id: &str) -> Result<Option<Agent>, StoreError>;

    /// Every agent, by id.
    async fn agents(&self) -> Result<Vec<Agent>, StoreError>;

    /// Apply a change; `None` when there is no such agent.
    async fn update_agent(
        &self,
        agent_id: &str,
        change: &AgentChange,
        now: DateTime<Utc>,
    ) -> Result<Option<Agent>, StoreError>;

    /// Remove an agent and its tasks (one transaction); false when there was none.
    async fn delete_agent(&self, agent_id: &str) -> Result<bool, StoreError>;

    /// Register every agent of `roster` that is not registered yet (existing ones are left
    /// as they are); how many were added.
    async fn seed_agents(
        &self,
        roster: &[NewAgent],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError>;

    /// Record a heartbeat: `last_heartbeat = now`, and an `inactive` agent becomes `active`.
    /// `None` when there is no such agent.
    async fn heartbeat(
        &self,
        agent_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Agent>, StoreError>;

    /// Mark `inactive` every `active` or `busy` agent whose last heartbeat is older than
    /// `silent_since` (or that never sent one and was created before it); the agents changed.
    async fn mark_silent(
        &self,
        silent_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Agent>, StoreError>;

    /// Add a task; `NotFound` when its agent does not exist.
    async fn create_task(&self, new: &NewTask, now: DateTime<Utc>) -> Result<Task, StoreError>;

    async fn task(&self, id: Uuid) -> Result<Option<Task>, StoreError>;

    /// Tasks newest first (see [`TaskQuery`]).
    async fn tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError>;

    /// Move a task to `to` if its status is one of `to.allowed_from()`, writing `patch` too, in
    /// one compare-and-set. A move to `claimed` sets `claimed_at` and adds one to `attempts`.
    /// With `by` (an agent acting for itself), only a task of that agent moves; another agent's
    /// task answers `NotFound`, as if it did not exist.
    async fn move_task(
        &self,
        id: Uuid,
        to: TaskStatus,
        patch: &TaskPatch,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Moved, StoreError>;

    /// Return to `pending` every `claimed` or `running` task whose agent's last heartbeat is
    /// older than `silent_since` (or missing) and whose claim is older than it too; the tasks
    /// changed (`claimed_at` cleared, `progress` kept).
    async fn reoffer_stale(
        &self,
        silent_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Task>, StoreError>;
}

// The engine-neutral half, for the engine modules: the statements both dialects run verbatim
// (`$n` placeholders work on both; JSON and UUIDs are bound as each engine stores them), the
// decoding of statuses, and what a refused move answers.

/// The columns of an agent, as every statement returns them.
pub(crate) const AGENT_COLUMNS: &str = "agent_id, name, role, description, capabilities, \
     status, last_heartbeat, created_at, updated_at";

/// The columns of a task, as every statement returns them.
pub(crate) const TASK_COLUMNS: &str = "id, agent_id, task_type, task_data, status, progress, \
     result, error, attempts, created_by, created_at, updated_at, claimed_at";

/// Parameters: id, name, role, description, capabilities, now. The defaults start it `inactive`.
pub(crate) fn insert_agent_sql(on_conflict: &str) -> String {
    format!(
        "INSERT INTO agents (agent_id, name, role, description, capabilities, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) {on_conflict} RETURNING {AGENT_COLUMNS}"
    )
}

/// Every agent by id. Why `COLLATE "C"` on PostgreSQL: byte order, as SQLite sorts, whatever the
/// database's collation (`en_US` skips punctuation at first, so `a-b`, `ab` and `a_b` would come
/// out in another order).
pub(crate) fn agents_sql(collate: &str) -> String {
    format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY agent_id {collate}")
}

/// Parameters: id, name, role, description, capabilities, status (each `NULL`: unchanged), now.
pub(crate) fn update_agent_sql() -> String {
    format!(
        "UPDATE agents SET name = COALESCE($2, name), role = COALESCE($3, role), \
         description = COALESCE($4, description), capabilities = COALESCE($5, capabilities), \
         status = COALESCE($6, status), updated_at = $7 \
         WHERE agent_id = $1 RETURNING {AGENT_COLUMNS}"
    )
}

/// Parameters: id, now. `updated_at` moves only with the status (a heartbeat is not an edit of
/// the profile, and agents send one every few seconds).
pub(crate) fn heartbeat_sql() -> String {
    format!(
        "UPDATE agents SET last_heartbeat = $2, \
         updated_at = CASE WHEN status = 'inactive' THEN $2 ELSE updated_at END, \
         status = CASE WHEN status = 'inactive' THEN 'active' ELSE status END \
         WHERE agent_id = $1 RETURNING {AGENT_COLUMNS}"
    )
}

/// Parameters: silent_since, now. Times compare as `timestamptz` on PostgreSQL and as RFC 3339
/// text in UTC on SQLite, whose text order is time order (sqlx writes the shortest fraction of 0,
/// 3, 6 or 9 digits, and the `+` that ends a shorter one sorts before any digit).
pub(crate) fn mark_silent_sql() -> String {
    format!(
        "UPDATE agents SET status = 'inactive', updated_at = $2 \
         WHERE status IN ('active', 'busy') AND (last_heartbeat < $1 \
               OR (last_heartbeat IS NULL AND created_at < $1)) \
         RETURNING {AGENT_COLUMNS}"
    )
}

/// Parameters: id, agent, type, data, created_by, now. The defaults make it `pending`, 0 attempts.
pub(crate) fn insert_task_sql() -> String {
    format!(
        "INSERT INTO agent_tasks (id, agent_id, task_type, task_data, created_by, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {TASK_COLUMNS}"
    )
}

/// The listing of `query`, with only the filters it sets, so each can use its index (a generic
/// `$1 IS NULL OR …` plan could not). Parameters, in order, for the filters that are set:
/// agent, status, before; then the limit.
pub(crate) fn tasks_sql(query: &TaskQuery) -> String {
    let filters: Vec<&str> = [
        query.agent_id.is_some().then_some("agent_id ="),
        query.status.is_some().then_some("status ="),
        query.before.is_some().then_some("id <"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut sql = format!("SELECT {TASK_COLUMNS} FROM agent_tasks");
    for (i, test) in filters.iter().enumerate() {
        let joiner = if i == 0 { "WHERE" } else { "AND" };
        sql.push_str(&format!(" {joiner} {test} ${}", i + 1));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", filters.len() + 1));
    sql
}

/// The compare-and-set of a move to `to`; `None` when no status allows it (`pending`).
/// Parameters: id, to, progress, result, error (each `NULL`: unchanged), now, whether a claim,
/// the acting agent (`NULL`: any).
/// The allowed statuses are inlined from the enum's own constants, never from input.
pub(crate) fn move_sql(to: TaskStatus) -> Option<String> {
    let from = to.allowed_from();
    if from.is_empty() {
        return None;
    }
    let list: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    Some(format!(
        "UPDATE agent_tasks SET status = $2, progress = COALESCE($3, progress), \
         result = COALESCE($4, result), error = COALESCE($5, error), updated_at = $6, \
         claimed_at = CASE WHEN $7 THEN $6 ELSE claimed_at END, \
         attempts = attempts + CASE WHEN $7 THEN 1 ELSE 0 END \
         WHERE id = $1 AND status IN ({}) AND ($8 IS NULL OR agent_id = $8) \
         RETURNING {TASK_COLUMNS}",
        list.join(", ")
    ))
}

/// Parameters: silent_since, now. An agent that heartbeat since `silent_since` keeps its claims.
pub(crate) fn reoffer_sql() -> String {
    format!(
        "UPDATE agent_tasks SET status = 'pending', claimed_at = NULL, updated_at = $2 \
         WHERE status IN ('claimed', 'running') AND claimed_at < $1 \
           AND agent_id IN (SELECT agent_id FROM agents \
                            WHERE last_heartbeat IS NULL OR last_heartbeat < $1) \
         RETURNING {TASK_COLUMNS}"
    )
}

/// How often a move tries its compare-and-set in all: see [`refusal`].
pub(crate) const MOVE_ATTEMPTS: usize = 3;

/// What a refused compare-and-set answers, given the task's status read right after it. `None`:
/// that status allows the move after all (the task changed between the two statements, say a
/// re-offer made it pending again), so the caller tries again rather than answer "refused by a
/// status the move is allowed from".
pub(crate) fn refusal(current: Option<TaskStatus>, to: TaskStatus) -> Option<Moved> {
    match current {
        None => Some(Moved::NotFound),
        Some(status) if to.allowed_from().contains(&status) => None,
        Some(status) => Some(Moved::Refused { current: status }),
    }
}

/// Why a task could not be inserted, when its agent does not exist (or was deleted meanwhile):
/// the foreign key says so on both engines, checked in the insert's own transaction.
pub(crate) fn is_missing_agent(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_foreign_key_violation())
}

/// A stored agent status; anything else is a decode error (the table checks it).
pub(crate) fn agent_status(stored: &str) -> Result<AgentStatus, sqlx::Error> {
    AgentStatus::parse(stored)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown agent status `{stored}`").into()))
}

/// A stored task status.
pub(crate) fn task_status(stored: &str) -> Result<TaskStatus, sqlx::Error> {
    TaskStatus::parse(stored)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown task status `{stored}`").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_sql_numbers_only_the_filters_set() {
        let all = TaskQuery {
            agent_id: Some("kael".into()),
            status: Some(TaskStatus::Pending),
            before: Some(Uuid::nil()),
            limit: 5,
        };
        assert!(tasks_sql(&all).ends_with(
            "WHERE agent_id = $1 AND status = $2 AND id < $3 ORDER BY id DESC LIMIT $4"
        ));
        let before = TaskQuery {
            before: Some(Uuid::nil()),
            ..TaskQuery::default()
        };
        assert!(tasks_sql(&before).ends_with(" WHERE id < $1 ORDER BY id DESC LIMIT $2"));
        assert!(tasks_sql(&TaskQuery::default()).ends_with("agent_tasks ORDER BY id DESC LIMIT $1"));
    }

    #[test]
    fn moves_to_pending_have_no_statement_and_others_list_their_sources() {
        assert_eq!(move_sql(TaskStatus::Pending), None);
        let cancel = move_sql(TaskStatus::Cancelled).unwrap();
        assert!(cancel.contains("status IN ('pending', 'claimed', 'running')"));
    }

    #[test]
    fn a_refusal_by_an_allowed_status_is_retried() {
        use TaskStatus::*;
        assert_eq!(refusal(None, Claimed), Some(Moved::NotFound));
        assert_eq!(
            refusal(Some(Claimed), Claimed),
            Some(Moved::Refused { current: Claimed })
        );
        assert_eq!(refusal(Some(Pending), Claimed), None);
    }

    #[test]
    fn statuses_round_trip_through_their_text() {
        for s in TaskStatus::ALL {
            assert_eq!(task_status(s).unwrap().as_str(), s);
        }
        for s in AgentStatus::ALL {
            assert_eq!(agent_status(s).unwrap().as_str(), s);
        }
        assert!(task_status("done").is_err() && agent_status("asleep").is_err());
    }
}
