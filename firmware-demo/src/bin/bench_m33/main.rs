//! Instruction counts of snapmap and its peers on the emulated dual Cortex-M33 (QEMU
//! `mps2-an521` with `-icount shift=0`), printed as plain text for `cargo xtask bench-m33`.
//!
//! - `sizes`: `size_of` of the maps on this target.
//! - `ops`: instructions per get (hit), insert and batch of 8 inserts on one core, for snapmap
//!   (a registered `Reader`, a held snapshot, one-off `map.get`), a
//!   `critical_section::Mutex<RefCell<FnvIndexMap>>` and the unsynchronized `FnvIndexMap` floor,
//!   all `u32 -> u32` with 64 entries in a 128-entry table (50% load).
//! - `concurrent`: one read on core 1 while core 0 applies batches of 8: percentiles and a
//!   histogram of the instructions per read, for snapmap and the mutex map.
//!
//! Every line the xtask reads starts with a keyword (`SIZE`, `OP`, `STATS`, `LAT`, `HIST`,
//! then `DONE`); `-icount` makes the whole output the same on every run.
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

/// One line to the host over semihosting.
macro_rules! out {
    ($($arg:tt)*) => {
        cortex_m_semihosting::hprintln!($($arg)*)
    };
}
pub(crate) use out;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut board = Board::take();
    out!(
        "bench-m33 on {}: {} instructions per SysTick tick",
        board::NAME,
        clock::INSTRUCTIONS_PER_TICK
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
    if !PANICKED.swap(true, Ordering::Relaxed) {
        out!("FAILED on core {}: {}", board::core_id(), info);
    }
    board::exit(false)
}

#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    panic!("hard fault at pc={:#010x}", frame.pc())
}
