//! Core 1: a fixed-rate control loop and a timer interrupt, both reading the table through
//! registered readers, checking every snapshot, and counting the critical sections they take.

use crate::check::{check, check_lookups, Seen, Violation};
use crate::table::{TableReader, CHANNELS, TABLE};
use core::sync::atomic::{AtomicBool, Ordering};
use firmware_demo::board;
use firmware_demo::counter::SoloCounter;
use firmware_demo::histogram::Histogram;
use firmware_demo::{cs, tick};
#[cfg(feature = "board-rp2040")]
use rp2040_hal::pac::interrupt;

/// The control loop's rate.
pub const LOOP_HZ: u32 = 10_000;
/// The timer interrupt's rate (see `firmware_demo::tick`: TIMER alarm 0 on the RP2040, the
/// core's SysTick elsewhere).
pub const TICK_HZ: u32 = 2_000;
/// Spin-loop hints between two reads of the time base while the control loop waits: a few
/// hundred under QEMU, where every device read takes the emulator's global lock, which core 0
/// and the timers need too; a few on the RP2040, where a late start of a period is time its
/// read no longer has (200 hints were up to 1,000 cycles late on the emulated RP2040).
const POLL_SPACING: u32 = if cfg!(any(feature = "board-rp2040", feature = "board-rp2350")) {
    4
} else {
    200
};

/// What one reading context did. Each instance has a single writer: [`LOOP`] is written by core
/// 1's thread mode only, [`TICK`] by its timer interrupt handler only.
pub struct ReadStats {
    /// Snapshots pinned and checked.
    pub snapshots: SoloCounter,
    /// Entries read through them (iterated or looked up).
    pub entries: SoloCounter,
    /// Snapshots that broke an invariant.
    pub violations: SoloCounter,
    /// The first violation's code (0: none).
    pub first_violation: SoloCounter,
    /// Critical sections this core took between pinning and releasing a snapshot.
    pub critical_sections: SoloCounter,
}

impl ReadStats {
    const fn new() -> Self {
        Self {
            snapshots: SoloCounter::new(),
            entries: SoloCounter::new(),
            violations: SoloCounter::new(),
            first_violation: SoloCounter::new(),
            critical_sections: SoloCounter::new(),
        }
    }

    fn violation(&self, violation: Violation) {
        if self.violations.get() == 0 {
            self.first_violation.add(violation.code());
        }
        self.violations.add(1);
    }
}

/// The control loop's reads.
pub static LOOP: ReadStats = ReadStats::new();
/// The timer interrupt's reads.
pub static TICK: ReadStats = ReadStats::new();
/// Control-loop periods that started late (the deadline had already passed).
pub static OVERRUNS: SoloCounter = SoloCounter::new();
/// Critical sections core 1 took in all (registering readers included), when it stopped.
pub static CORE1_CS_TOTAL: SoloCounter = SoloCounter::new();
/// Core 1's counting critical section passed its self-test.
pub static CORE1_CS_COUNTED: AtomicBool = AtomicBool::new(false);

/// Time (`tick::cycles`, in `tick::CYCLES_UNIT`) of the control loop's reads while core 0
/// writes: pinning a snapshot and looking one channel up (what a control loop pays for a value;
/// the checks that follow are the demo's own work). Reads the timer interrupt preempted are left out: their time is the handler's.
pub static READ_CYCLES: Histogram = Histogram::new();
/// Timer interrupts taken (written by the handler only): how the loop tells a preempted read.
static INTERRUPTS: SoloCounter = SoloCounter::new();

/// Set by core 0 to end the run.
pub static STOP: AtomicBool = AtomicBool::new(false);
/// Set by core 1 once it has stopped reading, with every counter final.
pub static DONE: AtomicBool = AtomicBool::new(false);

/// Pins one snapshot, checks it (whole, or with `timing` absent two lookups: see
/// [`check_lookups`]), and counts the critical sections taken meanwhile; with `timing`, records
/// the cycles of the pin and of one lookup in it.
fn read_once(
    reader: &mut TableReader,
    probe: u8,
    seen: &mut Seen,
    stats: &ReadStats,
    timing: Option<&Histogram>,
) {
    let before = cs::taken_here();
    let interrupts = INTERRUPTS.get();
    let start = tick::cycles();
    let result = {
        let snapshot = reader.snapshot();
        core::hint::black_box(snapshot.get(&probe));
        let end = tick::cycles();
        if let Some(histogram) = timing.filter(|_| INTERRUPTS.get() == interrupts) {
            histogram.record(tick::cycles_between(start, end));
        }
        match timing {
            Some(_) => check(&snapshot, probe, seen),
            None => check_lookups(&snapshot, probe, seen),
        }
    };
    let taken = cs::taken_here().wrapping_sub(before);
    stats.snapshots.add(1);
    stats.critical_sections.add(taken);
    match result {
        Ok(entries) => stats.entries.add(entries),
        Err(violation) => stats.violation(violation),
    }
}

/// Core 1's program: the control loop at [`LOOP_HZ`] until [`STOP`], with the timer interrupt
/// reading at [`TICK_HZ`] meanwhile.
pub fn core1_main() -> ! {
    // Outside any read window: prove that this core's critical sections are counted, and
    // register the loop's reader (on ARMv6-M claiming the slot takes a critical section).
    CORE1_CS_COUNTED.store(cs::self_test(), Ordering::Relaxed);
    let mut reader = TABLE.reader();
    let mut seen = Seen::new();
    if tick::start(TICK_HZ).is_err() {
        // Cannot happen with the constants above; counted rather than hidden.
        LOOP.violation(Violation::Setup);
    }

    let period = board::TICKS_PER_SEC / LOOP_HZ;
    let mut deadline = board::now().wrapping_add(period);
    let mut probe: u8 = 0;
    while !STOP.load(Ordering::Relaxed) {
        // Wait for the period to begin (signed difference: correct across the counter's wrap).
        let mut late = true;
        while (deadline.wrapping_sub(board::now()) as i32) > 0 {
            late = false;
            // Not back to back: see POLL_SPACING.
            for _ in 0..POLL_SPACING {
                core::hint::spin_loop();
            }
        }
        if late {
            OVERRUNS.add(1);
            // Skip the periods already missed rather than running them back to back.
            deadline = board::now();
        }
        deadline = deadline.wrapping_add(period);

        match reader.as_mut() {
            Ok(reader) => read_once(reader, probe, &mut seen, &LOOP, Some(&READ_CYCLES)),
            Err(_) => LOOP.violation(Violation::NoReaderSlot),
        }
        probe = (probe + 1) % CHANNELS;
    }

    // The handler is neither running nor pending once `stop` returns, so TICK is final too.
    tick::stop();
    drop(reader);
    CORE1_CS_TOTAL.add(cs::taken_here());
    // Release: every counter store above happens-before core 0's Acquire load of DONE.
    DONE.store(true, Ordering::Release);
    cortex_m::asm::sev();
    loop {
        cortex_m::asm::wfe();
    }
}

/// What the timer interrupt keeps between ticks: its reader, registered on the first tick.
pub struct TickReader {
    reader: Option<TableReader>,
    seen: Seen,
    probe: u8,
}

impl TickReader {
    const fn new() -> Self {
        Self {
            reader: None,
            seen: Seen::new(),
            probe: 0,
        }
    }
}

/// One snapshot per tick, through a reader of the handler's own, read as an interrupt would:
/// two lookups ([`check_lookups`]).
fn on_tick(state: &mut TickReader) {
    tick::acknowledge();
    INTERRUPTS.add(1);
    if state.reader.is_none() {
        // First tick: register (outside the read window; on ARMv6-M this takes a critical section).
        match TABLE.reader() {
            Ok(reader) => state.reader = Some(reader),
            Err(_) => return TICK.violation(Violation::NoReaderSlot),
        }
    }
    if let Some(reader) = &mut state.reader {
        read_once(reader, state.probe, &mut state.seen, &TICK, None);
        state.probe = (state.probe + CHANNELS / 2 + 1) % CHANNELS;
    }
}

/// Core 1's timer interrupt on the RP2040: TIMER alarm 0.
#[cfg(feature = "board-rp2040")]
#[interrupt]
fn TIMER_IRQ_0() {
    // Handler-local static: cortex-m-rt hands this handler `&mut` to it, exclusively.
    static mut STATE: TickReader = TickReader::new();
    on_tick(STATE);
}

/// Core 1's timer interrupt elsewhere: its SysTick.
#[cfg(not(feature = "board-rp2040"))]
#[cortex_m_rt::exception]
fn SysTick() {
    // Handler-local static: cortex-m-rt hands this handler `&mut` to it, exclusively.
    static mut STATE: TickReader = TickReader::new();
    on_tick(STATE);
}
