//! Generation slots: the static arena that snapshots point into.

use crate::changes::{Change, ChangeLog};
use crate::sync::{AtomicUsize, UnsafeCell};
use crate::table::Table;

/// Slot states. A slot moves FREE -> IN_USE when one writer claims it (compare-and-swap), stays
/// IN_USE while that writer fills it and once it is published, and returns to FREE when the writer
/// that replaced it as `current` retires it, or when its claimer gives it up unpublished.
/// Only the slot's owner stores to its state; every other writer only CASes it to IN_USE.
///
/// Every slot starts UNUSED, so a new map is all zero bytes and a `static` one lands in `.bss`,
/// costing no flash. An UNUSED slot is claimable like a FREE one, except slot 0: it holds the
/// initial current generation, which no writer claimed, and becomes claimable only when the first
/// publisher retires it to FREE. (Were it claimable before, a writer could claim it between that
/// publication and the retiring store, which would then free it under its new owner.)
pub(crate) const UNUSED: usize = 0;
pub(crate) const IN_USE: usize = 1;
pub(crate) const FREE: usize = 2;

/// One immutable-once-published copy of the map.
pub(crate) struct Generation<K, V, const N: usize> {
    /// Strictly increasing along the sequence of published generations. In a copy that is not
    /// (or no longer) published, the version it was built on: it equals that version except in
    /// the slots its log lists with a later one.
    pub(crate) version: u64,
    pub(crate) table: Table<K, V, N>,
}

pub(crate) struct GenSlot<K, V, const N: usize, const L: usize> {
    /// UNUSED / IN_USE / FREE. Never read by readers: only writers claim and retire slots.
    pub(crate) state: AtomicUsize,
    /// Written only by the writer that claimed the slot (IN_USE, unpublished, no hazard on it); read by
    /// anyone whose pin on this slot validated.
    pub(crate) generation: UnsafeCell<Generation<K, V, N>>,
    /// The slots recent versions wrote (see `changes`). Written like `generation`; read only by
    /// writers: the next claimer of this slot, and writers whose base this is.
    pub(crate) log: UnsafeCell<ChangeLog<[Change; L]>>,
}

macro_rules! gen_slot_new {
    ($($const:ident)?) => {
        pub(crate) $($const)? fn new() -> Self {
            Self {
                state: AtomicUsize::new(UNUSED),
                generation: UnsafeCell::new(Generation { version: 0, table: Table::new() }),
                log: UnsafeCell::new(ChangeLog::new()),
            }
        }
    };
}

impl<K, V, const N: usize, const L: usize> GenSlot<K, V, N, L> {
    #[cfg(not(loom))]
    gen_slot_new!(const);
    #[cfg(loom)]
    gen_slot_new!();
}

impl<K: Clone, V: Clone, const N: usize> Generation<K, V, N> {
    /// Makes this unpublished copy (with its `log`) equal to `base` (with `base_log`), ready for
    /// the changes of version `base.version + 1`. Copies only the slots that differ when both
    /// logs cover this copy's version, the whole table otherwise; returns whether it copied the
    /// whole table. Panic-safe: if a clone or a drop panics, the log is left covering nothing.
    pub(crate) fn catch_up(
        &mut self,
        log: &mut ChangeLog,
        base: &Self,
        base_log: &ChangeLog,
        horizon: u64,
    ) -> bool {
        let mine = self.version;
        let patch = mine <= base.version && log.covers(mine) && base_log.covers(mine);
        log.invalidate();
        if patch {
            // This copy differs from version `mine` in the slots its own log lists after it (a
            // change it was given and did not publish), and `base` differs from `mine` in the
            // slots `base_log` lists after it: copying both sets from `base` makes them equal.
            for slot in log.slots_after(mine) {
                self.table.copy_slot(&base.table, slot);
            }
            for slot in base_log.slots_after(mine) {
                self.table.copy_slot(&base.table, slot);
            }
            debug_assert_eq!(self.table.len(), base.table.len());
        } else {
            self.table.clone_from(&base.table);
        }
        self.version = base.version;
        log.inherit(base_log, base.version, horizon);
        !patch
    }
}
