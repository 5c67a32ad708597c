//! Raspberry Pi Pico: the RP2040, two Cortex-M0+ (ARMv6-M: no compare-and-swap).
//!
//! The critical section is rp2040-hal's `critical-section-impl` (hardware spinlock 31 plus
//! masked interrupts: safe on two cores), counted through `crate::cs`'s link-time wrapper.
//! Never `unsafe-assume-single-core`: both cores run.

use core::sync::atomic::{AtomicBool, Ordering};
use rp2040_hal::multicore::{Multicore, Stack};
use rp2040_hal::{pac, Clock, Sio, Watchdog};

/// The second-stage bootloader for the Pico's W25Q080 flash, at 0x1000_0000 (`.boot2`, see
/// `targets/rp2040/memory.x`, which keeps it by this name).
#[link_section = ".boot2"]
#[no_mangle]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// What the board is, for logs.
pub const NAME: &str = "RP2040 (2 x Cortex-M0+)";
/// Both cores run the firmware.
pub const CORES: usize = 2;
/// clk_sys after `init_clocks_and_plls`: 125 MHz, which SysTick counts.
pub const CORE_CLOCK_HZ: u32 = 125_000_000;
/// [`now`] reads the 1 MHz TIMER.
pub const TICKS_PER_SEC: u32 = 1_000_000;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;
/// Core 1's stack, in bytes.
const CORE1_STACK_BYTES: usize = 8 * 1024;

static CORE1_STACK: Stack<{ CORE1_STACK_BYTES / 4 }> = Stack::new();

/// The calling core: 0 or 1 (SIO CPUID).
#[inline]
pub fn core_id() -> usize {
    Sio::core() as usize
}

/// Microseconds since the TIMER left reset in [`Board::take`], wrapping every 2^32 (71 min).
#[inline]
pub fn now() -> u32 {
    // SAFETY: TIMERAWL is a read-only view of the free-running 64-bit counter, without side
    // effects (unlike TIMELR, which latches TIMEHR); either core may read it at any time.
    unsafe { (*pac::TIMER::ptr()).timerawl().read().bits() }
}

/// Ends the run; what the host sees is a HardFault either way (there is no semihosting):
/// - `ok`: at a `BKPT` instruction. `probe-rs run` stops there and exits 0; the emulated RP2040
///   (`targets/rp2040/runner`) sees the stacked PC at a `BKPT` and reports success.
/// - not `ok`: at `udf` (as panic-probe does after a panic): `probe-rs run` exits non-zero, the
///   runner reports a fault. No panic here, so a panic handler may call this too.
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
    /// Clocks (125 MHz from the 12 MHz crystal) and the 1 MHz TIMER. Call once, on core 0.
    ///
    /// # Panics
    /// If called twice, or if the crystal or a PLL does not start.
    pub fn take() -> Self {
        static TAKEN: AtomicBool = AtomicBool::new(false);
        // A load and a store, not `swap`: ARMv6-M has no atomic swap, and before core 1 runs
        // nothing else can race this.
        assert!(!TAKEN.load(Ordering::Relaxed), "Board::take twice");
        TAKEN.store(true, Ordering::Relaxed);
        let Some(mut pac) = pac::Peripherals::take() else {
            panic!("RP2040 peripherals already taken");
        };
        let mut watchdog = Watchdog::new(pac.WATCHDOG);
        // Also starts the watchdog's 1 us tick, which the TIMER counts.
        let clocks = match rp2040_hal::clocks::init_clocks_and_plls(
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
        // Brings the TIMER out of reset; it counts from then on.
        let _timer = rp2040_hal::Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);
        Self {
            psm: pac.PSM,
            ppb: pac.PPB,
            sio: Sio::new(pac.SIO),
            core1_started: false,
        }
    }

    /// Starts core 1 running `entry` (rp2040-hal's `Multicore`: the boot ROM's FIFO handshake,
    /// core 0's vector table, a stack of its own).
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
