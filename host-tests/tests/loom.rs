//! Loom models of the pin / publish / reclaim protocol.
//!
//! Run with `cargo xtask loom` (that is, `RUSTFLAGS="--cfg loom" cargo test -p host-tests
//! --release --test loom`). Every access to a generation's contents goes through loom's
//! `UnsafeCell`, so a writer overwriting a slot that a reader still reads is reported as a data
//! race, and every atomic is explored under the C++20 memory model, within the preemption bound
//! (`LOOM_MAX_PREEMPTIONS`, 3 unless set by `cargo xtask loom`).
//!
//! Loom's SeqCst fence is stronger than C++20's, so a green run is necessary, not sufficient: the
//! hand argument for the protocol lives beside the fences in `snapmap-core`.
//!
//! The models have teeth: built with `--cfg snapmap_mutant="no_base_pin"` (writers read their
//! base without a pin), `writer_base_holds_pages_another_writer_retires` must fail; built with
//! `"early_page_reuse"` (a writer reuses any retired page), that model and
//! `reader_holds_pages_a_writer_retires` must fail; built with `"page_after_base"` (a writer
//! may reuse a page that died after its base), `a_stale_base_does_not_reuse_pages_that_died_after_it`
//! must fail; built with `"no_publish_order"` (a writer's look at waiting readers not ordered
//! after its publication), `a_waiter_never_misses_a_publication` and its sole-writer twin must
//! fail with a lost wake-up. Each is marked `should_panic` there, and
//! `cargo xtask loom` runs every mutant after the real protocol.
//!
//! The mutant `no_writer_fence` (the writer's fence after its slot claim removed) is no longer
//! one of them: every pin now ends with its snapshot, so every reader's pin and every writer's
//! base pin runs a SeqCst fence of its own, and under loom's SeqCst fences, stronger than
//! C++20's, the base pin's fence just before the claim stands in for the missing one (the
//! models explore the mutant cleanly). In C++20 it does not: the base pin's fence precedes the
//! load that synchronizes with the publication that retired the slot, so the claim needs its own
//! (see `write::try_claim_slot`), and `cargo xtask miri` shows it: Miri reports the data race
//! in the stress tests built with that mutant.
//!
//! Built with `"birth_is_base"` (a page taken as born with its replacer's base),
//! `a_pin_holds_a_page_born_before_the_base` must fail; with `"cleared_life_lost"` (a page that a
//! clear took out moved into the pool without its life), `a_pin_holds_a_page_a_clear_took_out`;
//! and `two_writers_change_different_pages` fails with `"early_page_reuse"` too (a writer then
//! claims a page its own base still has, which the copy refuses: "write to a shared page").
//!
//! The sole writer's models come last: built with `"sole_ignores_pins"` (it writes the next slot
//! whatever its scan found) both `a_sole_writer_reuses_nothing_*` models must fail, the first
//! with `"early_page_reuse"` too; with `"takeover_skips_wait"` (taking the map over without
//! waiting for shared writes in flight), `a_takeover_waits_for_a_shared_write_in_flight`.
//!
//! Most maps are `N = 4` (one page), with one spare page (`P = 1`) where a model is about page
//! reuse and two otherwise (each entry of the pool is atomics the model explores). The models at
//! the end have two pages (`N = 32`): a page shared by several generations, whose birth its
//! retirer must read, two writers changing different pages, and the pages a clear takes out.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use snapmap_core::{Error, SnapMap};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// [`model`] with a preemption bound of at most `bound` (`LOOM_MAX_PREEMPTIONS` can only lower
/// it): for models of three threads, whose space at the usual bound would take CI too long.
fn model_within(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(builder.preemption_bound.map_or(bound, |set| set.min(bound)));
    builder.check(f);
}

/// Publishes one generation stamping keys 0 and 1 with the new version, so a consistent snapshot
/// shows `get(0) == get(1) == version` (or nothing, at version 0).
fn stamp_both<const G: usize, const R: usize, const P: usize>(
    map: &SnapMap<u32, u64, 4, G, R, P>,
    wait: bool,
) -> Result<(), Error> {
    let change = |tx: &mut snapmap_core::Txn<'_, u32, u64, 4>| {
        let stamp = tx.get(&0).copied().unwrap_or(0) + 1;
        tx.insert(0, stamp)?;
        tx.insert(1, stamp)?;
        Ok(())
    };
    if wait {
        map.update(change)
    } else {
        map.try_update(change)
    }
}

/// `stamp_both` without waiting: with few slots or pages a writer may find none free, and
/// nothing else.
fn try_stamp_both<const G: usize, const R: usize, const P: usize>(
    map: &SnapMap<u32, u64, 4, G, R, P>,
) {
    match stamp_both(map, false) {
        Ok(()) | Err(Error::NoFreeGeneration | Error::NoFreePage) => {}
        Err(e) => panic!("unexpected {e}"),
    }
}

/// A thread making `writes` attempts at `try_stamp_both`.
fn spawn_writes<const G: usize, const R: usize, const P: usize>(
    map: &Arc<SnapMap<u32, u64, 4, G, R, P>>,
    writes: usize,
) -> thread::JoinHandle<()> {
    let map = map.clone();
    thread::spawn(move || {
        for _ in 0..writes {
            try_stamp_both(&map);
        }
    })
}

/// Holds one snapshot of `reader` across a yield: its generation must not change under it.
fn hold_snapshot<const G: usize, const R: usize, const P: usize>(
    reader: &mut snapmap_core::Reader<'_, u32, u64, 4, G, R, P>,
) {
    let snap = reader.snapshot();
    let seen = check_view(&snap);
    thread::yield_now();
    assert_eq!(check_view(&snap), seen, "the pinned generation changed");
}

/// Checks a one-off snapshot's stamps; returns its version.
fn check_stamps<const G: usize, const R: usize, const P: usize>(
    map: &SnapMap<u32, u64, 4, G, R, P>,
) -> u64 {
    check_view(&map.snapshot())
}

/// Checks one snapshot's stamps; returns its version.
fn check_view(snap: &snapmap_core::Snapshot<'_, u32, u64, 4>) -> u64 {
    let version = snap.version();
    let (a, b) = (snap.get(&0).copied(), snap.get(&1).copied());
    let expected = if version == 0 { None } else { Some(version) };
    assert_eq!(
        (a, b),
        (expected, expected),
        "torn or mislabelled snapshot at version {version}"
    );
    assert_eq!(snap.iter().count(), snap.len());
    version
}

/// A reader pins while one writer publishes twice through two slots, so the second publish must
/// reuse the slot the reader may still hold: the writer's scan has to see the hazard, or the
/// reader's validation has to fail.
#[test]
fn pin_vs_publish_vs_slot_reuse() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 4, 2, 0, 2>::new());
        let writer = {
            let map = map.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    try_stamp_both(&map);
                }
            })
        };
        check_stamps(&map);
        writer.join().unwrap();
        let last = check_stamps(&map);
        assert_eq!(last, map.stats().publishes as u64);
    });
}

/// Two writers race their CAS; the loser rebases and re-applies. Both increments survive.
#[test]
fn two_writers_race_no_lost_update() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 4, 3, 0, 2>::new());
        let other = {
            let map = map.clone();
            thread::spawn(move || stamp_both(&map, true).unwrap())
        };
        stamp_both(&map, true).unwrap();
        other.join().unwrap();
        let snap = map.snapshot();
        assert_eq!(snap.get(&0), Some(&2), "an update was lost");
        assert_eq!(snap.version(), 2);
        let stats = map.stats();
        assert_eq!(stats.publishes, 2);
    });
}

/// Two racing `insert`s: the loser takes its key and value back out of its discarded copy and
/// inserts them again (no clone); both keys survive.
#[test]
fn two_inserts_race_and_both_land() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 4, 3, 0, 2>::new());
        let other = {
            let map = map.clone();
            thread::spawn(move || assert_eq!(map.insert(1, 10), Ok(None)))
        };
        assert_eq!(map.insert(0, 5), Ok(None));
        other.join().unwrap();
        let snap = map.snapshot();
        assert_eq!((snap.get(&0), snap.get(&1)), (Some(&5), Some(&10)));
        assert_eq!(snap.len(), 2);
        assert_eq!(snap.version(), 2);
    });
}

/// Two writers, one of them publishing twice, and a registered reader: the shape that catches a
/// missing writer fence or a missing base pin (a writer copying from a base another writer
/// reuses). The reader is registered because its hazard is a plain store, which only the writer's
/// fence orders; a one-off reader's counted pin is ordered without it (the retiring writer's own
/// counted base pin on that generation keeps the count up, see `try_claim_slot`).
#[test]
fn two_writers_and_a_reader() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 4, 3, 1, 2>::new());
        let twice = {
            let map = map.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    try_stamp_both(&map);
                }
            })
        };
        let once = {
            let map = map.clone();
            thread::spawn(move || try_stamp_both(&map))
        };
        let mut reader = map.reader().unwrap();
        check_view(&reader.snapshot());
        drop(reader);
        twice.join().unwrap();
        once.join().unwrap();
        // Stamps count publishes, so a lost update shows as a stamp below the publish count.
        let last = check_stamps(&map);
        assert_eq!(last, map.stats().publishes as u64);
    });
}

/// Two writers and two one-off readers, each reader's pin counted on the generation: the
/// counted path under the same races (no mutant targets it: see `two_writers_and_a_reader`).
#[test]
fn two_writers_and_counted_readers() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 4, 3, 0, 2>::new());
        let writer = {
            let map = map.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    try_stamp_both(&map);
                }
            })
        };
        let reader = {
            let map = map.clone();
            thread::spawn(move || {
                check_stamps(&map);
            })
        };
        try_stamp_both(&map);
        check_stamps(&map);
        writer.join().unwrap();
        reader.join().unwrap();
        let last = check_stamps(&map);
        assert_eq!(last, map.stats().publishes as u64);
    });
}

/// A map with 3 generation slots and 1 reader slot, stamped once, and a thread that then tries
/// `writes` more stamps (a reader's pins may leave it without a slot: that write is skipped).
fn stamped_map_and_writer(
    writes: usize,
) -> (Arc<SnapMap<u32, u64, 4, 3, 1, 2>>, thread::JoinHandle<()>) {
    let map = Arc::new(SnapMap::<u32, u64, 4, 3, 1, 2>::new());
    stamp_both(&map, true).unwrap();
    let writer = {
        let map = map.clone();
        thread::spawn(move || {
            for _ in 0..writes {
                try_stamp_both(&map);
            }
        })
    };
    (map, writer)
}

/// A registered reader holds a snapshot of version 1 while a writer publishes twice with one
/// spare page: the first write copies into it and retires the page version 1 has, which the
/// second write may not reuse while the reader holds it. So the second write either finds the
/// reader gone (its scan saw the pin end) or gives `NoFreePage`; with the mutant
/// `early_page_reuse` it overwrites the reader's page, which loom reports.
#[test]
#[cfg_attr(
    snapmap_mutant = "early_page_reuse",
    should_panic(expected = "Causality violation")
)]
fn reader_holds_pages_a_writer_retires() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 4, 3, 1, 1>::new());
        stamp_both(&map, true).unwrap();
        let mut reader = map.reader().unwrap();
        let writer = spawn_writes(&map, 2);
        hold_snapshot(&mut reader);
        writer.join().unwrap();
        let last = check_stamps(&map);
        assert_eq!(last, map.stats().publishes as u64);
    });
}

/// A writer with an old base may not reuse a page that died after its base: pins made after its
/// scan can be on any version from its base on. Writer W pins version 0 and scans while writer A
/// publishes twice (its second write retires the page version 1 has, alive in `[1, 2)`) and a
/// reader pins version 1 and reads that page. W's scan cannot have seen a pin that came after
/// it, so only the rule "died no later than my base" keeps W off the reader's page; with the
/// mutant `page_after_base` W overwrites it (loom reports the race), or, after a lost race,
/// claims its new base's own page (the table's check reports a write to a shared page).
#[test]
#[cfg_attr(snapmap_mutant = "page_after_base", should_panic)]
fn a_stale_base_does_not_reuse_pages_that_died_after_it() {
    model_within(2, || {
        let map = Arc::new(SnapMap::<u32, u64, 4, 4, 1, 2>::new());
        let mut reader = map.reader().unwrap();
        let writer = spawn_writes(&map, 1);
        let other = spawn_writes(&map, 2);
        hold_snapshot(&mut reader);
        writer.join().unwrap();
        other.join().unwrap();
        let last = check_stamps(&map);
        assert_eq!(last, map.stats().publishes as u64);
    });
}

/// A writer's base pin protects the pages it copies from as a reader's pin does: one writer
/// copies its base's page while the other publishes twice, with one spare page each can claim.
/// No write is lost, and with the mutant `early_page_reuse` the copy reads a page being
/// overwritten, which loom reports.
#[test]
#[cfg_attr(
    any(snapmap_mutant = "early_page_reuse", snapmap_mutant = "no_base_pin"),
    should_panic
)]
fn writer_base_holds_pages_another_writer_retires() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 4, 4, 0, 2>::new());
        let other = {
            let map = map.clone();
            thread::spawn(move || try_stamp_both(&map))
        };
        for _ in 0..2 {
            try_stamp_both(&map);
        }
        other.join().unwrap();
        let last = check_stamps(&map);
        assert_eq!(last, map.stats().publishes as u64, "a write was lost");
    });
}

/// A reader holds one snapshot while a writer cycles through every other slot: the pinned
/// generation never changes under it, and the writer is refused (never handed) that slot.
#[test]
fn reader_pinned_while_writer_cycles_slots() {
    model(|| {
        let (map, writer) = stamped_map_and_writer(3);
        let mut reader = map.reader().unwrap();
        let snap = reader.snapshot();
        let seen = (snap.version(), snap.get(&0).copied(), snap.get(&1).copied());
        thread::yield_now();
        assert_eq!(
            seen,
            (snap.version(), snap.get(&0).copied(), snap.get(&1).copied())
        );
        assert_eq!(seen.1, Some(seen.0));
        drop(snap);
        writer.join().unwrap();
        drop(reader);
        let last = check_stamps(&map);
        assert_eq!(last, map.stats().publishes as u64);
    });
}

/// Polls `future` to completion on this loom thread, waiting on a loom `Notify` between polls; a
/// wake-up notifies it. A wake-up that never comes is a deadlock, which loom reports. (Not
/// `loom::future::block_on`: its waker is a loom `Arc`, whose drop while unwinding from that
/// report aborts the process; nor `thread::park`: loom's `unpark` would also end the wait of a
/// later `join`. This waker is a `std` `Arc` of a loom `Notify`, which has no destructor.)
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Notified(loom::sync::Notify);
    impl Wake for Notified {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.notify();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.notify();
        }
    }
    let notified = std::sync::Arc::new(Notified(loom::sync::Notify::new()));
    let waker = Waker::from(std::sync::Arc::clone(&notified));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        notified.0.wait();
    }
}

/// A reader awaits `changed()` while a writer publishes: whatever the interleaving of its arming
/// with the writer's publishing CAS and its load of the waiting count, the reader completes with
/// the new version (a lost wake-up leaves `block_on` parked forever, which loom reports as a
/// deadlock). With the mutant `no_publish_order` (the writer's load of the waiting count not
/// ordered after its publication, so nothing orders it with the reader's arming) loom finds
/// that schedule. The map is freed only at the end, and the reader and its future never dropped: after
/// loom's deadlock panic their destructors would call into a finished execution, and a panic
/// while unwinding aborts the process instead of failing the test.
#[test]
#[cfg_attr(
    snapmap_mutant = "no_publish_order",
    should_panic(expected = "deadlock")
)]
fn a_waiter_never_misses_a_publication() {
    waiter_model(|map| {
        map.update_versioned(|tx| tx.insert(0, 2).map(drop))
            .unwrap()
            .1
    });
}

/// The model of a reader waiting for a change while another thread publishes with `publish`
/// (which returns the version it published): the reader completes with that version.
fn waiter_model(publish: fn(&'static SnapMap<u32, u64, 4, 3, 1, 2>) -> Option<u64>) {
    use std::mem::ManuallyDrop;
    use std::pin::Pin;
    model(move || {
        let map: &'static SnapMap<u32, u64, 4, 3, 1, 2> = Box::leak(Box::new(SnapMap::new()));
        stamp_both(map, true).unwrap();
        let mut reader = ManuallyDrop::new(map.reader().unwrap());
        // The first `changed()` returns what is there: version 1.
        assert_eq!(block_on(reader.changed()).version(), 1);
        let writer = thread::spawn(move || assert_eq!(publish(map), Some(2)));
        let mut waiting = ManuallyDrop::new(reader.changed());
        // SAFETY: `waiting` is never moved (and never dropped: see above).
        let snapshot = block_on(unsafe { Pin::new_unchecked(&mut *waiting) });
        assert_eq!(
            (snapshot.version(), snapshot.get(&0).copied()),
            (2, Some(2))
        );
        drop(snapshot);
        writer.join().unwrap();
        // The run passed: free the map (and the waker it holds, which loom counts).
        let map: *const SnapMap<u32, u64, 4, 3, 1, 2> = map;
        // SAFETY: leaked above; the writer has finished and the reader and its future, which
        // borrow it, are never used (nor dropped) again.
        drop(unsafe { Box::from_raw(map.cast_mut()) });
    });
}

// ---------------------------------------------------------------------------------------------
// Two pages (N = 32): a page shared by several generations, and the pages a clear takes out.
// ---------------------------------------------------------------------------------------------

/// A key of a 32-slot table homed on page `page` (0 or 1): the top 5 bits of the 32 that the map
/// keeps of the Fx hash pick the home slot.
fn key_on(page: usize) -> u32 {
    use std::hash::BuildHasher;
    let home = |key: u32| ((snapmap_core::FxBuildHasher.hash_one(key) >> 32) as u32 >> 27) as usize;
    (0u32..).find(|&key| home(key) / 16 == page).unwrap()
}

/// Holds a registered reader's snapshot across a yield, reading `key` before and after: what it
/// reads must not change (loom reports a page written under it as a data race).
fn hold_and_read<const N: usize, const G: usize, const R: usize, const P: usize>(
    reader: &mut snapmap_core::Reader<'_, u32, u64, N, G, R, P>,
    key: u32,
) {
    let snap = reader.snapshot();
    let seen = (snap.version(), snap.get(&key).copied());
    thread::yield_now();
    assert_eq!(
        seen,
        (snap.version(), snap.get(&key).copied()),
        "the pinned generation changed"
    );
}

/// A page shared by generations 1 and 2 is replaced by version 3: its life is `[1, 3)`, which
/// only its birth, read when it is retired, tells (its replacer's base is version 2). A reader
/// pinned on version 1 reads it while a writer publishes versions 2 to 4; the fourth write may not
/// reuse it. With the mutant `birth_is_base` (every page taken as born with its replacer's base,
/// as in a table of one page) the fourth write overwrites it under the reader.
#[test]
#[cfg_attr(
    snapmap_mutant = "birth_is_base",
    should_panic(expected = "Causality violation")
)]
fn a_pin_holds_a_page_born_before_the_base() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 32, 4, 1, 2>::new());
        let (a, b) = (key_on(0), key_on(1));
        map.insert(a, 1).unwrap();
        let mut reader = map.reader().unwrap();
        let writer = {
            let map = map.clone();
            thread::spawn(move || {
                map.insert(b, 2).unwrap();
                map.insert(a, 3).unwrap();
                match map.try_insert(a, 4) {
                    Ok(_) | Err(Error::NoFreePage) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            })
        };
        hold_and_read(&mut reader, a);
        writer.join().unwrap();
    });
}

/// Two writers change keys on different pages at once, each with a batch that also stamps a key
/// on the other page, while a registered reader checks that one snapshot sees both stamps equal:
/// no update is lost, and no snapshot is torn across the pages.
#[test]
#[cfg_attr(
    snapmap_mutant = "early_page_reuse",
    should_panic(expected = "write to a shared page")
)]
fn two_writers_change_different_pages() {
    model_within(2, || {
        let map = Arc::new(SnapMap::<u32, u64, 32, 4, 1, 4>::new());
        let (a, b) = (key_on(0), key_on(1));
        let stamp = move |map: &SnapMap<u32, u64, 32, 4, 1, 4>| {
            map.update(|tx| {
                let next = tx.get(&a).copied().unwrap_or(0) + 1;
                tx.insert(a, next)?;
                tx.insert(b, next)?;
                Ok(())
            })
            .unwrap();
        };
        let other = {
            let map = map.clone();
            thread::spawn(move || stamp(&map))
        };
        stamp(&map);
        let mut reader = map.reader().unwrap();
        {
            let snap = reader.snapshot();
            assert_eq!(snap.get(&a), snap.get(&b), "a snapshot torn across pages");
        }
        other.join().unwrap();
        let snap = map.snapshot();
        assert_eq!(
            (snap.get(&a), snap.get(&b)),
            (Some(&2), Some(&2)),
            "an update was lost"
        );
    });
}

/// A clear takes the page of position 0 out of the table into the position's record, and a
/// later write gives the position a page again, moving that page into the pool with its life:
/// a reader pinned before the clear still reads it, so the writes after may not reuse it. With
/// the mutant `cleared_life_lost` (the page's life forgotten on the move) the last write
/// overwrites it under the reader.
#[test]
#[cfg_attr(
    any(snapmap_mutant = "cleared_life_lost", snapmap_mutant = "birth_is_base"),
    should_panic(expected = "Causality violation")
)]
fn a_pin_holds_a_page_a_clear_took_out() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 32, 4, 1, 2>::new());
        let a = key_on(0);
        map.insert(a, 1).unwrap();
        let mut reader = map.reader().unwrap();
        let writer = {
            let map = map.clone();
            thread::spawn(move || {
                map.clear().unwrap();
                for value in 2..5 {
                    match map.try_insert(a, value) {
                        Ok(_) | Err(Error::NoFreePage) => {}
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            })
        };
        hold_and_read(&mut reader, a);
        writer.join().unwrap();
        let snap = map.snapshot();
        assert!(snap.len() <= 1);
    });
}

// ---------------------------------------------------------------------------------------------
// The sole writer (`SnapMap::writer`): no base pin, no claims, publication by a store.
// ---------------------------------------------------------------------------------------------

/// `stamp_both` by the sole writer, without waiting.
fn sole_stamp_both<const G: usize, const R: usize, const P: usize>(
    writer: &mut snapmap_core::Writer<'_, u32, u64, 4, G, R, P>,
) {
    let result = writer.try_update(|tx| {
        let stamp = tx.get(&0).copied().unwrap_or(0) + 1;
        tx.insert(0, stamp)?;
        tx.insert(1, stamp)?;
        Ok(())
    });
    match result {
        Ok(()) | Err(Error::NoFreeGeneration | Error::NoFreePage) => {}
        Err(e) => panic!("unexpected {e}"),
    }
}

/// A registered reader holds a snapshot while the sole writer publishes three times through
/// three slots: the third write comes back to the slot the reader may hold (and the pages it
/// has), which the writer's scan must see, or the reader's validation must fail. With the mutant
/// `sole_ignores_pins` (the sole writer takes the next slot whatever its scan found) it writes
/// under the reader; with `early_page_reuse`, it reuses the reader's page.
#[test]
#[cfg_attr(
    any(
        snapmap_mutant = "sole_ignores_pins",
        snapmap_mutant = "early_page_reuse"
    ),
    should_panic
)]
fn a_sole_writer_reuses_nothing_a_reader_holds() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 4, 3, 1, 2>::new());
        stamp_both(&map, true).unwrap();
        let mut reader = map.reader().unwrap();
        let writer = {
            let map = map.clone();
            thread::spawn(move || {
                let mut writer = map.writer().unwrap();
                for _ in 0..3 {
                    sole_stamp_both(&mut writer);
                }
            })
        };
        hold_snapshot(&mut reader);
        writer.join().unwrap();
        let last = check_stamps(&map);
        assert_eq!(last, map.stats().publishes as u64);
    });
}

/// The same with a one-off reader, whose pin is counted on the generation: `G = 2`, so the
/// second write comes back to the slot the reader may hold.
#[test]
#[cfg_attr(snapmap_mutant = "sole_ignores_pins", should_panic)]
fn a_sole_writer_reuses_nothing_a_one_off_read_holds() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 4, 2, 0, 2>::new());
        stamp_both(&map, true).unwrap();
        let writer = {
            let map = map.clone();
            thread::spawn(move || {
                let mut writer = map.writer().unwrap();
                for _ in 0..2 {
                    sole_stamp_both(&mut writer);
                }
            })
        };
        let snap = map.snapshot();
        let seen = check_view(&snap);
        thread::yield_now();
        assert_eq!(check_view(&snap), seen, "the pinned generation changed");
        drop(snap);
        writer.join().unwrap();
        let last = check_stamps(&map);
        assert_eq!(last, map.stats().publishes as u64);
    });
}

/// A shared write is in flight while another thread takes the map over as its sole writer and
/// writes: the takeover must wait for the shared write to land or give up, or the sole writer's
/// store of `current` could undo its publication. After the sole writer drops, a shared write
/// must work again. With the mutant `takeover_skips_wait` (the takeover does not wait), an
/// update is lost or a slot written twice.
#[test]
#[cfg_attr(snapmap_mutant = "takeover_skips_wait", should_panic)]
fn a_takeover_waits_for_a_shared_write_in_flight() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 4, 3, 0, 2>::new());
        let shared = {
            let map = map.clone();
            thread::spawn(move || map.insert(1, 10))
        };
        let mut writer = map.writer().unwrap();
        assert_eq!(writer.insert(2, 20), Ok(None));
        drop(writer);
        let landed = match shared.join().unwrap() {
            Ok(None) => true,
            Err(Error::WriterHeld) => false,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(map.insert(3, 30), Ok(None), "the map was not given back");
        let snap = map.snapshot();
        let expected = if landed { Some(&10) } else { None };
        assert_eq!(snap.get(&1), expected, "a shared write was lost");
        assert_eq!((snap.get(&2), snap.get(&3)), (Some(&20), Some(&30)));
        assert_eq!(snap.version(), 2 + u64::from(landed));
    });
}

/// [`a_waiter_never_misses_a_publication`], with the sole writer publishing by a store.
#[test]
#[cfg_attr(
    snapmap_mutant = "no_publish_order",
    should_panic(expected = "deadlock")
)]
fn a_waiter_never_misses_a_sole_publication() {
    waiter_model(|map| {
        let mut writer = map.writer().unwrap();
        writer
            .update_versioned(|tx| tx.insert(0, 2).map(drop))
            .unwrap()
            .1
    });
}
