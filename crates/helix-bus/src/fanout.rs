//! Local fan-out shared by both backends: channel → subscribers, each behind its own bounded
//! mpsc sender.
//!
//! Delivery never waits: a subscriber whose buffer is full loses that message alone, the loss is
//! counted, and the count reaches it as [`Event::Lagged`] right before the next message it gets.
//! The owner of a `FanOut` (the memory bus behind a mutex, the Redis pub/sub task by value)
//! decides how it is shared; this module holds no lock and spawns nothing.

use std::collections::HashMap;

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::Event;

/// One subscriber's end of the fan-out.
struct Subscriber {
    /// Bounded, so a subscriber that stops reading costs at most `subscription_buffer` events.
    tx: mpsc::Sender<Event>,
    /// Events dropped for this subscriber since its last successful delivery.
    skipped: u64,
}

impl Subscriber {
    /// Hand `event` over without waiting; a full buffer drops it and counts it.
    fn deliver(&mut self, event: Event) {
        if self.skipped == 0 {
            if let Err(TrySendError::Full(_)) = self.tx.try_send(event) {
                self.skipped = 1;
            }
            return;
        }
        // Room for the notice and the event: send both, in that order.
        if let Ok(mut permits) = self.tx.try_reserve_many(2) {
            let skipped = std::mem::take(&mut self.skipped);
            if let Some(permit) = permits.next() {
                permit.send(Event::Lagged { skipped });
            }
            if let Some(permit) = permits.next() {
                permit.send(event);
            }
            return;
        }
        // Room for one only (or a buffer of one): the notice wins and counts this event too.
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(Event::Lagged {
                    skipped: self.skipped + 1,
                });
                self.skipped = 0;
            }
            Err(TrySendError::Full(())) => self.skipped += 1,
            // The subscription was dropped; its guard removes it from the map.
            Err(TrySendError::Closed(())) => {}
        }
    }
}

/// Channel key (as the owner names it) → subscriber id → subscriber.
#[derive(Default)]
pub(crate) struct FanOut {
    channels: HashMap<String, HashMap<u64, Subscriber>>,
    next_id: u64,
}

impl FanOut {
    /// Add a subscriber; returns its id and whether it is the channel's first.
    pub(crate) fn add(&mut self, key: &str, tx: mpsc::Sender<Event>) -> (u64, bool) {
        self.next_id += 1;
        let id = self.next_id;
        let subscribers = self.channels.entry(key.to_owned()).or_default();
        subscribers.insert(id, Subscriber { tx, skipped: 0 });
        (id, subscribers.len() == 1)
    }

    /// Whether `key` has at least one subscriber.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.channels.contains_key(key)
    }

    /// Remove a subscriber; returns true when it was the channel's last one.
    pub(crate) fn remove(&mut self, key: &str, id: u64) -> bool {
        let Some(subscribers) = self.channels.get_mut(key) else {
            return false;
        };
        if subscribers.remove(&id).is_none() || !subscribers.is_empty() {
            return false;
        }
        self.channels.remove(key);
        true
    }

    /// Deliver `event` to every subscriber of `key`.
    pub(crate) fn deliver(&mut self, key: &str, event: &Event) {
        if let Some(subscribers) = self.channels.get_mut(key) {
            for subscriber in subscribers.values_mut() {
                subscriber.deliver(event.clone());
            }
        }
    }

    /// Deliver `event` to every subscriber of every channel.
    pub(crate) fn broadcast(&mut self, event: &Event) {
        for subscribers in self.channels.values_mut() {
            for subscriber in subscribers.values_mut() {
                subscriber.deliver(event.clone());
            }
        }
    }

    /// Keys of the channels that have at least one subscriber.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.channels.keys().cloned().collect()
    }

    /// Drop every subscriber: their subscriptions then yield `None`.
    pub(crate) fn clear(&mut self) {
        self.channels.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use bytes::Bytes;

    fn message(n: u8) -> Event {
        Event::Message(Message {
            channel: "c".into(),
            payload: Bytes::from(vec![n]),
        })
    }

    #[test]
    fn a_full_buffer_of_one_alternates_notice_and_loss_without_blocking() {
        let mut fan = FanOut::default();
        let (tx, mut rx) = mpsc::channel(1);
        fan.add("c", tx);
        fan.deliver("c", &message(1));
        fan.deliver("c", &message(2)); // dropped
        assert_eq!(rx.try_recv().unwrap(), message(1));
        fan.deliver("c", &message(3)); // only one slot: the notice counts 2 and 3
        assert_eq!(rx.try_recv().unwrap(), Event::Lagged { skipped: 2 });
        fan.deliver("c", &message(4));
        assert_eq!(rx.try_recv().unwrap(), message(4));
    }

    #[test]
    fn removing_the_last_subscriber_reports_it() {
        let mut fan = FanOut::default();
        let (tx, _rx) = mpsc::channel(1);
        let (a, first) = fan.add("c", tx.clone());
        let (b, second_is_first) = fan.add("c", tx);
        assert!(first && !second_is_first);
        assert!(!fan.remove("c", a));
        assert!(!fan.remove("c", a), "removing twice is harmless");
        assert!(fan.remove("c", b));
        assert!(fan.keys().is_empty());
    }
}
