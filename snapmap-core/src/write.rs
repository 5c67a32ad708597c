//! The write path: claim a generation slot, catch it up, change it, publish it by
//! compare-and-swap, retire its base.

use crate::changes::{ChangeLog, Journal};
use crate::generation::{FREE, IN_USE, UNUSED};
use crate::reader::pinning;
use crate::reentry;
use crate::sync::{compare_exchange, compare_exchange_counted, fence, spin_wait, Ordering};
use crate::table::Table;
use crate::{Error, SnapMap, Txn};
use core::borrow::Borrow;
use core::cell::Cell;
use core::hash::{BuildHasher, Hash};

/// Whether a writer that finds no free slot returns an error or waits for one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    No,
    Spin,
}

/// The writer's base pin: a counted pin (see `SnapMap::pin_counted`) on the generation it copies
/// from, moved to the new current generation after each lost race. Dropping it (on success,
/// error or unwind) ends the pin.
struct BasePin<'m, K, V, const N: usize, const G: usize, const R: usize, const L: usize, S> {
    map: &'m SnapMap<K, V, N, G, R, L, S>,
    base: usize,
}

impl<'m, K, V, const N: usize, const G: usize, const R: usize, const L: usize, S>
    BasePin<'m, K, V, N, G, R, L, S>
{
    fn new(map: &'m SnapMap<K, V, N, G, R, L, S>) -> Self {
        let base = Self::pin(map);
        Self { map, base }
    }

    /// Moves the pin to the current generation; returns it.
    fn repin(&mut self) -> usize {
        Self::unpin(self.map, self.base);
        self.base = Self::pin(self.map);
        self.base
    }

    fn pin(map: &SnapMap<K, V, N, G, R, L, S>) -> usize {
        // The `no_base_pin` mutant (loom runs only) reads `current` without a pin, to show that
        // the models catch the lost updates that follow (writer A copies from a base that
        // writer B is overwriting).
        #[cfg(snapmap_mutant = "no_base_pin")]
        return map.current.load(Ordering::Acquire);
        #[cfg(not(snapmap_mutant = "no_base_pin"))]
        map.pin_counted()
    }

    fn unpin(map: &SnapMap<K, V, N, G, R, L, S>, base: usize) {
        #[cfg(snapmap_mutant = "no_base_pin")]
        let _ = (map, base);
        #[cfg(not(snapmap_mutant = "no_base_pin"))]
        map.unpin_counted(base);
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize, S> Drop
    for BasePin<'_, K, V, N, G, R, L, S>
{
    fn drop(&mut self) {
        Self::unpin(self.map, self.base);
    }
}

/// A generation slot claimed (FREE -> IN_USE) by this writer and not published. Dropping it (on
/// error, a change that changed nothing, or unwind) frees the slot; publishing forgets it.
struct Claim<'m, K, V, const N: usize, const G: usize, const R: usize, const L: usize, S> {
    map: &'m SnapMap<K, V, N, G, R, L, S>,
    index: usize,
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize, S> Drop
    for Claim<'_, K, V, N, G, R, L, S>
{
    fn drop(&mut self) {
        // Release: our writes to the slot (a partial copy, say) happen-before the next claimer's
        // Acquire CAS, so its overwrite does not race them.
        self.map.generations[self.index]
            .state
            .store(FREE, Ordering::Release);
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize, S>
    SnapMap<K, V, N, G, R, L, S>
{
    /// Claims a free slot to bring up to date with the pinned `base`, re-pinning the current
    /// generation as the base after each failed attempt. Returns the base's index with the claim.
    fn claim_generation<'m>(
        &'m self,
        pin: &mut BasePin<'m, K, V, N, G, R, L, S>,
        wait: Wait,
    ) -> Result<(usize, Claim<'m, K, V, N, G, R, L, S>), Error> {
        let mut spins = 0;
        loop {
            let base = pin.base;
            if let Some(index) = self.try_claim(base) {
                return Ok((base, Claim { map: self, index }));
            }
            // A scan races other writers: one may retire a slot behind it and claim the one ahead.
            // If a publication moved `current` meanwhile, the scan proved nothing: rescan (as a
            // lost CAS retries, this is progress elsewhere, not a wait). With `current` still, a
            // failed scan means the slots really are pinned or claimed: by registered readers
            // (at most `R`, which the budget `G >= R + 2` leaves room for), by other writers in
            // flight, or by held one-off snapshots.
            // Relaxed: only compared, nothing is read on the strength of it.
            if self.current.load(Ordering::Relaxed) == base {
                if wait == Wait::No {
                    return Err(Error::NoFreeGeneration);
                }
                if spins == 0 {
                    self.stats.slot_waits.bump();
                }
                spin_wait(&mut spins);
            }
            // Re-pinned on every attempt, so a waiting writer never holds an old generation.
            pin.repin();
        }
    }

    /// Claims a FREE generation slot on which no hazard stands. Candidates are taken in order
    /// after `base`: with one writer, slots are retired in that same order, so the first
    /// candidate is the least recently retired, the one least likely to still be pinned (a
    /// reader's pin stays on the generation it read last), and slots are reused in rotation,
    /// which keeps every slot's copy within reach of the change logs (see `changes`).
    /// Never `base` itself: it is current or pinned by us.
    fn try_claim(&self, base: usize) -> Option<usize> {
        (1..G)
            .map(|step| (base + step) % G)
            .find(|&index| self.try_claim_slot(index))
    }

    /// Claims generation slot `index` if it is claimable (see `generation::UNUSED`) and no
    /// hazard stands on it.
    fn try_claim_slot(&self, index: usize) -> bool {
        let state = &self.generations[index].state;
        // Relaxed pre-check: skip busy slots without an RMW.
        let seen = state.load(Ordering::Relaxed);
        if !(seen == FREE || seen == UNUSED && index != 0) {
            return false;
        }
        // Acquire on success: synchronizes with the Release store that freed the slot, so every
        // access by its last writer and by the writer that retired it happens-before our
        // overwrite.
        if compare_exchange(state, seen, IN_USE).is_err() {
            return false;
        }
        // The writer half of the Dekker pair with a reader's announcement and validation in
        // `pin_from` (a hazard) or `pin_counted` (an increment of the count). In the single total
        // order of SeqCst operations, either the announcement precedes this fence, and the scan
        // below sees the hazard (or a later Release store of that reader, which carries its
        // reads along) or a count that includes the increment (every later change of the count
        // is a read-modify-write, so the value read is at least that reader's share until it
        // decrements, with Release); or this fence comes first, and since
        // `current` had moved off `index` before it (the retiring CAS happens-before the FREE
        // store we just acquired), the reader's validating load sees that and it never reads the
        // slot. A pin that validates on `index` later is on a re-published copy, written before
        // its publishing CAS: harmless. (Counted pins would be safe even without the fence: the
        // writer that retired `index` had it pinned as its base, by a read-modify-write of the
        // same count that happens-before our claim, so our load sees the count no lower than
        // that, and a reader's increment lands either inside that pin, keeping the count up, or
        // after its release, which orders the reader after the retiring CAS. A registered
        // reader's hazard is a plain store: for those the fence is essential, and the loom
        // mutant `no_writer_fence` shows it.)
        #[cfg(not(snapmap_mutant = "no_writer_fence"))]
        fence(Ordering::SeqCst);
        // Acquire: a count seen at zero, or a hazard seen cleared (or moved), orders the reads
        // made under those pins before our writes to the slot.
        let pinned = self.pins[index].word.load(Ordering::Acquire) != 0
            || self
                .readers
                .iter()
                .any(|reader| reader.hazard().load(Ordering::Acquire) == pinning(index));
        if pinned {
            // Release: hands the Acquire we took from the retiring writer on to the next
            // claimer (a plain store does not extend a release sequence).
            state.store(FREE, Ordering::Release);
        }
        !pinned
    }
}

impl<
        K: Hash + Eq + Clone,
        V: Clone,
        const N: usize,
        const G: usize,
        const R: usize,
        const L: usize,
        S: BuildHasher,
    > SnapMap<K, V, N, G, R, L, S>
{
    /// The whole write protocol: bring the claimed copy up to date with the current generation,
    /// let `change` edit it, and publish it by CAS, catching up and re-applying after each lost
    /// race.
    fn publish<T>(
        &self,
        wait: Wait,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.publish_or_take_back(wait, change, |_| {})
    }

    /// [`publish`](Self::publish), with `lost` called on the discarded copy after each lost race,
    /// before it is caught up: a write can take back there what `change` moved into the copy
    /// (see `insert`).
    fn publish_or_take_back<T>(
        &self,
        wait: Wait,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
        lost: impl FnMut(&mut Table<K, V, N>),
    ) -> Result<T, Error> {
        let me = (self as *const Self).cast::<()>();
        if reentry::writing(me) {
            return Err(Error::Reentrant);
        }
        reentry::nest(me, || self.publish_once(wait, change, lost))
    }

    /// [`publish_or_take_back`](Self::publish_or_take_back), for a write that is not inside
    /// another write to this map.
    fn publish_once<T>(
        &self,
        wait: Wait,
        mut change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
        mut lost: impl FnMut(&mut Table<K, V, N>),
    ) -> Result<T, Error> {
        // The base pin is what makes the pointer CAS free of ABA: while we pin `base`, it cannot
        // be retired *and reused*, so `current == base` at the CAS means nothing was published
        // since we copied it.
        let mut pin = BasePin::new(self);
        let (mut base, claim) = self.claim_generation(&mut pin, wait)?;
        let target = &self.generations[claim.index];
        loop {
            let source = &self.generations[base];
            let (result, changed) = target.generation.with_mut(|copy| {
                target.log.with_mut(|log| {
                    // The target slot (its generation and its log) is ours: we claimed it
                    // FREE -> IN_USE, it is not `current`, and no hazard was on it after our
                    // fence, so no reader can validate a pin on it, and no writer use it as a
                    // base, until we publish it (see `try_claim_slot`).
                    // SAFETY: so these are the only references to the target's generation and
                    // log; `base` != `claim.index`, so they alias nothing read below.
                    let (copy, log): (_, &mut ChangeLog) = unsafe { (&mut *copy, &mut *log) };
                    let full = source.generation.with(|base| {
                        source.log.with(|base_log| {
                            // SAFETY: `base` was validated as current through our own hazard,
                            // which still stands, so it is published and immutable while we
                            // read it; its log was written before its publication.
                            let (base, base_log) = unsafe { (&*base, &*base_log) };
                            copy.catch_up(log, base, base_log, 2 * G as u64)
                        })
                    });
                    if full {
                        self.stats.full_copies.bump();
                    }
                    let mut txn = Txn::new(
                        &mut copy.table,
                        Journal::new(log, copy.version + 1),
                        &self.hasher,
                    );
                    let result = change(&mut txn);
                    let changed = txn.changed();
                    if changed && result.is_ok() {
                        copy.version += 1; // the version it will publish as
                    }
                    (result, changed)
                })
            });
            // An error, or a change that changed nothing, publishes nothing: dropping the claim
            // frees the slot and dropping the pin releases the base. A no-op linearizes at the
            // pin's validation, when `base` was current.
            let result = result?;
            if !changed {
                return Ok(result);
            }
            // AcqRel (see `compare_exchange`): Release publishes the copy and our version to
            // every Acquire load of `current`; Acquire orders the retiring below after the
            // publication of `base`.
            // The publication is counted with the CAS (one critical section on thumbv6m).
            match compare_exchange_counted(&self.current, base, claim.index, &self.stats.publishes)
            {
                Ok(_) => {
                    core::mem::forget(claim);
                    // Only the writer whose CAS replaced `base` retires it. Release: our copy of
                    // it happens-before its next claimer's overwrite.
                    self.generations[base].state.store(FREE, Ordering::Release);
                    return Ok(result);
                }
                Err(_) => {
                    // Another writer published first: rebase on the new current and re-apply.
                    // The target stays ours; it was never published, so no pin can be on it.
                    // It holds the base it was built on plus our changes, which its log lists
                    // after that base's version: say so, and the catch-up undoes them.
                    target.generation.with_mut(|copy| {
                        // SAFETY: still ours and unpublished, as above.
                        let copy = unsafe { &mut *copy };
                        copy.version -= 1;
                        lost(&mut copy.table);
                    });
                    self.stats.cas_retries.bump();
                    base = pin.repin();
                }
            }
        }
    }

    /// Applies a transaction: `change` edits a private copy of the map, and all its changes are
    /// published together as one generation (or none, if it returns `Err` or panics). Waits while
    /// no slot is free.
    ///
    /// `change` runs again on a fresh copy if another writer publishes first, so it must be
    /// re-runnable. A transaction that changes nothing publishes nothing.
    ///
    /// ```
    /// use snapmap_core::{Error, SnapMap};
    ///
    /// let map: SnapMap<&str, i64, 8> = SnapMap::new();
    /// map.update(|tx| {
    ///     tx.insert("alice", 60)?;
    ///     tx.insert("bob", 40)?;
    ///     Ok(())
    /// })?;
    /// // Move 25 from alice to bob: readers see both balances change, or neither.
    /// map.update(|tx| {
    ///     let alice = *tx.get(&"alice").ok_or(Error::Aborted)?;
    ///     if alice < 25 {
    ///         return Err(Error::Aborted);
    ///     }
    ///     tx.insert("alice", alice - 25)?;
    ///     *tx.get_mut(&"bob").ok_or(Error::Aborted)? += 25;
    ///     Ok(())
    /// })?;
    /// let snap = map.snapshot();
    /// assert_eq!(snap.iter().map(|(_, v)| v).sum::<i64>(), 100);
    /// assert_eq!(snap.get(&"alice"), Some(&35));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// Whatever `change` returns (its [`Txn::insert`] gives [`Error::Full`]); nothing is published.
    /// [`Error::Reentrant`] (under `std`) if this is a write from inside a write to this map,
    /// `change` included: `change` must not write to the map it changes (that would livelock;
    /// see the [crate docs](crate#writing)).
    pub fn update<T>(
        &self,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.publish(Wait::Spin, change)
    }

    /// [`update`](Self::update), without waiting.
    ///
    /// # Errors
    /// As `update`, plus [`Error::NoFreeGeneration`] if the writer would have to wait for a
    /// slot.
    pub fn try_update<T>(
        &self,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.publish(Wait::No, change)
    }

    /// Inserts or replaces `key`, returning the value it replaced (Go's `Store` / `Swap`).
    ///
    /// ```
    /// use snapmap_core::SnapMap;
    /// let map: SnapMap<u32, u32, 4> = SnapMap::new();
    /// assert_eq!(map.insert(7, 1), Ok(None));
    /// assert_eq!(map.insert(7, 2), Ok(Some(1)));
    /// ```
    ///
    /// # Errors
    /// [`Error::Full`] if `key` is new and the map holds `N` entries; [`Error::Reentrant`].
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, Error> {
        self.insert_with(Wait::Spin, key, value)
    }

    /// Moves `key` and `value` into the copy; after a lost race, takes them back out of the
    /// discarded copy for the next attempt, so that they are never cloned.
    fn insert_with(&self, wait: Wait, key: K, value: V) -> Result<Option<V>, Error> {
        let pending = Cell::new(Some((key, value)));
        let landed = Cell::new(0);
        self.publish_or_take_back(
            wait,
            |tx| {
                // Given back after every lost race; taken only by an attempt that then either
                // publishes, fails (dropping them) or unwinds.
                let (key, value) = pending.take().expect("insert's entry taken twice");
                let (slot, old) = tx.insert_at(key, value)?;
                landed.set(slot);
                Ok(old)
            },
            // The slot holds our entry (or, for a key that was present, its old key with our
            // value): the same key by `Eq`, and the copy's own.
            |table| pending.set(Some(table.take_back(landed.get()))),
        )
    }

    /// [`insert`](Self::insert), without waiting.
    ///
    /// # Errors
    /// As `insert`, plus [`Error::NoFreeGeneration`] if it would have to wait for a slot.
    pub fn try_insert(&self, key: K, value: V) -> Result<Option<V>, Error> {
        self.insert_with(Wait::No, key, value)
    }

    /// Removes `key`, returning its value (Go's `LoadAndDelete` / `Delete`). Publishes nothing
    /// if the key is absent.
    ///
    /// # Errors
    /// Only [`Error::Reentrant`] (under `std`), for a write from inside a write to this map: see
    /// the [crate docs](crate#writing).
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.publish(Wait::Spin, |tx| Ok(tx.remove(key)))
    }

    /// [`remove`](Self::remove), without waiting.
    ///
    /// # Errors
    /// [`Error::NoFreeGeneration`] if it would have to wait for a slot; [`Error::Reentrant`].
    pub fn try_remove<Q>(&self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.publish(Wait::No, |tx| Ok(tx.remove(key)))
    }

    /// Returns the value of `key` and `true` if the key was present (loaded), or inserts `value`
    /// and returns it with `false` (Go's `LoadOrStore`, which returns `loaded` too). Reads
    /// before it writes: an existing key costs one snapshot.
    ///
    /// ```
    /// use snapmap_core::SnapMap;
    /// let map: SnapMap<u8, &str, 4> = SnapMap::new();
    /// assert_eq!(map.get_or_insert(1, "first"), Ok(("first", false)));
    /// assert_eq!(map.get_or_insert(1, "second"), Ok(("first", true)));
    /// ```
    ///
    /// # Errors
    /// [`Error::Full`] if `key` is absent and the map holds `N` entries; [`Error::Reentrant`].
    pub fn get_or_insert(&self, key: K, value: V) -> Result<(V, bool), Error> {
        let result = match self.get(&key) {
            Some(existing) => Ok((existing, true)),
            None => self.publish(Wait::Spin, |tx| match tx.get(&key) {
                Some(existing) => Ok((existing.clone(), true)),
                None => tx
                    .insert(key.clone(), value.clone())
                    .map(|_| (value.clone(), false)),
            }),
        };
        // Dropped while `result` is a local: if a drop panics, the unwind drops it too (a
        // parameter dropped after the return value is built would leak that value).
        drop((key, value));
        result
    }

    /// Replaces the value of `key` with `new` if it currently equals `current` (Go's
    /// `CompareAndSwap`). Returns whether it did.
    ///
    /// ```
    /// use snapmap_core::SnapMap;
    /// let map: SnapMap<u8, u32, 4> = SnapMap::new();
    /// map.insert(1, 10).unwrap();
    /// assert_eq!(map.compare_exchange(&1, &99, 11), Ok(false));
    /// assert_eq!(map.compare_exchange(&1, &10, 11), Ok(true));
    /// assert_eq!(map.get(&1), Some(11));
    /// ```
    ///
    /// # Errors
    /// Only [`Error::Reentrant`] (under `std`), for a write from inside a write to this map: see
    /// the [crate docs](crate#writing).
    pub fn compare_exchange<Q>(&self, key: &Q, current: &V, new: V) -> Result<bool, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: PartialEq,
    {
        self.publish(Wait::Spin, |tx| match tx.get(key) {
            Some(value) if value == current => {
                if let Some(value) = tx.get_mut(key) {
                    *value = new.clone();
                }
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    /// Removes `key` if `predicate` holds for its value (Go's `CompareAndDelete`, generalized),
    /// returning the removed value.
    ///
    /// # Errors
    /// Only [`Error::Reentrant`] (under `std`), for a write from inside a write to this map: see
    /// the [crate docs](crate#writing).
    pub fn remove_if<Q>(
        &self,
        key: &Q,
        mut predicate: impl FnMut(&V) -> bool,
    ) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.publish(Wait::Spin, |tx| match tx.get(key) {
            Some(value) if predicate(value) => Ok(tx.remove(key)),
            _ => Ok(None),
        })
    }

    /// Removes every entry (Go's `Clear`). Publishes nothing if the map is already empty.
    ///
    /// # Errors
    /// Only [`Error::Reentrant`] (under `std`), for a write from inside a write to this map: see
    /// the [crate docs](crate#writing).
    pub fn clear(&self) -> Result<(), Error> {
        self.publish(Wait::Spin, |tx| {
            tx.clear();
            Ok(())
        })
    }
}
