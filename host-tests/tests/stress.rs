//! Multi-threaded stress tests of `snapmap-core` under `std`.
//!
//! Every test checks its invariants on *every* snapshot it takes, counts violations by kind
//! ([`Violations`]) and asserts at the end that there were none; it also checks end-of-run
//! accounting against the map's own counters (publishes == successful changing writes == final
//! version). Configurations with ample generations (a pin per reader and writer base, a claim per writer, and
//! the current one: writers must never wait or fail for want of a
//! generation slot) and with fewer generation slots (writers wait; `try_` forms fail with
//! `NoFreeGeneration`, and only with that) are both covered.
//!
//! Sizes: `SNAPMAP_STRESS_SCALE` (float, default 1.0) scales every operation count. Each test
//! prints its counts (`cargo test --test stress -- --nocapture` to see them) and the running
//! total of the binary; at scale 1.0 the tests together do well over 10 million operations, most
//! of them reads.

use host_tests::{
    drop_counts, panic_on_clone_after, scale, scaled, silence_injected_panics, tracking_lock,
    Quota, Rng, Tracked, Violations, Watchdog, INJECTED_PANIC,
};
use snapmap_core::{Error, SnapMap};
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
    /// Readers yield the CPU after this many snapshots (while pinning nothing), if set. With
    /// `G = 2` every write waits until no reader pins the previous generation; on an
    /// oversubscribed machine a reader preempted mid-snapshot holds its pin for a whole
    /// time slice, so without such pauses each write costs milliseconds.
    reader_yield_every: Option<u64>,
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
    } = run;
    assert!(readers + writers <= 4 && writers <= 2);
    let _watchdog = Watchdog::new(test, HANG_LIMIT);
    let started = Instant::now();
    let ample = G as u64 > readers + 2 * writers;
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
                        if reader_yield_every.is_some_and(|every| share.done() % every == 0) {
                            thread::yield_now();
                        }
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
                    let (mut seq, mut changed, mut try_failures) = (0u64, 0u64, 0u64);
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
                        let result = if roll.is_multiple_of(2) {
                            map.update(&mut batch)
                        } else {
                            map.try_update(&mut batch)
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
                            (_, Err(Error::NoFreeGeneration)) if roll % 2 == 1 => {
                                try_failures += 1;
                                v.check(
                                    !ample,
                                    "try_update: NoFreeGeneration although generations are ample",
                                    String::new,
                                );
                            }
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
        let (mut reads, mut writes, mut changed, mut try_failures) = (0, 0, 0, 0);
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
            try_failures += f;
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
        &format!("{changed} published, {try_failures} try_update NoFreeGeneration, {stats:?}"),
    );
    violations.assert_none(test);
}

/// `G = 8 >= readers + 2 * writers + 1 = 7`: writers never wait, `try_update` never fails for
/// want of a slot.
#[test]
fn batches_are_atomic_with_ample_generations() {
    stamp_stress::<8, 2>(
        "batches_are_atomic_with_ample_generations",
        StampRun {
            readers: 2,
            writers: 2,
            reads_per_reader: scaled(2_000_000),
            writes_per_writer: scaled(250_000),
            reader_yield_every: None,
        },
    );
}

/// `G = 3 < 7`, one registered reader and one one-off: writers wait for pinned generations;
/// `try_update` may fail, only with `NoFreeGeneration`.
#[test]
fn batches_are_atomic_with_scarce_generations() {
    stamp_stress::<3, 1>(
        "batches_are_atomic_with_scarce_generations",
        StampRun {
            readers: 2,
            writers: 2,
            reads_per_reader: scaled(1_500_000),
            writes_per_writer: scaled(100_000),
            reader_yield_every: None,
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
            reader_yield_every: Some(256),
        },
    );
}

// =============================================================================================
// 2. Transfers: amounts move between accounts in one `update`; the sum is conserved in every
//    snapshot and no balance goes negative (an overdraft aborts). The map is a `static`.
// =============================================================================================

const ACCOUNTS: u8 = 16;
const OPENING_BALANCE: i64 = 1_000;

/// Default `G = 4`, `R = 4`: with 2 writers and 2 readers, `G < R + W + 1`.
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
                }
                (v, share.done(), failures)
            });
            let writers: Vec<_> = (0..2u64)
                .map(|w| {
                    s.spawn(move || {
                        let mut v = Violations::new();
                        let mut share = quota.share(scaled(200_000));
                        let mut rng = Rng::new(200 + w);
                        let (mut transfers, mut aborts, mut try_failures) = (0u64, 0u64, 0u64);
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
                                *tx.get_mut(&from).ok_or(Error::Aborted)? -= amount;
                                *tx.get_mut(&to).ok_or(Error::Aborted)? += amount;
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
                                Err(Error::NoFreeGeneration) if use_try => try_failures += 1,
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
            let (mut writes, mut transfers, mut aborts, mut try_failures) = (0, 0, 0, 0);
            for handle in writers {
                let (v, n, t, a, f) = join(handle);
                violations.merge(v);
                writes += n;
                transfers += t;
                aborts += a;
                try_failures += f;
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
            "{transfers} transfers, {aborts} aborted (overdraft), {try_failures} try_update NoFreeGeneration, \
             {one_off_failures} held one-off pairs out of order, {stats:?}"
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

    let (mut violations, reads, writes, per_key) = thread::scope(|s| {
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
                    let mut retried_try = 0u64;
                    while share.keep_going() {
                        let key = rng.below(KEYS as u64) as u16;
                        let increment =
                            |tx: &mut snapmap_core::Txn<'_, u16, u64, 32>| match tx.get_mut(&key) {
                                Some(value) => {
                                    *value += 1;
                                    Ok(())
                                }
                                None => tx.insert(key, 1).map(drop),
                            };
                        // Half through `try_update`, retried until it goes through.
                        let result = if rng.one_in(2) {
                            loop {
                                match map.try_update(increment) {
                                    Err(Error::NoFreeGeneration) => {
                                        retried_try += 1;
                                        thread::yield_now();
                                    }
                                    other => break other,
                                }
                            }
                        } else {
                            map.update(increment)
                        };
                        if v.check(result.is_ok(), "increment failed", || format!("{result:?}")) {
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
        let (mut writes, mut per_key) = (0, [0u64; KEYS]);
        for handle in writers {
            let (v, n, mine, _) = join(handle);
            violations.merge(v);
            writes += n;
            for (total, mine) in per_key.iter_mut().zip(mine) {
                *total += mine;
            }
        }
        (violations, reads, writes, per_key)
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
        &format!("{increments} increments, {stats:?}"),
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
            "{} successful compare_exchanges, {stats:?}",
            successes[0] + successes[1]
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
        &format!("{rounds} rounds, {stats:?}"),
    );
    violations.assert_none(TEST);
}

// =============================================================================================
// 6. The slot budget under load: R = 2 registered readers that pin a generation each and then
//    idle for the whole run, three one-off readers (some holding two snapshots at once) and a
//    writer. Counted pins never wait; the blocking writer never waits for the idle readers (the
//    budget G >= R + 2 leaves it room); `try_update` may fail only with NoFreeGeneration; every
//    snapshot still shows one consistent batch.
// =============================================================================================

#[test]
fn idle_readers_and_one_off_reads_leave_writers_room() {
    const TEST: &str = "idle_readers_and_one_off_reads_leave_writers_room";
    let _watchdog = Watchdog::new(TEST, HANG_LIMIT);
    let started = Instant::now();
    let map: SnapMap<u16, u64, 64, 4, 2> = SnapMap::new();
    let quota = Quota::new(4);
    let (map, quota) = (&map, &quota);
    // Two registered readers, each holding a snapshot of a different generation (the empty
    // one, and the first batch) for the whole run.
    let (mut first, mut second) = (map.reader().unwrap(), map.reader().unwrap());
    assert!(matches!(map.reader(), Err(Error::NoReaderSlot)));
    let empty = first.snapshot();
    map.update(|tx| {
        for key in 0..STAMP_KEYS {
            tx.insert(key, stamp(0, 1))?;
        }
        Ok(())
    })
    .unwrap();
    let batch_one = second.snapshot();
    let opening = map.stats().publishes as u64;

    let (mut violations, reads, writes, changed, slot_failures) = thread::scope(|s| {
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
                                v.check(
                                    value.is_some() || last.0 == 0,
                                    "get: key vanished",
                                    String::new,
                                );
                            }
                        }
                    }
                    (v, share.done())
                })
            })
            .collect();
        let writer = s.spawn(move || {
            let mut v = Violations::new();
            let mut share = quota.share(scaled(60_000));
            // The opening batch was seq 1.
            let (mut seq, mut failures) = (1u64, 0u64);
            while share.keep_going() {
                let next = stamp(0, seq + 1);
                let batch = |tx: &mut snapmap_core::Txn<'_, u16, u64, 64>| {
                    for key in 0..STAMP_KEYS {
                        tx.insert(key, next)?;
                    }
                    Ok(())
                };
                let use_try = seq % 2 == 1;
                match if use_try {
                    map.try_update(batch)
                } else {
                    map.update(batch)
                } {
                    Ok(()) => seq += 1,
                    Err(Error::NoFreeGeneration) if use_try => failures += 1,
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
        let (v, writes, seq, f) = join(writer);
        violations.merge(v);
        (violations, reads, writes, seq - 1, f)
    });
    let stats = map.stats();
    violations.check(
        stats.publishes as u64 == opening + changed,
        "publishes != batches",
        || format!("{stats:?}"),
    );
    // The idle readers' snapshots were never reused under them.
    violations.check(
        empty.version() == 0 && empty.is_empty(),
        "an idle reader's empty generation changed",
        || format!("{empty:?}"),
    );
    violations.check(
        batch_one.len() == usize::from(STAMP_KEYS)
            && batch_one.iter().all(|(_, &v)| v == stamp(0, 1)),
        "an idle reader's first batch changed",
        || format!("{batch_one:?}"),
    );
    report(
        TEST,
        reads,
        writes,
        started,
        &format!("{changed} batches, {slot_failures} NoFreeGeneration from try_update, {stats:?}"),
    );
    violations.assert_none(TEST);
}

// =============================================================================================
// 7. Drop counting under churn: keys and values are `Tracked`; two writers run every kind of
//    write (including Full inserts, aborted and panicking transactions, and panicking clones)
//    while a reader checks that everything it reads is alive. Afterwards, every key and value
//    ever created (clones included) must have been dropped exactly once.
// =============================================================================================

type Churned<const G: usize> = SnapMap<Tracked<u16>, Tracked<u64>, 32, G, 1>;
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
) -> (Violations, [u64; 4]) {
    let mut v = Violations::new();
    let mut rng = Rng::new(seed);
    // [changing writes (Ok), Full, NoFreeGeneration from try_, injected panics]
    let mut counts = [0u64; 4];
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
                Err(Error::NoFreeGeneration) => {
                    counts[2] += 1;
                    v.check(
                        !ample,
                        "try_insert: NoFreeGeneration although generations are ample",
                        String::new,
                    );
                }
                Err(e) => v.record("try_insert: unexpected error", || format!("{e:?}")),
            },
            45..=64 => match if rng.one_in(2) {
                map.remove(&key)
            } else {
                map.try_remove(&key)
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
                Err(Error::NoFreeGeneration) => counts[2] += 1,
                Err(e) => v.record("remove: unexpected error", || format!("{e:?}")),
            },
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
                    tx.remove(&key);
                    tx.retain(|_, value| value.value() % 2 == 0 || value.value() % 3 == 0);
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
                // A transaction that panics midway: nothing published, slot and pin released.
                counts[3] += 1;
                let result = catch_unwind(AssertUnwindSafe(|| {
                    map.update(|tx| -> Result<(), Error> {
                        let _ = tx.insert(Tracked::new(key), value_for(key, n));
                        tx.remove(&((key + 1) % CHURN_KEYS as u16));
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
                counts[3] += u64::from(bomb.fired());
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
        let (mut write_count, mut counts) = (0, [0u64; 4]);
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
    // With every thread gone, what is alive is what the arena holds: at most G tables of N keys
    // and N values. More would be a leak that grows with the run.
    let live = drop_counts().live_since(&before);
    violations.check(
        live <= (2 * 32 * G) as i64,
        "more values alive than the arena can hold",
        || format!("{live} alive, arena holds at most {}", 2 * 32 * G),
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
            "{} changing writes, {} Full, {} NoFreeGeneration, {} injected panics; {} values created, {live} alive \
             before the map dropped; {stats:?}",
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            after.created - before.created
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
