//! [`Snapshot`]: a pinned, immutable generation.

use crate::generation::Generation;
use crate::reader::{ReaderSlot, UNCLAIMED};
use crate::sync::UnsafeCell;
use crate::table::Iter;
use core::borrow::Borrow;
use core::fmt;
use core::hash::Hash;

/// A consistent view of the map: one published generation, pinned until the snapshot is dropped.
///
/// Everything read through one snapshot (lookups, [`len`](Self::len), iteration) comes from the
/// same generation, whatever writers do meanwhile. [`version`](Self::version) identifies it:
/// versions of successively published generations strictly increase.
///
/// Hold snapshots briefly: a pinned generation cannot be reused, so writers have one slot fewer
/// while it lives.
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
pub struct Snapshot<'a, K, V, const N: usize> {
    generation: &'a UnsafeCell<Generation<K, V, N>>,
    /// The reader slot a one-off snapshot gives back on drop; `None` for a registered reader's,
    /// whose pin outlives it (see [`Reader`](crate::Reader)).
    release: Option<&'a ReaderSlot>,
}

// SAFETY: a snapshot hands out only shared references to K and V (so K, V: Sync suffice to send
// or share it), and its drop only stores to an atomic hazard word.
unsafe impl<K: Sync, V: Sync, const N: usize> Send for Snapshot<'_, K, V, N> {}
// SAFETY: as above; every method takes `&self` and only reads the immutable generation.
unsafe impl<K: Sync, V: Sync, const N: usize> Sync for Snapshot<'_, K, V, N> {}

impl<'a, K, V, const N: usize> Snapshot<'a, K, V, N> {
    /// `generation` must be pinned by a validated hazard that stands until the snapshot drops:
    /// `release`'s, or a registered reader's that the snapshot borrows.
    pub(crate) fn new(
        generation: &'a UnsafeCell<Generation<K, V, N>>,
        release: Option<&'a ReaderSlot>,
    ) -> Self {
        Self {
            generation,
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

    /// The entries, in an unspecified order; all from this snapshot's generation.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.generation().table.iter()
    }
}

impl<K: Hash + Eq, V, const N: usize> Snapshot<'_, K, V, N> {
    /// The value of `key` in this snapshot.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.generation().table.get(key)
    }

    /// Whether `key` is present in this snapshot.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.generation().table.get(key).is_some()
    }
}

impl<K, V, const N: usize> Drop for Snapshot<'_, K, V, N> {
    fn drop(&mut self) {
        if let Some(reader) = self.release {
            reader.unpin(UNCLAIMED);
        }
    }
}

impl<'s, K, V, const N: usize> IntoIterator for &'s Snapshot<'_, K, V, N> {
    type Item = (&'s K, &'s V);
    type IntoIter = Iter<'s, K, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K: fmt::Debug, V: fmt::Debug, const N: usize> fmt::Debug for Snapshot<'_, K, V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version())
            .field("entries", &DebugEntries(self))
            .finish()
    }
}

struct DebugEntries<'a, 'b, K, V, const N: usize>(&'a Snapshot<'b, K, V, N>);

impl<K: fmt::Debug, V: fmt::Debug, const N: usize> fmt::Debug for DebugEntries<'_, '_, K, V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}
