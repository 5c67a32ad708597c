//! A histogram of cycle counts with a single writer and no heap: exact below [`EXACT`] cycles,
//! the rest counted together, the worst kept exactly. The median of a few thousand reads of a
//! map is a few hundred cycles, so one counter per cycle value costs 8 KiB and no rounding.

use crate::counter::SoloCounter;

/// Values below this are counted one by one.
pub const EXACT: usize = 2048;

/// Cycle counts recorded by one context (one core's thread mode, or one handler), read by any
/// core once the writer has published that it stopped (see [`SoloCounter`]).
pub struct Histogram {
    counts: [SoloCounter; EXACT],
    /// Values of [`EXACT`] or more.
    above: SoloCounter,
    worst: SoloCounter,
    total: SoloCounter,
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self {
            counts: [const { SoloCounter::new() }; EXACT],
            above: SoloCounter::new(),
            worst: SoloCounter::new(),
            total: SoloCounter::new(),
        }
    }

    /// Records one value. Only the histogram's single writer calls this.
    #[inline]
    pub fn record(&self, cycles: u32) {
        match self.counts.get(cycles as usize) {
            Some(count) => count.add(1),
            None => self.above.add(1),
        }
        if cycles > self.worst.get() {
            self.worst.add(cycles - self.worst.get());
        }
        self.total.add(1);
    }

    /// Values recorded.
    pub fn len(&self) -> u32 {
        self.total.get()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest value recorded (0 if none).
    pub fn worst(&self) -> u32 {
        self.worst.get()
    }

    /// The lower median: the value with `(len - 1) / 2` values below it, or [`worst`] if it is
    /// not below [`EXACT`]; 0 if nothing was recorded.
    ///
    /// [`worst`]: Self::worst
    pub fn median(&self) -> u32 {
        let rank = self.len().saturating_sub(1) / 2;
        let mut below = 0;
        for (value, count) in self.counts.iter().enumerate() {
            below += count.get();
            if below > rank {
                return value as u32;
            }
        }
        self.worst()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}
