//! Counts the critical sections each core takes: the linker (`--wrap`, see `build.rs`) routes
//! every reference to embassy-rp's `_critical_section_1_0_acquire` from another object file
//! through `__wrap__critical_section_1_0_acquire` below, which counts, per core, and calls the
//! real one (`__real_`). References inside embassy-rp's own object file go uncounted; snapmap's
//! and this firmware's are counted. Cross-crate LTO would hide them all: `self_test` catches it.

// The linker fixes these names: `__wrap_` / `__real_` + the symbol, which starts with `_`.
#![allow(non_snake_case)]

use core::sync::atomic::{AtomicU32, Ordering};

use critical_section::RawRestoreState;

static TAKEN: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];

extern "Rust" {
    fn __real__critical_section_1_0_acquire() -> RawRestoreState;
    fn __real__critical_section_1_0_release(token: RawRestoreState);
}

/// This core's number (SIO CPUID).
fn core_id() -> usize {
    embassy_rp::pac::SIO.cpuid().read() as usize & 1
}

/// # Safety
/// As `critical_section::Impl::acquire`: pair with exactly one release, in nesting order.
#[no_mangle]
unsafe fn __wrap__critical_section_1_0_acquire() -> RawRestoreState {
    // SAFETY: our caller's obligation is passed on unchanged.
    let token = unsafe { __real__critical_section_1_0_acquire() };
    let counter = &TAKEN[core_id()];
    // A load and a store: only this core writes its counter, with its interrupts masked.
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
    token
}

/// # Safety
/// As `critical_section::Impl::release`: `token` comes from the matching acquire.
#[no_mangle]
unsafe fn __wrap__critical_section_1_0_release(token: RawRestoreState) {
    // SAFETY: `token` came from the real acquire through ours.
    unsafe { __real__critical_section_1_0_release(token) }
}

/// Critical sections this core has taken so far.
pub fn taken_here() -> u32 {
    TAKEN[core_id()].load(Ordering::Relaxed)
}

/// Whether a critical section taken here is counted (it is not if LTO merged the objects).
pub fn self_test() -> bool {
    let before = taken_here();
    critical_section::with(|_| {});
    taken_here().wrapping_sub(before) == 1
}
