//! [`Table`]: the fixed-capacity hash table one generation holds.
//!
//! Open addressing with linear probing, Robin Hood insertion and backward-shift deletion (no
//! tombstones), in one array of `N` slots, `N` a power of two. Robin Hood insertion keeps each
//! run of entries ordered by home slot, which bounds how far any entry sits from its home (at
//! 50% load, 3 slots instead of 6 for the 64 keys of the emulated benchmark): the worst-case read
//! stays close to the median one. Each slot keeps its entry beside the 32-bit `meta` of the
//! entry's key hash (0 = empty), so a probe reads one place, compares the key only when the metas
//! match, and deletion finds each entry's home slot without re-hashing. An empty table is all
//! zero bytes. Copying one table over another ([`Table::clone_from`]) works in place, slot by
//! slot, and leaves the copy with the source's exact layout; so does copying just the slots that
//! differ ([`Table::copy_slot`]). To know which those are, every method that changes the table
//! reports each slot it writes to a `wrote` callback (the writer's change log).

use crate::hash::meta_of;
use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};
use core::mem::MaybeUninit;

struct Slot<K, V> {
    /// 0: empty, `entry` uninitialized. Otherwise the key's meta, and `entry` is initialized.
    meta: u32,
    entry: MaybeUninit<(K, V)>,
}

impl<K, V> Slot<K, V> {
    const EMPTY: Self = Self {
        meta: 0,
        entry: MaybeUninit::uninit(),
    };

    #[inline]
    fn get(&self) -> Option<&(K, V)> {
        // SAFETY: a non-zero meta means the entry is initialized (the invariant of `Slot`).
        (self.meta != 0).then(|| unsafe { self.entry.assume_init_ref() })
    }
}

/// The table is full: the key is new and there are already `N` entries.
pub(crate) struct Full;

pub(crate) struct Table<K, V, const N: usize> {
    slots: [Slot<K, V>; N],
    len: usize,
}

impl<K, V, const N: usize> Table<K, V, N> {
    const MASK: usize = {
        assert!(
            N >= 2 && N.is_power_of_two(),
            "SnapMap capacity N must be a power of two, at least 2"
        );
        assert!(N <= 1 << 24, "SnapMap capacity N must be at most 2^24");
        N - 1
    };
    /// Right shift that turns a meta into its home slot: its top log2(N) bits. (Computed without
    /// overflow for any `N`, so that a bad `N` reports only `MASK`'s clear error.)
    const HOME_SHIFT: u32 = 32 - (N.trailing_zeros() & 31);

    pub(crate) const fn new() -> Self {
        let _ = Self::MASK;
        Self {
            slots: [const { Slot::EMPTY }; N],
            len: 0,
        }
    }

    #[inline]
    fn home(meta: u32) -> usize {
        (meta >> Self::HOME_SHIFT) as usize
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The most slots a lookup of a present key reads: one more than the farthest any entry
    /// sits from its home slot (0 for an empty table). A lookup of an absent key reads at most
    /// one more run than that.
    pub(crate) fn longest_probe(&self) -> usize {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.meta != 0)
            .map(|(index, slot)| (index.wrapping_sub(Self::home(slot.meta)) & Self::MASK) + 1)
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            slots: self.slots.iter(),
            remaining: self.len,
        }
    }

    /// Removes every entry. If a drop panics, the unwind still removes (and reports) the rest,
    /// as `Vec`'s drop does: a table dropped by an unwind must not leak what it held.
    pub(crate) fn clear(&mut self, wrote: &mut impl FnMut(usize)) {
        /// The clear in progress; dropping it (at the end, or when a drop unwinds) finishes it.
        struct Clearing<'t, K, V, W: FnMut(usize), const N: usize> {
            table: &'t mut Table<K, V, N>,
            wrote: &'t mut W,
            next: usize,
        }
        impl<K, V, W: FnMut(usize), const N: usize> Clearing<'_, K, V, W, N> {
            fn run(&mut self) {
                while self.next < N {
                    let index = self.next;
                    self.next += 1; // first: a slot whose drop panicked is not visited again
                    self.table.vacate(index, self.wrote);
                }
            }
        }
        impl<K, V, W: FnMut(usize), const N: usize> Drop for Clearing<'_, K, V, W, N> {
            fn drop(&mut self) {
                self.run(); // nothing left after a normal finish; the rest after a panic
            }
        }
        Clearing {
            table: self,
            wrote,
            next: 0,
        }
        .run();
    }

    /// Empties slot `index`, dropping its entry; returns whether there was one. The slot is
    /// marked empty, counted out of `len` and reported to `wrote` *before* the drop, so a
    /// panicking drop leaves the table consistent and the change on record: a writer's
    /// abandoned copy is then exactly what its change log says.
    fn vacate(&mut self, index: usize, wrote: &mut impl FnMut(usize)) -> bool {
        let slot = &mut self.slots[index];
        if core::mem::replace(&mut slot.meta, 0) == 0 {
            return false;
        }
        self.len -= 1;
        wrote(index);
        // SAFETY: the meta was non-zero, so the entry was initialized; it is now marked empty,
        // so nothing will read or drop it again.
        unsafe { self.slots[index].entry.assume_init_drop() };
        true
    }
}

impl<K: Clone, V: Clone, const N: usize> Table<K, V, N> {
    /// Makes `self` a copy of `source`, slot for slot, reusing `self`'s memory. Panic-safe: if a
    /// drop or a clone panics, `self` holds some slots of `source` and some of its own, and
    /// `len` counts exactly the entries it holds.
    pub(crate) fn clone_from(&mut self, source: &Self) {
        /// Recounts the entries if a drop or a clone unwinds out of the copy (the cold path: the
        /// loop keeps no count, and a finished copy has `source`'s).
        struct Recount<'t, K, V, const N: usize>(&'t mut Table<K, V, N>);
        impl<K, V, const N: usize> Drop for Recount<'_, K, V, N> {
            fn drop(&mut self) {
                let table = &mut *self.0;
                table.len = table.slots.iter().filter(|slot| slot.meta != 0).count();
            }
        }
        let guard = Recount(self);
        for (slot, from) in guard.0.slots.iter_mut().zip(&source.slots) {
            if core::mem::replace(&mut slot.meta, 0) != 0 {
                // SAFETY: the meta was non-zero, so the entry was initialized; it is now marked
                // empty, so nothing will read or drop it again.
                unsafe { slot.entry.assume_init_drop() };
            }
            if let Some(entry) = from.get() {
                Self::write_clone(slot, entry);
                slot.meta = from.meta;
            }
        }
        guard.0.len = source.len;
        core::mem::forget(guard);
    }

    /// Makes slot `index` of `self` a copy of the same slot of `source`. Panic-safe: the old
    /// entry is counted out before it is dropped, the new one in once its clone returned, so a
    /// panic in either leaves the slot empty and `len` exact.
    pub(crate) fn copy_slot(&mut self, source: &Self, index: usize) {
        self.vacate(index, &mut |_| {});
        let from = &source.slots[index];
        if let Some(entry) = from.get() {
            let slot = &mut self.slots[index];
            Self::write_clone(slot, entry);
            slot.meta = from.meta;
            self.len += 1;
        }
    }

    /// Writes a clone of `entry` into `slot`'s entry (left as it was if a clone panics), field by
    /// field. Cloning the tuple whole built it in a temporary and copied that with its padding:
    /// for a `u8` key, one `memcpy` from an odd address, which the M0+ ran byte by byte.
    #[inline]
    fn write_clone(slot: &mut Slot<K, V>, entry: &(K, V)) {
        let (key, value) = (entry.0.clone(), entry.1.clone());
        let at = slot.entry.as_mut_ptr();
        // SAFETY: `at` points to the slot's entry, valid for writes and aligned; writing both
        // fields initializes it (the caller then marks the slot occupied).
        unsafe {
            core::ptr::addr_of_mut!((*at).0).write(key);
            core::ptr::addr_of_mut!((*at).1).write(value);
        }
    }
}

impl<K: Hash + Eq, V, const N: usize> Table<K, V, N> {
    /// The slot holding `key`, or `Err` with the empty slot where it would go (`None` if the
    /// table is full and `key` absent).
    #[inline]
    fn find<Q>(&self, meta: u32, key: &Q) -> Result<usize, Option<usize>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find_from(meta, key, Self::home(meta))
    }

    /// [`find`](Self::find), probing from `index`, a slot on the key's probe path at or after
    /// its home such that no slot before it on that path holds the key or is empty.
    #[inline]
    fn find_from<Q>(&self, meta: u32, key: &Q, mut index: usize) -> Result<usize, Option<usize>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // At most N probes: a full table has no empty slot to stop at.
        for _ in 0..N {
            let slot = &self.slots[index];
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
            index = (index + 1) & Self::MASK;
        }
        Err(None)
    }

    #[inline]
    pub(crate) fn get<Q>(&self, hasher: &impl BuildHasher, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let meta = meta_of(hasher, key);
        // Most keys sit in their home slot or the next one. Choosing between the two without a
        // branch (a conditional move on x86_64), and then checking the one chosen, leaves the
        // processor one well-predicted branch where the probe loop has an exit that depends on
        // how far the key was displaced. An equal key found there is the key: the table holds
        // each key once. Anything else takes the full probe.
        let home = Self::home(meta);
        let next = (home + 1) & Self::MASK;
        let guess = if self.slots[home].meta == meta {
            home
        } else {
            next
        };
        let slot = &self.slots[guess];
        if slot.meta == meta {
            // SAFETY: non-zero meta, so the entry is initialized.
            let (k, v) = unsafe { slot.entry.assume_init_ref() };
            if k.borrow() == key {
                return Some(v);
            }
        }
        // Neither holds the key. An empty home or guess means it is absent (no entry sits past
        // a hole on its probe path); otherwise probe on from the slot after the guess, skipping
        // the one or two slots just checked (each probe costs the M0+ about 22 cycles: starting
        // over from home made a key displaced by 2 or more cost ~50 cycles a step).
        if self.slots[home].meta == 0 || slot.meta == 0 {
            return None;
        }
        let index = self.find_from(meta, key, (guess + 1) & Self::MASK).ok()?;
        self.slots[index].get().map(|(_, v)| v)
    }

    pub(crate) fn get_mut<Q>(
        &mut self,
        hasher: &impl BuildHasher,
        key: &Q,
        wrote: &mut impl FnMut(usize),
    ) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let index = self.find(meta_of(hasher, key), key).ok()?;
        wrote(index);
        // SAFETY: `find` returned an occupied slot, whose entry is initialized.
        Some(unsafe { &mut self.slots[index].entry.assume_init_mut().1 })
    }

    /// Inserts or replaces `key`, returning the replaced value.
    pub(crate) fn insert(
        &mut self,
        hasher: &impl BuildHasher,
        key: K,
        value: V,
        wrote: &mut impl FnMut(usize),
    ) -> Result<Option<V>, Full> {
        self.insert_at(hasher, key, value, wrote)
            .map(|(_, old)| old)
    }

    /// [`insert`](Self::insert), also returning the slot the entry for `key` is in.
    pub(crate) fn insert_at(
        &mut self,
        hasher: &impl BuildHasher,
        key: K,
        value: V,
        wrote: &mut impl FnMut(usize),
    ) -> Result<(usize, Option<V>), Full> {
        let meta = meta_of(hasher, &key);
        match self.find(meta, &key) {
            Ok(index) => {
                wrote(index);
                // SAFETY: `find` returned an occupied slot, whose entry is initialized.
                let entry = unsafe { self.slots[index].entry.assume_init_mut() };
                let old = core::mem::replace(&mut entry.1, value);
                drop(key); // while `old` is a local (see `remove`)
                Ok((index, Some(old)))
            }
            Err(Some(_)) => {
                let index = self.place(meta, (key, value), wrote);
                self.len += 1;
                Ok((index, None))
            }
            Err(None) => Err(Full),
        }
    }

    /// Moves the entry out of occupied slot `index` and marks the slot empty, without closing
    /// the gap: the table is inconsistent until every slot its caller's change log lists is
    /// copied over again. For a writer's discarded copy only, about to be caught up (which
    /// copies those slots), so that the write can take back what it moved in.
    pub(crate) fn take_back(&mut self, index: usize) -> (K, V) {
        let slot = &mut self.slots[index];
        assert_ne!(slot.meta, 0, "take_back from an empty slot");
        slot.meta = 0;
        self.len -= 1;
        // SAFETY: the slot was occupied (checked above) and is now marked empty, so the entry
        // is moved out exactly once.
        unsafe { slot.entry.assume_init_read() }
    }

    /// Puts a new entry in the table, which has an empty slot (Robin Hood insertion): walking
    /// from the entry's home, it takes the place of the first entry that sits nearer to its own
    /// home than the walker does to its, and that entry walks on, until one lands in an empty
    /// slot. Returns the slot the new entry went to. Runs no user code, so it cannot unwind half
    /// done.
    fn place(&mut self, mut meta: u32, mut entry: (K, V), wrote: &mut impl FnMut(usize)) -> usize {
        let mut index = Self::home(meta);
        let mut distance = 0;
        // Where the new entry lands: the first slot written (later ones get displaced entries).
        let mut landed = None;
        loop {
            let slot = &mut self.slots[index];
            if slot.meta == 0 {
                wrote(index);
                slot.entry.write(entry);
                slot.meta = meta;
                return landed.unwrap_or(index);
            }
            let resident = index.wrapping_sub(Self::home(slot.meta)) & Self::MASK;
            if resident < distance {
                wrote(index);
                landed.get_or_insert(index);
                core::mem::swap(&mut slot.meta, &mut meta);
                // SAFETY: the slot was occupied (non-zero meta), so its entry is initialized; it
                // stays occupied, now by `entry`.
                core::mem::swap(unsafe { slot.entry.assume_init_mut() }, &mut entry);
                distance = resident;
            }
            index = (index + 1) & Self::MASK;
            distance += 1;
        }
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove<Q>(
        &mut self,
        hasher: &impl BuildHasher,
        key: &Q,
        wrote: &mut impl FnMut(usize),
    ) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let index = self.find(meta_of(hasher, key), key).ok()?;
        let (key, value) = self.take(index, wrote);
        // Dropped while `value` is a local: if the drop panics, the unwind drops `value` too
        // (a value already moved into the return value would leak).
        drop(key);
        Some(value)
    }

    /// Keeps only the entries for which `keep` returns `true`, asking once per entry.
    pub(crate) fn retain(
        &mut self,
        mut keep: impl FnMut(&K, &V) -> bool,
        wrote: &mut impl FnMut(usize),
    ) {
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
            .find(|&i| self.slots[i].meta == 0 || Self::home(self.slots[i].meta) == i)
            .unwrap_or(0);
        let mut visited = 0;
        while visited < N {
            let index = (start + visited) & Self::MASK;
            match self.slots[index].get() {
                // `take` shifts the next entry into `index` if it is not at home: ask again.
                Some((k, v)) if !keep(k, v) => drop(self.take(index, wrote)),
                _ => visited += 1,
            }
        }
    }

    /// Moves the entry out of occupied slot `index` and closes the gap by shifting back the
    /// entries after it whose probe sequences pass through it (backward-shift deletion). In a
    /// Robin Hood layout those are exactly the entries of the run after it that are not at home,
    /// each shifted by one, so the run stays ordered by home.
    fn take(&mut self, index: usize, wrote: &mut impl FnMut(usize)) -> (K, V) {
        wrote(index);
        let slot = &mut self.slots[index];
        slot.meta = 0;
        // SAFETY: the slot was occupied (caller's contract) and is now marked empty, so the
        // entry is moved out exactly once.
        let entry = unsafe { slot.entry.assume_init_read() };
        self.len -= 1;
        let mut hole = index;
        let mut next = (hole + 1) & Self::MASK;
        while self.slots[next].meta != 0 {
            let home = Self::home(self.slots[next].meta);
            // The entry at `next` may fill the hole if the hole lies on its probe path, i.e.
            // cyclically within [home, next].
            if (next.wrapping_sub(home) & Self::MASK) >= (next.wrapping_sub(hole) & Self::MASK) {
                wrote(next);
                let meta = core::mem::replace(&mut self.slots[next].meta, 0);
                // SAFETY: `next` was occupied and is now marked empty: its entry moves out once,
                // into `hole`, which is empty (its entry was moved out before).
                let moved = unsafe { self.slots[next].entry.assume_init_read() };
                self.slots[hole].entry.write(moved);
                self.slots[hole].meta = meta;
                hole = next;
            }
            next = (next + 1) & Self::MASK;
        }
        entry
    }
}

/// Iterator over the entries of a [`Snapshot`](crate::Snapshot) or a [`Txn`](crate::Txn), in
/// slot order.
pub struct Iter<'a, K, V> {
    slots: core::slice::Iter<'a, Slot<K, V>>,
    /// Entries not yet yielded, for an exact size hint.
    remaining: usize,
}

impl<K, V> Clone for Iter<'_, K, V> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            remaining: self.remaining,
        }
    }
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (k, v) = self.slots.find_map(Slot::get)?;
        self.remaining -= 1;
        Some((k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
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

impl<K, V, const N: usize> Drop for Table<K, V, N> {
    fn drop(&mut self) {
        self.clear(&mut |_| {});
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;
    use super::*;
    use crate::hash::FxBuildHasher as Fx;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// Every entry is reachable (no empty slot between its home and where it sits), and runs are
    /// in Robin Hood order (an entry sits at most one slot further from its home than the entry
    /// before it does from its own).
    fn check_layout<const N: usize>(table: &Table<u32, u32, N>) {
        let distance = |index: usize| {
            let meta = table.slots[index].meta;
            (meta != 0).then(|| index.wrapping_sub(Table::<u32, u32, N>::home(meta)) & (N - 1))
        };
        let mut occupied = 0;
        for (index, slot) in table.slots.iter().enumerate() {
            if slot.meta == 0 {
                continue;
            }
            occupied += 1;
            let here = distance(index).unwrap_or(0);
            let before = distance((index + N - 1) & (N - 1));
            assert!(
                before.is_some_and(|d| here <= d + 1) || here == 0,
                "slot {index} breaks Robin Hood order: {here} from home after {before:?}"
            );
            let mut probe = Table::<u32, u32, N>::home(slot.meta);
            while probe != index {
                assert_ne!(
                    table.slots[probe].meta, 0,
                    "hole on the probe path of slot {index}"
                );
                probe = (probe + 1) & Table::<u32, u32, N>::MASK;
            }
        }
        assert_eq!(occupied, table.len());
        // What `retain` relies on to start its walk.
        assert!(
            occupied < N || (0..N).any(|i| distance(i) == Some(0)),
            "a full table with no entry at its home"
        );
    }

    /// `copy` has `table`'s exact layout: the same entry in the same slot, slot for slot.
    fn check_same_layout<const N: usize>(copy: &Table<u32, u32, N>, table: &Table<u32, u32, N>) {
        for (index, (a, b)) in copy.slots.iter().zip(&table.slots).enumerate() {
            assert_eq!(a.meta, b.meta, "meta of slot {index}");
            assert_eq!(a.get(), b.get(), "entry of slot {index}");
        }
        assert_eq!(copy.len(), table.len());
    }

    /// Random operations against a `BTreeMap`, with the layout checked after each. A lagging copy
    /// is brought up to date now and then by copying only the slots the operations reported
    /// writing, which must reproduce the table exactly.
    fn random_ops<const N: usize>(seed: u64, keys: u32) {
        let mut table = Table::<u32, u32, N>::new();
        let mut lagging = Table::<u32, u32, N>::new();
        let mut written = Vec::new();
        let mut oracle = BTreeMap::new();
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Miri runs each step thousands of times slower: fewer steps still wrap and fill the
        // tables.
        let steps = if cfg!(miri) { 300 } else { 20_000u32 };
        for step in 0..steps {
            let key = (next() % u64::from(keys)) as u32;
            match next() % 8 {
                0..=3 => {
                    let full = oracle.len() == N && !oracle.contains_key(&key);
                    match table.insert(&Fx, key, step, &mut |slot| written.push(slot)) {
                        Ok(old) => assert_eq!(old, oracle.insert(key, step)),
                        Err(Full) => assert!(full, "Full with room left"),
                    }
                }
                4 => assert_eq!(
                    table.remove(&Fx, &key, &mut |slot| written.push(slot)),
                    oracle.remove(&key)
                ),
                5 => {
                    if let Some(value) = table.get_mut(&Fx, &key, &mut |slot| written.push(slot)) {
                        *value = step;
                        oracle.insert(key, step);
                    }
                }
                6 => {
                    let odd = next() % 2;
                    let mut met = BTreeMap::new();
                    let keep = |k: &u32, _: &u32| {
                        *met.entry(*k).or_insert(0) += 1;
                        k % 2 != odd as u32
                    };
                    table.retain(keep, &mut |slot| written.push(slot));
                    assert!(
                        met.keys().eq(oracle.keys()) && met.values().all(|&n| n == 1),
                        "retain met {met:?}, for entries {:?}",
                        oracle.keys()
                    );
                    oracle.retain(|k, _| k % 2 != odd as u32);
                }
                _ => {
                    for slot in written.drain(..) {
                        lagging.copy_slot(&table, slot);
                    }
                    check_same_layout(&lagging, &table);
                    let mut copy = Table::<u32, u32, N>::new();
                    copy.insert(&Fx, 7, 7, &mut |_| {}).ok();
                    copy.clone_from(&table);
                    check_same_layout(&copy, &table);
                    table = copy;
                }
            }
            check_layout(&table);
            for k in 0..keys {
                assert_eq!(table.get(&Fx, &k), oracle.get(&k), "key {k} at step {step}");
            }
            let mut seen: Vec<_> = table.iter().map(|(k, v)| (*k, *v)).collect();
            seen.sort_unstable();
            assert!(seen
                .iter()
                .copied()
                .eq(oracle.iter().map(|(k, v)| (*k, *v))));
            assert_eq!(table.iter().len(), oracle.len());
        }
    }

    #[test]
    fn matches_a_btreemap_oracle_through_full_and_wrapping_tables() {
        random_ops::<2>(1, 4);
        random_ops::<8>(2, 12);
        random_ops::<16>(3, 40);
        random_ops::<64>(4, 70);
    }

    /// Keys whose hashes collide in groups of eight: lookups must tell keys apart by equality
    /// wherever the metas match, in the home slot, the next one or further on.
    #[test]
    fn colliding_hashes_are_told_apart_by_key() {
        #[derive(PartialEq, Eq)]
        struct Collide(u32);
        impl Hash for Collide {
            fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
                (self.0 / 8).hash(state);
            }
        }
        let mut table = Table::<Collide, u32, 64>::new();
        for k in (0..32).filter(|k| k % 3 != 0) {
            assert!(table.insert(&Fx, Collide(k), k, &mut |_| {}).is_ok());
        }
        for k in 0..40 {
            let expected = (k < 32 && k % 3 != 0).then_some(k);
            assert_eq!(table.get(&Fx, &Collide(k)).copied(), expected, "key {k}");
        }
    }

    std::thread_local! {
        /// `Noisy` values made (new or cloned) and dropped on this thread.
        static MADE: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
        static DROPPED: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
        /// The id whose next drop (or clone) panics.
        static DROP_BOMB: core::cell::Cell<Option<u32>> = const { core::cell::Cell::new(None) };
        static CLONE_BOMB: core::cell::Cell<Option<u32>> = const { core::cell::Cell::new(None) };
    }

    /// A value that counts itself in and out, and panics once in `drop` or `clone` on demand.
    struct Noisy(u32);

    impl Noisy {
        fn new(id: u32) -> Self {
            MADE.set(MADE.get() + 1);
            Self(id)
        }
    }

    impl Clone for Noisy {
        fn clone(&self) -> Self {
            if CLONE_BOMB.get() == Some(self.0) {
                CLONE_BOMB.set(None);
                panic!("injected clone panic");
            }
            Self::new(self.0)
        }
    }

    impl Drop for Noisy {
        fn drop(&mut self) {
            DROPPED.set(DROPPED.get() + 1);
            if DROP_BOMB.get() == Some(self.0) && !std::thread::panicking() {
                DROP_BOMB.set(None);
                panic!("injected drop panic");
            }
        }
    }

    impl PartialEq for Noisy {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }
    impl Eq for Noisy {}
    impl Hash for Noisy {
        fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }
    impl Borrow<u32> for Noisy {
        fn borrow(&self) -> &u32 {
            &self.0
        }
    }

    fn live() -> u32 {
        MADE.get() - DROPPED.get()
    }

    fn occupied<K, V, const N: usize>(table: &Table<K, V, N>) -> Vec<usize> {
        (0..N).filter(|&i| table.slots[i].meta != 0).collect()
    }

    /// A drop that panics in `clear` (a `Txn`'s, or the table's own drop) must neither stop the
    /// clear nor leave a slot it emptied off the record: every entry is dropped once, `len` is 0
    /// and `wrote` heard of every slot that held one.
    #[test]
    fn a_panicking_drop_in_clear_drops_the_rest_and_reports_every_slot() {
        for bomb in 0..6 {
            let start = live();
            let mut table = Table::<u32, Noisy, 8>::new();
            for k in 0..6 {
                assert!(table.insert(&Fx, k, Noisy::new(k), &mut |_| {}).is_ok());
            }
            let full = occupied(&table);
            let mut written = Vec::new();
            DROP_BOMB.set(Some(bomb));
            let result = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
                table.clear(&mut |slot| written.push(slot));
            }));
            assert!(result.is_err() && DROP_BOMB.get().is_none(), "bomb {bomb}");
            written.sort_unstable();
            assert_eq!(written, full, "bomb {bomb}: slots reported");
            assert_eq!((table.len(), table.iter().count()), (0, 0), "bomb {bomb}");
            assert_eq!(live(), start, "bomb {bomb}: entries left undropped");
        }
    }

    /// A key whose drop panics when `remove` or `insert` discards it must not take the value it
    /// returns down with it: the value is dropped by the unwind.
    #[test]
    fn a_panicking_key_drop_in_remove_drops_the_value() {
        let start = live();
        let mut table = Table::<Noisy, Noisy, 8>::new();
        for k in 0..4 {
            assert!(table
                .insert(&Fx, Noisy::new(k), Noisy::new(k + 100), &mut |_| {})
                .is_ok());
        }
        DROP_BOMB.set(Some(2));
        let result = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
            table.remove(&Fx, &2, &mut |_| {});
        }));
        assert!(result.is_err() && DROP_BOMB.get().is_none());
        assert_eq!((table.len(), live() - start), (3, 6));
        // Likewise the new key that an insert of a present key discards.
        DROP_BOMB.set(Some(3));
        let result = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
            let _ = table.insert(&Fx, Noisy::new(3), Noisy::new(300), &mut |_| {});
        }));
        assert!(result.is_err() && DROP_BOMB.get().is_none());
        assert_eq!((table.len(), live() - start), (3, 6));
        drop(table);
        assert_eq!(live(), start);
    }

    /// A drop or a clone that panics in `clone_from` or `copy_slot` leaves the copy with `len`
    /// counting exactly the entries it holds, so that it drops each once (and `len` never
    /// underflows).
    #[test]
    fn a_panicking_clone_or_drop_in_a_copy_keeps_len_exact() {
        // Clones are of the source's ids 0..6; drops of the copy's own, 6..12.
        for (bomb, in_drop) in (0..6).flat_map(|b| [(b, false), (b + 6, true)]) {
            let start = live();
            let mut source = Table::<u32, Noisy, 8>::new();
            let mut copy = Table::<u32, Noisy, 8>::new();
            for k in 0..6 {
                assert!(source.insert(&Fx, k, Noisy::new(k), &mut |_| {}).is_ok());
                assert!(copy
                    .insert(&Fx, k + 6, Noisy::new(k + 6), &mut |_| {})
                    .is_ok());
            }
            if in_drop {
                DROP_BOMB.set(Some(bomb));
            } else {
                CLONE_BOMB.set(Some(bomb));
            }
            let result = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
                if bomb % 2 == 0 {
                    copy.clone_from(&source);
                } else {
                    for slot in 0..8 {
                        copy.copy_slot(&source, slot);
                    }
                }
            }));
            assert!(result.is_err(), "bomb {bomb}, in drop {in_drop}");
            assert_eq!(
                copy.len(),
                occupied(&copy).len(),
                "bomb {bomb}, in drop {in_drop}"
            );
            assert_eq!(copy.iter().count(), copy.len());
            drop((source, copy));
            assert_eq!(live(), start, "bomb {bomb}, in drop {in_drop}");
        }
    }

    /// `retain` meets each entry once, even one that a removal at the end of the table shifts
    /// back across the wrap, from slot 0 to slot N - 1 (issue 9, item 4: a stateful predicate
    /// used to run twice on it).
    #[test]
    fn retain_meets_each_entry_once_across_the_wrap() {
        type T = Table<u32, u32, 4>;
        let mut homed_at_3 = (0u32..).filter(|k| T::home(meta_of(&Fx, k)) == 3);
        let (a, b) = (homed_at_3.next().unwrap(), homed_at_3.next().unwrap());
        let mut table = T::new();
        for key in [a, b] {
            assert!(table.insert(&Fx, key, key, &mut |_| {}).is_ok());
        }
        // a at home in slot 3, b wrapped around to slot 0.
        assert_eq!(table.slots[3].get().map(|e| e.0), Some(a));
        assert_eq!(table.slots[0].get().map(|e| e.0), Some(b));
        let mut met = BTreeMap::new();
        table.retain(
            |k, _| {
                *met.entry(*k).or_insert(0) += 1;
                *k != a
            },
            &mut |_| {},
        );
        assert_eq!(met, BTreeMap::from([(a, 1), (b, 1)]));
        assert_eq!((table.get(&Fx, &a), table.get(&Fx, &b)), (None, Some(&b)));
        check_layout(&table);
    }

    #[test]
    fn clear_then_reuse() {
        let mut table = Table::<u32, u32, 4>::new();
        let mut written = Vec::new();
        for k in 0..4 {
            assert!(table.insert(&Fx, k, k, &mut |_| {}).is_ok());
        }
        assert!(table.insert(&Fx, 9, 9, &mut |_| {}).is_err());
        table.clear(&mut |slot| written.push(slot));
        written.sort_unstable();
        assert_eq!(written, [0, 1, 2, 3]);
        assert_eq!(table.len(), 0);
        assert_eq!(table.iter().count(), 0);
        assert!(table.insert(&Fx, 9, 9, &mut |_| {}).is_ok());
        assert_eq!(table.get(&Fx, &9), Some(&9));
    }
}
