//! [`SnapMap`]: the arena of generations, the reader slots, and the read API.

use crate::cleared::Cleared;
use crate::generation::{Body, GenSlot};
use crate::notify::Notify;
use crate::pages::{Entry, PageInfo, Pages, Pool};
use crate::reader::{Line, ReaderSlot, IDLE};
use crate::snapshot::{Release, Snapshot};
use crate::stats::{Counters, Stats};
use crate::sync::{array, AtomicU8, AtomicUsize, TurnWord, UnsafeCell};
use crate::table::{Shape, SlotCell, MAX_WRITE_PAGES};
use crate::{Error, FxBuildHasher, Reader};
use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};

/// A concurrent map whose readers see consistent snapshots without locks.
///
/// - `N`: capacity of the map, in entries (a power of two, from 2 to 2^18). Above 64, an insert
///   can be refused with [`Error::Full`] from about half full on, when the key's run of
///   occupied slots would grow past 48 (see the crate docs, "The table"): size such an `N` at
///   about twice the entries you expect.
/// - `G`: generation slots, at least `R + 2` and at most 16 (and at most `N`). One is current,
///   one is claimed by each writer in flight, and each pinned snapshot holds one (a snapshot of
///   the current one holds no extra slot). A generation costs a few words and an index of two
///   bytes per 16 entries: the table's pages are shared between generations.
/// - `R`: reader slots, one per registered [`Reader`] (0 is allowed: then only one-off reads).
///   One-off reads ([`snapshot`](Self::snapshot), [`get`](Self::get)) and writers' base pins
///   take no reader slot: they count themselves on the generation they pin, so any number of
///   them can pin at once, and none ever waits for a slot.
/// - `P`: spare pages of 16 slots, which writers copy the pages they change into. A one-key
///   write claims at most 4 (at most `N / 16` for `N < 64`), so `P` must be at least that,
///   checked at compile time; a transaction claims one per page it changes, and one that would
///   change more pages than `P` returns [`Error::NoFreePage`] even from a blocking form; a
///   [`clear`](Self::clear) claims none. A page replaced by a write is reused once no held
///   snapshot has it: a snapshot held across many writes holds the pages of its generation they
///   replaced, at most one table (see "The page budget" in the crate docs). The default, 8,
///   leaves a lone writer's one-key writes 4 pages beyond the 4 they may need, for the pages
///   that short pins hold (each the few pages replaced by the writes since it was taken).
///   Snapshots held across many writes, batches and concurrent writers need more.
///
/// **The budget, `G >= R + 2`, is checked at compile time.** `R` registered readers reading at
/// once hold at most `R` generations, and a writer still has the current generation to copy
/// from and one more to write into, so a write waits for a generation slot only while other
/// writers are in flight (who are making progress) or while one-off snapshots are held. Those
/// are the caller's to drop: a blocking write waits for them (a thread holding snapshots of
/// every spare generation and then writing waits for itself, as with a re-locked lock); a
/// `try_` form returns [`Error::NoFreeGeneration`]. `W` writers in flight at once each claim a
/// slot: with `G >= R + W + 1` none of them ever waits for another.
///
/// A configuration in which readers could leave writers no generation is impossible to build:
///
/// ```compile_fail
/// use snapmap_core::SnapMap;
/// // G = 2, R = 1: one reading Reader would leave writers no generation to write into.
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
    const P: usize = 8,
    S = FxBuildHasher,
> {
    /// Registered readers' hazard words.
    pub(crate) readers: [ReaderSlot; R],
    /// Index of the published generation. Loaded by readers, CASed by writers, never stored.
    pub(crate) current: AtomicUsize,
    /// Hashes keys; only read (beside `current`, which every read loads anyway).
    pub(crate) hasher: S,
    pub(crate) generations: [GenSlot; G],
    /// The generations' indices, `Shape::<N>::PAGES` entries each, generation `g`'s from entry
    /// `g * PAGES` on (see `table`). In one block of `N` entries because `[u16; N / 16]` cannot
    /// be written; it holds `G` indices because `G <= 16` (and `G <= N`, for `N < 16`).
    pub(crate) index: [UnsafeCell<u16>; N],
    pub(crate) pages: Pages<K, V, N, P>,
    pub(crate) pool: Pool<[Entry; P]>,
    pub(crate) page_info: PageInfo<N, P>,
    /// Where clears leave the pages they take out of the table, one record per position.
    pub(crate) cleared: Cleared<[AtomicU8; N]>,
    /// The write that has the turn, or 0 (see `write::Turn`).
    pub(crate) turn: TurnWord,
    /// 1 while a [`Writer`](crate::Writer) holds the right to write, else 0 (see `writer`).
    pub(crate) sole: AtomicUsize,
    /// Per generation slot, the counted pins on it (one-off reads and writers' bases): changed
    /// only by read-modify-writes (see `pin_counted`), loaded by writers scanning for pins.
    pub(crate) pins: [Line; G],
    pub(crate) stats: Counters,
    /// Readers waiting in `Reader::changed`, and their wakers (see `notify`).
    pub(crate) notify: Notify<R>,
}

// SAFETY: readers on any thread get `&K` and `&V` out of shared pages (so K, V: Sync) and hash
// with `&S` (so S: Sync), and writers on any thread clone, move and drop keys and values (so K,
// V: Send). Every shared mutation of the arena goes through the protocol documented on the
// crate: a generation (and a page) is written only by the writer that claimed it, while no pin
// can reach it, and is immutable once published until it is retired and no pin is left on it.
unsafe impl<
        K: Send + Sync,
        V: Send + Sync,
        const N: usize,
        const G: usize,
        const R: usize,
        const P: usize,
        S: Sync,
    > Sync for SnapMap<K, V, N, G, R, P, S>
{
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize>
    SnapMap<K, V, N, G, R, P, FxBuildHasher>
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

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S>
    SnapMap<K, V, N, G, R, P, S>
{
    const PARAMETERS_OK: () = {
        // N first: `Shape::MASK` checks it (the rest of this block divides by it). Referenced
        // here, the check runs where `new` is evaluated, so a bad `N` in a `static` is a
        // `cargo check` error (otherwise only the lookups used MASK: an error of `cargo build`).
        let _ = Shape::<N>::MASK;
        assert!(
            G >= R + 2,
            "SnapMap needs G >= R + 2 generation slots: R idle readers can pin R of them, and \
             writers need the current one and one to write into"
        );
        assert!(G < IDLE, "too many generation slots");
        assert!(
            G * Shape::<N>::PAGES <= N,
            "SnapMap keeps its generations' page indices in N words: G must be at most 16, \
             and at most N"
        );
        assert!(
            P >= 1 && (P >= MAX_WRITE_PAGES || P >= Shape::<N>::PAGES),
            "SnapMap needs P >= 4 spare pages (P >= N / 16 for N < 64): a one-key write can \
             change that many"
        );
        assert!(
            P + Shape::<N>::PAGES < 1 << 15,
            "SnapMap needs P + N / 16 < 2^15"
        );
    };

    /// An empty map hashing with `hasher`, usable in a `static` (a `const fn`).
    ///
    /// ```
    /// use snapmap_core::{SipBuildHasher, SnapMap};
    /// // A key known when the firmware is built: see `SipBuildHasher` for keys drawn at start-up.
    /// static PEERS: SnapMap<u32, u8, 64, 4, 2, 8, SipBuildHasher> =
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
            index: array![UnsafeCell::new(0); N],
            pages: Pages::new(),
            pool: Pool::new(),
            page_info: PageInfo::new(),
            cleared: Cleared::new(),
            turn: TurnWord::new(),
            sole: AtomicUsize::new(0),
            pins: [const { Line::new() }; G],
            readers: [const { ReaderSlot::new() }; R],
            stats: Counters::new(),
            notify: Notify::new(),
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
            index: array![UnsafeCell::new(0); N],
            pages: Pages::new(),
            pool: Pool::new(),
            page_info: PageInfo::new(),
            cleared: Cleared::new(),
            turn: TurnWord::new(),
            sole: AtomicUsize::new(0),
            pins: core::array::from_fn(|_| Line::new()),
            readers: core::array::from_fn(|_| ReaderSlot::new()),
            stats: Counters::new(),
            notify: Notify::new(),
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
    ///
    /// Reads `publishes` and `page_copies` through a one-off snapshot of the current generation
    /// (a counted pin, see [`snapshot`](Self::snapshot)).
    pub fn stats(&self) -> Stats {
        let generation = self.pin_counted();
        // SAFETY: pinned by the count, which we end right after.
        let body = unsafe { self.body(generation) };
        self.unpin_counted(generation);
        self.stats.read(body.version, body.page_copies)
    }

    /// Registers a reader: claims a reader slot for as long as the [`Reader`] lives.
    ///
    /// # Errors
    /// [`Error::NoReaderSlot`] if all `R` slots are claimed.
    pub fn reader(&self) -> Result<Reader<'_, K, V, N, G, R, P, S>, Error> {
        let slot = self.claim_reader_slot().ok_or(Error::NoReaderSlot)?;
        Ok(Reader::new(self, slot))
    }

    /// Pins the current generation for one read, until the snapshot drops. Takes no reader slot
    /// (the pin is counted on the generation), so it never waits and never fails, however many
    /// snapshots are held at once.
    ///
    /// Counting is a read-modify-write, which on targets without one (Cortex-M0/M0+) takes a
    /// critical section: readers there that must never take one use a [`Reader`].
    ///
    /// # Panics
    /// If `usize::MAX / 2` snapshots of one generation are held at once, which only leaking
    /// them (`mem::forget`) can do: past that the count could wrap and stop protecting a
    /// snapshot still held, so it is refused, as `Arc` refuses too many clones.
    pub fn snapshot(&self) -> Snapshot<'_, K, V, N, S> {
        let generation = self.pin_counted();
        // SAFETY: the counted pin validated `generation` as current, and the snapshot ends it.
        unsafe { self.pinned(generation, Release::Count(&self.pins[generation].word)) }
    }

    /// A snapshot of generation `generation`, which the caller has pinned with `release`.
    ///
    /// # Safety
    /// The pin validated `generation` as current and stands until `release` ends it.
    #[inline(always)]
    pub(crate) unsafe fn pinned<'m>(
        &'m self,
        generation: usize,
        release: Release<'m>,
    ) -> Snapshot<'m, K, V, N, S> {
        // SAFETY: a validated pin makes the generation published and immutable, with its
        // pages, until it ends (see `pages`).
        unsafe {
            Snapshot::new(
                &self.generations[generation].body,
                self.view_parts(generation),
                &self.hasher,
                self.page_info.occupancy(),
                release,
            )
        }
    }

    /// The body of generation slot `generation`.
    ///
    /// # Safety
    /// The caller pins or owns the slot.
    #[inline(always)]
    pub(crate) unsafe fn body(&self, generation: usize) -> Body {
        // SAFETY: pinned or owned: not written meanwhile.
        self.generations[generation]
            .body
            .with(|body| unsafe { *body })
    }

    /// Home slot 0 of the pages, and generation `generation`'s index.
    #[inline(always)]
    pub(crate) fn view_parts(
        &self,
        generation: usize,
    ) -> (*const SlotCell<K, V>, *const UnsafeCell<u16>) {
        (
            self.pages.home(),
            self.index
                .as_ptr()
                .wrapping_add(generation * Shape::<N>::PAGES),
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

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S: Default> Default
    for SnapMap<K, V, N, G, R, P, S>
{
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> fmt::Debug
    for SnapMap<K, V, N, G, R, P, S>
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
