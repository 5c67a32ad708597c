//! The slot budget is a fact, not a trap: no mix of registered `Reader`s and one-off reads makes
//! a read or a write wait forever, and a write from inside its own `update` is refused.
//!
//! Every test runs under a [`Watchdog`]: a regression aborts the run with the test's name instead
//! of hanging it.

use host_tests::Watchdog;
use snapmap_core::{Error, SnapMap};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// As many `Reader`s as a default map lets register (the issue registered 4), each pinning a
/// generation and then idle: writes and one-off reads still go through, however many.
#[test]
fn idle_readers_never_block_a_default_map() {
    let _watchdog = Watchdog::new("idle_readers_never_block_a_default_map", LIMIT);
    let map: SnapMap<u32, u32, 16> = SnapMap::new();
    let mut readers: Vec<_> = (0..4).filter_map(|_| map.reader().ok()).collect();
    assert!(!readers.is_empty());
    for (i, reader) in readers.iter_mut().enumerate() {
        map.insert(100 + i as u32, 0).unwrap();
        // Each reader pins a different generation and keeps it (a sticky pin).
        assert_eq!(reader.get(&(100 + i as u32)), Some(0));
    }
    for k in 0..64 {
        let before = map.get(&(k % 8));
        assert_eq!(map.insert(k % 8, k), Ok(before));
        assert_eq!(map.get(&(k % 8)), Some(k));
        assert_eq!(map.try_insert(k % 8, k), Ok(Some(k)));
    }
    assert_eq!(map.remove(&0), Ok(Some(56)));
}

/// The smallest map with a registered `Reader` (G = 3, R = 1): a reader that pinned once and
/// went idle leaves writers a generation to work in.
#[test]
fn one_reader_on_the_smallest_map_leaves_writes_possible() {
    let _watchdog = Watchdog::new(
        "one_reader_on_the_smallest_map_leaves_writes_possible",
        LIMIT,
    );
    let map: SnapMap<u8, u8, 4, 3, 1> = SnapMap::new();
    let mut reader = map.reader().unwrap();
    assert_eq!(reader.get(&1), None);
    for k in 0..20 {
        map.insert(k % 4, k).unwrap();
        assert_eq!(map.try_insert(k % 4, k), Ok(Some(k)));
    }
    assert_eq!(reader.get(&3), Some(19));
    assert!(matches!(map.reader(), Err(Error::NoReaderSlot)));
}

/// One thread holding many one-off snapshots (more than there are reader slots) still takes
/// another, and still writes.
#[test]
fn held_one_off_snapshots_never_block_the_next() {
    let _watchdog = Watchdog::new("held_one_off_snapshots_never_block_the_next", LIMIT);
    let map: SnapMap<u32, u32, 8> = SnapMap::new();
    map.insert(1, 1).unwrap();
    let held: Vec<_> = (0..16).map(|_| map.snapshot()).collect();
    let next = map.snapshot();
    assert_eq!(next.get(&1), Some(&1));
    assert!(held.iter().all(|s| s.version() == next.version()));
    map.insert(2, 2).unwrap();
    assert_eq!(map.get(&2), Some(2));
    assert_eq!(next.get(&2), None);
}

static NESTED: SnapMap<u32, u32, 16> = SnapMap::new();

/// A write to the map from inside its own `update` closure is refused with an error, instead of
/// livelocking (each nested publish would make the outer one retry, and run the closure again).
#[test]
fn a_write_inside_its_own_update_is_refused() {
    let _watchdog = Watchdog::new("a_write_inside_its_own_update_is_refused", LIMIT);
    let mut nested = None;
    let outer = NESTED.update(|tx| {
        nested = Some(NESTED.insert(9, 9));
        tx.insert(1, 1)?;
        Ok(())
    });
    assert_eq!(outer, Ok(()));
    assert_eq!(nested, Some(Err(Error::Reentrant)));
    assert_eq!(NESTED.get(&9), None);
    assert_eq!(NESTED.get(&1), Some(1));
}

static OTHER: SnapMap<u32, u32, 16> = SnapMap::new();

/// Only a write to the *same* map is refused: writing another map from a closure is fine, and
/// the check covers every closure a write runs (here `remove_if`'s predicate), and unwinds.
#[test]
fn only_writes_to_the_same_map_are_refused() {
    let _watchdog = Watchdog::new("only_writes_to_the_same_map_are_refused", LIMIT);
    static MAP: SnapMap<u32, u32, 16> = SnapMap::new();
    MAP.update(|tx| {
        OTHER.insert(1, 1)?;
        tx.insert(1, 1)?;
        Ok(())
    })
    .unwrap();
    assert_eq!((MAP.get(&1), OTHER.get(&1)), (Some(1), Some(1)));
    let mut nested = None;
    let removed = MAP.remove_if(&1, |_| {
        nested = Some(MAP.clear());
        true
    });
    assert_eq!(removed, Ok(Some(1)));
    assert_eq!(nested, Some(Err(Error::Reentrant)));
    // After a write that unwound, the map is writable again on this thread.
    let unwound =
        std::panic::catch_unwind(|| MAP.update(|_| -> Result<(), Error> { panic!("boom") }));
    assert!(unwound.is_err());
    assert_eq!(MAP.insert(2, 2), Ok(None));
}
