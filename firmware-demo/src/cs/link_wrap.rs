//! The counter around rp2040-hal's critical section, put there by the linker.
//!
//! rp2040-hal's `critical-section-impl` defines `_critical_section_1_0_acquire` and
//! `_critical_section_1_0_release` (hardware spinlock 31 plus masked interrupts, safe on both
//! cores). `build.rs` links with `--wrap` for both symbols: every reference to them from another
//! object file resolves to the `__wrap_` functions below, and `__real_` names the original.
//! References inside rp2040-hal's own object file (the HAL's internal critical sections) are not
//! redirected and go uncounted; the demo's read path never calls into the HAL. If cross-crate
//! LTO merged everything into one object, nothing would be counted: `cs::self_test` catches that.

// The linker fixes these names: `__wrap_` / `__real_` + the symbol, which starts with `_`.
#![allow(non_snake_case)]

use critical_section::RawRestoreState;

extern "Rust" {
    /// rp2040-hal's acquire (`__real_` + its name, resolved by the linker's `--wrap`).
    fn __real__critical_section_1_0_acquire() -> RawRestoreState;
    /// rp2040-hal's release.
    fn __real__critical_section_1_0_release(token: RawRestoreState);
}

/// Every `critical_section::acquire` lands here: take the HAL's critical section, then count it.
///
/// # Safety
/// As `critical_section::Impl::acquire`: pair with exactly one release, in nesting order.
#[no_mangle]
unsafe fn __wrap__critical_section_1_0_acquire() -> RawRestoreState {
    // SAFETY: our caller's obligation is passed on unchanged; the signature is the one
    // `critical_section::set_impl!` gives the real symbol.
    let token = unsafe { __real__critical_section_1_0_acquire() };
    super::record();
    token
}

/// Every `critical_section::release` lands here.
///
/// # Safety
/// As `critical_section::Impl::release`: `token` comes from the matching acquire.
#[no_mangle]
unsafe fn __wrap__critical_section_1_0_release(token: RawRestoreState) {
    // SAFETY: `token` came from the HAL's acquire through ours.
    unsafe { __real__critical_section_1_0_release(token) }
}
