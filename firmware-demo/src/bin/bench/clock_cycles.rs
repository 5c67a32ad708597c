//! The calling core's clock cycles on the RP2040: SysTick on clk_sys (`firmware_demo::tick`),
//! one tick per cycle. The emulated RP2040 counts each core's cycles exactly (every instruction
//! its M0+ cycle cost, SRAM bank contention included), so a figure is the same on every run.
//!
//! The same interface as the QEMU clock (`clock_icount.rs`): [`now`] and [`ticks_between`]
//! around a loop, [`Calibrated::time_once`] for one operation, [`burn`] for a writer's idle time.

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

/// One operation timed between two counter reads, minus what the reads themselves cost.
#[derive(Clone, Copy)]
pub struct Calibrated {
    overhead: u32,
}

impl Calibrated {
    /// Measures the overhead: the smallest of 64 empty measurements.
    #[inline(never)]
    pub fn new() -> Self {
        let overhead = (0..64).map(|_| time_raw(|| ())).min().unwrap_or(0);
        Self { overhead }
    }

    /// The cycles `f` took.
    #[inline(always)]
    pub fn time_once<R>(&self, f: impl FnOnce() -> R) -> u32 {
        time_raw(f).saturating_sub(self.overhead)
    }
}

#[inline(always)]
fn time_raw<R>(f: impl FnOnce() -> R) -> u32 {
    let start = now();
    core::hint::black_box(f());
    ticks_between(start, now())
}

/// About `n` cycles (`subs` and a taken `bne`: 3 cycles a turn on the M0+).
#[inline(always)]
pub fn burn(n: u32) {
    let turns = (n / 3).max(1);
    // SAFETY: a register-only countdown loop.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {t}, {t}, #1",
            "bne 2b",
            t = inout(reg) turns => _,
            options(nomem, nostack),
        );
    }
}
