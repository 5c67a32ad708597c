//! Critical sections, counted per core.
//!
//! The `critical-section` crate lets the application install one implementation. Every board
//! here installs the board's real, multicore-safe implementation *wrapped in a counter*: after
//! the real one grants the critical section, the wrapper adds one to the counter of the core it
//! runs on. The demo and the target tests read that counter around their reads
//! ([`taken_here`]) to show that reading a snapmap takes none.
//!
//! How the counter is put around the real implementation:
//! - boards whose implementation lives in this crate (`mps2-an521` and the RP2350: [`spinlock`], `microbit`:
//!   [`primask`]) install [`Counting<Real>`];
//! - the RP2040 keeps rp2040-hal's `critical-section-impl` (hardware spinlock 31), and the
//!   linker's `--wrap` (see `build.rs`) sends every call to it through `link_wrap`.
//!
//! [`self_test`] proves the counter is really in the path; a firmware that relies on the count
//! must run it first, or a miswired counter would read zero and prove nothing.

use crate::board;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, Ordering};
use critical_section::RawRestoreState;

#[cfg(feature = "board-rp2040")]
mod link_wrap;
#[cfg(feature = "board-microbit")]
pub mod primask;
#[cfg(any(feature = "board-an521", feature = "board-rp2350"))]
pub mod spinlock;

/// Critical sections taken so far, by core id.
static TAKEN: [AtomicU32; board::CORES] = [const { AtomicU32::new(0) }; board::CORES];

/// Counts one critical section for the calling core. Called by the wrappers right after the
/// real implementation granted it, so this core's interrupts are masked.
#[inline(always)]
fn record() {
    let counter = &TAKEN[board::core_id()];
    // A load and a store, not `fetch_add`: only this core writes its counter and its interrupts
    // are masked, so nothing can intervene; and ARMv6-M has no atomic read-modify-write.
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Critical sections the calling core has taken so far (wrapping).
///
/// The difference of two readings on one core counts the critical sections taken in between
/// on that core, by the code in between and by any interrupt handler that preempted it.
#[inline]
pub fn taken_here() -> u32 {
    TAKEN[board::core_id()].load(Ordering::Relaxed)
}

/// Critical sections core `core` has taken so far (wrapping), or `None` for no such core.
/// Exact once that core has stopped taking them and published that with a Release store that
/// the caller Acquired; a statistic otherwise.
pub fn taken_on(core: usize) -> Option<u32> {
    TAKEN
        .get(core)
        .map(|counter| counter.load(Ordering::Relaxed))
}

/// Takes one critical section and checks that the calling core's counter moved by exactly one:
/// the installed implementation is the counting one. Call it where no interrupt handler of this
/// core takes critical sections meanwhile (at start-up).
pub fn self_test() -> bool {
    let before = taken_here();
    critical_section::with(|_| {});
    taken_here().wrapping_sub(before) == 1
}

/// The counting wrapper around a real implementation `I`, for `critical_section::set_impl!`.
pub struct Counting<I>(PhantomData<I>);

// SAFETY: acquire and release are passed to `I` unchanged, with the same restore token, so the
// wrapper is exactly as sound as `I`. The only addition is `record()`, a store to the calling
// core's own counter made while `I`'s critical section is held.
unsafe impl<I: critical_section::Impl> critical_section::Impl for Counting<I> {
    unsafe fn acquire() -> RawRestoreState {
        // SAFETY: our caller's obligation (pair this with one `release`) is passed on to `I`.
        let token = unsafe { I::acquire() };
        record();
        token
    }

    unsafe fn release(token: RawRestoreState) {
        // SAFETY: `token` came from the matching `acquire`, which got it from `I::acquire`.
        unsafe { I::release(token) }
    }
}
