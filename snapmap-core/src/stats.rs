use crate::sync::Counter;

/// Counters of the writers' work, read with [`SnapMap::stats`](crate::SnapMap::stats).
///
/// They are statistics, not synchronization: each is exact, but a set read while writers run is
/// not a consistent cut. They wrap on overflow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Generations published (successful pointer CASes).
    pub publishes: usize,
    /// Publishing CASes lost to another writer; each one rebased and re-applied its change.
    pub cas_retries: usize,
    /// Times a blocking writer found no free generation slot and waited.
    pub slot_waits: usize,
    /// Writes that copied the whole table, because the slot they claimed held a version older
    /// than the change logs reach (see `L` on [`SnapMap`](crate::SnapMap)); every other write
    /// copied only the slots written since.
    pub full_copies: usize,
}

pub(crate) struct Counters {
    pub(crate) publishes: Counter,
    pub(crate) cas_retries: Counter,
    pub(crate) slot_waits: Counter,
    pub(crate) full_copies: Counter,
}

impl Counters {
    pub(crate) const fn new() -> Self {
        Self {
            publishes: Counter::new(),
            cas_retries: Counter::new(),
            slot_waits: Counter::new(),
            full_copies: Counter::new(),
        }
    }

    pub(crate) fn read(&self) -> Stats {
        Stats {
            publishes: self.publishes.get(),
            cas_retries: self.cas_retries.get(),
            slot_waits: self.slot_waits.get(),
            full_copies: self.full_copies.get(),
        }
    }
}
