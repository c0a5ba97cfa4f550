//! [`ScheduleStore`] on SQLite. Reads use the store's read pool; writes go through its single
//! writer connection (a resume in a `BEGIN IMMEDIATE` transaction, so the row it reads cannot
//! change before it writes). Times are text in one fixed format, `YYYY-MM-DDTHH:MM:SS.mmmZ`, so
//! that text order is time order (`due`) and equal times are equal text (`advance`).

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, SqlitePool};

use super::cadence::truncate_ms;
use super::model::{FireRecord, NewSchedule, Schedule, SchedulePatch};
use super::store::{cadence_columns, resumed, Row, ScheduleStore, COLUMNS};
use super::ScheduleError;

pub(crate) struct SqliteSchedules {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteSchedules {
    pub(crate) fn new(read: SqlitePool, write: SqlitePool) -> Self {
        Self { read, write }
    }
}

/// The one text form of a time in this table.
fn text(t: DateTime<Utc>) -> String {
    truncate_ms(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    let raw: &str = row.try_get(column)?;
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| sqlx::Error::Decode(e.into()))
}

fn optional_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    match row.try_get::<Option<&str>, _>(column)? {
        Some(_) => time(row, column).map(Some),
        None => Ok(None),
    }
}

fn row(row: &SqliteRow) -> Result<Row, sqlx::Error> {
    let last_job: Option<&str> = row.try_get("last_job_id")?;
    Ok(Row {
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        queue: row.try_get("queue")?,
        payload: row.try_get("payload")?,
        priority: row.try_get("priority")?,
        every_ms: row.try_get("every_ms")?,
        cron: row.try_get("cron")?,
        timezone: row.try_get("timezone")?,
        catch_up: row.try_get("catch_up")?,
        paused: row.try_get("paused")?,
        next_fire_at: time(row, "next_fire_at")?,
        last_fire_at: optional_time(row, "last_fire_at")?,
        last_job_id: last_job
            .map(uuid::Uuid::parse_str)
            .transpose()
            .map_err(|e| sqlx::Error::Decode(e.into()))?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn schedule(what: &str, r: &SqliteRow) -> Result<Schedule, ScheduleError> {
    row(r)
        .map_err(|e| ScheduleError::store(what, e))?
        .try_into()
}

fn found(what: &str, name: &str, r: Option<SqliteRow>) -> Result<Schedule, ScheduleError> {
    match r {
        Some(r) => schedule(what, &r),
        None => Err(ScheduleError::NotFound(name.to_string())),
    }
}

fn insert_error(name: &str, err: sqlx::Error) -> ScheduleError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            ScheduleError::Duplicate(name.to_string())
        }
        _ => ScheduleError::store("add schedule", err),
    }
}

#[async_trait]
impl ScheduleStore for SqliteSchedules {
    async fn add(&self, new: NewSchedule, now: DateTime<Utc>) -> Result<Schedule, ScheduleError> {
        let s = new.into_schedule(now)?;
        let (every_ms, cron, timezone) = cadence_columns(&s.cadence);
        sqlx::query(
            "INSERT INTO helix_schedules (name, kind, queue, payload, priority, every_ms, cron, \
             timezone, catch_up, paused, next_fire_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
        )
        .bind(&s.name)
        .bind(&s.kind)
        .bind(&s.queue)
        .bind(&s.payload)
        .bind(s.priority)
        .bind(every_ms)
        .bind(cron)
        .bind(timezone)
        .bind(s.catch_up.as_str())
        .bind(s.paused)
        .bind(text(s.next_fire_at))
        .bind(text(s.created_at))
        .execute(&self.write)
        .await
        .map_err(|e| insert_error(&s.name, e))?;
        Ok(s)
    }

    async fn get(&self, name: &str) -> Result<Option<Schedule>, ScheduleError> {
        let sql = format!("SELECT {COLUMNS} FROM helix_schedules WHERE name = ?1");
        let found = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(|e| ScheduleError::store("get schedule", e))?;
        found.map(|r| schedule("get schedule", &r)).transpose()
    }

    async fn list(&self) -> Result<Vec<Schedule>, ScheduleError> {
        let sql = format!("SELECT {COLUMNS} FROM helix_schedules ORDER BY name");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.read)
            .await
            .map_err(|e| ScheduleError::store("list schedules", e))?;
        rows.iter().map(|r| schedule("list schedules", r)).collect()
    }

    async fn pause(&self, name: &str, now: DateTime<Utc>) -> Result<Schedule, ScheduleError> {
        // Why the CASE: pausing a paused schedule changes nothing, not even updated_at.
        let sql = format!(
            "UPDATE helix_schedules SET updated_at = CASE WHEN paused THEN updated_at ELSE ?2 END, \
             paused = 1 WHERE name = ?1 RETURNING {COLUMNS}"
        );
        let updated = sqlx::query(&sql)
            .bind(name)
            .bind(text(now))
            .fetch_optional(&self.write)
            .await
            .map_err(|e| ScheduleError::store("pause schedule", e))?;
        found("pause schedule", name, updated)
    }

    async fn resume(&self, name: &str, now: DateTime<Utc>) -> Result<Schedule, ScheduleError> {
        let err = |e| ScheduleError::store("resume schedule", e);
        let mut tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err)?;
        let sql = format!("SELECT {COLUMNS} FROM helix_schedules WHERE name = ?1");
        let current = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
        let current = found("resume schedule", name, current)?;
        if !current.paused {
            return Ok(current);
        }
        let s = resumed(current, now)?;
        sqlx::query(
            "UPDATE helix_schedules SET paused = 0, next_fire_at = ?2, updated_at = ?3 \
             WHERE name = ?1",
        )
        .bind(name)
        .bind(text(s.next_fire_at))
        .bind(text(s.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(s)
    }

    async fn update(
        &self,
        name: &str,
        patch: &SchedulePatch,
        now: DateTime<Utc>,
    ) -> Result<Schedule, ScheduleError> {
        let err = |e| ScheduleError::store("update schedule", e);
        let mut tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err)?;
        let sql = format!("SELECT {COLUMNS} FROM helix_schedules WHERE name = ?1");
        let current = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
        let s = patch.applied(found("update schedule", name, current)?, now)?;
        let (every_ms, cron, timezone) = cadence_columns(&s.cadence);
        sqlx::query(
            "UPDATE helix_schedules SET kind = ?2, queue = ?3, payload = ?4, priority = ?5, \
             every_ms = ?6, cron = ?7, timezone = ?8, catch_up = ?9, next_fire_at = ?10, \
             updated_at = ?11 WHERE name = ?1",
        )
        .bind(name)
        .bind(&s.kind)
        .bind(&s.queue)
        .bind(&s.payload)
        .bind(s.priority)
        .bind(every_ms)
        .bind(cron)
        .bind(timezone)
        .bind(s.catch_up.as_str())
        .bind(text(s.next_fire_at))
        .bind(text(s.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(s)
    }

    async fn remove(&self, name: &str) -> Result<Schedule, ScheduleError> {
        let sql = format!("DELETE FROM helix_schedules WHERE name = ?1 RETURNING {COLUMNS}");
        let deleted = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.write)
            .await
            .map_err(|e| ScheduleError::store("remove schedule", e))?;
        found("remove schedule", name, deleted)
    }

    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Schedule>, ScheduleError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM helix_schedules WHERE NOT paused AND next_fire_at <= ?1 \
             ORDER BY next_fire_at, name LIMIT ?2"
        );
        let rows = sqlx::query(&sql)
            .bind(text(now))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(|e| ScheduleError::store("read due schedules", e))?;
        rows.iter()
            .map(|r| schedule("read due schedules", r))
            .collect()
    }

    async fn earliest(&self) -> Result<Option<DateTime<Utc>>, ScheduleError> {
        let err = |e| ScheduleError::store("read the next fire time", e);
        let raw: Option<String> =
            sqlx::query_scalar("SELECT MIN(next_fire_at) FROM helix_schedules WHERE NOT paused")
                .fetch_one(&self.read)
                .await
                .map_err(err)?;
        raw.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| err(sqlx::Error::Decode(e.into())))
        })
        .transpose()
    }

    async fn advance(
        &self,
        name: &str,
        expected: DateTime<Utc>,
        next: DateTime<Utc>,
        fired: Option<FireRecord>,
    ) -> Result<bool, ScheduleError> {
        let done = sqlx::query(
            "UPDATE helix_schedules SET next_fire_at = ?3, \
             last_fire_at = COALESCE(?4, last_fire_at), last_job_id = COALESCE(?5, last_job_id) \
             WHERE name = ?1 AND next_fire_at = ?2 AND NOT paused",
        )
        .bind(name)
        .bind(text(expected))
        .bind(text(next))
        .bind(fired.map(|f| text(f.fire_at)))
        .bind(fired.map(|f| f.job.to_string()))
        .execute(&self.write)
        .await
        .map_err(|e| ScheduleError::store("advance schedule", e))?;
        Ok(done.rows_affected() == 1)
    }
}
