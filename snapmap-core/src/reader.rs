//! The pin protocol: registered readers' hazard words and the [`Reader`] handle, and the
//! generations' pin counts that one-off reads and writers' bases use.

use crate::snapshot::{Release, Snapshot};
use crate::sync::{
    announce, announce_count, compare_exchange, release_count, AtomicUsize, Ordering, MAX_PINS,
};
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

/// One atomic word alone on its cache line, so that a reader never writes a line another reader
/// writes (32 bytes on bare-metal targets, where lines are at most that, if cached at all).
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
pub(crate) struct Line {
    pub(crate) word: AtomicUsize,
}

macro_rules! line_new {
    ($($const:ident)?) => {
        pub(crate) $($const)? fn new() -> Self {
            Self { word: AtomicUsize::new(0) }
        }
    };
}

impl Line {
    #[cfg(not(loom))]
    line_new!(const);
    #[cfg(loom)]
    line_new!();
}

/// A registered reader's hazard word: stored only by the slot's owner (and claimed, from
/// UNCLAIMED, by CAS); loaded by writers scanning for hazards.
#[repr(transparent)]
pub(crate) struct ReaderSlot {
    line: Line,
}

impl ReaderSlot {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self { line: Line::new() }
    }
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self { line: Line::new() }
    }

    #[inline(always)]
    pub(crate) fn hazard(&self) -> &AtomicUsize {
        &self.line.word
    }

    /// Ends a pin (`to` = IDLE) or gives the slot up (`to` = UNCLAIMED). Release: every read
    /// made under the pin happens-before a writer's reuse of the generation, since that writer's
    /// scan loads this word with Acquire.
    #[inline]
    pub(crate) fn unpin(&self, to: usize) {
        self.hazard().store(to, Ordering::Release);
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S>
    SnapMap<K, V, N, G, R, P, S>
{
    /// Claims a free reader slot for a registered [`Reader`], UNCLAIMED -> IDLE. Acquire on
    /// success orders this owner's later stores after the previous owner's final Release store.
    /// On a CAS-less target this claim (and a one-off read's count, see `pin_counted`) is where
    /// a reader takes a critical section, which is why readers on such targets register a
    /// `Reader` up front.
    pub(crate) fn claim_reader_slot(&self) -> Option<usize> {
        self.readers.iter().position(|slot| {
            // Relaxed pre-check: a claimed slot is skipped without an RMW.
            slot.hazard().load(Ordering::Relaxed) == UNCLAIMED
                && compare_exchange(slot.hazard(), UNCLAIMED, IDLE).is_ok()
        })
    }

    /// Publishes a hazard on the current generation from reader slot `slot` (owned by the
    /// caller), starting from the guess `seen`, and returns that generation's index, protected
    /// until [`ReaderSlot::unpin`]. Lock-free: it retries only if a writer published between
    /// its announcement and its validation.
    #[inline]
    pub(crate) fn pin_from(&self, slot: usize, mut seen: usize) -> usize {
        loop {
            // Release (inside `announce`), not Relaxed: a writer's Acquire scan that reads this
            // store (or any later one by this owner) must also see every read this owner made
            // under its previous pin; a Relaxed store would leave those reads unordered with the
            // writer's reuse.
            announce(self.readers[slot].hazard(), pinning(seen));
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

    /// A *counted* pin on the current generation, for a one-off read or a writer's base: adds one
    /// to that generation's pin count, then validates. Returns the generation, protected until
    /// [`unpin_counted`](Self::unpin_counted). Needs no reader slot, so it never waits for one and
    /// never fails: any number of one-off reads and writers can pin at once.
    ///
    /// The count is the hazard: the increment plays the announcement's part in the Dekker pair
    /// (a SeqCst read-modify-write, see `announce_count`), and a writer's scan loads the count
    /// after its fence. It is a read-modify-write, which on a CAS-less target takes a critical
    /// section: readers there register a [`Reader`] instead.
    ///
    /// Lock-free: it retries only if a writer published between its two loads of `current`.
    #[inline]
    pub(crate) fn pin_counted(&self) -> usize {
        // Relaxed: what this load returns is only a guess, validated below; no data is read on
        // the strength of it.
        let mut seen = self.current.load(Ordering::Relaxed);
        loop {
            if !announce_count(&self.pins[seen].word) {
                // Only leaked snapshots get here (see `MAX_PINS`): refuse, as `Arc` does, rather
                // than let the count wrap under a snapshot still held.
                panic!("snapmap: {MAX_PINS} snapshots of one generation held at once (leaked with mem::forget?)");
            }
            match self.validate(seen) {
                Ok(generation) => return generation,
                Err(now) => {
                    self.unpin_counted(seen);
                    seen = now;
                }
            }
        }
    }

    /// Ends a counted pin on `generation`. Release (inside `release_count`): every read made
    /// under the pin happens-before the reuse by a writer whose Acquire scan reads this count or
    /// a later one (every change of a count is a read-modify-write, so it extends this release
    /// sequence).
    #[inline]
    pub(crate) fn unpin_counted(&self, generation: usize) {
        release_count(&self.pins[generation].word);
    }
}

/// A registered reader: owns one reader slot of its map for as long as it lives.
///
/// Taking a snapshot through a `Reader` takes no lock and no critical section on any target, and
/// writes only this reader's own hazard word. Register readers up front (at start-up, or once per
/// task or interrupt handler) where reads must be strictly lock-free, and above all on targets
/// without compare-and-swap (Cortex-M0/M0+), where the one-off [`SnapMap::snapshot`] needs a
/// critical section to count its pin.
///
/// A snapshot's pin ends when it drops, so an idle `Reader` holds nothing: no generation slot
/// and no page. (A pin kept between reads would save the next read its announcement, a store
/// and a fence, while the map is unchanged; but it would hold every page that writes replace
/// meanwhile, so that an idle reader could stop every writer once they had used up the spare
/// pages.)
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
    const R: usize = 2,
    const P: usize = 8,
    S = crate::FxBuildHasher,
> {
    pub(crate) map: &'m SnapMap<K, V, N, G, R, P, S>,
    pub(crate) slot: usize,
    /// The version of the last snapshot `changed()` returned (see `notify`).
    pub(crate) seen: u64,
}

impl<'m, K, V, const N: usize, const G: usize, const R: usize, const P: usize, S>
    Reader<'m, K, V, N, G, R, P, S>
{
    pub(crate) fn new(map: &'m SnapMap<K, V, N, G, R, P, S>, slot: usize) -> Self {
        Self { map, slot, seen: 0 }
    }

    /// Pins the current generation until the snapshot drops. The snapshot borrows this reader,
    /// so a reader holds at most one pin at a time.
    #[inline]
    pub fn snapshot(&mut self) -> Snapshot<'_, K, V, N, S> {
        // Relaxed: only a guess, announced and validated by `pin_from`.
        let seen = self.map.current.load(Ordering::Relaxed);
        let generation = self.map.pin_from(self.slot, seen);
        let hazard = self.map.readers[self.slot].hazard();
        // SAFETY: `pin_from` validated `generation` through our hazard, which only the
        // snapshot's drop (storing IDLE) or this reader's next pin (after that drop: the snapshot
        // borrows `self`) changes.
        unsafe { self.map.pinned(generation, Release::Hazard(hazard)) }
    }

    /// Clones the value of `key` out of the current generation.
    #[inline]
    pub fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Hash + Eq + core::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
        S: core::hash::BuildHasher,
    {
        self.snapshot().get(key).cloned()
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> Drop
    for Reader<'_, K, V, N, G, R, P, S>
{
    fn drop(&mut self) {
        // Any snapshot borrowed from this reader is gone: hand the slot back, pin and all.
        self.map.readers[self.slot].unpin(UNCLAIMED);
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> core::fmt::Debug
    for Reader<'_, K, V, N, G, R, P, S>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reader").field("slot", &self.slot).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;
    use crate::sync::{Ordering, MAX_PINS};
    use crate::SnapMap;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// A count at the cap refuses the next one-off pin (and the write that would pin its base)
    /// instead of wrapping, and the refusal takes nothing: a snapshot still held keeps its
    /// generation and its pages while writes go on. The count starts near the cap, as if
    /// `MAX_PINS - 1` snapshots had been leaked, which on a 32-bit target would take an hour.
    #[test]
    fn a_pin_count_at_the_cap_refuses_instead_of_wrapping() {
        let map: SnapMap<u32, u32, 32, 4, 0, 4> = SnapMap::new();
        map.insert(1, 10).unwrap();
        let current = map.current.load(Ordering::Relaxed);
        let count = &map.pins[current].word;
        count.store(MAX_PINS - 1, Ordering::Relaxed);
        let held = map.snapshot();
        assert_eq!(count.load(Ordering::Relaxed), MAX_PINS);
        let refused = catch_unwind(AssertUnwindSafe(|| map.snapshot().len()));
        assert!(refused.is_err(), "a pin past the cap was taken");
        assert!(
            catch_unwind(AssertUnwindSafe(|| map.insert(2, 20))).is_err(),
            "a write pinned its base past the cap"
        );
        assert_eq!(
            count.load(Ordering::Relaxed),
            MAX_PINS,
            "a refusal changed the count"
        );
        // The held snapshot's generation is still pinned: writes go to other slots and pages.
        count.store(MAX_PINS - 1, Ordering::Relaxed); // one leaked pin "ends"; ours stands
        for value in 0..20 {
            map.insert(1, value).unwrap();
        }
        assert_eq!((held.len(), held.get(&1)), (1, Some(&10)));
        assert_eq!(map.get(&1), Some(19));
        drop(held);
        assert_eq!(count.load(Ordering::Relaxed), MAX_PINS - 2);
    }
}
