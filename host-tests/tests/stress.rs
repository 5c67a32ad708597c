//! Multi-threaded stress tests of `snapmap-core` under `std`.
//!
//! Every test checks its invariants on *every* snapshot it takes, counts violations by kind
//! ([`Violations`]) and asserts at the end that there were none; it also checks end-of-run
//! accounting against the map's own counters (publishes == successful changing writes == final
//! version). Configurations with ample generations (a pin per reader and writer base, a claim
//! per writer, and the current one: writers must never wait or fail for want of a generation
//! slot) and with fewer generation slots (writers wait; `try_` forms fail with
//! `NoFreeGeneration`) are both covered.
//!
//! Pages: a write copies the pages it changes into spare pages, and a page it replaced is reused
//! only once no snapshot of a generation that has it is held (a snapshot holds the pages of its
//! own generation that later writes replaced, no others). So even with ample generations, writers
//! wait for pages while readers' snapshots (a reader preempted mid-read, say) hold them: blocking
//! forms wait (`Stats::page_waits`), `try_` forms fail with `NoFreePage`, which the tests count
//! apart from `NoFreeGeneration`. No change here needs more pages than the map has spare, so a
//! blocking write that returns `NoFreePage` is a violation. Section 6 checks what held snapshots
//! hold and what idle readers do not; section 8 runs writers on a pool of one or two pages.
//!
//! The map's sole `Writer` (no base pin, no CAS) writes the batches of section 1's
//! `batches_by_the_sole_writer_*`, and in section 9 is handed between threads while others write
//! through the map whenever no thread holds it.
//!
//! Sizes: `SNAPMAP_STRESS_SCALE` (float, default 1.0) scales every operation count. Each test
//! prints its counts (`cargo test --test stress -- --nocapture` to see them) and the running
//! total of the binary; at scale 1.0 the tests together do well over 10 million operations, most
//! of them reads.

use host_tests::{
    drop_counts, panic_on_clone_after, scale, scaled, silence_injected_panics, tracking_lock,
    Quota, Rng, Tracked, Violations, Watchdog, INJECTED_PANIC,
};
use snapmap_core::{Error, SnapMap, Stats};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// A hung test (a writer spinning forever, a livelock) aborts the binary after this long.
const HANG_LIMIT: Duration = Duration::from_secs(240);

static BINARY_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Prints one test's operation counts and adds them to the binary's running total.
fn report(test: &str, reads: u64, writes: u64, started: Instant, extra: &str) {
    let ops = reads + writes;
    let total = BINARY_TOTAL.fetch_add(ops, Ordering::Relaxed) + ops;
    println!(
        "stress {test} (scale {}): {reads} reads + {writes} writes = {ops} ops in {:.2?}; {extra} \
         [binary total so far: {total} ops]",
        scale(),
        started.elapsed()
    );
}

/// How often readers yield the CPU between snapshots: see [`between_snapshots`].
const READER_YIELD_EVERY: u64 = 4096;
/// How often they yield where nearly every write waits for every reader to move past the last
/// one (`G = 2`, a pool of one or two pages).
const READER_YIELD_OFTEN: u64 = 256;

/// Called by readers between two snapshots, holding none, with the snapshots taken so far:
/// yields the CPU every `every`th time. With more threads than cores, a reader preempted while
/// it holds a snapshot holds its generation, and those of its pages that writes replace
/// meanwhile, for a whole time slice; writers that need them wait that long. A reader that
/// yields now and then where it holds nothing hands the core to the writers without holding
/// them up.
fn between_snapshots(done: u64, every: u64) {
    if done.is_multiple_of(every) {
        thread::yield_now();
    }
}

/// The map's counters for a summary line, with the pages a publish copies on average.
fn counters(stats: &Stats) -> String {
    let per_publish = stats.page_copies as f64 / stats.publishes.max(1) as f64;
    format!(
        "{} publishes, {} cas_retries, {} slot_waits, {} page_waits, {} page_copies \
         ({per_publish:.2} per publish)",
        stats.publishes, stats.cas_retries, stats.slot_waits, stats.page_waits, stats.page_copies
    )
}

/// Joins a scoped thread, re-raising its panic.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

// =============================================================================================
// 1. Batches: one writer stamps every key with one stamp in one `update`; every snapshot must
//    show every key with one and the same stamp.
// =============================================================================================

const STAMP_KEYS: u16 = 48;
const SEQ_BITS: u32 = 40;

fn stamp(writer: u64, seq: u64) -> u64 {
    (writer << SEQ_BITS) | seq
}

/// Checks one snapshot of a stamped map; `last` is this reader's previous (version, stamp),
/// `last_seq` the highest sequence number it has seen from each writer.
fn check_stamped<const N: usize>(
    snap: &snapmap_core::Snapshot<'_, u16, u64, N>,
    rng: &mut Rng,
    last: &mut (u64, Option<u64>),
    last_seq: &mut [u64],
    v: &mut Violations,
) {
    let version = snap.version();
    let len = snap.len();
    let mut count = 0usize;
    let mut first: Option<u64> = None;
    let mut mixed = 0usize;
    for (_, &value) in snap.iter() {
        count += 1;
        match first {
            None => first = Some(value),
            Some(f) if f != value => mixed += 1,
            Some(_) => {}
        }
    }
    v.check(count == len, "iter count != len", || {
        format!("iter {count}, len {len}")
    });
    v.check(
        snap.is_empty() == (len == 0),
        "is_empty != (len == 0)",
        || format!("len {len}"),
    );
    v.check(version >= last.0, "version went back", || {
        format!("{} then {version}", last.0)
    });
    if version == 0 {
        v.check(len == 0, "initial generation not empty", || {
            format!("len {len}")
        });
    } else {
        v.check(
            len == usize::from(STAMP_KEYS),
            "torn batch: wrong len",
            || format!("len {len} at v{version}"),
        );
        v.check(mixed == 0, "torn batch: mixed stamps", || {
            format!("{mixed} keys differ at v{version}")
        });
        let key = rng.below(u64::from(STAMP_KEYS)) as u16;
        v.check(
            snap.get(&key) == first.as_ref(),
            "torn batch: get disagrees with iter",
            || format!("key {key}: {:?} vs {first:?}", snap.get(&key)),
        );
        v.check(
            snap.contains_key(&key),
            "contains_key false for a stamped key",
            || format!("key {key}"),
        );
        v.check(
            !snap.contains_key(&STAMP_KEYS),
            "contains_key true for a never-inserted key",
            String::new,
        );
        if let Some(s) = first {
            let (writer, seq) = ((s >> SEQ_BITS) as usize, s & ((1 << SEQ_BITS) - 1));
            if v.check(
                writer < last_seq.len(),
                "stamp from an unknown writer",
                || format!("{s:#x}"),
            ) {
                v.check(
                    seq >= last_seq[writer],
                    "a writer's stamps went back",
                    || format!("writer {writer}: seq {} then {seq}", last_seq[writer]),
                );
                last_seq[writer] = last_seq[writer].max(seq);
            }
        }
        if version == last.0 {
            v.check(first == last.1, "same version, different contents", || {
                format!("v{version}: {:?} vs {first:?}", last.1)
            });
        }
    }
    *last = (version, first);
}

/// The shape of one [`stamp_stress`] run.
struct StampRun {
    readers: u64,
    writers: u64,
    reads_per_reader: u64,
    writes_per_writer: u64,
    /// How often readers yield between snapshots ([`between_snapshots`]). With `G = 2` every
    /// write waits until no reader pins the previous generation, and in every configuration a
    /// batch (4 pages) waits once the two before it used the 8 spare pages while a reader still
    /// holds a snapshot older than them.
    reader_yield_every: u64,
    /// The one writer writes through the map's sole `Writer` (no pin, no CAS).
    sole: bool,
}

/// Batch writers and readers on a map with `G` generation slots and `R` reader slots: the first
/// `R` readers register a `Reader`, the others read one-off snapshots. `ample` is
/// `G >= readers + 2 * writers + 1`: a pin per reader and per writer's base, a claim per writer,
/// and the current generation, so that no writer ever finds every slot taken.
fn stamp_stress<const G: usize, const R: usize>(test: &'static str, run: StampRun) {
    let StampRun {
        readers,
        writers,
        reads_per_reader,
        writes_per_writer,
        reader_yield_every,
        sole,
    } = run;
    assert!(readers + writers <= 4 && writers <= 2 && (!sole || writers == 1));
    let _watchdog = Watchdog::new(test, HANG_LIMIT);
    let started = Instant::now();
    // The sole writer needs no base pin and no claim: the current slot and one to write into.
    let ample = if sole {
        G as u64 > readers + 1
    } else {
        G as u64 > readers + 2 * writers
    };
    let map: SnapMap<u16, u64, 64, G, R> = SnapMap::new();
    let quota = Quota::new((readers + writers) as usize);
    let (map, quota) = (&map, &quota);

    let (mut violations, reads, writes, changed, try_failures) = thread::scope(|s| {
        let readers: Vec<_> = (0..readers)
            .map(|r| {
                s.spawn(move || {
                    let mut v = Violations::new();
                    let mut reader = (r < R as u64)
                        .then(|| map.reader().expect("a reader slot for each of the first R"));
                    let mut share = quota.share(reads_per_reader);
                    let mut rng = Rng::new(r);
                    let mut last = (0, None);
                    let mut last_seq = [0u64; 2];
                    while share.keep_going() {
                        let snap = match reader.as_mut() {
                            Some(reader) => reader.snapshot(),
                            None => map.snapshot(),
                        };
                        check_stamped(&snap, &mut rng, &mut last, &mut last_seq, &mut v);
                        drop(snap);
                        between_snapshots(share.done(), reader_yield_every);
                    }
                    (v, share.done())
                })
            })
            .collect();
        let writers: Vec<_> = (0..writers)
            .map(|w| {
                s.spawn(move || {
                    let mut v = Violations::new();
                    let mut share = quota.share(writes_per_writer);
                    let mut rng = Rng::new(100 + w);
                    let mut sole = sole.then(|| map.writer().expect("the only writer"));
                    // [NoFreeGeneration, NoFreePage] from `try_update`.
                    let (mut seq, mut changed, mut try_failures) = (0u64, 0u64, [0u64; 2]);
                    while share.keep_going() {
                        let roll = rng.below(16);
                        let next = stamp(w, seq + 1);
                        let mut torn_txn = 0u64;
                        // The closure also checks the writer's own copy: it is a snapshot too.
                        let mut batch = |tx: &mut snapmap_core::Txn<'_, u16, u64, 64>| {
                            let len = tx.len();
                            let first = tx.iter().next().map(|(_, &value)| value);
                            if !(len == 0 || len == usize::from(STAMP_KEYS))
                                || tx.iter().any(|(_, &value)| Some(value) != first)
                            {
                                torn_txn += 1;
                            }
                            match roll {
                                // No change at all: must publish nothing.
                                0 => Ok(false),
                                // Stamp half the keys, then abort: must publish nothing.
                                1 => {
                                    for key in 0..STAMP_KEYS / 2 {
                                        tx.insert(key, stamp(w, (1 << SEQ_BITS) - 1))?;
                                    }
                                    Err(Error::Aborted)
                                }
                                _ => {
                                    for key in 0..STAMP_KEYS {
                                        tx.insert(key, next)?;
                                    }
                                    Ok(true)
                                }
                            }
                        };
                        let result = match (sole.as_mut(), roll.is_multiple_of(2)) {
                            (Some(writer), true) => writer.update(&mut batch),
                            (Some(writer), false) => writer.try_update(&mut batch),
                            (None, true) => map.update(&mut batch),
                            (None, false) => map.try_update(&mut batch),
                        };
                        v.check(torn_txn == 0, "torn batch seen by a writer's Txn", || {
                            format!("writer {w}")
                        });
                        match (roll, result) {
                            (0, Ok(false)) => {}
                            (1, Err(Error::Aborted)) => {}
                            (2.., Ok(true)) => {
                                seq += 1;
                                changed += 1;
                            }
                            // Another writer has the turn (it lost three races in a row).
                            (_, Err(Error::Contended)) if roll % 2 == 1 => try_failures[0] += 1,
                            (_, Err(Error::NoFreeGeneration)) if roll % 2 == 1 => {
                                try_failures[0] += 1;
                                v.check(
                                    !ample,
                                    "try_update: NoFreeGeneration although generations are ample",
                                    String::new,
                                );
                            }
                            // Transient: the pages are held by readers' snapshots or the other
                            // writer. (A batch needs at most the 4 pages of the table.)
                            (_, Err(Error::NoFreePage)) if roll % 2 == 1 => try_failures[1] += 1,
                            (_, Err(Error::NoFreePage)) => v
                                .record("a blocking write returned NoFreePage", || {
                                    format!("roll {roll}")
                                }),
                            (roll, other) => v.record("unexpected write result", || {
                                format!("roll {roll}: {other:?}")
                            }),
                        }
                    }
                    (v, share.done(), changed, try_failures)
                })
            })
            .collect();
        let mut violations = Violations::new();
        let (mut reads, mut writes, mut changed, mut try_failures) = (0, 0, 0, [0u64; 2]);
        for handle in readers {
            let (v, n) = join(handle);
            violations.merge(v);
            reads += n;
        }
        for handle in writers {
            let (v, n, c, f) = join(handle);
            violations.merge(v);
            writes += n;
            changed += c;
            try_failures[0] += f[0];
            try_failures[1] += f[1];
        }
        (violations, reads, writes, changed, try_failures)
    });

    let stats = map.stats();
    let snap = map.snapshot();
    violations.check(
        stats.publishes as u64 == changed,
        "publishes != changing writes",
        || format!("{} publishes, {changed} changing writes", stats.publishes),
    );
    violations.check(
        snap.version() == changed,
        "final version != changing writes",
        || format!("version {}, {changed} changing writes", snap.version()),
    );
    if ample {
        violations.check(
            stats.slot_waits == 0,
            "a writer waited although generations are ample",
            || format!("{stats:?}"),
        );
    }
    report(
        test,
        reads,
        writes,
        started,
        &format!(
            "{changed} published; try_update: {} NoFreeGeneration, {} NoFreePage; {}",
            try_failures[0],
            try_failures[1],
            counters(&stats)
        ),
    );
    violations.assert_none(test);
}

/// `G = 8 >= readers + 2 * writers + 1 = 7`: writers never wait, and `try_update` never fails,
/// for want of a slot (they do for pages).
#[test]
fn batches_are_atomic_with_ample_generations() {
    stamp_stress::<8, 2>(
        "batches_are_atomic_with_ample_generations",
        StampRun {
            readers: 2,
            writers: 2,
            reads_per_reader: scaled(2_000_000),
            writes_per_writer: scaled(250_000),
            reader_yield_every: READER_YIELD_EVERY,
            sole: false,
        },
    );
}

/// `G = 3 < 7`, one registered reader and one one-off: writers wait for pinned generations;
/// `try_update` may fail with `NoFreeGeneration` (and, as everywhere, `NoFreePage`).
#[test]
fn batches_are_atomic_with_scarce_generations() {
    stamp_stress::<3, 1>(
        "batches_are_atomic_with_scarce_generations",
        StampRun {
            readers: 2,
            writers: 2,
            reads_per_reader: scaled(1_500_000),
            writes_per_writer: scaled(100_000),
            reader_yield_every: READER_YIELD_EVERY,
            sole: false,
        },
    );
}

/// `G = 2`, the minimum (so `R = 0`: one-off readers only): every write waits until no reader
/// pins the previous generation (and the two writers take turns for the one spare slot).
#[test]
fn batches_are_atomic_with_two_generations() {
    stamp_stress::<2, 0>(
        "batches_are_atomic_with_two_generations",
        StampRun {
            readers: 2,
            writers: 2,
            reads_per_reader: scaled(500_000),
            writes_per_writer: scaled(20_000),
            reader_yield_every: READER_YIELD_OFTEN,
            sole: false,
        },
    );
}

/// One sole `Writer` (no base pin, no CAS, publication by a store) against two readers, one
/// registered and one one-off, with ample generations (`G = 4 >= 2 + 1 + 1`: it never waits
/// for a slot) and then with scarce ones (`G = 3`: it waits for pinned generations).
#[test]
fn batches_by_the_sole_writer_are_atomic() {
    let run = |reads, writes| StampRun {
        readers: 2,
        writers: 1,
        reads_per_reader: scaled(reads),
        writes_per_writer: scaled(writes),
        reader_yield_every: READER_YIELD_EVERY,
        sole: true,
    };
    stamp_stress::<4, 1>(
        "batches_by_the_sole_writer_are_atomic (G = 4)",
        run(1_500_000, 200_000),
    );
    stamp_stress::<3, 1>(
        "batches_by_the_sole_writer_are_atomic (G = 3)",
        run(1_000_000, 100_000),
    );
}

/// `G = 2`: the sole writer waits, every write, until no one-off reader pins the generation
/// before the current one.
#[test]
fn batches_by_the_sole_writer_are_atomic_with_two_generations() {
    stamp_stress::<2, 0>(
        "batches_by_the_sole_writer_are_atomic_with_two_generations",
        StampRun {
            readers: 2,
            writers: 1,
            reads_per_reader: scaled(500_000),
            writes_per_writer: scaled(20_000),
            reader_yield_every: READER_YIELD_OFTEN,
            sole: true,
        },
    );
}

// =============================================================================================
// 2. Transfers: amounts move between accounts in one `update`; the sum is conserved in every
//    snapshot and no balance goes negative (an overdraft aborts). The map is a `static`.
// =============================================================================================

const ACCOUNTS: u8 = 16;
const OPENING_BALANCE: i64 = 1_000;

/// Default `G = 4`, `R = 2`, `P = 8`: fewer slots than the 8 that 3 reader pins (one reader
/// holds two snapshots), a base and a claim per writer and the current one could take, so
/// writers may wait for a slot. A transfer changes at most the table's 2 pages.
static TRANSFERS: SnapMap<u8, i64, 32> = SnapMap::new();

#[test]
fn transfers_conserve_the_sum_in_a_static_map() {
    const TEST: &str = "transfers_conserve_the_sum_in_a_static_map";
    let _watchdog = Watchdog::new(TEST, HANG_LIMIT);
    let started = Instant::now();
    let map = &TRANSFERS;
    map.update(|tx| {
        for account in 0..ACCOUNTS {
            tx.insert(account, OPENING_BALANCE)?;
        }
        Ok(())
    })
    .unwrap();
    let total = i64::from(ACCOUNTS) * OPENING_BALANCE;
    let quota = Quota::new(4);
    let quota = &quota;

    let check = move |snap: &snapmap_core::Snapshot<'_, u8, i64, 32>,
                      last_version: &mut u64,
                      v: &mut Violations| {
        let (mut sum, mut count, mut negative) = (0i64, 0usize, 0usize);
        for (_, &balance) in snap.iter() {
            sum += balance;
            count += 1;
            negative += usize::from(balance < 0);
        }
        v.check(sum == total, "sum not conserved", || {
            format!("sum {sum} at v{}", snap.version())
        });
        v.check(count == snap.len(), "iter count != len", || {
            format!("{count} vs {}", snap.len())
        });
        v.check(
            snap.len() == usize::from(ACCOUNTS),
            "accounts appeared or vanished",
            || format!("len {}", snap.len()),
        );
        v.check(
            negative == 0,
            "negative balance (an aborted transfer leaked)",
            || format!("{negative} at v{}", snap.version()),
        );
        v.check(snap.version() >= *last_version, "version went back", || {
            format!("{last_version} then {}", snap.version())
        });
        *last_version = snap.version();
    };

    let (mut violations, reads, writes, transfers, aborts, try_failures, one_off_failures) =
        thread::scope(|s| {
            // Reader 0: a registered Reader. Reader 1: one-off snapshots, half of them `try_`.
            let registered = s.spawn(move || {
                let mut v = Violations::new();
                let mut reader = map.reader().expect("reader slot");
                let mut share = quota.share(scaled(1_200_000));
                let mut last = 0;
                while share.keep_going() {
                    check(&reader.snapshot(), &mut last, &mut v);
                    between_snapshots(share.done(), READER_YIELD_EVERY);
                }
                (v, share.done())
            });
            let one_off = s.spawn(move || {
                let mut v = Violations::new();
                let mut share = quota.share(scaled(1_000_000));
                let (mut last, mut failures) = (0, 0u64);
                while share.keep_going() {
                    if share.done() % 2 == 0 {
                        check(&map.snapshot(), &mut last, &mut v);
                    } else {
                        // Two one-off snapshots held at once: both are counted pins, neither
                        // waits for the other.
                        let (first, second) = (map.snapshot(), map.snapshot());
                        failures += u64::from(second.version() < first.version());
                        check(&second, &mut last, &mut v);
                    }
                    between_snapshots(share.done(), READER_YIELD_EVERY);
                }
                (v, share.done(), failures)
            });
            let writers: Vec<_> = (0..2u64)
                .map(|w| {
                    s.spawn(move || {
                        let mut v = Violations::new();
                        let mut share = quota.share(scaled(200_000));
                        let mut rng = Rng::new(200 + w);
                        // [NoFreeGeneration, NoFreePage] from `try_update`.
                        let (mut transfers, mut aborts, mut try_failures) = (0u64, 0u64, [0u64; 2]);
                        while share.keep_going() {
                            let from = rng.below(u64::from(ACCOUNTS)) as u8;
                            let to =
                                (from + 1 + rng.below(u64::from(ACCOUNTS) - 1) as u8) % ACCOUNTS;
                            let amount = 1 + rng.below(400) as i64;
                            let transfer = |tx: &mut snapmap_core::Txn<'_, u8, i64, 32>| {
                                let balance = *tx.get(&from).ok_or(Error::Aborted)?;
                                if balance < amount {
                                    return Err(Error::Aborted);
                                }
                                *tx.get_mut(&from)?.ok_or(Error::Aborted)? -= amount;
                                *tx.get_mut(&to)?.ok_or(Error::Aborted)? += amount;
                                Ok(amount)
                            };
                            let use_try = rng.one_in(2);
                            let result = if use_try {
                                map.try_update(transfer)
                            } else {
                                map.update(transfer)
                            };
                            match result {
                                Ok(moved) => {
                                    v.check(
                                        moved == amount,
                                        "update returned the wrong value",
                                        String::new,
                                    );
                                    transfers += 1;
                                }
                                Err(Error::Aborted) => aborts += 1,
                                Err(Error::NoFreeGeneration | Error::Contended) if use_try => {
                                    try_failures[0] += 1
                                }
                                Err(Error::NoFreePage) if use_try => try_failures[1] += 1,
                                Err(e) => v.record("transfer: unexpected error", || {
                                    format!("try {use_try}: {e:?}")
                                }),
                            }
                        }
                        (v, share.done(), transfers, aborts, try_failures)
                    })
                })
                .collect();
            let mut violations = Violations::new();
            let (v, r0) = join(registered);
            violations.merge(v);
            let (v, r1, one_off_failures) = join(one_off);
            violations.merge(v);
            let (mut writes, mut transfers, mut aborts, mut try_failures) = (0, 0, 0, [0u64; 2]);
            for handle in writers {
                let (v, n, t, a, f) = join(handle);
                violations.merge(v);
                writes += n;
                transfers += t;
                aborts += a;
                try_failures[0] += f[0];
                try_failures[1] += f[1];
            }
            (
                violations,
                r0 + r1,
                writes,
                transfers,
                aborts,
                try_failures,
                one_off_failures,
            )
        });

    let stats = map.stats();
    let mut last = 0;
    check(&map.snapshot(), &mut last, &mut violations);
    violations.check(
        stats.publishes as u64 == transfers + 1,
        "publishes != transfers + opening",
        || format!("{} publishes, {transfers} transfers", stats.publishes),
    );
    violations.check(
        last == transfers + 1,
        "final version != transfers + opening",
        || format!("version {last}, {transfers} transfers"),
    );
    report(
        TEST,
        reads,
        writes,
        started,
        &format!(
            "{transfers} transfers, {aborts} aborted (overdraft); try_update: {} NoFreeGeneration, \
             {} NoFreePage; {one_off_failures} held one-off pairs out of order; {}",
            try_failures[0],
            try_failures[1],
            counters(&stats)
        ),
    );
    violations.assert_none(TEST);
}

// =============================================================================================
// 3. Counters: two writers increment random counters through `update`; every publish adds one,
//    so in every snapshot the sum of the counters equals the version, and at the end each
//    counter equals the increments the writers made to it: no update lost, none doubled.
// =============================================================================================

#[test]
fn concurrent_update_increments_lose_nothing() {
    const TEST: &str = "concurrent_update_increments_lose_nothing";
    const KEYS: usize = 24;
    let _watchdog = Watchdog::new(TEST, HANG_LIMIT);
    let started = Instant::now();
    let map: SnapMap<u16, u64, 32> = SnapMap::new();
    let quota = Quota::new(3);
    let (map, quota) = (&map, &quota);

    let (mut violations, reads, writes, per_key, retried) = thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut v = Violations::new();
            let mut reader = map.reader().expect("reader slot");
            let mut share = quota.share(scaled(1_000_000));
            let mut last = [0u64; KEYS];
            let mut last_version = 0;
            while share.keep_going() {
                let snap = reader.snapshot();
                let (mut sum, mut count) = (0u64, 0usize);
                for (&key, &value) in snap.iter() {
                    sum += value;
                    count += 1;
                    let key = usize::from(key);
                    if v.check(key < KEYS, "unknown key", || format!("{key}")) {
                        v.check(value >= last[key], "a counter went back", || {
                            format!("key {key}: {} then {value}", last[key])
                        });
                        last[key] = value;
                    }
                }
                v.check(count == snap.len(), "iter count != len", String::new);
                v.check(sum == snap.version(), "sum of counters != version", || {
                    format!("sum {sum}, version {}", snap.version())
                });
                v.check(
                    snap.version() >= last_version,
                    "version went back",
                    String::new,
                );
                last_version = snap.version();
                drop(snap);
                between_snapshots(share.done(), READER_YIELD_EVERY);
            }
            (v, share.done())
        });
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                s.spawn(move || {
                    let mut v = Violations::new();
                    let mut share = quota.share(scaled(300_000));
                    let mut rng = Rng::new(300 + w);
                    let mut mine = [0u64; KEYS];
                    // `try_update` retries after [NoFreeGeneration, NoFreePage].
                    let mut retried_try = [0u64; 2];
                    while share.keep_going() {
                        let key = rng.below(KEYS as u64) as u16;
                        let increment = |tx: &mut snapmap_core::Txn<'_, u16, u64, 32>| match tx
                            .get_mut(&key)?
                        {
                            Some(value) => {
                                *value += 1;
                                Ok(())
                            }
                            None => tx.insert(key, 1).map(drop),
                        };
                        // Half through `try_update`, retried until it goes through.
                        let use_try = rng.one_in(2);
                        let result = if use_try {
                            loop {
                                match map.try_update(increment) {
                                    Err(Error::NoFreeGeneration | Error::Contended) => {
                                        retried_try[0] += 1
                                    }
                                    Err(Error::NoFreePage) => retried_try[1] += 1,
                                    other => break other,
                                }
                                thread::yield_now();
                            }
                        } else {
                            map.update(increment)
                        };
                        if v.check(result.is_ok(), "increment failed", || {
                            format!("try {use_try}: {result:?}")
                        }) {
                            mine[usize::from(key)] += 1;
                        }
                    }
                    (v, share.done(), mine, retried_try)
                })
            })
            .collect();
        let mut violations = Violations::new();
        let (v, reads) = join(reader);
        violations.merge(v);
        let (mut writes, mut per_key, mut retried) = (0, [0u64; KEYS], [0u64; 2]);
        for handle in writers {
            let (v, n, mine, r) = join(handle);
            violations.merge(v);
            writes += n;
            for (total, mine) in per_key.iter_mut().zip(mine) {
                *total += mine;
            }
            retried[0] += r[0];
            retried[1] += r[1];
        }
        (violations, reads, writes, per_key, retried)
    });

    let stats = map.stats();
    let snap = map.snapshot();
    let increments: u64 = per_key.iter().sum();
    for (key, &expected) in per_key.iter().enumerate() {
        let got = snap.get(&(key as u16)).copied().unwrap_or(0);
        violations.check(got == expected, "lost or doubled increments", || {
            format!("key {key}: map {got}, writers made {expected}")
        });
    }
    violations.check(
        snap.version() == increments,
        "final version != increments",
        String::new,
    );
    violations.check(
        stats.publishes as u64 == increments,
        "publishes != increments",
        String::new,
    );
    report(
        TEST,
        reads,
        writes,
        started,
        &format!(
            "{increments} increments; try_update retried after {} NoFreeGeneration, {} \
             NoFreePage; {}",
            retried[0],
            retried[1],
            counters(&stats)
        ),
    );
    violations.assert_none(TEST);
}

// =============================================================================================
// 4. compare_exchange: three threads increment two hot counters with get + compare_exchange
//    loops; every success is counted and none may be lost. Interleaved no-op `remove_if` and
//    `get_or_insert` calls must publish nothing and see monotone values.
// =============================================================================================

#[test]
fn compare_exchange_increments_lose_nothing() {
    const TEST: &str = "compare_exchange_increments_lose_nothing";
    let _watchdog = Watchdog::new(TEST, HANG_LIMIT);
    let started = Instant::now();
    let map: SnapMap<u8, u64, 8, 8, 4> = SnapMap::new();
    map.insert(0, 0).unwrap();
    map.insert(1, 0).unwrap();
    let quota = Quota::new(3);
    let (map, quota) = (&map, &quota);

    let (mut violations, reads, writes, successes) = thread::scope(|s| {
        let handles: Vec<_> = (0..3u64)
            .map(|t| {
                s.spawn(move || {
                    let mut v = Violations::new();
                    let mut share = quota.share(scaled(250_000));
                    let mut rng = Rng::new(400 + t);
                    let (mut reads, mut writes, mut successes) = (0u64, 0u64, [0u64; 2]);
                    let mut seen = [0u64; 2];
                    while share.keep_going() {
                        let key = rng.below(2) as u8;
                        let k = usize::from(key);
                        match rng.below(8) {
                            0 => {
                                // Never matches: a no-op that must publish nothing.
                                writes += 1;
                                let removed = map.remove_if(&key, |&value| value == u64::MAX);
                                v.check(removed == Ok(None), "remove_if removed", || {
                                    format!("{removed:?}")
                                });
                            }
                            1 => {
                                writes += 1;
                                match map.get_or_insert(key, u64::MAX) {
                                    Ok((value, loaded)) => {
                                        v.check(
                                            value >= seen[k],
                                            "get_or_insert: value went back",
                                            String::new,
                                        );
                                        v.check(
                                            loaded || value == u64::MAX,
                                            "get_or_insert: inserted, yet not the value given",
                                            || format!("{value}"),
                                        );
                                        seen[k] = value;
                                    }
                                    Err(e) => v.record("get_or_insert failed", || format!("{e:?}")),
                                }
                            }
                            _ => loop {
                                reads += 1;
                                let Some(current) = map.get(&key) else {
                                    v.record("counter vanished", String::new);
                                    break;
                                };
                                v.check(current >= seen[k], "counter went back", || {
                                    format!("key {key}: {} then {current}", seen[k])
                                });
                                seen[k] = seen[k].max(current);
                                writes += 1;
                                match map.compare_exchange(&key, &current, current + 1) {
                                    Ok(true) => {
                                        successes[k] += 1;
                                        break;
                                    }
                                    Ok(false) => {}
                                    Err(e) => {
                                        v.record("compare_exchange failed", || format!("{e:?}"));
                                        break;
                                    }
                                }
                            },
                        }
                    }
                    (v, reads, writes, successes)
                })
            })
            .collect();
        let mut violations = Violations::new();
        let (mut reads, mut writes, mut successes) = (0, 0, [0u64; 2]);
        for handle in handles {
            let (v, r, w, s) = join(handle);
            violations.merge(v);
            reads += r;
            writes += w;
            successes[0] += s[0];
            successes[1] += s[1];
        }
        (violations, reads, writes, successes)
    });

    let stats = map.stats();
    for key in 0..2u8 {
        let got = map.get(&key);
        let expected = successes[usize::from(key)];
        violations.check(
            got == Some(expected),
            "lost compare_exchange increments",
            || format!("key {key}: map {got:?}, {expected} successful compare_exchanges"),
        );
    }
    let published = successes[0] + successes[1] + 2;
    violations.check(
        stats.publishes as u64 == published,
        "publishes != successes + 2 inserts",
        || format!("{stats:?}, {published}"),
    );
    report(
        TEST,
        reads,
        writes,
        started,
        &format!(
            "{} successful compare_exchanges; {}",
            successes[0] + successes[1],
            counters(&stats)
        ),
    );
    violations.assert_none(TEST);
}

// =============================================================================================
// 5. get_or_insert races: two threads `get_or_insert` the same fresh keys in opposite orders;
//    for every key both must get the same value, the one in the map, and each key is published
//    exactly once.
// =============================================================================================

#[test]
fn get_or_insert_races_agree() {
    const TEST: &str = "get_or_insert_races_agree";
    const KEYS: u16 = 32;
    let _watchdog = Watchdog::new(TEST, HANG_LIMIT);
    let started = Instant::now();
    let rounds = scaled(5_000);
    let map: SnapMap<u16, u64, 32> = SnapMap::new();
    let barrier = Barrier::new(2);
    let (map, barrier) = (&map, &barrier);

    let (mut violations, ops) = thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                s.spawn(move || {
                    let mut v = Violations::new();
                    let mut ops = 0u64;
                    let mut got = [0u64; KEYS as usize];
                    for round in 0..rounds {
                        for i in 0..KEYS {
                            let key = if t == 0 { i } else { KEYS - 1 - i };
                            ops += 1;
                            match map.get_or_insert(key, t) {
                                Ok((value, loaded)) => {
                                    v.check(
                                        loaded || value == t,
                                        "get_or_insert: inserted, yet returned another value",
                                        || format!("{value} from thread {t}"),
                                    );
                                    got[usize::from(key)] = value;
                                }
                                Err(e) => v.record("get_or_insert failed", || format!("{e:?}")),
                            }
                        }
                        barrier.wait();
                        let snap = map.snapshot();
                        ops += 1;
                        v.check(
                            snap.len() == usize::from(KEYS),
                            "wrong len after the round",
                            || format!("round {round}: {}", snap.len()),
                        );
                        for key in 0..KEYS {
                            v.check(
                                snap.get(&key) == Some(&got[usize::from(key)]),
                                "threads disagree",
                                || {
                                    format!(
                                        "round {round} key {key}: map {:?}, got {}",
                                        snap.get(&key),
                                        got[usize::from(key)]
                                    )
                                },
                            );
                        }
                        drop(snap);
                        barrier.wait();
                        if t == 0 {
                            ops += 1;
                            v.check(map.clear().is_ok(), "clear failed", String::new);
                        }
                        barrier.wait();
                    }
                    (v, ops)
                })
            })
            .collect();
        let mut violations = Violations::new();
        let mut ops = 0;
        for handle in handles {
            let (v, n) = join(handle);
            violations.merge(v);
            ops += n;
        }
        (violations, ops)
    });
    let stats = map.stats();
    let expected = rounds * (u64::from(KEYS) + 1);
    violations.check(
        stats.publishes as u64 == expected,
        "publishes != one per key and clear",
        || format!("{stats:?}, expected {expected}"),
    );
    report(
        TEST,
        2 * rounds,
        ops - 2 * rounds,
        started,
        &format!("{rounds} rounds; {}", counters(&stats)),
    );
    violations.assert_none(TEST);
}

// =============================================================================================
// 6. Held snapshots and idle readers. A held snapshot holds its generation and the pages of it
//    that later writes replaced (at most a table, however many writes follow); a registered
//    reader between two snapshots holds nothing.
//    - Phase 1 (one thread): while a snapshot of version 0 is held, batches that rewrite every
//      page go on, more pages than the pool has: version 0's pages stay held, the rest are
//      reused. A second snapshot, of a later batch, holds that batch's pages once the next one
//      replaced them: with both held the pool is empty and `try_update` fails with NoFreePage,
//      changing nothing.
//    - Phase 2: a blocking writer waits for those pages (`page_waits`), publishing nothing, and
//      goes through once the younger snapshot drops: it waits for held snapshots, and only for
//      them, and each one's pages are its own.
//    - Phase 3: the two registered readers stay idle while three one-off readers (some holding
//      two snapshots at once, briefly) and a writer run: every snapshot shows one batch, the
//      blocking writes never fail, the `try_` ones only with NoFreeGeneration or NoFreePage.
//    - Phase 4 (one thread, both readers still registered): the idle readers hold no generation
//      slot and no page: writes that a pin kept past their last reads would block go through.
// =============================================================================================

/// Spare pages of section 6's map (the default): room for two batches of the 4 pages.
const IDLE_P: usize = 8;
type IdleMap = SnapMap<u16, u64, 64, 4, 2, IDLE_P>;

/// The batch that stamps every key with `stamp(0, seq)`.
fn stamp_all(
    seq: u64,
) -> impl FnMut(&mut snapmap_core::Txn<'_, u16, u64, 64>) -> Result<(), Error> {
    move |tx| {
        for key in 0..STAMP_KEYS {
            tx.insert(key, stamp(0, seq))?;
        }
        Ok(())
    }
}

/// Whether `snap` holds every stamped key, stamped `stamp(0, seq)`, at version `seq`.
fn stamped_with<const N: usize>(snap: &snapmap_core::Snapshot<'_, u16, u64, N>, seq: u64) -> bool {
    snap.version() == seq
        && snap.len() == usize::from(STAMP_KEYS)
        && snap.iter().all(|(_, &value)| value == stamp(0, seq))
}

#[test]
fn idle_readers_and_one_off_reads_leave_writers_room() {
    const TEST: &str = "idle_readers_and_one_off_reads_leave_writers_room";
    let _watchdog = Watchdog::new(TEST, HANG_LIMIT);
    let started = Instant::now();
    let map: IdleMap = SnapMap::new();
    let (mut first, mut second) = (map.reader().unwrap(), map.reader().unwrap());
    assert!(matches!(map.reader(), Err(Error::NoReaderSlot)));

    // Phase 1. Every batch rewrites every key, so it copies every page: 48 keys fill each page
    // of the four.
    let empty = first.snapshot();
    assert_eq!((empty.version(), empty.len()), (0, 0));
    map.try_update(stamp_all(1))
        .expect("the opening batch: every page is free");
    let per_batch = map.stats().page_copies;
    assert_eq!(
        per_batch,
        IDLE_P / 2,
        "a batch of {STAMP_KEYS} keys copied {per_batch} pages of a 4-page table"
    );
    // `empty` holds version 0's pages alone: the later batches reuse the other half of the pool.
    let mut seq = 1u64;
    while map.stats().page_copies <= 3 * IDLE_P {
        let copies = map.stats().page_copies;
        match map.try_update(stamp_all(seq + 1)) {
            Ok(()) => seq += 1,
            Err(e) => panic!(
                "phase 1: batch {} with `empty` held, {} pages copied since: {e:?}",
                seq + 1,
                copies
            ),
        }
        let copied = map.stats().page_copies - copies;
        assert_eq!(copied, per_batch, "batch {seq} copied another set of pages");
    }
    let phase_one_batches = seq;
    let held_copies = map.stats().page_copies;
    // A snapshot of this batch holds its pages once the next batch replaced them: the pool has
    // none left.
    let younger = second.snapshot();
    assert!(stamped_with(&younger, seq));
    map.try_update(stamp_all(seq + 1))
        .expect("the batch that replaces `younger`'s pages");
    seq += 1;
    assert_eq!(map.try_update(stamp_all(seq + 1)), Err(Error::NoFreePage));
    // The failed write changed nothing; the held snapshots are intact; reads never wait.
    assert!(stamped_with(&map.snapshot(), seq));
    assert!(stamped_with(&younger, seq - 1));
    assert_eq!((empty.version(), empty.len()), (0, 0));

    // Phase 2.
    let waits = map.stats().page_waits;
    thread::scope(|s| {
        let writer = s.spawn(|| map.update(stamp_all(seq + 1)));
        while map.stats().page_waits == waits {
            thread::yield_now();
        }
        // Waiting, for the held snapshots: nothing is published until one drops.
        assert!(
            stamped_with(&map.snapshot(), seq),
            "published while the held snapshots hold every spare page"
        );
        assert!(!writer.is_finished(), "a waiting blocking write returned");
        // The younger one's pages are enough: `empty` holds only version 0's.
        drop(younger);
        assert_eq!(join(writer), Ok(()));
    });
    seq += 1;
    assert!(stamped_with(&map.snapshot(), seq));
    assert_eq!((empty.version(), empty.len()), (0, 0));
    drop(empty);
    let phase_two_waits = map.stats().page_waits - waits;

    // Phase 3.
    let quota = Quota::new(4);
    let quota = &quota;
    let map = &map;
    let (mut violations, reads, writes, last_seq, try_failures) = thread::scope(|s| {
        let readers: Vec<_> = (0..3u64)
            .map(|r| {
                s.spawn(move || {
                    let mut v = Violations::new();
                    let mut share = quota.share(scaled(300_000));
                    let mut rng = Rng::new(500 + r);
                    let mut last = (0, None);
                    let mut last_seq = [0u64; 1];
                    while share.keep_going() {
                        match rng.below(3) {
                            0 => check_stamped(
                                &map.snapshot(),
                                &mut rng,
                                &mut last,
                                &mut last_seq,
                                &mut v,
                            ),
                            1 => {
                                let held = map.snapshot();
                                let next = map.snapshot();
                                v.check(
                                    next.version() >= held.version(),
                                    "a later snapshot went back",
                                    || format!("{} after {}", next.version(), held.version()),
                                );
                                check_stamped(&next, &mut rng, &mut last, &mut last_seq, &mut v);
                            }
                            _ => {
                                let value = map.get(&(STAMP_KEYS - 1));
                                v.check(value.is_some(), "get: key vanished", String::new);
                            }
                        }
                        between_snapshots(share.done(), READER_YIELD_EVERY);
                    }
                    (v, share.done())
                })
            })
            .collect();
        let writer = s.spawn(move || {
            let mut v = Violations::new();
            let mut share = quota.share(scaled(60_000));
            // [NoFreeGeneration, NoFreePage] from `try_update`.
            let (mut seq, mut failures) = (seq, [0u64; 2]);
            while share.keep_going() {
                let use_try = share.done() % 2 == 1;
                match if use_try {
                    map.try_update(stamp_all(seq + 1))
                } else {
                    map.update(stamp_all(seq + 1))
                } {
                    Ok(()) => seq += 1,
                    Err(Error::NoFreeGeneration | Error::Contended) if use_try => failures[0] += 1,
                    Err(Error::NoFreePage) if use_try => failures[1] += 1,
                    Err(e) => v.record("update: unexpected error", || {
                        format!("try {use_try}: {e:?}")
                    }),
                }
            }
            (v, share.done(), seq, failures)
        });
        let mut violations = Violations::new();
        let mut reads = 0;
        for handle in readers {
            let (v, n) = join(handle);
            violations.merge(v);
            reads += n;
        }
        let (v, writes, seq, failures) = join(writer);
        violations.merge(v);
        (violations, reads, writes, seq, failures)
    });
    let phase_three_batches = last_seq - seq;
    let mut seq = last_seq;

    // Phase 4. The readers' last reads are of two different generations: pins kept past them
    // would hold two slots, and the pages of every write since.
    let before = map.stats();
    violations.check(
        first.get(&0) == Some(stamp(0, seq)),
        "an idle reader read a stale value",
        String::new,
    );
    map.try_update(stamp_all(seq + 1)).unwrap();
    seq += 1;
    violations.check(
        second.get(&0) == Some(stamp(0, seq)),
        "an idle reader read a stale value",
        String::new,
    );
    map.try_update(stamp_all(seq + 1)).unwrap();
    seq += 1;
    // The readers read in two slots of the 4, and the current generation, now held by a one-off
    // snapshot, is in a third. The next write takes the fourth; the one after it must take a
    // slot the readers read in, which pins kept past their reads would hold (NoFreeGeneration).
    // (Such pins would also hold the 2 * 4 pages replaced since the first read: NoFreePage.)
    let held = map.snapshot();
    for _ in 0..2 {
        let result = map.try_update(stamp_all(seq + 1));
        violations.check(result.is_ok(), "idle readers hold a slot or pages", || {
            format!("with one snapshot held: {result:?}")
        });
        seq += u64::from(result.is_ok());
    }
    drop(held);
    // More batches than the pool has pages for, with no snapshot held.
    for _ in 0..IDLE_P {
        let result = map.try_update(stamp_all(seq + 1));
        violations.check(result.is_ok(), "idle readers hold pages", || {
            format!("{result:?}")
        });
        seq += u64::from(result.is_ok());
    }
    let stats = map.stats();
    violations.check(
        (stats.slot_waits, stats.page_waits) == (before.slot_waits, before.page_waits),
        "a single-threaded writer waited",
        || format!("{before:?} then {stats:?}"),
    );
    violations.check(
        stats.publishes as u64 == seq,
        "publishes != batches",
        || format!("{} publishes, {seq} batches", stats.publishes),
    );
    violations.check(
        stamped_with(&map.snapshot(), seq),
        "the last batch is not current",
        String::new,
    );
    report(
        TEST,
        reads,
        writes,
        started,
        &format!(
            "phase 1: {phase_one_batches} batches of {per_batch} pages ({held_copies} copies) \
             with version 0 held, then NoFreePage with a second snapshot; phase 2: the \
             blocking writer waited {phase_two_waits} times, until that snapshot dropped; \
             phase 3: \
             {phase_three_batches} batches, try_update: {} NoFreeGeneration, {} NoFreePage; {}",
            try_failures[0],
            try_failures[1],
            counters(&stats)
        ),
    );
    violations.assert_none(TEST);
}

// =============================================================================================
// 7. Drop counting under churn: keys and values are `Tracked`; two writers run every kind of
//    write (including Full inserts, aborted and panicking transactions, and panicking clones)
//    while a reader checks that everything it reads is alive. Afterwards, every key and value
//    ever created (clones included) must have been dropped exactly once.
// =============================================================================================

/// Spare pages of the churned maps (the default).
const CHURN_P: usize = 8;
type Churned<const G: usize> = SnapMap<Tracked<u16>, Tracked<u64>, 32, G, 1, CHURN_P>;
const CHURN_KEYS: u64 = 40; // > N = 32, so inserts hit Full
const PER_KEY: u64 = 1 << 32;

fn value_for(key: u16, n: u64) -> Tracked<u64> {
    Tracked::new(u64::from(key) * PER_KEY + (n % PER_KEY))
}

fn churn_writer<const G: usize>(
    map: &Churned<G>,
    seed: u64,
    share: &mut host_tests::Share<'_>,
    ample: bool,
) -> (Violations, [u64; 5]) {
    let mut v = Violations::new();
    let mut rng = Rng::new(seed);
    // [changing writes (Ok), Full, NoFreeGeneration from try_, NoFreePage from try_,
    //  injected panics]
    let mut counts = [0u64; 5];
    while share.keep_going() {
        let key = rng.below(CHURN_KEYS) as u16;
        let n = rng.next_u64();
        match rng.below(100) {
            0..=29 => match map.insert(Tracked::new(key), value_for(key, n)) {
                Ok(old) => {
                    counts[0] += 1;
                    if let Some(old) = old {
                        v.check(
                            old.value() / PER_KEY == u64::from(key),
                            "insert returned another key's value",
                            String::new,
                        );
                    }
                }
                Err(Error::Full) => counts[1] += 1,
                Err(e) => v.record("insert: unexpected error", || format!("{e:?}")),
            },
            30..=44 => match map.try_insert(Tracked::new(key), value_for(key, n)) {
                Ok(_) => counts[0] += 1,
                Err(Error::Full) => counts[1] += 1,
                Err(Error::Contended) => counts[2] += 1,
                Err(Error::NoFreeGeneration) => {
                    counts[2] += 1;
                    v.check(
                        !ample,
                        "try_insert: NoFreeGeneration although generations are ample",
                        String::new,
                    );
                }
                Err(Error::NoFreePage) => counts[3] += 1,
                Err(e) => v.record("try_insert: unexpected error", || format!("{e:?}")),
            },
            45..=64 => {
                let use_try = rng.one_in(2);
                match if use_try {
                    map.try_remove(&key)
                } else {
                    map.remove(&key)
                } {
                    Ok(Some(old)) => {
                        counts[0] += 1;
                        v.check(
                            old.value() / PER_KEY == u64::from(key),
                            "remove returned another key's value",
                            String::new,
                        );
                    }
                    Ok(None) => {}
                    Err(Error::Contended) if use_try => counts[2] += 1,
                    Err(Error::NoFreeGeneration) if use_try => {
                        counts[2] += 1;
                        v.check(
                            !ample,
                            "try_remove: NoFreeGeneration although generations are ample",
                            String::new,
                        );
                    }
                    Err(Error::NoFreePage) if use_try => counts[3] += 1,
                    Err(e) => v.record("remove: unexpected error", || {
                        format!("try {use_try}: {e:?}")
                    }),
                }
            }
            65..=72 => {
                // A batch: insert three, remove one, keep only even values; abort a quarter.
                let abort = rng.one_in(4);
                let keys = [
                    rng.below(CHURN_KEYS) as u16,
                    rng.below(CHURN_KEYS) as u16,
                    rng.below(CHURN_KEYS) as u16,
                ];
                let result = map.update(|tx| {
                    for &k in &keys {
                        match tx.insert(Tracked::new(k), value_for(k, n)) {
                            Ok(_) | Err(Error::Full) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    let _ = tx.remove(&key);
                    let _ = tx.retain(|_, value| value.value() % 2 == 0 || value.value() % 3 == 0);
                    if abort {
                        Err(Error::Aborted)
                    } else {
                        Ok(())
                    }
                });
                match (abort, result) {
                    (true, Err(Error::Aborted)) => {}
                    (false, Ok(())) => counts[0] += 1,
                    (_, other) => v.record("batch: unexpected result", || {
                        format!("abort {abort}: {other:?}")
                    }),
                }
            }
            73..=82 => {
                if let Some(current) = map.get(&key) {
                    let result = map.compare_exchange(&key, &current, value_for(key, n));
                    v.check(result.is_ok(), "compare_exchange failed", || {
                        format!("{result:?}")
                    });
                }
            }
            83..=90 => match map.get_or_insert(Tracked::new(key), value_for(key, n)) {
                Ok((value, _)) => {
                    v.check(
                        value.value() / PER_KEY == u64::from(key),
                        "get_or_insert: another key's value",
                        String::new,
                    );
                }
                Err(Error::Full) => counts[1] += 1,
                Err(e) => v.record("get_or_insert: unexpected error", || format!("{e:?}")),
            },
            91..=95 => {
                let result = map.remove_if(&key, |value| value.value() % 2 == 1);
                v.check(result.is_ok(), "remove_if failed", || format!("{result:?}"));
            }
            96 => {
                v.check(map.clear().is_ok(), "clear failed", String::new);
            }
            97 | 98 => {
                // A transaction that panics midway: nothing published, slot, pin and pages
                // released.
                counts[4] += 1;
                let result = catch_unwind(AssertUnwindSafe(|| {
                    map.update(|tx| -> Result<(), Error> {
                        let _ = tx.insert(Tracked::new(key), value_for(key, n));
                        let _ = tx.remove(&((key + 1) % CHURN_KEYS as u16));
                        panic!("{INJECTED_PANIC} (update closure)");
                    })
                }));
                v.check(
                    result.is_err(),
                    "panicking update did not panic",
                    String::new,
                );
            }
            _ => {
                // A clone that panics somewhere in the copy or in the closure.
                let bomb = panic_on_clone_after(rng.below(80));
                let result = catch_unwind(AssertUnwindSafe(|| {
                    map.insert(Tracked::new(key), value_for(key, n))
                }));
                counts[4] += u64::from(bomb.fired());
                drop(bomb);
                match result {
                    Ok(Ok(_)) => counts[0] += 1,
                    Ok(Err(Error::Full)) | Err(_) => {}
                    Ok(Err(e)) => {
                        v.record("insert with a bomb: unexpected error", || format!("{e:?}"))
                    }
                }
            }
        }
    }
    (v, counts)
}

fn drop_churn<const G: usize>(test: &'static str, reads: u64, writes_per_writer: u64) {
    let _watchdog = Watchdog::new(test, HANG_LIMIT);
    silence_injected_panics();
    let _serial = tracking_lock();
    let before = drop_counts();
    let started = Instant::now();
    // A pin for the reader and for each writer's base, a claim per writer, the current one.
    let ample = G > 1 + 2 * 2;
    let map: Churned<G> = SnapMap::new();
    let quota = Quota::new(3);
    let (map_ref, quota) = (&map, &quota);

    let (mut violations, read_count, write_count, counts) = thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut v = Violations::new();
            let mut reader = map_ref.reader().expect("reader slot");
            let mut share = quota.share(reads);
            let mut last_version = 0;
            while share.keep_going() {
                let snap = reader.snapshot();
                let mut count = 0;
                for (key, value) in snap.iter() {
                    count += 1;
                    if v.check(
                        key.is_alive() && value.is_alive(),
                        "read a dropped key or value",
                        || format!("{key:?} => {value:?} at v{}", snap.version()),
                    ) {
                        v.check(
                            value.value() / PER_KEY == u64::from(key.value()),
                            "value under the wrong key",
                            || format!("{key:?} => {value:?}"),
                        );
                        v.check(u64::from(key.value()) < CHURN_KEYS, "unknown key", || {
                            format!("{key:?}")
                        });
                    }
                }
                v.check(count == snap.len(), "iter count != len", String::new);
                v.check(snap.len() <= 32, "more than N entries", String::new);
                v.check(
                    snap.version() >= last_version,
                    "version went back",
                    String::new,
                );
                last_version = snap.version();
            }
            (v, share.done())
        });
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                s.spawn(move || {
                    let mut share = quota.share(writes_per_writer);
                    let (v, counts) = churn_writer(map_ref, 600 + w, &mut share, ample);
                    (v, share.done(), counts)
                })
            })
            .collect();
        let mut violations = Violations::new();
        let (v, read_count) = join(reader);
        violations.merge(v);
        let (mut write_count, mut counts) = (0, [0u64; 5]);
        for handle in writers {
            let (v, n, c) = join(handle);
            violations.merge(v);
            write_count += n;
            for (total, c) in counts.iter_mut().zip(c) {
                *total += c;
            }
        }
        (violations, read_count, write_count, counts)
    });

    let stats = map.stats();
    // With every thread gone, what is alive is what the pages hold: the N / 16 home pages and
    // the P spare pages, 16 slots each, a key and a value per slot. More would be a leak that
    // grows with the run.
    let room = 2 * 16 * (32 / 16 + CHURN_P);
    let live = drop_counts().live_since(&before);
    violations.check(
        live <= room as i64,
        "more values alive than the pages can hold",
        || format!("{live} alive, the pages hold at most {room}"),
    );
    if ample {
        violations.check(
            stats.slot_waits == 0,
            "a writer waited although generations are ample",
            || format!("{stats:?}"),
        );
    }
    drop(map);
    let after = drop_counts();
    report(
        test,
        read_count,
        write_count,
        started,
        &format!(
            "{} changing writes, {} Full, try_: {} NoFreeGeneration, {} NoFreePage; {} injected \
             panics; {} values created, {live} alive before the map dropped; {}",
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4],
            after.created - before.created,
            counters(&stats)
        ),
    );
    violations.assert_none(test);
    after.assert_balanced_since(&before, test);
}

#[test]
fn every_key_and_value_dropped_once_with_ample_generations() {
    drop_churn::<8>(
        "every_key_and_value_dropped_once_with_ample_generations",
        scaled(600_000),
        scaled(100_000),
    );
}

#[test]
fn every_key_and_value_dropped_once_with_scarce_generations() {
    drop_churn::<3>(
        "every_key_and_value_dropped_once_with_scarce_generations",
        scaled(600_000),
        scaled(80_000),
    );
}

// =============================================================================================
// 8. Page exhaustion: a pool of one or two spare pages, two writers that each need every page
//    for some writes, and readers that hold snapshots briefly (one now and then until a writer
//    has waited for it). Every publish is a batch that adds 1 to two counters, so in every
//    snapshot the counters sum to twice the batches published: a torn batch shows. At the end
//    each counter equals the increments the writers made (none lost, none doubled), every
//    `Tracked` key and value was dropped exactly once, and the writers waited for pages
//    (`page_waits > 0`): the pool ran out, and the blocking writers still made progress.
// =============================================================================================

type Paged<const N: usize, const P: usize> = SnapMap<Tracked<u16>, Tracked<u64>, N, 8, 1, P>;

/// How long a holding reader keeps its snapshot at most, in yields, waiting for a writer to wait.
const HOLD_YIELDS: u32 = 200;

/// Checks a snapshot of a paged map of `keys` counters; `last` is this reader's previous view.
fn check_paged<const N: usize>(
    snap: &snapmap_core::Snapshot<'_, Tracked<u16>, Tracked<u64>, N>,
    keys: usize,
    last: &mut (u64, Vec<u64>),
    v: &mut Violations,
) {
    let (mut sum, mut count) = (0u64, 0usize);
    for (key, value) in snap.iter() {
        count += 1;
        if !v.check(
            key.is_alive() && value.is_alive(),
            "read a dropped key or value",
            || format!("{key:?} => {value:?} at v{}", snap.version()),
        ) {
            continue;
        }
        let (key, value) = (usize::from(key.value()), value.value());
        sum += value;
        if v.check(key < keys, "unknown key", || format!("{key}")) {
            v.check(value >= last.1[key], "a counter went back", || {
                format!("key {key}: {} then {value}", last.1[key])
            });
            last.1[key] = value;
        }
    }
    let version = snap.version();
    v.check(count == snap.len(), "iter count != len", String::new);
    v.check(snap.len() == keys, "counters appeared or vanished", || {
        format!("len {} at v{version}", snap.len())
    });
    // Version 1 is the opening batch of zeros; every later one added 2.
    v.check(
        sum == 2 * (version - 1),
        "torn batch: sum != 2 * batches",
        || format!("sum {sum} at v{version}"),
    );
    v.check(version >= last.0, "version went back", String::new);
    last.0 = version;
}

fn page_exhaustion<const N: usize, const P: usize>(
    test: &'static str,
    reads_per_reader: u64,
    writes_per_writer: u64,
) {
    let _watchdog = Watchdog::new(test, HANG_LIMIT);
    silence_injected_panics();
    let _serial = tracking_lock();
    let before = drop_counts();
    let started = Instant::now();
    let keys = 3 * N / 4;
    let map: Paged<N, P> = SnapMap::new();
    map.try_update(|tx| {
        for key in 0..keys as u16 {
            tx.insert(Tracked::new(key), Tracked::new(0))?;
        }
        Ok(())
    })
    .expect("the opening batch fits the pool");
    // G = 8 is ample: 3 reader pins (one reader holds two snapshots), 2 writers' base pins and
    // claims, and the current generation. Every wait here is for pages.
    let quota = Quota::new(4);
    let (map_ref, quota) = (&map, &quota);

    let (mut violations, reads, per_writer, per_key, counts) = thread::scope(|s| {
        // A registered reader that now and then holds its snapshot until a writer has waited
        // for pages (or `HOLD_YIELDS` yields), so that exhaustion happens in every run.
        let holder = s.spawn(move || {
            let mut v = Violations::new();
            let mut reader = map_ref.reader().expect("reader slot");
            let mut share = quota.share(reads_per_reader);
            let mut rng = Rng::new(800);
            let mut last = (0, vec![0; keys]);
            let mut holds = 0u64;
            while share.keep_going() {
                let snap = reader.snapshot();
                check_paged(&snap, keys, &mut last, &mut v);
                if rng.one_in(256) {
                    holds += 1;
                    let waits = map_ref.stats().page_waits;
                    for _ in 0..HOLD_YIELDS {
                        if map_ref.stats().page_waits != waits {
                            break;
                        }
                        thread::yield_now();
                    }
                    check_paged(&snap, keys, &mut last, &mut v);
                }
                drop(snap);
                between_snapshots(share.done(), READER_YIELD_OFTEN);
            }
            (v, share.done(), holds)
        });
        // One-off snapshots, half of them two at a time.
        let one_off = s.spawn(move || {
            let mut v = Violations::new();
            let mut share = quota.share(reads_per_reader);
            let mut last = (0, vec![0; keys]);
            while share.keep_going() {
                let first = map_ref.snapshot();
                check_paged(&first, keys, &mut last, &mut v);
                if share.done() % 2 == 0 {
                    let second = map_ref.snapshot();
                    check_paged(&second, keys, &mut last, &mut v);
                }
                drop(first);
                between_snapshots(share.done(), READER_YIELD_OFTEN);
            }
            (v, share.done(), 0)
        });
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                s.spawn(move || {
                    paged_writer(map_ref, keys, 900 + w, &mut quota.share(writes_per_writer))
                })
            })
            .collect();
        let mut violations = Violations::new();
        let (mut reads, mut holds) = (0, 0);
        for handle in [holder, one_off] {
            let (v, n, h) = join(handle);
            violations.merge(v);
            reads += n;
            holds += h;
        }
        let (mut writes, mut per_key, mut counts) = (vec![], vec![0u64; keys], [0u64; 5]);
        for handle in writers {
            let (v, n, mine, c) = join(handle);
            violations.merge(v);
            writes.push(n);
            for (total, mine) in per_key.iter_mut().zip(mine) {
                *total += mine;
            }
            for (total, c) in counts.iter_mut().zip(c) {
                *total += c;
            }
        }
        counts[4] = holds;
        (violations, reads, writes, per_key, counts)
    });

    let stats = map.stats();
    let snap = map.snapshot();
    let batches: u64 = per_key.iter().sum::<u64>() / 2;
    for (key, &expected) in per_key.iter().enumerate() {
        let got = snap.get(&(key as u16)).map(Tracked::value);
        violations.check(got == Some(expected), "lost or doubled increments", || {
            format!("key {key}: map {got:?}, writers made {expected}")
        });
    }
    violations.check(
        stats.publishes as u64 == batches + 1 && snap.version() == batches + 1,
        "publishes != batches + opening",
        || format!("{stats:?}, version {}, {batches} batches", snap.version()),
    );
    violations.check(
        stats.slot_waits == 0 && counts[2] == 0,
        "a writer waited for a slot although generations are ample",
        || format!("{stats:?}, {} try NoFreeGeneration", counts[2]),
    );
    violations.check(
        stats.page_waits > 0,
        "no blocking writer ever waited for a page: the pool never ran out",
        || format!("{stats:?}"),
    );
    drop(snap);
    // With the threads gone and no snapshot held, the pool is whole: no page was lost to a
    // writer that waited, lost a race or unwound. A batch that changes every page of the table
    // (as many as the pool has) goes through without waiting.
    let copies = stats.page_copies;
    let whole = map.try_update(|tx| {
        for key in 0..keys as u16 {
            let value = tx.get_mut(&key)?.ok_or(Error::Aborted)?;
            *value = Tracked::new(value.value() + 1);
        }
        Ok(())
    });
    violations.check(
        whole.is_ok() && map.stats().page_copies - copies == (N / 16).min(P),
        "the pool is not whole after the run",
        || format!("{whole:?}, {:?}", map.stats()),
    );
    let room = 2 * (N + 16 * P);
    let live = drop_counts().live_since(&before);
    violations.check(
        live <= room as i64,
        "more values alive than the pages can hold",
        || format!("{live} alive, the pages hold at most {room}"),
    );
    drop(map);
    let after = drop_counts();
    report(
        test,
        reads,
        per_writer.iter().sum(),
        started,
        &format!(
            "N = {N}, P = {P}: writers' operations {per_writer:?}; {batches} batches ({} \
             blocking), {} injected panics, try_update retried after {} NoFreePage; {} held \
             snapshots; {} values created, {live} alive before the map dropped; {}",
            counts[0],
            counts[3],
            counts[1],
            counts[4],
            after.created - before.created,
            counters(&stats)
        ),
    );
    violations.assert_none(test);
    after.assert_balanced_since(&before, test);
}

/// One writer of [`page_exhaustion`]: batches that add 1 to two random counters, through
/// `update` (which must go through however long it waits for pages), through `try_update`
/// (retried until it goes through), aborted, or with a clone that panics. Returns its
/// violations, operations, increments per key and [blocking batches, try_update NoFreePage,
/// try_update NoFreeGeneration, injected panics].
fn paged_writer<const N: usize, const P: usize>(
    map: &Paged<N, P>,
    keys: usize,
    seed: u64,
    share: &mut host_tests::Share<'_>,
) -> (Violations, u64, Vec<u64>, [u64; 4]) {
    let mut v = Violations::new();
    let mut rng = Rng::new(seed);
    let mut mine = vec![0u64; keys];
    let mut counts = [0u64; 4];
    while share.keep_going() {
        let a = rng.below(keys as u64) as u16;
        let b = (a + 1 + rng.below(keys as u64 - 1) as u16) % keys as u16;
        let mut torn = 0u64;
        let mut pair = |tx: &mut snapmap_core::Txn<'_, Tracked<u16>, Tracked<u64>, N>| {
            // The writer's copy is a snapshot too.
            if tx.iter().map(|(_, value)| value.value()).sum::<u64>() % 2 != 0 {
                torn += 1;
            }
            for key in [a, b] {
                let value = tx.get_mut(&key)?.ok_or(Error::Aborted)?;
                *value = Tracked::new(value.value() + 1);
            }
            Ok(())
        };
        let tally = match rng.below(10) {
            0..=3 => {
                let result = map.update(&mut pair);
                counts[0] += 1;
                v.check(result.is_ok(), "blocking update failed", || {
                    format!("{result:?}")
                })
            }
            4..=7 => loop {
                match map.try_update(&mut pair) {
                    Ok(()) => break true,
                    Err(Error::NoFreePage) => counts[1] += 1,
                    Err(Error::NoFreeGeneration) => counts[2] += 1,
                    // The other writer has the turn (it lost three races in a row): retry.
                    Err(Error::Contended) => {}
                    Err(e) => {
                        v.record("try_update: unexpected error", || format!("{e:?}"));
                        break false;
                    }
                }
                thread::yield_now();
            },
            8 => {
                let result = map.update(|tx| {
                    pair(tx)?;
                    Err::<(), _>(Error::Aborted)
                });
                v.check(result == Err(Error::Aborted), "aborted batch", || {
                    format!("{result:?}")
                });
                false
            }
            _ => {
                // Page copies clone every entry of a page: a clone panics in one of them or in
                // the closure, or not at all.
                let bomb = panic_on_clone_after(rng.below(64));
                let result = catch_unwind(AssertUnwindSafe(|| map.update(&mut pair)));
                let fired = bomb.fired();
                drop(bomb);
                counts[3] += u64::from(fired);
                match result {
                    Ok(Ok(())) if !fired => true,
                    Err(_) if fired => false,
                    other => {
                        v.record("update with a bomb: unexpected result", || {
                            format!("fired {fired}: {:?}", other.map_err(|_| "panic"))
                        });
                        false
                    }
                }
            }
        };
        v.check(torn == 0, "torn batch seen by a writer's Txn", String::new);
        if tally {
            mine[usize::from(a)] += 1;
            mine[usize::from(b)] += 1;
        }
    }
    (v, share.done(), mine, counts)
}

/// One spare page: every write waits while the other writer holds it or a snapshot older than
/// the last write is held.
#[test]
fn page_exhaustion_with_one_spare_page() {
    page_exhaustion::<16, 1>(
        "page_exhaustion_with_one_spare_page",
        scaled(200_000),
        scaled(40_000),
    );
}

/// Two spare pages for a table of two: a batch that changes both pages needs the whole pool.
#[test]
fn page_exhaustion_with_two_spare_pages() {
    page_exhaustion::<32, 2>(
        "page_exhaustion_with_two_spare_pages",
        scaled(200_000),
        scaled(40_000),
    );
}

// =============================================================================================
// 9. Turns: threads that take the map's sole `Writer` (retrying while another holds it), make a
//    few writes through it and drop it, against threads writing through the map (retrying on
//    `WriterHeld`), all incrementing one counter; readers check every snapshot. No increment
//    may be lost or doubled across the handovers, and while a thread holds the `Writer` no
//    other write may land.
// =============================================================================================

/// The counter every write increments (and the version it publishes: every publication is one
/// increment).
const TURN_COUNTER: u16 = 0;
/// Set to the counter's new value by the same transaction: a snapshot where the two differ is
/// torn.
const TURN_MIRROR: u16 = 1;
/// Each thread also counts its own increments, at key `TURN_OWN + thread`.
const TURN_OWN: u16 = 2;
/// Threads that take the `Writer` in turns, and threads that write through the map.
const TURN_TAKERS: u16 = 2;
const TURN_SHARED: u16 = 2;

/// One increment: the counter and its mirror to the counter's next value, and `own` + 1.
/// Returns the new value.
fn turn_increment(tx: &mut snapmap_core::Txn<'_, u16, u64, 32>, own: u16) -> Result<u64, Error> {
    let next = tx.get(&TURN_COUNTER).copied().unwrap_or(0) + 1;
    tx.insert(TURN_COUNTER, next)?;
    tx.insert(TURN_MIRROR, next)?;
    match tx.get_mut(&own)? {
        Some(mine) => *mine += 1,
        None => drop(tx.insert(own, 1)?),
    }
    Ok(next)
}

/// The increments made through the map so far (by the threads that do not take the `Writer`).
fn shared_increments<const G: usize, const R: usize>(map: &SnapMap<u16, u64, 32, G, R>) -> u64 {
    let snap = map.snapshot();
    (0..TURN_SHARED)
        .filter_map(|t| snap.get(&(TURN_OWN + TURN_TAKERS + t)))
        .sum()
}

/// Checks one snapshot of the turns map: the counter equals the version and its mirror, the
/// threads' own counts sum to it, and it never goes back for this reader (`last`).
fn check_turns<const N: usize>(
    snap: &snapmap_core::Snapshot<'_, u16, u64, N>,
    last: &mut u64,
    v: &mut Violations,
) {
    let version = snap.version();
    let counter = snap.get(&TURN_COUNTER).copied().unwrap_or(0);
    let (mut own_sum, mut count) = (0u64, 0usize);
    for (&key, &value) in snap.iter() {
        count += 1;
        if key >= TURN_OWN {
            v.check(
                key < TURN_OWN + TURN_TAKERS + TURN_SHARED,
                "unknown key",
                || format!("{key}"),
            );
            own_sum += value;
        }
    }
    v.check(count == snap.len(), "iter count != len", String::new);
    v.check(counter == version, "counter != version", || {
        format!("counter {counter}, version {version}")
    });
    v.check(
        snap.get(&TURN_MIRROR).copied().unwrap_or(0) == counter,
        "torn increment: mirror != counter",
        || format!("counter {counter}, mirror {:?}", snap.get(&TURN_MIRROR)),
    );
    v.check(
        own_sum == counter,
        "torn increment: threads' counts != counter",
        || format!("counts {own_sum}, counter {counter}"),
    );
    v.check(counter >= *last, "the counter went back", || {
        format!("{} then {counter}", *last)
    });
    *last = counter;
}

/// [`TURN_TAKERS`] threads take the `Writer` in turns, `taken` writes each at least, and
/// [`TURN_SHARED`] write through the map, `shared` writes each at least, while a registered
/// reader (if `R > 0`) and a one-off reader read `reads` snapshots each. (A takeover waits for
/// the shared writes in flight, a preempted one included: the takers make far fewer writes in
/// the same time.)
fn turns_stress<const G: usize, const R: usize>(
    test: &'static str,
    reads: u64,
    taken: u64,
    shared: u64,
) {
    let _watchdog = Watchdog::new(test, HANG_LIMIT);
    let started = Instant::now();
    let map: SnapMap<u16, u64, 32, G, R> = SnapMap::new();
    let quota = Quota::new(2 + usize::from(TURN_TAKERS + TURN_SHARED));
    let (map, quota) = (&map, &quota);

    let (mut violations, reads, writes, per_thread, counts) = thread::scope(|s| {
        let readers: Vec<_> = (0..2usize)
            .map(|r| {
                s.spawn(move || {
                    let mut v = Violations::new();
                    let mut reader = (r < R).then(|| map.reader().expect("a reader slot"));
                    let mut share = quota.share(reads);
                    let mut last = 0;
                    while share.keep_going() {
                        let snap = match reader.as_mut() {
                            Some(reader) => reader.snapshot(),
                            None => map.snapshot(),
                        };
                        check_turns(&snap, &mut last, &mut v);
                        drop(snap);
                        between_snapshots(share.done(), READER_YIELD_EVERY);
                    }
                    (v, share.done())
                })
            })
            .collect();
        // [increments, takeovers or shared writes refused with WriterHeld, try_ retries, aborts]
        let takers: Vec<_> = (0..TURN_TAKERS)
            .map(|t| {
                s.spawn(move || {
                    let mut v = Violations::new();
                    let own = TURN_OWN + t;
                    let mut share = quota.share(taken);
                    let mut rng = Rng::new(900 + u64::from(t));
                    let mut counts = [0u64; 4];
                    let mut last = 0;
                    'turns: loop {
                        let mut writer = loop {
                            match map.writer() {
                                Ok(writer) => break writer,
                                Err(Error::WriterHeld) => counts[1] += 1,
                                Err(other) => v.record("writer() failed", || format!("{other:?}")),
                            }
                            thread::yield_now();
                        };
                        // While we hold it, only our writes land: each sees our last one.
                        let mut expect = writer.get(&TURN_COUNTER).unwrap_or(0);
                        v.check(
                            expect >= last,
                            "the counter went back at a takeover",
                            || format!("{last} then {expect}"),
                        );
                        for _ in 0..1 + rng.below(8) {
                            if !share.keep_going() {
                                break 'turns;
                            }
                            let roll = rng.below(8);
                            let result = match roll {
                                0 => {
                                    let r = writer.update(|tx| {
                                        turn_increment(tx, own)?;
                                        Err::<u64, _>(Error::Aborted)
                                    });
                                    v.check(
                                        r == Err(Error::Aborted),
                                        "aborted update through the Writer",
                                        || format!("{r:?}"),
                                    );
                                    counts[3] += 1;
                                    continue;
                                }
                                1 | 2 => loop {
                                    match writer.try_update(|tx| turn_increment(tx, own)) {
                                        Err(Error::NoFreeGeneration | Error::NoFreePage) => {
                                            counts[2] += 1;
                                            thread::yield_now();
                                        }
                                        other => break other,
                                    }
                                },
                                3 => match writer.update_versioned(|tx| turn_increment(tx, own)) {
                                    Ok((next, version)) => {
                                        v.check(
                                            version == Some(next),
                                            "update_versioned: wrong version",
                                            || format!("{version:?} for {next}"),
                                        );
                                        Ok(next)
                                    }
                                    Err(e) => Err(e),
                                },
                                _ => writer.update(|tx| turn_increment(tx, own)),
                            };
                            match result {
                                Ok(next) => {
                                    v.check(
                                        next == expect + 1,
                                        "another write landed while the Writer was held",
                                        || format!("counter {expect} then {next}"),
                                    );
                                    expect = next;
                                    counts[0] += 1;
                                    let snap = writer.snapshot();
                                    v.check(
                                        snap.version() == next
                                            && snap.get(&TURN_COUNTER) == Some(&next),
                                        "the Writer's snapshot misses its last write",
                                        || format!("{next}: v{}", snap.version()),
                                    );
                                }
                                Err(e) => v.record("increment through the Writer failed", || {
                                    format!("roll {roll}: {e:?}")
                                }),
                            }
                        }
                        last = expect;
                        let shared_before = shared_increments(map);
                        drop(writer);
                        // Give the map back for a while: until a write through it lands, or a
                        // few yields. Without it the takers can hand the `Writer` to each other
                        // for ever (Miri's scheduler does), starving the map's writers.
                        for _ in 0..64 {
                            thread::yield_now();
                            if shared_increments(map) != shared_before {
                                break;
                            }
                        }
                    }
                    (v, share.done(), counts)
                })
            })
            .collect();
        let shared: Vec<_> = (0..TURN_SHARED)
            .map(|t| {
                s.spawn(move || {
                    let mut v = Violations::new();
                    let own = TURN_OWN + TURN_TAKERS + t;
                    let mut share = quota.share(shared);
                    let mut rng = Rng::new(950 + u64::from(t));
                    let mut counts = [0u64; 4];
                    let mut last = 0;
                    while share.keep_going() {
                        let roll = rng.below(8);
                        let use_try = roll < 3;
                        let result = loop {
                            let result = match roll {
                                0 => map
                                    .update(|tx| {
                                        turn_increment(tx, own)?;
                                        Err::<u64, _>(Error::Aborted)
                                    })
                                    .map(|_| 0),
                                1 | 2 => map.try_update(|tx| turn_increment(tx, own)),
                                3 => map.update_versioned(|tx| turn_increment(tx, own)).map(
                                    |(next, version)| {
                                        v.check(
                                            version == Some(next),
                                            "update_versioned: wrong version",
                                            || format!("{version:?} for {next}"),
                                        );
                                        next
                                    },
                                ),
                                _ => map.update(|tx| turn_increment(tx, own)),
                            };
                            match result {
                                Err(Error::WriterHeld) => counts[1] += 1,
                                Err(
                                    Error::NoFreeGeneration | Error::NoFreePage | Error::Contended,
                                ) if use_try => counts[2] += 1,
                                other => break other,
                            }
                            thread::yield_now();
                        };
                        match (roll, result) {
                            (0, Err(Error::Aborted)) => counts[3] += 1,
                            (1.., Ok(next)) => {
                                v.check(next > last, "a thread's increments went back", || {
                                    format!("{last} then {next}")
                                });
                                last = next;
                                counts[0] += 1;
                            }
                            (roll, other) => v.record("unexpected shared write result", || {
                                format!("roll {roll}: {other:?}")
                            }),
                        }
                    }
                    (v, share.done(), counts)
                })
            })
            .collect();
        let mut violations = Violations::new();
        let (mut reads, mut writes) = (0, 0);
        let mut per_thread = Vec::new();
        let mut counts = [[0u64; 4]; 2];
        for handle in readers {
            let (v, n) = join(handle);
            violations.merge(v);
            reads += n;
        }
        for (kind, handles) in [takers, shared].into_iter().enumerate() {
            for handle in handles {
                let (v, n, c) = join(handle);
                violations.merge(v);
                writes += n;
                per_thread.push(c[0]);
                for (total, c) in counts[kind].iter_mut().zip(c) {
                    *total += c;
                }
            }
        }
        (violations, reads, writes, per_thread, counts)
    });

    let stats = map.stats();
    let snap = map.snapshot();
    let increments: u64 = per_thread.iter().sum();
    let counter = snap.get(&TURN_COUNTER).copied().unwrap_or(0);
    violations.check(counter == increments, "lost or doubled increments", || {
        format!("counter {counter}, {increments} increments made")
    });
    for (t, &made) in per_thread.iter().enumerate() {
        let own = snap.get(&(TURN_OWN + t as u16)).copied().unwrap_or(0);
        violations.check(own == made, "a thread's increments lost or doubled", || {
            format!("thread {t}: map {own}, made {made}")
        });
    }
    violations.check(
        snap.version() == increments && stats.publishes as u64 == increments,
        "version or publishes != increments",
        || format!("version {}, {stats:?}", snap.version()),
    );
    // The run tested the handover only if both kinds wrote and each was refused at times.
    violations.check(
        counts[0][0] > 0 && counts[1][0] > 0,
        "one kind of writer never wrote",
        || format!("{counts:?}"),
    );
    drop(snap);
    drop(map.writer().expect("every Writer was dropped"));
    report(
        test,
        reads,
        writes,
        started,
        &format!(
            "{increments} increments; Writer: {} increments, {} takeovers refused, {} try_ \
             retries, {} aborted; shared: {} increments, {} refused (WriterHeld), {} try_ \
             retries, {} aborted; {}",
            counts[0][0],
            counts[0][1],
            counts[0][2],
            counts[0][3],
            counts[1][0],
            counts[1][1],
            counts[1][2],
            counts[1][3],
            counters(&stats)
        ),
    );
    violations.assert_none(test);
}

/// Ample generations for the `Writer` (`G = 4`: two readers' pins, the current one and one to
/// write into), and scarce ones for the shared writers; then `G = 3`, where the `Writer` waits
/// for pinned generations too.
#[test]
fn the_writer_and_shared_writers_take_turns_and_lose_nothing() {
    turns_stress::<4, 1>(
        "the_writer_and_shared_writers_take_turns_and_lose_nothing (G = 4)",
        scaled(300_000),
        scaled(2_000),
        scaled(50_000),
    );
    turns_stress::<3, 1>(
        "the_writer_and_shared_writers_take_turns_and_lose_nothing (G = 3)",
        scaled(200_000),
        scaled(1_000),
        scaled(30_000),
    );
}
