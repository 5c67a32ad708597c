//! The AN521 build's `clock` (see `clock.rs`): the calling core's SysTick as an instruction
//! counter.
//!
//! Under QEMU `-icount shift=0` one guest instruction is one nanosecond of virtual time, and
//! SysTick on the processor clock (MAINCLK, 20 MHz on the AN521) ticks every 50 ns: exactly
//! [`UNITS_PER_TICK`] instructions per tick, the same on every run. The virtual clock is
//! shared by the two CPUs, which QEMU then runs round-robin on one host thread: an interval
//! measured on one core also contains whatever the other core ran meanwhile (see
//! `concurrent.rs` for how the two-core figures deal with that).
//!
//! Two ways to measure:
//! - [`ticks_between`] two [`now`] readings around a loop of many operations: 50 instructions of
//!   resolution over the whole loop (0.05 instruction per operation over 1000);
//! - [`Calibrated::time_once`](super::Calibrated::time_once) for one short operation: it starts at a tick edge and, after the operation,
//!   counts the turns of a spin loop of known length until the next edge, which brings the
//!   resolution down to a few instructions (`SPIN_TURN`).
//!
//! The counter runs without its interrupt, with the longest reload (2^24 ticks, 0.84 s of
//! virtual time): it wraps rarely, and sets no near timer deadline of its own for QEMU to stop
//! at.

use firmware_demo::tick::{self, SYSTICK_CVR, SYSTICK_MASK};

/// Instructions per SysTick tick under `-icount shift=0` (1 ns per instruction, 20 MHz clock).
pub const UNITS_PER_TICK: u32 = 1_000_000_000 / firmware_demo::board::CORE_CLOCK_HZ;
/// What a figure counts, for the host.
pub const UNIT: &str = "instructions";

/// Instructions per turn of the spin loop in [`wait_edge`].
const SPIN_TURN: u32 = 4;

/// Starts the calling core's SysTick counting down from 2^24 - 1, without its interrupt.
pub fn start() {
    tick::start_systick_count();
}

/// The calling core's SysTick counter (counts down, wraps every 2^24 ticks).
#[inline(always)]
pub fn now() -> u32 {
    tick::systick_count()
}

/// Ticks from reading `start` to reading `end` (less than 2^24 apart).
#[inline(always)]
pub fn ticks_between(start: u32, end: u32) -> u32 {
    start.wrapping_sub(end) & SYSTICK_MASK
}

/// Spins until the SysTick counter changes; returns its new value and the spin loop's turns.
/// Each turn is exactly [`SPIN_TURN`] instructions (`ldr`, `adds`, `cmp`, `beq`).
#[inline(always)]
fn wait_edge() -> (u32, u32) {
    let (value, turns): (u32, u32);
    // SAFETY: only loads SYST_CVR (no side effect) and uses the registers it declares.
    unsafe {
        core::arch::asm!(
            "ldr {first}, [{cvr}]",
            "movs {turns}, #0",
            "2:",
            "ldr {value}, [{cvr}]",
            "adds {turns}, {turns}, #1",
            "cmp {value}, {first}",
            "beq 2b",
            cvr = in(reg) SYSTICK_CVR,
            first = out(reg) _,
            value = out(reg) value,
            turns = out(reg) turns,
            options(nostack, readonly),
        );
    }
    (value, turns)
}

/// Instructions `f` takes, plus a constant overhead that [`super::Calibrated`] removes; to within
/// [`SPIN_TURN`] instructions either way.
///
/// Starts right after a tick edge; after `f`, spins to the next edge, counting turns: the
/// edges are exactly 50 instructions apart, and the turns say how much of the last tick the spin
/// took.
#[inline(always)]
pub fn time_raw<R>(f: impl FnOnce() -> R) -> u32 {
    let (start, _) = wait_edge();
    core::hint::black_box(f());
    let (end, turns) = wait_edge();
    ticks_between(start, end) * UNITS_PER_TICK - turns * SPIN_TURN
}

/// The overhead of [`time_raw`]: the most frequent result over 64 empty measurements (they
/// differ by the phase of the edges, by at most a spin turn).
#[inline(always)]
pub fn overhead() -> u32 {
    let mut seen = [0u32; 64];
    for slot in seen.iter_mut() {
        *slot = time_raw(|| ());
    }
    seen.sort_unstable();
    seen[seen.len() / 2]
}

/// `n` instructions exactly (`n` is a multiple of 2: `subs`, `bne` per turn), for calibration
/// checks and for a paced writer's idle time.
#[inline(always)]
pub fn burn(n: u32) {
    super::count_down(n / 2);
}
