//! snapmap-core's tests on emulated ARM cores.
//!
//! - QEMU `mps2-an521`: two Cortex-M33 racing for real (two host threads), with hardware
//!   LDREX/STREX compare-and-swap;
//! - QEMU `microbit -cpu cortex-m0`: ARMv6-M, no compare-and-swap, so snapmap's writers take the
//!   `critical-section` path, and readers must take none (counted, see `critical_sections.rs`);
//! - the emulated RP2040 (`targets/rp2040/runner`): two Cortex-M0+, the critical-section CAS
//!   racing between cores through rp2040-hal's spinlock critical section;
//! - the emulated RP2350 (`targets/rp2350/runner`): two Cortex-M33 with native LDREX/STREX,
//!   interleaved a quantum of cycles at a time (xtask runs it at several quanta).
//!
//! `harness = false`: this file is its own runner. It prints `test NAME ... ok` per test (over
//! semihosting on QEMU, defmt over RTT on the RP2040) and closes with `N passed, 0 failed`; a
//! panic (a failed assertion, on either core) prints `FAILED` with the message and ends the
//! run as a failure (QEMU exit status 1; on the RP2040 a HardFault at `udf` rather than the
//! closing `bkpt`, see `board::exit`).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

/// One line of output: semihosting on QEMU.
#[cfg(not(any(feature = "board-rp2040", feature = "board-rp2350")))]
macro_rules! say {
    ($($arg:tt)*) => {
        cortex_m_semihosting::hprintln!($($arg)*)
    };
}

/// One line of output: on the RP2040 a defmt frame over RTT, formatted on the target (there is
/// no semihosting; the runner decodes the frames).
#[cfg(any(feature = "board-rp2040", feature = "board-rp2350"))]
macro_rules! say {
    ($($arg:tt)*) => {
        defmt::println!("{}", defmt::Display2Format(&format_args!($($arg)*)))
    };
}

/// A detail line under the current test. (`say!` and `note!` are defined before the test
/// modules, so they are in scope there without an import.)
macro_rules! note {
    ($($arg:tt)*) => {
        say!("    {}", format_args!($($arg)*))
    };
}

#[cfg(any(feature = "board-rp2040", feature = "board-rp2350"))]
use defmt_rtt as _;

mod critical_sections;
mod interrupt;
mod single_core;
#[cfg(feature = "dual-core")]
mod two_cores;

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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
    // Hangs on QEMU's microbit (a single Cortex-M0), not yet understood; passes on the RP2040's
    // M0+ cores and both M33 boards.
    #[cfg(not(feature = "board-microbit"))]
    critical_sections::sole_writes_take_none,
    interrupt::reader_in_interrupt_during_writes,
    #[cfg(feature = "dual-core")]
    two_cores::increments_from_both_cores_are_never_lost,
    #[cfg(feature = "dual-core")]
    two_cores::batches_from_both_cores_stay_atomic,
    #[cfg(feature = "dual-core")]
    two_cores::reader_on_one_core_writer_on_the_other,
    #[cfg(feature = "dual-core")]
    two_cores::try_forms_under_contention_lose_nothing,
    #[cfg(feature = "dual-core")]
    two_cores::sole_writer_on_one_core_reader_on_the_other,
    #[cfg(feature = "dual-core")]
    two_cores::the_sole_writer_and_shared_writers_take_turns,
];

/// Tests passed so far (for the closing line of a failed run).
static PASSED: AtomicU32 = AtomicU32::new(0);

#[cortex_m_rt::entry]
fn main() -> ! {
    #[allow(unused_mut, unused_variables)]
    let mut board = Board::take();
    say!("snapmap-core target tests on {}", board::NAME);
    assert!(
        cs::self_test(),
        "the critical-section counter is not installed: the counts below would prove nothing"
    );
    #[cfg(feature = "dual-core")]
    two_cores::start(&mut board);
    #[cfg(not(feature = "dual-core"))]
    say!("(one core: the two-core tests run on mps2-an521 and the RP2040)");

    for test in TESTS {
        say!("test {} ...", test.name);
        (test.run)();
        say!("test {} ... ok", test.name);
        PASSED.store(PASSED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    say!("{} passed, 0 failed", PASSED.load(Ordering::Relaxed));
    board::exit(true)
}

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
        say!("FAILED on core {}: {}", board::core_id(), info);
        say!("{} passed, 1 failed", PASSED.load(Ordering::Relaxed));
    }
    board::exit(false)
}

/// QEMU: a fault is reported as a failed test. (Not on the RP2040: there the closing `bkpt` of
/// a passing run is itself a HardFault, which the runner tells from any other fault by the
/// stacked PC; cortex-m-rt's default handler leaves that frame in place.)
#[cfg(not(feature = "board-rp2040"))]
#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    panic!("hard fault at pc={:#010x}", frame.pc())
}
