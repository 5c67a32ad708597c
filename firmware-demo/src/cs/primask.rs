//! A critical section for a single core: mask its interrupts (PRIMASK). Sound only where no
//! other core shares the data, which is why only the one-core `microbit` board installs it.

use critical_section::RawRestoreState;

/// Token: interrupts were enabled before the acquire.
const RESTORE_INTERRUPTS: RawRestoreState = 1;

/// Interrupts masked on the only core; nestable through the restore token.
pub struct SingleCorePrimask;

// SAFETY: on a one-core chip, masking interrupts excludes every other context. A nested acquire
// finds interrupts already masked and returns 0, so its release leaves them masked.
unsafe impl critical_section::Impl for SingleCorePrimask {
    unsafe fn acquire() -> RawRestoreState {
        let interrupts_were_enabled = cortex_m::register::primask::read().is_active();
        cortex_m::interrupt::disable();
        if interrupts_were_enabled {
            RESTORE_INTERRUPTS
        } else {
            0
        }
    }

    unsafe fn release(token: RawRestoreState) {
        if token & RESTORE_INTERRUPTS != 0 {
            // SAFETY: interrupts were enabled before the matching acquire.
            unsafe { cortex_m::interrupt::enable() };
        }
    }
}
