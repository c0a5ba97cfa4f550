//! The subscriptions contract: each user's tier and Stripe subscription, changed only by verified
//! Stripe events, each applied at most once.
//!
//! [`Subscriptions::apply_stripe_event`] records the event id in `stripe_events` and applies its
//! change in the same transaction, so a redelivered event (same id) finds its id taken and changes
//! nothing, and an event is never recorded without its change or applied without its record. What
//! an event means (which tier a price buys, what a status does to the tier) is decided by the
//! caller; the store only finds the user, orders events and writes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

/// What a user pays for; each tier has its own limits (configured by the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Pro,
    Enterprise,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Free, Tier::Pro, Tier::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "free" => Some(Tier::Free),
            "pro" => Some(Tier::Pro),
            "enterprise" => Some(Tier::Enterprise),
            _ => None,
        }
    }
}

/// A user's row of `subscriptions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    pub user_id: Uuid,
    pub stripe_customer_id: String,
    pub stripe_subscription_id: Option<String>,
    /// Stripe's status (`active`, `past_due`, `canceled`, …).
    pub status: String,
    pub tier: Tier,
    pub current_period_end: Option<DateTime<Utc>>,
    /// The `created` time of the newest event applied.
    pub last_event_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A verified Stripe event, reduced to what the store applies.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeEvent {
    /// `evt_…`: applying the same id twice changes nothing the second time.
    pub id: String,
    /// Stripe's event type, kept as received.
    pub kind: String,
    /// When Stripe created the event: orders events of one customer.
    pub created: DateTime<Utc>,
    /// `None`: a type Helix does not act on; recorded as `ignored`.
    pub change: Option<BillingChange>,
}

/// What an event changes.
#[derive(Debug, Clone, PartialEq)]
pub enum BillingChange {
    /// A subscription was created, updated or deleted: set the subscription and the user's tier.
    Subscription {
        customer_id: String,
        subscription_id: String,
        /// The user the subscription's metadata names: used when the customer is not known yet.
        user_hint: Option<Uuid>,
        status: String,
        tier: Tier,
        current_period_end: Option<DateTime<Utc>>,
    },
    /// A payment failed: set the subscription's status; the tier is left as it is (Stripe retries
    /// the payment and reports the outcome with a subscription event).
    PaymentFailed { customer_id: String, status: String },
}

impl BillingChange {
    pub fn customer_id(&self) -> &str {
        match self {
            BillingChange::Subscription { customer_id, .. }
            | BillingChange::PaymentFailed { customer_id, .. } => customer_id,
        }
    }

    fn user_hint(&self) -> Option<Uuid> {
        match self {
            BillingChange::Subscription { user_hint, .. } => *user_hint,
            BillingChange::PaymentFailed { .. } => None,
        }
    }
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// The change was applied to this user.
    Applied { user_id: Uuid },
    /// No user has this customer (and none was named): recorded, nothing changed.
    UnknownCustomer,
    /// A type Helix does not act on: recorded, nothing changed.
    Ignored,
    /// Older than an event already applied to this user's subscription: recorded, nothing changed.
    Stale { user_id: Uuid },
    /// This event id was recorded before: nothing changed, nothing recorded.
    Duplicate,
}

impl EventOutcome {
    /// What `stripe_events.outcome` holds (`duplicate` is never stored).
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Applied { .. } => "applied",
            EventOutcome::UnknownCustomer => "unknown_customer",
            EventOutcome::Ignored => "ignored",
            EventOutcome::Stale { .. } => "stale",
            EventOutcome::Duplicate => "duplicate",
        }
    }

    pub(crate) fn user_id(self) -> Option<Uuid> {
        match self {
            EventOutcome::Applied { user_id } | EventOutcome::Stale { user_id } => Some(user_id),
            _ => None,
        }
    }
}

/// An event as `stripe_events` recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedEvent {
    pub event_id: String,
    pub kind: String,
    pub customer_id: Option<String>,
    pub user_id: Option<Uuid>,
    /// `applied`, `unknown_customer`, `ignored` or `stale`.
    pub outcome: String,
    pub created_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

#[async_trait]
pub trait Subscriptions: Send + Sync {
    /// Record the event and apply its change in one transaction. The user is the one whose
    /// subscription has the event's customer; failing that, the live user the change names
    /// (whose subscription then takes the customer). [`EventOutcome::Duplicate`] when the id was
    /// recorded before, whatever it led to then.
    async fn apply_stripe_event(&self, event: &StripeEvent) -> Result<EventOutcome, StoreError>;

    /// A user's subscription, if they ever had one.
    async fn subscription(&self, user_id: Uuid) -> Result<Option<Subscription>, StoreError>;

    /// The user whose subscription has this Stripe customer.
    async fn user_by_customer(&self, customer_id: &str) -> Result<Option<Uuid>, StoreError>;

    /// A recorded event by id.
    async fn stripe_event(&self, event_id: &str) -> Result<Option<RecordedEvent>, StoreError>;
}

/// The subscription row found by the event's customer, as the deciding transaction read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Known {
    pub user_id: Uuid,
    pub last_event_at: DateTime<Utc>,
    /// The subscription the row holds now.
    pub subscription_id: Option<String>,
}

/// Whose event it is and whether it still applies, from what the transaction read: the
/// subscription found by customer, else whether the named user is live. Stale: older than the
/// last event applied to the customer, or the end of a subscription other than the current one
/// (a customer who moved to a new subscription keeps it when the old one's cancellation arrives).
pub(crate) fn decide(
    event: &StripeEvent,
    by_customer: Option<Known>,
    hinted_live: bool,
) -> EventOutcome {
    let Some(change) = &event.change else {
        return EventOutcome::Ignored;
    };
    match by_customer {
        Some(known) if event.created < known.last_event_at || ends_another(change, &known) => {
            EventOutcome::Stale {
                user_id: known.user_id,
            }
        }
        Some(known) => EventOutcome::Applied {
            user_id: known.user_id,
        },
        None => match change.user_hint().filter(|_| hinted_live) {
            Some(user_id) => EventOutcome::Applied { user_id },
            None => EventOutcome::UnknownCustomer,
        },
    }
}

/// A change that would drop the user to free because of a subscription that is not the one they
/// hold now.
fn ends_another(change: &BillingChange, known: &Known) -> bool {
    match (change, &known.subscription_id) {
        (
            BillingChange::Subscription {
                subscription_id,
                tier,
                ..
            },
            Some(current),
        ) => subscription_id != current && *tier == Tier::Free,
        _ => false,
    }
}

/// The user a change names, to check for liveness when its customer is unknown.
pub(crate) fn hint(event: &StripeEvent) -> Option<Uuid> {
    event.change.as_ref().and_then(BillingChange::user_hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn event(change: Option<BillingChange>) -> StripeEvent {
        StripeEvent {
            id: "evt_1".into(),
            kind: "customer.subscription.updated".into(),
            created: "2026-03-01T00:00:00Z".parse().unwrap(),
            change,
        }
    }

    fn sub(user_hint: Option<Uuid>) -> Option<BillingChange> {
        Some(BillingChange::Subscription {
            customer_id: "cus_1".into(),
            subscription_id: "sub_1".into(),
            user_hint,
            status: "active".into(),
            tier: Tier::Pro,
            current_period_end: None,
        })
    }

    fn known(user_id: Uuid, last_event_at: DateTime<Utc>, current: &str) -> Option<Known> {
        Some(Known {
            user_id,
            last_event_at,
            subscription_id: Some(current.into()),
        })
    }

    fn ended(subscription_id: &str) -> Option<BillingChange> {
        Some(BillingChange::Subscription {
            customer_id: "cus_1".into(),
            subscription_id: subscription_id.into(),
            user_hint: None,
            status: "canceled".into(),
            tier: Tier::Free,
            current_period_end: None,
        })
    }

    #[test]
    fn decisions() {
        let (user, named) = (Uuid::new_v4(), Uuid::new_v4());
        let e = event(sub(Some(named)));
        let at = e.created;
        assert_eq!(decide(&event(None), None, false), EventOutcome::Ignored);
        assert_eq!(
            decide(&e, known(user, at, "sub_1"), true),
            EventOutcome::Applied { user_id: user },
            "a known customer wins over the metadata; same second still applies"
        );
        assert_eq!(
            decide(&e, known(user, at + TimeDelta::seconds(1), "sub_1"), true),
            EventOutcome::Stale { user_id: user }
        );
        assert_eq!(
            decide(&e, None, true),
            EventOutcome::Applied { user_id: named }
        );
        assert_eq!(decide(&e, None, false), EventOutcome::UnknownCustomer);
        assert_eq!(
            decide(&event(sub(None)), None, true),
            EventOutcome::UnknownCustomer
        );
    }

    #[test]
    fn only_the_current_subscription_ending_drops_the_tier() {
        let user = Uuid::new_v4();
        let at = event(None).created;
        let moved_on = known(user, at - TimeDelta::seconds(60), "sub_2");
        assert_eq!(
            decide(&event(ended("sub_1")), moved_on.clone(), false),
            EventOutcome::Stale { user_id: user },
            "the old subscription's cancellation arrives late"
        );
        assert_eq!(
            decide(&event(ended("sub_2")), moved_on.clone(), false),
            EventOutcome::Applied { user_id: user }
        );
        assert_eq!(
            decide(&event(sub(None)), moved_on, false),
            EventOutcome::Applied { user_id: user },
            "a new paid subscription replaces the current one"
        );
    }
}
