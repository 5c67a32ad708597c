//! The instructions (cycles) of one read on core 1 while core 0 applies batches, for snapmap
//! (through core 1's registered `Reader`) and for the mutex map: many samples, as percentiles
//! and a histogram.
//!
//! # On the emulated RP2040
//!
//! Both cores run at once there (the emulator alternates them one instruction at a time), so
//! nothing below about yielding applies: core 0's preemption points do nothing, core 1 times
//! its reads back to back with its own cycle counter, and a mutex read that finds the lock
//! held spins on rp2040-hal's hardware spinlock until core 0's batch releases it. "Reads that
//! waited" is not counted there.
//!
//! # What "concurrent" means under `-icount`
//!
//! With `-icount` QEMU runs the two CPUs round-robin on one host thread: one executes at a time,
//! and virtual time (what SysTick counts) advances with the instructions of whichever runs. On
//! this QEMU (7.2, `mps2-an521`) a CPU keeps running until it executes `yield` or `wfe`; then the
//! other one runs, until *it* yields. Measured here: a CPU that has yielded is not resumed by the
//! 100 ms scheduler kick while the other one runs, nor by its `sev`; without any yield, the kick
//! switches CPUs every 100 million instructions. With `-icount shift=0,sleep=off` (the xtask's
//! setting; with the default `sleep=on`, 3 to 6 runs in 30 differed where core 1 waits for the
//! lock) the interleaving is cooperative, exact and the same on every run, and this benchmark
//! chooses it:
//!
//! - **Core 0** applies batches of 8 inserts, flat out or paced (a batch, then [`PACE`]
//!   instructions of other work). It has *preemption points*, about one insert's length apart:
//!   before each insert of a batch (inside snapmap's transaction; inside the mutex map's
//!   critical section, lock held), after each batch, and every [`PACE_STEP`] instructions of a
//!   paced writer's other work. At a pseudo-random one of every 1 to [`MAX_SKIP`] + 1 points it
//!   yields, and core 1 takes one sample there: the samples land all over the writer's loop,
//!   about in proportion to the time it spends in each part (snapmap's copy of the table has no
//!   point inside, but a snapmap read does not depend on where the writer is).
//! - **Core 1** times one read (`clock::Calibrated`, to within a few instructions), then
//!   yields back. It is never stopped inside a read except to *wait*: a read of the mutex map
//!   that finds core 0 inside its critical section spins in the board's spinlock, whose
//!   `spin_loop` hint is a `yield`, so core 0 runs on. On hardware the spinning core would take
//!   the lock the moment core 0 frees it; to model that, core 0 skips its points while core 1
//!   waits and yields right after it releases the lock. Such a sample is the rest of the
//!   writer's batch plus the read: what it would be on two real cores at the same speed.
//!
//! A snapmap read never waits for the writer. Its pin retries only if a publication lands
//! between its two loads of `current`, a window of a few instructions inside the read, where
//! this interleaving never preempts it; one retry costs one more turn of the pin loop (a hazard
//! store, a fence, a load and a compare), and a second needs a second publication inside that
//! window, which one writer (a publication takes well over a thousand instructions) cannot make.

use crate::clock::{self, Calibrated};
use crate::maps::{self, ENTRIES, KEYS, SNAP};
use crate::{out, stats};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use firmware_demo::board::Board;
use firmware_demo::mailbox::Mailbox;

/// Samples per configuration.
pub const SAMPLES: usize = 16384;
/// A paced writer's other work between two batches, in instructions (1 ms at 20 MHz: a
/// thousand batches a second, a configuration table's pace).
pub const PACE: u32 = 20_000;
/// A paced writer has a preemption point after every this many instructions of other work
/// (about one insert).
pub const PACE_STEP: u32 = 128;
/// Core 0 skips 0 to this many points between two samples (uniformly, pseudo-random).
pub const MAX_SKIP: u32 = 15;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Map {
    Snapmap,
    Mutex,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Core 0 only yields: the reader alone, for reference.
    Idle,
    FlatOut,
    Paced,
}

/// The configurations, in this order ([`MAILBOX`]'s job numbers count them from 1).
const RUNS: [(Map, Writer); 6] = [
    (Map::Snapmap, Writer::Idle),
    (Map::Snapmap, Writer::FlatOut),
    (Map::Snapmap, Writer::Paced),
    (Map::Mutex, Writer::Idle),
    (Map::Mutex, Writer::FlatOut),
    (Map::Mutex, Writer::Paced),
];

/// Core 0 posts each run here, core 1 samples it and publishes it finished.
static MAILBOX: Mailbox = Mailbox::new();
/// Core 1 is inside a sample; written by core 1 only. Core 0 runs while it is set only when
/// core 1 waits for the critical section core 0 holds.
static IN_SAMPLE: AtomicBool = AtomicBool::new(false);

/// Core 1's samples of the current run: written by core 1 during a run, read by core 0 after
/// it (ordered by the Release / Acquire of [`MAILBOX`]'s finished run).
struct Samples(UnsafeCell<[u32; SAMPLES]>);
// SAFETY: the two cores take turns, handed over by MAILBOX's post and finish (see above).
unsafe impl Sync for Samples {}
static SAMPLES_BUF: Samples = Samples(UnsafeCell::new([0; SAMPLES]));

/// Hands the CPU to the other core under QEMU's round-robin (a hint on hardware).
#[inline(always)]
fn yield_cpu() {
    // SAFETY: a hint instruction.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// A 32-bit xorshift step.
#[inline(always)]
fn next(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

/// Core 0's preemption points during one run.
struct Points {
    skip: u32,
    rng: u32,
    /// Batches after which core 1 was waiting for the lock.
    waited: u32,
}

impl Points {
    fn new() -> Self {
        Self {
            skip: 0,
            rng: 0x9E37_79B9,
            waited: 0,
        }
    }

    /// A point where core 1 may take its next sample. `lock_held`: inside the mutex map's
    /// critical section, where a waiting core 1 must not be resumed (it would only spin).
    #[inline(always)]
    fn point(&mut self, lock_held: bool) {
        if cfg!(any(feature = "board-rp2040", feature = "board-rp2350")) {
            // The cores run at once: nothing to hand over.
            return;
        }
        if IN_SAMPLE.load(Ordering::Relaxed) {
            if lock_held {
                return;
            }
            // Core 1 waits for the lock just released: let it take it now.
            self.waited += 1;
            yield_cpu();
            return;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        self.skip = next(&mut self.rng) % (MAX_SKIP + 1);
        yield_cpu();
    }
}

/// Runs every configuration and prints its `LAT` and `HIST` lines.
pub fn run(board: &mut Board) {
    board.start_core1(core1_main);
    for (index, &(map, writer)) in RUNS.iter().enumerate() {
        // Counted here rather than by `post`: one load less on core 0 (see `post_numbered`).
        let run = index as u32 + 1;
        MAILBOX.post_numbered(run);
        let (batches, waited) = write_until(run, map, writer);
        // SAFETY: core 1 finished this run (Acquire in `write_until`) and waits for the next.
        let samples = unsafe { &mut *SAMPLES_BUF.0.get() };
        let label = match map {
            Map::Snapmap => "snapmap-reader",
            Map::Mutex => "mutex",
        };
        let writer = match writer {
            Writer::Idle => "none",
            Writer::FlatOut => "flat-out",
            Writer::Paced => "paced",
        };
        stats::report(label, writer, samples, batches, waited);
    }
    let s = SNAP.stats();
    out!(
        "STATS at=end map=snapmap publishes={} cas_retries={} slot_waits={} page_waits={} page_copies={}",
        s.publishes,
        s.cas_retries,
        s.slot_waits,
        s.page_waits,
        s.page_copies
    );
}

/// Core 0 during run `run`: applies batches as `writer` says until core 1 has finished.
/// Returns the batches applied and how many times core 1 was waiting for one.
fn write_until(run: u32, map: Map, writer: Writer) -> (u32, u32) {
    let finished = || MAILBOX.finished(run);
    let mut points = Points::new();
    let mut batches = 0u32;
    while !finished() {
        match writer {
            Writer::Idle => {
                yield_cpu();
                continue;
            }
            Writer::FlatOut | Writer::Paced => {}
        }
        let i = batches as usize;
        match map {
            Map::Snapmap => {
                maps::snap_batch(i, batches, || points.point(false)).expect("batch applies")
            }
            Map::Mutex => {
                maps::peer_batch(i, batches, || points.point(true)).expect("batch applies")
            }
        }
        batches += 1;
        points.point(false);
        if writer == Writer::Paced {
            for _ in 0..PACE / PACE_STEP {
                clock::burn(PACE_STEP);
                points.point(false);
            }
        }
    }
    (batches, points.waited)
}

/// Core 1: waits for each run and takes its samples.
fn core1_main() -> ! {
    clock::start();
    let timer = Calibrated::new();
    MAILBOX.serve(|run| {
        let (map, _) = RUNS[run as usize - 1];
        sample(map, &timer);
    })
}

/// Takes [`SAMPLES`] timed reads of `map` on core 1, one at each point where core 0 yields.
fn sample(map: Map, timer: &Calibrated) {
    // SAFETY: core 0 does not touch the buffer until MAILBOX says this run is finished.
    let samples = unsafe { &mut *SAMPLES_BUF.0.get() };
    let mut reader = match map {
        Map::Snapmap => Some(SNAP.reader().expect("a free reader slot")),
        Map::Mutex => None,
    };
    // The same pseudo-random keys in every run.
    let mut rng = 0x2545_F491u32;
    for slot in samples.iter_mut() {
        let key = &KEYS[next(&mut rng) as usize % ENTRIES];
        // Core 0 runs to its next preemption point.
        yield_cpu();
        IN_SAMPLE.store(true, Ordering::Relaxed);
        *slot = match reader.as_mut() {
            Some(reader) => timer.time_once(|| reader.get(key)),
            None => timer.time_once(|| maps::peer_get(key)),
        };
        IN_SAMPLE.store(false, Ordering::Relaxed);
    }
}
