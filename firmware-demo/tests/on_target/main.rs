//! snapmap-core's tests on emulated ARM cores.
//!
//! - QEMU `mps2-an521`: two Cortex-M33 racing for real (two host threads), with hardware
//!   LDREX/STREX compare-and-swap;
//! - QEMU `microbit -cpu cortex-m0`: ARMv6-M, no compare-and-swap, so snapmap's writers take the
//!   `critical-section` path, and readers must take none (counted, see `critical_sections.rs`).
//!
//! `harness = false`: this file is its own runner. It prints `test NAME ... ok` per test over
//! semihosting and closes with `N passed, 0 failed`; a panic (a failed assertion, on either
//! core) prints `FAILED` with the message and exits QEMU with status 1.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod critical_sections;
mod interrupt;
mod single_core;
#[cfg(feature = "board-an521")]
mod two_cores;

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use cortex_m_semihosting::hprintln;
use firmware_demo::board::{self, Board};
use firmware_demo::cs;

/// One test: a name and a function that panics on failure.
struct Test {
    name: &'static str,
    run: fn(),
}

macro_rules! tests {
    ($($(#[$attr:meta])* $path:path),* $(,)?) => {
        &[$($(#[$attr])* Test { name: stringify!($path), run: $path }),*]
    };
}

/// Every test, in order. The two-core ones exist only on two-core boards.
const TESTS: &[Test] = tests![
    single_core::api_matches_sync_map,
    single_core::batch_is_one_generation,
    single_core::errors_leave_the_map_intact,
    single_core::pinned_snapshot_is_stable,
    critical_sections::reads_take_none,
    critical_sections::one_off_reads_and_writes,
    interrupt::reader_in_interrupt_during_writes,
    #[cfg(feature = "board-an521")]
    two_cores::increments_from_both_cores_are_never_lost,
    #[cfg(feature = "board-an521")]
    two_cores::batches_from_both_cores_stay_atomic,
    #[cfg(feature = "board-an521")]
    two_cores::reader_on_one_core_writer_on_the_other,
    #[cfg(feature = "board-an521")]
    two_cores::try_forms_under_contention_lose_nothing,
];

/// Tests passed so far (for the closing line of a failed run).
static PASSED: AtomicU32 = AtomicU32::new(0);

#[cortex_m_rt::entry]
fn main() -> ! {
    #[allow(unused_mut, unused_variables)]
    let mut board = Board::take();
    hprintln!("snapmap-core target tests on {}", board::NAME);
    assert!(
        cs::self_test(),
        "the critical-section counter is not installed: the counts below would prove nothing"
    );
    #[cfg(feature = "board-an521")]
    two_cores::start(&mut board);
    #[cfg(not(feature = "board-an521"))]
    hprintln!("(one core: the two-core tests run on mps2-an521)");

    for test in TESTS {
        hprintln!("test {} ...", test.name);
        (test.run)();
        hprintln!("test {} ... ok", test.name);
        PASSED.store(PASSED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    hprintln!("{} passed, 0 failed", PASSED.load(Ordering::Relaxed));
    board::exit(true)
}

/// A detail line under the current test.
macro_rules! note {
    ($($arg:tt)*) => {
        cortex_m_semihosting::hprintln!("    {}", format_args!($($arg)*))
    };
}
pub(crate) use note;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    static PANICKED: AtomicBool = AtomicBool::new(false);
    // Only the first panic reports: the other core may fail the same assertion meanwhile.
    // (A critical section, not `swap`: ARMv6-M has no atomic swap.)
    let first = critical_section::with(|_| {
        let first = !PANICKED.load(Ordering::Relaxed);
        PANICKED.store(true, Ordering::Relaxed);
        first
    });
    if first {
        hprintln!("FAILED on core {}: {}", board::core_id(), info);
        hprintln!("{} passed, 1 failed", PASSED.load(Ordering::Relaxed));
    }
    board::exit(false)
}

#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    panic!("hard fault at pc={:#010x}", frame.pc())
}
