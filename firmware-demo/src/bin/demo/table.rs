//! The shared table: 64 sensor channels' calibration, owned (written) by core 0 through the
//! map's sole [`Writer`](snapmap_core::Writer).
//!
//! Two kinds of change, both published through snapmap:
//! - a **recalibration** (a batch, one `update`): moves some gain from one channel to another, so
//!   the gains still sum to [`GAIN_TOTAL`], and stamps *every* channel with a new epoch;
//! - an **offset trim** (one key): changes one channel's offset.
//!
//! Every entry carries a checksum of its channel and fields. So a consistent snapshot has all
//! 64 channels, every checksum right, one epoch everywhere and the gains summing to
//! [`GAIN_TOTAL`]; `check.rs` verifies exactly that.

use snapmap_core::{Reader, SnapMap, Writer};

/// Channels 0..CHANNELS, all present once the table is filled.
pub const CHANNELS: u8 = 64;
/// Generation slots: at least `R + 2` (checked at compile time), so that the readers never stop
/// the writer; with `G >= R + W + 1` (W = 1, core 0) the writer never waits for a reader's
/// generation at all. One more than that, so that a held pin rarely meets the writer.
pub const GENERATIONS: usize = 5;
/// Spare pages (16 channels each): a recalibration changes all 4 pages of the table, so two of
/// them fit, and a reader's pin on the generation before the last recalibration (which holds
/// its 4 old pages) never leaves the next one short.
pub const SPARE_PAGES: usize = 8;
/// Reader slots: the two registered readers on core 1 (core 1's loop and its timer interrupt).
/// Core 0's sole writer pins nothing, its own reads included.
pub const READER_SLOTS: usize = 2;
/// What the gains of all channels always add up to.
pub const GAIN_TOTAL: u32 = CHANNELS as u32 * 1_000;

/// The table type.
pub type Table = SnapMap<u8, Entry, { CHANNELS as usize }, GENERATIONS, READER_SLOTS, SPARE_PAGES>;
/// A registered reader of [`TABLE`].
pub type TableReader =
    Reader<'static, u8, Entry, { CHANNELS as usize }, GENERATIONS, READER_SLOTS, SPARE_PAGES>;

/// The table's sole writer (core 0's).
pub type TableWriter =
    Writer<'static, u8, Entry, { CHANNELS as usize }, GENERATIONS, READER_SLOTS, SPARE_PAGES>;

/// The table, in a `static`: no allocator, all memory fixed at link time.
pub static TABLE: Table = SnapMap::new();

/// One channel's calibration.
#[derive(Clone, Copy, PartialEq, Eq, defmt::Format)]
pub struct Entry {
    /// The recalibration (batch) that last stamped this channel: the same in every channel of a
    /// consistent snapshot.
    pub epoch: u32,
    /// The channel's share of [`GAIN_TOTAL`].
    pub gain: u32,
    /// Changed by single-key writes.
    pub offset: u32,
    /// [`checksum`] of the channel and the fields above.
    pub check: u32,
}

impl Entry {
    /// An entry for `channel`, with its checksum.
    pub fn new(channel: u8, epoch: u32, gain: u32, offset: u32) -> Self {
        Self {
            epoch,
            gain,
            offset,
            check: checksum(channel, epoch, gain, offset),
        }
    }

    /// Whether the checksum matches `channel` and the fields: the entry is neither torn nor
    /// filed under another channel.
    pub fn is_intact(&self, channel: u8) -> bool {
        self.check == checksum(channel, self.epoch, self.gain, self.offset)
    }
}

/// A cheap mixing checksum (FNV-1a over the words): any single changed field changes it.
/// Written out word by word: a fold over an array made the M0+ store the array on the stack.
#[inline]
fn checksum(channel: u8, epoch: u32, gain: u32, offset: u32) -> u32 {
    const PRIME: u32 = 0x0100_0193;
    let mut hash = (0x811C_9DC5 ^ u32::from(channel)).wrapping_mul(PRIME);
    hash = (hash ^ epoch).wrapping_mul(PRIME);
    hash = (hash ^ gain).wrapping_mul(PRIME);
    (hash ^ offset).wrapping_mul(PRIME)
}
