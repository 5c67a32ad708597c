//! The calling core's SysTick as an instruction counter.
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
//! - [`time_once`] for one short operation: it starts at a tick edge and, after the operation,
//!   counts the turns of a spin loop of known length until the next edge, which brings the
//!   resolution down to a few instructions (`SPIN_TURN`).
//!
//! The counter runs without its interrupt, with the longest reload (2^24 ticks, 0.84 s of
//! virtual time): it wraps rarely, and sets no near timer deadline of its own for QEMU to stop
//! at.

use cortex_m::peripheral::SYST;

/// Instructions per SysTick tick under `-icount shift=0` (1 ns per instruction, 20 MHz clock).
pub const UNITS_PER_TICK: u32 = 1_000_000_000 / firmware_demo::board::CORE_CLOCK_HZ;
/// What a figure counts, for the host.
pub const UNIT: &str = "instructions";

/// SysTick's counter is 24 bits wide; the longest reload.
const MASK: u32 = 0x00FF_FFFF;
const CSR_ENABLE: u32 = 1 << 0;
/// Count the processor clock, not the external reference.
const CSR_CLKSOURCE_CORE: u32 = 1 << 2;
/// SYST_CVR, the current value (counts down).
const CVR: *const u32 = 0xE000_E018 as *const u32;
/// Instructions per turn of the spin loop in [`wait_edge`].
const SPIN_TURN: u32 = 4;

/// Starts the calling core's SysTick counting down from 2^24 - 1, without its interrupt.
pub fn start() {
    // SAFETY: SYST::PTR is this core's own SysTick (each core has its own in its private
    // peripheral bus), used by nothing else in this firmware; the writes follow the
    // architecture's sequence (disable, reload, clear the current value, enable).
    unsafe {
        let syst = &*SYST::PTR;
        syst.csr.write(0);
        syst.rvr.write(MASK);
        syst.cvr.write(0);
        syst.csr.write(CSR_CLKSOURCE_CORE | CSR_ENABLE);
    }
}

/// The calling core's SysTick counter (counts down, wraps every 2^24 ticks).
#[inline(always)]
pub fn now() -> u32 {
    // SAFETY: reading SYST_CVR has no side effect.
    unsafe { CVR.read_volatile() }
}

/// Ticks from reading `start` to reading `end` (less than 2^24 apart).
#[inline(always)]
pub fn ticks_between(start: u32, end: u32) -> u32 {
    start.wrapping_sub(end) & MASK
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
            cvr = in(reg) CVR,
            first = out(reg) _,
            value = out(reg) value,
            turns = out(reg) turns,
            options(nostack, readonly),
        );
    }
    (value, turns)
}

/// Instructions `f` takes, plus a constant overhead that [`Calibrated`] removes; to within
/// [`SPIN_TURN`] instructions either way.
///
/// Starts right after a tick edge; after `f`, spins to the next edge, counting turns: the
/// edges are exactly 50 instructions apart, and the turns say how much of the last tick the spin
/// took.
#[inline(always)]
fn time_raw<R>(f: impl FnOnce() -> R) -> u32 {
    let (start, _) = wait_edge();
    core::hint::black_box(f());
    let (end, turns) = wait_edge();
    ticks_between(start, end) * UNITS_PER_TICK - turns * SPIN_TURN
}

/// [`time_raw`] with its own overhead (an empty `f`) measured once and subtracted.
#[derive(Clone, Copy)]
pub struct Calibrated {
    overhead: u32,
}

impl Calibrated {
    /// Measures the overhead: the most frequent result over 64 empty measurements (they differ
    /// by the phase of the edges, by at most a spin turn).
    #[inline(never)]
    pub fn new() -> Self {
        let mut seen = [0u32; 64];
        for slot in seen.iter_mut() {
            *slot = time_raw(|| ());
        }
        seen.sort_unstable();
        Self {
            overhead: seen[seen.len() / 2],
        }
    }

    /// The instructions `f` took, to within a spin turn.
    #[inline(always)]
    pub fn time_once<R>(&self, f: impl FnOnce() -> R) -> u32 {
        time_raw(f).saturating_sub(self.overhead)
    }
}

/// `n` instructions exactly (`n` is a multiple of 2: `subs`, `bne` per turn), for calibration
/// checks and for a paced writer's idle time.
#[inline(always)]
pub fn burn(n: u32) {
    let turns = (n / 2).max(1);
    // SAFETY: a register-only countdown loop.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {t}, {t}, #1",
            "bne 2b",
            t = inout(reg) turns => _,
            options(nomem, nostack),
        );
    }
}
