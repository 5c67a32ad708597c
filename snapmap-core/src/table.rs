//! The hash table a generation holds, cut into pages: [`View`] reads one, [`TableMut`] is a
//! writer's private copy, which copies a page from its base only when it first writes to it.
//!
//! Open addressing with linear probing, Robin Hood insertion and backward-shift deletion (no
//! tombstones), over `N` slots, `N` a power of two. Robin Hood insertion keeps each run of
//! entries ordered by home slot, which bounds how far any entry sits from its home (at 50% load,
//! 3 slots instead of 6 for the 64 keys of the emulated benchmark): the worst-case read stays
//! close to the median one. Each slot keeps its entry beside the 32-bit `meta` of the entry's key
//! hash (0 = empty), so a probe reads one place, compares the key only when the metas match, and
//! deletion finds each entry's home slot without re-hashing.
//!
//! **Pages.** Slot `i` of the table is slot `i % 16` of the page at *position* `i / 16` (a table
//! of fewer than 16 slots is one page). A generation's *index* names, for each position, the page
//! holding it: one `u16` per position, the page's distance from the position's *home page* (see
//! `pages`), so that an index of zeros is the initial table, all home pages, and a map starts as
//! all zero bytes. A slot's address is then `home + i + 16 * index[i / 16]`: one more load and
//! an add for a lookup. Pages are immutable once a published generation names them; a writer
//! changes a position by copying its page into a spare one (*copy on first write*), so a write
//! copies only the pages it changes and shares every other page with its base.

use crate::hash::meta_of;
use crate::pages::{Claims, Occupancy};
use crate::sync::UnsafeCell;
use crate::Error;
use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;
use core::mem::MaybeUninit;

/// Slots per page. Spare pages always have this many; a table of fewer slots uses only the
/// first `N` of each page.
pub(crate) const PAGE: usize = 16;

/// The longest run of occupied slots a table of more than [`MAX_WRITE_PAGES`] pages may have: an
/// insert that would make a longer one returns [`Error::Full`]. Every slot a one-key write
/// changes lies in one run (Robin Hood insertion shifts entries up to the run's first empty
/// slot, backward-shift deletion down to its end), so it changes at most `MAX_WRITE_PAGES`
/// pages. With random keys the first refusal comes past half full (see `SnapMap`'s `N`).
pub(crate) const MAX_RUN: usize = 48;

/// The most pages a run of `MAX_RUN` slots can touch: 48 slots from the last slot of a page.
pub(crate) const MAX_WRITE_PAGES: usize = 1 + (MAX_RUN - 1).div_ceil(PAGE);

pub(crate) struct Slot<K, V> {
    /// 0: empty, `entry` uninitialized. Otherwise the key's meta, and `entry` is initialized.
    meta: u32,
    entry: MaybeUninit<(K, V)>,
}

/// A slot as stored: written only by the writer that claimed its page, read through pins.
pub(crate) type SlotCell<K, V> = UnsafeCell<Slot<K, V>>;

impl<K, V> Slot<K, V> {
    pub(crate) const EMPTY: Self = Self {
        meta: 0,
        entry: MaybeUninit::uninit(),
    };

    #[inline]
    fn get(&self) -> Option<&(K, V)> {
        // SAFETY: a non-zero meta means the entry is initialized (the invariant of `Slot`).
        (self.meta != 0).then(|| unsafe { self.entry.assume_init_ref() })
    }

    /// Empties the slot, dropping its entry; returns whether there was one. Marked empty before
    /// the drop, so a panicking drop leaves the slot consistent.
    pub(crate) fn vacate(&mut self) -> bool {
        if core::mem::replace(&mut self.meta, 0) == 0 {
            return false;
        }
        // SAFETY: the meta was non-zero, so the entry was initialized; it is now marked empty,
        // so nothing will read or drop it again.
        unsafe { self.entry.assume_init_drop() };
        true
    }
}

/// The geometry of a table of `N` slots.
pub(crate) struct Shape<const N: usize>;

impl<const N: usize> Shape<N> {
    pub(crate) const MASK: usize = {
        assert!(
            N >= 2 && N.is_power_of_two(),
            "SnapMap's capacity N must be a power of two, at least 2"
        );
        assert!(N <= 1 << 18, "SnapMap's capacity N must be at most 2^18");
        N - 1
    };
    /// Slots of a page that the table uses.
    pub(crate) const PAGE_LEN: usize = if N < PAGE { N } else { PAGE };
    /// Pages (positions) of the table, and so entries of a generation's index.
    pub(crate) const PAGES: usize = N / Self::PAGE_LEN;
    /// Right shift that turns a meta into its home slot: its top log2(N) bits. (Computed without
    /// overflow for any `N`, so that a bad `N` reports only `MASK`'s clear error.)
    const HOME_SHIFT: u32 = 32 - (N.trailing_zeros() & 31);

    #[inline]
    fn home(meta: u32) -> usize {
        (meta >> Self::HOME_SHIFT) as usize
    }
}

/// Reads index entry `position` of `index`.
///
/// # Safety
/// `index` points to an index of `Shape::<N>::PAGES` entries, `position` is below that, and no
/// write to the entry races this read (it belongs to a pinned generation or to the caller's).
#[inline(always)]
unsafe fn entry_at(index: *const UnsafeCell<u16>, position: usize) -> isize {
    // SAFETY: in bounds and not raced, by the caller's contract.
    unsafe { (*index.add(position)).with(|entry| *entry) as i16 as isize }
}

/// The cell of slot `i` of the table whose index is `index`.
///
/// # Safety
/// As [`entry_at`], for `i < N`; `home` points to home slot 0 of the map's pages, with
/// provenance over all of them.
#[inline(always)]
unsafe fn cell_at<K, V>(
    home: *const SlotCell<K, V>,
    index: *const UnsafeCell<u16>,
    i: usize,
) -> *const SlotCell<K, V> {
    // SAFETY: the caller's contract; an index entry names a page of the same map, so the offset
    // stays inside the pages (see `pages::Pages`).
    unsafe { home.offset(i as isize + PAGE as isize * entry_at(index, i / PAGE)) }
}

/// The slot `i` of the table whose index is `index`.
///
/// # Safety
/// As [`cell_at`], and the page the index names for slot `i` is not being written (it is
/// published and pinned, or the caller's own) for `'a`.
#[inline(always)]
unsafe fn slot_at<'a, K, V>(
    home: *const SlotCell<K, V>,
    index: *const UnsafeCell<u16>,
    i: usize,
) -> &'a Slot<K, V> {
    // SAFETY: the caller's contract.
    unsafe { (*cell_at(home, index, i)).with(|slot| &*slot) }
}

/// One generation's table, read-only: what a snapshot reads.
pub(crate) struct View<'a, K, V, const N: usize> {
    home: *const SlotCell<K, V>,
    index: *const UnsafeCell<u16>,
    len: usize,
    /// The map's pages' occupancies (see `pages::PageInfo`).
    occupancy: Occupancy,
    _pages: PhantomData<&'a Slot<K, V>>,
}

impl<K, V, const N: usize> Clone for View<'_, K, V, N> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V, const N: usize> Copy for View<'_, K, V, N> {}

impl<'a, K, V, const N: usize> View<'a, K, V, N> {
    /// # Safety
    /// `home` and `index` as for [`slot_at`], for every slot, for all of `'a`; `len` is the
    /// generation's number of entries; `occupancy` is the same map's, and the occupancy of every
    /// page the index names is exact and unwritten for all of `'a`, as the page is.
    pub(crate) unsafe fn new(
        home: *const SlotCell<K, V>,
        index: *const UnsafeCell<u16>,
        len: usize,
        occupancy: Occupancy,
    ) -> Self {
        let _ = Shape::<N>::MASK;
        Self {
            home,
            index,
            len,
            occupancy,
            _pages: PhantomData,
        }
    }

    #[inline(always)]
    fn slot(&self, i: usize) -> &'a Slot<K, V> {
        debug_assert!(i < N);
        // SAFETY: `i < N` (every caller masks it), and `new`'s contract.
        unsafe { slot_at(self.home, self.index, i) }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The most slots a lookup of a present key reads: one more than the farthest any entry
    /// sits from its home slot (0 for an empty table). A lookup of an absent key reads at most
    /// one more run than that.
    pub(crate) fn longest_probe(&self) -> usize {
        (0..N)
            .filter_map(|i| {
                let meta = self.slot(i).meta;
                (meta != 0).then(|| (i.wrapping_sub(Shape::<N>::home(meta)) & Shape::<N>::MASK) + 1)
            })
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn iter(&self) -> Iter<'a, K, V> {
        Iter {
            home: self.home,
            index: self.index,
            occupancy: self.occupancy,
            page: self.home,
            occupied: 0,
            position: 0,
            pages: Shape::<N>::PAGES,
            remaining: self.len,
            _pages: PhantomData,
        }
    }
}

impl<'a, K: Hash + Eq, V, const N: usize> View<'a, K, V, N> {
    /// The slot holding `key`, or `Err` with the empty slot where it would go (`None` if the
    /// table is full and `key` absent), probing from `index`: a slot on the key's probe path at
    /// or after its home such that no slot before it on that path holds the key or is empty.
    #[inline]
    fn find_from<Q>(&self, meta: u32, key: &Q, mut index: usize) -> Result<usize, Option<usize>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // At most N probes: a full table has no empty slot to stop at.
        for _ in 0..N {
            let slot = self.slot(index);
            if slot.meta == 0 {
                return Err(Some(index));
            }
            if slot.meta == meta {
                // SAFETY: non-zero meta, so the entry is initialized.
                let (k, _) = unsafe { slot.entry.assume_init_ref() };
                if k.borrow() == key {
                    return Ok(index);
                }
            }
            index = (index + 1) & Shape::<N>::MASK;
        }
        Err(None)
    }

    #[inline]
    fn find<Q>(&self, meta: u32, key: &Q) -> Result<usize, Option<usize>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find_from(meta, key, Shape::<N>::home(meta))
    }

    #[inline]
    pub(crate) fn get<Q>(&self, hasher: &impl BuildHasher, key: &Q) -> Option<&'a V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let meta = meta_of(hasher, key);
        // Most keys sit in their home slot: it is checked before the probe loop, with branches
        // a processor predicts and runs ahead of, and that the M0+ takes as cheaply as any
        // code. (Choosing between the home slot and the next with a conditional move, as this
        // once did, made the second slot's page-index load and slot load wait on the first
        // slot's meta: 1.7x the Fx floor on x86_64 and 148 cycles for a `Reader::get` on the
        // RP2040, against 1.2x and 105 cycles when this replaced it.) An equal key is the key:
        // the table holds each key once. An empty home means the key is absent.
        let home = Shape::<N>::home(meta);
        let slot = self.slot(home);
        if slot.meta == meta {
            // SAFETY: non-zero meta, so the entry is initialized.
            let (k, v) = unsafe { slot.entry.assume_init_ref() };
            if k.borrow() == key {
                return Some(v);
            }
        } else if slot.meta == 0 {
            return None;
        }
        // Probe on from the next slot: starting over from home would read it again (each probe
        // costs the M0+ about 22 cycles).
        let index = self
            .find_from(meta, key, (home + 1) & Shape::<N>::MASK)
            .ok()?;
        self.slot(index).get().map(|(_, v)| v)
    }
}

/// A writer's private copy of its base generation's table: its own index (in the generation slot
/// it claimed), starting equal to the base's, and the spare pages it has claimed so far.
///
/// A position is *private* when this index names a different page from the base's: a page the
/// writer claimed, which no published generation can reach (see `pages`). Every write to a slot
/// first makes its position private ([`own`](Self::own)), which can fail when no spare page is
/// free: then the copy is marked [`out_of_pages`](Self::out_of_pages), changes nothing more, and
/// the write that holds it fails or waits (see `write`).
pub(crate) struct TableMut<'a, K, V, const N: usize> {
    home: *const SlotCell<K, V>,
    /// The pages' occupancies: the base's pages' to read, ours to keep exact as we change them.
    occupancy: Occupancy,
    /// The base generation's index: pinned, so it stays as it is while we copy from it.
    base: *const UnsafeCell<u16>,
    /// Ours: in the generation slot we claimed, unpublished.
    index: *const UnsafeCell<u16>,
    len: usize,
    claims: Claims<'a>,
    /// Whether a slot was written: a copy that changed nothing publishes nothing.
    changed: bool,
    /// Whether a page claim failed: nothing was changed after it, and the copy is discarded.
    out_of_pages: bool,
    _pages: PhantomData<&'a mut Slot<K, V>>,
}

impl<'a, K, V, const N: usize> TableMut<'a, K, V, N> {
    /// A copy of the base table (`base`, with `len` entries) in `index`, which the caller
    /// makes equal to `base` first.
    ///
    /// # Safety
    /// `home` as for [`slot_at`], and `occupancy` the same map's; `base` is the index of a
    /// generation the caller has pinned for all of `'a`, `index` that of the generation slot the
    /// caller has claimed and not published, and `claims` claims spare pages of the same map.
    pub(crate) unsafe fn new(
        (home, occupancy): (*const SlotCell<K, V>, Occupancy),
        base: *const UnsafeCell<u16>,
        index: *const UnsafeCell<u16>,
        len: usize,
        claims: Claims<'a>,
    ) -> Self {
        Self {
            home,
            occupancy,
            base,
            index,
            len,
            claims,
            changed: false,
            out_of_pages: false,
            _pages: PhantomData,
        }
    }

    /// The copy as it stands, read-only.
    pub(crate) fn view(&self) -> View<'_, K, V, N> {
        // SAFETY: every position names a base page (pinned) or one of ours (written only
        // through `&mut self`, which this borrow excludes).
        unsafe { View::new(self.home, self.index, self.len, self.occupancy) }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn changed(&self) -> bool {
        self.changed
    }

    pub(crate) fn out_of_pages(&self) -> bool {
        self.out_of_pages
    }

    pub(crate) fn claims(&self) -> &Claims<'a> {
        &self.claims
    }

    /// The pages claimed, for their publication.
    pub(crate) fn claims_mut(&mut self) -> &mut Claims<'a> {
        &mut self.claims
    }

    /// Index entries of position `position`: ours and the base's.
    fn entries(&self, position: usize) -> (isize, isize) {
        debug_assert!(position < Shape::<N>::PAGES);
        // SAFETY: in bounds; ours is written only by us, the base's by nobody while pinned.
        unsafe {
            (
                entry_at(self.index, position),
                entry_at(self.base, position),
            )
        }
    }

    /// The id of the page our index names at `position`.
    fn page_id(&self, position: usize) -> usize {
        let (mine, _) = self.entries(position);
        (self.occupancy.spare_pages() + position).wrapping_add_signed(mine)
    }

    /// Notes in the occupancy of slot `i`'s page (private: ours) whether the slot now holds an
    /// entry. Every change of a slot between empty and occupied comes here, so that the page's
    /// occupancy is exact whenever it is read (by our own iteration, or once published).
    fn note(&mut self, i: usize, occupied: bool) {
        debug_assert!(self.private(i / PAGE));
        let page = self.page_id(i / PAGE);
        let bit = 1u16 << (i % PAGE);
        // SAFETY: a private page is ours alone, and so are its notes.
        unsafe {
            let bits = self.occupancy.get(page) as u16;
            let bits = if occupied { bits | bit } else { bits & !bit };
            self.occupancy.set(page, bits);
        }
    }

    /// Slot `i`, which must be in a private position, for writing.
    /// Whether position `position` names a page of the copy's own: neither the base's nor the
    /// zero page.
    fn private(&self, position: usize) -> bool {
        let (mine, base) = self.entries(position);
        mine != base && mine != self.claims.zero_entry(position)
    }

    fn slot_mut(&mut self, i: usize) -> &mut Slot<K, V> {
        // Every caller made the position private first (`own`). Checked at run time all the
        // same (about 27 cycles of an M0+ insert): a page claimed against the reuse rule (see
        // `pages`) can be the base's own, and this turns that bug into a panic instead of a
        // write into a published page.
        assert!(self.private(i / PAGE), "write to a shared page");
        let (mine, _) = self.entries(i / PAGE);
        self.changed = true;
        // SAFETY: a private page is ours alone, and `&mut self` makes this the only reference
        // into it.
        unsafe {
            let cell = &*self.home.offset(i as isize + PAGE as isize * mine);
            cell.with_mut(|slot| &mut *slot)
        }
    }

    fn slot(&self, i: usize) -> &Slot<K, V> {
        self.view().slot(i)
    }
}

/// Every write copies pages on first write, so writing needs `K, V: Clone`.
impl<K: Hash + Eq + Clone, V: Clone, const N: usize> TableMut<'_, K, V, N> {
    /// Makes position `position` private, copying into a claimed spare page what the copy has
    /// there: the base's page, or nothing if the position is cleared (it names the zero page).
    /// `false` if no spare page (or the position's record, see `cleared`) could be claimed: the
    /// copy is then out of pages and must not change any more.
    fn own(&mut self, position: usize) -> bool {
        if self.out_of_pages {
            return false;
        }
        if self.private(position) {
            return true;
        }
        let Some(page) = self.claims.claim(position) else {
            self.out_of_pages = true;
            return false;
        };
        let first = position * PAGE;
        let to = page as isize - self.claims.home_page(position) as isize;
        // Each old entry is dropped before its slot is refilled, so a panicking drop or clone
        // leaves a slot empty and the page ours (`claims` gives it back), and the index does not
        // name it yet.
        // SAFETY: the page we claimed is ours alone (no published generation can reach it, see
        // `pages`); the page our index names is the base's (pinned and immutable) or the zero
        // page (never written); both are `PAGE_LEN` consecutive cells.
        unsafe {
            let from = cell_at(self.home, self.index, first);
            let into = self.home.offset(first as isize + PAGE as isize * to);
            for offset in 0..Shape::<N>::PAGE_LEN {
                let from = (*from.add(offset)).with(|slot| &*slot);
                (*into.add(offset)).with_mut(|slot| {
                    let slot = &mut *slot;
                    // What the page held last (a retired copy) is dropped here, once; entries
                    // that need no drop are simply overwritten. Either way the slot is whole
                    // at every step: emptied, or still holding its old entry (which needs no
                    // drop) until a clone has been written over it.
                    if core::mem::needs_drop::<(K, V)>() {
                        slot.vacate();
                    }
                    match from.get() {
                        Some(entry) => {
                            write_clone(slot, entry);
                            slot.meta = from.meta;
                        }
                        None => slot.meta = 0,
                    }
                });
            }
        }
        // What the copy holds is what the page it copied held (the base's, or the zero page's:
        // nothing). SAFETY: that page is published (or the zero page), its notes immutable; ours
        // is ours alone.
        unsafe {
            let bits = self.occupancy.get(self.page_id(position));
            self.occupancy.set(page, bits as u16);
        }
        // The position's record, if it is cleared, changes hands only now, after the copy (whose
        // drops may panic) and right before the index names our page: the record follows the
        // index, which tells `Claims` which records it holds, at every step.
        let (mine, base) = self.entries(position);
        let zero = self.claims.zero_entry(position);
        if mine == zero {
            if base == zero {
                // Cleared in the base: the page its clear took out is in the position's record,
                // which our publication moves to the entry we just claimed.
                if !self.claims.claim_to_refill(position) {
                    self.out_of_pages = true;
                    return false;
                }
            } else {
                // Cleared by this copy: our page now replaces the base's, as in any copy.
                self.claims.unclear(position);
            }
        }
        // SAFETY: our own index entry; nobody else reads it before we publish.
        unsafe { (*self.index.add(position)).with_mut(|entry| *entry = to as i16 as u16) };
        true
    }

    /// Makes private every position of the `count + 1` slots from `first` on, cyclically.
    /// `false` if one could not be (the copy is then out of pages).
    fn own_range(&mut self, first: usize, count: usize) -> bool {
        let positions = ((first % PAGE + count) / PAGE + 1).min(Shape::<N>::PAGES);
        (0..positions).all(|step| self.own((first / PAGE + step) % Shape::<N>::PAGES))
    }

    /// Removes every entry, or none if the copy is out of pages. A table of more than one page
    /// claims no page: each position that shares a page holding entries with the base is
    /// pointed at the zero page (its record claimed first, see `cleared`), and the copy's own
    /// pages are emptied in place. So it runs out only if another writer in flight holds one of
    /// those records, or the base is stale (a clear published since our base holds them). A table
    /// of one page copies it, as any write does. If a drop panics, the unwind discards the copy
    /// (see `write`).
    pub(crate) fn clear(&mut self) -> Result<(), Error> {
        if self.out_of_pages {
            return Err(Error::NoFreePage);
        }
        if self.len == 0 {
            return Ok(());
        }
        if Shape::<N>::PAGES == 1 {
            if !self.own(0) {
                return Err(Error::NoFreePage);
            }
        } else {
            let occupied = |table: &Self, position: usize| {
                let first = position * PAGE;
                (first..first + PAGE)
                    .filter(|&i| table.slot(i).meta != 0)
                    .count()
            };
            let shared = |table: &Self, position: usize| {
                let (mine, base) = table.entries(position);
                mine == base
                    && mine != table.claims.zero_entry(position)
                    && occupied(table, position) != 0
            };
            // All or nothing: every record first.
            for position in 0..Shape::<N>::PAGES {
                if shared(self, position) && !self.claims.claim_to_clear(position) {
                    for earlier in 0..position {
                        if shared(self, earlier) {
                            self.claims.unclear(earlier);
                        }
                    }
                    self.out_of_pages = true;
                    return Err(Error::NoFreePage);
                }
            }
            // Then the zero page at each, which runs no user code: nothing can unwind halfway.
            for position in 0..Shape::<N>::PAGES {
                if shared(self, position) {
                    self.len -= occupied(self, position);
                    self.changed = true;
                    let zero = self.claims.zero_entry(position) as i16 as u16;
                    // SAFETY: our own index entry; nobody else reads it before we publish.
                    unsafe { (*self.index.add(position)).with_mut(|entry| *entry = zero) };
                }
            }
        }
        // Only our own pages still hold entries: empty them in place.
        for i in 0..N {
            if self.slot(i).meta != 0 {
                // Counted out first: a panicking drop leaves `len` exact.
                self.len -= 1;
                self.note(i, false);
                self.slot_mut(i).vacate();
            }
        }
        Ok(())
    }

    /// How many slots after `index` a removal from `index` may shift back: those before the
    /// first that is empty or holds an entry at its home, cyclically (`N - 1` if none is). In a
    /// Robin Hood layout no entry from there on has the hole on its probe path.
    fn run_after(&self, index: usize) -> usize {
        (1..N)
            .find(|&step| {
                let i = (index + step) & Shape::<N>::MASK;
                let meta = self.slot(i).meta;
                meta == 0 || Shape::<N>::home(meta) == i
            })
            .map_or(N - 1, |step| step - 1)
    }
}

/// Where [`TableMut::insert_at`] put an entry: its slot, and for a key that was present, the
/// value replaced and the caller's key, which the table did not keep.
pub(crate) struct Placed<K, V> {
    pub(crate) slot: usize,
    pub(crate) replaced: Option<(V, K)>,
}

/// Writes a clone of `entry` into `slot`'s entry (left as it was if a clone panics), field by
/// field; the caller then marks the slot occupied. Cloning the tuple whole built it in a
/// temporary and copied that with its padding: for a `u8` key, one `memcpy` from an odd address,
/// which the M0+ ran byte by byte.
#[inline]
fn write_clone<K: Clone, V: Clone>(slot: &mut Slot<K, V>, entry: &(K, V)) {
    let (key, value) = (entry.0.clone(), entry.1.clone());
    let at = slot.entry.as_mut_ptr();
    // SAFETY: `at` points to the slot's entry, valid for writes and aligned; writing both fields
    // initializes it.
    unsafe {
        core::ptr::addr_of_mut!((*at).0).write(key);
        core::ptr::addr_of_mut!((*at).1).write(value);
    }
}

impl<K: Hash + Eq + Clone, V: Clone, const N: usize> TableMut<'_, K, V, N> {
    /// Mutable access to the value of `key`; `Err(NoFreePage)` if the copy is out of pages.
    pub(crate) fn get_mut<Q>(
        &mut self,
        hasher: &impl BuildHasher,
        key: &Q,
    ) -> Result<Option<&mut V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.out_of_pages {
            return Err(Error::NoFreePage);
        }
        let Ok(index) = self.view().find(meta_of(hasher, key), key) else {
            return Ok(None);
        };
        if !self.own(index / PAGE) {
            return Err(Error::NoFreePage);
        }
        // SAFETY: `find` returned an occupied slot, whose entry is initialized.
        Ok(Some(unsafe {
            &mut self.slot_mut(index).entry.assume_init_mut().1
        }))
    }

    /// The length of the run of occupied slots that an entry placed in the empty slot `empty`
    /// would be part of, counted up to `MAX_RUN + 1`.
    fn run_through(&self, empty: usize) -> usize {
        let occupied = |i: usize| self.slot(i & Shape::<N>::MASK).meta != 0;
        let before = (1..=MAX_RUN)
            .take_while(|&step| occupied(empty.wrapping_sub(step)))
            .count();
        let after = (1..=MAX_RUN - before)
            .take_while(|&step| occupied(empty + step))
            .count();
        before + 1 + after
    }

    /// Inserts or replaces `key`; returns where the entry for `key` went, and for a key that
    /// was present, the value it replaced and the caller's `key` (the table keeps the key it
    /// had, as `HashMap` does).
    ///
    /// # Errors
    /// [`Error::Full`] if `key` is new and the table holds `N` entries; [`Error::NoFreePage`] if
    /// a page could not be claimed. Either way the copy is unchanged, and `key` and `value` come
    /// back with the error.
    pub(crate) fn insert_at(
        &mut self,
        hasher: &impl BuildHasher,
        key: K,
        value: V,
    ) -> Result<Placed<K, V>, (Error, K, V)> {
        if self.out_of_pages {
            return Err((Error::NoFreePage, key, value));
        }
        let meta = meta_of(hasher, &key);
        match self.view().find(meta, &key) {
            Ok(slot) => {
                if !self.own(slot / PAGE) {
                    return Err((Error::NoFreePage, key, value));
                }
                // SAFETY: `find` returned an occupied slot, whose entry is initialized.
                let entry = unsafe { self.slot_mut(slot).entry.assume_init_mut() };
                let old = core::mem::replace(&mut entry.1, value);
                Ok(Placed {
                    slot,
                    replaced: Some((old, key)),
                })
            }
            Err(Some(empty)) => {
                // The page budget: no run of occupied slots grows past `MAX_RUN`, in a table of
                // more pages than a write may change (in a smaller one any run fits).
                if Shape::<N>::PAGES > MAX_WRITE_PAGES && self.run_through(empty) > MAX_RUN {
                    return Err((Error::Full, key, value));
                }
                // Robin Hood insertion writes only slots from the key's home to the first empty
                // slot after it, which `find` just stopped at.
                let home = Shape::<N>::home(meta);
                if !self.own_range(home, empty.wrapping_sub(home) & Shape::<N>::MASK) {
                    return Err((Error::NoFreePage, key, value));
                }
                let slot = self.place(meta, (key, value));
                self.len += 1;
                Ok(Placed {
                    slot,
                    replaced: None,
                })
            }
            Err(None) => Err((Error::Full, key, value)),
        }
    }

    /// Moves the entry out of occupied slot `index` (private: we just wrote it) and marks the
    /// slot empty, without closing the gap: the copy is inconsistent, and only fit to be
    /// discarded. For a writer that lost its race, so that it can take back what it moved in.
    pub(crate) fn take_back(&mut self, index: usize) -> (K, V) {
        let slot = self.slot_mut(index);
        assert_ne!(slot.meta, 0, "take_back from an empty slot");
        slot.meta = 0;
        // SAFETY: the slot was occupied (checked above) and is now marked empty, so the entry
        // is moved out exactly once.
        let entry = unsafe { slot.entry.assume_init_read() };
        self.note(index, false);
        self.len -= 1;
        entry
    }

    /// Puts a new entry in the table, which has an empty slot and owns every position from the
    /// entry's home to it (Robin Hood insertion): walking from the entry's home, it takes the
    /// place of the first entry that sits nearer to its own home than the walker does to its,
    /// and that entry walks on, until one lands in an empty slot. Returns the slot the new entry
    /// went to. Runs no user code, so it cannot unwind half done.
    fn place(&mut self, mut meta: u32, mut entry: (K, V)) -> usize {
        let mut index = Shape::<N>::home(meta);
        let mut distance = 0;
        // Where the new entry lands: the first slot written (later ones get displaced entries).
        let mut landed = None;
        loop {
            let resident_meta = self.slot(index).meta;
            if resident_meta == 0 {
                let slot = self.slot_mut(index);
                slot.entry.write(entry);
                slot.meta = meta;
                self.note(index, true);
                return landed.unwrap_or(index);
            }
            let resident = index.wrapping_sub(Shape::<N>::home(resident_meta)) & Shape::<N>::MASK;
            if resident < distance {
                landed.get_or_insert(index);
                let slot = self.slot_mut(index);
                core::mem::swap(&mut slot.meta, &mut meta);
                // SAFETY: the slot was occupied (non-zero meta), so its entry is initialized; it
                // stays occupied, now by `entry`.
                core::mem::swap(unsafe { slot.entry.assume_init_mut() }, &mut entry);
                distance = resident;
            }
            index = (index + 1) & Shape::<N>::MASK;
            distance += 1;
        }
    }

    /// Removes `key`, returning its value; `Err(NoFreePage)` if the copy is out of pages.
    pub(crate) fn remove<Q>(
        &mut self,
        hasher: &impl BuildHasher,
        key: &Q,
    ) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.out_of_pages {
            return Err(Error::NoFreePage);
        }
        let Ok(index) = self.view().find(meta_of(hasher, key), key) else {
            return Ok(None);
        };
        let (key, value) = self.take(index).ok_or(Error::NoFreePage)?;
        // Dropped while `value` is a local: if the drop panics, the unwind drops `value` too
        // (a value already moved into the return value would leak).
        drop(key);
        Ok(Some(value))
    }

    /// Keeps only the entries for which `keep` returns `true`, asking once per entry;
    /// `Err(NoFreePage)`, where it was, if a page cannot be claimed.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) -> Result<(), Error> {
        if self.out_of_pages {
            return Err(Error::NoFreePage);
        }
        // Visit the slots in order from one that is empty or holds an entry at its home. A
        // removal shifts back only the entries after it up to such a slot, and the start stays
        // such a slot (an entry shifted into it lands at its home), so no entry already asked
        // about is ever shifted into a slot still to visit. From slot 0 instead, a removal near
        // the end of the table would pull back the entries of a run that wraps past the end,
        // asked about already in slots 0, 1, ... Every table has such a slot: one that is not full
        // has an empty slot, and a full one an entry at home (the insert that took the last empty
        // slot `e` walked up to `e` or started right after it, and did not move the entry that
        // sat at home right after it).
        let start = (0..N)
            .find(|&i| {
                let meta = self.slot(i).meta;
                meta == 0 || Shape::<N>::home(meta) == i
            })
            .unwrap_or(0);
        let mut visited = 0;
        while visited < N {
            let index = (start + visited) & Shape::<N>::MASK;
            match self.slot(index).get() {
                // `take` shifts the next entry into `index` if it is not at home: ask again.
                Some((k, v)) if !keep(k, v) => match self.take(index) {
                    Some(entry) => drop(entry),
                    None => return Err(Error::NoFreePage),
                },
                _ => visited += 1,
            }
        }
        Ok(())
    }

    /// Moves the entry out of occupied slot `index` and closes the gap by shifting back the
    /// entries after it whose probe sequences pass through it (backward-shift deletion). In a
    /// Robin Hood layout those are exactly the entries of the run after it that are not at home,
    /// each shifted by one, so the run stays ordered by home. `None` if a page could not be
    /// claimed (nothing is changed then).
    fn take(&mut self, index: usize) -> Option<(K, V)> {
        // The shift writes only slots from `index` up to the end of its run.
        if !self.own_range(index, self.run_after(index)) {
            return None;
        }
        let slot = self.slot_mut(index);
        slot.meta = 0;
        // SAFETY: the slot was occupied (caller's contract) and is now marked empty, so the
        // entry is moved out exactly once.
        let entry = unsafe { slot.entry.assume_init_read() };
        self.len -= 1;
        let mut hole = index;
        let mut next = (hole + 1) & Shape::<N>::MASK;
        while self.slot(next).meta != 0 {
            let home = Shape::<N>::home(self.slot(next).meta);
            // The entry at `next` may fill the hole if the hole lies on its probe path, i.e.
            // cyclically within [home, next].
            if (next.wrapping_sub(home) & Shape::<N>::MASK)
                >= (next.wrapping_sub(hole) & Shape::<N>::MASK)
            {
                let from = self.slot_mut(next);
                let meta = core::mem::replace(&mut from.meta, 0);
                // SAFETY: `next` was occupied and is now marked empty: its entry moves out once,
                // into `hole`, which is empty (its entry was moved out before).
                let moved = unsafe { from.entry.assume_init_read() };
                let to = self.slot_mut(hole);
                to.entry.write(moved);
                to.meta = meta;
                hole = next;
            }
            next = (next + 1) & Shape::<N>::MASK;
        }
        // Each shift filled the hole before and left one: only the last is empty now.
        self.note(hole, false);
        Some(entry)
    }
}

/// Iterator over the entries of a [`Snapshot`](crate::Snapshot) or a [`Txn`](crate::Txn), in
/// slot order.
///
/// It walks the table a page at a time: it reads the page's occupancy, a mask of its occupied
/// slots that its writer keeps (see `pages::PageInfo`), then yields the entries of the mask's set
/// bits, touching no empty slot. (Testing each slot as it went mispredicted a branch on about
/// every other slot of a half-full table; building the mask from the slots' metas took half of
/// the walk.)
pub struct Iter<'a, K, V> {
    home: *const SlotCell<K, V>,
    index: *const UnsafeCell<u16>,
    /// The pages' occupancies (see `View`).
    occupancy: Occupancy,
    /// A slot of the page being walked: the one of bit 0 of `occupied` (any pointer while
    /// `occupied` is 0).
    page: *const SlotCell<K, V>,
    /// The occupied slots of that page not yet yielded: bit `i` for the slot `i` after `page`.
    occupied: u32,
    /// The next page to read, of `pages`.
    position: usize,
    pages: usize,
    /// Entries not yet yielded, for an exact size hint, and so that `next` reads no page after
    /// the last entry.
    remaining: usize,
    _pages: PhantomData<&'a Slot<K, V>>,
}

// SAFETY: an `Iter` hands out only `&K` and `&V` from pages that its snapshot (or transaction)
// keeps immutable, like `core::slice::Iter<(K, V)>`.
unsafe impl<K: Sync, V: Sync> Send for Iter<'_, K, V> {}
// SAFETY: as above.
unsafe impl<K: Sync, V: Sync> Sync for Iter<'_, K, V> {}

impl<K, V> Clone for Iter<'_, K, V> {
    fn clone(&self) -> Self {
        Self { ..*self }
    }
}

impl<'a, K, V> Iter<'a, K, V> {
    /// The next page, and the mask of its occupied slots; `None` after the last page.
    #[inline(always)]
    fn next_page(&mut self) -> Option<(*const SlotCell<K, V>, u32)> {
        if self.position == self.pages {
            return None;
        }
        // SAFETY: `position < pages`, so its first slot is below `N`: `View::new`'s contract
        // makes its page `PAGE_LEN` consecutive cells of the map's pages, unwritten for `'a`.
        let page = unsafe { cell_at(self.home, self.index, self.position * PAGE) };
        let position = self.position;
        self.position += 1;
        // SAFETY: `position < pages`: an entry of the pinned index, as above.
        let entry = unsafe { entry_at(self.index, position) };
        let id = (self.occupancy.spare_pages() + position).wrapping_add_signed(entry);
        // SAFETY: the page the entry names is the one above, its occupancy exact and unwritten
        // for `'a` (`View::new`'s contract).
        Some((page, unsafe { self.occupancy.get(id) }))
    }

    /// Reads pages up to one with an entry; `false` if no entry is left. Out of line, so that
    /// `next` inlines into its caller's loop as a few instructions.
    #[inline(never)]
    fn next_occupied_page(&mut self) -> bool {
        while self.remaining != 0 {
            let Some((page, occupied)) = self.next_page() else {
                break;
            };
            (self.page, self.occupied) = (page, occupied);
            if occupied != 0 {
                return true;
            }
        }
        false
    }

    /// Takes the next occupied slot: moves `page` on to it (`occupied`, non-zero, has its bit
    /// 0 at `page`), returns it, and leaves both just after it.
    #[inline(always)]
    fn take_next(page: &mut *const SlotCell<K, V>, occupied: &mut u32) -> *const SlotCell<K, V> {
        // ARMv6-M (and v8-M Baseline) count no trailing zeros, nor leading ones to build them
        // from: LLVM emits a multiply and a table lookup for each. Shifting past the empty
        // slots costs less there, above all in the dense pages of a small table.
        #[cfg(all(target_arch = "arm", not(target_feature = "thumb2")))]
        while *occupied & 1 == 0 {
            *occupied >>= 1;
            *page = page.wrapping_add(1);
        }
        #[cfg(not(all(target_arch = "arm", not(target_feature = "thumb2"))))]
        {
            let empty = occupied.trailing_zeros();
            *occupied >>= empty;
            *page = page.wrapping_add(empty as usize);
        }
        let slot = *page;
        *occupied >>= 1;
        *page = page.wrapping_add(1);
        slot
    }

    /// The entry of `slot`.
    ///
    /// # Safety
    /// `slot` came from `take_next`, on a page and mask from `next_page`.
    #[inline(always)]
    unsafe fn entry(slot: *const SlotCell<K, V>) -> (&'a K, &'a V) {
        // SAFETY: an occupancy has bits only below `PAGE_LEN`, for slots of the page, which stays
        // unwritten for `'a` (see `next_page`); the slot's bit was set, so its meta is non-zero
        // and its entry initialized.
        unsafe {
            let slot = (*slot).with(|slot| &*slot);
            let (k, v) = slot.entry.assume_init_ref();
            (k, v)
        }
    }
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.occupied == 0 && !self.next_occupied_page() {
            return None;
        }
        let slot = Self::take_next(&mut self.page, &mut self.occupied);
        self.remaining -= 1;
        // SAFETY: from `take_next`, on a page and mask from `next_page`.
        Some(unsafe { Self::entry(slot) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }

    /// The whole walk in one loop (what `sum`, `for_each`, `count` and the like use), each
    /// page's mask read before the previous page's entries are walked: the walk's last loop test
    /// is mispredicted (how many entries a page has varies), and the next mask then does not
    /// wait behind it. (Summing 1024 entries in 2048 slots: 0.8x the time through `next`.)
    #[inline]
    fn fold<B, F>(mut self, init: B, mut f: F) -> B
    where
        F: FnMut(B, Self::Item) -> B,
    {
        let mut acc = init;
        let (mut page, mut occupied) = (self.page, self.occupied);
        loop {
            let next = self.next_page();
            while occupied != 0 {
                let slot = Self::take_next(&mut page, &mut occupied);
                // SAFETY: from `take_next`, on a page and mask from `next_page`.
                acc = f(acc, unsafe { Self::entry(slot) });
            }
            match next {
                Some(read) => (page, occupied) = read,
                None => return acc,
            }
        }
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

impl<K: core::fmt::Debug, V: core::fmt::Debug> core::fmt::Debug for Iter<'_, K, V> {
    /// The entries not yet yielded, as a map.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.clone()).finish()
    }
}

impl<K, V> core::iter::FusedIterator for Iter<'_, K, V> {}

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    extern crate std;
    use super::*;

    /// Iteration reads each page's occupancy as its writer noted it; reading every slot's meta
    /// instead must find the same entries, after every kind of write (inserts that shift runs,
    /// removals that shift back, clears, batches, and the sole writer's writes), and inside a
    /// transaction too.
    #[test]
    fn noted_occupancy_matches_the_slots() {
        fn same<const N: usize, const P: usize>(map: &crate::SnapMap<u32, u32, N, 4, 2, P>) {
            let snapshot = map.snapshot();
            let view = snapshot.view();
            let mut scanned: std::vec::Vec<_> = (0..N)
                .filter_map(|i| view.slot(i).get().map(|(k, v)| (*k, *v)))
                .collect();
            let mut walked: std::vec::Vec<_> = view.iter().map(|(k, v)| (*k, *v)).collect();
            scanned.sort();
            walked.sort();
            assert_eq!(walked, scanned, "at version {}", snapshot.version());
            assert_eq!(walked.len(), snapshot.len());
        }
        fn run<const N: usize, const P: usize>(seed: u64) {
            let map: crate::SnapMap<u32, u32, N, 4, 2, P> = crate::SnapMap::new();
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = move |below: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % below) as u32
            };
            // Miri runs each write thousands of times slower: fewer rounds still take every
            // kind of write.
            for round in 0..if cfg!(miri) { 30 } else { 400 } {
                let key = next(N as u64 * 3 / 4);
                match next(20) {
                    0 => map.clear().unwrap(),
                    1..=3 => map
                        .update(|tx| {
                            for k in 0..5 {
                                let _ = tx.insert(key.wrapping_add(k), round);
                                let _ = tx.remove(&key.wrapping_add(k * 3));
                                // The copy's own pages are walked by their occupancy too.
                                assert_eq!(tx.iter().count(), tx.len());
                            }
                            Ok(())
                        })
                        .unwrap(),
                    4..=9 => drop(map.remove(&key).unwrap()),
                    10 => {
                        let mut writer = map.writer().unwrap();
                        for k in 0..3 {
                            let _ = writer.insert(key.wrapping_add(k), round);
                        }
                        let _ = writer.remove(&key.wrapping_add(7));
                    }
                    _ => drop(map.insert(key, round)),
                }
                same(&map);
            }
        }
        for seed in 0..if cfg!(miri) { 1 } else { 8 } {
            run::<8, 1>(seed);
            run::<16, 2>(seed);
            run::<64, 8>(seed);
            run::<256, 16>(seed);
        }
    }

    /// Every entry is reachable (no empty slot between its home and where it sits), and runs are
    /// in Robin Hood order (an entry sits at most one slot further from its home than the entry
    /// before it does from its own); `len` counts the entries.
    pub(crate) fn check_layout<K, V, const N: usize>(table: &View<'_, K, V, N>) {
        let distance = |index: usize| {
            let meta = table.slot(index).meta;
            (meta != 0).then(|| index.wrapping_sub(Shape::<N>::home(meta)) & (N - 1))
        };
        let mut occupied = 0;
        for index in 0..N {
            let meta = table.slot(index).meta;
            if meta == 0 {
                continue;
            }
            occupied += 1;
            let here = distance(index).unwrap_or(0);
            let before = distance((index + N - 1) & (N - 1));
            assert!(
                before.is_some_and(|d| here <= d + 1) || here == 0,
                "slot {index} breaks Robin Hood order: {here} from home after {before:?}"
            );
            let mut probe = Shape::<N>::home(meta);
            while probe != index {
                assert_ne!(
                    table.slot(probe).meta,
                    0,
                    "hole on the probe path of slot {index}"
                );
                probe = (probe + 1) & Shape::<N>::MASK;
            }
        }
        assert_eq!(occupied, table.len());
        // What `retain` relies on to start its walk.
        assert!(
            occupied < N || (0..N).any(|i| distance(i) == Some(0)),
            "a full table with no entry at its home"
        );
    }

    use crate::hash::FxBuildHasher as Fx;
    use crate::{Error, SnapMap};
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// Random operations through `update` against a `BTreeMap`, with the layout of the current
    /// generation checked after each: every page a write copies must keep its Robin Hood order
    /// across page boundaries, and every page it did not copy must still be the base's.
    fn random_ops<const N: usize, const P: usize>(seed: u64, keys: u32) {
        let map = SnapMap::<u32, u32, N, 4, 2, P>::new();
        let mut oracle = BTreeMap::new();
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Miri runs each step thousands of times slower: fewer steps still wrap and fill the
        // small tables, and take every write path (the native run is the oracle test).
        let steps = if cfg!(miri) { 80 } else { 5_000u32 };
        for step in 0..steps {
            let key = (next() % u64::from(keys)) as u32;
            let before = map.snapshot();
            match next() % 7 {
                // `before` is current, so it blocks no page: a write refused `NoFreePage` needs
                // more pages than the pool holds (a long run, in a nearly full table with a
                // pool of one or two pages), and changes nothing.
                0..=3 => {
                    // Full: the table is, or (more than 4 pages) the key's run would grow too long.
                    let full = oracle.len() == N || Shape::<N>::PAGES > MAX_WRITE_PAGES;
                    match map.try_insert(key, step) {
                        Ok(old) => assert_eq!(old, oracle.insert(key, step)),
                        Err(Error::Full) => {
                            assert!(full && !oracle.contains_key(&key), "Full with room left")
                        }
                        // The budget: a one-key write fits in the pool (`P >= 4`), and no
                        // snapshot older than `before` holds a page.
                        Err(e) => panic!("step {step}: {e:?}"),
                    }
                }
                4 => assert_eq!(map.try_remove(&key), Ok(oracle.remove(&key))),
                5 => {
                    let changed = map.try_update(|tx| Ok(tx.get_mut(&key)?.map(|v| *v = step)));
                    assert!(changed.is_ok(), "one page: always within the pool");
                    if let Some(value) = oracle.get_mut(&key) {
                        *value = step;
                    }
                }
                _ => {
                    let odd = (next() % 2) as u32;
                    let mut met = BTreeMap::new();
                    let result = map.try_update(|tx| {
                        met.clear();
                        tx.retain(|k, _| {
                            *met.entry(*k).or_insert(0) += 1;
                            k % 2 != odd
                        })?;
                        Ok(())
                    });
                    if result == Err(Error::NoFreePage) {
                        // A retain over more pages than the pool: nothing changed.
                        assert!(N / PAGE > P, "step {step}: retain out of pages");
                    } else {
                        assert_eq!(result, Ok(()));
                        assert!(
                            met.keys().eq(oracle.keys()) && met.values().all(|&n| n == 1),
                            "retain met {met:?}, for entries {:?}",
                            oracle.keys()
                        );
                        oracle.retain(|k, _| k % 2 != odd);
                    }
                }
            }
            let snap = map.snapshot();
            check_layout(&snap.view());
            for k in 0..keys {
                assert_eq!(snap.get(&k), oracle.get(&k), "key {k} at step {step}");
            }
            let seen: BTreeMap<_, _> = snap.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(seen, oracle);
            assert_eq!(snap.iter().len(), oracle.len());
            // The base is untouched: the write that followed it copied, never changed, pages.
            check_layout(&before.view());
            assert_eq!(before.iter().count(), before.len());
        }
    }

    /// `next` and `fold` (which reads a page ahead) walk the same entries, in slot order, from
    /// any point of a walk, with an exact size hint throughout: for tables of part of a page,
    /// one page and many, empty, sparse and full.
    fn next_and_fold_agree<const N: usize>(seed: u64) {
        let map = SnapMap::<u32, u32, N, 4, 2, 8>::new();
        let mut state = seed;
        // Miri: fewer rounds still fill the small tables.
        for round in 0..if cfg!(miri) { 12 } else { 40 } {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = (state % (2 * N as u64)) as u32;
            if state.is_multiple_of(3) {
                let _ = map.remove(&key);
            } else {
                let _ = map.try_insert(key, round);
            }
            let snap = map.snapshot();
            let view = snap.view();
            let slots: Vec<(u32, u32)> = (0..N)
                .filter_map(|i| view.slot(i).get().map(|&(k, v)| (k, v)))
                .collect();
            let mut iter = snap.iter();
            for skip in 0..=slots.len() {
                assert_eq!(iter.len(), slots.len() - skip);
                let rest = iter.clone().fold(Vec::new(), |mut seen, (&k, &v)| {
                    seen.push((k, v));
                    seen
                });
                assert_eq!(rest, slots[skip..], "fold after {skip} of {}", slots.len());
                assert_eq!(iter.next().map(|(&k, &v)| (k, v)), slots.get(skip).copied());
            }
            assert_eq!((iter.next(), iter.len()), (None, 0), "fused");
        }
    }

    #[test]
    fn next_and_fold_walk_the_same_entries() {
        next_and_fold_agree::<4>(11);
        next_and_fold_agree::<16>(12);
        next_and_fold_agree::<64>(13);
        next_and_fold_agree::<128>(14);
    }

    #[test]
    fn matches_a_btreemap_oracle_through_full_wrapping_and_paged_tables() {
        random_ops::<4, 1>(1, 6);
        random_ops::<8, 1>(2, 12);
        random_ops::<16, 1>(3, 40);
        random_ops::<64, 8>(4, 70);
        random_ops::<128, 4>(5, 120);
    }

    /// Keys whose hashes collide in groups of eight: lookups must tell keys apart by equality
    /// wherever the metas match, in the home slot, the next one or further on.
    #[test]
    fn colliding_hashes_are_told_apart_by_key() {
        #[derive(PartialEq, Eq, Clone)]
        struct Collide(u32);
        impl Hash for Collide {
            fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
                (self.0 / 8).hash(state);
            }
        }
        let map = SnapMap::<Collide, u32, 64, 4, 2, 4>::new();
        for k in (0..32).filter(|k| k % 3 != 0) {
            assert!(map.insert(Collide(k), k).is_ok());
        }
        let snap = map.snapshot();
        check_layout(&snap.view());
        for k in 0..40 {
            let expected = (k < 32 && k % 3 != 0).then_some(k);
            assert_eq!(snap.get(&Collide(k)).copied(), expected, "key {k}");
        }
    }

    /// `retain` meets each entry once, even one that a removal at the end of the table shifts
    /// back across the wrap, from slot 0 to slot N - 1 (a stateful predicate used to run twice
    /// on it).
    #[test]
    fn retain_meets_each_entry_once_across_the_wrap() {
        let mut homed_at_3 = (0u32..).filter(|k| Shape::<4>::home(meta_of(&Fx, k)) == 3);
        let (a, b) = (homed_at_3.next().unwrap(), homed_at_3.next().unwrap());
        let map = SnapMap::<u32, u32, 4, 4, 2, 1>::new();
        for key in [a, b] {
            assert!(map.insert(key, key).is_ok());
        }
        let mut met = BTreeMap::new();
        map.update(|tx| {
            met.clear();
            tx.retain(|k, _| {
                *met.entry(*k).or_insert(0) += 1;
                *k != a
            })?;
            Ok(())
        })
        .unwrap();
        assert_eq!(met, BTreeMap::from([(a, 1), (b, 1)]));
        let snap = map.snapshot();
        assert_eq!((snap.get(&a), snap.get(&b)), (None, Some(&b)));
        check_layout(&snap.view());
    }

    /// A change that needs more pages than the pool holds is refused by every form, blocking
    /// too, and changes nothing; one within the pool goes through.
    #[test]
    fn a_change_larger_than_the_pool_is_refused() {
        let map = SnapMap::<u32, u32, 128, 4, 2, 4>::new();
        // One key in each of 5 of the 8 pages (found by their home slots).
        let keys: Vec<u32> = (0..5)
            .map(|page| {
                (0u32..)
                    .find(|k| Shape::<128>::home(meta_of(&Fx, k)) / PAGE == page)
                    .unwrap()
            })
            .collect();
        for &key in &keys[..2] {
            assert_eq!(map.insert(key, 1), Ok(None));
        }
        let all = |tx: &mut crate::Txn<'_, u32, u32, 128>| {
            for &key in &keys {
                tx.insert(key, 2)?;
            }
            Ok(())
        };
        assert_eq!(map.update(all), Err(Error::NoFreePage));
        assert_eq!(map.try_update(all), Err(Error::NoFreePage));
        let snap = map.snapshot();
        assert_eq!(
            (snap.version(), snap.len()),
            (2, 2),
            "changed by a refused write"
        );
        assert_eq!(map.clear(), Ok(()), "a clear claims no page");
        assert!(map.snapshot().is_empty());
    }

    /// Keys of `Shape::<64>`'s pages: `count` keys homed on page `page`.
    fn keys_on(page: usize, count: usize) -> Vec<u32> {
        (0u32..)
            .filter(|k| Shape::<64>::home(meta_of(&Fx, k)) / PAGE == page)
            .take(count)
            .collect()
    }

    /// A clear needs no spare page: with every spare page held by a snapshot, writes that copy
    /// a page are refused, and a clear goes through, in a transaction and on its own, while the
    /// snapshot keeps what it saw. Then a write gives a cleared page an entry again (the page the
    /// clear took out moves from its record to the pool) and every page comes back.
    #[test]
    fn a_clear_needs_no_spare_page() {
        let map = SnapMap::<u32, u32, 64, 4, 2, 4>::new();
        let keys: Vec<u32> = (0..4).map(|page| keys_on(page, 1)[0]).collect();
        for &key in &keys {
            assert_eq!(map.insert(key, key), Ok(None));
        }
        let held = map.snapshot();
        for &key in &keys {
            assert_eq!(map.try_insert(key, 0), Ok(Some(key)));
        }
        assert_eq!(map.try_insert(keys[0], 1), Err(Error::NoFreePage));
        let cleared = map.try_update(|tx| {
            tx.clear()?;
            assert!(tx.is_empty() && tx.iter().next().is_none());
            Ok(())
        });
        assert_eq!(cleared, Ok(()));
        assert_eq!(map.clear(), Ok(()), "an empty map: nothing to publish");
        assert_eq!((held.len(), held.get(&keys[3])), (4, Some(&keys[3])));
        drop(held);
        // Every page comes back: the 4 spare ones and the 4 the clear took out.
        for round in 0..3 {
            for &key in &keys {
                assert_eq!(map.try_insert(key, round), Ok(None), "round {round}");
            }
            check_layout(&map.snapshot().view());
            assert_eq!(map.try_update(|tx| tx.clear()), Ok(()));
        }
        assert!(map.snapshot().is_empty());
    }

    /// Out of pages, a transaction's changes say so: `get_mut`, `remove`, `retain` and `insert`
    /// return `NoFreePage` for a key that `get` and `contains_key` still find (they said `None`
    /// before, which a closure checking with `expect` took for a missing key), and the write
    /// publishes nothing.
    #[test]
    fn out_of_pages_a_transaction_says_so() {
        let map = SnapMap::<u32, u32, 64, 4, 2, 4>::new();
        let keys: Vec<u32> = (0..4).map(|page| keys_on(page, 1)[0]).collect();
        for &key in &keys {
            assert_eq!(map.insert(key, 1), Ok(None));
        }
        let held = map.snapshot();
        for &key in &keys {
            assert_eq!(map.try_insert(key, 2), Ok(Some(1)));
        }
        let key = keys[0];
        let result = map.try_update(|tx| {
            assert_eq!((tx.get(&key), tx.contains_key(&key)), (Some(&2), true));
            assert_eq!(tx.get_mut(&key).map(|v| v.copied()), Err(Error::NoFreePage));
            assert_eq!(tx.remove(&key), Err(Error::NoFreePage));
            assert_eq!(tx.retain(|_, _| false), Err(Error::NoFreePage));
            assert_eq!(tx.insert(key, 3), Err(Error::NoFreePage));
            assert_eq!(tx.get(&key), Some(&2), "the copy changed");
            Ok(())
        });
        assert_eq!(result, Err(Error::NoFreePage));
        drop(held);
        assert_eq!(map.try_update(|tx| tx.remove(&key)), Ok(Some(2)));
    }

    /// A transaction that clears and then writes: the position it writes gets a page of its
    /// own again (not the shared empty one), and its other positions stay cleared.
    #[test]
    fn a_write_after_a_clear_in_one_transaction() {
        let map = SnapMap::<u32, u32, 64, 4, 2, 4>::new();
        let keys = keys_on(1, 3);
        let other = keys_on(2, 1)[0];
        for &key in keys.iter().chain([&other]) {
            assert_eq!(map.insert(key, 1), Ok(None));
        }
        let before = map.snapshot();
        map.update(|tx| {
            tx.clear()?;
            tx.insert(keys[0], 2)?;
            assert_eq!(tx.remove(&keys[1]), Ok(None));
            check_layout(&tx.table.view());
            Ok(())
        })
        .unwrap();
        let after = map.snapshot();
        assert_eq!(after.iter().collect::<Vec<_>>(), [(&keys[0], &2)]);
        assert_eq!((before.len(), before.get(&other)), (4, Some(&1)));
        drop((before, after));
        // The cleared position of `other` takes an entry, and gives it up, again.
        assert_eq!(map.insert(other, 3), Ok(None));
        assert_eq!(map.remove(&other), Ok(Some(3)));
        assert_eq!(map.remove(&keys[0]), Ok(Some(2)));
        assert!(map.snapshot().is_empty());
    }

    /// A run of occupied slots never grows past `MAX_RUN`: the insert that would make it longer
    /// is refused with `Full`, and so no one-key write changes more than `MAX_WRITE_PAGES` pages.
    #[test]
    fn runs_stay_within_the_page_budget() {
        let map = SnapMap::<u32, u32, 128, 4, 2, 4>::new();
        // Keys all homed on slot 8: they can only pile up in one run from there.
        let keys: Vec<u32> = (0u32..)
            .filter(|k| Shape::<128>::home(meta_of(&Fx, k)) == 8)
            .take(MAX_RUN + 1)
            .collect();
        for &key in &keys[..MAX_RUN] {
            assert_eq!(map.try_insert(key, key), Ok(None));
        }
        assert_eq!(map.try_insert(keys[MAX_RUN], 0), Err(Error::Full));
        let snap = map.snapshot();
        assert_eq!((snap.len(), snap.longest_probe()), (MAX_RUN, MAX_RUN));
        drop(snap);
        // A key homed elsewhere whose empty slot would join the run is refused too.
        let next = (0u32..)
            .find(|k| Shape::<128>::home(meta_of(&Fx, k)) == 8 + MAX_RUN)
            .unwrap();
        assert_eq!(map.try_insert(next, 0), Err(Error::Full));
        // One that leaves a gap is not.
        let apart = (0u32..)
            .find(|k| Shape::<128>::home(meta_of(&Fx, k)) == 9 + MAX_RUN)
            .unwrap();
        assert_eq!(map.try_insert(apart, 0), Ok(None));
        // Removing from the front of the full run shifts it back across 4 pages: within the pool.
        assert_eq!(map.try_remove(&keys[0]), Ok(Some(keys[0])));
        check_layout(&map.snapshot().view());
    }
}
