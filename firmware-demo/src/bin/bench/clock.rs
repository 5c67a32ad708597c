//! The bench's clock on the calling core: what a SysTick tick counts differs per board
//! (`clock_icount.rs`: instructions under QEMU `-icount`; `clock_cycles.rs`: the RP2040's
//! cycles), the interface is one: [`now`] and [`ticks_between`] around a loop,
//! [`Calibrated::time_once`] for one operation, [`burn`] for a writer's idle time.

#[cfg_attr(feature = "board-an521", path = "clock_icount.rs")]
#[cfg_attr(
    any(feature = "board-rp2040", feature = "board-rp2350"),
    path = "clock_cycles.rs"
)]
mod imp;

pub use imp::{burn, now, start, ticks_between, UNIT, UNITS_PER_TICK};

/// One operation timed by the board's `time_raw`, minus what the timing itself costs.
#[derive(Clone, Copy)]
pub struct Calibrated {
    overhead: u32,
}

impl Calibrated {
    /// Measures the overhead, from 64 empty measurements (the board's `overhead`).
    #[inline(never)]
    pub fn new() -> Self {
        Self {
            overhead: imp::overhead(),
        }
    }

    /// The units `f` took.
    #[inline(always)]
    pub fn time_once<R>(&self, f: impl FnOnce() -> R) -> u32 {
        imp::time_raw(f).saturating_sub(self.overhead)
    }
}

/// `turns` turns of a `subs`/`bne` countdown loop (at least one), which touches no memory.
#[inline(always)]
fn count_down(turns: u32) {
    // SAFETY: a register-only countdown loop.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {t}, {t}, #1",
            "bne 2b",
            t = inout(reg) turns.max(1) => _,
            options(nomem, nostack),
        );
    }
}
