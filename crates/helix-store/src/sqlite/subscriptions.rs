//! [`Subscriptions`] on SQLite. An event is applied in one `BEGIN IMMEDIATE` transaction: SQLite's
//! single writer orders events of one customer, and the event id is claimed with
//! `INSERT … ON CONFLICT DO NOTHING` before anything changes.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::accounts::{is_live_user, uuid};
use super::SqliteStore;
use crate::subscriptions::{
    self, BillingChange, EventOutcome, Known, RecordedEvent, StripeEvent, Subscription,
    Subscriptions,
};
use crate::{rules, StoreError};

const SUBSCRIPTION_COLUMNS: &str = "user_id, stripe_customer_id, stripe_subscription_id, status, \
     tier, current_period_end, last_event_at, updated_at";

fn subscription(row: &SqliteRow) -> Result<Subscription, sqlx::Error> {
    Ok(Subscription {
        user_id: uuid(row, "user_id")?,
        stripe_customer_id: row.try_get("stripe_customer_id")?,
        stripe_subscription_id: row.try_get("stripe_subscription_id")?,
        status: row.try_get("status")?,
        tier: rules::tier(row.try_get("tier")?)?,
        current_period_end: row.try_get("current_period_end")?,
        last_event_at: row.try_get("last_event_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn recorded(row: &SqliteRow) -> Result<RecordedEvent, sqlx::Error> {
    let user: Option<uuid::fmt::Hyphenated> = row.try_get("user_id")?;
    Ok(RecordedEvent {
        event_id: row.try_get("event_id")?,
        kind: row.try_get("type")?,
        customer_id: row.try_get("customer_id")?,
        user_id: user.map(|u| u.into_uuid()),
        outcome: row.try_get("outcome")?,
        created_at: row.try_get("created_at")?,
        received_at: row.try_get("received_at")?,
    })
}

async fn by_customer(
    conn: &mut SqliteConnection,
    customer_id: &str,
) -> Result<Option<Known>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_id, last_event_at, stripe_subscription_id FROM subscriptions \
         WHERE stripe_customer_id = $1",
    )
    .bind(customer_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Known {
            user_id: uuid(&r, "user_id")?,
            last_event_at: r.try_get("last_event_at")?,
            subscription_id: r.try_get("stripe_subscription_id")?,
        })
    })
    .transpose()
}

/// Record the event with its outcome; `false` when its id was recorded before.
async fn claim(
    conn: &mut SqliteConnection,
    event: &StripeEvent,
    outcome: EventOutcome,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO stripe_events (event_id, type, customer_id, user_id, outcome, created_at, \
         received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.kind)
    .bind(event.change.as_ref().map(BillingChange::customer_id))
    .bind(outcome.user_id().map(|u| u.hyphenated()))
    .bind(outcome.as_str())
    .bind(rules::exact(event.created))
    .bind(rules::now())
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Write the change for `user_id`: the subscription row and, for a subscription event, the tier.
async fn apply(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    event: &StripeEvent,
    change: &BillingChange,
) -> Result<(), sqlx::Error> {
    let (now, at) = (rules::now(), rules::exact(event.created));
    match change {
        BillingChange::Subscription {
            customer_id,
            subscription_id,
            status,
            tier,
            current_period_end,
            ..
        } => {
            sqlx::query(
                "INSERT INTO subscriptions (user_id, stripe_customer_id, stripe_subscription_id, \
                 status, tier, current_period_end, last_event_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id) DO UPDATE SET \
                 stripe_customer_id = excluded.stripe_customer_id, \
                 stripe_subscription_id = excluded.stripe_subscription_id, \
                 status = excluded.status, tier = excluded.tier, \
                 current_period_end = excluded.current_period_end, \
                 last_event_at = excluded.last_event_at, updated_at = excluded.updated_at",
            )
            .bind(user_id.hyphenated())
            .bind(customer_id)
            .bind(subscription_id)
            .bind(status)
            .bind(tier.as_str())
            .bind(current_period_end.map(rules::exact))
            .bind(at)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            sqlx::query("UPDATE user_profiles SET tier = $2, updated_at = $3 WHERE user_id = $1")
                .bind(user_id.hyphenated())
                .bind(tier.as_str())
                .bind(now)
                .execute(conn)
                .await?;
        }
        BillingChange::PaymentFailed { status, .. } => {
            sqlx::query(
                "UPDATE subscriptions SET status = $2, last_event_at = $3, updated_at = $4 \
                 WHERE user_id = $1",
            )
            .bind(user_id.hyphenated())
            .bind(status)
            .bind(at)
            .bind(now)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

#[async_trait]
impl Subscriptions for SqliteStore {
    async fn apply_stripe_event(&self, event: &StripeEvent) -> Result<EventOutcome, StoreError> {
        let mut tx = self.write().await?;
        let by_customer = match &event.change {
            Some(change) => by_customer(&mut tx, change.customer_id())
                .await
                .map_err(self.err())?,
            None => None,
        };
        let hinted_live = match subscriptions::hint(event).filter(|_| by_customer.is_none()) {
            Some(user) => is_live_user(&mut tx, user).await.map_err(self.err())?,
            None => false,
        };
        let outcome = subscriptions::decide(event, by_customer, hinted_live);
        if !claim(&mut tx, event, outcome).await.map_err(self.err())? {
            return Ok(EventOutcome::Duplicate);
        }
        if let (EventOutcome::Applied { user_id }, Some(change)) = (outcome, &event.change) {
            apply(&mut tx, user_id, event, change)
                .await
                .map_err(self.err())?;
        }
        tx.commit().await.map_err(self.err())?;
        Ok(outcome)
    }

    async fn subscription(&self, user_id: Uuid) -> Result<Option<Subscription>, StoreError> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE user_id = $1");
        sqlx::query(&sql)
            .bind(user_id.hyphenated())
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?
            .as_ref()
            .map(subscription)
            .transpose()
            .map_err(self.err())
    }

    async fn user_by_customer(&self, customer_id: &str) -> Result<Option<Uuid>, StoreError> {
        let found: Option<uuid::fmt::Hyphenated> =
            sqlx::query_scalar("SELECT user_id FROM subscriptions WHERE stripe_customer_id = $1")
                .bind(customer_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(self.err())?;
        Ok(found.map(|u| u.into_uuid()))
    }

    async fn stripe_event(&self, event_id: &str) -> Result<Option<RecordedEvent>, StoreError> {
        sqlx::query("SELECT * FROM stripe_events WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?
            .as_ref()
            .map(recorded)
            .transpose()
            .map_err(self.err())
    }
}
