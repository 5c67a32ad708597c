//! [`Txn`]: the private copy a writer changes before publishing it.

use crate::table::{Iter, TableMut};
use crate::{Error, FxBuildHasher};
use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};

/// A writer's private copy of the current generation, handed to the closure of
/// [`SnapMap::update`](crate::SnapMap::update).
///
/// Nothing done here is visible to anyone until the closure returns `Ok`; then every change is
/// published at once as one generation, or none is (an `Err`, or a panic, discards them all).
/// If another writer publishes first, the closure runs again on a fresh copy of the new current
/// generation, so it must be re-runnable (`FnMut`) and should have no side effects beyond `self`.
///
/// A change copies the pages it touches into spare pages (see [`SnapMap`](crate::SnapMap)'s
/// `P`). If none can be claimed, the transaction is *out of pages*: that change and every later
/// one returns [`Error::NoFreePage`] (let `?` carry it out), and whatever the closure returns,
/// the write publishes nothing and returns `NoFreePage` (a `try_` form, or a change that needs
/// more than `P` pages) or waits for pages and runs the closure again (a blocking one). The
/// copy stays a consistent table throughout: its lookups and its iteration agree.
pub struct Txn<'a, K, V, const N: usize, S = FxBuildHasher> {
    pub(crate) table: TableMut<'a, K, V, N>,
    hasher: &'a S,
}

impl<'a, K, V, const N: usize, S> Txn<'a, K, V, N, S> {
    pub(crate) fn new(table: TableMut<'a, K, V, N>, hasher: &'a S) -> Self {
        Self { table, hasher }
    }

    /// Number of entries in the copy.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the copy holds no entry.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// The entries of the copy, in an unspecified order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.table.view().iter()
    }
}

impl<K: core::fmt::Debug, V: core::fmt::Debug, const N: usize, S> core::fmt::Debug
    for Txn<'_, K, V, N, S>
{
    /// The copy's entries, with this transaction's changes so far.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Txn")
            .field("len", &self.len())
            .field("entries", &self.iter())
            .finish()
    }
}

impl<K: Hash + Eq + Clone, V: Clone, const N: usize, S: BuildHasher> Txn<'_, K, V, N, S> {
    /// Removes every entry. In a map of more than 16 slots it needs no spare page: the pages
    /// that hold entries are replaced by one shared empty page.
    ///
    /// # Errors
    /// [`Error::NoFreePage`] if the transaction is out of pages (the copy is unchanged): in a
    /// map of one page (16 slots or fewer), as for any change, and in a larger one if another
    /// writer in flight is changing the same pages; a blocking write waits and runs the closure
    /// again.
    pub fn clear(&mut self) -> Result<(), Error> {
        self.table.clear()
    }

    /// The value of `key` in the copy, including this transaction's own changes.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.view().get(self.hasher, key)
    }

    /// Whether `key` is present in the copy.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.view().get(self.hasher, key).is_some()
    }

    /// Mutable access to the value of `key`; counts as a change if the key is present.
    ///
    /// # Errors
    /// [`Error::NoFreePage`] if the transaction is out of pages.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Result<Option<&mut V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.get_mut(self.hasher, key)
    }

    /// Inserts or replaces `key`, returning the value it replaced.
    ///
    /// # Errors
    /// [`Error::Full`] if `key` is new and the copy already holds `N` entries;
    /// [`Error::NoFreePage`] if the transaction is out of pages. The copy is unchanged and `key`
    /// and `value` are dropped.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, Error> {
        match self.table.insert_at(self.hasher, key, value) {
            Ok(placed) => Ok(placed.replaced.map(|(old, key)| {
                drop(key); // while `old` is a local: a panicking drop unwinds through it
                old
            })),
            Err((error, key, value)) => {
                drop((key, value));
                Err(error)
            }
        }
    }

    /// Removes `key`, returning its value.
    ///
    /// # Errors
    /// [`Error::NoFreePage`] if the transaction is out of pages (the copy is unchanged).
    pub fn remove<Q>(&mut self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.remove(self.hasher, key)
    }

    /// Keeps only the entries for which `keep` returns `true`.
    ///
    /// # Errors
    /// [`Error::NoFreePage`] if the transaction runs out of pages; the entries removed up to
    /// there stay removed in the copy (which is discarded unless the closure goes on without
    /// `?`, and then publishes nothing: see above).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) -> Result<(), Error> {
        self.table.retain(&mut keep)
    }
}
