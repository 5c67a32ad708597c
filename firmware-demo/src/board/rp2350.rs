//! Raspberry Pi Pico 2: the RP2350, two Cortex-M33 (Armv8-M Mainline: native LDREX/STREX, so
//! snapmap's compare-and-swap takes no critical section here).
//!
//! What a user of this board must know (the emulated RP2350 shows none of it):
//!
//! - **Cross-core exclusives need `ACTLR.EXTEXCLALL` on both cores.** The M33's default memory
//!   map marks SRAM non-shareable, and an LDREX/STREX pair on non-shareable memory is checked
//!   only by the core's local monitor: a STREX on core 0 would not fail when core 1 wrote the
//!   word in between, and a compare-and-swap would lose updates. rp235x-hal's
//!   `Multicore::spawn` sets the bit on core 0 and on core 1 before its entry runs; firmware that
//!   starts core 1 another way must set it itself. The emulator ignores the bit (its monitor is
//!   always global), so forgetting it only shows on a board.
//! - **Erratum RP2350-E2**: writes to SIO registers at offsets from `0x180` up alias the
//!   hardware spinlocks and can release one that another core holds. A critical section built
//!   on a hardware spinlock (rp235x-hal's `critical-section-impl` takes spinlock 31) then stops
//!   excluding the other core whenever something writes the aliasing register. This firmware
//!   does not use one: its critical section ([`crate::cs::spinlock`]) is a lock word taken with
//!   the cores' own exclusives, as the Pico SDK does by default on the RP2350. snapmap itself
//!   takes no critical section on this chip (native CAS), so the erratum cannot break a
//!   snapshot; it concerns what else the firmware guards with a critical section (here the
//!   benchmark's mutex map and defmt's log).
//! - **Time**: [`now`] reads TIMER0, 1 MHz from the tick generator fed by the 12 MHz crystal
//!   (clk_ref); the cycle counts ([`crate::tick::cycles`]) come from each core's DWT `CYCCNT`.

use crate::cs::{spinlock::DualCoreSpinlock, Counting};
use core::sync::atomic::{AtomicBool, Ordering};
use rp235x_hal::multicore::{Multicore, Stack};
use rp235x_hal::{pac, Clock, Sio, Watchdog};

critical_section::set_impl!(Counting<DualCoreSpinlock>);

/// The block the boot ROM looks for in the first 4 KiB of flash before it runs an image
/// (`.start_block`, placed after the vector table by `targets/rp2350/memory.x`): a Secure Arm
/// executable. (The emulated RP2350 has no boot ROM and does not check it.)
#[link_section = ".start_block"]
#[used]
pub static IMAGE_DEF: rp235x_hal::block::ImageDef = rp235x_hal::block::ImageDef::secure_exe();

/// What the board is, for logs.
pub const NAME: &str = "RP2350 (2 x Cortex-M33)";
/// Both cores run the firmware.
pub const CORES: usize = 2;
/// clk_sys after `init_clocks_and_plls`: 150 MHz, which SysTick and DWT count.
pub const CORE_CLOCK_HZ: u32 = 150_000_000;
/// [`now`] reads the 1 MHz TIMER0.
pub const TICKS_PER_SEC: u32 = 1_000_000;

/// The Pico 2's crystal.
const XOSC_HZ: u32 = 12_000_000;
/// Core 1's stack, in bytes.
const CORE1_STACK_BYTES: usize = 8 * 1024;

static CORE1_STACK: Stack<{ CORE1_STACK_BYTES / 4 }> = Stack::new();

/// The calling core: 0 or 1 (SIO CPUID).
#[inline]
pub fn core_id() -> usize {
    Sio::core() as usize
}

/// Microseconds since TIMER0 left reset in [`Board::take`], wrapping every 2^32 (71 min).
#[inline]
pub fn now() -> u32 {
    // SAFETY: TIMERAWL is a read-only view of the free-running 64-bit counter, without side
    // effects (unlike TIMELR, which latches TIMEHR); either core may read it at any time.
    unsafe { (*pac::TIMER0::ptr()).timerawl().read().bits() }
}

/// Ends the run:
/// - `ok`: at a `bkpt` instruction. `probe-rs run` stops there and exits 0; the emulated RP2350
///   (`targets/rp2350/runner`) sees the core halted right after a `bkpt` and reports success.
/// - not `ok`: at `udf` (as panic-probe does after a panic): a HardFault, which `probe-rs run`
///   and the runner report as a failure. No panic here, so a panic handler may call this too.
pub fn exit(ok: bool) -> ! {
    loop {
        if ok {
            cortex_m::asm::bkpt();
        } else {
            cortex_m::asm::udf();
        }
    }
}

/// Core 0's handle on the chip: what starting core 1 needs.
pub struct Board {
    psm: pac::PSM,
    ppb: pac::PPB,
    sio: Sio,
    core1_started: bool,
}

impl Board {
    /// Clocks (150 MHz from the 12 MHz crystal), the 1 µs tick and TIMER0, and this core's
    /// cycle counter. Call once, on core 0.
    ///
    /// # Panics
    /// If called twice, or if the crystal or a PLL does not start.
    pub fn take() -> Self {
        static TAKEN: AtomicBool = AtomicBool::new(false);
        // Relaxed: before core 1 runs nothing else can race this.
        assert!(!TAKEN.swap(true, Ordering::Relaxed), "Board::take twice");
        let Some(mut pac) = pac::Peripherals::take() else {
            panic!("RP2350 peripherals already taken");
        };
        let mut watchdog = Watchdog::new(pac.WATCHDOG);
        // Also starts the 1 µs ticks (TICKS block), which TIMER0 counts.
        let clocks = match rp235x_hal::clocks::init_clocks_and_plls(
            XOSC_HZ,
            pac.XOSC,
            pac.CLOCKS,
            pac.PLL_SYS,
            pac.PLL_USB,
            &mut pac.RESETS,
            &mut watchdog,
        ) {
            Ok(clocks) => clocks,
            Err(_) => panic!("clock setup failed"),
        };
        assert_eq!(clocks.system_clock.freq().to_Hz(), CORE_CLOCK_HZ);
        // Brings TIMER0 out of reset; it counts from then on.
        let _timer = rp235x_hal::Timer::new_timer0(pac.TIMER0, &mut pac.RESETS, &clocks);
        Self {
            psm: pac.PSM,
            ppb: pac.PPB,
            sio: Sio::new(pac.SIO),
            core1_started: false,
        }
    }

    /// Starts core 1 running `entry` (rp235x-hal's `Multicore`: the boot ROM's FIFO handshake,
    /// core 0's vector table, a stack of its own, `ACTLR.EXTEXCLALL` and the FPU on core 1).
    ///
    /// Everything core 0 wrote before this call is visible to `entry` (the FIFO handshake and
    /// the spawn's fences order it).
    ///
    /// # Panics
    /// If core 1 was already started or does not answer the handshake.
    pub fn start_core1(&mut self, entry: fn() -> !) {
        assert!(!self.core1_started, "core 1 already started");
        self.core1_started = true;
        let Some(stack) = CORE1_STACK.take() else {
            panic!("core 1 stack already taken");
        };
        let mut multicore = Multicore::new(&mut self.psm, &mut self.ppb, &mut self.sio.fifo);
        if multicore.cores()[1].spawn(stack, move || entry()).is_err() {
            panic!("core 1 did not start");
        }
    }
}
