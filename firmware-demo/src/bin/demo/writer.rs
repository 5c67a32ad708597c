//! Core 0: owns the table and changes it for [`RUN_SECONDS`], then checks the end state and
//! reports.
//!
//! It writes through the map's sole [`Writer`](snapmap_core::Writer), taken once at start-up:
//! a write then takes no base pin and no compare-and-swap, and so on the RP2040 no critical
//! section either; core 0 counts the ones it takes in its table work ([`Writes::cs`]), which must
//! be none. Its own reads of the table are the writer's, which pin nothing.

use crate::check::{check, Seen, Violation};
use crate::reader::{self, DONE, STOP};
use crate::report::{self, Summary};
use crate::table::{Entry, TableWriter, CHANNELS, GAIN_TOTAL, TABLE};
use core::sync::atomic::Ordering;
use firmware_demo::board::{self, Board};
use firmware_demo::cs;
use snapmap_core::Error;

/// How long core 0 writes while core 1 reads.
pub const RUN_SECONDS: u32 = 3;
/// A progress line this often.
const PROGRESS_MS: u32 = 500;
/// One change in this many is a recalibration (a batch over every channel); the others trim one
/// channel's offset.
const BATCH_ONE_IN: u32 = 4;
/// How long core 0 waits for core 1 to stop, after asking it to.
const STOP_TIMEOUT_MS: u32 = 1_000;

/// A small deterministic pseudo-random sequence (xorshift32): which change, which channels.
struct XorShift32(u32);

impl XorShift32 {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// Core 0's own counts.
#[derive(Default)]
struct Writes {
    /// Single-key writes (offset trims) published.
    trims: u32,
    /// Batches (recalibrations) published; also the epoch of the current generation.
    batches: u32,
    /// Writes that returned an error.
    failures: u32,
    /// Critical sections core 0 took inside its table work: the fill, every trim and batch, and
    /// its final read. Counted around each, as core 1 counts its reads, so that what core 0 does
    /// in between (logging, reading the map's statistics) is left out.
    cs: u32,
}

impl Writes {
    /// Runs `work` (a write or a read of the table), adding the critical sections this core
    /// takes meanwhile to [`cs`](Self::cs).
    fn counting<T>(&mut self, work: impl FnOnce(&mut Self) -> T) -> T {
        let before = cs::taken_here();
        let result = work(self);
        self.cs = self.cs.wrapping_add(cs::taken_here().wrapping_sub(before));
        result
    }
}

const fn ms_to_ticks(ms: u32) -> u32 {
    ms * (board::TICKS_PER_SEC / 1_000)
}

/// Core 0's program.
pub fn core0_main(mut board: Board) -> ! {
    defmt::info!(
        "snapmap demo on {=str}: {=u8} channels, {=usize} generation slots, {=usize} reader slots, table {=usize} bytes",
        board::NAME,
        CHANNELS,
        crate::table::GENERATIONS,
        crate::table::READER_SLOTS,
        core::mem::size_of_val(&TABLE)
    );
    defmt::info!(
        "core 0 writes for {=u32} s through the sole writer (one batch in {=u32}); core 1 reads at {=u32} Hz and from its timer interrupt at {=u32} Hz",
        RUN_SECONDS,
        BATCH_ONE_IN,
        reader::LOOP_HZ,
        reader::TICK_HZ
    );
    let core0_cs_counted = cs::self_test();
    // Once, before core 1 runs (on the M0+ taking it is a compare-and-swap: a critical section,
    // outside the counted work). Nothing else writes the table, so it cannot be held already.
    let Ok(mut writer) = TABLE.writer() else {
        defmt::panic!("core 0 could not take the table's writer")
    };

    let mut writes = Writes::default();
    writes.counting(|writes| fill(&mut writer, writes));
    board.start_core1(reader::core1_main);

    let start = board::now();
    let mut next_progress = ms_to_ticks(PROGRESS_MS);
    let mut rng = XorShift32(0x2545_F491);
    loop {
        let elapsed = board::now().wrapping_sub(start);
        if elapsed >= RUN_SECONDS * board::TICKS_PER_SEC {
            break;
        }
        if elapsed >= next_progress {
            report::progress(elapsed / ms_to_ticks(1), &writes_so_far(&writer, &writes));
            next_progress += ms_to_ticks(PROGRESS_MS);
        }
        let r = rng.next();
        let result = writes.counting(|writes| {
            if r.is_multiple_of(BATCH_ONE_IN) {
                recalibrate(&mut writer, writes.batches + 1, r).map(|()| writes.batches += 1)
            } else {
                trim(&mut writer, r).map(|()| writes.trims += 1)
            }
        });
        if result.is_err() {
            writes.failures += 1;
        }
    }
    let ticks = board::now().wrapping_sub(start);

    // Ask core 1 to stop, and wait (bounded) for its final counters.
    STOP.store(true, Ordering::Relaxed);
    cortex_m::asm::sev();
    let asked = board::now();
    let mut completed = true;
    // Acquire: pairs with core 1's Release store, making every counter it wrote visible.
    while !DONE.load(Ordering::Acquire) {
        if board::now().wrapping_sub(asked) > ms_to_ticks(STOP_TIMEOUT_MS) {
            defmt::error!("core 1 did not stop within {=u32} ms", STOP_TIMEOUT_MS);
            completed = false;
            break;
        }
    }

    let failed_checks = final_checks(&writer, &mut writes);
    let mut summary = writes_so_far(&writer, &writes);
    summary.violations += failed_checks;
    summary.seconds = ticks / board::TICKS_PER_SEC;
    summary.writes_per_s = per_second(writes.trims + writes.batches, ticks);
    summary.completed = completed;
    summary.cs_counted = core0_cs_counted && reader::CORE1_CS_COUNTED.load(Ordering::Relaxed);
    report::summary(&summary);
    board::exit(summary.passed())
}

/// `count` in `ticks` of the time base, per second (rounded down).
fn per_second(count: u32, ticks: u32) -> u32 {
    let per_second = u64::from(count) * u64::from(board::TICKS_PER_SEC) / u64::from(ticks.max(1));
    u32::try_from(per_second).unwrap_or(u32::MAX)
}

/// Publishes all channels at once, epoch 0, the gain shared equally.
fn fill(writer: &mut TableWriter, writes: &mut Writes) {
    let filled = writer.update(|tx| {
        for channel in 0..CHANNELS {
            tx.insert(
                channel,
                Entry::new(channel, 0, GAIN_TOTAL / u32::from(CHANNELS), 0),
            )?;
        }
        Ok(())
    });
    if filled.is_err() {
        writes.failures += 1;
    }
}

/// A batch: moves up to 64 units of gain from one channel to another (the total is conserved)
/// and stamps every channel with `epoch`. Readers see all of it or none of it.
fn recalibrate(writer: &mut TableWriter, epoch: u32, r: u32) -> Result<(), Error> {
    let from = (r >> 8) as u8 % CHANNELS;
    let to = (r >> 16) as u8 % CHANNELS;
    let amount = (r >> 24) % 64 + 1;
    // Re-runnable (the sole writer runs it again after waiting for pages): it only reads its
    // arguments and the transaction's own copy.
    writer.update(|tx| {
        let moved = tx.get(&from).map_or(0, |entry| entry.gain.min(amount));
        for channel in 0..CHANNELS {
            let entry = tx.get_mut(&channel)?.ok_or(Error::Aborted)?;
            let mut gain = entry.gain;
            if channel == from {
                gain -= moved;
            }
            if channel == to {
                gain += moved;
            }
            *entry = Entry::new(channel, epoch, gain, entry.offset);
        }
        Ok(())
    })
}

/// A single-key write: a new offset for one channel.
fn trim(writer: &mut TableWriter, r: u32) -> Result<(), Error> {
    let channel = r as u8 % CHANNELS;
    let offset = r >> 8;
    writer.update(|tx| {
        let entry = tx.get_mut(&channel)?.ok_or(Error::Aborted)?;
        *entry = Entry::new(channel, entry.epoch, entry.gain, offset);
        Ok(())
    })
}

/// Everyone's counts so far (core 1's are exact once it is done).
fn writes_so_far(writer: &TableWriter, writes: &Writes) -> Summary {
    let stats = writer.stats();
    let (lp, tick) = (&reader::LOOP, &reader::TICK);
    Summary {
        reads: lp.entries.get().wrapping_add(tick.entries.get()),
        snapshots: lp.snapshots.get().wrapping_add(tick.snapshots.get()),
        isr_reads: tick.snapshots.get(),
        writes: writes.trims,
        batches: writes.batches,
        cas_retries: stats.cas_retries as u32,
        violations: lp
            .violations
            .get()
            .wrapping_add(tick.violations.get())
            .wrapping_add(writes.failures),
        reader_cs: lp
            .critical_sections
            .get()
            .wrapping_add(tick.critical_sections.get()),
        writer_cs: writes.cs,
        publishes: stats.publishes as u32,
        slot_waits: stats.slot_waits as u32,
        page_waits: stats.page_waits as u32,
        overruns: reader::OVERRUNS.get(),
        core1_cs: reader::CORE1_CS_TOTAL.get(),
        read_time: [reader::READ_CYCLES.median(), reader::READ_CYCLES.worst()],
        first_violations: [lp.first_violation.get(), tick.first_violation.get()],
        ..Summary::default()
    }
}

/// Core 0's end-of-run checks, once core 1 is done: the writer's last snapshot is consistent,
/// its version and epoch account for every write (no update lost, none published twice), and a
/// write through the map is refused while the writer lives. Returns the number of failed
/// checks.
fn final_checks(writer: &TableWriter, writes: &mut Writes) -> u32 {
    let mut failed = 0;
    let mut fail = |what: &str| {
        defmt::error!("end of run: {=str}", what);
        failed += 1;
    };
    let stats = writer.stats();
    // The fill, every trim and every batch each published one generation.
    let expected_version = 1 + u64::from(writes.trims) + u64::from(writes.batches);
    let batches = writes.batches;
    // The writer's own read: no pin, so no reader slot and (counted) no critical section.
    let (checked, version, epoch) = writes.counting(|_| {
        let snapshot = writer.snapshot();
        let checked = check(&snapshot, 0, &mut Seen::new());
        let epoch = snapshot.get(&0).map(|entry| entry.epoch);
        (checked, snapshot.version(), epoch)
    });
    if let Err(violation) = checked {
        defmt::error!("final snapshot: {}", violation);
        fail("final snapshot inconsistent");
    }
    if version != expected_version {
        defmt::error!(
            "final version {=u64}, expected {=u64}",
            version,
            expected_version
        );
        fail("an update was lost or duplicated");
    }
    if epoch != Some(batches) {
        fail("the last batch's epoch is not current");
    }
    if stats.publishes as u64 != expected_version {
        fail("publish count does not match the writes");
    }
    if stats.slot_waits != 0 {
        fail("the writer waited for a slot although G >= R + 2");
    }
    // Refused at once, before it claims anything: nothing to undo if it is.
    if TABLE.update(|_| Ok(())) != Err(Error::WriterHeld) {
        fail("a write through the map was not refused while the sole writer lives");
    }
    if failed != 0 {
        defmt::error!("{}", Violation::FinalState);
    }
    failed
}
