//! The public API's smaller promises: a choosable hasher that bounds a hash flood, the
//! loaded-or-inserted flag of `get_or_insert`, and `Debug` for the iterator and the transaction.

use snapmap_core::{Error, FxBuildHasher, SipBuildHasher, SnapMap};
use std::hash::BuildHasher;

const N: usize = 1024;
const FLOOD: usize = 500;

/// A flood: `u32` keys that all share one home slot under Fx, found by brute force
/// (a table of `N` slots homes a key by the top log2(N) bits of the 32 it keeps, the top half of
/// the 64-bit hash).
fn colliding_keys() -> Vec<u32> {
    let home = |key: u32| (FxBuildHasher.hash_one(key) >> 32) as u32 >> (32 - N.trailing_zeros());
    let target = home(0);
    let keys: Vec<u32> = (0..).filter(|&k| home(k) == target).take(FLOOD).collect();
    assert_eq!(keys.len(), FLOOD);
    keys
}

fn flood<S: BuildHasher>(map: &SnapMap<u32, u32, N, 4, 2, 64, S>, keys: &[u32]) -> usize {
    let accepted = keys
        .iter()
        .take_while(|&&key| map.insert(key, key) != Err(Error::Full))
        .count();
    let snap = map.snapshot();
    assert_eq!(snap.len(), accepted);
    assert!(keys[..accepted].iter().all(|k| snap.get(k) == Some(k)));
    accepted
}

/// Under Fx the flood piles every key into one run, which stops at the run bound: 48 keys go in
/// (a lookup reads at most 48 slots), the next is refused with `Full`. Under the keyed hasher the
/// same keys spread like random ones: all of them go in, and the longest probe stays short (for
/// random keys at half load, Robin Hood keeps it near a dozen; the bound below leaves room).
#[test]
fn a_keyed_hasher_bounds_a_hash_flood() {
    let keys = colliding_keys();
    let fx: Box<SnapMap<u32, u32, N, 4, 2, 64>> = Box::new(SnapMap::new());
    assert_eq!(
        flood(&fx, &keys),
        48,
        "the flood did not stop at the run bound"
    );
    assert_eq!(fx.snapshot().longest_probe(), 48);
    for seed in [1u64, 0x9e37_79b9_7f4a_7c15, u64::MAX] {
        let keyed: Box<SnapMap<u32, u32, N, 4, 2, 64, SipBuildHasher>> =
            Box::new(SnapMap::with_hasher(SipBuildHasher::new(seed, !seed)));
        assert_eq!(
            flood(&keyed, &keys),
            FLOOD,
            "seed {seed:#x}: refused under SipHash"
        );
        let probe = keyed.snapshot().longest_probe();
        assert!(
            probe <= 40,
            "seed {seed:#x}: longest probe {probe} under SipHash"
        );
        println!("longest probe for {FLOOD} colliding keys: SipHash {probe}");
    }
}

/// A keyed map is still a `static`, its hasher built by a `const fn`.
static KEYED: SnapMap<u64, u8, 16, 4, 2, 8, SipBuildHasher> = SnapMap::with_hasher(
    SipBuildHasher::new(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908),
);

#[test]
fn a_keyed_map_can_be_static() {
    assert_eq!(KEYED.insert(7, 1), Ok(None));
    assert_eq!(KEYED.get(&7), Some(1));
    assert_eq!(format!("{:?}", KEYED.hasher()), "SipBuildHasher { .. }");
}

#[test]
fn get_or_insert_says_whether_it_loaded() {
    let map: SnapMap<u8, u32, 4> = SnapMap::new();
    assert_eq!(map.get_or_insert(1, 10), Ok((10, false)));
    assert_eq!(map.get_or_insert(1, 20), Ok((10, true)));
    assert_eq!(map.get(&1), Some(10));
}

#[test]
fn iter_and_txn_debug_show_their_entries() {
    let map: SnapMap<u8, u32, 4> = SnapMap::new();
    map.insert(1, 10).unwrap();
    let snap = map.snapshot();
    assert_eq!(format!("{:?}", snap.iter()), "{1: 10}");
    let mut shown = String::new();
    map.update(|tx| {
        tx.insert(2, 20)?;
        shown = format!("{tx:?}");
        Ok(())
    })
    .unwrap();
    assert!(
        shown.starts_with("Txn { len: 2, entries: {")
            && shown.contains("1: 10")
            && shown.contains("2: 20"),
        "{shown}"
    );
}

/// `insert` moves its key and value into the copy it publishes: no clone on the first attempt
/// (a retry after a lost race takes them back out of the discarded copy; the stress tests' drop
/// accounting covers that path).
#[test]
fn insert_moves_its_key_and_value() {
    use host_tests::{drop_counts, tracking_lock, Tracked};
    let _serial = tracking_lock();
    let map: SnapMap<Tracked<u8>, Tracked<u32>, 8> = SnapMap::new();
    let before = drop_counts();
    assert_eq!(map.insert(Tracked::new(1), Tracked::new(10)), Ok(None));
    assert_eq!(
        drop_counts().created - before.created,
        2,
        "insert cloned its key or value"
    );
    let before = drop_counts();
    let replaced = map.try_insert(Tracked::new(1), Tracked::new(11)).unwrap();
    assert_eq!(replaced.map(|v| v.value()), Some(10));
    // The two given, and the copy it wrote into was older than key 1: catching it up clones
    // that entry (2 more). Nothing else is constructed.
    assert_eq!(
        drop_counts().created - before.created,
        4,
        "try_insert cloned its key or value"
    );
    drop(map);
}

/// A key equal by `Eq` to another without being identical to it: an id, and a tag `Eq` ignores.
#[derive(Clone, Debug)]
struct Tagged(u32, &'static str);
impl PartialEq for Tagged {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Tagged {}
impl std::hash::Hash for Tagged {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// A value whose clone, once armed, has another thread remove key 1 and waits for it: a write
/// that copies a page holding it then loses its race to that removal.
#[derive(Debug)]
struct RemoveOnClone(u32);
static ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static RACED: SnapMap<Tagged, RemoveOnClone, 16, 4, 0, 4> = SnapMap::new();
impl Clone for RemoveOnClone {
    fn clone(&self) -> Self {
        if ARMED.swap(false, std::sync::atomic::Ordering::Relaxed) {
            std::thread::spawn(|| RACED.remove(&Tagged(1, "")).unwrap())
                .join()
                .unwrap();
        }
        RemoveOnClone(self.0)
    }
}

/// `insert` of a present key that loses its race to the key's removal inserts the caller's key
/// on its next attempt, not the old entry's: it returns `None` and the map holds the key it was
/// given, tag and all.
#[test]
fn insert_keeps_the_callers_key_across_a_lost_race() {
    RACED.insert(Tagged(1, "old"), RemoveOnClone(1)).unwrap();
    ARMED.store(true, std::sync::atomic::Ordering::Relaxed);
    let replaced = RACED.insert(Tagged(1, "new"), RemoveOnClone(2)).unwrap();
    assert!(
        !ARMED.load(std::sync::atomic::Ordering::Relaxed),
        "no race was run"
    );
    assert!(
        replaced.is_none(),
        "the removal published first: {replaced:?}"
    );
    assert!(RACED.stats().cas_retries >= 1, "the insert lost no race");
    let snapshot = RACED.snapshot();
    let keys: Vec<_> = snapshot
        .iter()
        .map(|(key, value)| (key.1, value.0))
        .collect();
    assert_eq!(
        keys,
        [("new", 2)],
        "the map kept another key than the caller's"
    );
}

/// How full a map of random keys gets before the run bound first refuses an insert with `Full`,
/// over 20 key sequences per size (the keyed hasher, so that the keys spread as random ones):
/// never before half of `N`, and every key refused is absent and leaves the map unchanged.
#[test]
fn random_keys_fill_a_map_past_half_before_the_run_bound() {
    fn first_refusal<const N: usize>(seed: u64) -> usize {
        let map: Box<SnapMap<u64, u8, N, 4, 2, 8, SipBuildHasher>> = Box::new(
            SnapMap::with_hasher(SipBuildHasher::new(seed, seed ^ 0x5a5a)),
        );
        let mut key = seed;
        loop {
            key = key
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let before = map.snapshot().version();
            match map.insert(key, 0) {
                Ok(_) => {}
                Err(Error::Full) => {
                    let snap = map.snapshot();
                    assert_eq!(snap.version(), before, "a refused insert published");
                    assert!(snap.longest_probe() <= 48);
                    return snap.len();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    fn loads<const N: usize>() -> (f64, f64) {
        let mut loads: Vec<usize> = (1..=20).map(first_refusal::<N>).collect();
        loads.sort();
        assert!(
            loads[0] * 2 >= N,
            "N = {N}: refused at {} entries",
            loads[0]
        );
        (loads[0] as f64 / N as f64, loads[10] as f64 / N as f64)
    }
    for (n, (worst, median)) in [
        (64, loads::<64>()),
        (256, loads::<256>()),
        (1024, loads::<1024>()),
        (2048, loads::<2048>()),
    ] {
        println!("N = {n}: first Full at {worst:.2} of N at worst, {median:.2} median");
    }
}

// ---------------------------------------------------------------------------------------------
// The sole writer
// ---------------------------------------------------------------------------------------------

/// While a `Writer` lives, every write through the map returns `WriterHeld` without running its
/// closure or publishing, whatever it would have changed (a `get_or_insert` of a present key is
/// a read and succeeds), and so does a second `writer()`, from inside the `Writer`'s own
/// transaction too (there `WriterHeld`, not `Reentrant`: the map is held, not re-entered).
/// Reads work as ever. Dropping the `Writer` gives the map back.
#[test]
fn a_writer_refuses_shared_writes_and_a_second_writer() {
    let map: SnapMap<u8, u32, 8> = SnapMap::new();
    map.insert(1, 10).unwrap();
    let mut writer = map.writer().unwrap();
    let refused = |map: &SnapMap<u8, u32, 8>| {
        let mut ran = false;
        assert_eq!(map.insert(7, 70), Err(Error::WriterHeld));
        assert_eq!(map.try_insert(7, 70), Err(Error::WriterHeld));
        assert_eq!(map.insert(1, 11), Err(Error::WriterHeld));
        assert_eq!(map.remove(&1), Err(Error::WriterHeld));
        assert_eq!(map.try_remove(&1), Err(Error::WriterHeld));
        // Absent: nothing to remove, yet refused all the same.
        assert_eq!(map.remove(&9), Err(Error::WriterHeld));
        assert_eq!(map.get_or_insert(7, 70), Err(Error::WriterHeld));
        assert_eq!(map.get_or_insert(1, 99), Ok((10, true)));
        assert_eq!(map.compare_exchange(&1, &10, 12), Err(Error::WriterHeld));
        assert_eq!(map.compare_exchange(&1, &99, 12), Err(Error::WriterHeld));
        assert_eq!(
            map.remove_if(&1, |_| {
                ran = true;
                true
            }),
            Err(Error::WriterHeld)
        );
        assert_eq!(map.clear(), Err(Error::WriterHeld));
        let mut change = |tx: &mut snapmap_core::Txn<'_, u8, u32, 8>| {
            ran = true;
            tx.insert(3, 30)
        };
        assert_eq!(map.update(&mut change), Err(Error::WriterHeld));
        assert_eq!(map.try_update(&mut change), Err(Error::WriterHeld));
        assert_eq!(map.update_versioned(&mut change), Err(Error::WriterHeld));
        assert_eq!(
            map.try_update_versioned(&mut change),
            Err(Error::WriterHeld)
        );
        assert!(!ran, "a refused write ran its closure");
        assert_eq!(map.writer().err(), Some(Error::WriterHeld));
    };
    refused(&map);
    // Reads, one-off and registered, see the map as it is.
    assert_eq!(map.get(&1), Some(10));
    assert_eq!(map.reader().unwrap().snapshot().len(), 1);
    assert_eq!(map.stats().publishes, 1);

    // From inside the Writer's own transaction: refused, and the transaction goes on.
    let seen = writer.update(|tx| {
        tx.insert(4, 40)?;
        refused(&map);
        Ok(map.insert(5, 50))
    });
    assert_eq!(seen, Ok(Err(Error::WriterHeld)));
    assert_eq!(writer.get(&4), Some(40));
    refused(&map);
    assert_eq!(map.stats().publishes, 2);
    assert_eq!(map.snapshot().version(), 2);

    drop(writer);
    assert_eq!(map.insert(2, 20), Ok(None));
    assert_eq!(map.remove(&4), Ok(Some(40)));
    let mut writer = map.writer().expect("the map was given back");
    assert_eq!(writer.insert(6, 60), Ok(None));
    refused(&map);
}

type Small = SnapMap<u32, u32, 16, 3, 1>;
type SmallWriter<'m> = snapmap_core::Writer<'m, u32, u32, 16, 3, 1>;

/// Every generation slot of a map of `G = 3` is usable, through `map` or through `writer`:
/// with the current generation and one other pinned, a `try_` write goes (into the third slot);
/// with three pinned, it fails with `NoFreeGeneration` and changes nothing; one released, it
/// goes again; and blocking writes go on under one held snapshot, however many (a leaked slot
/// would make them wait for ever: the caller's watchdog aborts). A slot leaked by a `Writer`'s
/// takeover or drop makes this fail.
fn every_slot_usable(map: &Small, mut writer: Option<&mut SmallWriter<'_>>, round: u32) {
    let mut write = |key: u32, value: u32, try_: bool| match (writer.as_deref_mut(), try_) {
        (Some(writer), true) => writer.try_insert(key, value),
        (Some(writer), false) => writer.insert(key, value),
        (None, true) => map.try_insert(key, value),
        (None, false) => map.insert(key, value),
    };
    let a = map.snapshot();
    let start = a.version();
    assert!(write(0, round, true).is_ok(), "round {round}: first write");
    let b = map.snapshot();
    assert!(write(1, round, true).is_ok(), "round {round}: second write");
    let c = map.snapshot();
    let key2 = map.get(&2);
    assert_eq!(
        (b.version(), c.version()),
        (start + 1, start + 2),
        "round {round}"
    );
    assert_eq!(
        write(2, round, true),
        Err(Error::NoFreeGeneration),
        "round {round}: three generations pinned"
    );
    assert_eq!(map.snapshot().version(), start + 2, "round {round}");
    assert_eq!(map.get(&2), key2, "round {round}: a refused write landed");
    drop(b);
    assert!(write(2, round, true).is_ok(), "round {round}: one released");
    assert_eq!(map.get(&2), Some(round));
    drop((a, c));
    let held = map.snapshot();
    let (version, seen) = (held.version(), held.get(&3).copied());
    for i in 0..20 {
        assert!(
            write(3, i, i % 2 == 0).is_ok(),
            "round {round}: write {i} under one pin"
        );
    }
    assert_eq!((held.version(), held.get(&3).copied()), (version, seen));
    assert_eq!(map.get(&3), Some(19));
    assert_eq!(map.snapshot().version(), version + 20);
}

/// A map given back by a `Writer` has all its `G` generation slots for its own writers, and so
/// does the next `Writer`: over rounds in which the `Writer` published 0 to 3 times (so the slot
/// it leaves current, and the one it took over, vary), sometimes with a snapshot held across its
/// drop (the shared writes that follow go on under it, and leave it intact), and with a
/// registered reader's pin.
#[test]
fn a_map_given_back_uses_every_generation_slot() {
    let _watchdog = host_tests::Watchdog::new(
        "a_map_given_back_uses_every_generation_slot",
        std::time::Duration::from_secs(60),
    );
    let map: Small = SnapMap::new();
    every_slot_usable(&map, None, 0);
    let mut reader = map.reader().unwrap();
    for round in 1..=16 {
        let mut writer = map.writer().unwrap();
        for i in 0..round % 4 {
            writer.insert(10, i).unwrap();
        }
        if round % 3 == 0 {
            every_slot_usable(&map, Some(&mut writer), round);
        }
        let held = (round % 2 == 0).then(|| map.snapshot());
        drop(writer);
        if let Some(held) = held {
            let version = held.version();
            let before: Vec<_> = held.iter().map(|(&k, &v)| (k, v)).collect();
            for i in 0..10 {
                assert!(map.try_insert(11, i).is_ok(), "round {round}: write {i}");
            }
            assert_eq!(held.version(), version);
            assert_eq!(
                held.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>(),
                before
            );
        }
        every_slot_usable(&map, None, round);
        // The one registered reader's pin, over shared writes: one slot each for it, the
        // current generation and the write.
        let pinned = reader.snapshot();
        for i in 0..5 {
            assert!(
                map.try_insert(12, i).is_ok(),
                "round {round}: under a reader"
            );
        }
        assert_eq!(pinned.get(&12), (round > 1).then_some(&4));
    }
    assert_eq!(map.stats().slot_waits, 0);
}

/// `Writer::snapshot` (and `get`) see the `Writer`'s last write at once, with its version,
/// as readers of the map do; a write that changes nothing publishes nothing; an aborted one
/// leaves the last write in place; `update_versioned` names the version its snapshot then shows.
#[test]
fn a_writer_sees_its_last_write() {
    let map: SnapMap<u8, u32, 8> = SnapMap::new();
    map.insert(1, 1).unwrap();
    let mut writer = map.writer().unwrap();
    assert_eq!(writer.snapshot().version(), 1);
    assert_eq!(writer.get(&1), Some(1));
    for i in 2..10u32 {
        writer.insert(1, i).unwrap();
        let snap = writer.snapshot();
        assert_eq!((snap.version(), snap.get(&1)), (u64::from(i), Some(&i)));
        drop(snap);
        assert_eq!(map.snapshot().version(), u64::from(i));
        assert_eq!(map.get(&1), Some(i));
    }
    assert_eq!(writer.remove(&1), Ok(Some(9)));
    assert_eq!(writer.get(&1), None);
    assert_eq!(writer.snapshot().version(), 10);
    assert_eq!(writer.remove(&1), Ok(None));
    assert_eq!(writer.snapshot().version(), 10, "a no-op write published");
    assert_eq!(
        writer.update(|tx| {
            tx.insert(2, 2)?;
            Err::<(), _>(Error::Aborted)
        }),
        Err(Error::Aborted)
    );
    assert_eq!((writer.snapshot().version(), writer.get(&2)), (10, None));
    let ((), version) = writer
        .update_versioned(|tx| tx.insert(3, 3).map(drop))
        .unwrap();
    assert_eq!(version, Some(11));
    assert_eq!(writer.snapshot().version(), 11);
    assert_eq!(writer.get_or_insert(3, 0), Ok((3, true)));
    assert_eq!(writer.get_or_insert(4, 4), Ok((4, false)));
    assert_eq!(writer.compare_exchange(&4, &4, 5), Ok(true));
    assert_eq!(writer.remove_if(&4, |&v| v == 5), Ok(Some(5)));
    assert_eq!(writer.clear(), Ok(()));
    let snap = writer.snapshot();
    assert_eq!((snap.version(), snap.len()), (15, 0));
}

/// A `Writer` is `Send`: made on one thread, it writes from another while this one reads, comes
/// back, writes here again, and a `Writer` dropped on another thread gives the map back.
#[test]
fn a_writer_sent_to_another_thread_keeps_working() {
    fn send<T: Send>(value: T) -> T {
        value
    }
    let map: SnapMap<u32, u64, 64> = SnapMap::new();
    let mut writer = send(map.writer().unwrap());
    writer.insert(0, 0).unwrap();
    let mut writer = std::thread::scope(|s| {
        let away = s.spawn(move || {
            for i in 1..=1000u64 {
                writer
                    .update(|tx| {
                        tx.insert(0, i)?;
                        tx.insert((i % 32) as u32 + 1, i)?;
                        Ok(())
                    })
                    .unwrap();
            }
            writer
        });
        let mut last = 0;
        while !away.is_finished() {
            let snap = map.snapshot();
            let now = *snap.get(&0).unwrap();
            assert!(now >= last && snap.version() == now + 1);
            assert_eq!(map.insert(99, 0), Err(Error::WriterHeld));
            last = now;
        }
        away.join().unwrap()
    });
    assert_eq!(writer.get(&0), Some(1000));
    writer.insert(0, 1001).unwrap();
    assert_eq!(map.get(&0), Some(1001));
    std::thread::scope(|s| {
        s.spawn(move || {
            writer.insert(0, 1002).unwrap();
            drop(writer);
        });
    });
    assert_eq!(map.insert(0, 1003), Ok(Some(1002)));
    assert_eq!(map.snapshot().version(), 1004);
    drop(map.writer().expect("given back by the other thread"));
}
