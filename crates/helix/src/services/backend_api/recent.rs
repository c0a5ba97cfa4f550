//! The newest page of each conversation's messages, cached per instance as the JSON it is served
//! as. Opening a conversation reads that page, so it is the hottest read of the chat; a hit costs
//! no database round trip and no serialisation.
//!
//! Freshness: a conversation's pages are dropped when a message is appended to it or it is
//! deleted: on the instance that made the change at once, on every other instance when the change's
//! notice arrives on the bus channel [`CHANGED_CHANNEL`]. Notices are sent by a task, many ids to a
//! message when changes come faster than one publish, so an append never waits for its notice. A page read from the database is stored
//! only if no change to its conversation was seen since the read began (each read takes a
//! generation ticket first), so a slow read racing an append made here can never store the older
//! page; for a change made elsewhere, that holds from the moment its notice arrives.
//! While this instance knows it is not subscribed to the notices (no bus, a subscription that
//! ended, or a reconnect that may have lost notices), the cache is emptied and bypassed. A notice
//! can still go missing unseen (a connection lost before anyone noticed, several processes that
//! each run the in-process bus), so a page is also never served once older than [`MAX_AGE`]: that
//! is the bound on how stale another instance's change can leave a page here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use helix_bus::{Bus, Event};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Where instances tell each other which conversation changed (payload: its id).
pub const CHANGED_CHANNEL: &str = "helix:conversations:changed";
/// A page is served for this long at most after it was read from the database.
pub const MAX_AGE: Duration = Duration::from_secs(2);
/// A slot nobody used for this long is dropped first when the cache is full.
const TTL: Duration = Duration::from_secs(30);
/// Bytes of cached JSON an instance keeps at most.
const BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// Conversations an instance remembers at most (a slot without pages is a few dozen bytes).
const MAX_SLOTS: usize = 100_000;
/// Ids in one notice at most (37 bytes each).
const MAX_IDS_PER_NOTICE: usize = 1000;
/// Wait before subscribing again after the subscription was refused or ended.
const RETRY: Duration = Duration::from_secs(1);

pub struct RecentPages {
    pages: Mutex<Pages>,
    /// Bumped by every change seen; tickets are its value when a read began.
    generation: AtomicU64,
    /// True only while the notices of other instances are arriving.
    listening: AtomicBool,
    /// Set once following starts: where this instance's own changes are queued for the notifier.
    notices: OnceLock<mpsc::UnboundedSender<Uuid>>,
}

#[derive(Default)]
struct Pages {
    slots: HashMap<Uuid, Slot>,
    bytes: usize,
    /// Tickets older than this were taken before the whole cache was dropped: refused.
    floor: u64,
}

/// One conversation: its owner, the generation of its last change, and its pages by limit. A
/// slot with no pages still remembers the change, so a read that began before it stores nothing.
struct Slot {
    owner: Uuid,
    changed_at: u64,
    pages: Vec<Page>,
    used: Instant,
}

/// One page: how many messages it was asked for, its JSON, and when it was read.
struct Page {
    limit: i64,
    body: Bytes,
    read_at: Instant,
}

impl Slot {
    fn bytes(&self) -> usize {
        self.pages.iter().map(|page| page.body.len()).sum()
    }
}

/// What a read must show when it stores its page: taken before the read began.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64, Instant);

impl RecentPages {
    pub fn new() -> Self {
        Self {
            pages: Mutex::new(Pages::default()),
            generation: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            notices: OnceLock::new(),
        }
    }

    /// The cached page of `conversation` with `limit` messages, if `owner` owns it.
    pub fn get(&self, conversation: Uuid, owner: Uuid, limit: i64) -> Option<Bytes> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let mut pages = self.lock();
        let slot = pages.slots.get_mut(&conversation)?;
        if slot.owner != owner {
            return None;
        }
        let page = slot
            .pages
            .iter()
            .find(|p| p.limit == limit && p.read_at.elapsed() < MAX_AGE)?
            .body
            .clone();
        slot.used = Instant::now();
        Some(page)
    }

    /// A ticket for a read about to begin, or `None` when nothing read now may be stored.
    pub fn ticket(&self) -> Option<Ticket> {
        self.listening
            .load(Ordering::Acquire)
            .then(|| Ticket(self.generation.load(Ordering::Acquire), Instant::now()))
    }

    /// Store a page read under `ticket`, unless the conversation changed since.
    pub fn put(&self, conversation: Uuid, owner: Uuid, limit: i64, ticket: Ticket, page: Bytes) {
        let mut pages = self.lock();
        if ticket.0 < pages.floor || !self.listening.load(Ordering::Acquire) {
            return;
        }
        if pages.bytes + page.len() > BUDGET_BYTES || pages.slots.len() >= MAX_SLOTS {
            self.shed(&mut pages, page.len());
            return;
        }
        let slot = pages.slots.entry(conversation).or_insert_with(|| Slot {
            owner,
            changed_at: 0,
            pages: Vec::new(),
            used: Instant::now(),
        });
        if slot.changed_at > ticket.0 {
            return;
        }
        // Only the owner's read reaches here (others get 404 from the store), so a slot left
        // by a change, which knew no owner, takes this one.
        slot.owner = owner;
        let added = page.len();
        let fresh = Page {
            limit,
            body: page,
            read_at: ticket.1,
        };
        let replaced = match slot.pages.iter_mut().find(|p| p.limit == limit) {
            Some(old) => std::mem::replace(old, fresh).body.len(),
            None => {
                slot.pages.push(fresh);
                0
            }
        };
        slot.used = Instant::now();
        pages.bytes = pages.bytes + added - replaced;
    }

    /// `conversation` changed: drop its pages and refuse pages read before now.
    pub fn changed(&self, conversation: Uuid) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut pages = self.lock();
        if pages.slots.len() >= MAX_SLOTS {
            self.shed(&mut pages, 0);
        }
        let slot = pages.slots.entry(conversation).or_insert_with(|| Slot {
            owner: Uuid::nil(),
            changed_at: 0,
            pages: Vec::new(),
            used: Instant::now(),
        });
        let freed = slot.bytes();
        slot.changed_at = generation;
        slot.pages.clear();
        pages.bytes -= freed;
    }

    /// Drop everything and refuse every read in flight.
    pub fn clear(&self) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut pages = self.lock();
        pages.slots.clear();
        pages.bytes = 0;
        pages.floor = generation;
    }

    /// Start following other instances' notices and sending this one's (once; later calls do
    /// nothing).
    pub fn follow(self: &Arc<Self>, bus: &Arc<dyn Bus>) -> &mpsc::UnboundedSender<Uuid> {
        self.notices.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(watch(Arc::downgrade(self), bus.clone()));
            tokio::spawn(notify(rx, bus.clone()));
            tx
        })
    }

    /// `conversation` changed through this instance: drop its pages here, and tell the other
    /// instances when there is a bus.
    pub fn change(self: &Arc<Self>, conversation: Uuid, bus: Option<&Arc<dyn Bus>>) {
        self.changed(conversation);
        if let Some(bus) = bus {
            // The receiver lives as long as the notifier task, which ends only with the sender.
            let _ = self.follow(bus).send(conversation);
        }
    }

    /// Make room for `needed` more bytes and a slot: drop idle slots, then, if still full,
    /// everything. Dropped slots forget their last change, so every read in flight is refused.
    fn shed(&self, pages: &mut Pages, needed: usize) {
        pages.slots.retain(|_, slot| slot.used.elapsed() < TTL);
        pages.bytes = pages.slots.values().map(Slot::bytes).sum();
        if pages.bytes + needed > BUDGET_BYTES || pages.slots.len() >= MAX_SLOTS {
            pages.slots.clear();
            pages.bytes = 0;
        }
        pages.floor = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
    }

    fn set_listening(&self, on: bool) {
        // Why clear first: notices may have been missed while not listening.
        self.clear();
        self.listening.store(on, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, Pages> {
        // A cache left half-updated by a panic is still only a cache: use it as is.
        self.pages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Follow [`CHANGED_CHANNEL`] for as long as the cache exists and the bus is open.
async fn watch(cache: Weak<RecentPages>, bus: Arc<dyn Bus>) {
    let mut failing = false;
    loop {
        let mut subscription = match bus.subscribe(CHANGED_CHANNEL).await {
            Ok(subscription) => subscription,
            Err(_) if cache.strong_count() == 0 => return,
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%error, "cannot follow conversation changes; page cache off");
                }
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        failing = false;
        match cache.upgrade() {
            Some(cache) => cache.set_listening(true),
            None => return,
        }
        while let Some(event) = subscription.recv().await {
            let Some(cache) = cache.upgrade() else { return };
            match event {
                Event::Message(m) => match parse_ids(&m.payload) {
                    Some(ids) => ids.into_iter().for_each(|id| cache.changed(id)),
                    None => cache.clear(),
                },
                Event::Lagged { .. } | Event::Resubscribed => cache.clear(),
            }
        }
        match cache.upgrade() {
            Some(cache) => cache.set_listening(false),
            None => return,
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Publish this instance's changes on [`CHANGED_CHANNEL`]: whatever queued while the last
/// publish was in flight goes in the next message, as comma-separated ids.
/// A notice that could not be published is retried (with what queued meanwhile) until it goes
/// out: until then the other instances would keep serving the pages it names.
async fn notify(mut changes: mpsc::UnboundedReceiver<Uuid>, bus: Arc<dyn Bus>) {
    let mut batch = Vec::new();
    while changes.recv_many(&mut batch, MAX_IDS_PER_NOTICE).await > 0 {
        let mut backoff = RETRY / 10;
        loop {
            batch.sort_unstable();
            batch.dedup();
            let ids: Vec<String> = batch.iter().map(Uuid::to_string).collect();
            match bus.publish(CHANGED_CHANNEL, ids.join(",").into()).await {
                Ok(()) => break,
                // The service is gone (its cache dropped the sender): nobody is left to tell.
                Err(_) if changes.is_closed() => return,
                Err(error) => {
                    tracing::warn!(%error, conversations = ids.len(),
                        "could not announce conversation changes; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY * 5);
                    // Why bounded: one notice carries at most MAX_IDS_PER_NOTICE ids.
                    let room = MAX_IDS_PER_NOTICE.saturating_sub(batch.len());
                    if room > 0 {
                        changes.recv_many(&mut batch, room).now_or_never();
                    }
                }
            }
        }
        batch.clear();
    }
}

fn parse_ids(payload: &[u8]) -> Option<Vec<Uuid>> {
    std::str::from_utf8(payload)
        .ok()?
        .split(',')
        .map(|id| id.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> RecentPages {
        let cache = RecentPages::new();
        cache.listening.store(true, Ordering::Release);
        cache
    }

    #[test]
    fn a_page_is_served_to_its_owner_only() {
        let cache = listening();
        let (conversation, owner) = (Uuid::new_v4(), Uuid::new_v4());
        let ticket = cache.ticket().unwrap();
        cache.put(conversation, owner, 50, ticket, Bytes::from_static(b"[1]"));
        assert_eq!(cache.get(conversation, owner, 50).unwrap(), "[1]");
        assert!(cache.get(conversation, Uuid::new_v4(), 50).is_none());
        assert!(cache.get(conversation, owner, 20).is_none());
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_stored() {
        let cache = listening();
        let (conversation, owner) = (Uuid::new_v4(), Uuid::new_v4());
        let before = cache.ticket().unwrap();
        cache.changed(conversation);
        cache.put(conversation, owner, 50, before, Bytes::from_static(b"old"));
        assert!(cache.get(conversation, owner, 50).is_none());
        let after = cache.ticket().unwrap();
        cache.put(conversation, owner, 50, after, Bytes::from_static(b"new"));
        assert_eq!(cache.get(conversation, owner, 50).unwrap(), "new");
        cache.changed(conversation);
        assert!(cache.get(conversation, owner, 50).is_none());
    }

    #[test]
    fn a_page_read_longer_ago_than_the_max_age_is_not_served() {
        let cache = listening();
        let (conversation, owner) = (Uuid::new_v4(), Uuid::new_v4());
        let Some(long_ago) = Instant::now().checked_sub(MAX_AGE) else {
            return; // a machine up for less than MAX_AGE cannot express it
        };
        let old = Ticket(cache.ticket().unwrap().0, long_ago);
        cache.put(conversation, owner, 50, old, Bytes::from_static(b"[old]"));
        assert!(cache.get(conversation, owner, 50).is_none());
        let now = cache.ticket().unwrap();
        cache.put(conversation, owner, 50, now, Bytes::from_static(b"[new]"));
        assert_eq!(cache.get(conversation, owner, 50).unwrap(), "[new]");
    }

    #[test]
    fn notices_carry_one_or_many_ids_and_garbage_is_refused() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(parse_ids(a.to_string().as_bytes()), Some(vec![a]));
        assert_eq!(parse_ids(format!("{a},{b}").as_bytes()), Some(vec![a, b]));
        assert_eq!(parse_ids(format!("{a},nope").as_bytes()), None);
        assert_eq!(parse_ids(b""), None);
    }

    #[test]
    fn clearing_refuses_reads_in_flight_and_not_listening_bypasses() {
        let cache = listening();
        let (conversation, owner) = (Uuid::new_v4(), Uuid::new_v4());
        let before = cache.ticket().unwrap();
        cache.clear();
        cache.put(conversation, owner, 50, before, Bytes::from_static(b"old"));
        assert!(cache.get(conversation, owner, 50).is_none());
        cache.set_listening(false);
        assert!(cache.ticket().is_none());
    }
}
