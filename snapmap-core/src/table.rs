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

    /// Removes every entry.
    pub(crate) fn clear(&mut self, wrote: &mut impl FnMut(usize)) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if Self::vacate(slot) {
                self.len -= 1;
                wrote(index);
            }
        }
    }

    /// Empties `slot`, dropping its entry; returns whether there was one. The slot is marked
    /// empty before the drop, so a panicking drop leaves the table consistent.
    fn vacate(slot: &mut Slot<K, V>) -> bool {
        let occupied = core::mem::replace(&mut slot.meta, 0) != 0;
        if occupied {
            // SAFETY: the meta was non-zero, so the entry was initialized; it is now marked
            // empty, so nothing will read or drop it again.
            unsafe { slot.entry.assume_init_drop() };
        }
        occupied
    }
}

impl<K: Clone, V: Clone, const N: usize> Table<K, V, N> {
    /// Makes `self` a copy of `source`, slot for slot, reusing `self`'s memory. Panic-safe: if a
    /// clone panics, `self` holds a consistent subset of `source` and drops correctly.
    pub(crate) fn clone_from(&mut self, source: &Self) {
        self.len = 0;
        for (slot, from) in self.slots.iter_mut().zip(&source.slots) {
            Self::vacate(slot);
            if let Some(entry) = from.get() {
                Self::write_clone(slot, entry);
                slot.meta = from.meta;
                self.len += 1;
            }
        }
    }

    /// Makes slot `index` of `self` a copy of the same slot of `source`. Panic-safe like
    /// `clone_from`.
    pub(crate) fn copy_slot(&mut self, source: &Self, index: usize) {
        let slot = &mut self.slots[index];
        if Self::vacate(slot) {
            self.len -= 1;
        }
        let from = &source.slots[index];
        if let Some(entry) = from.get() {
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
                Ok((index, Some(core::mem::replace(&mut entry.1, value))))
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
        Some(self.take(index, wrote).1)
    }

    /// Keeps only the entries for which `keep` returns `true`.
    pub(crate) fn retain(
        &mut self,
        mut keep: impl FnMut(&K, &V) -> bool,
        wrote: &mut impl FnMut(usize),
    ) {
        let mut index = 0;
        while index < N {
            match self.slots[index].get() {
                // `take` may shift a later entry into `index`: look at it again.
                Some((k, v)) if !keep(k, v) => drop(self.take(index, wrote)),
                _ => index += 1,
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
        for step in 0..20_000u32 {
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
                    table.retain(|k, _| k % 2 != odd as u32, &mut |slot| written.push(slot));
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
