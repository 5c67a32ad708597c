//! A periodic interrupt on the calling core, and that core's cycle counter.
//!
//! - On the RP2040 the interrupt is TIMER alarm 0 (`TIMER_IRQ_0`), enabled in the calling
//!   core's NVIC only, and re-armed by [`acknowledge`] one period after its last deadline: the
//!   1 MHz TIMER is the time base [`board::now`] reads too, so the interrupt and the control
//!   loop keep one clock. SysTick is then free to count the core's cycles ([`cycles`]).
//!   (The emulated RP2040 also needs it that way: each core's SysTick there counts the cycles
//!   that core executed, which in its instruction-lockstep interleaving fall behind the shared
//!   clock whenever the other core runs slower instructions, so a SysTick tick came ~20% late.)
//! - Elsewhere it is the core's SysTick (the `SysTick` exception): every Cortex-M core has its
//!   own in its private peripheral bus. [`cycles`] then reads [`board::now`], which counts the
//!   processor clock there.
//!
//! The handler is the application's (`#[interrupt] fn TIMER_IRQ_0` or `#[exception] fn
//! SysTick`), and calls [`acknowledge`] first.

use crate::board;

pub use imp::*;

/// Why a tick rate cannot be programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickError {
    /// `hz` is zero, above the clock, or so low that the period does not fit the timer.
    RateOutOfRange,
}

#[cfg(feature = "board-rp2040")]
mod imp {
    use super::{board, TickError};
    use crate::counter::SoloCounter;
    use core::sync::atomic::{AtomicU32, Ordering};
    use cortex_m::peripheral::NVIC;
    use rp2040_hal::pac::{self, Interrupt};

    /// The interrupt's period in TIMER microseconds (0: stopped).
    static PERIOD_US: AtomicU32 = AtomicU32::new(0);
    /// Deadlines that had already passed when [`acknowledge`] re-armed the alarm: ticks lost.
    /// Written by the handler only.
    pub static MISSED: SoloCounter = SoloCounter::new();

    const ALARM0: u32 = 1 << 0;
    /// [`cycles`] is SysTick's 24-bit counter.
    pub const CYCLES_MASK: u32 = super::SYSTICK_MASK;
    /// What [`cycles`] counts, for keys and messages: the calling core's clk_sys cycles.
    pub const CYCLES_UNIT: &str = "cycles";

    fn timer() -> &'static pac::timer::RegisterBlock {
        // SAFETY: the TIMER's registers are always mapped; this module is the only user of alarm
        // 0 and of INTE/INTR bit 0, each access below is a single register read or write, and
        // every other user of the TIMER (`board::now`) only reads TIMERAWL.
        unsafe { &*pac::TIMER::ptr() }
    }

    /// Starts `TIMER_IRQ_0` on the calling core, `hz` times per second, and the calling core's
    /// cycle counter.
    ///
    /// # Errors
    /// [`TickError::RateOutOfRange`] unless `hz` divides into whole microseconds, at least 2.
    pub fn start(hz: u32) -> Result<(), TickError> {
        let period = match board::TICKS_PER_SEC.checked_div(hz) {
            Some(us) if us >= 2 => us,
            _ => return Err(TickError::RateOutOfRange),
        };
        start_cycles();
        // Relaxed: only this core's handler reads it, after the unmask below (program order
        // on one core).
        PERIOD_US.store(period, Ordering::Relaxed);
        let timer = timer();
        let first = board::now().wrapping_add(period);
        // SAFETY (the three writes): INTR is write-1-to-clear and INTE a plain mask, bit 0 of
        // each being alarm 0's, which only this module uses; ALARM0 takes any 32-bit deadline.
        timer.intr().write(|w| unsafe { w.bits(ALARM0) });
        timer
            .inte()
            .modify(|r, w| unsafe { w.bits(r.bits() | ALARM0) });
        timer.alarm0().write(|w| unsafe { w.bits(first) });
        // SAFETY: the handler is the application's and touches only what it owns; unmasking in
        // this core's NVIC (each core has its own) routes the alarm to this core alone.
        unsafe { NVIC::unmask(Interrupt::TIMER_IRQ_0) };
        Ok(())
    }

    /// Called first in the handler: clears the alarm's interrupt and arms the next deadline,
    /// one period after the last (so the rate does not drift with the handler's latency). A
    /// deadline already past is counted in [`MISSED`] and the next one taken from now.
    #[inline]
    pub fn acknowledge() {
        let timer = timer();
        // SAFETY: write-1-to-clear of alarm 0's interrupt bit, this module's.
        timer.intr().write(|w| unsafe { w.bits(ALARM0) });
        let period = PERIOD_US.load(Ordering::Relaxed);
        let mut next = timer.alarm0().read().bits().wrapping_add(period);
        let now = board::now();
        if (next.wrapping_sub(now) as i32) <= 0 {
            MISSED.add(1);
            next = now.wrapping_add(period);
        }
        // SAFETY: ALARM0 takes any 32-bit deadline; writing it arms alarm 0 (this module's).
        timer.alarm0().write(|w| unsafe { w.bits(next) });
    }

    /// Stops the interrupt on the calling core and discards a tick already pending. When it
    /// returns, the handler is not running on this core and will not run again.
    pub fn stop() {
        NVIC::mask(Interrupt::TIMER_IRQ_0);
        let timer = timer();
        // SAFETY (the three writes): ARMED and INTR are write-1-to-clear (disarm, clear pending)
        // and INTE a plain mask; bit 0 is alarm 0's, which only this module uses.
        timer.armed().write(|w| unsafe { w.bits(ALARM0) });
        timer
            .inte()
            .modify(|r, w| unsafe { w.bits(r.bits() & !ALARM0) });
        timer.intr().write(|w| unsafe { w.bits(ALARM0) });
        NVIC::unpend(Interrupt::TIMER_IRQ_0);
        cortex_m::asm::dsb();
        cortex_m::asm::isb();
    }

    /// Starts the calling core's SysTick counting clk_sys (nothing else uses it on the RP2040
    /// build).
    pub fn start_cycles() {
        super::start_systick_count();
    }

    /// The calling core's clock cycles, counting up modulo `CYCLES_MASK + 1` (134 ms at
    /// 125 MHz), once [`start_cycles`] (or [`start`]) ran on this core.
    #[inline(always)]
    pub fn cycles() -> u32 {
        CYCLES_MASK - super::systick_count()
    }
}

#[cfg(not(feature = "board-rp2040"))]
mod imp {
    use super::{board, TickError};
    use cortex_m::peripheral::{SCB, SYST};

    const CSR_ENABLE: u32 = 1 << 0;
    const CSR_TICKINT: u32 = 1 << 1;
    /// Count the processor clock ([`board::CORE_CLOCK_HZ`]), not the external reference.
    const CSR_CLKSOURCE_CORE: u32 = 1 << 2;
    const ICSR_PENDSTCLR: u32 = 1 << 25;
    /// SysTick's reload register is 24 bits wide.
    const MAX_RELOAD: u32 = 0x00FF_FFFF;
    /// [`cycles`] is [`board::now`], 32 bits.
    #[cfg(feature = "board-an521")]
    pub const CYCLES_MASK: u32 = u32::MAX;
    /// What [`cycles`] counts, for keys and messages: ticks of the AN521's 20 MHz timer, which
    /// QEMU advances with host time when it runs without `-icount` (the demo): not the cores'
    /// cycles.
    #[cfg(feature = "board-an521")]
    pub const CYCLES_UNIT: &str = "timer_ticks";
    /// [`cycles`] is the calling core's DWT cycle counter, 32 bits (RP2350).
    #[cfg(feature = "board-rp2350")]
    pub const CYCLES_MASK: u32 = u32::MAX;
    /// What [`cycles`] counts on the RP2350: the calling core's clk_sys cycles.
    #[cfg(feature = "board-rp2350")]
    pub const CYCLES_UNIT: &str = "cycles";

    /// Starts the `SysTick` exception on the calling core at `hz` per second.
    ///
    /// # Errors
    /// [`TickError::RateOutOfRange`] if the rate cannot be reached from [`board::CORE_CLOCK_HZ`].
    pub fn start(hz: u32) -> Result<(), TickError> {
        let reload = match board::CORE_CLOCK_HZ.checked_div(hz) {
            Some(cycles) if (2..=MAX_RELOAD + 1).contains(&cycles) => cycles - 1,
            _ => return Err(TickError::RateOutOfRange),
        };
        #[cfg(feature = "board-rp2350")]
        start_cycles();
        // SAFETY: SYST::PTR is this core's own SysTick (the PPB is private to each core), and
        // only this module programs it, from thread mode of the core that uses it; the writes
        // follow the architecture's sequence (disable, reload, clear the current value, enable).
        unsafe {
            let syst = &*SYST::PTR;
            syst.csr.write(0);
            syst.rvr.write(reload);
            syst.cvr.write(0);
            syst.csr
                .write(CSR_CLKSOURCE_CORE | CSR_TICKINT | CSR_ENABLE);
        }
        Ok(())
    }

    /// SysTick needs no acknowledgement.
    #[inline(always)]
    pub fn acknowledge() {}

    /// Stops the calling core's `SysTick` exception and discards a tick that is already
    /// pending. When it returns, the handler is not running on this core and will not run again.
    pub fn stop() {
        // SAFETY: as in `start`; ICSR.PENDSTCLR only clears this core's pending SysTick.
        unsafe {
            (*SYST::PTR).csr.write(0);
            (*SCB::PTR).icsr.write(ICSR_PENDSTCLR);
        }
        // The writes above complete before anything that follows (the caller's "done" flag).
        cortex_m::asm::dsb();
        cortex_m::asm::isb();
    }

    /// [`board::now`] counts the processor clock on these boards: nothing to start.
    #[cfg(feature = "board-an521")]
    pub fn start_cycles() {}

    /// Starts the calling core's DWT cycle counter (each Cortex-M33 has its own): what
    /// [`cycles`] reads on the RP2350, where SysTick is the tick interrupt.
    #[cfg(feature = "board-rp2350")]
    pub fn start_cycles() {
        /// DEMCR.TRCENA: enables the DWT; DWT_CTRL.CYCCNTENA: starts CYCCNT.
        const DEMCR: *mut u32 = 0xE000_EDFC as *mut u32;
        const TRCENA: u32 = 1 << 24;
        const DWT_CTRL: *mut u32 = 0xE000_1000 as *mut u32;
        const CYCCNTENA: u32 = 1 << 0;
        // SAFETY: DEMCR and DWT_CTRL are the calling core's own (the PPB is private to each
        // core); setting TRCENA and CYCCNTENA only starts the cycle counter, which nothing else
        // in this firmware configures.
        unsafe {
            DEMCR.write_volatile(DEMCR.read_volatile() | TRCENA);
            DWT_CTRL.write_volatile(DWT_CTRL.read_volatile() | CYCCNTENA);
        }
    }

    /// The calling core's clk_sys cycles (DWT CYCCNT), counting up modulo 2^32 (28.6 s at
    /// 150 MHz), once [`start_cycles`] (or [`start`]) ran on this core.
    #[cfg(feature = "board-rp2350")]
    #[inline(always)]
    pub fn cycles() -> u32 {
        /// DWT_CYCCNT.
        const CYCCNT: *const u32 = 0xE000_1004 as *const u32;
        // SAFETY: reading CYCCNT has no side effect.
        unsafe { CYCCNT.read_volatile() }
    }

    /// Processor clock cycles ([`board::now`]; under QEMU `-icount`, a fixed number of
    /// instructions per tick), counting up modulo `CYCLES_MASK + 1`.
    #[cfg(feature = "board-an521")]
    #[inline(always)]
    pub fn cycles() -> u32 {
        board::now()
    }
}

/// SysTick's counter is 24 bits wide; [`start_systick_count`] reloads it there.
pub const SYSTICK_MASK: u32 = 0x00FF_FFFF;
/// SYST_CVR, the calling core's SysTick current value (counts down).
pub const SYSTICK_CVR: *const u32 = 0xE000_E018 as *const u32;

/// Starts the calling core's SysTick counting the processor clock down from [`SYSTICK_MASK`],
/// free-running, without its interrupt: a counter for whoever does not use [`start`] on this
/// core (the RP2040's [`cycles`], the benchmark's clock).
#[inline]
pub fn start_systick_count() {
    /// Enable, counting the processor clock rather than the external reference.
    const CSR_ENABLE_CORE_CLOCK: u32 = (1 << 0) | (1 << 2);
    // SAFETY: SYST::PTR is this core's own SysTick (the PPB is private to each core), which the
    // caller does not use for the tick interrupt; disable, reload, clear, enable, as the
    // architecture asks.
    unsafe {
        let syst = &*cortex_m::peripheral::SYST::PTR;
        syst.csr.write(0);
        syst.rvr.write(SYSTICK_MASK);
        syst.cvr.write(0);
        syst.csr.write(CSR_ENABLE_CORE_CLOCK);
    }
}

/// The calling core's SysTick counter (counts down, wraps every 2^24 ticks).
#[inline(always)]
pub fn systick_count() -> u32 {
    // SAFETY: reading SYST_CVR has no side effect.
    unsafe { SYSTICK_CVR.read_volatile() }
}

/// Cycles from reading `start` to reading `end` with [`cycles`] on one core (less than
/// `CYCLES_MASK + 1` apart).
#[cfg(not(feature = "board-microbit"))]
#[inline(always)]
pub fn cycles_between(start: u32, end: u32) -> u32 {
    end.wrapping_sub(start) & CYCLES_MASK
}
