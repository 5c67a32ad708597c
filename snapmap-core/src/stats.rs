use crate::sync::Counter;

/// Counters of the writers' work, read with [`SnapMap::stats`](crate::SnapMap::stats).
///
/// They are statistics, not synchronization: each is exact, but a set read while writers run is
/// not a consistent cut (`publishes` and `page_copies` are one: they are read from the current
/// generation). They wrap on overflow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Generations published (successful pointer CASes): the current version.
    pub publishes: usize,
    /// Publishing CASes lost to another writer; each one rebased and re-applied its change.
    pub cas_retries: usize,
    /// Times a blocking writer found no free generation slot and waited.
    pub slot_waits: usize,
    /// Times a blocking writer found no spare page it could claim and waited (see `P` on
    /// [`SnapMap`](crate::SnapMap)).
    pub page_waits: usize,
    /// Pages copied by published writes: one per page each write changed (`page_copies /
    /// publishes` is the pages a write copies on average).
    pub page_copies: usize,
}

/// The counters of slow paths; publications and page copies are kept in the generations.
pub(crate) struct Counters {
    pub(crate) cas_retries: Counter,
    pub(crate) slot_waits: Counter,
    pub(crate) page_waits: Counter,
}

impl Counters {
    pub(crate) const fn new() -> Self {
        Self {
            cas_retries: Counter::new(),
            slot_waits: Counter::new(),
            page_waits: Counter::new(),
        }
    }

    /// The counters, with `publishes` and `page_copies` from the current generation's version
    /// and cumulative page count.
    pub(crate) fn read(&self, version: u64, page_copies: u64) -> Stats {
        Stats {
            publishes: version as usize,
            cas_retries: self.cas_retries.get(),
            slot_waits: self.slot_waits.get(),
            page_waits: self.page_waits.get(),
            page_copies: page_copies as usize,
        }
    }
}
