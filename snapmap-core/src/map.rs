//! [`SnapMap`]: the arena of generations, the reader slots, and the read API.

use crate::generation::GenSlot;
use crate::reader::{ReaderSlot, Side, IDLE};

use crate::snapshot::Snapshot;
use crate::stats::{Counters, Stats};
use crate::sync::{spin_wait, AtomicUsize};
use crate::{Error, Reader};
use core::borrow::Borrow;
use core::fmt;
use core::hash::Hash;

/// A concurrent map whose readers see consistent snapshots without locks.
///
/// - `N`: capacity of the map, in entries (a power of two, from 2 to 2^24). Lookups are
///   fastest with the map at most about three-quarters full (see the crate docs, "The table").
/// - `G`: generation slots, each a full copy of the table (at least 2). One is current, one is
///   claimed by each writer in flight, and each pin holds one more.
/// - `R`: reader slots (hazard words), shared by registered [`Reader`]s, one-off reads and the
///   writers' base pins (a writer holds one while it writes). A registered `Reader` keeps the
///   generation it read last pinned until it reads again or [`unpin`](Reader::unpin)s.
/// - `L`: table slots each generation remembers writing (8 bytes each), so that a writer can
///   bring an older copy up to date by copying only the slots written since, instead of the
///   whole table. A transaction that writes more slots than `L` makes the next write copy the
///   whole table once ([`Stats::full_copies`](crate::Stats::full_copies) counts those). `L = 0`
///   copies the whole table on every write: the least memory, and the choice for small `N`.
///
/// With `G >= R + W + 1` for `W` concurrent writers a writer never waits for a slot; with fewer,
/// a writer can find every slot pinned or claimed, and then the `try_` forms return
/// [`Error::NoFreeGeneration`] and the blocking forms spin until a pin is dropped (or an idle
/// `Reader` reads again or unpins).
///
/// See the [crate documentation](crate) for the protocol.
pub struct SnapMap<
    K,
    V,
    const N: usize,
    const G: usize = 4,
    const R: usize = 4,
    const L: usize = 32,
> {
    /// Index of the published generation. Loaded by readers, CASed by writers, never stored.
    pub(crate) current: AtomicUsize,
    pub(crate) generations: [GenSlot<K, V, N, L>; G],
    pub(crate) readers: [ReaderSlot; R],
    pub(crate) stats: Counters,
}

// SAFETY: readers on any thread get `&K` and `&V` out of shared generations (so K, V: Sync),
// and writers on any thread clone, move and drop keys and values (so K, V: Send). Every shared
// mutation of the arena goes through the protocol documented on the crate: a generation is
// written only by the writer that claimed it, while no pin can be on it, and is immutable once
// published until it is retired and no hazard is left on it.
unsafe impl<
        K: Send + Sync,
        V: Send + Sync,
        const N: usize,
        const G: usize,
        const R: usize,
        const L: usize,
    > Sync for SnapMap<K, V, N, G, R, L>
{
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize>
    SnapMap<K, V, N, G, R, L>
{
    const PARAMETERS_OK: () = {
        assert!(G >= 2, "SnapMap needs at least 2 generation slots (G)");
        assert!(G < IDLE, "too many generation slots");
        assert!(R >= 1, "SnapMap needs at least 1 reader slot (R)");
    };

    /// An empty map, usable in a `static`.
    ///
    /// ```
    /// use snapmap_core::SnapMap;
    /// static ROUTES: SnapMap<u16, [u8; 4], 64, 4, 3> = SnapMap::new();
    /// assert!(ROUTES.snapshot().is_empty());
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        let () = Self::PARAMETERS_OK;
        // All zeros (see `generation::UNUSED`): the empty generation 0 is current.
        Self {
            current: AtomicUsize::new(0),
            generations: [const { GenSlot::new() }; G],
            readers: [const { ReaderSlot::new() }; R],
            stats: Counters::new(),
        }
    }

    /// An empty map (loom's atomics cannot be built in a `const fn`).
    #[cfg(loom)]
    pub fn new() -> Self {
        let () = Self::PARAMETERS_OK;
        Self {
            current: AtomicUsize::new(0),
            generations: core::array::from_fn(|_| GenSlot::new()),
            readers: core::array::from_fn(|_| ReaderSlot::new()),
            stats: Counters::new(),
        }
    }

    /// The most entries the map can hold (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The writers' counters so far.
    pub fn stats(&self) -> Stats {
        self.stats.read()
    }

    /// Registers a reader: claims a reader slot for as long as the [`Reader`] lives.
    ///
    /// # Errors
    /// [`Error::NoReaderSlot`] if all `R` slots are claimed.
    pub fn reader(&self) -> Result<Reader<'_, K, V, N, G, R, L>, Error> {
        let slot = self.claim_reader_slot().ok_or(Error::NoReaderSlot)?;
        Ok(Reader::new(self, slot))
    }

    /// Pins the current generation through any free reader slot, released when the snapshot
    /// drops; waits (spins) while every reader slot is claimed.
    ///
    /// Claiming the slot is a compare-and-swap, which on targets without one (Cortex-M0/M0+)
    /// takes a critical section: readers there that must never take one use a [`Reader`].
    pub fn snapshot(&self) -> Snapshot<'_, K, V, N> {
        let mut spins = 0;
        loop {
            if let Ok(snapshot) = self.try_snapshot() {
                return snapshot;
            }
            spin_wait(&mut spins);
        }
    }

    /// [`snapshot`](Self::snapshot), without waiting.
    ///
    /// # Errors
    /// [`Error::NoReaderSlot`] if all `R` reader slots are claimed.
    pub fn try_snapshot(&self) -> Result<Snapshot<'_, K, V, N>, Error> {
        let (slot, generation) = self
            .claim_and_pin(Side::Reader)
            .ok_or(Error::NoReaderSlot)?;
        Ok(Snapshot::new(
            &self.generations[generation].generation,
            Some(&self.readers[slot]),
        ))
    }

    /// Clones the value of `key` out of the current generation (a one-off
    /// [`snapshot`](Self::snapshot)).
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Hash + Eq + Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.snapshot().get(key).cloned()
    }

    /// [`get`](Self::get), without waiting for a reader slot.
    ///
    /// # Errors
    /// [`Error::NoReaderSlot`] if all `R` reader slots are claimed.
    pub fn try_get<Q>(&self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Hash + Eq + Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        Ok(self.try_snapshot()?.get(key).cloned())
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize> Default
    for SnapMap<K, V, N, G, R, L>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize> fmt::Debug
    for SnapMap<K, V, N, G, R, L>
{
    /// Shows the shape and the counters; print a [`snapshot`](Self::snapshot) for the entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapMap")
            .field("capacity", &N)
            .field("generations", &G)
            .field("readers", &R)
            .field("stats", &self.stats())
            .finish()
    }
}
