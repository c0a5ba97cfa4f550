//! `ws-storm`'s per-client check that a channel's messages arrive exactly once and in order: each
//! offset must be the previous one + 1, from the offset the first `subscribed` reported, across
//! the disconnect and the `since` recovery, up to the channel's last offset once publishing
//! stopped. Pure bookkeeping, so it is tested on its own.

/// What a client has received on its channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Track {
    epoch: String,
    last: u64,
    /// `message` frames received.
    pub received: u64,
    /// Times an offset was skipped (one or more missing messages).
    pub gaps: u64,
    /// Messages missed in all: the sum of every gap's size, tail included.
    pub missed: u64,
    /// Messages at or below the last offset seen (delivered twice, or out of order).
    pub duplicates: u64,
    /// Messages in another epoch than the one tracked (the channel's history was reset).
    pub epoch_changes: u64,
}

/// How one message fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    InOrder,
    /// This many offsets were skipped before it.
    Gap(u64),
    Duplicate,
    EpochChange,
}

impl Track {
    /// Start from a `subscribed` frame: the next message must be `offset + 1` in `epoch`.
    pub fn anchored(epoch: &str, offset: u64) -> Track {
        Track {
            epoch: epoch.to_owned(),
            last: offset,
            ..Track::default()
        }
    }

    /// Account for a `message` frame.
    pub fn observe(&mut self, epoch: &str, offset: u64) -> Seen {
        self.received += 1;
        // A channel that had no message yet has no epoch: its first message names it.
        if self.epoch.is_empty() && self.last == 0 {
            self.epoch = epoch.to_owned();
        }
        if epoch != self.epoch {
            // Offsets of different epochs are not comparable: follow the new one from here.
            self.epoch_changes += 1;
            self.epoch = epoch.to_owned();
            self.last = offset;
            return Seen::EpochChange;
        }
        if offset <= self.last {
            self.duplicates += 1;
            return Seen::Duplicate;
        }
        let skipped = offset - self.last - 1;
        self.last = offset;
        if skipped == 0 {
            return Seen::InOrder;
        }
        self.gaps += 1;
        self.missed += skipped;
        Seen::Gap(skipped)
    }

    /// Publishing is over and the channel's last offset is `final_offset`: whatever lies beyond
    /// what was received was missed.
    pub fn finish(&mut self, final_offset: u64) {
        if final_offset > self.last {
            self.gaps += 1;
            self.missed += final_offset - self.last;
            self.last = final_offset;
        }
    }

    /// The resume point for `subscribe`: (`since`, `epoch`).
    pub fn resume(&self) -> (u64, &str) {
        (self.last, &self.epoch)
    }

    pub fn last(&self) -> u64 {
        self.last
    }

    /// Every message exactly once, in order, in one epoch.
    pub fn contiguous(&self) -> bool {
        self.gaps == 0 && self.duplicates == 0 && self.epoch_changes == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_offsets_from_the_anchor_are_clean() {
        let mut track = Track::anchored("e", 10);
        for offset in 11..=20 {
            assert_eq!(track.observe("e", offset), Seen::InOrder);
        }
        track.finish(20);
        assert!(track.contiguous());
        assert_eq!(
            (track.received, track.missed, track.resume()),
            (10, 0, (20, "e"))
        );
    }

    #[test]
    fn a_skipped_offset_is_a_gap_counting_every_missing_message() {
        let mut track = Track::anchored("e", 0);
        assert_eq!(track.observe("e", 1), Seen::InOrder);
        assert_eq!(track.observe("e", 5), Seen::Gap(3));
        assert_eq!(track.observe("e", 6), Seen::InOrder);
        assert!(!track.contiguous());
        assert_eq!((track.gaps, track.missed), (1, 3));
    }

    #[test]
    fn the_first_message_must_follow_the_subscribed_offset() {
        let mut track = Track::anchored("e", 7);
        assert_eq!(track.observe("e", 9), Seen::Gap(1));
    }

    #[test]
    fn repeats_and_reordering_are_duplicates_and_do_not_move_the_position() {
        let mut track = Track::anchored("e", 3);
        track.observe("e", 4);
        track.observe("e", 5);
        assert_eq!(track.observe("e", 5), Seen::Duplicate);
        assert_eq!(track.observe("e", 2), Seen::Duplicate);
        assert_eq!(track.observe("e", 6), Seen::InOrder);
        assert_eq!((track.duplicates, track.gaps, track.last()), (2, 0, 6));
    }

    #[test]
    fn messages_missing_at_the_end_count_as_missed() {
        let mut track = Track::anchored("e", 0);
        track.observe("e", 1);
        track.finish(4);
        assert_eq!((track.gaps, track.missed), (1, 3));
        track.finish(2); // an older final offset changes nothing
        assert_eq!(track.missed, 3);
    }

    #[test]
    fn a_new_epoch_is_flagged_and_followed() {
        let mut track = Track::anchored("e1", 50);
        assert_eq!(track.observe("e2", 1), Seen::EpochChange);
        assert_eq!(track.observe("e2", 2), Seen::InOrder);
        assert_eq!(track.resume(), (2, "e2"));
        assert!(!track.contiguous());
    }
}
