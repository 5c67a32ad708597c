//! Which operations take a critical section, counted by the firmware's counting
//! `critical-section` implementation (`firmware_demo::cs`).
//!
//! The contract: reading through a registered `Reader` takes none, on every target. Writes take
//! some only where the target has no compare-and-swap (ARMv6-M); with native CAS, none at all.

use firmware_demo::cs;
use snapmap_core::SnapMap;

/// Whether this target's writers build their CAS on a critical section.
const CAS_IS_CRITICAL_SECTION: bool = !cfg!(target_has_atomic = "ptr");

/// Critical sections the calling core takes while `f` runs.
fn counted<R>(f: impl FnOnce() -> R) -> (R, u32) {
    let before = cs::taken_here();
    let result = f();
    (result, cs::taken_here().wrapping_sub(before))
}

/// A registered reader's snapshot, lookups, iteration and clone-out take no critical section;
/// on ARMv6-M, writes do (so the counter demonstrably sees them).
pub fn reads_take_none() {
    static MAP: SnapMap<u8, u32, 16, 4, 2, 2> = SnapMap::new();
    let (reader, registering) = counted(|| MAP.reader());
    let mut reader = reader.unwrap();
    let (_, inserting) = counted(|| MAP.insert(1, 10).unwrap());
    let (_, updating) = counted(|| {
        MAP.update(|tx| {
            for k in 2..10 {
                tx.insert(k, u32::from(k))?;
            }
            Ok(())
        })
        .unwrap()
    });

    let (sum, reading) = counted(|| {
        let mut sum = 0;
        for _ in 0..100 {
            let snapshot = reader.snapshot();
            sum += snapshot.get(&1).copied().unwrap_or(0);
            sum += snapshot.iter().map(|(_, v)| *v).sum::<u32>();
            sum += u32::from(snapshot.contains_key(&9));
            sum += snapshot.len() as u32;
            drop(snapshot);
            sum += reader.get(&2).unwrap_or(0);
        }
        sum
    });
    assert_eq!(sum, 100 * (10 + 54 + 1 + 9 + 2));
    note!(
        "100 x (snapshot, get, iter, contains_key, len, Reader::get): {} critical sections",
        reading
    );
    note!(
        "register a Reader: {}, insert: {}, batch update: {}",
        registering,
        inserting,
        updating
    );
    assert_eq!(
        reading, 0,
        "reads through a registered Reader took critical sections"
    );
    if CAS_IS_CRITICAL_SECTION {
        assert!(
            inserting > 0 && updating > 0,
            "writes on ARMv6-M must take the CAS's critical section"
        );
        assert!(registering > 0, "claiming a reader slot is a CAS");
    } else {
        assert_eq!(
            inserting + updating + registering,
            0,
            "native CAS takes no critical section"
        );
    }
}

/// One-off reads (`SnapMap::get`, `SnapMap::snapshot`) count a pin (an increment and a decrement): critical
/// sections on ARMv6-M (documented), none with native atomics. Removing and clearing count as writes.
pub fn one_off_reads_and_writes() {
    static MAP: SnapMap<u8, u32, 8, 4, 2, 2> = SnapMap::new();
    MAP.insert(1, 1).unwrap();
    let (value, one_off_get) = counted(|| MAP.get(&1));
    assert_eq!(value, Some(1));
    let (len, one_off_snapshot) = counted(|| MAP.snapshot().len());
    assert_eq!(len, 1);
    let (_, removing) = counted(|| MAP.remove(&1).unwrap());
    let (_, clearing_empty) = counted(|| MAP.clear().unwrap());
    note!(
        "one-off get: {}, one-off snapshot: {}, remove: {}, clear (empty, publishes nothing): {}",
        one_off_get,
        one_off_snapshot,
        removing,
        clearing_empty
    );
    if CAS_IS_CRITICAL_SECTION {
        assert!(one_off_get > 0 && one_off_snapshot > 0 && removing > 0);
    } else {
        assert_eq!(
            one_off_get + one_off_snapshot + removing + clearing_empty,
            0
        );
    }
}

/// The sole writer's writes take no critical section on any target, ARMv6-M included: no base
/// pin, no compare-and-swap, a store to publish. (Taking the writer and giving the map back are
/// compare-and-swaps: critical sections on ARMv6-M, once each.)
pub fn sole_writes_take_none() {
    static MAP: SnapMap<u8, u32, 32, 4, 2, 4> = SnapMap::new();
    let (writer, taking) = counted(|| MAP.writer());
    let mut writer = writer.unwrap();
    let (_, writing) = counted(|| {
        for k in 0..20 {
            writer.insert(k, u32::from(k)).unwrap();
        }
        writer
            .update(|tx| {
                for k in 0..10 {
                    tx.insert(k, 100)?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(writer.remove(&19).unwrap(), Some(19));
        assert_eq!(writer.get(&3), Some(100));
        writer.clear().unwrap();
        writer.insert(7, 7).unwrap();
    });
    let (_, giving_back) = counted(|| drop(writer));
    note!(
        "take the writer: {}, 20 inserts + a batch + remove + get + clear + insert: {}, give the map back: {}",
        taking,
        writing,
        giving_back
    );
    assert_eq!(
        writing, 0,
        "the sole writer's writes took critical sections"
    );
    assert_eq!(MAP.snapshot().len(), 1);
    assert_eq!(MAP.insert(8, 8), Ok(None), "the map was not given back");
}
