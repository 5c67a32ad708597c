//! Two-core races, on both two-core boards:
//! - the emulated dual Cortex-M33 (QEMU, each CPU on its own host thread: real parallel races),
//!   where snapmap's CAS is the hardware's LDREX/STREX;
//! - the emulated RP2040 (two Cortex-M0+, no CAS): writers take the critical-section CAS
//!   (rp2040-hal's: masked interrupts plus hardware spinlock 31) against each other, readers
//!   only load and store. Its two cores run in instruction lockstep, which would replay one
//!   interleaving every time; [`Jitter`] delays each core by a pseudo-random number of cycles
//!   between operations so the races land at varied points of a write.
//!
//! Core 0 runs the test runner; core 1 waits for jobs. [`on_both_cores`] runs one job on both
//! cores at once (each sees its core id) and returns when both are done.

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use firmware_demo::board::{self, Board};
use firmware_demo::counter::SoloCounter;
use firmware_demo::cs;
use firmware_demo::mailbox::Mailbox;
use snapmap_core::{Error, SnapMap};

/// The job core 1 runs next (a `fn(usize)`); written by core 0 only, before it posts a round.
static JOB: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());
/// The job rounds: core 0 posts each, core 1 publishes it started and finished.
static ROUNDS: Mailbox = Mailbox::new();

/// Starts core 1's job loop.
pub fn start(board: &mut Board) {
    board.start_core1(core1_jobs);
}

fn core1_jobs() -> ! {
    ROUNDS.serve(|_round| {
        // Relaxed: the mailbox's Acquire load of the round pairs with core 0's Release post, so
        // the pointer stored before it is visible.
        let job = JOB.load(Ordering::Relaxed);
        // SAFETY: core 0 only ever stores `fn(usize)` pointers in JOB before posting a round.
        let job = unsafe { core::mem::transmute::<*mut (), fn(usize)>(job) };
        job(1);
    })
}

/// Runs `job` on both cores, starting together, and returns when both have finished.
fn on_both_cores(job: fn(usize)) {
    assert_eq!(board::core_id(), 0);
    // Relaxed: the post's Release store orders it before the round core 1 acquires.
    JOB.store(job as *mut (), Ordering::Relaxed);
    let round = ROUNDS.post();
    // Start together: core 1 has picked the job up.
    while !ROUNDS.started(round) {}
    job(0);
    while !ROUNDS.finished(round) {}
}

/// A per-core pseudo-random delay between operations (xorshift32, a seed per core).
struct Jitter(u32);

impl Jitter {
    fn new(core: usize) -> Self {
        Self(0x2545_F491 ^ (core as u32).wrapping_mul(0x9E37_79B9))
    }

    /// Waits 0 to 255 cycles or so, a different number each time.
    fn pause(&mut self) {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        cortex_m::asm::delay(self.0 & 0xFF);
    }
}

/// Counters with one writer per core.
struct PerCore([SoloCounter; 2]);

impl PerCore {
    const fn new() -> Self {
        Self([SoloCounter::new(), SoloCounter::new()])
    }
    fn add(&self, core: usize, n: u32) {
        self.0[core].add(n);
    }
    fn get(&self, core: usize) -> u32 {
        self.0[core].get()
    }
    fn total(&self) -> u32 {
        self.get(0) + self.get(1)
    }
}

/// Both cores increment a shared counter (and one of their own) by read-modify-write
/// transactions: every increment survives the CAS races.
pub fn increments_from_both_cores_are_never_lost() {
    const ROUNDS: u32 = 3_000;
    // Two writers: G >= R + W + 1 = 2 + 2 + 1.
    static MAP: SnapMap<u8, u32, 8, 5, 2> = SnapMap::new();
    fn job(core: usize) {
        let own = 1 + core as u8;
        let mut jitter = Jitter::new(core);
        for _ in 0..ROUNDS {
            jitter.pause();
            MAP.update(|tx| {
                let shared = tx.get(&0).copied().unwrap_or(0);
                tx.insert(0, shared + 1)?;
                let mine = tx.get(&own).copied().unwrap_or(0);
                tx.insert(own, mine + 1)?;
                Ok(())
            })
            .unwrap();
        }
    }
    on_both_cores(job);
    let stats = MAP.stats();
    note!(
        "{} transactions, {} CAS retries (lost races, each rebased and re-applied), {} slot waits",
        stats.publishes,
        stats.cas_retries,
        stats.slot_waits
    );
    assert_eq!(MAP.get(&0), Some(2 * ROUNDS), "a shared increment was lost");
    assert_eq!((MAP.get(&1), MAP.get(&2)), (Some(ROUNDS), Some(ROUNDS)));
    assert_eq!(MAP.snapshot().version(), u64::from(2 * ROUNDS));
    assert_eq!(stats.slot_waits, 0, "G >= R + W + 1, yet a writer waited");
    if stats.cas_retries == 0 {
        note!("(no CAS race this run: the cores did not overlap)");
    }
}

/// Both cores alternate between publishing batches (a transfer that conserves the total and a
/// stamp on every key) and checking snapshots through their own registered reader.
pub fn batches_from_both_cores_stay_atomic() {
    const KEYS: u8 = 32;
    const ROUNDS: u32 = 2_000;
    const TOTAL: u32 = KEYS as u32 * 100;
    // Each key: (stamp of the last batch, amount). Two readers + two base pins: R = 4;
    // G >= R + W + 1 = 4 + 2 + 1.
    static MAP: SnapMap<u8, (u32, u32), { KEYS as usize }, 7, 4> = SnapMap::new();
    static CHECKED: PerCore = PerCore::new();
    static VIOLATIONS: PerCore = PerCore::new();
    static BATCHES: PerCore = PerCore::new();
    MAP.update(|tx| {
        for key in 0..KEYS {
            tx.insert(key, (0, TOTAL / u32::from(KEYS)))?;
        }
        Ok(())
    })
    .unwrap();

    fn job(core: usize) {
        let mut reader = MAP.reader().unwrap();
        let mut last_version = 0;
        let mut rng = 0x9E37_79B9u32 ^ core as u32;
        let mut jitter = Jitter::new(core);
        for round in 1..=ROUNDS {
            jitter.pause();
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            if round % 2 == 0 {
                let stamp = (core as u32) << 24 | round;
                let (from, to) = (rng as u8 % KEYS, (rng >> 8) as u8 % KEYS);
                MAP.update(|tx| {
                    let moved = tx.get(&from).map_or(0, |(_, amount)| (*amount).min(7));
                    for key in 0..KEYS {
                        let entry = tx.get_mut(&key)?.ok_or(Error::Aborted)?;
                        let mut amount = entry.1;
                        if key == from {
                            amount -= moved;
                        }
                        if key == to {
                            amount += moved;
                        }
                        *entry = (stamp, amount);
                    }
                    Ok(())
                })
                .unwrap();
                BATCHES.add(core, 1);
            } else {
                let snapshot = reader.snapshot();
                let stamp = snapshot.get(&0).map(|(stamp, _)| *stamp);
                let one_stamp = snapshot.iter().all(|(_, (s, _))| Some(*s) == stamp);
                let total: u32 = snapshot.iter().map(|(_, (_, amount))| *amount).sum();
                let ok = one_stamp
                    && total == TOTAL
                    && snapshot.len() == usize::from(KEYS)
                    && snapshot.version() >= last_version;
                last_version = snapshot.version();
                CHECKED.add(core, 1);
                if !ok {
                    VIOLATIONS.add(core, 1);
                }
            }
        }
    }
    on_both_cores(job);
    let stats = MAP.stats();
    note!(
        "{} batches, {} snapshots checked, {} violations, {} CAS retries, {} slot waits",
        BATCHES.total(),
        CHECKED.total(),
        VIOLATIONS.total(),
        stats.cas_retries,
        stats.slot_waits
    );
    assert_eq!(VIOLATIONS.total(), 0, "a snapshot showed part of a batch");
    assert_eq!(
        stats.publishes as u32,
        1 + BATCHES.total(),
        "a batch was lost"
    );
    assert_eq!(stats.slot_waits, 0, "G >= R + W + 1, yet a writer waited");
    let total: u32 = MAP.snapshot().iter().map(|(_, (_, amount))| *amount).sum();
    assert_eq!(total, TOTAL);
}

/// Core 0 publishes batches flat out while core 1 reads flat out: every snapshot whole, versions
/// never back, and core 1 takes no critical section while reading.
pub fn reader_on_one_core_writer_on_the_other() {
    const KEYS: u8 = 32;
    const WRITES: u32 = 5_000;
    static MAP: SnapMap<u8, u32, { KEYS as usize }, 4, 2> = SnapMap::new();
    static WRITING: AtomicBool = AtomicBool::new(true);
    static READS: SoloCounter = SoloCounter::new();
    static VIOLATIONS: SoloCounter = SoloCounter::new();
    static CS_WHILE_READING: SoloCounter = SoloCounter::new();
    static NEW_VERSIONS: SoloCounter = SoloCounter::new();
    fn stamp_all(stamp: u32) {
        MAP.update(|tx| {
            for key in 0..KEYS {
                tx.insert(key, stamp)?;
            }
            Ok(())
        })
        .unwrap();
    }
    stamp_all(0);
    WRITING.store(true, Ordering::Relaxed);

    fn job(core: usize) {
        let mut jitter = Jitter::new(core);
        if core == 0 {
            for stamp in 1..=WRITES {
                jitter.pause();
                stamp_all(stamp);
            }
            WRITING.store(false, Ordering::Relaxed);
            return;
        }
        let mut reader = MAP.reader().unwrap();
        let mut last_version = 0;
        while WRITING.load(Ordering::Relaxed) {
            jitter.pause();
            let before = cs::taken_here();
            let (ok, version) = {
                let snapshot = reader.snapshot();
                let stamp = snapshot.get(&0).copied();
                let ok = snapshot.len() == usize::from(KEYS)
                    && snapshot.iter().all(|(_, s)| Some(*s) == stamp)
                    && stamp.map(u64::from) == Some(snapshot.version() - 1);
                (ok, snapshot.version())
            };
            CS_WHILE_READING.add(cs::taken_here().wrapping_sub(before));
            READS.add(1);
            if !ok || version < last_version {
                VIOLATIONS.add(1);
            }
            if version != last_version {
                NEW_VERSIONS.add(1);
            }
            last_version = version;
        }
    }
    on_both_cores(job);
    note!(
        "{} batches on core 0; {} snapshots on core 1 ({} distinct versions), {} violations, {} critical sections while reading",
        WRITES,
        READS.get(),
        NEW_VERSIONS.get(),
        VIOLATIONS.get(),
        CS_WHILE_READING.get()
    );
    assert_eq!(
        VIOLATIONS.get(),
        0,
        "core 1 saw a torn batch or a version going back"
    );
    assert_eq!(CS_WHILE_READING.get(), 0);
    assert!(READS.get() > 0, "core 1 never read");
}

/// With slots scarce (G = 3, one-off reads only) the `try_` forms fail often on both cores (no
/// free slot, or no page they may reuse yet), and
/// the blocking forms wait; yet every success is counted exactly once and nothing else is
/// published.
pub fn try_forms_under_contention_lose_nothing() {
    const ROUNDS: u32 = 3_000;
    static MAP: SnapMap<u8, u32, 8, 3, 0> = SnapMap::new();
    static SUCCEEDED: PerCore = PerCore::new();
    static REFUSED: PerCore = PerCore::new();
    static BLOCKING: PerCore = PerCore::new();
    fn job(core: usize) {
        let own = 1 + core as u8;
        let mut jitter = Jitter::new(core);
        for round in 0..ROUNDS {
            jitter.pause();
            let increment = |tx: &mut snapmap_core::Txn<'_, u8, u32, 8>| {
                let shared = tx.get(&0).copied().unwrap_or(0);
                tx.insert(0, shared + 1)?;
                let mine = tx.get(&own).copied().unwrap_or(0);
                tx.insert(own, mine + 1)?;
                Ok(())
            };
            if round % 4 == 3 {
                MAP.update(increment).unwrap();
                BLOCKING.add(core, 1);
                continue;
            }
            match MAP.try_update(increment) {
                Ok(()) => SUCCEEDED.add(core, 1),
                // No slot, or no page: the other core's writes and the one-off reads' pins hold
                // the spare pages for a moment; or the other core's write has the turn.
                Err(Error::NoFreeGeneration | Error::NoFreePage | Error::Contended) => {
                    REFUSED.add(core, 1)
                }
                Err(other) => panic!("unexpected error {other:?}"),
            }
            // One-off reads pin generations too (counted), and so compete with the writers.
            let _ = MAP.get(&0);
        }
    }
    on_both_cores(job);
    let stats = MAP.stats();
    let done = |core| SUCCEEDED.get(core) + BLOCKING.get(core);
    note!(
        "{} try_update succeeded, {} refused (no free slot or page, or the other's turn), {} blocking updates; {} CAS retries, {} slot waits, {} page waits",
        SUCCEEDED.total(),
        REFUSED.total(),
        BLOCKING.total(),
        stats.cas_retries,
        stats.slot_waits,
        stats.page_waits
    );
    assert_eq!(
        MAP.get(&0),
        Some(done(0) + done(1)),
        "an increment was lost or doubled"
    );
    assert_eq!((MAP.get(&1), MAP.get(&2)), (Some(done(0)), Some(done(1))));
    assert_eq!(stats.publishes as u32, done(0) + done(1));
}

/// Core 0 publishes batches through the map's sole writer while core 1 reads: every snapshot
/// whole, versions never back, and *neither* core takes a critical section (the writer's
/// publication is a store).
pub fn sole_writer_on_one_core_reader_on_the_other() {
    const KEYS: u8 = 32;
    const WRITES: u32 = 5_000;
    static MAP: SnapMap<u8, u32, { KEYS as usize }, 4, 2> = SnapMap::new();
    static WRITING: AtomicBool = AtomicBool::new(true);
    static READS: SoloCounter = SoloCounter::new();
    static VIOLATIONS: SoloCounter = SoloCounter::new();
    static CS_WHILE_READING: SoloCounter = SoloCounter::new();
    static CS_WHILE_WRITING: SoloCounter = SoloCounter::new();
    WRITING.store(true, Ordering::Relaxed);

    fn job(core: usize) {
        let mut jitter = Jitter::new(core);
        if core == 0 {
            let mut writer = MAP.writer().unwrap();
            let before = cs::taken_here();
            for stamp in 1..=WRITES {
                jitter.pause();
                writer
                    .update(|tx| {
                        for key in 0..KEYS {
                            tx.insert(key, stamp)?;
                        }
                        Ok(())
                    })
                    .unwrap();
            }
            CS_WHILE_WRITING.add(cs::taken_here().wrapping_sub(before));
            drop(writer);
            WRITING.store(false, Ordering::Relaxed);
            return;
        }
        let mut reader = MAP.reader().unwrap();
        let mut last_version = 0;
        while WRITING.load(Ordering::Relaxed) {
            jitter.pause();
            let before = cs::taken_here();
            let (ok, version) = {
                let snapshot = reader.snapshot();
                let stamp = snapshot.get(&0).copied();
                let ok = snapshot.is_empty()
                    || snapshot.len() == usize::from(KEYS)
                        && snapshot.iter().all(|(_, s)| Some(*s) == stamp)
                        && stamp.map(u64::from) == Some(snapshot.version());
                (ok, snapshot.version())
            };
            CS_WHILE_READING.add(cs::taken_here().wrapping_sub(before));
            READS.add(1);
            if !ok || version < last_version {
                VIOLATIONS.add(1);
            }
            last_version = version;
        }
    }
    on_both_cores(job);
    note!(
        "{} batches by the sole writer on core 0 ({} critical sections); {} snapshots on core 1, {} violations, {} critical sections while reading",
        WRITES,
        CS_WHILE_WRITING.get(),
        READS.get(),
        VIOLATIONS.get(),
        CS_WHILE_READING.get()
    );
    assert_eq!(
        VIOLATIONS.get(),
        0,
        "core 1 saw a torn batch or a version going back"
    );
    assert_eq!(CS_WHILE_READING.get(), 0);
    assert_eq!(
        CS_WHILE_WRITING.get(),
        0,
        "the sole writer took critical sections"
    );
    assert!(READS.get() > 0, "core 1 never read");
    assert_eq!(MAP.snapshot().version(), u64::from(WRITES));
}

/// Both cores increment a counter; core 0 alternates between taking the map's sole writer for a
/// few increments and writing through the map, core 1 writes through the map, retrying while
/// core 0 holds the writer (`WriterHeld`). The takeover waits for core 1's write in flight, and
/// the handback leaves the map to it: no increment is lost.
pub fn the_sole_writer_and_shared_writers_take_turns() {
    const ROUNDS: u32 = 1_000;
    static MAP: SnapMap<u8, u32, 8, 5, 2> = SnapMap::new();
    static DONE: PerCore = PerCore::new();
    static HELD: PerCore = PerCore::new();
    fn increment(tx: &mut snapmap_core::Txn<'_, u8, u32, 8>) -> Result<(), Error> {
        let count = tx.get(&0).copied().unwrap_or(0);
        tx.insert(0, count + 1).map(drop)
    }
    fn job(core: usize) {
        let mut jitter = Jitter::new(core);
        for round in 0..ROUNDS {
            jitter.pause();
            if core == 0 && round % 2 == 0 {
                let mut writer = MAP.writer().unwrap();
                for _ in 0..3 {
                    writer.update(increment).unwrap();
                }
                DONE.add(core, 3);
                continue;
            }
            loop {
                match MAP.update(increment) {
                    Ok(()) => break,
                    Err(Error::WriterHeld) => {
                        HELD.add(core, 1);
                        jitter.pause();
                    }
                    Err(other) => panic!("unexpected error {other:?}"),
                }
            }
            DONE.add(core, 1);
        }
    }
    on_both_cores(job);
    note!(
        "{} increments ({} by core 0, {} through its sole writer); core 1 found the writer held {} times",
        DONE.total(),
        DONE.get(0),
        3 * ROUNDS / 2,
        HELD.get(1)
    );
    assert_eq!(
        MAP.get(&0),
        Some(DONE.total()),
        "an increment was lost or doubled"
    );
    assert_eq!(MAP.snapshot().version(), u64::from(DONE.total()));
}
