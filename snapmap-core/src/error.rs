use core::fmt;

/// Why an operation on a [`SnapMap`](crate::SnapMap) did not happen.
///
/// Every error leaves the map exactly as it was: nothing is published, every published snapshot
/// is intact, and the keys and values the call was given are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The map already holds `N` entries and the change needs room for a new key.
    Full,
    /// Every generation slot is pinned by a reader or being written by another writer
    /// (only from `try_` forms; blocking forms wait instead).
    NoFreeGeneration,
    /// Every reader slot is claimed, so no snapshot (or a writer's base pin) can be taken
    /// (only from `try_` forms and [`SnapMap::reader`](crate::SnapMap::reader)).
    NoReaderSlot,
    /// A transaction closure asked for its changes to be discarded.
    Aborted,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Full => "snapmap is full: no room for a new key",
            Error::NoFreeGeneration => "no free generation slot: all are pinned or being written",
            Error::NoReaderSlot => "no free reader slot",
            Error::Aborted => "transaction aborted",
        })
    }
}

impl core::error::Error for Error {}
