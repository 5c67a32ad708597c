//! The board this build runs on, chosen by exactly one `board-*` feature.
//!
//! Every board module provides the same items (the demo and the target tests use only these):
//!
//! | item | meaning |
//! |---|---|
//! | `NAME` | what the board is, for logs |
//! | `CORES` | how many cores run this firmware (1 or 2) |
//! | `CORE_CLOCK_HZ` | the processor clock, which SysTick counts ([`crate::tick`]) |
//! | `core_id()` | the calling core: 0 or 1 |
//! | `Board::take()` | core 0, once, first thing: clocks and time base; owns what starting core 1 needs |
//! | `Board::start_core1(entry)` | two-core boards: run `entry` on core 1 |
//! | `now()`, `TICKS_PER_SEC` | a free-running 32-bit time base both cores read (not on `microbit`) |
//! | `exit(ok)` | end the run: a semihosting exit code, or on the RP2040 a HardFault at `bkpt` (`ok`) or at `udf` |
//!
//! The memory layout of each board is `targets/<board>/memory.x`; `build.rs` links it.

#[cfg(not(any(
    feature = "board-an521",
    feature = "board-microbit",
    feature = "board-rp2040",
    feature = "board-rp2350"
)))]
compile_error!(
    "select a board: --features board-an521, board-microbit, board-rp2040 or board-rp2350"
);

#[cfg(any(
    all(feature = "board-an521", feature = "board-microbit"),
    all(feature = "board-an521", feature = "board-rp2040"),
    all(feature = "board-microbit", feature = "board-rp2040"),
    all(feature = "board-rp2350", feature = "board-an521"),
    all(feature = "board-rp2350", feature = "board-microbit"),
    all(feature = "board-rp2350", feature = "board-rp2040"),
))]
compile_error!("select exactly one board feature");

#[cfg(feature = "board-an521")]
mod an521;
#[cfg(feature = "board-an521")]
pub use an521::*;

#[cfg(feature = "board-microbit")]
mod microbit;
#[cfg(feature = "board-microbit")]
pub use microbit::*;

#[cfg(feature = "board-rp2040")]
mod rp2040;
#[cfg(feature = "board-rp2040")]
pub use rp2040::*;

#[cfg(feature = "board-rp2350")]
mod rp2350;
#[cfg(feature = "board-rp2350")]
pub use rp2350::*;
