//! snapmap on two cores: core 0 owns a 64-channel calibration table and changes it (single keys
//! and atomic batches) while core 1 reads it from a fixed-rate control loop and from its timer
//! interrupt, checking every snapshot and counting the critical sections it takes (none).
//!
//! The workload (`table`, `check`, `writer`, `reader`, `report`) is the same on every board;
//! the board (`firmware_demo::board`) and the log transport below are what differ.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod check;
mod reader;
mod report;
mod table;
mod writer;

use firmware_demo::board::Board;

#[cortex_m_rt::entry]
fn main() -> ! {
    writer::core0_main(Board::take())
}

/// QEMU: defmt frames over semihosting (decoded on the host by `defmt-print`), and panics and
/// faults that end the run with exit status 1.
#[cfg(feature = "board-an521")]
mod runtime {
    use core::sync::atomic::{AtomicBool, Ordering};
    use defmt_semihosting as _;
    use firmware_demo::board;

    /// Set by the first panic: a panic while logging must not log again.
    static PANICKED: AtomicBool = AtomicBool::new(false);

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        if !PANICKED.swap(true, Ordering::Relaxed) {
            defmt::error!(
                "panic on core {=usize}: {}",
                board::core_id(),
                defmt::Display2Format(info)
            );
        }
        board::exit(false)
    }

    #[cortex_m_rt::exception]
    unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
        if !PANICKED.swap(true, Ordering::Relaxed) {
            defmt::error!(
                "hard fault on core {=usize} at pc={=u32:#010x}",
                board::core_id(),
                frame.pc()
            );
        }
        board::exit(false)
    }
}

/// RP2040: defmt frames over RTT and panic-probe, both read by `probe-rs run`.
#[cfg(feature = "board-rp2040")]
use {defmt_rtt as _, panic_probe as _};

/// RP2350: defmt frames over RTT and panic-probe, as on the RP2040.
#[cfg(feature = "board-rp2350")]
use {defmt_rtt as _, panic_probe as _};
