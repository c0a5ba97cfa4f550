//! [`Subscriptions`] on PostgreSQL. Applying an event first takes a transaction-scoped advisory
//! lock on its customer, so two events of one customer are decided one after the other even before
//! the customer has a row to lock (its first two events may arrive at once), then claims the event
//! id with `INSERT … ON CONFLICT DO NOTHING`: a concurrent delivery of the same event waits on the
//! id's unique index and then finds it taken.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::accounts::lock_live_user;
use super::PgStore;
use crate::subscriptions::{
    self, BillingChange, EventOutcome, Known, RecordedEvent, StripeEvent, Subscription,
    Subscriptions,
};
use crate::{rules, StoreError};

const SUBSCRIPTION_COLUMNS: &str = "user_id, stripe_customer_id, stripe_subscription_id, status, \
     tier, current_period_end, last_event_at, updated_at";

fn subscription(row: &PgRow) -> Result<Subscription, sqlx::Error> {
    Ok(Subscription {
        user_id: row.try_get("user_id")?,
        stripe_customer_id: row.try_get("stripe_customer_id")?,
        stripe_subscription_id: row.try_get("stripe_subscription_id")?,
        status: row.try_get("status")?,
        tier: rules::tier(row.try_get("tier")?)?,
        current_period_end: row.try_get("current_period_end")?,
        last_event_at: row.try_get("last_event_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn recorded(row: &PgRow) -> Result<RecordedEvent, sqlx::Error> {
    Ok(RecordedEvent {
        event_id: row.try_get("event_id")?,
        kind: row.try_get("type")?,
        customer_id: row.try_get("customer_id")?,
        user_id: row.try_get("user_id")?,
        outcome: row.try_get("outcome")?,
        created_at: row.try_get("created_at")?,
        received_at: row.try_get("received_at")?,
    })
}

/// Serialise the events of one customer until the transaction ends, then read its subscription.
/// Why two int4 keys: that key space is apart from the bigint keys of the migrator and the audit log.
async fn lock_by_customer(
    conn: &mut PgConnection,
    customer_id: &str,
) -> Result<Option<Known>, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('helix_stripe_customer'), hashtext($1))")
        .bind(customer_id)
        .execute(&mut *conn)
        .await?;
    let row: Option<(Uuid, DateTime<Utc>, Option<String>)> = sqlx::query_as(
        "SELECT user_id, last_event_at, stripe_subscription_id FROM subscriptions \
         WHERE stripe_customer_id = $1 FOR UPDATE",
    )
    .bind(customer_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(user_id, last_event_at, subscription_id)| Known {
        user_id,
        last_event_at,
        subscription_id,
    }))
}

/// Record the event with its outcome; `false` when its id was recorded before.
async fn claim(
    conn: &mut PgConnection,
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
    .bind(outcome.user_id())
    .bind(outcome.as_str())
    .bind(rules::exact(event.created))
    .bind(rules::now())
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Write the change for `user_id`: the subscription row and, for a subscription event, the tier.
async fn apply(
    conn: &mut PgConnection,
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
            .bind(user_id)
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
                .bind(user_id)
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
            .bind(user_id)
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
impl Subscriptions for PgStore {
    async fn apply_stripe_event(&self, event: &StripeEvent) -> Result<EventOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        let by_customer = match &event.change {
            Some(change) => lock_by_customer(&mut tx, change.customer_id())
                .await
                .map_err(self.err())?,
            None => None,
        };
        let hinted_live = match subscriptions::hint(event).filter(|_| by_customer.is_none()) {
            Some(user) => lock_live_user(&mut tx, user).await.map_err(self.err())?,
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
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?
            .as_ref()
            .map(subscription)
            .transpose()
            .map_err(self.err())
    }

    async fn user_by_customer(&self, customer_id: &str) -> Result<Option<Uuid>, StoreError> {
        sqlx::query_scalar("SELECT user_id FROM subscriptions WHERE stripe_customer_id = $1")
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())
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
