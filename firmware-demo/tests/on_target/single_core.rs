//! The map's API and its guarantees on one core: Go `sync.Map` parity, batches, errors, pins.
//!
//! The maps take `P = 4` spare pages, not the default 8: the micro:bit's 16 KB of RAM holds
//! every test's maps and, above them, the stack, with no guard between.

use snapmap_core::{Error, SnapMap};

/// Load/Store/LoadOrStore/LoadAndDelete/CompareAndSwap/CompareAndDelete/Range/Clear.
pub fn api_matches_sync_map() {
    static MAP: SnapMap<u16, u32, 16, 4, 2, 4> = SnapMap::new();
    assert_eq!(MAP.capacity(), 16);
    assert!(MAP.snapshot().is_empty());
    assert_eq!(MAP.insert(1, 10), Ok(None));
    assert_eq!(MAP.insert(1, 11), Ok(Some(10)));
    assert_eq!(MAP.insert(2, 20), Ok(None));
    assert_eq!(MAP.get(&1), Some(11));
    assert_eq!(MAP.get(&3), None);
    assert_eq!(MAP.get_or_insert(2, 99), Ok((20, true)));
    assert_eq!(MAP.get_or_insert(3, 30), Ok((30, false)));
    assert_eq!(MAP.compare_exchange(&3, &31, 32), Ok(false));
    assert_eq!(MAP.compare_exchange(&3, &30, 33), Ok(true));
    assert_eq!(MAP.get(&3), Some(33));
    assert_eq!(MAP.remove_if(&3, |v| *v == 0), Ok(None));
    assert_eq!(MAP.remove_if(&3, |v| *v == 33), Ok(Some(33)));
    assert_eq!(MAP.remove(&2), Ok(Some(20)));
    assert_eq!(MAP.remove(&2), Ok(None));
    {
        let snapshot = MAP.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert_eq!(snapshot.iter().map(|(k, v)| (*k, *v)).next(), Some((1, 11)));
    }
    // Every change above that changed something published exactly one generation.
    let publishes = MAP.stats().publishes;
    assert_eq!(publishes, 7);
    assert_eq!(MAP.snapshot().version(), publishes as u64);
    assert_eq!(MAP.clear(), Ok(()));
    assert_eq!(
        MAP.clear(),
        Ok(()),
        "clearing an empty map publishes nothing"
    );
    assert_eq!(MAP.stats().publishes, publishes + 1);
    assert!(MAP.snapshot().is_empty());
}

/// A batch publishes once, all or nothing; an error or an abort publishes nothing.
pub fn batch_is_one_generation() {
    static MAP: SnapMap<u8, u32, 32, 4, 2, 4> = SnapMap::new();
    MAP.update(|tx| {
        for k in 0..32 {
            tx.insert(k, 1)?;
        }
        Ok(())
    })
    .unwrap();
    let version = MAP.snapshot().version();
    assert_eq!(version, 1);

    // Move 5 from key 0 to key 1: one generation, sum conserved.
    MAP.update(|tx| {
        *tx.get_mut(&0)?.ok_or(Error::Aborted)? -= 1;
        *tx.get_mut(&1)?.ok_or(Error::Aborted)? += 1;
        Ok(())
    })
    .unwrap();
    let snapshot = MAP.snapshot();
    assert_eq!(snapshot.version(), version + 1);
    assert_eq!(snapshot.iter().map(|(_, v)| *v).sum::<u32>(), 32);
    assert_eq!(snapshot.get(&0), Some(&0));
    drop(snapshot);

    // Half-done then aborted: nothing of it is visible.
    let aborted = MAP.update(|tx| {
        tx.insert(2, 1000)?;
        tx.remove(&3)?;
        Err::<(), _>(Error::Aborted)
    });
    assert_eq!(aborted, Err(Error::Aborted));
    let snapshot = MAP.snapshot();
    assert_eq!(snapshot.version(), version + 1);
    assert_eq!(snapshot.get(&2), Some(&1));
    assert_eq!(snapshot.get(&3), Some(&1));
    drop(snapshot);

    // A transaction that changes nothing publishes nothing.
    let found = MAP.update(|tx| Ok(tx.get(&5).copied())).unwrap();
    assert_eq!(found, Some(1));
    assert_eq!(MAP.snapshot().version(), version + 1);
}

/// A full map, no reader slot, no free generation: errors, and the map as it was.
pub fn errors_leave_the_map_intact() {
    // G = 3, R = 1 (the least G for one registered reader): a Reader's pin and a one-off
    // snapshot's pin, with the current generation, exhaust the generations.
    static MAP: SnapMap<u8, u32, 4, 3, 1, 4> = SnapMap::new();
    for k in 0..4 {
        MAP.insert(k, u32::from(k)).unwrap();
    }
    assert_eq!(MAP.insert(9, 9), Err(Error::Full));
    assert_eq!(MAP.insert(3, 33), Ok(Some(3)), "replacing needs no room");

    let mut first = MAP.reader().unwrap();
    assert_eq!(MAP.reader().err(), Some(Error::NoReaderSlot));
    // One-off reads and writers' base pins need no reader slot.
    assert_eq!(MAP.get(&0), Some(0));
    assert_eq!(
        MAP.try_insert(3, 33),
        Ok(Some(33)),
        "a write needs no reader slot"
    );

    // Pin the current generation, publish, pin the new one: with G = 3 the next writer finds
    // one slot current and the other two pinned.
    let old = first.snapshot();
    MAP.try_insert(0, 100).unwrap();
    let newer = MAP.snapshot();
    assert_eq!(
        MAP.try_insert(1, 200),
        Ok(Some(1)),
        "the third slot was free"
    );
    assert_eq!(MAP.try_insert(2, 300), Err(Error::NoFreeGeneration));
    assert_eq!(
        MAP.try_update(|tx| tx.insert(2, 300)),
        Err(Error::NoFreeGeneration)
    );
    assert_eq!((old.get(&0), newer.get(&0)), (Some(&0), Some(&100)));
    assert_eq!(newer.get(&1), Some(&1));
    drop(old);
    assert_eq!(
        MAP.try_insert(2, 300),
        Ok(Some(2)),
        "a Reader's pin ends with its snapshot"
    );
    drop((newer, first));
    let now = MAP.snapshot();
    let mut entries = [0u32; 4];
    for (k, v) in now.iter() {
        entries[usize::from(*k)] = *v;
    }
    assert_eq!(entries, [100, 200, 300, 33]);

    // One spare page: a snapshot held across writes keeps the page they replaced.
    static PAGED: SnapMap<u8, u32, 4, 3, 1, 1> = SnapMap::new();
    PAGED.insert(0, 0).unwrap();
    let held = PAGED.snapshot();
    assert_eq!(
        PAGED.try_insert(0, 1),
        Ok(Some(0)),
        "the held version's page is current"
    );
    assert_eq!(
        PAGED.try_insert(0, 2),
        Err(Error::NoFreePage),
        "the page the held version has was replaced, not freed"
    );
    assert_eq!(held.get(&0), Some(&0));
    drop(held);
    assert_eq!(
        PAGED.try_insert(0, 2),
        Ok(Some(1)),
        "released with the snapshot"
    );
}

/// A pinned snapshot sees its generation, whatever is published meanwhile.
pub fn pinned_snapshot_is_stable() {
    static MAP: SnapMap<u8, u32, 16, 4, 2, 4> = SnapMap::new();
    MAP.update(|tx| {
        for k in 0..16 {
            tx.insert(k, 7)?;
        }
        Ok(())
    })
    .unwrap();
    let mut reader = MAP.reader().unwrap();
    let snapshot = reader.snapshot();
    let version = snapshot.version();
    // Each write replaces the table's one page; the held snapshot keeps only the page its own
    // generation has (the later ones are in no pinned generation), so every write finds one.
    let mut written = 0;
    for round in 0..20 {
        MAP.try_update(|tx| {
            for k in 0..16 {
                tx.insert(k, round)?;
            }
            Ok(())
        })
        .unwrap();
        written += 1;
        assert_eq!(snapshot.version(), version);
        assert!(snapshot.iter().all(|(_, v)| *v == 7));
    }
    assert_eq!(
        written, 20,
        "the held snapshot holds one page, not every page replaced"
    );
    drop(snapshot);
    MAP.update(|tx| {
        for k in 0..16 {
            tx.insert(k, 99)?;
        }
        Ok(())
    })
    .unwrap();
    let latest = reader.snapshot();
    assert_eq!(latest.version(), version + 21);
    assert!(latest.iter().all(|(_, v)| *v == 99));
}
