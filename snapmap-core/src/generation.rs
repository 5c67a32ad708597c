//! Generation slots: the static arena of generations that snapshots pin.

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

/// Slot states. A slot moves FREE -> IN_USE when one writer claims it (compare-and-swap), stays
/// IN_USE while that writer fills it and once it is published, and returns to FREE when the writer
/// that replaced it as `current` retires it, or when its claimer gives it up unpublished.
/// Only the slot's owner stores to its state; every other writer only CASes it to IN_USE. While a
/// sole [`Writer`](crate::Writer) holds the map the states stand still (it does not use them),
/// but for shared writers' brief claims, which they give back at once; it brings them up to date
/// when it gives the map back.
///
/// Every slot starts UNUSED, so a new map is all zero bytes and a `static` one lands in `.bss`,
/// costing no flash. An UNUSED slot is claimable like a FREE one, except slot 0: it holds the
/// initial current generation, which no writer claimed, and becomes claimable only when the first
/// publisher retires it to FREE. (Were it claimable before, a writer could claim it between that
/// publication and the retiring store, which would then free it under its new owner.)
pub(crate) const UNUSED: usize = 0;
pub(crate) const IN_USE: usize = 1;
pub(crate) const FREE: usize = 2;

/// What a generation holds besides its index (which lives in the map's index block, see
/// `SnapMap::index`).
#[derive(Clone, Copy)]
pub(crate) struct Body {
    /// Strictly increasing along the sequence of published generations.
    pub(crate) version: u64,
    /// Entries in the table.
    pub(crate) len: usize,
    /// Pages copied by every publication up to this one (for [`Stats`](crate::Stats)): kept
    /// here, written before the publication, so that counting costs the writer no atomic.
    pub(crate) page_copies: u64,
}

pub(crate) struct GenSlot {
    /// UNUSED / IN_USE / FREE. Never read by readers: only writers claim and retire slots.
    pub(crate) state: AtomicUsize,
    /// The version of the generation in the slot, for writers' scans (see `pages`, "Which
    /// version a pin names").
    pub(crate) version: VersionWord,
    /// Written only by the writer that claimed the slot (IN_USE, unpublished, no pin on it);
    /// read by anyone whose pin on this slot validated.
    pub(crate) body: UnsafeCell<Body>,
}

macro_rules! gen_slot_new {
    ($($const:ident)?) => {
        pub(crate) $($const)? fn new() -> Self {
            Self {
                state: AtomicUsize::new(UNUSED),
                version: VersionWord {
                    halves: [AtomicUsize::new(0), AtomicUsize::new(0)],
                },
                body: UnsafeCell::new(Body {
                    version: 0,
                    len: 0,
                    page_copies: 0,
                }),
            }
        }
    };
}

/// A full 64-bit version in two atomic words of 32 bits each (the widest atomic every target
/// loads and stores natively), written only by the slot's claimer while the slot is unpublished,
/// read by other writers' scans. A scan can see the halves of two different stores only for a
/// slot being reclaimed under it, whose pins are stale or ordered before the scan; the value then
/// only adds a version to the scan's set, which can only forbid a reuse (see `pages`).
pub(crate) struct VersionWord {
    halves: [AtomicUsize; 2],
}

impl VersionWord {
    /// Release: everything the claimer wrote before (its scan) happens-before a scan that loads
    /// either half.
    #[inline]
    pub(crate) fn store(&self, version: u64) {
        self.halves[1].store((version >> 32) as usize, Ordering::Release);
        self.halves[0].store(version as u32 as usize, Ordering::Release);
    }

    /// Acquire: pairs with `store`.
    #[inline]
    pub(crate) fn load(&self) -> u64 {
        let low = self.halves[0].load(Ordering::Acquire) as u64;
        let high = self.halves[1].load(Ordering::Acquire) as u64;
        high << 32 | low
    }
}

impl GenSlot {
    #[cfg(not(loom))]
    gen_slot_new!(const);
    #[cfg(loom)]
    gen_slot_new!();
}
