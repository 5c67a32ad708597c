use core::fmt;

/// Why an operation on a [`SnapMap`](crate::SnapMap) did not happen.
///
/// Every error leaves the map exactly as it was: nothing is published, every published snapshot
/// is intact, and the keys and values the call was given are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The change needs room for a new key, and the map already holds `N` entries, or (`N > 64`)
    /// the key's run of occupied slots would grow past 48, the bound that keeps a one-key write
    /// within 4 pages (see "The table" in the [crate docs](crate#the-table)).
    Full,
    /// Every generation slot is pinned by a reader or being written by another writer
    /// (only from `try_` forms; blocking forms wait instead).
    NoFreeGeneration,
    /// No spare page could be claimed: the pages writes replaced are still held by snapshots
    /// older than those writes, or other writers hold them (only from `try_` forms; blocking
    /// forms wait instead), or the change needs more pages than the map has spare (`P`, from
    /// every form: such a change can never be made; see [`SnapMap`](crate::SnapMap)).
    NoFreePage,
    /// Another write has the map's turn: it lost several races in a row to other writers, and
    /// the others let it land before they start again (only from `try_` forms; blocking forms
    /// wait, briefly: see "Progress" in the [crate docs](crate#the-model)).
    Contended,
    /// All `R` reader slots are owned by registered readers (only from
    /// [`SnapMap::reader`](crate::SnapMap::reader); one-off reads and writers need no slot).
    NoReaderSlot,
    /// A transaction closure asked for its changes to be discarded.
    Aborted,
    /// A write to the map from inside a write to the same map on the same thread: from an
    /// [`update`](crate::SnapMap::update) closure, or a `Hash`, `Eq`, `Clone` or predicate that
    /// a write runs. The inner write would make the outer one lose its race and run again, for
    /// ever; the inner write is refused instead, and the outer one goes on. Detected only with
    /// the `std` feature (it needs a thread-local): without it such a write livelocks, so never
    /// write to a map from code that one of its own writes runs.
    Reentrant,
    /// The map has a sole writer: a [`Writer`](crate::Writer) holds the right to write, so writes
    /// through the map itself ([`SnapMap::insert`](crate::SnapMap::insert) and the others) are
    /// refused until it drops, as is a second [`SnapMap::writer`](crate::SnapMap::writer).
    /// Write through the `Writer`.
    WriterHeld,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Full => "snapmap is full: no room for a new key",
            Error::NoFreeGeneration => "no free generation slot: all are pinned or being written",
            Error::NoFreePage => {
                "no free page: snapshots or other writers hold the spare pages, or the change \
                 needs more than there are"
            }
            Error::Contended => "another write has the turn: it lost several races in a row",
            Error::NoReaderSlot => "no free reader slot",
            Error::Aborted => "transaction aborted",
            Error::Reentrant => "write to a snapmap from inside a write to the same map",
            Error::WriterHeld => "a Writer holds this snapmap's right to write: write through it",
        })
    }
}

impl core::error::Error for Error {}
