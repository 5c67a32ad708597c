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
//! The models have teeth: built with `--cfg snapmap_mutant="no_writer_fence"` (the writer's
//! SeqCst fence removed) or `--cfg snapmap_mutant="no_base_pin"` (writers read their base without
//! a hazard), `two_writers_and_a_reader` must fail; built with `"no_sticky_pin"` (a registered
//! reader's pin ends with its snapshot, yet its next read trusts it),
//! `reader_rereads_through_its_sticky_pin` must fail. Each is marked `should_panic` there, and
//! `cargo xtask loom` runs every mutant after the real protocol. The page pool's models (not yet
//! used by the map) live beside it in `snapmap-core/src/pages.rs`, with their own mutant,
//! `early_page_reuse`.
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

/// Publishes one generation stamping keys 0 and 1 with the new version, so a consistent snapshot
/// shows `get(0) == get(1) == version` (or nothing, at version 0).
fn stamp_both<const G: usize, const R: usize>(
    map: &SnapMap<u32, u64, 2, G, R>,
    wait: bool,
) -> Result<(), Error> {
    let change = |tx: &mut snapmap_core::Txn<'_, u32, u64, 2>| {
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

/// `stamp_both` without waiting: with few slots a writer may find none free, and nothing else.
fn try_stamp_both<const G: usize, const R: usize>(map: &SnapMap<u32, u64, 2, G, R>) {
    match stamp_both(map, false) {
        Ok(()) | Err(Error::NoFreeGeneration) => {}
        Err(e) => panic!("unexpected {e}"),
    }
}

/// Checks a one-off snapshot's stamps; returns its version.
fn check_stamps<const G: usize, const R: usize>(map: &SnapMap<u32, u64, 2, G, R>) -> u64 {
    check_view(&map.snapshot())
}

/// Checks one snapshot's stamps; returns its version.
fn check_view(snap: &snapmap_core::Snapshot<'_, u32, u64, 2>) -> u64 {
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
        let map = Arc::new(SnapMap::<u32, u64, 2, 2, 0>::new());
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
        let map = Arc::new(SnapMap::<u32, u64, 2, 3, 0>::new());
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
        let map = Arc::new(SnapMap::<u32, u64, 2, 3, 0>::new());
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
#[cfg_attr(
    any(snapmap_mutant = "no_writer_fence", snapmap_mutant = "no_base_pin"),
    should_panic(expected = "Causality violation")
)]
fn two_writers_and_a_reader() {
    model(|| {
        let map = Arc::new(SnapMap::<u32, u64, 2, 3, 1>::new());
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
        let map = Arc::new(SnapMap::<u32, u64, 2, 3, 0>::new());
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
) -> (Arc<SnapMap<u32, u64, 2, 3, 1>>, thread::JoinHandle<()>) {
    let map = Arc::new(SnapMap::<u32, u64, 2, 3, 1>::new());
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

/// A registered reader reads twice while a writer publishes three times (enough to cycle
/// through every slot). Between its reads the reader's pin stays on the generation it read (a
/// sticky pin), so its second read either finds that generation still current and announces
/// nothing, or pins the new one. Both reads see consistent stamps, and the second stays the same
/// across a yield: the writer never overwrites the generation the reader's pin holds.
#[test]
#[cfg_attr(
    snapmap_mutant = "no_sticky_pin",
    should_panic(expected = "Causality violation")
)]
fn reader_rereads_through_its_sticky_pin() {
    model(|| {
        let (map, writer) = stamped_map_and_writer(3);
        let mut reader = map.reader().unwrap();
        let first = reader.snapshot().version();
        let snap = reader.snapshot();
        let seen = (snap.version(), snap.get(&0).copied(), snap.get(&1).copied());
        assert!(
            seen.0 >= first,
            "version went back from {first} to {}",
            seen.0
        );
        assert_eq!(seen.1, Some(seen.0));
        assert_eq!(seen.2, Some(seen.0));
        thread::yield_now();
        assert_eq!(
            seen,
            (snap.version(), snap.get(&0).copied(), snap.get(&1).copied())
        );
        drop(snap);
        writer.join().unwrap();
        drop(reader);
        let last = check_stamps(&map);
        assert_eq!(last, map.stats().publishes as u64);
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
