//! Generation slots: the static arena that snapshots point into.

use crate::sync::{AtomicUsize, UnsafeCell};
use crate::table::Table;

/// Slot states. A slot moves FREE -> IN_USE when one writer claims it (compare-and-swap), stays
/// IN_USE while that writer fills it and once it is published, and returns to FREE when the writer
/// that replaced it as `current` retires it, or when its claimer gives it up unpublished.
/// Only the slot's owner stores to its state; every other writer only CASes it from FREE.
///
/// Every slot starts FREE, slot 0 included, although slot 0 holds the initial current generation:
/// until the first publish retires it, every writer's base is slot 0 and a writer never claims
/// its own base (see `try_claim`). So a new map is all zero bytes and a `static` one lands in
/// `.bss`, costing no flash.
pub(crate) const FREE: usize = 0;
pub(crate) const IN_USE: usize = 1;

/// One immutable-once-published copy of the map.
pub(crate) struct Generation<K, V, const N: usize> {
    /// Strictly increasing along the sequence of published generations.
    pub(crate) version: u64,
    pub(crate) table: Table<K, V, N>,
}

pub(crate) struct GenSlot<K, V, const N: usize> {
    /// FREE / IN_USE. Never read by readers: only writers claim and retire slots.
    pub(crate) state: AtomicUsize,
    /// Written only by the writer that claimed the slot (IN_USE, unpublished, no hazard on it); read by
    /// anyone whose pin on this slot validated.
    pub(crate) generation: UnsafeCell<Generation<K, V, N>>,
}

macro_rules! gen_slot_new {
    ($($const:ident)?) => {
        pub(crate) $($const)? fn new() -> Self {
            Self {
                state: AtomicUsize::new(FREE),
                generation: UnsafeCell::new(Generation { version: 0, table: Table::new() }),
            }
        }
    };
}

impl<K, V, const N: usize> GenSlot<K, V, N> {
    #[cfg(not(loom))]
    gen_slot_new!(const);
    #[cfg(loom)]
    gen_slot_new!();
}
