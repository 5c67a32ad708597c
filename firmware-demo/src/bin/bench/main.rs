//! snapmap and its peers measured on two emulated cores, printed as plain text lines for the
//! host: instruction counts on the dual Cortex-M33 (QEMU `mps2-an521` with `-icount shift=0`,
//! lines over semihosting, `cargo xtask bench-m33`) and cycle counts on the RP2040's two
//! Cortex-M0+ (`rp2040-emu`, lines over defmt RTT, `cargo xtask bench-rp2040`). What differs
//! per board is the clock (`clock.rs`), the transport of the lines
//! ([`out`]) and how the two cores interleave (see `concurrent.rs`).
//!
//! - `sizes`: `size_of` of the maps on this target.
//! - `ops`: instructions (cycles) per get (hit), insert and batch of 8 inserts on one core, for snapmap
//!   (a registered `Reader`, a held snapshot, one-off `map.get`), a
//!   `critical_section::Mutex<RefCell<FnvIndexMap>>` and the unsynchronized `FnvIndexMap` floor,
//!   all `u32 -> u32` with 64 entries in a 128-entry table (50% load).
//! - `concurrent`: one read on core 1 while core 0 applies batches of 8: percentiles and a
//!   histogram of the instructions (cycles) per read, for snapmap and the mutex map.
//!
//! Every line the xtask reads starts with a keyword (`SIZE`, `OP`, `STATS`, `LAT`, `HIST`,
//! then `DONE`); `-icount`, or the cycle-counted RP2040 emulator, makes the whole output the
//! same on every run.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod clock;
mod concurrent;
mod maps;
mod ops;
mod sizes;
mod stats;

use core::sync::atomic::{AtomicBool, Ordering};
use firmware_demo::board::{self, Board};
use firmware_demo::cs;

/// One line to the host: over semihosting under QEMU.
#[cfg(feature = "board-an521")]
macro_rules! out {
    ($($arg:tt)*) => {
        cortex_m_semihosting::hprintln!($($arg)*)
    };
}

/// One line to the host: on the RP2040, formatted here and sent as a defmt string over RTT
/// (the runner prints a `println!` frame as its text alone).
#[cfg(any(feature = "board-rp2040", feature = "board-rp2350"))]
macro_rules! out {
    ($($arg:tt)*) => {{
        let mut line: heapless::String<600> = heapless::String::new();
        // A line longer than the buffer is cut short, which the host's parser then reports.
        let _ = core::fmt::write(&mut line, format_args!($($arg)*));
        defmt::println!("{=str}", line.as_str());
    }};
}
pub(crate) use out;

#[cfg(any(feature = "board-rp2040", feature = "board-rp2350"))]
use defmt_rtt as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut board = Board::take();
    out!(
        "bench on {}: {} {} per SysTick tick",
        board::NAME,
        clock::UNITS_PER_TICK,
        clock::UNIT
    );
    assert!(
        cs::self_test(),
        "the critical-section counter is not installed"
    );
    clock::start();
    sizes::report();
    ops::run();
    concurrent::run(&mut board);
    out!("DONE");
    board::exit(true)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    static PANICKED: AtomicBool = AtomicBool::new(false);
    // A load and a store, not `swap` (ARMv6-M has none): at worst both cores print.
    if !PANICKED.load(Ordering::Relaxed) {
        PANICKED.store(true, Ordering::Relaxed);
        out!("FAILED on core {}: {}", board::core_id(), info);
    }
    board::exit(false)
}

/// Under QEMU a fault ends the run with a message; on the RP2040 a fault is how the run ends
/// (`board::exit`'s `bkpt`), which the runner reads from the stacked frame.
#[cfg(feature = "board-an521")]
#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    panic!("hard fault at pc={:#010x}", frame.pc())
}
