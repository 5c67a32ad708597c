//! QEMU `microbit -cpu cortex-m0`: the nRF51822's single ARMv6-M core (no compare-and-swap),
//! for the target tests of snapmap's critical-section path. ARMv7-M-only instructions fault here.

use crate::cs::{primask::SingleCorePrimask, Counting};

// One core: masking interrupts is a sound critical section here, and only here.
critical_section::set_impl!(Counting<SingleCorePrimask>);

/// What the board is, for logs.
pub const NAME: &str = "QEMU microbit (Cortex-M0, ARMv6-M)";
/// One core.
pub const CORES: usize = 1;
/// The nRF51's 16 MHz clock, which SysTick counts (per instruction under `-icount shift=0`).
pub const CORE_CLOCK_HZ: u32 = 16_000_000;

/// Always core 0.
#[inline]
pub fn core_id() -> usize {
    0
}

/// Ends the run: QEMU exits with status 0 (`ok`) or 1.
pub fn exit(ok: bool) -> ! {
    let code = if ok {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    };
    cortex_m_semihosting::debug::exit(code);
    loop {
        cortex_m::asm::wfi();
    }
}

/// The board's handle: nothing to own on one core.
pub struct Board(());

impl Board {
    /// Nothing to set up; kept for the same shape as the two-core boards.
    pub fn take() -> Self {
        Self(())
    }
}
