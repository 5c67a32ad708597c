//! The calling core's SysTick as a periodic interrupt (the `SysTick` exception).
//!
//! Every Cortex-M core has its own SysTick in its private peripheral bus, so on a two-core chip
//! each core programs and takes its own: the demo's core 1 reads the table from this interrupt.

use crate::board;
use cortex_m::peripheral::{SCB, SYST};

const CSR_ENABLE: u32 = 1 << 0;
const CSR_TICKINT: u32 = 1 << 1;
/// Count the processor clock ([`board::CORE_CLOCK_HZ`]), not the external reference.
const CSR_CLKSOURCE_CORE: u32 = 1 << 2;
const ICSR_PENDSTCLR: u32 = 1 << 25;
/// SysTick's reload register is 24 bits wide.
const MAX_RELOAD: u32 = 0x00FF_FFFF;

/// Why a tick rate cannot be programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickError {
    /// `hz` is zero, above the core clock, or so low that the reload does not fit in 24 bits.
    RateOutOfRange,
}

/// Starts the `SysTick` exception on the calling core at `hz` per second.
///
/// # Errors
/// [`TickError::RateOutOfRange`] if the rate cannot be reached from [`board::CORE_CLOCK_HZ`].
pub fn start(hz: u32) -> Result<(), TickError> {
    let reload = match board::CORE_CLOCK_HZ.checked_div(hz) {
        Some(cycles) if (2..=MAX_RELOAD + 1).contains(&cycles) => cycles - 1,
        _ => return Err(TickError::RateOutOfRange),
    };
    // SAFETY: SYST::PTR is this core's own SysTick (the PPB is private to each core), and only
    // this module programs it, from thread mode of the core that uses it; the writes follow the
    // architecture's sequence (disable, reload, clear the current value, enable).
    unsafe {
        let syst = &*SYST::PTR;
        syst.csr.write(0);
        syst.rvr.write(reload);
        syst.cvr.write(0);
        syst.csr
            .write(CSR_CLKSOURCE_CORE | CSR_TICKINT | CSR_ENABLE);
    }
    Ok(())
}

/// Stops the calling core's `SysTick` exception and discards a tick that is already pending.
/// When it returns, the handler is not running on this core and will not run again.
pub fn stop() {
    // SAFETY: as in `start`; ICSR.PENDSTCLR only clears this core's pending SysTick.
    unsafe {
        (*SYST::PTR).csr.write(0);
        (*SCB::PTR).icsr.write(ICSR_PENDSTCLR);
    }
    // The writes above complete before anything that follows (the caller's "done" flag).
    cortex_m::asm::dsb();
    cortex_m::asm::isb();
}
