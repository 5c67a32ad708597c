//! [`Writer`]: the map's sole writer, for the common case of one writing context (core 0 owns
//! the table, core 1 and interrupt handlers read it).
//!
//! # Why a write costs less with one writer
//!
//! Among many writers every read-modify-write of the write path serves a race: the base pin
//! keeps the base from being retired and reused under a writer that is copying it, the claims
//! keep two writers out of one generation slot or one page, and the compare-and-swap of
//! `current` tells a writer that another published first. With one writer none of these races
//! can happen:
//!
//! - only the writer publishes, so the current generation stays current, and readable, until
//!   its own next write: no base pin;
//! - only the writer writes generation slots, so every slot but the current one is retired, and
//!   free to reuse once no pin stands on it: no claim, only the scan of pins that readers need
//!   (the fence and the loads of `scan_pins`, whose reader half is unchanged);
//! - only the writer claims pool entries and cleared records: a load and a store each;
//! - only the writer stores `current`: publication is a store (with the fence that orders it
//!   before its look at waiting readers, see `notify`).
//!
//! On Cortex-M0+ that is a write without a single critical section: the writing core never
//! masks interrupts. Readers do exactly what they did, and cannot tell which kind of writer
//! published what they read.
//!
//! # Taking the map over, and giving it back
//!
//! [`SnapMap::writer`] sets the map's `sole` word, fences, and then waits until every writer of
//! the shared path in flight has landed or given up: until no generation slot but the current
//! one is claimed. A shared writer claims its slot, fences (the fence of `scan_pins`), and then
//! loads `sole`: in the single total order of SeqCst operations one of the two fences comes
//! first, so either the takeover sees the claim (and waits for it to end), or the shared writer
//! sees `sole` (and gives its claim back, returning [`Error::WriterHeld`]). From then on the
//! shared path's writers claim a slot now and then, see `sole` and give it back, and touch
//! nothing else: the sole writer leaves the generation states alone (it does not need them),
//! and shared writers give up before they claim a page or a record.
//!
//! Dropping the `Writer` gives the map back: it marks the generation it left current as claimed
//! (`IN_USE`, as the shared path keeps its current one; a compare-and-swap, since shared writers
//! may hold that slot's state for a moment), frees the one that was current when it took over,
//! and clears `sole` (Release: a shared writer loads `sole` with Acquire after each claim, so
//! what the `Writer` wrote, slots whose states it never touched included, happens-before the
//! claimer's overwrite).
//!
//! So the two kinds coexist in time, never at once: while a `Writer` lives, writes through the
//! map return [`Error::WriterHeld`], which names the mistake (a second writing context) instead
//! of waiting for a writer that may never go away.

use crate::generation::{FREE, IN_USE};
use crate::snapshot::{Release, Snapshot};
use crate::sync::{compare_exchange, fence, spin_wait, Ordering, Writers};
use crate::write::Wait;
use crate::{Error, FxBuildHasher, SnapMap, Txn};
use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};

/// The map's sole writer: while it lives, it alone writes to the map, with no base pin, no
/// compare-and-swap and, on Cortex-M0/M0+, no critical section (see the crate docs, "The
/// model"). Readers read as before. Get it once with [`SnapMap::writer`] and keep it where the
/// writes are made (core 0's main loop, one task).
///
/// **Beside writes through the map.** The two kinds of writer take turns, never overlap:
/// [`SnapMap::writer`] waits until the writes through the map that are in flight have landed
/// (or given up), and from then until the `Writer` drops, every write through the map returns
/// [`Error::WriterHeld`] without changing anything. (A shared write that starts while the
/// writer is being taken either lands before it, or sees it and gives up: the two sides
/// announce themselves, fence, and look at each other, so one of them always sees the other.)
/// Dropping the `Writer` hands the map back in the state shared writers expect.
///
/// Its writes are the map's writes, with the same results and errors, taking `&mut self`:
/// one write at a time, and a write cannot be made from inside another (an [`update`](Self::update)
/// closure cannot reach the `Writer`; a write through the map from there gets
/// [`Error::WriterHeld`]). A write never races, so it runs its change once, unless it waits for
/// pages. Its own reads ([`get`](Self::get), [`snapshot`](Self::snapshot)) need no pin at all:
/// only this writer could replace what they read, and it is borrowed while they last.
///
/// ```
/// use snapmap_core::{Error, SnapMap};
///
/// static TABLE: SnapMap<u16, u32, 64> = SnapMap::new();
///
/// let mut writer = TABLE.writer()?;
/// writer.insert(1, 100)?;
/// writer.update(|tx| {
///     tx.insert(2, 200)?;
///     tx.insert(3, 300)?;
///     Ok(())
/// })?;
/// assert_eq!(writer.get(&2), Some(200));
/// // Readers read as always.
/// assert_eq!(TABLE.snapshot().len(), 3);
/// // The map has one writer now: writes through the map itself are refused.
/// assert_eq!(TABLE.insert(4, 400), Err(Error::WriterHeld));
/// assert_eq!(TABLE.writer().err(), Some(Error::WriterHeld));
/// drop(writer);
/// // Given back: anyone may write again.
/// TABLE.insert(4, 400)?;
/// # Ok::<(), Error>(())
/// ```
pub struct Writer<
    'm,
    K,
    V,
    const N: usize,
    const G: usize = 4,
    const R: usize = 2,
    const P: usize = 8,
    S = FxBuildHasher,
> {
    map: &'m SnapMap<K, V, N, G, R, P, S>,
    /// The generation slot that was current at the takeover: its state still says `IN_USE`,
    /// which the drop undoes if the writer published since.
    took_over: usize,
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S>
    SnapMap<K, V, N, G, R, P, S>
{
    /// Takes the right to write: returns the map's sole [`Writer`], whose writes are cheaper
    /// (see its docs), until it drops. Meanwhile writes through the map return
    /// [`Error::WriterHeld`]. Waits for writes through the map that are in flight to land
    /// (they are making progress): call it where no such write can be interrupted by it, at
    /// start-up say, not from an interrupt handler.
    ///
    /// # Errors
    /// [`Error::WriterHeld`] if a `Writer` of this map exists.
    pub fn writer(&self) -> Result<Writer<'_, K, V, N, G, R, P, S>, Error> {
        // AcqRel (inside `compare_exchange`): Acquire orders us after the last writer's drop,
        // which gave the map back with a Release store.
        if compare_exchange(&self.sole, 0, 1).is_err() {
            return Err(Error::WriterHeld);
        }
        // Our half of the handshake with the shared writers' claims (see the module docs).
        fence(Ordering::SeqCst);
        let mut spins = 0;
        let took_over = loop {
            // Acquire: synchronizes with the last publication, and (below) with the release of
            // every claim we see given back, so that all the shared writers did happens-before
            // our writes.
            let current = self.current.load(Ordering::Acquire);
            let claimed = (0..G).any(|slot| {
                slot != current && self.generations[slot].state.load(Ordering::Acquire) == IN_USE
            });
            // The `takeover_skips_wait` mutant (loom runs only) does not wait, to show that the
            // models catch the shared write it then overwrites.
            if cfg!(snapmap_mutant = "takeover_skips_wait") {
                break current;
            }
            // Relaxed: only compared: a publication in between is one more writer to wait for.
            if !claimed && self.current.load(Ordering::Relaxed) == current {
                break current;
            }
            spin_wait(&mut spins);
        };
        Ok(Writer {
            map: self,
            took_over,
        })
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> Drop
    for Writer<'_, K, V, N, G, R, P, S>
{
    /// Gives the map back to writes through it (see the module docs).
    fn drop(&mut self) {
        let map = self.map;
        // Relaxed: our own last store.
        let current = map.current.load(Ordering::Relaxed);
        if current != self.took_over {
            let state = &map.generations[current].state;
            let mut spins = 0;
            loop {
                // A shared writer that claimed this slot gives it back at once (it sees
                // `sole`); the CAS takes it from whatever it then holds (FREE or UNUSED).
                // Relaxed: a guess for the CAS, which is AcqRel.
                let seen = state.load(Ordering::Relaxed);
                if seen != IN_USE && compare_exchange(state, seen, IN_USE).is_ok() {
                    break;
                }
                spin_wait(&mut spins);
            }
            // Retired by our first publication. Release: our reads of it happen-before its next
            // claimer's overwrite. (No shared writer changes a slot that says IN_USE.)
            map.generations[self.took_over]
                .state
                .store(FREE, Ordering::Release);
        }
        // Release: everything we wrote (pool entries, records, slots) happens-before what a
        // shared writer does after its claim, whose Acquire load of `sole` reads this (see
        // `try_claim_slot`).
        map.sole.store(0, Ordering::Release);
    }
}

impl<'m, K, V, const N: usize, const G: usize, const R: usize, const P: usize, S>
    Writer<'m, K, V, N, G, R, P, S>
{
    /// The map this writer writes.
    pub fn map(&self) -> &'m SnapMap<K, V, N, G, R, P, S> {
        self.map
    }

    /// The current generation, read without a pin: it is the one this writer published last
    /// (or found at the takeover), and only this writer, borrowed by the snapshot, could
    /// replace it. No read-modify-write, no store, no fence.
    #[inline]
    pub fn snapshot(&self) -> Snapshot<'_, K, V, N, S> {
        // Relaxed: our own last store (or the takeover's Acquire load).
        let generation = self.map.current.load(Ordering::Relaxed);
        // SAFETY: the generation is published and stays current, with its pages, while the
        // snapshot borrows us: only we publish or reuse slots and pages.
        unsafe { self.map.pinned(generation, Release::Writer) }
    }

    /// The writers' counters so far, as [`SnapMap::stats`], read without a pin (no critical
    /// section on Cortex-M0/M0+).
    pub fn stats(&self) -> crate::Stats {
        // Relaxed: our own last store (or the takeover's Acquire load).
        let generation = self.map.current.load(Ordering::Relaxed);
        // SAFETY: current, and only we could retire it (see `snapshot`).
        let body = unsafe { self.map.body(generation) };
        self.map.stats.read(body.version, body.page_copies)
    }

    /// Clones the value of `key` out of the current generation (see
    /// [`snapshot`](Self::snapshot)).
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Hash + Eq + Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
        S: BuildHasher,
    {
        self.snapshot().get(key).cloned()
    }
}

impl<
        K: Hash + Eq + Clone,
        V: Clone,
        const N: usize,
        const G: usize,
        const R: usize,
        const P: usize,
        S: BuildHasher,
    > Writer<'_, K, V, N, G, R, P, S>
{
    /// [`SnapMap::insert`] by the sole writer.
    ///
    /// # Errors
    /// [`Error::Full`], as `SnapMap::insert`.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, Error> {
        self.map.insert_sole(Wait::Spin, key, value)
    }

    /// [`insert`](Self::insert), without waiting.
    ///
    /// # Errors
    /// As `insert`, plus [`Error::NoFreeGeneration`] or [`Error::NoFreePage`] where `insert`
    /// would wait for snapshots to release a generation slot or pages.
    pub fn try_insert(&mut self, key: K, value: V) -> Result<Option<V>, Error> {
        self.map.insert_sole(Wait::No, key, value)
    }

    /// [`SnapMap::remove`] by the sole writer.
    ///
    /// # Errors
    /// None today; the `Result` keeps the map's signature.
    pub fn remove<Q>(&mut self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .publish(Writers::Sole, Wait::Spin, |tx| tx.remove(key))
    }

    /// [`remove`](Self::remove), without waiting.
    ///
    /// # Errors
    /// [`Error::NoFreeGeneration`] or [`Error::NoFreePage`] where `remove` would wait.
    pub fn try_remove<Q>(&mut self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .publish(Writers::Sole, Wait::No, |tx| tx.remove(key))
    }

    /// [`SnapMap::update`] by the sole writer: `change` runs once (again only after a wait for
    /// pages), and its changes are published together.
    ///
    /// # Errors
    /// Whatever `change` returns; [`Error::NoFreePage`] if the change needs more than `P`
    /// spare pages.
    pub fn update<T>(
        &mut self,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.map.publish(Writers::Sole, Wait::Spin, change)
    }

    /// [`update`](Self::update), without waiting.
    ///
    /// # Errors
    /// As `update`, plus [`Error::NoFreeGeneration`] or [`Error::NoFreePage`] where it would
    /// wait.
    pub fn try_update<T>(
        &mut self,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.map.publish(Writers::Sole, Wait::No, change)
    }

    /// [`update`](Self::update), also returning the version it published (see
    /// [`SnapMap::update_versioned`]).
    ///
    /// # Errors
    /// As `update`.
    pub fn update_versioned<T>(
        &mut self,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<(T, Option<u64>), Error> {
        self.map.versioned(Writers::Sole, Wait::Spin, change)
    }

    /// [`SnapMap::get_or_insert`] by the sole writer (its read needs no pin).
    ///
    /// # Errors
    /// [`Error::Full`] if `key` is absent and there is no room for it.
    pub fn get_or_insert(&mut self, key: K, value: V) -> Result<(V, bool), Error> {
        let found = self.get(&key);
        self.map
            .get_or_insert_after(Writers::Sole, found, key, value)
    }

    /// [`SnapMap::compare_exchange`] by the sole writer.
    ///
    /// # Errors
    /// None today; the `Result` keeps the map's signature.
    pub fn compare_exchange<Q>(&mut self, key: &Q, current: &V, new: V) -> Result<bool, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: PartialEq,
    {
        self.map
            .compare_exchange_by(Writers::Sole, key, current, new)
    }

    /// [`SnapMap::remove_if`] by the sole writer.
    ///
    /// # Errors
    /// None today; the `Result` keeps the map's signature.
    pub fn remove_if<Q>(
        &mut self,
        key: &Q,
        predicate: impl FnMut(&V) -> bool,
    ) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove_if_by(Writers::Sole, key, predicate)
    }

    /// [`SnapMap::clear`] by the sole writer.
    ///
    /// # Errors
    /// None today; the `Result` keeps the map's signature.
    pub fn clear(&mut self) -> Result<(), Error> {
        self.map.publish(Writers::Sole, Wait::Spin, |tx| tx.clear())
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> core::fmt::Debug
    for Writer<'_, K, V, N, G, R, P, S>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}
