//! snapmap with embassy on both cores of the RP2040.
//!
//! - Core 0 runs embassy's executor with the writer task, which holds the map's sole `Writer`
//!   (no compare-and-swap in its writes): every 200 µs (embassy-time) it publishes a one-key
//!   write or, one time in four, a batch that stamps every batch key with one epoch; now and
//!   then eight writes back to back, which readers see coalesced. Each write
//!   reports the version it published (`update_versioned`) and carries a stamp of the shared
//!   cycle clock (below), taken inside its transaction just before it publishes.
//! - Core 1 runs a second executor with two reader tasks, each with a registered `Reader` of
//!   its own, that `reader.changed().await` and check the snapshot they get (every batch key
//!   holds one epoch, versions only go up); and TIMER alarm 1's interrupt on core 1 reads a
//!   snapshot 2,000 times a second through a third `Reader`.
//! - Critical sections are counted per core (`cs`): `reader_cs` are those taken while reading
//!   (the tasks' snapshot checks and the interrupt's reads), which must be 0; `await_cs` those
//!   taken on core 1 while a task awaits `changed()`: its waker's arming and disarming (the M0+
//!   has no compare-and-swap) and embassy's executor (its run queue) meanwhile.
//! - The latency: PWM slice 0 counts clk_sys (divider 1, wrapping at 2^16, 524 µs), a clock both
//!   cores read. A reader woken by `changed()` reads the stamp and the clock: the cycles from the
//!   writer's stamp to the awaiting task's read, across cores (`wake_cycles_*`). The stamp is
//!   taken inside the transaction, before its last insert, so this includes the rest of the
//!   write: `write_tail_cycles_*` is the writer's own time from its stamp to its write's return
//!   (the last insert, the publication and the waking of both readers).
//!
//! It ends with `SUMMARY PASS|FAIL ...` and a `bkpt` (the emulated RP2040 and `probe-rs run` both
//! stop there).
#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use defmt::{info, warn};
use defmt_rtt as _;
use embassy_executor::{Executor, Spawner};
use embassy_rp::interrupt;
use embassy_rp::interrupt::InterruptExt;
use embassy_rp::multicore::{spawn_core1, Stack};
use embassy_rp::pac;
use embassy_time::{Duration, Instant, Timer};
use panic_probe as _;
use snapmap_core::{ReaderOf, SnapMap, SnapshotOf};
use static_cell::StaticCell;

mod cs;

/// Keys `0..BATCH_KEYS` are rewritten together by every batch, each to the batch's epoch.
const BATCH_KEYS: u32 = 8;
/// Keys written one at a time.
const SINGLE_KEYS: core::ops::Range<u32> = 16..48;
/// The writer's stamp: the shared clock just before the write publishes.
const STAMP: u32 = 100;

/// The map's type, named once: 64 entries, 6 generation slots, 3 reader slots (two tasks and the
/// interrupt), 16 spare pages. See snapmap-core's docs, "Naming a map's type once".
type Map = SnapMap<u32, u32, 64, 6, 3, 16>;
type MapReader = ReaderOf<'static, Map>;

static MAP: Map = SnapMap::new();

/// How long the writer writes.
const RUN: Duration = Duration::from_millis(1000);
/// The writer's period.
const PERIOD: Duration = Duration::from_micros(200);
/// The interrupt reader's period, in TIMER microseconds.
const ISR_PERIOD_US: u32 = 500;

// What the writer tells the rest.
static PUBLISHED: AtomicU32 = AtomicU32::new(0);
static LAST_VERSION: AtomicU32 = AtomicU32::new(0);
static WRITER_DONE: AtomicBool = AtomicBool::new(false);

/// One reader's tallies, written by its task only, read by core 0 at the end.
struct Tally {
    wakeups: AtomicU32,
    coalesced: AtomicU32,
    violations: AtomicU32,
    reader_cs: AtomicU32,
    await_cs: AtomicU32,
    last_seen: AtomicU32,
    done: AtomicBool,
    /// Latency samples (cycles), in buckets of 8 cycles up to 16,384: median and worst.
    histogram: Histogram,
}

impl Tally {
    const fn new() -> Self {
        Self {
            wakeups: AtomicU32::new(0),
            coalesced: AtomicU32::new(0),
            violations: AtomicU32::new(0),
            reader_cs: AtomicU32::new(0),
            await_cs: AtomicU32::new(0),
            last_seen: AtomicU32::new(0),
            done: AtomicBool::new(false),
            histogram: Histogram::new(),
        }
    }
}

static TALLIES: [Tally; 2] = [Tally::new(), Tally::new()];
/// The writer's samples: cycles from its stamp to the return of its write.
static WRITE_TAIL: Histogram = Histogram::new();

// The interrupt reader's tallies.
static ISR_READS: AtomicU32 = AtomicU32::new(0);
static ISR_VIOLATIONS: AtomicU32 = AtomicU32::new(0);
static ISR_CS: AtomicU32 = AtomicU32::new(0);
static ISR_STOP: AtomicBool = AtomicBool::new(false);

/// Latency samples: buckets of `BUCKET` cycles, and the worst sample exactly.
struct Histogram {
    buckets: [AtomicU32; 256],
    worst: AtomicU32,
    count: AtomicU32,
}

const BUCKET: u32 = 32;

impl Histogram {
    const fn new() -> Self {
        Self {
            buckets: [const { AtomicU32::new(0) }; 256],
            worst: AtomicU32::new(0),
            count: AtomicU32::new(0),
        }
    }

    /// Only one task records into a histogram: loads and stores suffice (no RMW on ARMv6-M).
    fn record(&self, cycles: u32) {
        let bucket = &self.buckets[((cycles / BUCKET) as usize).min(255)];
        bucket.store(bucket.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if cycles > self.worst.load(Ordering::Relaxed) {
            self.worst.store(cycles, Ordering::Relaxed);
        }
        self.count
            .store(self.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// The count, median (bucket midpoint) and worst of the samples of `histograms` together.
fn latency(histograms: &[&Histogram]) -> (u32, u32, u32) {
    let count: u32 = histograms
        .iter()
        .map(|h| h.count.load(Ordering::Relaxed))
        .sum();
    let worst = histograms
        .iter()
        .map(|h| h.worst.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let mut seen = 0;
    for i in 0..256 {
        seen += histograms
            .iter()
            .map(|h| h.buckets[i].load(Ordering::Relaxed))
            .sum::<u32>();
        if count > 0 && seen * 2 >= count {
            return (count, (i as u32) * BUCKET + BUCKET / 2, worst);
        }
    }
    (count, 0, worst)
}

/// PWM slice 0's counter: clk_sys cycles modulo 2^16, the same clock on both cores.
fn clock() -> u32 {
    pac::PWM.ch(0).ctr().read().ctr() as u32
}

fn start_clock() {
    let ch = pac::PWM.ch(0);
    ch.top().write(|w| w.set_top(0xFFFF));
    ch.div().write(|w| {
        w.set_int(1);
        w.set_frac(0);
    });
    ch.csr().write(|w| w.set_en(true));
}

/// Cycles from `stamp` to `now` on the shared clock (which wraps every 2^16 cycles).
fn since(stamp: u32, now: u32) -> u32 {
    now.wrapping_sub(stamp) & 0xFFFF
}

/// The interrupt's reader: set by core 1 before it enables the interrupt, then used only there.
struct IsrReader(UnsafeCell<Option<MapReader>>);
// SAFETY: core 1 stores it before unmasking TIMER_IRQ_1 on its own NVIC; afterwards only that
// handler, which does not nest with itself, touches it.
unsafe impl Sync for IsrReader {}
static ISR_READER: IsrReader = IsrReader(UnsafeCell::new(None));

static CORE1_STACK: StaticCell<Stack<8192>> = StaticCell::new();
static EXECUTOR0: StaticCell<Executor> = StaticCell::new();
static EXECUTOR1: StaticCell<Executor> = StaticCell::new();

#[cortex_m_rt::entry]
fn main() -> ! {
    let p = embassy_rp::init(Default::default());
    if !cs::self_test() {
        defmt::error!("the critical-section counter counts nothing: cannot check the readers");
        finish(false);
    }
    start_clock();
    info!(
        "snapmap with embassy on RP2040: writer task on core 0, 2 awaiting tasks and TIMER_IRQ_1 reading on core 1; map {} bytes",
        core::mem::size_of::<Map>()
    );
    let readers = [MAP.reader().unwrap(), MAP.reader().unwrap()];
    let isr_reader = MAP.reader().unwrap();

    spawn_core1(p.CORE1, CORE1_STACK.init(Stack::new()), move || {
        // SAFETY: see `IsrReader`: set before the interrupt is unmasked.
        unsafe { *ISR_READER.0.get() = Some(isr_reader) };
        start_isr_timer();
        let executor = EXECUTOR1.init(Executor::new());
        executor.run(move |spawner| {
            let [a, b] = readers;
            spawner.spawn(awaiter(0, a).unwrap());
            spawner.spawn(awaiter(1, b).unwrap());
        })
    });

    let executor = EXECUTOR0.init(Executor::new());
    executor.run(|spawner| spawner.spawn(writer(spawner).unwrap()))
}

fn start_isr_timer() {
    pac::TIMER
        .alarm(1)
        .write_value(pac::TIMER.timerawl().read().wrapping_add(ISR_PERIOD_US));
    pac::TIMER.inte().modify(|w| w.set_alarm(1, true));
    // SAFETY: the handler below is ready, and its reader is set.
    unsafe { interrupt::TIMER_IRQ_1.enable() };
}

#[interrupt]
fn TIMER_IRQ_1() {
    pac::TIMER.intr().write(|w| w.set_alarm(1, true));
    if ISR_STOP.load(Ordering::Relaxed) {
        return;
    }
    pac::TIMER
        .alarm(1)
        .write_value(pac::TIMER.timerawl().read().wrapping_add(ISR_PERIOD_US));
    // SAFETY: see `IsrReader`.
    let Some(reader) = (unsafe { &mut *ISR_READER.0.get() }) else {
        return;
    };
    let before = cs::taken_here();
    let snapshot = reader.snapshot();
    let ok = batch_is_whole(&snapshot);
    drop(snapshot);
    let taken = cs::taken_here().wrapping_sub(before);
    store_add(&ISR_CS, taken);
    store_add(&ISR_READS, 1);
    if !ok {
        store_add(&ISR_VIOLATIONS, 1);
    }
}

/// Adds to a counter that only one context writes (ARMv6-M has no atomic add).
fn store_add(counter: &AtomicU32, n: u32) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Every batch key holds one epoch (none before the first batch).
fn batch_is_whole(snapshot: &SnapshotOf<'_, Map>) -> bool {
    let first = snapshot.get(&0).copied();
    (1..BATCH_KEYS).all(|k| snapshot.get(&k).copied() == first)
}

#[embassy_executor::task(pool_size = 2)]
async fn awaiter(id: usize, mut reader: MapReader) {
    let tally = &TALLIES[id];
    loop {
        let last = reader.seen();
        let cs_before = cs::taken_here();
        let snapshot = reader.changed().await;
        // Critical sections on this core while awaiting: arming and disarming (on the M0+), and
        // the executor's own meanwhile.
        let waited = cs::taken_here().wrapping_sub(cs_before);
        let now = clock();
        let read_before = cs::taken_here();
        let version = snapshot.version();
        let stamp = snapshot.get(&STAMP).copied();
        let whole = batch_is_whole(&snapshot);
        drop(snapshot);
        let read_cs = cs::taken_here().wrapping_sub(read_before);

        store_add(&tally.wakeups, 1);
        store_add(&tally.await_cs, waited);
        store_add(&tally.reader_cs, read_cs);
        if version <= last || !whole {
            store_add(&tally.violations, 1);
        }
        if version > last + 1 && last != 0 {
            store_add(&tally.coalesced, (version - last - 1) as u32);
        }
        if let Some(stamp) = stamp {
            tally.histogram.record(since(stamp, now));
        }
        tally.last_seen.store(version as u32, Ordering::Release);
        if WRITER_DONE.load(Ordering::Acquire)
            && version as u32 == LAST_VERSION.load(Ordering::Acquire)
        {
            tally.done.store(true, Ordering::Release);
            return;
        }
    }
}

#[embassy_executor::task]
async fn writer(_spawner: Spawner) {
    // The map's only writer from here on: it keeps the `Writer` across its awaits.
    let Ok(mut sole) = MAP.writer() else {
        defmt::panic!("the map's writer is taken")
    };
    let start = Instant::now();
    let mut epoch = 0u32;
    let mut i = 0u32;
    let mut last = 0u64;
    let mut publish = |i: u32, epoch: &mut u32| -> u64 {
        let mut stamp = 0;
        let result = if i % 4 == 3 {
            *epoch += 1;
            let e = *epoch;
            sole.update_versioned(|tx| {
                for k in 0..BATCH_KEYS {
                    tx.insert(k, e)?;
                }
                stamp = clock();
                tx.insert(STAMP, stamp)?;
                Ok(())
            })
        } else {
            let key = SINGLE_KEYS.start + i % (SINGLE_KEYS.end - SINGLE_KEYS.start);
            sole.update_versioned(|tx| {
                tx.insert(key, i)?;
                stamp = clock();
                tx.insert(STAMP, stamp)?;
                Ok(())
            })
        };
        // From the stamp to the write's return: the rest of the write, its publication and the
        // waking of the readers.
        WRITE_TAIL.record(since(stamp, clock()));
        match result {
            Ok(((), Some(v))) => {
                store_add(&PUBLISHED, 1);
                v
            }
            Ok(((), None)) => 0,
            Err(e) => {
                warn!("write failed: {}", e);
                0
            }
        }
    };
    let mut round = 0u32;
    while start.elapsed() < RUN {
        round += 1;
        // One round in 16, eight writes back to back: faster than the readers wake, so they
        // see them coalesced.
        let burst = if round % 16 == 0 { 8 } else { 1 };
        for _ in 0..burst {
            let v = publish(i, &mut epoch);
            if v != 0 {
                if v <= last {
                    warn!("versions went back: {} after {}", v, last);
                }
                last = v;
            }
            i += 1;
        }
        LAST_VERSION.store(last as u32, Ordering::Release);
        Timer::after(PERIOD).await;
    }
    WRITER_DONE.store(true, Ordering::Release);
    // A last write: every reader must see it (versions never missed).
    let v = publish(i + 1, &mut epoch);
    LAST_VERSION.store(v as u32, Ordering::Release);
    let deadline = Instant::now() + Duration::from_millis(50);
    while !TALLIES.iter().all(|t| t.done.load(Ordering::Acquire)) && Instant::now() < deadline {
        Timer::after(Duration::from_micros(100)).await;
    }
    ISR_STOP.store(true, Ordering::Relaxed);
    Timer::after(Duration::from_millis(2)).await;
    report(v);
}

fn report(last_version: u64) {
    let sum = |f: fn(&Tally) -> u32| TALLIES.iter().map(f).sum::<u32>();
    let published = PUBLISHED.load(Ordering::Relaxed);
    let wakeups = sum(|t| t.wakeups.load(Ordering::Relaxed));
    let coalesced = sum(|t| t.coalesced.load(Ordering::Relaxed));
    let missed = TALLIES
        .iter()
        .filter(|t| {
            !t.done.load(Ordering::Acquire)
                || t.last_seen.load(Ordering::Acquire) as u64 != last_version
        })
        .count() as u32;
    // Every version a reader did not see it counted as coalesced: none is unaccounted for.
    let unaccounted = TALLIES
        .iter()
        .filter(|t| {
            t.wakeups.load(Ordering::Relaxed) + t.coalesced.load(Ordering::Relaxed)
                != last_version as u32
        })
        .count() as u32;
    let violations = sum(|t| t.violations.load(Ordering::Relaxed))
        + ISR_VIOLATIONS.load(Ordering::Relaxed)
        + missed
        + unaccounted;
    let reader_cs = sum(|t| t.reader_cs.load(Ordering::Relaxed)) + ISR_CS.load(Ordering::Relaxed);
    let await_cs = sum(|t| t.await_cs.load(Ordering::Relaxed));
    let isr_reads = ISR_READS.load(Ordering::Relaxed);
    let (samples, median, worst) = latency(&[&TALLIES[0].histogram, &TALLIES[1].histogram]);
    let (_, tail_median, tail_worst) = latency(&[&WRITE_TAIL]);
    let stats = MAP.stats();
    let pass = violations == 0 && reader_cs == 0 && wakeups > 0 && isr_reads > 0 && samples > 0;
    if missed != 0 {
        warn!(
            "{} reader(s) did not see the last version {}",
            missed, last_version
        );
    }
    info!(
        "SUMMARY {=str} versions={=u32} last_version={=u64} wakeups={=u32} coalesced={=u32} isr_reads={=u32} violations={=u32} reader_cs={=u32} await_cs={=u32} cas_retries={=usize} latency_samples={=u32} wake_cycles_median={=u32} wake_cycles_worst={=u32} write_tail_cycles_median={=u32} write_tail_cycles_worst={=u32} completed=1",
        if pass { "PASS" } else { "FAIL" },
        published,
        last_version,
        wakeups,
        coalesced,
        isr_reads,
        violations,
        reader_cs,
        await_cs,
        stats.cas_retries,
        samples,
        median,
        worst,
        tail_median,
        tail_worst
    );
    finish(pass);
}

/// Stops the run: `bkpt` on success (the emulated RP2040's runner and `probe-rs run` both end
/// there), `udf` on failure.
fn finish(ok: bool) -> ! {
    loop {
        if ok {
            cortex_m::asm::bkpt();
        } else {
            cortex_m::asm::udf();
        }
    }
}
