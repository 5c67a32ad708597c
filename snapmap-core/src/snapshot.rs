//! [`Snapshot`]: a pinned, immutable generation.

use crate::generation::Body;
use crate::pages::Occupancy;
use crate::sync::{release_count, AtomicUsize, Ordering, UnsafeCell};
use crate::table::{Iter, SlotCell, View};
use crate::FxBuildHasher;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};

/// How a snapshot's pin ends when it drops.
pub(crate) enum Release<'a> {
    /// A one-off read's counted pin: decrement the count.
    Count(&'a AtomicUsize),
    /// A registered reader's hazard (which the snapshot borrows): store IDLE in it.
    Hazard(&'a AtomicUsize),
    /// The sole writer's view of its own current generation: nothing to end (the snapshot
    /// borrows the [`Writer`](crate::Writer), which alone could replace it).
    Writer,
}

/// A consistent view of the map: one published generation, pinned until the snapshot is dropped.
///
/// Everything read through one snapshot (lookups, [`len`](Self::len), iteration) comes from the
/// same generation, whatever writers do meanwhile. [`version`](Self::version) identifies it:
/// versions of successively published generations strictly increase.
///
/// Hold snapshots briefly: a pinned generation cannot be reused, so writers have one slot fewer
/// while it lives, and the pages that writes replace while it lives cannot be reused either (see
/// [`SnapMap`](crate::SnapMap)'s `P`). (A thread that holds snapshots of every spare generation,
/// or across more writes than there are spare pages, and then writes with a blocking form waits
/// for itself, as a thread re-locking a lock would; `try_` forms return
/// [`Error::NoFreeGeneration`](crate::Error::NoFreeGeneration) or
/// [`Error::NoFreePage`](crate::Error::NoFreePage) instead.)
///
/// ```
/// use snapmap_core::SnapMap;
///
/// let map: SnapMap<u32, &str, 8> = SnapMap::new();
/// map.insert(1, "one").unwrap();
/// let before = map.snapshot();
/// map.insert(2, "two").unwrap();
/// // `before` still sees the generation it pinned.
/// assert_eq!(before.len(), 1);
/// assert_eq!(before.get(&2), None);
/// assert!(map.snapshot().version() > before.version());
/// ```
pub struct Snapshot<'a, K, V, const N: usize, S = FxBuildHasher> {
    body: &'a UnsafeCell<Body>,
    home: *const SlotCell<K, V>,
    index: *const UnsafeCell<u16>,
    hasher: &'a S,
    /// The map's pages' occupancies, for iteration.
    occupancy: Occupancy,
    release: Release<'a>,
}

// SAFETY: a snapshot hands out only shared references to K and V, and hashes with `&S` (so K,
// V, S: Sync suffice to send or share it), and its drop only stores or changes an atomic word.
unsafe impl<K: Sync, V: Sync, const N: usize, S: Sync> Send for Snapshot<'_, K, V, N, S> {}
// SAFETY: as above; every method takes `&self` and only reads the immutable generation.
unsafe impl<K: Sync, V: Sync, const N: usize, S: Sync> Sync for Snapshot<'_, K, V, N, S> {}

impl<'a, K, V, const N: usize, S> Snapshot<'a, K, V, N, S> {
    /// # Safety
    /// The generation whose body and index these are (with its pages, from `home`) is pinned by
    /// a validated pin that stands until `release` ends it, when the snapshot drops.
    #[inline(always)]
    pub(crate) unsafe fn new(
        body: &'a UnsafeCell<Body>,
        (home, index): (*const SlotCell<K, V>, *const UnsafeCell<u16>),
        hasher: &'a S,
        occupancy: Occupancy,
        release: Release<'a>,
    ) -> Self {
        Self {
            body,
            home,
            index,
            hasher,
            occupancy,
            release,
        }
    }

    #[inline(always)]
    fn body(&self) -> Body {
        // A pin validated this generation as current (its load synchronized with the publishing
        // CAS), and it stands until the snapshot drops.
        // SAFETY: so the body is published and immutable for the lifetime of `&self`.
        self.body.with(|body| unsafe { *body })
    }

    #[inline(always)]
    pub(crate) fn view(&self) -> View<'_, K, V, N> {
        // SAFETY: pinned as above, with every page its index names and their occupancies,
        // written before the publication (see `pages`).
        unsafe { View::new(self.home, self.index, self.body().len, self.occupancy) }
    }

    /// The generation's version: strictly greater in every later-published generation.
    pub fn version(&self) -> u64 {
        self.body().version
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.body().len
    }

    /// Whether the snapshot holds no entry.
    pub fn is_empty(&self) -> bool {
        self.body().len == 0
    }

    /// The most entries the map can hold (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The most table slots a lookup of a present key reads in this generation: one more than
    /// the farthest any entry sits from its home slot (0 if empty). A few with a good hash at
    /// up to three-quarters load; in the hundreds when keys were chosen to collide (see
    /// [`SipBuildHasher`](crate::SipBuildHasher)). Scans the whole table: a health check, not a
    /// hot-path call.
    pub fn longest_probe(&self) -> usize {
        self.view().longest_probe()
    }

    /// The entries, in an unspecified order; all from this snapshot's generation.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.view().iter()
    }
}

impl<K: Hash + Eq, V, const N: usize, S: BuildHasher> Snapshot<'_, K, V, N, S> {
    /// The value of `key` in this snapshot.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.view().get(self.hasher, key)
    }

    /// Whether `key` is present in this snapshot.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.view().get(self.hasher, key).is_some()
    }
}

impl<K, V, const N: usize, S> Drop for Snapshot<'_, K, V, N, S> {
    // Inlined, and the decrement kept out of line: a registered reader's snapshot then drops
    // to one store. With the decrement inline (a critical section on thumbv6m), `drop_in_place`
    // stayed a call in every `Reader::get`: 35 of its 171 cycles on the RP2040.
    #[inline]
    fn drop(&mut self) {
        match self.release {
            Release::Count(count) => release_one_off(count),
            // Release: every read made under the pin happens-before a writer's reuse of the
            // generation and its pages, since that writer's scan loads this word with Acquire.
            Release::Hazard(hazard) => hazard.store(crate::reader::IDLE, Ordering::Release),
            Release::Writer => {}
        }
    }
}

/// Ends a one-off snapshot's counted pin. Release (inside `release_count`): see
/// `SnapMap::unpin_counted`.
#[inline(never)]
fn release_one_off(count: &AtomicUsize) {
    release_count(count);
}

impl<'s, K, V, const N: usize, S> IntoIterator for &'s Snapshot<'_, K, V, N, S> {
    type Item = (&'s K, &'s V);
    type IntoIter = Iter<'s, K, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K: fmt::Debug, V: fmt::Debug, const N: usize, S> fmt::Debug for Snapshot<'_, K, V, N, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version())
            .field("entries", &DebugEntries(self))
            .finish()
    }
}

struct DebugEntries<'a, 'b, K, V, const N: usize, S>(&'a Snapshot<'b, K, V, N, S>);

impl<K: fmt::Debug, V: fmt::Debug, const N: usize, S> fmt::Debug
    for DebugEntries<'_, '_, K, V, N, S>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}
