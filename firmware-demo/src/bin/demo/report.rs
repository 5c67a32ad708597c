//! The demo's log lines: progress while it runs, one summary at the end.
//!
//! The summary line is what `cargo xtask demo` parses: `SUMMARY PASS|FAIL` and then `key=value`
//! pairs. Keep its keys stable.

use crate::check::Violation;
use firmware_demo::tick;

/// Minimum snapshots for a run to count as a test at all (a stalled core 1 must not pass).
const MIN_SNAPSHOTS: u32 = 1_000;
/// Minimum timer-interrupt snapshots, likewise.
const MIN_ISR_READS: u32 = 100;
/// Whether the run must also keep its rates: on the RP2040, whose cores (emulated or real) run
/// at a fixed, known speed, every control-loop period starts on time and the interrupt fires
/// at its rate. Under QEMU without `-icount` (the M33 pair) time is the host's, shared with
/// whatever else it runs, so there the rates are reported, not judged.
const RATES_BINDING: bool = cfg!(any(feature = "board-rp2040", feature = "board-rp2350"));

/// Everything the summary reports.
#[derive(Default)]
pub struct Summary {
    /// Entries read on core 1 (iterated or looked up).
    pub reads: u32,
    /// Snapshots pinned and checked on core 1 (control loop and interrupt).
    pub snapshots: u32,
    /// Of those, taken by the timer interrupt.
    pub isr_reads: u32,
    /// Single-key writes published by core 0.
    pub writes: u32,
    /// Batches published by core 0.
    pub batches: u32,
    /// Publishing CASes lost to another writer (none with one writer).
    pub cas_retries: u32,
    /// Snapshots that broke an invariant, failed writes, and failed end-of-run checks.
    pub violations: u32,
    /// Critical sections core 1 took while reading (must be 0). Counted per read window, so one
    /// taken by the interrupt while it preempts a control-loop read counts twice: an upper bound.
    pub reader_cs: u32,
    /// Critical sections core 0 took in its table work (the writes and its own reads through
    /// the sole writer): must be 0.
    pub writer_cs: u32,
    /// Core 0's writes (trims and batches) per second of the run.
    pub writes_per_s: u32,
    /// Generations published.
    pub publishes: u32,
    /// Times a writer waited for a free slot.
    pub slot_waits: u32,
    /// Times the writer found no spare page it could reuse and waited.
    pub page_waits: u32,
    /// Control-loop periods that started late.
    pub overruns: u32,
    /// Critical sections core 1 took in all, outside its reads included.
    pub core1_cs: u32,
    /// Median and worst time (`firmware_demo::tick::cycles`, in `tick::CYCLES_UNIT`) of a
    /// control-loop read on core 1 while core 0 writes: the pin and one lookup.
    pub read_time: [u32; 2],
    /// First violation codes seen by the control loop and by the interrupt (0: none).
    pub first_violations: [u32; 2],
    /// How long core 0 wrote.
    pub seconds: u32,
    /// Core 1 stopped when asked and handed over its final counts.
    pub completed: bool,
    /// Both cores' critical-section counters passed their self-test.
    pub cs_counted: bool,
}

impl Summary {
    /// The verdict: a completed, meaningful run with counted critical sections, no violation,
    /// and no critical section taken while reading, nor by the sole writer while writing.
    pub fn passed(&self) -> bool {
        self.completed
            && self.cs_counted
            && self.violations == 0
            && self.reader_cs == 0
            && self.writer_cs == 0
            && self.snapshots >= MIN_SNAPSHOTS
            && self.isr_reads >= MIN_ISR_READS
            && (!RATES_BINDING || self.rates_kept())
    }

    /// No control-loop overrun, and every period of both rates read: the loop's and the
    /// interrupt's snapshots at least their rate times the seconds written, less one for where
    /// the run's end cuts a period.
    fn rates_kept(&self) -> bool {
        let (loop_hz, tick_hz) = (crate::reader::LOOP_HZ, crate::reader::TICK_HZ);
        let loop_reads = self.snapshots.saturating_sub(self.isr_reads);
        self.overruns == 0
            && loop_reads + 1 >= loop_hz * self.seconds
            && self.isr_reads + 1 >= tick_hz * self.seconds
    }
}

/// One progress line.
pub fn progress(elapsed_ms: u32, s: &Summary) {
    defmt::info!(
        "t={=u32}ms writes={=u32} batches={=u32} writer_cs={=u32} snapshots={=u32} isr_reads={=u32} violations={=u32} reader_cs={=u32}",
        elapsed_ms,
        s.writes,
        s.batches,
        s.writer_cs,
        s.snapshots,
        s.isr_reads,
        s.violations,
        s.reader_cs
    );
}

/// The final lines: what went wrong, if anything, then the summary.
pub fn summary(s: &Summary) {
    for (reader, code) in ["control loop", "timer interrupt"]
        .into_iter()
        .zip(s.first_violations)
    {
        if let Some(violation) = Violation::from_code(code) {
            defmt::error!("{=str}: first violation {}", reader, violation);
        }
    }
    if !s.cs_counted {
        defmt::error!(
            "the critical-section counter is not in the path: reader_cs and writer_cs prove nothing"
        );
    }
    if s.writer_cs != 0 {
        defmt::error!(
            "core 0 took {=u32} critical sections writing through the sole writer",
            s.writer_cs
        );
    }
    if !s.completed {
        defmt::error!("core 1 did not complete");
    }
    if s.snapshots < MIN_SNAPSHOTS || s.isr_reads < MIN_ISR_READS {
        defmt::error!(
            "too few reads to be meaningful (need {=u32} snapshots, {=u32} from the interrupt)",
            MIN_SNAPSHOTS,
            MIN_ISR_READS
        );
    }
    if RATES_BINDING && !s.rates_kept() {
        defmt::error!(
            "the rates were not kept: {=u32} overruns, {=u32} loop and {=u32} interrupt snapshots in {=u32} s",
            s.overruns,
            s.snapshots.saturating_sub(s.isr_reads),
            s.isr_reads,
            s.seconds
        );
    }
    // `println!`, not `info!`: printed whatever DEFMT_LOG filters out, since xtask needs it.
    defmt::println!(
        "SUMMARY {=str} reads={=u32} snapshots={=u32} isr_reads={=u32} writes={=u32} batches={=u32} cas_retries={=u32} violations={=u32} reader_cs={=u32} writer_cs={=u32} writes_per_s={=u32} publishes={=u32} slot_waits={=u32} page_waits={=u32} overruns={=u32} core1_cs={=u32} read_{=str}_median={=u32} read_{=str}_worst={=u32} seconds={=u32} completed={=u8}",
        if s.passed() { "PASS" } else { "FAIL" },
        s.reads,
        s.snapshots,
        s.isr_reads,
        s.writes,
        s.batches,
        s.cas_retries,
        s.violations,
        s.reader_cs,
        s.writer_cs,
        s.writes_per_s,
        s.publishes,
        s.slot_waits,
        s.page_waits,
        s.overruns,
        s.core1_cs,
        tick::CYCLES_UNIT,
        s.read_time[0],
        tick::CYCLES_UNIT,
        s.read_time[1],
        s.seconds,
        u8::from(s.completed)
    );
}
