//! Naming a map's type once: [`ReaderOf`], [`SnapshotOf`], [`TxnOf`] and [`WriterOf`] derive the
//! types of a map's reader, snapshot, transaction and writer from the map's own type, so that its parameters are
//! written in one place.
//!
//! ```
//! use snapmap_core::{Error, ReaderOf, SnapMap, SnapshotOf, TxnOf};
//!
//! // The one place the parameters are written: 64 entries, 6 generations, 3 reader slots,
//! // 16 spare pages.
//! type Table = SnapMap<u32, u32, 64, 6, 3, 16>;
//! static TABLE: Table = SnapMap::new();
//!
//! fn total(snapshot: &SnapshotOf<'_, Table>) -> u32 {
//!     snapshot.iter().map(|(_, v)| v).sum()
//! }
//! fn stamp(tx: &mut TxnOf<'_, Table>, value: u32) -> Result<(), Error> {
//!     tx.insert(0, value)?;
//!     tx.insert(1, value)?;
//!     Ok(())
//! }
//! struct Task {
//!     reader: ReaderOf<'static, Table>,
//! }
//!
//! TABLE.update(|tx| stamp(tx, 5)).unwrap();
//! let mut task = Task { reader: TABLE.reader().unwrap() };
//! assert_eq!(total(&task.reader.snapshot()), 10);
//! ```
//!
//! Writing `Reader<'static, u32, u32, 64>` instead would fill in the default `G`, `R` and `P`
//! (4, 2 and 8), and fail to match a map with others with an error about a mismatched number.

use crate::{Reader, SnapMap, Snapshot, Txn, Writer};

/// The types that belong to a map type: implemented for every [`SnapMap`]; use it through
/// [`ReaderOf`], [`SnapshotOf`] and [`TxnOf`].
pub trait MapTypes {
    /// The map's registered reader, [`Reader`].
    type Reader<'m>
    where
        Self: 'm;
    /// A snapshot of the map, [`Snapshot`].
    type Snapshot<'m>
    where
        Self: 'm;
    /// A transaction on the map, [`Txn`].
    type Txn<'t>
    where
        Self: 't;
    /// The map's sole writer, [`Writer`].
    type Writer<'m>
    where
        Self: 'm;
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> MapTypes
    for SnapMap<K, V, N, G, R, P, S>
{
    type Reader<'m>
        = Reader<'m, K, V, N, G, R, P, S>
    where
        Self: 'm;
    type Snapshot<'m>
        = Snapshot<'m, K, V, N, S>
    where
        Self: 'm;
    type Txn<'t>
        = Txn<'t, K, V, N, S>
    where
        Self: 't;
    type Writer<'m>
        = Writer<'m, K, V, N, G, R, P, S>
    where
        Self: 'm;
}

/// The [`Reader`] type of map type `M`, borrowing the map for `'m`.
pub type ReaderOf<'m, M> = <M as MapTypes>::Reader<'m>;
/// The [`Snapshot`] type of map type `M`.
pub type SnapshotOf<'m, M> = <M as MapTypes>::Snapshot<'m>;
/// The [`Txn`] type of map type `M` (the argument of an `update` closure).
pub type TxnOf<'t, M> = <M as MapTypes>::Txn<'t>;
/// The [`Writer`] type of map type `M`, borrowing the map for `'m`.
pub type WriterOf<'m, M> = <M as MapTypes>::Writer<'m>;
