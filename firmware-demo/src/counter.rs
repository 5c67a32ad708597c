//! Statistics counters with a single writer.

use core::sync::atomic::{AtomicU32, Ordering};

/// A counter that one context (one core's thread mode, or one interrupt handler) adds to and
/// any core reads.
///
/// An increment is an atomic load and an atomic store, never a read-modify-write: ARMv6-M has no
/// atomic RMW, and one built on a critical section would defeat the point of counting reads that
/// take none. With a single writer nothing is lost; if two contexts did add to one counter, some
/// increments could be lost (never anything worse: every access is atomic).
///
/// Reads are `Relaxed`: a counter orders nothing. Whoever needs final values synchronizes with
/// the writer by other means (a Release/Acquire flag) before reading them.
pub struct SoloCounter(AtomicU32);

impl SoloCounter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    /// Adds `n`, wrapping. Only the counter's single writer calls this.
    #[inline]
    pub fn add(&self, n: u32) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// The count so far.
    #[inline]
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for SoloCounter {
    fn default() -> Self {
        Self::new()
    }
}
