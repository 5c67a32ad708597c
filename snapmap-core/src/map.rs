//! [`SnapMap`]: the arena of generations, the reader slots, and the read API.

use crate::generation::GenSlot;
use crate::reader::{Line, ReaderSlot, IDLE};

use crate::snapshot::Snapshot;
use crate::stats::{Counters, Stats};
use crate::sync::AtomicUsize;
use crate::{Error, FxBuildHasher, Reader};
use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};

/// A concurrent map whose readers see consistent snapshots without locks.
///
/// - `N`: capacity of the map, in entries (a power of two, from 2 to 2^24). Lookups are
///   fastest with the map at most about three-quarters full (see the crate docs, "The table").
/// - `G`: generation slots, each a full copy of the table, at least `R + 2`. One is current, one
///   is claimed by each writer in flight, and each pin holds one (a pin on the current one holds
///   no extra slot).
/// - `R`: reader slots, one per registered [`Reader`] (0 is allowed: then only one-off reads).
///   A registered `Reader` keeps the generation it read last pinned until it reads again or
///   [`unpin`](Reader::unpin)s, so `R` idle readers can hold `R` generations indefinitely.
///   One-off reads ([`snapshot`](Self::snapshot), [`get`](Self::get)) and writers' base pins
///   take no reader slot: they count themselves on the generation they pin, so any number of
///   them can pin at once, and none ever waits for a slot.
/// - `L`: table slots each generation remembers writing (8 bytes each), so that a writer can
///   bring an older copy up to date by copying only the slots written since, instead of the
///   whole table. A transaction that writes more slots than `L` makes the next write copy the
///   whole table once ([`Stats::full_copies`](crate::Stats::full_copies) counts those). `L = 0`
///   copies the whole table on every write: the least memory, and the choice for small `N`.
///
/// **The budget, `G >= R + 2`, is checked at compile time.** It is what makes every registered
/// reader harmless to writers: with all `R` readers idle on `R` different generations, a writer
/// still has the current generation to copy from and one more to write into, so a write waits
/// only for other writers (who are making progress) and for one-off snapshots that are being
/// held. Those are the caller's to drop: a blocking write waits for them (a thread holding
/// snapshots of every spare generation and then writing waits for itself, as with a re-locked
/// lock); a `try_` form returns [`Error::NoFreeGeneration`]. `W` writers in flight at once each
/// claim a slot: with `G >= R + W + 1` none of them ever waits for another.
///
/// The alternatives were to give writers hazard slots of their own (a slot count `W` that every
/// user must choose, and writers waiting for writer slots) or to let [`reader`](Self::reader)
/// refuse the slots writers need (a runtime refusal of a configuration the type already
/// describes). Counting is one mechanism for every short-lived pin; a compile-time check makes a
/// configuration in which an idle reader could stop every writer impossible to build:
///
/// ```compile_fail
/// use snapmap_core::SnapMap;
/// // G = 2, R = 1: one idle Reader would leave writers no generation to write into.
/// static TOO_FEW: SnapMap<u8, u8, 4, 2, 1> = SnapMap::new();
/// # let _ = TOO_FEW.snapshot();
/// ```
///
/// See the [crate documentation](crate) for the protocol.
// `repr(C)`, to keep the words every read touches first: the hazard words at offset 0 (where a
// registered reader's pin addresses its own with one instruction), then `current`. Left to
// itself the compiler put the pin counts there, which cost the read path an instruction.
#[repr(C)]
pub struct SnapMap<
    K,
    V,
    const N: usize,
    const G: usize = 4,
    const R: usize = 2,
    const L: usize = 32,
    S = FxBuildHasher,
> {
    /// Registered readers' hazard words.
    pub(crate) readers: [ReaderSlot; R],
    /// Index of the published generation. Loaded by readers, CASed by writers, never stored.
    pub(crate) current: AtomicUsize,
    /// Hashes keys; only read (beside `current`, which every read loads anyway).
    pub(crate) hasher: S,
    pub(crate) generations: [GenSlot<K, V, N, L>; G],
    /// Per generation slot, the counted pins on it (one-off reads and writers' bases): changed
    /// only by read-modify-writes (see `pin_counted`), loaded by writers scanning for pins.
    pub(crate) pins: [Line; G],
    pub(crate) stats: Counters,
}

// SAFETY: readers on any thread get `&K` and `&V` out of shared generations (so K, V: Sync)
// and hash with `&S` (so S: Sync),
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
        S: Sync,
    > Sync for SnapMap<K, V, N, G, R, L, S>
{
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize>
    SnapMap<K, V, N, G, R, L, FxBuildHasher>
{
    /// An empty map hashing with [`FxBuildHasher`] (the default), usable in a `static`. All zero
    /// bytes, so a `static` one lands in `.bss` and costs no flash.
    ///
    /// ```
    /// use snapmap_core::SnapMap;
    /// static ROUTES: SnapMap<u16, [u8; 4], 64, 4, 2> = SnapMap::new();
    /// assert!(ROUTES.snapshot().is_empty());
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self::with_hasher(FxBuildHasher)
    }

    /// An empty map (loom's atomics cannot be built in a `const fn`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self::with_hasher(FxBuildHasher)
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize, S>
    SnapMap<K, V, N, G, R, L, S>
{
    const PARAMETERS_OK: () = {
        assert!(
            G >= R + 2,
            "SnapMap needs G >= R + 2 generation slots: R idle readers can pin R of them, and \
             writers need the current one and one to write into"
        );
        assert!(G < IDLE, "too many generation slots");
    };

    /// An empty map hashing with `hasher`, usable in a `static` (a `const fn`).
    ///
    /// ```
    /// use snapmap_core::{SipBuildHasher, SnapMap};
    /// // A key known when the firmware is built: see `SipBuildHasher` for keys drawn at start-up.
    /// static PEERS: SnapMap<u32, u8, 64, 4, 2, 32, SipBuildHasher> =
    ///     SnapMap::with_hasher(SipBuildHasher::new(0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344));
    /// PEERS.insert(7, 1).unwrap();
    /// assert_eq!(PEERS.get(&7), Some(1));
    /// ```
    #[cfg(not(loom))]
    pub const fn with_hasher(hasher: S) -> Self {
        let () = Self::PARAMETERS_OK;
        // All zeros but the hasher (see `generation::UNUSED`): the empty generation 0 is current.
        Self {
            current: AtomicUsize::new(0),
            hasher,
            generations: [const { GenSlot::new() }; G],
            pins: [const { Line::new() }; G],
            readers: [const { ReaderSlot::new() }; R],
            stats: Counters::new(),
        }
    }

    /// An empty map hashing with `hasher` (loom's atomics cannot be built in a `const fn`).
    #[cfg(loom)]
    pub fn with_hasher(hasher: S) -> Self {
        let () = Self::PARAMETERS_OK;
        Self {
            current: AtomicUsize::new(0),
            hasher,
            generations: core::array::from_fn(|_| GenSlot::new()),
            pins: core::array::from_fn(|_| Line::new()),
            readers: core::array::from_fn(|_| ReaderSlot::new()),
            stats: Counters::new(),
        }
    }

    /// The map's hasher.
    pub const fn hasher(&self) -> &S {
        &self.hasher
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
    pub fn reader(&self) -> Result<Reader<'_, K, V, N, G, R, L, S>, Error> {
        let slot = self.claim_reader_slot().ok_or(Error::NoReaderSlot)?;
        Ok(Reader::new(self, slot))
    }

    /// Pins the current generation for one read, until the snapshot drops. Takes no reader slot
    /// (the pin is counted on the generation), so it never waits and never fails, however many
    /// snapshots are held at once.
    ///
    /// Counting is a read-modify-write, which on targets without one (Cortex-M0/M0+) takes a
    /// critical section: readers there that must never take one use a [`Reader`].
    pub fn snapshot(&self) -> Snapshot<'_, K, V, N, S> {
        let generation = self.pin_counted();
        Snapshot::new(
            &self.generations[generation].generation,
            &self.hasher,
            Some(&self.pins[generation].word),
        )
    }

    /// Clones the value of `key` out of the current generation (a one-off
    /// [`snapshot`](Self::snapshot)).
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

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize, S: Default> Default
    for SnapMap<K, V, N, G, R, L, S>
{
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize, S> fmt::Debug
    for SnapMap<K, V, N, G, R, L, S>
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
