//! [`Agents`] on SQLite: the statements of `crate::agents`, with JSON stored as its text and UUIDs
//! as hyphenated text. Every write goes through the single writer connection, so two moves of one
//! task run one after the other and the second one's compare-and-set sees the first's status.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::accounts::uuid;
use super::SqliteStore;
use crate::agents::{
    self, Agent, AgentChange, Agents, Moved, NewAgent, NewTask, Task, TaskPatch, TaskQuery,
    TaskStatus, AGENT_COLUMNS, MOVE_ATTEMPTS, TASK_COLUMNS,
};
use crate::{rules, StoreError};

/// A JSON column read back (stored as the text `serde_json` wrote).
fn json<T: DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}

fn optional_json(row: &SqliteRow, column: &str) -> Result<Option<serde_json::Value>, sqlx::Error> {
    row.try_get::<Option<&str>, _>(column)?
        .map(json)
        .transpose()
}

fn agent(row: &SqliteRow) -> Result<Agent, sqlx::Error> {
    Ok(Agent {
        agent_id: row.try_get("agent_id")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        description: row.try_get("description")?,
        capabilities: json(row.try_get("capabilities")?)?,
        status: agents::agent_status(row.try_get("status")?)?,
        last_heartbeat: row.try_get("last_heartbeat")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn task(row: &SqliteRow) -> Result<Task, sqlx::Error> {
    Ok(Task {
        id: uuid(row, "id")?,
        agent_id: row.try_get("agent_id")?,
        task_type: row.try_get("task_type")?,
        task_data: json(row.try_get("task_data")?)?,
        status: agents::task_status(row.try_get("status")?)?,
        progress: optional_json(row, "progress")?,
        result: optional_json(row, "result")?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        created_by: uuid(row, "created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        claimed_at: row.try_get("claimed_at")?,
    })
}

/// Capabilities as the text the column holds.
fn capabilities_text(capabilities: &[String]) -> String {
    serde_json::Value::from(capabilities).to_string()
}

impl SqliteStore {
    fn agents_of(&self, rows: &[SqliteRow]) -> Result<Vec<Agent>, StoreError> {
        rows.iter()
            .map(agent)
            .collect::<Result<_, _>>()
            .map_err(self.err())
    }

    fn tasks_of(&self, rows: &[SqliteRow]) -> Result<Vec<Task>, StoreError> {
        rows.iter()
            .map(task)
            .collect::<Result<_, _>>()
            .map_err(self.err())
    }

    /// One compare-and-set of [`Agents::move_task`]: the task after it, or `None` if refused.
    async fn try_move(
        &self,
        sql: &str,
        id: Uuid,
        to: TaskStatus,
        patch: &TaskPatch,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Task>, StoreError> {
        let row = sqlx::query(sql)
            .bind(id.hyphenated())
            .bind(to.as_str())
            .bind(patch.progress.as_ref().map(|v| v.to_string()))
            .bind(patch.result.as_ref().map(|v| v.to_string()))
            .bind(&patch.error)
            .bind(now)
            .bind(to == TaskStatus::Claimed)
            .bind(by)
            .fetch_optional(&self.writer)
            .await
            .map_err(self.err())?;
        row.as_ref().map(task).transpose().map_err(self.err())
    }
}

#[async_trait]
impl Agents for SqliteStore {
    async fn create_agent(&self, new: &NewAgent, now: DateTime<Utc>) -> Result<Agent, StoreError> {
        let row = sqlx::query(&agents::insert_agent_sql(""))
            .bind(&new.agent_id)
            .bind(&new.name)
            .bind(&new.role)
            .bind(&new.description)
            .bind(capabilities_text(&new.capabilities))
            .bind(rules::exact(now))
            .fetch_one(&self.writer)
            .await
            .map_err(|e| rules::conflict_as(self.err()(e), "agent id is taken"))?;
        agent(&row).map_err(self.err())
    }

    async fn agent(&self, agent_id: &str) -> Result<Option<Agent>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = $1");
        let row = sqlx::query(&sql)
            .bind(agent_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        row.as_ref().map(agent).transpose().map_err(self.err())
    }

    async fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        let rows = sqlx::query(&agents::agents_sql(""))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        self.agents_of(&rows)
    }

    async fn update_agent(
        &self,
        agent_id: &str,
        change: &AgentChange,
        now: DateTime<Utc>,
    ) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(&agents::update_agent_sql())
            .bind(agent_id)
            .bind(&change.name)
            .bind(&change.role)
            .bind(&change.description)
            .bind(change.capabilities.as_deref().map(capabilities_text))
            .bind(change.status.map(|s| s.as_str()))
            .bind(rules::exact(now))
            .fetch_optional(&self.writer)
            .await
            .map_err(self.err())?;
        row.as_ref().map(agent).transpose().map_err(self.err())
    }

    async fn delete_agent(&self, agent_id: &str) -> Result<bool, StoreError> {
        // One statement: the foreign key's cascade removes the tasks in its transaction.
        let deleted = sqlx::query("DELETE FROM agents WHERE agent_id = $1")
            .bind(agent_id)
            .execute(&self.writer)
            .await
            .map_err(self.err())?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn seed_agents(
        &self,
        roster: &[NewAgent],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let sql = agents::insert_agent_sql("ON CONFLICT (agent_id) DO NOTHING");
        let now = rules::exact(now);
        let mut tx = self.write().await?;
        let mut added = 0;
        for new in roster {
            let inserted = sqlx::query(&sql)
                .bind(&new.agent_id)
                .bind(&new.name)
                .bind(&new.role)
                .bind(&new.description)
                .bind(capabilities_text(&new.capabilities))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
            added += inserted.rows_affected() as usize;
        }
        tx.commit().await.map_err(self.err())?;
        Ok(added)
    }

    async fn heartbeat(
        &self,
        agent_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(&agents::heartbeat_sql())
            .bind(agent_id)
            .bind(rules::exact(now))
            .fetch_optional(&self.writer)
            .await
            .map_err(self.err())?;
        row.as_ref().map(agent).transpose().map_err(self.err())
    }

    async fn mark_silent(
        &self,
        silent_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Agent>, StoreError> {
        let rows = sqlx::query(&agents::mark_silent_sql())
            .bind(rules::exact(silent_since))
            .bind(rules::exact(now))
            .fetch_all(&self.writer)
            .await
            .map_err(self.err())?;
        let mut changed = self.agents_of(&rows)?;
        changed.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        Ok(changed)
    }

    async fn create_task(&self, new: &NewTask, now: DateTime<Utc>) -> Result<Task, StoreError> {
        let row = sqlx::query(&agents::insert_task_sql())
            .bind(new.id.hyphenated())
            .bind(&new.agent_id)
            .bind(&new.task_type)
            .bind(new.task_data.to_string())
            .bind(new.created_by.hyphenated())
            .bind(rules::exact(now))
            .fetch_one(&self.writer)
            .await
            .map_err(|e| {
                if agents::is_missing_agent(&e) {
                    StoreError::NotFound
                } else {
                    rules::conflict_as(self.err()(e), "task id is taken")
                }
            })?;
        task(&row).map_err(self.err())
    }

    async fn task(&self, id: Uuid) -> Result<Option<Task>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM agent_tasks WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.hyphenated())
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        row.as_ref().map(task).transpose().map_err(self.err())
    }

    async fn tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        let sql = agents::tasks_sql(query);
        // Bound in the order `tasks_sql` numbers them: only the filters that are set.
        let mut select = sqlx::query(&sql);
        if let Some(agent_id) = &query.agent_id {
            select = select.bind(agent_id);
        }
        if let Some(status) = query.status {
            select = select.bind(status.as_str());
        }
        if let Some(before) = query.before {
            select = select.bind(before.hyphenated());
        }
        let rows = select
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        self.tasks_of(&rows)
    }

    async fn move_task(
        &self,
        id: Uuid,
        to: TaskStatus,
        patch: &TaskPatch,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Moved, StoreError> {
        let now = rules::exact(now);
        let sql = agents::move_sql(to);
        let mut current = None;
        for _ in 0..MOVE_ATTEMPTS {
            if let Some(sql) = &sql {
                if let Some(moved) = self.try_move(sql, id, to, patch, by, now).await? {
                    return Ok(Moved::Moved(moved));
                }
            }
            let task = self.task(id).await?;
            // Another agent's task is not this agent's to see.
            current = task
                .filter(|t| by.is_none_or(|a| a == t.agent_id))
                .map(|t| t.status);
            if let Some(answer) = agents::refusal(current, to) {
                return Ok(answer);
            }
        }
        // Still allowed after every try: the task keeps changing under us; report what we saw.
        Ok(current.map_or(Moved::NotFound, |current| Moved::Refused { current }))
    }

    async fn reoffer_stale(
        &self,
        silent_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query(&agents::reoffer_sql())
            .bind(rules::exact(silent_since))
            .bind(rules::exact(now))
            .fetch_all(&self.writer)
            .await
            .map_err(self.err())?;
        let mut changed = self.tasks_of(&rows)?;
        changed.sort_by_key(|t| t.id);
        Ok(changed)
    }
}
