//! [`ChangeLog`]: which table slots recent publications wrote, so that a writer can bring an
//! older copy up to date by copying only those slots (a *catch-up*) instead of the whole table.
//!
//! Every generation carries a log of `(table slot, version that wrote it)` for the publications
//! of the last few versions, oldest first. The log of a generation at version `v` promises: for
//! every version `u` with `since <= u <= v`, the table of version `u` differs from this one only
//! in slots listed with a version after `u`. A writer whose claimed slot holds a copy of such a
//! `u` copies just those slots from its base; otherwise it copies the whole table.
//!
//! Each log keeps at most `L` changes and only the last `2 * G` versions (the *horizon*: slots
//! are reused in rotation, so a claimed slot is usually `G - 1` versions old, and older only when
//! a pin kept it from reuse). A transaction that writes more than `L` slots leaves a log
//! that covers nothing older than itself, so the next writer copies the whole table once.
//!
//! Versions are stored as their low 32 bits and compared in serial-number arithmetic (RFC 1982):
//! every comparison is between versions at most a horizon apart, far below 2^31.

/// One slot written by one publication.
#[derive(Clone, Copy)]
pub(crate) struct Change {
    slot: u32,
    /// Low 32 bits of the version that wrote the slot.
    version: u32,
}

impl Change {
    const NONE: Self = Self {
        slot: 0,
        version: 0,
    };
}

/// A change log; `C` is `[Change; L]` where it is stored, and `[Change]` where it is used, so the
/// code that reads and writes logs does not depend on `L`.
pub(crate) struct ChangeLog<C: ?Sized = [Change]> {
    /// The oldest version this log can bring up to date (see the module docs). `u64::MAX` while
    /// the copy it belongs to is being overwritten: it covers nothing.
    since: u64,
    len: usize,
    changes: C,
}

/// Whether version `a` (low bits) comes after `b`.
#[inline]
fn after(a: u32, b: u64) -> bool {
    (a.wrapping_sub(b as u32) as i32) > 0
}

/// The full version whose low bits are `low`, at or before `reference`.
#[inline]
fn widen(low: u32, reference: u64) -> u64 {
    reference - u64::from((reference as u32).wrapping_sub(low))
}

impl<const L: usize> ChangeLog<[Change; L]> {
    /// The log of a copy that equals version 0 (the empty table): all zeros.
    pub(crate) const fn new() -> Self {
        Self {
            since: 0,
            len: 0,
            changes: [Change::NONE; L],
        }
    }
}

impl ChangeLog {
    /// Whether a copy of version `u` can be brought up to date with this log's changes.
    pub(crate) fn covers(&self, u: u64) -> bool {
        self.since <= u
    }

    /// Marks the log as covering nothing, before its copy is overwritten: if that is cut short
    /// (a panicking `clone`), the next writer copies the whole table.
    pub(crate) fn invalidate(&mut self) {
        self.since = u64::MAX;
    }

    /// The slots written by versions after `u`, possibly with repeats.
    pub(crate) fn slots_after(&self, u: u64) -> impl Iterator<Item = usize> + '_ {
        self.changes_after(u)
            .iter()
            .map(|change| change.slot as usize)
    }

    /// Makes this the log of a copy of `base` (at version `version`) about to be changed by
    /// version `version + 1`: `base`'s changes within the last `horizon` versions.
    pub(crate) fn inherit(&mut self, base: &Self, version: u64, horizon: u64) {
        let mut since = base.since.max((version + 1).saturating_sub(horizon));
        let mut kept = base.changes_after(since);
        // Keep the newest that fit. Ordered by version, so a dropped change takes every older
        // one with it: only copies from its version on are still covered.
        if let Some(dropped) = kept.len().checked_sub(self.changes.len() + 1) {
            since = since.max(widen(kept[dropped].version, version));
            kept = &kept[dropped + 1..];
        }
        self.changes[..kept.len()].copy_from_slice(kept);
        self.len = kept.len();
        self.since = since;
    }

    fn changes_after(&self, u: u64) -> &[Change] {
        let changes = &self.changes[..self.len];
        // Ordered by version, so the changes after `u` are a suffix. It is often empty (in a
        // published copy's own log): the last change tells at once; otherwise a binary search
        // finds it, as it may be most of a long log.
        match changes.last() {
            Some(last) if after(last.version, u) => {
                &changes[changes.partition_point(|change| !after(change.version, u))..]
            }
            _ => &[],
        }
    }

    /// Records that version `version` (the one being built) wrote `slot`. When the log is full,
    /// the oldest versions' changes give way; if this version alone fills it, the log gives up
    /// listing and covers only `version` itself.
    #[inline]
    pub(crate) fn record(&mut self, slot: usize, version: u64) {
        if self.since >= version {
            return; // already covers nothing older than `version`
        }
        if self.len == self.changes.len() && !self.make_room(version) {
            return;
        }
        self.changes[self.len] = Change {
            slot: slot as u32,
            version: version as u32,
        };
        self.len += 1;
    }

    /// Frees room in a full log for a change of `version`; returns `false` if that would take
    /// dropping `version`'s own changes, and makes the log give up listing instead.
    #[cold]
    fn make_room(&mut self, version: u64) -> bool {
        self.drop_oldest_version(version);
        if self.len == self.changes.len() {
            self.since = version;
            self.len = 0;
            return false;
        }
        true
    }

    /// Drops the changes of the oldest version listed, unless that is `version` itself.
    fn drop_oldest_version(&mut self, version: u64) {
        let Some(oldest) = self.changes[..self.len].first().map(|c| c.version) else {
            return;
        };
        if oldest == version as u32 {
            return;
        }
        let end = self.changes[..self.len]
            .iter()
            .position(|change| change.version != oldest)
            .unwrap_or(self.len);
        self.changes.copy_within(end..self.len, 0);
        self.len -= end;
        // Every change of `oldest` is gone: only copies from `oldest` on are still covered.
        self.since = self.since.max(widen(oldest, version));
    }
}

/// What a transaction writes to its copy's log: every slot it writes, tagged with the version it
/// will publish as.
pub(crate) struct Journal<'a> {
    log: &'a mut ChangeLog,
    version: u64,
    wrote: bool,
}

impl<'a> Journal<'a> {
    pub(crate) fn new(log: &'a mut ChangeLog, version: u64) -> Self {
        Self {
            log,
            version,
            wrote: false,
        }
    }

    /// Whether any slot was written: a transaction that wrote none publishes nothing.
    pub(crate) fn wrote(&self) -> bool {
        self.wrote
    }

    #[inline]
    pub(crate) fn record(&mut self, slot: usize) {
        self.wrote = true;
        self.log.record(slot, self.version);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn slots_after(log: &ChangeLog, u: u64) -> Vec<usize> {
        log.slots_after(u).collect()
    }

    /// `log` can bring up to date a copy of `oldest` (which then needs `slots`), and nothing
    /// older.
    fn assert_covers_from(log: &ChangeLog, oldest: u64, slots: &[usize]) {
        assert!(!log.covers(oldest - 1), "covers {}", oldest - 1);
        assert!(log.covers(oldest), "does not cover {oldest}");
        assert_eq!(slots_after(log, oldest), slots);
    }

    /// Versions are kept as their low 32 bits: the suffix search must still order them across
    /// the point where those bits wrap to zero.
    #[test]
    fn finds_the_changes_after_a_version_across_the_32_bit_wrap() {
        let v = (1u64 << 32) - 2;
        let mut stored = ChangeLog::<[Change; 8]>::new();
        let log: &mut ChangeLog = &mut stored;
        for (slot, version) in [(10, v), (11, v + 1), (12, v + 2), (13, v + 3), (14, v + 3)] {
            log.record(slot, version);
        }
        assert_eq!(slots_after(log, v - 1), [10, 11, 12, 13, 14]);
        assert_eq!(slots_after(log, v), [11, 12, 13, 14]);
        assert_eq!(slots_after(log, v + 1), [12, 13, 14]);
        assert_eq!(slots_after(log, v + 2), [13, 14]);
        assert!(slots_after(log, v + 3).is_empty());
        assert!(log.covers(0));
    }

    /// A full log drops its oldest version's changes and stops covering copies older than that
    /// version; a version that alone overflows the log leaves it covering only itself.
    #[test]
    fn a_full_log_gives_up_its_oldest_versions_first() {
        let v = 100;
        let mut stored = ChangeLog::<[Change; 4]>::new();
        let log: &mut ChangeLog = &mut stored;
        for (slot, version) in [(1, v), (2, v), (3, v + 1), (4, v + 2), (5, v + 3)] {
            log.record(slot, version);
        }
        assert_covers_from(log, v, &[3, 4, 5]);

        for slot in 6..=10 {
            log.record(slot, v + 4);
        }
        assert_covers_from(log, v + 4, &[]);
    }

    /// A copy inherits only its base's changes within the horizon, and only as many as fit: it
    /// covers no copy older than what it kept.
    #[test]
    fn inherit_keeps_the_horizon() {
        let v = 100;
        let mut stored = ChangeLog::<[Change; 8]>::new();
        let base: &mut ChangeLog = &mut stored;
        for (slot, version) in [(1, v), (2, v + 1), (3, v + 2), (4, v + 3)] {
            base.record(slot, version);
        }
        let mut stored = ChangeLog::<[Change; 8]>::new();
        let copy: &mut ChangeLog = &mut stored;
        copy.inherit(base, v + 3, 2);
        assert_covers_from(copy, v + 2, &[4]);

        let mut stored = ChangeLog::<[Change; 1]>::new();
        let small: &mut ChangeLog = &mut stored;
        small.inherit(base, v + 3, 8);
        assert_covers_from(small, v + 2, &[4]);
    }
}
