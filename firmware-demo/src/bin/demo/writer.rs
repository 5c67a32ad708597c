//! Core 0: owns the table and changes it for [`RUN_SECONDS`], then checks the end state and
//! reports.

use crate::check::{check, Seen, Violation};
use crate::reader::{self, DONE, STOP};
use crate::report::{self, Summary};
use crate::table::{Entry, CHANNELS, GAIN_TOTAL, TABLE};
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
        "core 0 writes for {=u32} s (one batch in {=u32}); core 1 reads at {=u32} Hz and from its timer interrupt at {=u32} Hz",
        RUN_SECONDS,
        BATCH_ONE_IN,
        reader::LOOP_HZ,
        reader::TICK_HZ
    );
    let core0_cs_counted = cs::self_test();

    let mut writes = Writes::default();
    fill(&mut writes);
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
            report::progress(elapsed / ms_to_ticks(1), &writes_so_far(&writes));
            next_progress += ms_to_ticks(PROGRESS_MS);
        }
        let r = rng.next();
        let result = if r.is_multiple_of(BATCH_ONE_IN) {
            recalibrate(writes.batches + 1, r).map(|()| writes.batches += 1)
        } else {
            trim(r).map(|()| writes.trims += 1)
        };
        if result.is_err() {
            writes.failures += 1;
        }
    }
    let seconds = board::now().wrapping_sub(start) / board::TICKS_PER_SEC;

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

    let mut summary = writes_so_far(&writes);
    summary.seconds = seconds;
    summary.completed = completed;
    summary.cs_counted = core0_cs_counted && reader::CORE1_CS_COUNTED.load(Ordering::Relaxed);
    summary.violations += final_checks(&writes);
    report::summary(&summary);
    board::exit(summary.passed())
}

/// Publishes all channels at once, epoch 0, the gain shared equally.
fn fill(writes: &mut Writes) {
    let filled = TABLE.update(|tx| {
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
fn recalibrate(epoch: u32, r: u32) -> Result<(), Error> {
    let from = (r >> 8) as u8 % CHANNELS;
    let to = (r >> 16) as u8 % CHANNELS;
    let amount = (r >> 24) % 64 + 1;
    // Re-runnable (snapmap re-applies it if another writer publishes first): it only reads its
    // arguments and the transaction's own copy.
    TABLE.update(|tx| {
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
fn trim(r: u32) -> Result<(), Error> {
    let channel = r as u8 % CHANNELS;
    let offset = r >> 8;
    TABLE.update(|tx| {
        let entry = tx.get_mut(&channel)?.ok_or(Error::Aborted)?;
        *entry = Entry::new(channel, entry.epoch, entry.gain, offset);
        Ok(())
    })
}

/// Everyone's counts so far (core 1's are exact once it is done).
fn writes_so_far(writes: &Writes) -> Summary {
    let stats = TABLE.stats();
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

/// Core 0's end-of-run checks, once core 1 is done: a last snapshot is consistent, and its
/// version and epoch account for every write (no update lost, none published twice).
/// Returns the number of failed checks.
fn final_checks(writes: &Writes) -> u32 {
    let mut failed = 0;
    let mut fail = |what: &str| {
        defmt::error!("end of run: {=str}", what);
        failed += 1;
    };
    let stats = TABLE.stats();
    // The fill, every trim and every batch each published one generation.
    let expected_version = 1 + u64::from(writes.trims) + u64::from(writes.batches);
    match TABLE.reader() {
        Err(_) => fail("no reader slot left for the final snapshot"),
        Ok(mut final_reader) => {
            let snapshot = final_reader.snapshot();
            let mut seen = Seen::new();
            if let Err(violation) = check(&snapshot, 0, &mut seen) {
                defmt::error!("final snapshot: {}", violation);
                fail("final snapshot inconsistent");
            }
            if snapshot.version() != expected_version {
                defmt::error!(
                    "final version {=u64}, expected {=u64}",
                    snapshot.version(),
                    expected_version
                );
                fail("an update was lost or duplicated");
            }
            if snapshot.get(&0).map(|entry| entry.epoch) != Some(writes.batches) {
                fail("the last batch's epoch is not current");
            }
        }
    }
    if stats.publishes as u64 != expected_version {
        fail("publish count does not match the writes");
    }
    if stats.slot_waits != 0 {
        fail("a writer waited for a slot although G >= R + W + 1");
    }
    if failed != 0 {
        defmt::error!("{}", Violation::FinalState);
    }
    failed
}
