//! A critical section for two cores that have compare-and-swap (Armv7-M, Armv8-M Mainline):
//! mask this core's interrupts, then take a lock word shared by the cores.

use crate::board;
use core::sync::atomic::{AtomicU8, Ordering};
use critical_section::RawRestoreState;

/// The lock word: [`FREE`], or the owning core's id + 1.
static OWNER: AtomicU8 = AtomicU8::new(FREE);
const FREE: u8 = 0;

/// Token bits. `RESTORE_INTERRUPTS`: interrupts were enabled before the outermost acquire.
const RESTORE_INTERRUPTS: RawRestoreState = 1;
/// This acquire was nested inside a critical section the core already held: its release must
/// neither drop the lock nor unmask interrupts.
const NESTED: RawRestoreState = 2;

/// Interrupts masked on this core and a spinlock word held against the other one; nestable.
///
/// While it waits for the other core, it lets this core's interrupts in if they were enabled, so
/// a contended lock never adds the other core's hold time to this core's interrupt latency. It
/// spins without `wfe`: right for free-running QEMU and for hardware; under QEMU `-icount` every
/// contended acquire would wait for a scheduler kick.
pub struct DualCoreSpinlock;

// SAFETY: mutual exclusion between cores comes from the compare-and-swap on OWNER, within a core
// from masking interrupts before the lock is held (an interrupt handler on the owning core can
// only run after release). Acquire on the successful CAS and Release on the store that frees the
// lock order every critical section after the previous one. Nesting is recognized by OWNER
// holding this core's own id, which only this core ever stores.
unsafe impl critical_section::Impl for DualCoreSpinlock {
    unsafe fn acquire() -> RawRestoreState {
        let interrupts_were_enabled = cortex_m::register::primask::read().is_active();
        let me = board::core_id() as u8 + 1;
        cortex_m::interrupt::disable();
        // Relaxed suffices: OWNER == me can only be this core's own latest store (the other core
        // never stores our id), which this core always sees; and with interrupts masked nothing
        // on this core changes it between here and the end of the nested section.
        if OWNER.load(Ordering::Relaxed) == me {
            return NESTED;
        }
        while OWNER
            .compare_exchange_weak(FREE, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            if interrupts_were_enabled {
                // SAFETY: they were enabled when we were called and we hold nothing yet.
                unsafe { cortex_m::interrupt::enable() };
            }
            core::hint::spin_loop();
            cortex_m::interrupt::disable();
        }
        if interrupts_were_enabled {
            RESTORE_INTERRUPTS
        } else {
            0
        }
    }

    unsafe fn release(token: RawRestoreState) {
        if token == NESTED {
            return;
        }
        // Release: everything done inside the critical section happens-before the next owner's
        // Acquire CAS.
        OWNER.store(FREE, Ordering::Release);
        if token & RESTORE_INTERRUPTS != 0 {
            // SAFETY: interrupts were enabled before the matching outermost acquire.
            unsafe { cortex_m::interrupt::enable() };
        }
    }
}
