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

/// 32-bit words of a bitmask with one bit per channel.
const CHANNEL_WORDS: usize = (CHANNELS as usize).div_ceil(32);

/// The bitmask with every channel's bit set.
const ALL_CHANNELS: [u32; CHANNEL_WORDS] = {
    let mut all = [0u32; CHANNEL_WORDS];
    let mut channel = 0;
    while channel < CHANNELS {
        all[channel as usize / 32] |= 1 << (channel % 32);
        channel += 1;
    }
    all
};

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
    // Every entry must carry the first one's epoch.
    let epoch = snapshot.iter().next().map_or(0, |(_, entry)| entry.epoch);
    // One bit per channel, in 32-bit words: ARMv6-M shifts 64-bit values by a library call.
    let mut present = [0u32; CHANNEL_WORDS];
    let mut gains: u32 = 0;
    let mut probed = None;
    for (&channel, entry) in snapshot.iter() {
        let (word, bit) = (usize::from(channel / 32), 1u32 << (channel % 32));
        match present.get_mut(word) {
            Some(bits) if *bits & bit == 0 && channel < CHANNELS => *bits |= bit,
            _ => return Err(Violation::WrongChannels),
        }
        if !entry.is_intact(channel) {
            return Err(Violation::TornEntry);
        }
        if entry.epoch != epoch {
            return Err(Violation::MixedEpochs);
        }
        gains = gains.wrapping_add(entry.gain);
        if channel == probe {
            probed = Some(entry);
        }
    }
    if present != ALL_CHANNELS {
        return Err(Violation::WrongChannels);
    }
    if gains != GAIN_TOTAL {
        return Err(Violation::GainNotConserved);
    }
    if snapshot.get(&probe) != probed {
        return Err(Violation::LookupMismatch);
    }
    seen.advance(snapshot.version(), epoch)?;
    Ok(u32::from(CHANNELS) + 1)
}

/// What an interrupt handler reads: two lookups, of `probe` and of the channel half the table
/// away, checked for what two entries can show: both there and intact, from one epoch (a
/// recalibration stamps every channel, so half of one shows as two epochs), and version and
/// epoch not behind what this reader saw last. A whole-snapshot [`check`] costs the M0+ about
/// 6,800 cycles, more than half of the control loop's 12,500-cycle period at 10 kHz: the loop
/// does that one, the interrupt stays short. Returns the number of entries read.
///
/// # Errors
/// The first [`Violation`] found; `seen` is then left as it was.
pub fn check_lookups(
    snapshot: &TableSnapshot<'_>,
    probe: u8,
    seen: &mut Seen,
) -> Result<u32, Violation> {
    let other = (probe + CHANNELS / 2) % CHANNELS;
    let (Some(a), Some(b)) = (snapshot.get(&probe), snapshot.get(&other)) else {
        return Err(Violation::WrongChannels);
    };
    if !a.is_intact(probe) || !b.is_intact(other) {
        return Err(Violation::TornEntry);
    }
    if a.epoch != b.epoch {
        return Err(Violation::MixedEpochs);
    }
    seen.advance(snapshot.version(), a.epoch)?;
    Ok(2)
}

impl Seen {
    /// Records a snapshot of `version` whose entries carry `epoch`.
    ///
    /// # Errors
    /// If either is behind what was seen last, or the same version came with another epoch.
    fn advance(&mut self, version: u64, epoch: u32) -> Result<(), Violation> {
        if version < self.version {
            return Err(Violation::VersionWentBack);
        }
        if epoch < self.epoch || (version == self.version && epoch != self.epoch) {
            return Err(Violation::EpochOutOfStep);
        }
        *self = Seen { version, epoch };
        Ok(())
    }
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
