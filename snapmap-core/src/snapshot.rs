//! [`Snapshot`]: a pinned, immutable generation.

use crate::generation::Generation;
use crate::sync::{release_count, AtomicUsize, UnsafeCell};
use crate::table::Iter;
use crate::FxBuildHasher;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};

/// A consistent view of the map: one published generation, pinned until the snapshot is dropped.
///
/// Everything read through one snapshot (lookups, [`len`](Self::len), iteration) comes from the
/// same generation, whatever writers do meanwhile. [`version`](Self::version) identifies it:
/// versions of successively published generations strictly increase.
///
/// Hold snapshots briefly: a pinned generation cannot be reused, so writers have one slot fewer
/// while it lives. (A thread that holds snapshots of every spare generation and then writes with
/// a blocking form waits for itself, as a thread re-locking a lock would; `try_` forms return
/// [`Error::NoFreeGeneration`](crate::Error::NoFreeGeneration) instead.)
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
    generation: &'a UnsafeCell<Generation<K, V, N>>,
    hasher: &'a S,
    /// The pin count a one-off snapshot decrements on drop; `None` for a registered reader's,
    /// whose pin outlives it (see [`Reader`](crate::Reader)).
    release: Option<&'a AtomicUsize>,
}

// SAFETY: a snapshot hands out only shared references to K and V, and hashes with `&S` (so K,
// V, S: Sync suffice to send
// or share it), and its drop only changes an atomic pin count.
unsafe impl<K: Sync, V: Sync, const N: usize, S: Sync> Send for Snapshot<'_, K, V, N, S> {}
// SAFETY: as above; every method takes `&self` and only reads the immutable generation.
unsafe impl<K: Sync, V: Sync, const N: usize, S: Sync> Sync for Snapshot<'_, K, V, N, S> {}

impl<'a, K, V, const N: usize, S> Snapshot<'a, K, V, N, S> {
    /// `generation` must be pinned by a validated hazard that stands until the snapshot drops:
    /// a count in `release`, or a registered reader's hazard that the snapshot borrows.
    pub(crate) fn new(
        generation: &'a UnsafeCell<Generation<K, V, N>>,
        hasher: &'a S,
        release: Option<&'a AtomicUsize>,
    ) -> Self {
        Self {
            generation,
            hasher,
            release,
        }
    }

    #[inline]
    fn generation(&self) -> &Generation<K, V, N> {
        self.generation.with(|generation| {
            // A pin validated this slot as `current` (its load synchronized with the publishing
            // CAS), and the hazard announced then still stands (a one-off's until drop; a
            // registered reader's, which we borrow, until its next pin).
            // SAFETY: so the generation is published and immutable for the lifetime of `&self`,
            // within the snapshot's.
            unsafe { &*generation }
        })
    }

    /// The generation's version: strictly greater in every later-published generation.
    pub fn version(&self) -> u64 {
        self.generation().version
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.generation().table.len()
    }

    /// Whether the snapshot holds no entry.
    pub fn is_empty(&self) -> bool {
        self.generation().table.len() == 0
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
        self.generation().table.longest_probe()
    }

    /// The entries, in an unspecified order; all from this snapshot's generation.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.generation().table.iter()
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
        self.generation().table.get(self.hasher, key)
    }

    /// Whether `key` is present in this snapshot.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.generation().table.get(self.hasher, key).is_some()
    }
}

impl<K, V, const N: usize, S> Drop for Snapshot<'_, K, V, N, S> {
    // Inlined, and the decrement kept out of line: a registered reader's snapshot (`release`
    // known `None` where it is built) then drops to nothing. With the decrement inline (a
    // critical section on thumbv6m), `drop_in_place` stayed a call in every `Reader::get`:
    // 35 of its 171 cycles on the RP2040 (`cargo xtask bench-rp2040`).
    #[inline]
    fn drop(&mut self) {
        if let Some(count) = self.release {
            release_one_off(count);
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
