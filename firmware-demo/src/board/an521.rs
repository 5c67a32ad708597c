//! QEMU `mps2-an521`: the Arm SSE-200 subsystem with two Cortex-M33 (Armv8-M Mainline, FPU).
//!
//! Both CPUs come out of reset in Secure state, and nothing here leaves it: code and data use the
//! Secure aliases (`targets/mps2-an521/memory.x`), so no SAU, MPC or PPC setup is needed.
//! CPU1 is held until CPU0 releases it ([`Board::start_core1`]). Under QEMU (without `-icount`)
//! the two CPUs run on two host threads: real parallel races, real LDREX/STREX.

mod core1;

use crate::cs::{spinlock::DualCoreSpinlock, Counting};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

critical_section::set_impl!(Counting<DualCoreSpinlock>);

/// What the board is, for logs.
pub const NAME: &str = "QEMU mps2-an521 (2 x Cortex-M33)";
/// Both CPUs of the SSE-200 run the firmware.
pub const CORES: usize = 2;
/// MAINCLK, which clocks the CPUs (and so SysTick) and the APB timers: 20 MHz on the AN521.
pub const CORE_CLOCK_HZ: u32 = 20_000_000;
/// [`now`] counts APB timer 1's clock, MAINCLK.
pub const TICKS_PER_SEC: u32 = CORE_CLOCK_HZ;

/// Register addresses (SSE-200 and AN521 documentation; the same in QEMU).
mod reg {
    /// CPU_IDENTITY: reads 0 on CPU0, 1 on CPU1 (each sees its own).
    pub const CPU_IDENTITY: *const u32 = 0x4001_F000 as *const u32;
    /// Secure system control block: CPU1's initial Secure vector table address.
    pub const INITSVTOR1: *mut u32 = 0x5002_1114 as *mut u32;
    /// Secure system control block: bit n holds CPU n at reset (resets to 0b10: CPU1 waits).
    pub const CPUWAIT: *mut u32 = 0x5002_1118 as *mut u32;
    /// CMSDK APB timer 1, Secure alias: CTRL, VALUE (counts down), RELOAD.
    pub const TIMER1_CTRL: *mut u32 = 0x5000_1000 as *mut u32;
    pub const TIMER1_VALUE: *mut u32 = 0x5000_1004 as *mut u32;
    pub const TIMER1_RELOAD: *mut u32 = 0x5000_1008 as *mut u32;
    /// CTRL.EN: count.
    pub const TIMER_ENABLE: u32 = 1;
}

/// The calling CPU: 0 or 1.
#[inline]
pub fn core_id() -> usize {
    // SAFETY: CPU_IDENTITY is a read-only SSE-200 register without side effects, mapped for
    // both CPUs, each of which reads its own number.
    let id = unsafe { ptr::read_volatile(reg::CPU_IDENTITY) };
    (id & 1) as usize
}

/// Ticks of [`TICKS_PER_SEC`] since [`Board::take`], wrapping every 2^32 (214 s).
#[inline]
pub fn now() -> u32 {
    // SAFETY: reading VALUE has no side effect; the timer is shared, read-only after setup.
    let value = unsafe { ptr::read_volatile(reg::TIMER1_VALUE) };
    // The timer counts down from u32::MAX and reloads there: count up instead.
    u32::MAX - value
}

/// Ends the run: QEMU exits with status 0 (`ok`) or 1, whatever the other CPU is doing.
pub fn exit(ok: bool) -> ! {
    let code = if ok {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    };
    cortex_m_semihosting::debug::exit(code);
    // Without a debugger or QEMU semihosting the exit call returns: park.
    loop {
        cortex_m::asm::wfi();
    }
}

/// CPU0's handle on the board: owns starting CPU1.
pub struct Board {
    core1_started: bool,
}

impl Board {
    /// Sets up the time base. Call once, on CPU0, before anything else.
    ///
    /// # Panics
    /// If called twice or from CPU1.
    pub fn take() -> Self {
        static TAKEN: AtomicBool = AtomicBool::new(false);
        assert!(core_id() == 0, "Board::take on CPU1");
        assert!(!TAKEN.swap(true, Ordering::Relaxed), "Board::take twice");
        // SAFETY: APB timer 1 is used by nothing else; program it as a free-running down-counter
        // (disabled while its reload and value are set). CPU1 is still held at reset.
        unsafe {
            ptr::write_volatile(reg::TIMER1_CTRL, 0);
            ptr::write_volatile(reg::TIMER1_RELOAD, u32::MAX);
            ptr::write_volatile(reg::TIMER1_VALUE, u32::MAX);
            ptr::write_volatile(reg::TIMER1_CTRL, reg::TIMER_ENABLE);
        }
        Self {
            core1_started: false,
        }
    }

    /// Starts CPU1 running `entry` on its own stack, with its FPU enabled and its exceptions
    /// (SysTick included) handled by the same handlers as CPU0's.
    ///
    /// Everything CPU0 wrote before this call is visible to `entry`.
    ///
    /// # Panics
    /// If CPU1 was already started.
    pub fn start_core1(&mut self, entry: fn() -> !) {
        assert!(!self.core1_started, "CPU1 already started");
        self.core1_started = true;
        core1::release(entry);
    }
}
