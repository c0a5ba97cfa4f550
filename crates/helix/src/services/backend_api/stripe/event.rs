//! What a verified Stripe event means for Helix: the event envelope and the parts of its
//! `data.object` that change a subscription, reduced to a [`StripeEvent`] for the store.
//!
//! - `customer.subscription.created` / `.updated`: the subscription's status and the tier its
//!   prices buy (a price's `lookup_key` `pro` / `enterprise`, or its id as configured in
//!   `HELIX_STRIPE_PRICE_PRO` / `HELIX_STRIPE_PRICE_ENTERPRISE`; the highest tier of its items).
//!   `active`, `trialing` and `past_due` keep that tier (past_due: Stripe is still retrying the
//!   payment); any other status (`unpaid`, `canceled`, `incomplete`, `paused`…) means free.
//! - `customer.subscription.deleted`: free, status `canceled`.
//! - `invoice.payment_failed`: status `past_due`; the tier stays until Stripe reports the
//!   subscription `unpaid` or `canceled`.
//! - Any other type: recorded and ignored.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use helix_store::subscriptions::{BillingChange, StripeEvent, Tier};
use serde::Deserialize;
use uuid::Uuid;

/// The metadata key on a subscription that names its Helix user (set at checkout).
pub const USER_METADATA_KEY: &str = "helix_user_id";

/// Price ids that buy a tier, besides lookup keys.
#[derive(Debug, Clone, Default)]
pub struct Prices {
    pub pro: Option<String>,
    pub enterprise: Option<String>,
}

/// A signed body that is not an event Helix can read.
#[derive(Debug, thiserror::Error)]
#[error("not a Stripe event Helix can read: {0}")]
pub struct EventError(String);

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: serde_json::Value,
}

/// A customer is an id, or the customer object when the API expanded it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Customer {
    Id(String),
    Object { id: String },
}

impl Customer {
    fn id(self) -> String {
        match self {
            Customer::Id(id) | Customer::Object { id } => id,
        }
    }
}

#[derive(Deserialize)]
struct SubscriptionObject {
    id: String,
    customer: Customer,
    status: String,
    /// On the subscription before API version 2025-03-31, on its items since.
    current_period_end: Option<i64>,
    items: Items,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Items {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    price: Price,
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
struct Price {
    id: String,
    lookup_key: Option<String>,
}

#[derive(Deserialize)]
struct InvoiceObject {
    customer: Customer,
}

/// Read a verified body.
pub fn parse(body: &[u8], prices: &Prices) -> Result<StripeEvent, EventError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| EventError(e.to_string()))?;
    let created = DateTime::from_timestamp(envelope.created, 0)
        .ok_or_else(|| EventError("created is out of range".into()))?;
    let object = envelope.data.object;
    let change = match envelope.kind.as_str() {
        "customer.subscription.created" | "customer.subscription.updated" => {
            Some(subscription(object, prices, false)?)
        }
        "customer.subscription.deleted" => Some(subscription(object, prices, true)?),
        "invoice.payment_failed" => {
            let invoice: InvoiceObject = from_object(object)?;
            Some(BillingChange::PaymentFailed {
                customer_id: invoice.customer.id(),
                status: "past_due".into(),
            })
        }
        _ => None,
    };
    Ok(StripeEvent {
        id: envelope.id,
        kind: envelope.kind,
        created,
        change,
    })
}

fn from_object<T: serde::de::DeserializeOwned>(object: serde_json::Value) -> Result<T, EventError> {
    serde_json::from_value(object).map_err(|e| EventError(format!("data.object: {e}")))
}

fn subscription(
    object: serde_json::Value,
    prices: &Prices,
    deleted: bool,
) -> Result<BillingChange, EventError> {
    let sub: SubscriptionObject = from_object(object)?;
    let bought = sub
        .items
        .data
        .iter()
        .map(|item| price_tier(&item.price, prices))
        .max()
        .unwrap_or(Tier::Free);
    let status = if deleted {
        "canceled".to_owned()
    } else {
        sub.status
    };
    let period_end = sub.current_period_end.or_else(|| {
        sub.items
            .data
            .iter()
            .filter_map(|i| i.current_period_end)
            .max()
    });
    Ok(BillingChange::Subscription {
        customer_id: sub.customer.id(),
        user_hint: sub
            .metadata
            .get(USER_METADATA_KEY)
            .and_then(|v| Uuid::parse_str(v.trim()).ok()),
        tier: if keeps_tier(&status) {
            bought
        } else {
            Tier::Free
        },
        status,
        subscription_id: sub.id,
        current_period_end: period_end.and_then(|s| DateTime::<Utc>::from_timestamp(s, 0)),
    })
}

/// The tier one price buys: by lookup key, else by configured id, else none (free).
fn price_tier(price: &Price, prices: &Prices) -> Tier {
    let by_key = price.lookup_key.as_deref().map(str::to_ascii_lowercase);
    let is = |key: &str, id: &Option<String>| {
        by_key.as_deref() == Some(key) || id.as_deref() == Some(price.id.as_str())
    };
    if is("enterprise", &prices.enterprise) {
        Tier::Enterprise
    } else if is("pro", &prices.pro) {
        Tier::Pro
    } else {
        tracing::warn!(price = %price.id, "a subscription price buys no known tier; counted as free");
        Tier::Free
    }
}

/// Statuses in which the subscription's tier applies.
fn keeps_tier(status: &str) -> bool {
    matches!(status, "active" | "trialing" | "past_due")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(kind: &str, object: serde_json::Value) -> Vec<u8> {
        json!({
            "id": "evt_1", "object": "event", "api_version": "2024-06-20", "created": 1_790_000_000,
            "data": {"object": object}, "livemode": false, "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null}, "type": kind,
        })
        .to_string()
        .into_bytes()
    }

    fn sub(status: &str, price: serde_json::Value) -> serde_json::Value {
        json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status,
            "current_period_end": 1_792_592_000,
            "items": {"object": "list", "data": [{"id": "si_1", "price": price}]},
            "metadata": {"helix_user_id": "0190d3a2-7c5e-7d41-9f00-2f6a3c1b9e10"},
        })
    }

    fn change(event: &StripeEvent) -> (Tier, &str) {
        match event.change.as_ref().unwrap() {
            BillingChange::Subscription { tier, status, .. } => (*tier, status),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prices_map_to_tiers_by_lookup_key_or_configured_id() {
        let prices = Prices {
            pro: Some("price_P".into()),
            enterprise: Some("price_E".into()),
        };
        let kind = "customer.subscription.updated";
        let cases = [
            (json!({"id": "price_x", "lookup_key": "pro"}), Tier::Pro),
            (
                json!({"id": "price_x", "lookup_key": "Enterprise"}),
                Tier::Enterprise,
            ),
            (json!({"id": "price_P", "lookup_key": null}), Tier::Pro),
            (json!({"id": "price_E"}), Tier::Enterprise),
            (
                json!({"id": "price_other", "lookup_key": "basic"}),
                Tier::Free,
            ),
        ];
        for (price, tier) in cases {
            let event = parse(&body(kind, sub("active", price.clone())), &prices).unwrap();
            assert_eq!(change(&event).0, tier, "{price}");
        }
    }

    #[test]
    fn statuses_and_deletion_decide_whether_the_tier_applies() {
        let pro = json!({"id": "price_x", "lookup_key": "pro"});
        let prices = Prices::default();
        for (kind, status, expected) in [
            (
                "customer.subscription.created",
                "trialing",
                (Tier::Pro, "trialing"),
            ),
            (
                "customer.subscription.updated",
                "past_due",
                (Tier::Pro, "past_due"),
            ),
            (
                "customer.subscription.updated",
                "unpaid",
                (Tier::Free, "unpaid"),
            ),
            (
                "customer.subscription.updated",
                "incomplete",
                (Tier::Free, "incomplete"),
            ),
            (
                "customer.subscription.deleted",
                "active",
                (Tier::Free, "canceled"),
            ),
        ] {
            let event = parse(&body(kind, sub(status, pro.clone())), &prices).unwrap();
            assert_eq!(change(&event), expected, "{kind} {status}");
        }
    }

    #[test]
    fn envelope_fields_metadata_and_period_end_are_read() {
        let mut object = sub("active", json!({"id": "p", "lookup_key": "pro"}));
        object["current_period_end"] = serde_json::Value::Null;
        object["items"]["data"][0]["current_period_end"] = json!(1_792_592_000);
        object["customer"] = json!({"id": "cus_9", "object": "customer"});
        let event = parse(
            &body("customer.subscription.updated", object),
            &Prices::default(),
        )
        .unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.created.timestamp(), 1_790_000_000);
        let Some(BillingChange::Subscription {
            customer_id,
            user_hint,
            current_period_end,
            ..
        }) = event.change
        else {
            panic!("a subscription change");
        };
        assert_eq!(customer_id, "cus_9");
        assert_eq!(
            user_hint.unwrap().to_string(),
            "0190d3a2-7c5e-7d41-9f00-2f6a3c1b9e10"
        );
        assert_eq!(current_period_end.unwrap().timestamp(), 1_792_592_000);
    }

    #[test]
    fn payment_failures_other_types_and_garbage() {
        let invoice = json!({"id": "in_1", "object": "invoice", "customer": "cus_1"});
        let event = parse(&body("invoice.payment_failed", invoice), &Prices::default()).unwrap();
        assert!(matches!(
            event.change,
            Some(BillingChange::PaymentFailed { ref customer_id, ref status })
                if customer_id == "cus_1" && status == "past_due"
        ));
        let other = parse(
            &body("charge.succeeded", json!({"id": "ch_1"})),
            &Prices::default(),
        );
        assert!(other.unwrap().change.is_none());
        for bad in [&b"not json"[..], br#"{"id": "evt_1"}"#] {
            assert!(parse(bad, &Prices::default()).is_err());
        }
        let missing = parse(
            &body("customer.subscription.updated", json!({"id": "sub_1"})),
            &Prices::default(),
        );
        assert!(missing.is_err());
    }
}
