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
