//! A string-keyed map whose entries may carry a deadline, for the memory bus's key/value store
//! and rate counters.
//!
//! Why it cannot grow without bound: every operation first sweeps, dropping each entry whose
//! deadline has come. Deadlines are kept ordered beside the map, so a sweep only looks at what is
//! due (O(log n) per expired entry, nothing when none is), and an entry's old deadline is
//! forgotten when it is overwritten or removed. Plain data with no lock and no clock of its own:
//! the caller passes `now`, so tests can drive time by hand.

use std::collections::{BTreeSet, HashMap};

use tokio::time::Instant;

struct Entry<V> {
    value: V,
    expires: Option<Instant>,
}

pub(super) struct Expiring<V> {
    entries: HashMap<String, Entry<V>>,
    /// (deadline, key) of every entry that has one, soonest first.
    deadlines: BTreeSet<(Instant, String)>,
}

impl<V> Default for Expiring<V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            deadlines: BTreeSet::new(),
        }
    }
}

impl<V> Expiring<V> {
    /// The live value of `key` at `now`.
    pub(super) fn get(&mut self, key: &str, now: Instant) -> Option<&V> {
        self.sweep(now);
        self.entries.get(key).map(|entry| &entry.value)
    }

    /// Store `value`, replacing the previous value and deadline; `expires: None` keeps it forever.
    pub(super) fn insert(&mut self, key: String, value: V, expires: Option<Instant>, now: Instant) {
        self.sweep(now);
        if let Some(old_at) = self.entries.get(&key).and_then(|entry| entry.expires) {
            self.deadlines.remove(&(old_at, key.clone()));
        }
        if let Some(at) = expires {
            self.deadlines.insert((at, key.clone()));
        }
        self.entries.insert(key, Entry { value, expires });
    }

    /// Remove `key`; its value if it was live at `now`.
    pub(super) fn remove(&mut self, key: &str, now: Instant) -> Option<V> {
        self.sweep(now);
        let entry = self.entries.remove(key)?;
        if let Some(at) = entry.expires {
            self.deadlines.remove(&(at, key.to_owned()));
        }
        Some(entry.value)
    }

    /// Drop every entry whose deadline is at or before `now`.
    pub(super) fn sweep(&mut self, now: Instant) {
        while self.deadlines.first().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, key)) = self.deadlines.pop_first() {
                self.entries.remove(&key);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.deadlines.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn entries_expire_at_their_deadline() {
        let t0 = Instant::now();
        let mut map = Expiring::default();
        map.insert("a".into(), 1, Some(t0 + ms(10)), t0);
        map.insert("b".into(), 2, None, t0);

        assert_eq!(map.get("a", t0 + ms(9)), Some(&1));
        assert_eq!(map.get("a", t0 + ms(10)), None);
        assert_eq!(map.get("b", t0 + ms(1_000_000)), Some(&2));
    }

    #[test]
    fn overwriting_replaces_the_deadline() {
        let t0 = Instant::now();
        let mut map = Expiring::default();
        map.insert("a".into(), 1, Some(t0 + ms(10)), t0);
        map.insert("a".into(), 2, None, t0);
        assert_eq!(map.get("a", t0 + ms(20)), Some(&2), "no expiry any more");
        map.insert("a".into(), 3, Some(t0 + ms(30)), t0);
        assert_eq!(map.get("a", t0 + ms(29)), Some(&3));
        assert_eq!(map.get("a", t0 + ms(30)), None);
        assert!(map.deadlines.is_empty(), "no stale deadline left behind");
    }

    #[test]
    fn expired_entries_do_not_pile_up() {
        let t0 = Instant::now();
        let mut map = Expiring::default();
        for i in 0..10_000_u64 {
            let now = t0 + ms(i);
            map.insert(format!("k{i}"), i, Some(now + ms(5)), now);
            assert!(map.len() <= 6, "at most the live ones: {}", map.len());
        }
        map.sweep(t0 + ms(20_000));
        assert_eq!((map.len(), map.deadlines.len()), (0, 0));
    }

    #[test]
    fn remove_reports_only_live_entries() {
        let t0 = Instant::now();
        let mut map = Expiring::default();
        map.insert("a".into(), 1, Some(t0 + ms(10)), t0);
        map.insert("b".into(), 2, Some(t0 + ms(10)), t0);
        assert_eq!(map.remove("a", t0 + ms(5)), Some(1));
        assert_eq!(map.remove("a", t0 + ms(5)), None);
        assert_eq!(map.remove("b", t0 + ms(10)), None, "already expired");
        assert_eq!((map.len(), map.deadlines.len()), (0, 0));
    }
}
