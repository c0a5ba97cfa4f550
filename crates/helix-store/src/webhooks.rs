//! The webhooks contract: events received from outside, the endpoints subscribed to events, and
//! the deliveries of events to endpoints with every attempt.
//!
//! Both engines run the same statements: the tables keep ids as text and times as microseconds
//! since the Unix epoch in either dialect, so [`impl_webhooks!`] writes the implementation once
//! and each engine instantiates it on its own pools (SQLite's writes on its writer connection).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

/// The most events one [`Webhooks::record_events`] call takes (bound parameters stay far below
/// either engine's limit).
pub const MAX_EVENT_BATCH: usize = 1_000;

/// An event as received: verified, with the sender's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: Uuid,
    pub source: String,
    /// The sender's id of the event; unique per source.
    pub event_id: String,
    pub event_type: String,
    /// The JSON body as received.
    pub payload: String,
    pub received_us: i64,
}

/// What recording one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored now, under this id.
    New(Uuid),
    /// The source had already sent this event id: nothing stored; the first copy's id.
    Duplicate(Uuid),
}

impl Recorded {
    pub fn id(self) -> Uuid {
        match self {
            Recorded::New(id) | Recorded::Duplicate(id) => id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Disabled,
}

/// An endpoint that receives events of some types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub id: Uuid,
    pub owner: Uuid,
    pub target_url: String,
    /// Event types delivered; `*` matches all.
    pub event_types: Vec<String>,
    /// `whsec_<base64>`; signs deliveries. Never logged.
    #[serde(skip)]
    pub secret: String,
    pub status: SubscriptionStatus,
    pub disabled_reason: Option<String>,
    /// When the current run of failures began (`None` while healthy).
    pub failing_since_us: Option<i64>,
    pub created_us: i64,
    pub updated_us: i64,
}

impl Subscription {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == "*" || t == event_type)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Succeeded,
    /// Out of attempts, or the endpoint was disabled.
    Failed,
    /// The endpoint answered 410 Gone: it was unsubscribed.
    Gone,
    /// The subscription was removed before the delivery succeeded.
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Gone => "gone",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "succeeded" => DeliveryStatus::Succeeded,
            "failed" => DeliveryStatus::Failed,
            "gone" => DeliveryStatus::Gone,
            "cancelled" => DeliveryStatus::Cancelled,
            _ => return None,
        })
    }
}

/// One try to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// From 1.
    pub n: u32,
    pub at_us: i64,
    /// The endpoint's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    /// Why it did not succeed (no response body: endpoints may echo secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub owner: Uuid,
    /// The [`Event`] delivered.
    pub event_id: Uuid,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// The first [`MAX_ATTEMPTS_KEPT`] attempts.
    pub attempts: Vec<Attempt>,
    /// Every attempt made, replays included.
    pub attempt_count: u32,
    pub next_attempt_us: Option<i64>,
    pub created_us: i64,
    pub updated_us: i64,
}

/// A delivery and what sending it needs.
#[derive(Debug, Clone)]
pub struct DeliveryContext {
    pub delivery: Delivery,
    pub subscription: Option<Subscription>,
    pub event: Option<Event>,
}

/// The joined row [`Webhooks::delivery_context`] reads.
pub(crate) fn context_sql() -> String {
    let prefixed = |table: &str, columns: &str, prefix: &str| {
        columns
            .split(',')
            .map(|c| format!("{table}.{0} AS {prefix}{0}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT {}, {}, {} FROM webhook_deliveries d \
         LEFT JOIN webhook_subscriptions s ON s.id = d.subscription_id \
         LEFT JOIN webhook_events e ON e.id = d.event_id WHERE d.id = $1",
        prefixed("d", DELIVERY_COLUMNS, ""),
        prefixed("s", SUBSCRIPTION_COLUMNS, "s_"),
        prefixed("e", EVENT_COLUMNS, "e_"),
    )
}

/// Which deliveries to list: newest first, before the cursor.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub owner: Option<Uuid>,
    pub subscription_id: Option<Uuid>,
    pub status: Option<DeliveryStatus>,
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// How an attempt ended, as [`Webhooks::record_attempt`] stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempt: Attempt,
    /// The delivery's status after it.
    pub status: DeliveryStatus,
    pub next_attempt_us: Option<i64>,
}

/// A delivery keeps its first attempts only (a replayed delivery could otherwise grow without
/// bound); `attempt_count` stays exact.
pub const MAX_ATTEMPTS_KEPT: usize = 50;

/// The columns an attempt sets, given the dialect's expression for `attempts` with the attempt
/// appended.
pub(crate) fn attempt_set(appended: &str) -> String {
    format!(
        "attempts = CASE WHEN attempt_count < {MAX_ATTEMPTS_KEPT} THEN {appended} ELSE attempts END, \
         attempt_count = attempt_count + 1"
    )
}

#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Store events in one statement (at most [`MAX_EVENT_BATCH`]); each entry says whether it was
    /// new or a repeat of an event id its source sent before (also within the call).
    async fn record_events(&self, events: &[Event]) -> Result<Vec<Recorded>, StoreError>;

    async fn event(&self, id: Uuid) -> Result<Option<Event>, StoreError>;

    /// Events newest first (of one source, or all), before the cursor.
    async fn list_events(
        &self,
        source: Option<&str>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError>;

    async fn subscription(&self, id: Uuid) -> Result<Option<Subscription>, StoreError>;

    /// Subscriptions newest first, of one owner or all.
    async fn list_subscriptions(
        &self,
        owner: Option<Uuid>,
    ) -> Result<Vec<Subscription>, StoreError>;

    /// Every active subscription (see [`Subscription::wants`] for which events each takes).
    async fn active_subscriptions(&self) -> Result<Vec<Subscription>, StoreError>;

    /// Remove a subscription (of `owner` when given) and cancel its pending deliveries; false
    /// when there was none.
    async fn delete_subscription(&self, id: Uuid, owner: Option<Uuid>) -> Result<bool, StoreError>;

    /// Disable a subscription (410 Gone, or failing too long) and end its pending deliveries
    /// with `status`; false when it was not active.
    async fn disable_subscription(
        &self,
        id: Uuid,
        reason: &str,
        status: DeliveryStatus,
        now_us: i64,
    ) -> Result<bool, StoreError>;

    /// After a delivery's attempt: healthy clears the failure run; failing starts it if none
    /// is running. Returns when the current run began (`None` when healthy).
    async fn mark_endpoint(
        &self,
        id: Uuid,
        healthy: bool,
        now_us: i64,
    ) -> Result<Option<i64>, StoreError>;

    /// One pending delivery of `event` to each subscription, created once: the entry is the
    /// delivery's id, new or existing.
    async fn create_deliveries(
        &self,
        event: &Event,
        subscriptions: &[Subscription],
        now_us: i64,
    ) -> Result<Vec<Uuid>, StoreError>;

    async fn delivery(&self, id: Uuid) -> Result<Option<Delivery>, StoreError>;

    /// A delivery with its subscription and event (either gone: `None`), in one round trip:
    /// what an attempt needs.
    async fn delivery_context(&self, id: Uuid) -> Result<Option<DeliveryContext>, StoreError>;

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError>;

    /// Append an attempt and move the delivery; false when the delivery is no longer pending
    /// (cancelled meanwhile), and then nothing changes.
    async fn record_attempt(&self, id: Uuid, record: &AttemptRecord) -> Result<bool, StoreError>;

    /// [`Webhooks::record_attempt`] for many deliveries (distinct ids) in one round trip and one
    /// commit; entry i says whether delivery i was still pending.
    async fn record_attempts(
        &self,
        batch: &[(Uuid, AttemptRecord)],
    ) -> Result<Vec<bool>, StoreError>;

    /// Make a finished delivery pending again (a replay); false when it is pending already or
    /// its subscription is not active.
    async fn reset_delivery(&self, id: Uuid, now_us: i64) -> Result<bool, StoreError>;
}

pub(crate) const EVENT_COLUMNS: &str = "id, source, event_id, event_type, payload, received_us";
pub(crate) const SUBSCRIPTION_COLUMNS: &str = "id, owner, target_url, event_types, secret, \
     status, disabled_reason, failing_since_us, created_us, updated_us";
pub(crate) const DELIVERY_COLUMNS: &str = "id, subscription_id, owner, event_id, event_type, \
     status, attempts, attempt_count, next_attempt_us, created_us, updated_us";

/// `INSERT` of `n` events, each `(id, source, event_id, event_type, payload, received_us)`,
/// answering with the rows it stored.
pub(crate) fn insert_events_sql(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let b = i * 6;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            )
        })
        .collect();
    format!(
        "INSERT INTO webhook_events ({EVENT_COLUMNS}) VALUES {} \
         ON CONFLICT (source, event_id) DO NOTHING RETURNING id",
        rows.join(", ")
    )
}

/// The stored ids of `n` `(source, event_id)` pairs.
pub(crate) fn find_events_sql(n: usize) -> String {
    let pairs: Vec<String> = (0..n)
        .map(|i| format!("(source = ${} AND event_id = ${})", 2 * i + 1, 2 * i + 2))
        .collect();
    format!(
        "SELECT id, source, event_id FROM webhook_events WHERE {}",
        pairs.join(" OR ")
    )
}

/// Match what was inserted (`inserted` ids) and what was found afterwards (`existing`, keyed by
/// source and event id) back to the input order.
pub(crate) fn recorded(
    events: &[Event],
    inserted: &std::collections::HashSet<Uuid>,
    existing: &std::collections::HashMap<(String, String), Uuid>,
) -> Result<Vec<Recorded>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .map(|e| {
            let key = (e.source.clone(), e.event_id.clone());
            if inserted.contains(&e.id) && seen.insert(key.clone()) {
                return Ok(Recorded::New(e.id));
            }
            existing
                .get(&key)
                .map(|id| Recorded::Duplicate(*id))
                .ok_or_else(|| StoreError::Database(format!("event {} vanished", e.event_id)))
        })
        .collect()
}

pub(crate) fn uuid_text(text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}

pub(crate) fn json_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}

fn status_text(text: &str) -> Result<SubscriptionStatus, sqlx::Error> {
    match text {
        "active" => Ok(SubscriptionStatus::Active),
        "disabled" => Ok(SubscriptionStatus::Disabled),
        other => Err(sqlx::Error::Decode(
            format!("unknown subscription status {other}").into(),
        )),
    }
}

/// Rows of either engine read the same way.
pub(crate) trait WebhookRow: sqlx::Row {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// An `INTEGER` column (32 bits on PostgreSQL).
    fn int32(&self, column: &str) -> Result<i32, sqlx::Error>;

    fn event(&self) -> Result<Event, sqlx::Error> {
        self.event_at("")
    }

    /// An event from columns named `<prefix><column>` (a joined row).
    fn event_at(&self, prefix: &str) -> Result<Event, sqlx::Error> {
        let c = |name: &str| format!("{prefix}{name}");
        Ok(Event {
            id: uuid_text(&self.text(&c("id"))?)?,
            source: self.text(&c("source"))?,
            event_id: self.text(&c("event_id"))?,
            event_type: self.text(&c("event_type"))?,
            payload: self.text(&c("payload"))?,
            received_us: self.int(&c("received_us"))?,
        })
    }

    fn subscription(&self) -> Result<Subscription, sqlx::Error> {
        self.subscription_at("")
    }

    /// A subscription from columns named `<prefix><column>` (a joined row).
    fn subscription_at(&self, prefix: &str) -> Result<Subscription, sqlx::Error> {
        let c = |name: &str| format!("{prefix}{name}");
        Ok(Subscription {
            id: uuid_text(&self.text(&c("id"))?)?,
            owner: uuid_text(&self.text(&c("owner"))?)?,
            target_url: self.text(&c("target_url"))?,
            event_types: json_text(&self.text(&c("event_types"))?)?,
            secret: self.text(&c("secret"))?,
            status: status_text(&self.text(&c("status"))?)?,
            disabled_reason: self.opt_text(&c("disabled_reason"))?,
            failing_since_us: self.opt_int(&c("failing_since_us"))?,
            created_us: self.int(&c("created_us"))?,
            updated_us: self.int(&c("updated_us"))?,
        })
    }

    fn delivery(&self) -> Result<Delivery, sqlx::Error> {
        let status = self.text("status")?;
        Ok(Delivery {
            id: uuid_text(&self.text("id")?)?,
            subscription_id: uuid_text(&self.text("subscription_id")?)?,
            owner: uuid_text(&self.text("owner")?)?,
            event_id: uuid_text(&self.text("event_id")?)?,
            event_type: self.text("event_type")?,
            status: DeliveryStatus::parse(&status).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown delivery status {status}").into())
            })?,
            attempts: json_text(&self.text("attempts")?)?,
            attempt_count: self.int32("attempt_count")?.try_into().unwrap_or(0),
            next_attempt_us: self.opt_int("next_attempt_us")?,
            created_us: self.int("created_us")?,
            updated_us: self.int("updated_us")?,
        })
    }
}

macro_rules! webhook_row {
    ($row:ty) => {
        impl $crate::webhooks::WebhookRow for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn int32(&self, column: &str) -> Result<i32, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
        }
    };
}
pub(crate) use webhook_row;

/// The one implementation of [`Webhooks`], for a store type whose `$read` and `$write` fields
/// are its pools, whose `err()` maps driver errors, whose `insert_webhook_events` stores a batch
/// of events and `update_webhook_attempts` a batch of attempts in its dialect's fastest form,
/// each answering with the ids it changed.
macro_rules! impl_webhooks {
    ($store:ty, $read:ident, $write:ident) => {
        #[async_trait::async_trait]
        impl $crate::webhooks::Webhooks for $store {
            async fn record_events(
                &self,
                events: &[$crate::webhooks::Event],
            ) -> Result<Vec<$crate::webhooks::Recorded>, $crate::StoreError> {
                use $crate::webhooks::*;
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                if events.len() > MAX_EVENT_BATCH {
                    return Err($crate::StoreError::Invalid(format!(
                        "at most {MAX_EVENT_BATCH} events at once"
                    )));
                }
                let mut inserted = std::collections::HashSet::new();
                for id in self.insert_webhook_events(events).await.map_err(self.err())? {
                    inserted.insert(uuid_text(&id).map_err(self.err())?);
                }
                let mut existing = std::collections::HashMap::new();
                if inserted.len() < events.len() {
                    let sql = find_events_sql(events.len());
                    let mut query = sqlx::query(&sql);
                    for e in events {
                        query = query.bind(&e.source).bind(&e.event_id);
                    }
                    for row in query.fetch_all(&self.$write).await.map_err(self.err())? {
                        let id = uuid_text(&row.text("id").map_err(self.err())?)
                            .map_err(self.err())?;
                        let key = (
                            row.text("source").map_err(self.err())?,
                            row.text("event_id").map_err(self.err())?,
                        );
                        existing.insert(key, id);
                    }
                }
                recorded(events, &inserted, &existing)
            }

            async fn event(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::webhooks::Event>, $crate::StoreError> {
                use $crate::webhooks::*;
                let sql = format!("SELECT {EVENT_COLUMNS} FROM webhook_events WHERE id = $1");
                sqlx::query(&sql)
                    .bind(id.to_string())
                    .fetch_optional(&self.$read)
                    .await
                    .map_err(self.err())?
                    .map(|r| r.event())
                    .transpose()
                    .map_err(self.err())
            }

            async fn list_events(
                &self,
                source: Option<&str>,
                before: Option<uuid::Uuid>,
                limit: u32,
            ) -> Result<Vec<$crate::webhooks::Event>, $crate::StoreError> {
                use $crate::webhooks::*;
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM webhook_events \
                     WHERE ($1 = '' OR source = $1) AND ($2 = '' OR id < $2) \
                     ORDER BY id DESC LIMIT $3"
                );
                sqlx::query(&sql)
                    .bind(source.unwrap_or(""))
                    .bind(before.map(|b| b.to_string()).unwrap_or_default())
                    .bind(i64::from(limit))
                    .fetch_all(&self.$read)
                    .await
                    .map_err(self.err())?
                    .iter()
                    .map(|r| r.event())
                    .collect::<Result<_, _>>()
                    .map_err(self.err())
            }

            async fn create_subscription(
                &self,
                s: &$crate::webhooks::Subscription,
            ) -> Result<(), $crate::StoreError> {
                use $crate::webhooks::*;
                let sql = format!(
                    "INSERT INTO webhook_subscriptions ({SUBSCRIPTION_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                );
                let status = match s.status {
                    SubscriptionStatus::Active => "active",
                    SubscriptionStatus::Disabled => "disabled",
                };
                sqlx::query(&sql)
                    .bind(s.id.to_string())
                    .bind(s.owner.to_string())
                    .bind(&s.target_url)
                    .bind(serde_json::to_string(&s.event_types).unwrap_or_default())
                    .bind(&s.secret)
                    .bind(status)
                    .bind(&s.disabled_reason)
                    .bind(s.failing_since_us)
                    .bind(s.created_us)
                    .bind(s.updated_us)
                    .execute(&self.$write)
                    .await
                    .map_err(self.err())?;
                Ok(())
            }

            async fn subscription(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::webhooks::Subscription>, $crate::StoreError> {
                use $crate::webhooks::*;
                let sql = format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1"
                );
                sqlx::query(&sql)
                    .bind(id.to_string())
                    .fetch_optional(&self.$read)
                    .await
                    .map_err(self.err())?
                    .map(|r| r.subscription())
                    .transpose()
                    .map_err(self.err())
            }

            async fn list_subscriptions(
                &self,
                owner: Option<uuid::Uuid>,
            ) -> Result<Vec<$crate::webhooks::Subscription>, $crate::StoreError> {
                use $crate::webhooks::*;
                let sql = format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions \
                     WHERE ($1 = '' OR owner = $1) ORDER BY id DESC"
                );
                sqlx::query(&sql)
                    .bind(owner.map(|o| o.to_string()).unwrap_or_default())
                    .fetch_all(&self.$read)
                    .await
                    .map_err(self.err())?
                    .iter()
                    .map(|r| r.subscription())
                    .collect::<Result<_, _>>()
                    .map_err(self.err())
            }

            async fn active_subscriptions(
                &self,
            ) -> Result<Vec<$crate::webhooks::Subscription>, $crate::StoreError> {
                use $crate::webhooks::*;
                let sql = format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions \
                     WHERE status = 'active' ORDER BY id"
                );
                sqlx::query(&sql)
                    .fetch_all(&self.$read)
                    .await
                    .map_err(self.err())?
                    .iter()
                    .map(|r| r.subscription())
                    .collect::<Result<_, _>>()
                    .map_err(self.err())
            }

            async fn delete_subscription(
                &self,
                id: uuid::Uuid,
                owner: Option<uuid::Uuid>,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.$write.begin().await.map_err(self.err())?;
                let gone = sqlx::query(
                    "DELETE FROM webhook_subscriptions WHERE id = $1 AND ($2 = '' OR owner = $2)",
                )
                .bind(id.to_string())
                .bind(owner.map(|o| o.to_string()).unwrap_or_default())
                .execute(&mut *tx)
                .await
                .map_err(self.err())?
                .rows_affected()
                    > 0;
                if gone {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'cancelled', \
                         next_attempt_us = NULL WHERE subscription_id = $1 AND status = 'pending'",
                    )
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err())?;
                }
                tx.commit().await.map_err(self.err())?;
                Ok(gone)
            }

            async fn disable_subscription(
                &self,
                id: uuid::Uuid,
                reason: &str,
                status: $crate::webhooks::DeliveryStatus,
                now_us: i64,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.$write.begin().await.map_err(self.err())?;
                let changed = sqlx::query(
                    "UPDATE webhook_subscriptions SET status = 'disabled', disabled_reason = $2, \
                     updated_us = $3 WHERE id = $1 AND status = 'active'",
                )
                .bind(id.to_string())
                .bind(reason)
                .bind(now_us)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?
                .rows_affected()
                    > 0;
                if changed {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = $2, next_attempt_us = NULL, \
                         updated_us = $3 WHERE subscription_id = $1 AND status = 'pending'",
                    )
                    .bind(id.to_string())
                    .bind(status.as_str())
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err())?;
                }
                tx.commit().await.map_err(self.err())?;
                Ok(changed)
            }

            async fn mark_endpoint(
                &self,
                id: uuid::Uuid,
                healthy: bool,
                now_us: i64,
            ) -> Result<Option<i64>, $crate::StoreError> {
                use $crate::webhooks::*;
                // Why the guard on the current value: most attempts change nothing, and a
                // statement that matches no row takes no write lock worth mentioning.
                let sql = if healthy {
                    "UPDATE webhook_subscriptions SET failing_since_us = NULL \
                     WHERE id = $1 AND failing_since_us IS NOT NULL AND $2 >= 0"
                } else {
                    "UPDATE webhook_subscriptions SET failing_since_us = $2 \
                     WHERE id = $1 AND failing_since_us IS NULL"
                };
                sqlx::query(sql)
                    .bind(id.to_string())
                    .bind(now_us)
                    .execute(&self.$write)
                    .await
                    .map_err(self.err())?;
                if healthy {
                    return Ok(None);
                }
                let row = sqlx::query(
                    "SELECT failing_since_us FROM webhook_subscriptions WHERE id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(&self.$write)
                .await
                .map_err(self.err())?;
                match row {
                    Some(row) => row.opt_int("failing_since_us").map_err(self.err()),
                    None => Ok(None),
                }
            }

            async fn create_deliveries(
                &self,
                event: &$crate::webhooks::Event,
                subscriptions: &[$crate::webhooks::Subscription],
                now_us: i64,
            ) -> Result<Vec<uuid::Uuid>, $crate::StoreError> {
                use $crate::webhooks::*;
                let mut tx = self.$write.begin().await.map_err(self.err())?;
                let mut ids = Vec::with_capacity(subscriptions.len());
                for s in subscriptions {
                    let row = sqlx::query(
                        "INSERT INTO webhook_deliveries (id, subscription_id, owner, event_id, \
                         event_type, status, attempts, attempt_count, next_attempt_us, \
                         created_us, updated_us) \
                         VALUES ($1, $2, $3, $4, $5, 'pending', '[]', 0, $6, $6, $6) \
                         ON CONFLICT (event_id, subscription_id) \
                         DO UPDATE SET event_type = excluded.event_type RETURNING id",
                    )
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(s.id.to_string())
                    .bind(s.owner.to_string())
                    .bind(event.id.to_string())
                    .bind(&event.event_type)
                    .bind(now_us)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(self.err())?;
                    ids.push(
                        uuid_text(&row.text("id").map_err(self.err())?).map_err(self.err())?,
                    );
                }
                tx.commit().await.map_err(self.err())?;
                Ok(ids)
            }

            async fn delivery(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::webhooks::Delivery>, $crate::StoreError> {
                use $crate::webhooks::*;
                let sql =
                    format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
                sqlx::query(&sql)
                    .bind(id.to_string())
                    .fetch_optional(&self.$read)
                    .await
                    .map_err(self.err())?
                    .map(|r| r.delivery())
                    .transpose()
                    .map_err(self.err())
            }

            async fn delivery_context(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::webhooks::DeliveryContext>, $crate::StoreError> {
                use $crate::webhooks::*;
                let row = sqlx::query(&context_sql())
                    .bind(id.to_string())
                    .fetch_optional(&self.$read)
                    .await
                    .map_err(self.err())?;
                let Some(row) = row else { return Ok(None) };
                let read = || -> Result<DeliveryContext, sqlx::Error> {
                    let subscription = match row.opt_text("s_id")? {
                        Some(_) => Some(row.subscription_at("s_")?),
                        None => None,
                    };
                    let event = match row.opt_text("e_id")? {
                        Some(_) => Some(row.event_at("e_")?),
                        None => None,
                    };
                    Ok(DeliveryContext {
                        delivery: row.delivery()?,
                        subscription,
                        event,
                    })
                };
                read().map(Some).map_err(self.err())
            }

            async fn list_deliveries(
                &self,
                filter: &$crate::webhooks::DeliveryFilter,
            ) -> Result<Vec<$crate::webhooks::Delivery>, $crate::StoreError> {
                use $crate::webhooks::*;
                let sql = format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                     WHERE ($1 = '' OR owner = $1) AND ($2 = '' OR subscription_id = $2) \
                     AND ($3 = '' OR status = $3) AND ($4 = '' OR id < $4) \
                     ORDER BY id DESC LIMIT $5"
                );
                let text = |u: Option<uuid::Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
                sqlx::query(&sql)
                    .bind(text(filter.owner))
                    .bind(text(filter.subscription_id))
                    .bind(filter.status.map(|s| s.as_str()).unwrap_or(""))
                    .bind(text(filter.before))
                    .bind(i64::from(filter.limit))
                    .fetch_all(&self.$read)
                    .await
                    .map_err(self.err())?
                    .iter()
                    .map(|r| r.delivery())
                    .collect::<Result<_, _>>()
                    .map_err(self.err())
            }

            async fn record_attempt(
                &self,
                id: uuid::Uuid,
                record: &$crate::webhooks::AttemptRecord,
            ) -> Result<bool, $crate::StoreError> {
                let done = self.record_attempts(&[(id, record.clone())]).await?;
                Ok(done.first().copied().unwrap_or(false))
            }

            async fn record_attempts(
                &self,
                batch: &[(uuid::Uuid, $crate::webhooks::AttemptRecord)],
            ) -> Result<Vec<bool>, $crate::StoreError> {
                if batch.is_empty() {
                    return Ok(Vec::new());
                }
                let updated: std::collections::HashSet<String> = self
                    .update_webhook_attempts(batch)
                    .await
                    .map_err(self.err())?
                    .into_iter()
                    .collect();
                Ok(batch
                    .iter()
                    .map(|(id, _)| updated.contains(&id.to_string()))
                    .collect())
            }

            async fn reset_delivery(
                &self,
                id: uuid::Uuid,
                now_us: i64,
            ) -> Result<bool, $crate::StoreError> {
                let changed = sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'pending', next_attempt_us = $2, \
                     updated_us = $2 WHERE id = $1 AND status <> 'pending' \
                     AND subscription_id IN \
                     (SELECT id FROM webhook_subscriptions WHERE status = 'active')",
                )
                .bind(id.to_string())
                .bind(now_us)
                .execute(&self.$write)
                .await
                .map_err(self.err())?
                .rows_affected();
                Ok(changed > 0)
            }
        }
    };
}
pub(crate) use impl_webhooks;
