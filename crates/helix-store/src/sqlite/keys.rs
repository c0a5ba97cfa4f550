//! API keys on SQLite (the key half of [`crate::Accounts`] for [`SqliteStore`]): create, list,
//! revoke, and the by-hash lookup that authenticates a request. Only the key's SHA-256 is stored.
//! Scopes are stored as a JSON array; every write runs in a `BEGIN IMMEDIATE` transaction.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::accounts::{is_live_user, uuid};
use super::audit::append_in;
use super::SqliteStore;
use crate::accounts::{ApiKey, KeyOwner, NewApiKey};
use crate::audit::AuditEvent;
use crate::{rules, StoreError};

const KEY_COLUMNS: &str =
    "k.id, k.user_id, k.name, k.prefix, k.scopes, k.created_at, k.expires_at, k.revoked_at";

fn api_key(row: &SqliteRow) -> Result<ApiKey, sqlx::Error> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKey {
        id: uuid(row, "id")?,
        user_id: uuid(row, "user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        scopes: serde_json::from_str(&scopes).map_err(|e| sqlx::Error::Decode(e.into()))?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl SqliteStore {
    pub(super) async fn new_key(
        &self,
        new: &NewApiKey,
        audit: AuditEvent,
    ) -> Result<ApiKey, StoreError> {
        let key = ApiKey {
            id: Uuid::now_v7(),
            user_id: new.user_id,
            name: new.name.clone(),
            prefix: new.prefix.clone(),
            scopes: new.scopes.clone(),
            created_at: rules::now(),
            expires_at: new.expires_at.map(rules::exact),
            revoked_at: None,
        };
        let scopes = serde_json::Value::from(key.scopes.clone()).to_string();
        let mut tx = self.write().await?;
        if !is_live_user(&mut tx, key.user_id)
            .await
            .map_err(self.err())?
        {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO api_keys \
             (id, user_id, name, prefix, hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.id.hyphenated())
        .bind(key.user_id.hyphenated())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&new.hash)
        .bind(scopes)
        .bind(key.created_at)
        .bind(key.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| rules::conflict_as(self.err()(e), "an API key with this hash exists"))?;
        append_in(&mut tx, rules::key_event(audit, key.id))
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok(key)
    }

    pub(super) async fn keys_of(&self, user_id: Uuid) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.user_id = $1 \
             ORDER BY k.created_at DESC, k.id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id.hyphenated())
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(|r| api_key(r).map_err(self.err()))
            .collect()
    }

    pub(super) async fn revoke_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 \
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(key_id.hyphenated())
        .bind(user_id.hyphenated())
        .bind(rules::now())
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        if revoked.rows_affected() == 0 {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND user_id = $2)",
            )
            .bind(key_id.hyphenated())
            .bind(user_id.hyphenated())
            .fetch_one(&mut *tx)
            .await
            .map_err(self.err())?;
            // Already revoked: nothing changed, so nothing to audit (the rollback is a no-op).
            return if exists {
                Ok(())
            } else {
                Err(StoreError::NotFound)
            };
        }
        append_in(&mut tx, audit).await.map_err(self.err())?;
        tx.commit().await.map_err(self.err())
    }

    pub(super) async fn key_by_hash(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyOwner>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, u.role FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.hash = $1 AND k.revoked_at IS NULL AND u.deleted_at IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        let Some(row) = row else { return Ok(None) };
        let owner = (|| {
            Ok::<_, sqlx::Error>(KeyOwner {
                key: api_key(&row)?,
                role: rules::role(row.try_get("role")?)?,
            })
        })()
        .map_err(self.err())?;
        Ok(owner
            .key
            .expires_at
            .is_none_or(|at| at > now)
            .then_some(owner))
    }
}
