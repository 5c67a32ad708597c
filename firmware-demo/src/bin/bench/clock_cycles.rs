//! The RP2040 build's `clock` (see `clock.rs`): the calling core's clock cycles, SysTick on
//! clk_sys (`firmware_demo::tick`), one tick per cycle. The emulated RP2040 counts each core's
//! cycles exactly (every instruction its M0+ cycle cost, SRAM bank contention included), so a
//! figure is the same on every run.

use firmware_demo::tick;

/// Cycles per tick.
pub const UNITS_PER_TICK: u32 = 1;
/// What a tick counts, for the host.
pub const UNIT: &str = "cycles";

/// Starts the calling core's cycle counter (SysTick, free-running, no interrupt).
pub fn start() {
    tick::start_cycles();
}

/// The counter now (counts up, wraps every 2^24 cycles: 134 ms at 125 MHz).
#[inline(always)]
pub fn now() -> u32 {
    tick::cycles()
}

/// Cycles from reading `start` to reading `end` (less than 2^24 apart).
#[inline(always)]
pub fn ticks_between(start: u32, end: u32) -> u32 {
    tick::cycles_between(start, end)
}

/// The cycles `f` took, plus the cost of the counter reads, which [`super::Calibrated`] removes.
#[inline(always)]
pub fn time_raw<R>(f: impl FnOnce() -> R) -> u32 {
    let start = now();
    core::hint::black_box(f());
    ticks_between(start, now())
}

/// The overhead of [`time_raw`]: the smallest of 64 empty measurements.
#[inline(always)]
pub fn overhead() -> u32 {
    (0..64).map(|_| time_raw(|| ())).min().unwrap_or(0)
}

/// About `n` cycles (`subs` and a taken `bne`: 3 cycles a turn on the M0+).
#[inline(always)]
pub fn burn(n: u32) {
    super::count_down(n / 3);
}
