//! The slot budget is a fact, not a trap: no mix of registered `Reader`s and one-off reads makes
//! a read or a write wait forever, and a write from inside its own `update` is refused.
//!
//! What a reader holds, it holds only while its snapshot lives: a snapshot holds its generation
//! slot and the pages that writes replace while it is held; a registered `Reader` between two
//! snapshots holds nothing. The tests about idle readers check that with writes that a pin kept
//! past the reader's last read would block: more writes than there are spare pages, and a write
//! that needs the slot such a pin would hold, all with `try_` forms (which fail instead of
//! waiting) and with no wait counted in `Stats`.
//!
//! Every test runs under a [`Watchdog`]: a regression aborts the run with the test's name instead
//! of hanging it.

use host_tests::Watchdog;
use snapmap_core::{Error, SnapMap};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// As many `Reader`s as a default map lets register (the issue registered 4), each reading a
/// different generation and then idle: they hold no slot and no page, so writes (more than
/// there are spare pages) and one-off reads still go through, however many, and never wait.
#[test]
fn idle_readers_never_block_a_default_map() {
    let _watchdog = Watchdog::new("idle_readers_never_block_a_default_map", LIMIT);
    // G = 4, R = 2, P = 8 (the defaults); 16 slots: one page, which every write copies.
    let map: SnapMap<u32, u32, 16> = SnapMap::new();
    let mut readers: Vec<_> = (0..4).filter_map(|_| map.reader().ok()).collect();
    assert_eq!(readers.len(), 2);
    for (i, reader) in readers.iter_mut().enumerate() {
        map.insert(100 + i as u32, 0).unwrap();
        // Each reader reads a different generation, then drops its snapshot.
        assert_eq!(reader.get(&(100 + i as u32)), Some(0));
    }
    // The readers read versions 1 and 2, in slots 1 and 2. Version 3 goes to slot 3 and is held;
    // version 4 takes slot 0 (free since version 1 replaced it); version 5 needs slot 1 or 2,
    // which pins kept past the readers' reads would hold.
    assert_eq!(map.try_insert(200, 0), Ok(None));
    let held = map.snapshot();
    assert_eq!(map.try_insert(200, 1), Ok(Some(0)));
    assert_eq!(map.try_insert(200, 2), Ok(Some(1)));
    assert_eq!(held.get(&200), Some(&0));
    drop(held);
    // 128 writes of one page each, 16 times the spare pages: the readers hold none of them.
    for k in 0..64 {
        let before = map.get(&(k % 8));
        assert_eq!(map.try_insert(k % 8, k), Ok(before));
        assert_eq!(map.get(&(k % 8)), Some(k));
        assert_eq!(map.insert(k % 8, k), Ok(Some(k)));
    }
    assert_eq!(map.remove(&0), Ok(Some(56)));
    let stats = map.stats();
    assert_eq!((stats.slot_waits, stats.page_waits), (0, 0), "{stats:?}");
    assert_eq!(
        stats.page_copies, stats.publishes,
        "a one-page table: one copy a write"
    );
    for reader in &mut readers {
        assert_eq!(reader.get(&200), Some(2));
    }
}

/// The smallest map with a registered `Reader` (G = 3, R = 1) and one spare page: a reader
/// that read once and went idle holds neither a generation nor the page.
#[test]
fn one_reader_on_the_smallest_map_leaves_writes_possible() {
    let _watchdog = Watchdog::new(
        "one_reader_on_the_smallest_map_leaves_writes_possible",
        LIMIT,
    );
    let map: SnapMap<u8, u8, 4, 3, 1, 1> = SnapMap::new();
    let mut reader = map.reader().unwrap();
    assert_eq!(reader.get(&1), None);
    // The reader read version 0, in slot 0. Version 1 goes to slot 1 and is held. Version 2
    // goes to slot 2 and copies into the spare page the page version 1 replaced, which a pin
    // kept past the reader's read of version 0 would hold (NoFreePage).
    assert_eq!(map.try_insert(1, 1), Ok(None));
    let held = map.snapshot();
    assert_eq!(map.try_insert(1, 2), Ok(Some(1)));
    // Version 3 would go to slot 0, the other two being current and held (a pin kept there
    // would make this NoFreeGeneration), but the only spare page now holds the page version 2
    // replaced, which `held` reads.
    assert_eq!(map.try_insert(1, 3), Err(Error::NoFreePage));
    assert_eq!(held.get(&1), Some(&1));
    drop(held);
    for k in 0..20 {
        map.insert(k % 4, k).unwrap();
        assert_eq!(map.try_insert(k % 4, k), Ok(Some(k)));
    }
    assert_eq!(reader.get(&3), Some(19));
    assert!(matches!(map.reader(), Err(Error::NoReaderSlot)));
    let stats = map.stats();
    assert_eq!((stats.slot_waits, stats.page_waits), (0, 0), "{stats:?}");
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
