//! The table's pages ([`Pages`]), the pool of spare pages writers copy into ([`Pool`]), and the
//! rule that says when a page may be reused.
//!
//! # The model
//!
//! **Pages.** The table's `N` slots are cut into pages of 16 (see `table`). A generation is a
//! version, a length and an *index*: for each position of the table, the page that holds it.
//! The map owns `N / 16` *home* pages (the initial generation's) and `P` spare pages, and every
//! page is, at any moment, in exactly one of two places: in the index of the current generation,
//! or held by one of the pool's `P` *entries*. A write claims entries (each holding a page no
//! one can still read), copies into their pages the positions it changes, and builds its index
//! from its base's with those pages in place of the base's. When its compare-and-swap of
//! `current` publishes it, each entry it claimed takes the page its own page replaced: so the
//! pool always holds the `P` pages that are not current, and every page the write did not change
//! is shared with the base, and with every older generation that still has it.
//!
//! **Lives.** History is a line: each published generation is built from the one it replaces
//! (the base pin makes the CAS free of ABA). So a page is in a contiguous run of versions, its
//! *life* `[born, died)`: from the publication that wrote it (0 for the home pages of a new map)
//! to the one before the publication that replaced it. The writer whose CAS published version
//! `v` writes each page it claimed with `born = v` (see [`PageInfo`]), and *retires* each page `v`
//! replaced into the entry that held its replacement, with `died = v`: no generation of version
//! `v` or later has it, and none can get it back (they are all built from `v` or its successors).
//!
//! **Reuse.** A writer may claim a retired page only if (a) it died no later than the writer's
//! base (`died <= b`), and (b) no version `u` in its life is pinned: the writer's scan (the one
//! it makes to claim a generation slot, `write::scan_pins`: after the SeqCst fence that
//! follows its base pin's validation, every pin count and hazard word) finds no pin on a slot
//! whose version is in `[born, died)`. (The sole writer has no base pin: its base is the
//! generation it published itself, so the argument below holds with "its base pin acquired it"
//! read as "it made it".) A pinned generation therefore holds
//! only the pages it has that `current` does not, at most one table, however many writes follow
//! it. No reference counts, nothing on the read path: readers still only load and store their own
//! hazard word.
//!
//! Why it is safe, for a reader R that reads page `x` (life `[born, died)`) through the
//! generation it pinned, of version `u` with `born <= u < died`, while writer W with base `b`
//! claims `x` (so `died <= b`, and `u < b`). The publication of `b` happens-before W's fence
//! (W's base pin acquired it), and so does the publication of `u`, which precedes it in
//! `current`'s modification order (every publication is a read-modify-write, so W's Acquire
//! synchronizes with every one before it). In the single total order S of SeqCst operations,
//! either
//! - R's announcement (with its fence) precedes W's fence: W's scan sees R's hazard or count, or
//!   a later Release store of R, which carries R's reads with it. If it sees the pin, it loads
//!   exactly `u` for that slot (see below), so (b) forbids the claim; or
//! - W's fence precedes it: R's validating load, after its fence in S, cannot read a value of
//!   `current` older than the publication of `b`, which happens-before W's fence (C++20
//!   [atomics.order] p4). So `u >= b`, which contradicts `u < died <= b`.
//!
//! Condition (a) is what the second case needs: pins made after W's fence can be on any version
//! from `b` on, and W's scan knows nothing of them. A page that died after `b` is left for a
//! writer with a newer base (a writer that lost a race and rebuilds scans again for them).
//!
//! The fence must follow the base pin's validation: the base pin's own fence precedes it and does
//! not do. Loom's SeqCst fence is stronger than C++20's and cannot tell the two apart, so the
//! models cannot catch that mistake; this argument is the proof, the models its check.
//!
//! **Which version a pin names.** A hazard word or a pin count names a generation *slot*, and
//! slots are reused, so each slot carries its generation's version in a word written by the
//! slot's claimer before it publishes (Release). The scan records which slots are pinned; the
//! writer loads a pinned slot's version (Acquire) when it checks a page, at any time after its
//! fence. For R above (the first case), the store of `u` precedes the publication of `u`, so it
//! happens-before W's fence and W loads `u` or a later store. A later store would be by a writer
//! C that claimed R's slot after R's pin: C's own scan saw R's pin end (R's reads then
//! happen-before C's store, which W's Acquire load synchronizes with, so they happen-before W's
//! writes), since by the same two cases C cannot have claimed the slot while R still pinned it.
//! Stale pins (ended, on a slot since reused) add versions to check, and an extra version can
//! only forbid a reuse. Versions are full 64-bit values (two 32-bit words where the target has no
//! wider atomic): a pin can be held across any number of writes, so no bound on how far apart
//! they are could make low bits enough.
//!
//! A page a writer claimed but never published (its change failed, or it lost the race and
//! rebuilds) was reachable from no published generation: its entry goes straight back to FREE.
//!
//! **Ownership of an entry's page and life.** Only the state word is shared. The page and life
//! are written by the one writer that holds the entry: the retirer (exactly one publication
//! replaces a page) before its Release store of RETIRED, a claimer only after its Acquire CAS
//! made the entry its own; a claimer that finds the page still reachable stores RETIRED back. So
//! they are plain words, with no ABA: the comparison is made on the entry the claimer holds.
//!
//! **What pins cost.** A pinned generation holds its slot, and the pages it has that `current`
//! does not: a few for a pin a few versions old, at most a whole table for one held across many
//! writes. So `P` spare pages give writers room for about `P / (N / 16)` tables' worth of held
//! snapshots of distinct versions before they wait. A writer that finds no page it may claim
//! returns an error from a `try_` form and waits in a blocking one, for the snapshots that hold
//! pages to drop. It never claims a page a pinned generation can reach.

use crate::cleared::Cleared;
use crate::generation::GenSlot;
use crate::sync::{AtomicUsize, Ordering, UnsafeCell, Writers};
use crate::table::{Shape, SlotCell, PAGE};
use core::mem::MaybeUninit;

/// Entry states. An entry moves FREE -> TAKEN when a writer claims it, stays TAKEN while that
/// writer fills its page, and becomes RETIRED (holding the page the publication replaced) when
/// the writer publishes, or FREE again if it does not. A RETIRED entry is claimed RETIRED ->
/// TAKEN, and given back (stored RETIRED again) if its page is still reachable.
const FREE: usize = 0;
const TAKEN: usize = 1;
const RETIRED: usize = 2;

/// One of the pool's entries: a page that is not in the current generation.
pub(crate) struct Entry {
    /// FREE / TAKEN / RETIRED: the only word shared between writers.
    state: AtomicUsize,
    /// The page held, as its distance from the entry's own spare page (so that a new pool is all
    /// zeros: entry `e` starts with spare page `e`). Accessed only by the entry's holder.
    page: UnsafeCell<u16>,
    /// The page's life, `[born, died)`: the versions of the generations that have it (at most
    /// `born` is enough, see [`PageInfo`]). Accessed only by the entry's holder.
    life: UnsafeCell<(u64, u64)>,
}

/// What a writer's scan found (see the module docs, "Reuse"): its base's version, and which
/// generation slots someone pinned (one bit each), whose versions it loads when it needs them.
pub(crate) struct Pins<'a> {
    pub(crate) base: u64,
    pub(crate) pinned: u32,
    pub(crate) generations: &'a [GenSlot],
    /// How the writer claims entries and records.
    pub(crate) writers: Writers,
}

impl Pins<'_> {
    /// Whether a page in the generations `[born, died)` may be reused: it was replaced no later
    /// than our base, and no pinned version has it.
    fn allow(&self, born: u64, died: u64) -> bool {
        // The `early_page_reuse` mutant (loom runs only) reuses any retired page, to show that
        // the loom models catch a reader's read of a page reused under it.
        if cfg!(snapmap_mutant = "early_page_reuse") {
            return true;
        }
        // The `page_after_base` mutant drops the first condition.
        let replaced_by_base = cfg!(snapmap_mutant = "page_after_base") || died <= self.base;
        replaced_by_base
            && (self.pinned == 0
                || (0..self.generations.len())
                    .filter(|slot| self.pinned & 1 << slot != 0)
                    .all(|slot| !(born..died).contains(&self.generations[slot].version.load())))
    }
}

/// The spare pages' entries, `[Entry; P]` where stored and `[Entry]` where used, so that the code
/// that claims pages does not depend on `P`.
pub(crate) struct Pool<E: ?Sized = [Entry]> {
    /// Where the next claim starts looking: entries are taken in rotation, so the first candidate
    /// is the least recently retired, the one most likely to be reusable. Only a hint.
    next: AtomicUsize,
    entries: E,
}

macro_rules! pool_new {
    ($($const:ident)?) => {
        pub(crate) $($const)? fn new() -> Self {
            Self {
                next: AtomicUsize::new(0),
                entries: crate::sync::array![Entry {
                    state: AtomicUsize::new(FREE),
                    page: UnsafeCell::new(0),
                    life: UnsafeCell::new((0, 0)),
                }; P],
            }
        }
    };
}

impl<const P: usize> Pool<[Entry; P]> {
    #[cfg(not(loom))]
    pool_new!(const);
    #[cfg(loom)]
    pool_new!();
}

impl Pool {
    /// Claims an entry whose page no one can still read, as `pins` tells (see the module docs):
    /// a FREE entry, or a RETIRED one whose page `pins` allows. `None` if there is none.
    fn try_claim(&self, pins: &Pins<'_>) -> Option<usize> {
        let count = self.entries.len();
        // Relaxed: a hint; any start below `count` is correct.
        let start = self.next.load(Ordering::Relaxed).min(count - 1);
        let mut id = start;
        loop {
            // In rotation from `start`, without a division (the M0+ has none).
            let after = if id + 1 == count { 0 } else { id + 1 };
            if self.try_claim_entry(id, pins) {
                self.next.store(after, Ordering::Relaxed);
                return Some(id);
            }
            if after == start {
                return None;
            }
            id = after;
        }
    }

    fn try_claim_entry(&self, id: usize, pins: &Pins<'_>) -> bool {
        let entry = &self.entries[id];
        // Relaxed pre-check: skip taken entries without a read-modify-write.
        let seen = entry.state.load(Ordering::Relaxed);
        if seen == TAKEN {
            return false;
        }
        // Acquire on success: synchronizes with the Release store that freed or retired the
        // entry, so the last writer's accesses to its page, the readers' reads that the caller's
        // scan ordered before it, and the retirer's page and life all happen-before what we do
        // next.
        if pins.writers.claim(&entry.state, seen, TAKEN).is_err() {
            return false;
        }
        if seen == FREE {
            return true;
        }
        // SAFETY: the entry is ours (our CAS took it from RETIRED), so nobody else accesses its
        // life; the retirer's write happens-before our CAS.
        let (born, died) = entry.life.with(|life| unsafe { *life });
        if !pins.allow(born, died) {
            // Still reachable from a generation someone may read. Release: hands on what we
            // acquired to the next claimer (a plain store does not extend a release sequence).
            entry.state.store(RETIRED, Ordering::Release);
            return false;
        }
        true
    }

    /// The page entry `id` holds; for its holder.
    #[inline]
    fn page(&self, id: usize) -> usize {
        // SAFETY: the caller holds the entry (TAKEN by its claim), so nobody else writes it.
        let distance = self.entries[id].page.with(|page| unsafe { *page });
        (id + usize::from(distance)) % (1 << 16)
    }

    /// Gives back entry `id`, claimed by the caller, whose page no published generation has.
    /// Release: the caller's writes to the page happen-before the next claimer's.
    fn give_back(&self, id: usize) {
        self.entries[id].state.store(FREE, Ordering::Release);
    }

    /// Makes entry `id` (claimed by the caller, whose page the caller's publication of `died`
    /// put in the current generation) hold `page`, the page that publication replaced, in the
    /// generations from `born` on.
    fn retire(&self, id: usize, page: usize, born: u64, died: u64) {
        let entry = &self.entries[id];
        // SAFETY: the entry is TAKEN by the caller, and only its holder touches its page and
        // life until the Release store below hands them to a claimer.
        unsafe {
            entry
                .page
                .with_mut(|held| *held = page.wrapping_sub(id) as u16);
            entry.life.with_mut(|life| *life = (born, died));
        }
        // Release: page and life happen-before the Acquire CAS of whoever claims the entry.
        entry.state.store(RETIRED, Ordering::Release);
    }
}

/// The pages a writer claimed for one attempt at a write, and the records of the positions it
/// cleared or gave a page again (see `cleared`). Dropping it gives all of them back (the attempt
/// failed, lost its race or unwound); [`retire_all`](Self::retire_all) is for a publication.
pub(crate) struct Claims<'a> {
    pool: &'a Pool,
    cleared: &'a Cleared,
    /// What the writer's scan found (see the module docs).
    pins: &'a Pins<'a>,
    /// `(position, entry)` for each page claimed, in `held[..len]` (written; the rest is not,
    /// which spares each write zeroing it); room for every entry.
    held: &'a mut [MaybeUninit<(u16, u16)>],
    len: usize,
    /// The base's index and the writer's, `positions` entries each. A position whose page is
    /// the zero page in exactly one of them is one whose record the writer holds.
    base: *const UnsafeCell<u16>,
    mine: *const UnsafeCell<u16>,
    positions: usize,
    /// Whether a record was claimed, so that `positions` must be walked to find them.
    records: bool,
}

impl<'a> Claims<'a> {
    /// # Safety
    /// `base` is the index of a generation the caller pins, `mine` that of the generation slot it
    /// claimed, `positions` entries each, for as long as the claims live; all of the same map
    /// as `pool` and `cleared`.
    pub(crate) unsafe fn new(
        pool: &'a Pool,
        cleared: &'a Cleared,
        pins: &'a Pins<'a>,
        held: &'a mut [MaybeUninit<(u16, u16)>],
        (base, mine, positions): (*const UnsafeCell<u16>, *const UnsafeCell<u16>, usize),
    ) -> Self {
        debug_assert_eq!(held.len(), pool.entries.len());
        Self {
            pool,
            cleared,
            pins,
            held,
            len: 0,
            base,
            mine,
            positions,
            records: false,
        }
    }

    /// The id of the home page of `position` (spare pages come first, see [`Pages`]).
    pub(crate) fn home_page(&self, position: usize) -> usize {
        self.pool.entries.len() + position
    }

    /// The index entry that names the zero page at `position` (it follows the home pages).
    pub(crate) fn zero_entry(&self, position: usize) -> isize {
        (self.positions - position) as isize
    }

    /// Claims a page for `position`; returns its id. `None` if no entry may be claimed.
    pub(crate) fn claim(&mut self, position: usize) -> Option<usize> {
        if self.len == self.held.len() {
            return None;
        }
        let id = self.pool.try_claim(self.pins)?;
        self.held[self.len].write((position as u16, id as u16));
        self.len += 1;
        Some(self.pool.page(id))
    }

    /// Claims the record of `position`, which the base gives a page of its own, to clear it.
    /// `false` if another writer holds it, or the base is stale (see `cleared`).
    pub(crate) fn claim_to_clear(&mut self, position: usize) -> bool {
        let claimed = self.cleared.claim_empty(self.pins.writers, position);
        self.records |= claimed;
        claimed
    }

    /// Claims the record of `position`, which the base clears, to give it a page again. `false`
    /// if another writer holds it, or the base is stale.
    pub(crate) fn claim_to_refill(&mut self, position: usize) -> bool {
        let claimed = self.cleared.claim_held(self.pins.writers, position);
        self.records |= claimed;
        claimed
    }

    /// Gives back the record of `position`, claimed to clear it, which the copy gives a page
    /// again after all (the base's page is then replaced by that page, as by any copy).
    pub(crate) fn unclear(&mut self, position: usize) {
        self.cleared.give_back(position, false);
    }

    /// Whether every entry of the pool is claimed here: a change that needs more pages than
    /// that can never be made.
    pub(crate) fn hold_all(&self) -> bool {
        self.len == self.held.len()
    }

    /// How many pages were claimed.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `(position, entry)` for each page claimed.
    fn claimed(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        // SAFETY: the first `len` are written (by `claim`).
        self.held[..self.len]
            .iter()
            .map(|held| unsafe { held.assume_init() })
    }

    /// `(position, page)` for each page claimed.
    #[inline]
    pub(crate) fn pages(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.claimed()
            .map(|(position, id)| (usize::from(position), self.pool.page(usize::from(id))))
    }

    /// Whether a record was claimed: then [`retire_all`](Self::retire_all) reads the writer's
    /// own index after its publication, which the writer must keep from reuse until then.
    pub(crate) fn records(&self) -> bool {
        self.records
    }

    /// The base's index entry at `position`, and whether it names the zero page.
    fn base_entry(&self, position: usize) -> (isize, bool) {
        // SAFETY: in bounds; the base is pinned, or (after the publication that replaced it)
        // not yet retired by its retirer, the caller.
        let entry = unsafe { (*self.base.add(position)).with(|entry| *entry) } as i16 as isize;
        (entry, entry == self.zero_entry(position))
    }

    /// Index entries of `position`: the base's, and whether each names the zero page.
    ///
    /// Reads the writer's own index: only while it is unpublished, or (see `records`) pinned.
    fn entries(&self, position: usize) -> (isize, bool, bool) {
        let (base, base_zero) = self.base_entry(position);
        // SAFETY: in bounds; ours is written only by our copy, which is not writing now, and
        // no one else writes it while it is unpublished or we pin it.
        let mine = unsafe { (*self.mine.add(position)).with(|entry| *entry) } as i16 as isize;
        (base, base_zero, mine == self.zero_entry(position))
    }

    /// After the publication of `version`: each claimed entry takes the page its own replaced:
    /// the base's page at its position (born as `born` says), or, at a position the base had
    /// cleared, the page that position's record holds, with its life. Each record claimed to
    /// clear a position then holds the base's page there.
    ///
    /// With [`records`](Self::records), the caller pins its own generation across this call: the
    /// walk reads its index, which a writer could otherwise reuse as soon as a successor has
    /// retired it.
    pub(crate) fn retire_all(&mut self, version: u64, born: impl Fn(usize) -> u64) {
        for i in 0..self.len {
            // SAFETY: the first `len` are written (by `claim`).
            let (position, id) = unsafe { self.held[i].assume_init() };
            let position = usize::from(position);
            let (entry, base_zero) = self.base_entry(position);
            let (page, died) = if base_zero {
                let (page, died) = self.cleared.page(position);
                // The `cleared_life_lost` mutant (loom runs only) forgets how long a page taken
                // out by a clear lived, so that a pin from before the clear no longer holds it.
                if cfg!(snapmap_mutant = "cleared_life_lost") {
                    (page, born(page))
                } else {
                    (page, died)
                }
            } else {
                let page = self.home_page(position).wrapping_add_signed(entry);
                (page, version)
            };
            self.pool.retire(usize::from(id), page, born(page), died);
        }
        self.len = 0;
        if core::mem::take(&mut self.records) {
            for position in 0..self.positions {
                match self.entries(position) {
                    // Given a page again: the record's page went to the pool entry above.
                    (_, true, false) => self.cleared.empty(position),
                    (entry, false, true) => {
                        let page = self.home_page(position).wrapping_add_signed(entry);
                        self.cleared.hold(position, page, version);
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        for (_, id) in self.claimed() {
            self.pool.give_back(usize::from(id));
        }
        if self.records {
            for position in 0..self.positions {
                let (_, base_zero, mine_zero) = self.entries(position);
                if base_zero != mine_zero {
                    self.cleared.give_back(position, base_zero);
                }
            }
        }
    }
}

/// Every page of a map: the `P` spare pages, then the `N / 16` home pages (the initial table,
/// `N` slots), in one block, so that page `p` starts at slot `16 * p` of it whatever `p` is.
/// (Spare pages come first so that the home pages end the block even when `N < 16`.)
///
/// After them, the *zero page*: always empty, never written, named by a cleared generation at
/// every position it cleared (see `cleared`). It follows the home pages, so its id is
/// `P + N / 16` (for `N >= 16`; a table of one page never names it).
#[repr(C)]
pub(crate) struct Pages<K, V, const N: usize, const P: usize> {
    spare: [[SlotCell<K, V>; PAGE]; P],
    home: [SlotCell<K, V>; N],
    zero: [SlotCell<K, V>; PAGE],
}

macro_rules! pages_new {
    ($($const:ident)?) => {
        pub(crate) $($const)? fn new() -> Self {
            Self {
                spare: crate::sync::array![
                    crate::sync::array![UnsafeCell::new(crate::table::Slot::EMPTY); PAGE]; P
                ],
                home: crate::sync::array![UnsafeCell::new(crate::table::Slot::EMPTY); N],
                zero: crate::sync::array![UnsafeCell::new(crate::table::Slot::EMPTY); PAGE],
            }
        }
    };
}

impl<K, V, const N: usize, const P: usize> Pages<K, V, N, P> {
    #[cfg(not(loom))]
    pages_new!(const);
    #[cfg(loom)]
    pages_new!();

    /// Home slot 0, with provenance over every page: slot `i` of page `p` is at
    /// `home() + i + 16 * (p - P - i / 16)`.
    #[inline(always)]
    pub(crate) fn home(&self) -> *const SlotCell<K, V> {
        // `repr(C)` and equal element types: the block is one array of `16 * P + N` cells, the
        // home pages at offset `16 * P`.
        (self as *const Self)
            .cast::<SlotCell<K, V>>()
            .wrapping_add(PAGE * P)
    }
}

impl<K, V, const N: usize, const P: usize> Drop for Pages<K, V, N, P> {
    /// Drops every entry of every page, each page once (a page is in the current generation or
    /// held by one entry of the pool, never both). If a drop panics, the unwind drops the rest.
    fn drop(&mut self) {
        /// The cells not yet emptied. `run` empties them; if a drop panics, the unwind drops the
        /// guard, whose `Drop` runs on from the next cell (as `Vec`'s drop does).
        struct Rest<'a, K, V>(core::slice::IterMut<'a, SlotCell<K, V>>);
        impl<K, V> Rest<'_, K, V> {
            fn run(&mut self) {
                for cell in self.0.by_ref() {
                    // SAFETY: `&mut` to the whole map: nobody else can reach its pages.
                    cell.with_mut(|slot| unsafe { (*slot).vacate() });
                }
            }
        }
        impl<K, V> Drop for Rest<'_, K, V> {
            fn drop(&mut self) {
                self.run(); // nothing left after a normal finish; the rest after a panic
            }
        }
        // SAFETY: `repr(C)` with equal element types and no padding (each array's size is a
        // multiple of the cell's alignment): the block starts with `16 * P + N` consecutive
        // cells (the zero page after them is always empty), which `&mut self` lends us whole.
        let all = unsafe {
            core::slice::from_raw_parts_mut(
                (self as *mut Self).cast::<SlotCell<K, V>>(),
                PAGE * P + N,
            )
        };
        Rest(all.iter_mut()).run();
    }
}

/// What writers note about each page besides its slots: its *birth* and its *occupancy*.
///
/// The birth is the version of the first generation that has the page, for the retirer to
/// stamp its life with (see the module docs). Written by the writer that claimed the page, before
/// the compare-and-swap that publishes it (again on each attempt: a lost race rewrites it, or
/// gives the page back), and read by the writer whose publication replaces it, after its own
/// compare-and-swap, which is ordered after the first one (its base pin acquired it, or a later
/// publication). Nobody else touches a page's birth in between: a current page is claimed by no
/// one, and replaced by exactly one publication. A table of one page needs none: every write
/// copies that page, so the one its base has was born with the base.
///
/// The occupancy has one bit per slot, set where the slot holds an entry: iteration reads it
/// instead of every slot's meta (see [`Occupancy`]). The writer that holds the page keeps it
/// exact as it changes the page (`table::TableMut`), so that like the page it is immutable once
/// published, while any generation has it.
///
/// The `P` spare pages' births are words and their occupancies half-words. The `N / 16` home
/// pages' notes are 16 bytes each in a block of `N` (`[u64; N / 16]` cannot be written): the
/// occupancy in bytes 0-1, the birth in bytes 8-15, all zero when the map is new, as the home
/// pages are empty and born with it. (A table of one page has fewer than 16 bytes there, and
/// keeps only the occupancy.)
// `repr(C, align(8))`: the home notes follow `8 * P` bytes of spare births, so each home page's
// birth is aligned for one `u64` access (`u64` is 4-aligned on some targets).
#[repr(C, align(8))]
pub(crate) struct PageInfo<const N: usize, const P: usize> {
    spare: [UnsafeCell<u64>; P],
    home: [UnsafeCell<u8>; N],
    spare_occupancy: [UnsafeCell<u16>; P],
}

macro_rules! page_info_new {
    ($($const:ident)?) => {
        pub(crate) $($const)? fn new() -> Self {
            Self {
                spare: crate::sync::array![UnsafeCell::new(0); P],
                home: crate::sync::array![UnsafeCell::new(0); N],
                spare_occupancy: crate::sync::array![UnsafeCell::new(0); P],
            }
        }
    };
}

/// Where a map's pages' occupancies are (see [`PageInfo`]), for readers: a view of them that
/// depends on neither `N` nor `P`, which a snapshot carries.
#[derive(Clone, Copy)]
pub(crate) struct Occupancy {
    spare: *const UnsafeCell<u16>,
    /// The home pages' notes: 16 bytes each, the occupancy first.
    home: *const UnsafeCell<u8>,
    spare_pages: usize,
    home_pages: usize,
}

impl Occupancy {
    /// Sets the occupancy of page `page`, a page the caller holds (claimed, unpublished).
    ///
    /// # Safety
    /// Nobody else accesses the page's notes (it is the caller's, see [`PageInfo`]).
    #[inline]
    pub(crate) unsafe fn set(&self, page: usize, bits: u16) {
        if page < self.spare_pages {
            // SAFETY: a spare page's entry, ours alone by the caller's contract.
            unsafe { (*self.spare.add(page)).with_mut(|mine| *mine = bits) };
            return;
        }
        let home = page - self.spare_pages;
        debug_assert!(home < self.home_pages, "the zero page is never claimed");
        // SAFETY: bytes 0-1 of home page `home`'s notes, as in `get`; ours alone.
        unsafe {
            let at = self.home.add(16 * home);
            #[cfg(not(loom))]
            at.cast::<u16>().cast_mut().write(bits);
            #[cfg(loom)]
            for (i, byte) in bits.to_ne_bytes().into_iter().enumerate() {
                (*at.add(i)).with_mut(|mine| *mine = byte);
            }
        }
    }

    /// `P`: the first home page's id.
    #[inline(always)]
    pub(crate) fn spare_pages(&self) -> usize {
        self.spare_pages
    }

    /// The occupancy of page `page` of the map: one bit per slot, set where it holds an entry
    /// (the zero page's is 0).
    ///
    /// # Safety
    /// Nobody writes the page's notes meanwhile: a generation that names it is pinned, or the
    /// page is the caller's.
    #[inline(always)]
    pub(crate) unsafe fn get(&self, page: usize) -> u32 {
        if page < self.spare_pages {
            // SAFETY: a spare page's entry (`page < P`); not written while pinned.
            return u32::from(unsafe { (*self.spare.add(page)).with(|bits| *bits) });
        }
        let home = page - self.spare_pages;
        if home >= self.home_pages {
            return 0; // the zero page
        }
        // SAFETY: bytes 0-1 of home page `home`'s 16 (or, in a one-page table, of the block's
        // first 2 of at least 2), in the block; not written while pinned.
        unsafe {
            let at = self.home.add(16 * home);
            #[cfg(not(loom))]
            let bits = at.cast::<u16>().read();
            #[cfg(loom)]
            let bits = u16::from_ne_bytes([(*at).with(|b| *b), (*at.add(1)).with(|b| *b)]);
            u32::from(bits)
        }
    }
}

impl<const N: usize, const P: usize> PageInfo<N, P> {
    #[cfg(not(loom))]
    page_info_new!(const);
    #[cfg(loom)]
    page_info_new!();

    /// The 8 cells of home page `page`'s birth (`P <= page`): bytes 8-15 of its notes.
    #[inline]
    fn home_cells(&self, page: usize) -> &[UnsafeCell<u8>] {
        const { assert!(core::mem::offset_of!(Self, home) % 8 == 0) };
        let first = (page - P) * 16 + 8;
        &self.home[first..first + 8]
    }

    /// Where readers find the occupancies.
    #[inline(always)]
    pub(crate) fn occupancy(&self) -> Occupancy {
        Occupancy {
            spare: self.spare_occupancy.as_ptr(),
            home: self.home.as_ptr(),
            spare_pages: P,
            home_pages: Shape::<N>::PAGES,
        }
    }

    /// Records that page `page` is born with `version`.
    ///
    /// # Safety
    /// The caller holds `page` (claimed, unpublished), as the type's docs say.
    #[inline]
    pub(crate) unsafe fn set(&self, page: usize, version: u64) {
        if Shape::<N>::PAGES == 1 {
            return;
        }
        if page < P {
            // SAFETY: by the caller's claim, nobody else accesses this page's birth.
            unsafe { self.spare[page].with_mut(|born| *born = version) };
            return;
        }
        let cells = self.home_cells(page);
        // One aligned store (see the type's `repr`), but under loom, whose cells are not plain
        // memory.
        #[cfg(not(loom))]
        // SAFETY: as above; the 8 cells are consecutive bytes (`UnsafeCell` is transparent),
        // 8-aligned, and the pointer comes from the slice of them, through which writes are
        // allowed.
        unsafe {
            cells.as_ptr().cast::<u64>().cast_mut().write(version)
        };
        #[cfg(loom)]
        for (cell, byte) in cells.iter().zip(version.to_ne_bytes()) {
            // SAFETY: as above.
            cell.with_mut(|mine| unsafe { *mine = byte });
        }
    }

    /// The birth of page `page`, which generation `base` (of version `version`) has.
    ///
    /// # Safety
    /// The caller's publication replaced `page`, as the type's docs say.
    #[inline]
    pub(crate) unsafe fn get(&self, page: usize, version: u64) -> u64 {
        // The `birth_is_base` mutant (loom runs only) takes every page as born with the base
        // its replacer copied, as a table of one page may: the two-page models catch a page
        // reused under a pin older than that.
        if Shape::<N>::PAGES == 1 || cfg!(snapmap_mutant = "birth_is_base") {
            return version;
        }
        if page < P {
            // SAFETY: written before a publication our own is ordered after; nobody writes it
            // now.
            return unsafe { self.spare[page].with(|born| *born) };
        }
        let cells = self.home_cells(page);
        #[cfg(not(loom))]
        // SAFETY: as above, and as in `set`.
        return unsafe { cells.as_ptr().cast::<u64>().read() };
        #[cfg(loom)]
        {
            let mut bytes = [0; 8];
            for (byte, cell) in bytes.iter_mut().zip(cells) {
                // SAFETY: as above.
                *byte = cell.with(|born| unsafe { *born });
            }
            u64::from_ne_bytes(bytes)
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn pool() -> Pool<[Entry; 3]> {
        Pool::new()
    }

    /// Generation slots holding the versions `pinned` (at most 4), and the pins of a scan
    /// with base `base` that found each of them pinned.
    fn slots(pinned: &[u64]) -> ([GenSlot; 4], u32) {
        let slots = core::array::from_fn(|slot| {
            let generation = GenSlot::new();
            generation
                .version
                .store(pinned.get(slot).copied().unwrap_or(0));
            generation
        });
        (slots, (1 << pinned.len()) - 1)
    }

    /// `pool.try_claim` by a writer with base `base` whose scan found `pinned` pinned.
    fn try_claim(pool: &Pool, base: u64, pinned: &[u64]) -> Option<usize> {
        let (generations, pinned) = slots(pinned);
        pool.try_claim(&Pins {
            base,
            pinned,
            generations: &generations,
            writers: Writers::Many,
        })
    }

    #[test]
    fn free_entries_are_claimed_in_rotation_and_given_back() {
        let pool = pool();
        let pool: &Pool = &pool;
        assert_eq!(try_claim(pool, 0, &[]), Some(0));
        assert_eq!(try_claim(pool, 0, &[]), Some(1));
        assert_eq!(try_claim(pool, 0, &[]), Some(2));
        assert_eq!(try_claim(pool, 0, &[]), None, "all three claimed");
        pool.give_back(1);
        assert_eq!(try_claim(pool, 0, &[]), Some(1));
        assert_eq!([0, 1, 2].map(|id| pool.page(id)), [0, 1, 2]);
    }

    /// A page in the generations `[3, 5)` is reused only when no pinned version is 3 or 4 and the
    /// claimer's base is 5 or later.
    #[test]
    fn a_retired_page_waits_only_for_the_pins_that_have_it() {
        let pool = pool();
        let pool: &Pool = &pool;
        let ids = [0, 1, 2].map(|_| try_claim(pool, 0, &[]).unwrap());
        pool.retire(ids[0], 7, 3, 5);
        for pinned in [3, 4] {
            assert_eq!(try_claim(pool, 9, &[pinned]), None, "reused under {pinned}");
        }
        assert_eq!(try_claim(pool, 4, &[]), None, "reused by a base it is in");
        assert_eq!(try_claim(pool, 9, &[9, 2, 6, 3]), None);
        // Pins before its birth or after its death do not hold it.
        assert_eq!(try_claim(pool, 5, &[2, 5, 1, 7]), Some(ids[0]));
        assert_eq!(
            pool.page(ids[0]),
            7,
            "the retired page, not the entry's own"
        );
        // Retired again with full 64-bit versions.
        pool.retire(ids[0], 0, 1 << 32, (1 << 32) + 9);
        assert_eq!(try_claim(pool, u64::MAX, &[(1 << 32) + 8]), None);
        assert_eq!(try_claim(pool, u64::MAX, &[9, u64::MAX]), Some(ids[0]));
        assert_eq!(pool.page(ids[0]), 0);
    }

    /// Dropped claims give their entries back; retired ones keep them until reusable.
    #[test]
    fn claims_give_back_unless_retired() {
        let stored = pool();
        let pool: &Pool = &stored;
        let cleared: Cleared<[crate::sync::AtomicU8; 128]> = Cleared::new();
        // Eight positions, the base's index and ours: all home pages (page 3 + position).
        let base: [UnsafeCell<u16>; 8] = core::array::from_fn(|_| UnsafeCell::new(0));
        let mine: [UnsafeCell<u16>; 8] = core::array::from_fn(|_| UnsafeCell::new(0));
        let indices = (base.as_ptr(), mine.as_ptr(), 8);
        let mut held = [MaybeUninit::uninit(); 3];
        let (generations, _) = slots(&[]);
        let none = Pins {
            base: 0,
            pinned: 0,
            generations: &generations,
            writers: Writers::Many,
        };
        // SAFETY: single-threaded; the indices outlive the claims.
        let mut claims = unsafe { Claims::new(pool, &cleared, &none, &mut held, indices) };
        assert_eq!((claims.claim(4), claims.claim(5)), (Some(0), Some(1)));
        assert!(!claims.hold_all());
        assert!(claims.pages().eq([(4, 0), (5, 1)]));
        drop(claims);
        let mut held = [MaybeUninit::uninit(); 3];
        let base_2 = Pins { base: 2, ..none };
        // SAFETY: as above.
        let mut claims = unsafe { Claims::new(pool, &cleared, &base_2, &mut held, indices) };
        assert!(claims.claim(4).is_some());
        claims.retire_all(3, |page| {
            assert_eq!(page, 7, "the base's page at position 4");
            1
        });
        // The retired entry holds page 7, in generations 1 and 2; the other two are free.
        assert!(try_claim(pool, 3, &[2]).is_some() && try_claim(pool, 3, &[2]).is_some());
        assert_eq!(try_claim(pool, 3, &[2]), None, "reused under a pin on 2");
        let retired = try_claim(pool, 3, &[0, 3]).expect("reusable");
        assert_eq!(pool.page(retired), 7);
    }

    /// Births round-trip for spare and home pages, and a one-page table reports its base's.
    #[test]
    fn births_are_kept_per_page() {
        let births: PageInfo<64, 2> = PageInfo::new();
        // SAFETY: single-threaded test.
        unsafe {
            assert_eq!(births.get(5, 9), 0, "a home page is born with the map");
            births.set(1, 7);
            births.set(5, u64::MAX - 1);
            births.set(2, 1 << 40);
            assert_eq!(
                [1, 2, 5].map(|page| births.get(page, 0)),
                [7, 1 << 40, u64::MAX - 1]
            );
            let one_page: PageInfo<16, 2> = PageInfo::new();
            one_page.set(0, 3);
            assert_eq!(one_page.get(0, 11), 11);
        }
    }
}
