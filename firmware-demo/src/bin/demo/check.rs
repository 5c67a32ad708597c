//! The invariants every snapshot of the table must satisfy.

use crate::table::{Entry, CHANNELS, GAIN_TOTAL};
use snapmap_core::Snapshot;

/// A snapshot of the table.
pub type TableSnapshot<'a> = Snapshot<'a, u8, Entry, { CHANNELS as usize }>;

/// What a snapshot got wrong (the first thing found).
#[derive(Clone, Copy, PartialEq, Eq, defmt::Format)]
#[repr(u8)]
pub enum Violation {
    /// Not exactly the channels 0..CHANNELS.
    WrongChannels = 1,
    /// An entry's checksum does not match: a torn or misfiled entry.
    TornEntry = 2,
    /// Channels stamped by different recalibrations: half a batch.
    MixedEpochs = 3,
    /// The gains do not add up to GAIN_TOTAL: half a transfer.
    GainNotConserved = 4,
    /// A lookup disagreed with the iteration of the same snapshot.
    LookupMismatch = 5,
    /// This reader saw an older generation after a newer one.
    VersionWentBack = 6,
    /// The same version with other contents, or a newer epoch under an older version.
    EpochOutOfStep = 7,
    /// A reader could not be registered (too few reader slots).
    NoReaderSlot = 8,
    /// A write returned an error.
    WriteFailed = 9,
    /// Core 0's end-of-run checks failed (see its log).
    FinalState = 10,
    /// The timer interrupt could not be programmed.
    Setup = 11,
}

impl Violation {
    /// Its code, for a counter word.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// What one reader saw last: versions and epochs must never go back.
#[derive(Clone, Copy, Default)]
pub struct Seen {
    version: u64,
    epoch: u32,
}

impl Seen {
    /// Nothing seen yet.
    pub const fn new() -> Self {
        Self {
            version: 0,
            epoch: 0,
        }
    }
}

/// Checks one snapshot: every channel once and intact, one epoch, gains conserved, `probe`'s
/// lookup equal to what iteration saw, and version and epoch not behind what this reader saw
/// last. Returns the number of entries read.
///
/// # Errors
/// The first [`Violation`] found; `seen` is then left as it was.
pub fn check(snapshot: &TableSnapshot<'_>, probe: u8, seen: &mut Seen) -> Result<u32, Violation> {
    let mut present: u64 = 0;
    let mut gains: u32 = 0;
    let mut epoch = None;
    let mut probed = None;
    for (&channel, entry) in snapshot.iter() {
        if channel >= CHANNELS || present & (1 << channel) != 0 {
            return Err(Violation::WrongChannels);
        }
        present |= 1 << channel;
        if !entry.is_intact(channel) {
            return Err(Violation::TornEntry);
        }
        if *epoch.get_or_insert(entry.epoch) != entry.epoch {
            return Err(Violation::MixedEpochs);
        }
        gains = gains.wrapping_add(entry.gain);
        if channel == probe {
            probed = Some(*entry);
        }
    }
    if present != u64::MAX >> (64 - u32::from(CHANNELS)) {
        return Err(Violation::WrongChannels);
    }
    if gains != GAIN_TOTAL {
        return Err(Violation::GainNotConserved);
    }
    if snapshot.get(&probe).copied() != probed {
        return Err(Violation::LookupMismatch);
    }
    let (version, epoch) = (snapshot.version(), epoch.unwrap_or(0));
    if version < seen.version {
        return Err(Violation::VersionWentBack);
    }
    if epoch < seen.epoch || (version == seen.version && epoch != seen.epoch) {
        return Err(Violation::EpochOutOfStep);
    }
    *seen = Seen { version, epoch };
    Ok(u32::from(CHANNELS) + 1)
}

impl Violation {
    /// The violation with this [`code`](Self::code), if any.
    pub fn from_code(code: u32) -> Option<Self> {
        use Violation::*;
        [
            WrongChannels,
            TornEntry,
            MixedEpochs,
            GainNotConserved,
            LookupMismatch,
            VersionWentBack,
            EpochOutOfStep,
            NoReaderSlot,
            WriteFailed,
            FinalState,
            Setup,
        ]
        .into_iter()
        .find(|v| v.code() == code)
    }
}
