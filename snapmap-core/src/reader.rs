//! Reader slots (hazard words), the pin protocol, and the registered [`Reader`] handle.

use crate::snapshot::Snapshot;
use crate::sync::{announce, claim_and_announce, compare_exchange, AtomicUsize, Ordering};
use crate::SnapMap;
use core::hash::Hash;

/// Hazard value of a slot nobody has claimed (zero, so a new map is all zeros).
pub(crate) const UNCLAIMED: usize = 0;
/// Hazard value of a claimed slot that pins nothing.
pub(crate) const IDLE: usize = usize::MAX;

/// Hazard value of a claimed slot that pins generation slot `index`.
#[inline(always)]
pub(crate) const fn pinning(index: usize) -> usize {
    index + 1
}

/// Who claims a reader slot. Readers search from the first slot and writers (for their base pins)
/// from the last, so the two rarely contend for the same slot's cache line.
#[derive(Clone, Copy)]
pub(crate) enum Side {
    Reader,
    Writer,
}

/// One reader's hazard word, alone on its cache line so that readers never write a line another
/// reader writes (32 bytes on bare-metal targets, where lines are at most that, if cached at all).
#[cfg_attr(
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "powerpc64"
    ),
    repr(align(128))
)]
#[cfg_attr(
    all(
        not(any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "powerpc64"
        )),
        target_os = "none"
    ),
    repr(align(32))
)]
#[cfg_attr(
    all(
        not(any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "powerpc64"
        )),
        not(target_os = "none")
    ),
    repr(align(64))
)]
pub(crate) struct ReaderSlot {
    /// Stored only by the slot's owner (and claimed, from UNCLAIMED, by CAS); loaded by writers
    /// scanning for hazards.
    pub(crate) hazard: AtomicUsize,
}

macro_rules! reader_slot_new {
    ($($const:ident)?) => {
        pub(crate) $($const)? fn new() -> Self {
            Self { hazard: AtomicUsize::new(UNCLAIMED) }
        }
    };
}

impl ReaderSlot {
    #[cfg(not(loom))]
    reader_slot_new!(const);
    #[cfg(loom)]
    reader_slot_new!();

    /// Ends a pin (`to` = IDLE) or gives the slot up (`to` = UNCLAIMED). Release: every read
    /// made under the pin happens-before a writer's reuse of the generation, since that writer's
    /// scan loads this word with Acquire.
    #[inline]
    pub(crate) fn unpin(&self, to: usize) {
        self.hazard.store(to, Ordering::Release);
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize>
    SnapMap<K, V, N, G, R, L>
{
    /// Claims a free reader slot for a registered [`Reader`], UNCLAIMED -> IDLE. Acquire on
    /// success orders this owner's later stores after the previous owner's final Release store.
    /// On a CAS-less target a claim (this one, or a one-off read's in `claim_and_pin`) is the one
    /// place a reader takes a critical section, which is why readers on such targets register a
    /// `Reader` up front.
    pub(crate) fn claim_reader_slot(&self) -> Option<usize> {
        self.readers.iter().position(|slot| {
            // Relaxed pre-check: a claimed slot is skipped without an RMW.
            slot.hazard.load(Ordering::Relaxed) == UNCLAIMED
                && compare_exchange(&slot.hazard, UNCLAIMED, IDLE).is_ok()
        })
    }

    /// Publishes a hazard on the current generation from reader slot `slot` (owned by the
    /// caller) and returns that generation's index, protected until [`ReaderSlot::unpin`].
    ///
    /// Lock-free: it retries only if a writer published between its two loads of `current`.
    #[inline]
    pub(crate) fn pin(&self, slot: usize) -> usize {
        // Relaxed: what this load returns is only a guess, validated below; no data is read on
        // the strength of it.
        self.pin_from(slot, self.current.load(Ordering::Relaxed))
    }

    /// A registered reader's pin: its hazard still announces `pinned`, the generation of its
    /// last read, if any (a *sticky* pin). While that is current there is nothing to announce:
    /// the hazard has kept it from reuse since its pin validated, so it is the same published
    /// generation, and that validation ordered this reader after its publication.
    #[inline]
    pub(crate) fn repin(&self, slot: usize, pinned: Option<usize>) -> usize {
        // Relaxed: only compared with `pinned`. Coherence still makes it no older than any
        // value of `current` this thread has written or synchronized with, so a reader sees its
        // own thread's writes and whatever happened-before them.
        let now = self.current.load(Ordering::Relaxed);
        if Some(now) == pinned {
            return now;
        }
        self.pin_from(slot, now)
    }

    /// [`pin`](Self::pin), starting from the guess `seen`.
    #[inline]
    fn pin_from(&self, slot: usize, mut seen: usize) -> usize {
        loop {
            // Release (inside `announce`), not Relaxed: a writer's Acquire scan that reads this
            // store (or any later one by this owner) must also see every read this owner made
            // under its previous pin; a Relaxed store would leave those reads unordered with the
            // writer's reuse.
            announce(&self.readers[slot].hazard, pinning(seen));
            match self.validate(seen) {
                Ok(generation) => return generation,
                Err(now) => seen = now,
            }
        }
    }

    /// Checks that `current` still is `seen`, after the caller announced a hazard on it.
    ///
    /// The reader half of the Dekker pair with the writer's fence in `try_claim_slot`: in the
    /// single total order of SeqCst operations, either the writer's fence comes after the
    /// announcement and its scan sees the hazard, or it came before and this load sees `current`
    /// moved off a slot before that slot could be claimed (so validation fails). SeqCst for that
    /// order, and Acquire within it: synchronizes with the CAS that published what the caller
    /// is about to read.
    #[inline(always)]
    fn validate(&self, seen: usize) -> Result<usize, usize> {
        let now = self.current.load(Ordering::SeqCst);
        if now == seen {
            Ok(seen)
        } else {
            Err(now)
        }
    }

    /// Claims a free reader slot and pins the current generation through it (a one-off read, or
    /// a writer's base): the claim is the announcement, one RMW for both. Returns the slot and
    /// the generation. Acquire semantics on the claim, as in `claim_reader_slot`.
    ///
    /// Claiming is a compare-and-swap, which on a CAS-less target takes a critical section: why
    /// readers there register a [`Reader`] instead.
    #[inline]
    pub(crate) fn claim_and_pin(&self, side: Side) -> Option<(usize, usize)> {
        // Relaxed: a guess, as in `pin`.
        let seen = self.current.load(Ordering::Relaxed);
        let claim = |reader: &ReaderSlot| {
            // Relaxed pre-check: a claimed slot is skipped without an RMW.
            reader.hazard.load(Ordering::Relaxed) == UNCLAIMED
                && claim_and_announce(&reader.hazard, UNCLAIMED, pinning(seen))
        };
        let slot = match side {
            Side::Reader => self.readers.iter().position(claim),
            Side::Writer => self.readers.iter().rposition(claim),
        }?;
        let generation = match self.validate(seen) {
            Ok(generation) => generation,
            // A publication raced the claim: the slot is ours now, pin through it.
            Err(_) => self.pin(slot),
        };
        Some((slot, generation))
    }
}

/// A registered reader: owns one reader slot of its map for as long as it lives.
///
/// Taking a snapshot through a `Reader` takes no lock and no critical section on any target, and
/// writes only this reader's own hazard word. Register readers up front (at start-up, or once per
/// task or interrupt handler) where reads must be strictly lock-free, and above all on targets
/// without compare-and-swap (Cortex-M0/M0+), where the one-off [`SnapMap::snapshot`] needs a
/// critical section to claim a slot.
///
/// A `Reader` keeps the generation it read last pinned until it reads again: if no writer has
/// published since, the next read announces nothing and costs one load of `current` besides
/// the lookup; after a publication it pins the new generation. So an idle `Reader` keeps one
/// generation slot from reuse, which the budget `G >= R + W + 1` already counts (one per reader
/// slot). With a smaller `G`, [`unpin`](Self::unpin) a `Reader` that will be idle for long, or
/// writers may have to wait for it.
///
/// ```
/// use snapmap_core::SnapMap;
///
/// static MAP: SnapMap<u8, u32, 8> = SnapMap::new();
///
/// let mut reader = MAP.reader().expect("a free reader slot");
/// MAP.insert(1, 10).unwrap();
/// assert_eq!(reader.get(&1), Some(10));
/// let snap = reader.snapshot();
/// assert_eq!(snap.len(), 1);
/// ```
pub struct Reader<
    'm,
    K,
    V,
    const N: usize,
    const G: usize = 4,
    const R: usize = 4,
    const L: usize = 32,
> {
    map: &'m SnapMap<K, V, N, G, R, L>,
    slot: usize,
    /// The generation this reader's hazard pins, kept between reads.
    pinned: Option<usize>,
}

impl<'m, K, V, const N: usize, const G: usize, const R: usize, const L: usize>
    Reader<'m, K, V, N, G, R, L>
{
    pub(crate) fn new(map: &'m SnapMap<K, V, N, G, R, L>, slot: usize) -> Self {
        Self {
            map,
            slot,
            pinned: None,
        }
    }

    /// Pins the current generation (or finds it still pinned). The snapshot borrows this
    /// reader, so a reader holds at most one pin at a time.
    #[inline]
    pub fn snapshot(&mut self) -> Snapshot<'_, K, V, N> {
        // The `no_sticky_pin` mutant (loom runs only) ends the pin with the previous snapshot
        // yet still trusts it, to show that the models catch a read of a reused generation.
        #[cfg(snapmap_mutant = "no_sticky_pin")]
        if self.pinned.is_some() {
            self.map.readers[self.slot].unpin(IDLE);
        }
        let generation = self.map.repin(self.slot, self.pinned);
        self.pinned = Some(generation);
        Snapshot::new(&self.map.generations[generation].generation, None)
    }

    /// Stops pinning the generation this reader read last, so that writers may reuse its slot
    /// while the reader is idle. The next read pins again.
    pub fn unpin(&mut self) {
        if self.pinned.take().is_some() {
            self.map.readers[self.slot].unpin(IDLE);
        }
    }

    /// Clones the value of `key` out of the current generation.
    #[inline]
    pub fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Hash + Eq + core::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.snapshot().get(key).cloned()
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize> Drop
    for Reader<'_, K, V, N, G, R, L>
{
    fn drop(&mut self) {
        // Any snapshot borrowed from this reader is gone: hand the slot back, pin and all.
        self.map.readers[self.slot].unpin(UNCLAIMED);
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const L: usize> core::fmt::Debug
    for Reader<'_, K, V, N, G, R, L>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reader").field("slot", &self.slot).finish()
    }
}
