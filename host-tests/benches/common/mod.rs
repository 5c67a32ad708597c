//! Code shared by the benchmark binaries (`single_thread`, `concurrent`, `memory`, `report`):
//! the maps under test behind one trait, the key sets, and where results go.
//!
//! Every map is used through generics, never `dyn`, so each one is monomorphized and inlined as
//! a user's code would be: a virtual call would add a nanosecond or two to every get and blur
//! ratios at the 2-5 ns scale.
//!
//! Each binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use arc_swap::ArcSwap;
use heapless::index_map::FnvIndexMap;
use rustc_hash::FxBuildHasher;
use snapmap_core::{Error, Reader, SnapMap, Writer};

/// Entries in every map of the 1024-entry workloads.
pub const ENTRIES: usize = 1024;
/// Capacity of the fixed-capacity tables (snapmap's generations, heapless): 2 x ENTRIES, so that
/// they run at <= 50% load. Both are open-addressing tables, and a full one probes long chains
/// (a full heapless table: 29 ns per get against 4.7 ns at half load).
pub const CAPACITY: usize = 2 * ENTRIES;
/// snapmap's spare pages `P`: a 64-key batch over the 128 pages of the 2048-slot table changes
/// about 56 of them, so the batch workloads need 64 (the default, 8, serves one-key writes; a
/// batch larger than the pool is refused with `NoFreePage`).
pub const SPARE: usize = 64;
/// Keys the write workloads draw from (twice the entries, so inserts and removes balance).
pub const POOL: usize = 2 * ENTRIES;

/// The map under test: `N` = 2048 (<= 50% load), the defaults G = 4, R = 2, and `P` spare
/// pages (64 unless said otherwise).
pub type Snap<const P: usize = SPARE> = SnapMap<u64, u64, CAPACITY, 4, 2, P>;
/// The heapless table at the same capacity.
pub type Heapless = FnvIndexMap<u64, u64, CAPACITY>;
pub type StdHash = std::hash::RandomState;
pub type Fx = FxBuildHasher;

/// SplitMix64: well-spread, distinct (it is a bijection) 64-bit keys.
pub fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `POOL` distinct keys; the first `ENTRIES` are the ones every map starts with.
pub fn pool_keys() -> Vec<u64> {
    (0..POOL as u64).map(mix).collect()
}

/// `ENTRIES` keys that are never in any map (lookups that miss).
pub fn miss_keys() -> Vec<u64> {
    (0..ENTRIES as u64).map(|i| mix(i + (1 << 40))).collect()
}

/// A tiny PRNG for worker threads (SplitMix64 over a counter).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }
    /// Nearly uniform in `0..n`.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Where the binaries write their results: `$SNAPMAP_BENCH_OUT`, or `target/snapmap-bench`
/// under the workspace.
pub fn out_dir() -> PathBuf {
    let dir = match std::env::var_os("SNAPMAP_BENCH_OUT") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/snapmap-bench"),
    };
    std::fs::create_dir_all(&dir).expect("create the benchmark output directory");
    dir
}

/// `--quick` (or `SNAPMAP_BENCH_QUICK=1`): the CI smoke sizes.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
        || std::env::var("SNAPMAP_BENCH_QUICK").is_ok_and(|v| v == "1")
}

// ---------------------------------------------------------------------------------------------
// The shared (concurrent) maps
// ---------------------------------------------------------------------------------------------

/// A map shared by threads. `Local` is what one thread holds while it works on the map: a
/// registered snapmap `Reader`, a papaya guard, or nothing.
///
/// Values are `u64` and returned by copy, so no peer pays for a clone another does not.
pub trait Shared: Send + Sync + Sized + 'static {
    /// Stable identifier (file names, the results table).
    const ID: &'static str;
    type Local<'a>
    where
        Self: 'a;

    /// A boxed map holding `key -> key` for each of `keys`.
    fn with_keys(keys: &[u64]) -> Box<Self>;
    fn local(&self) -> Self::Local<'_>;
    fn get(&self, local: &mut Self::Local<'_>, key: u64) -> Option<u64>;
    fn insert(&self, local: &mut Self::Local<'_>, key: u64, value: u64);
    fn remove(&self, local: &mut Self::Local<'_>, key: u64);
    /// Inserts every key of `keys` with `value`: atomically (one publication, one lock) where the
    /// map can, one by one where it cannot (dashmap, papaya).
    fn insert_batch(&self, local: &mut Self::Local<'_>, keys: &[u64], value: u64);
    /// Removes every key of `keys`, as `insert_batch` (used untimed, to make room).
    fn remove_batch(&self, local: &mut Self::Local<'_>, keys: &[u64]);
    /// Sum of all values, by iteration (consistent where the map can give that).
    fn sum(&self, local: &mut Self::Local<'_>) -> u64;
    /// Called by worker loops every [`TICK`] operations (a held papaya guard refreshes).
    #[inline]
    fn tick(&self, _local: &mut Self::Local<'_>) {}
    /// Counters worth reporting after a run (snapmap's publishes, CAS retries, slot waits).
    fn notes(&self) -> String {
        String::new()
    }
}

/// Operations between two [`Shared::tick`] calls in the worker loops.
pub const TICK: u64 = 1024;

fn boxed_snap<const P: usize>(keys: &[u64]) -> Box<Snap<P>> {
    // ~75 KB: build it in place on the heap.
    let map: Box<Snap<P>> = Box::default();
    fill(&map, keys);
    map
}

/// Inserts `keys` into `map` in batches of 64 (a batch the size of the whole table would need
/// as many spare pages as the table has).
pub fn fill<const P: usize>(map: &SnapMap<u64, u64, CAPACITY, 4, 2, P>, keys: &[u64]) {
    for chunk in keys.chunks(if P >= SPARE { 64 } else { 1 }) {
        map.update(|tx| {
            for &k in chunk {
                tx.insert(k, k)?;
            }
            Ok(())
        })
        .expect("fill the snapmap");
    }
}

fn snap_notes<const P: usize>(map: &Snap<P>, refused: &Refused) -> String {
    let stats = map.stats();
    format!(
        "publishes={} cas_retries={} slot_waits={} page_waits={} page_copies={} full_refusals={}",
        stats.publishes,
        stats.cas_retries,
        stats.slot_waits,
        stats.page_waits,
        stats.page_copies,
        refused.0.load(Ordering::Relaxed)
    )
}

/// One-key inserts snapmap refused with [`Error::Full`]: past about half full, a key whose run
/// of occupied slots would grow past the bound is refused, and the threaded 98/1/1 workload's
/// key set wanders around half full (2048 keys in and out of 2048 slots). A refusal is counted
/// (the notes' `full_refusals`), not fatal; every other error is.
#[derive(Default)]
pub struct Refused(AtomicU64);

impl Refused {
    #[inline]
    fn check(&self, inserted: Result<Option<u64>, Error>) {
        match inserted {
            Ok(_) => {}
            // Relaxed: a statistic, read after the threads are joined.
            Err(Error::Full) => {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => panic!("insert: {e:?}"),
        }
    }
}

/// snapmap read through a registered [`Reader`]: one pin (and unpin) per get. `P`: its spare
/// pages.
pub struct SnapReader<const P: usize = SPARE>(pub Box<Snap<P>>, Refused);
/// snapmap read one-off: `map.get(&k)` counts a pin on the generation (an atomic add), looks up,
/// and uncounts it (an atomic subtract).
pub struct SnapOneOff(pub Box<Snap>, Refused);
/// snapmap written through its sole [`Writer`] (no base pin, no compare-and-swap; a store
/// publishes) and read through the writer's own pinless `get` and `snapshot`. One thread only:
/// a second `local` would find the writer taken.
pub struct SnapSole<const P: usize = SPARE>(pub Box<Snap<P>>, Refused);

macro_rules! snap_writes {
    () => {
        #[inline]
        fn insert(&self, _: &mut Self::Local<'_>, key: u64, value: u64) {
            self.1.check(self.0.insert(key, value));
        }
        #[inline]
        fn remove(&self, _: &mut Self::Local<'_>, key: u64) {
            self.0.remove(&key).expect("remove");
        }
        #[inline]
        fn insert_batch(&self, _: &mut Self::Local<'_>, keys: &[u64], value: u64) {
            self.0
                .update(|tx| {
                    for &k in keys {
                        tx.insert(k, value)?;
                    }
                    Ok(())
                })
                .expect("batch insert");
        }
        fn remove_batch(&self, _: &mut Self::Local<'_>, keys: &[u64]) {
            self.0
                .update(|tx| {
                    for k in keys {
                        tx.remove(k)?;
                    }
                    Ok(())
                })
                .expect("batch remove");
        }
    };
}

impl<const P: usize> Shared for SnapReader<P> {
    const ID: &'static str = "snapmap-reader";
    type Local<'a> = Reader<'a, u64, u64, CAPACITY, 4, 2, P>;
    fn with_keys(keys: &[u64]) -> Box<Self> {
        Box::new(Self(boxed_snap(keys), Refused::default()))
    }
    fn local(&self) -> Self::Local<'_> {
        self.0.reader().expect("a free reader slot")
    }
    #[inline]
    fn get(&self, reader: &mut Self::Local<'_>, key: u64) -> Option<u64> {
        reader.get(&key)
    }
    fn sum(&self, reader: &mut Self::Local<'_>) -> u64 {
        reader
            .snapshot()
            .iter()
            .map(|(_, v)| *v)
            .fold(0, u64::wrapping_add)
    }
    snap_writes!();
    fn notes(&self) -> String {
        snap_notes(&self.0, &self.1)
    }
}

impl<const P: usize> Shared for SnapSole<P> {
    const ID: &'static str = "snapmap-sole";
    type Local<'a> = Writer<'a, u64, u64, CAPACITY, 4, 2, P>;
    fn with_keys(keys: &[u64]) -> Box<Self> {
        Box::new(Self(boxed_snap(keys), Refused::default()))
    }
    fn local(&self) -> Self::Local<'_> {
        self.0.writer().expect("no other writer")
    }
    #[inline]
    fn get(&self, writer: &mut Self::Local<'_>, key: u64) -> Option<u64> {
        writer.get(&key)
    }
    #[inline]
    fn insert(&self, writer: &mut Self::Local<'_>, key: u64, value: u64) {
        self.1.check(writer.insert(key, value));
    }
    #[inline]
    fn remove(&self, writer: &mut Self::Local<'_>, key: u64) {
        writer.remove(&key).expect("remove");
    }
    #[inline]
    fn insert_batch(&self, writer: &mut Self::Local<'_>, keys: &[u64], value: u64) {
        writer
            .update(|tx| {
                for &k in keys {
                    tx.insert(k, value)?;
                }
                Ok(())
            })
            .expect("batch insert");
    }
    fn remove_batch(&self, writer: &mut Self::Local<'_>, keys: &[u64]) {
        writer
            .update(|tx| {
                for k in keys {
                    tx.remove(k)?;
                }
                Ok(())
            })
            .expect("batch remove");
    }
    fn sum(&self, writer: &mut Self::Local<'_>) -> u64 {
        writer
            .snapshot()
            .iter()
            .map(|(_, v)| *v)
            .fold(0, u64::wrapping_add)
    }
    fn notes(&self) -> String {
        snap_notes(&self.0, &self.1)
    }
}

impl Shared for SnapOneOff {
    const ID: &'static str = "snapmap-oneoff";
    type Local<'a> = ();
    fn with_keys(keys: &[u64]) -> Box<Self> {
        Box::new(Self(boxed_snap(keys), Refused::default()))
    }
    fn local(&self) {}
    #[inline]
    fn get(&self, _: &mut (), key: u64) -> Option<u64> {
        self.0.get(&key)
    }
    fn sum(&self, _: &mut ()) -> u64 {
        self.0
            .snapshot()
            .iter()
            .map(|(_, v)| *v)
            .fold(0, u64::wrapping_add)
    }
    snap_writes!();
    fn notes(&self) -> String {
        snap_notes(&self.0, &self.1)
    }
}

/// `std::sync::RwLock<HashMap>`, with hasher `S`.
pub struct StdRwLock<S>(pub RwLock<HashMap<u64, u64, S>>);

impl<S: BuildHasher + Default + Send + Sync + 'static> Shared for StdRwLock<S>
where
    StdRwLock<S>: HasherId,
{
    const ID: &'static str = <Self as HasherId>::ID;
    type Local<'a> = ();
    fn with_keys(keys: &[u64]) -> Box<Self> {
        Box::new(Self(RwLock::new(keys.iter().map(|&k| (k, k)).collect())))
    }
    fn local(&self) {}
    #[inline]
    fn get(&self, _: &mut (), key: u64) -> Option<u64> {
        self.0.read().unwrap().get(&key).copied()
    }
    #[inline]
    fn insert(&self, _: &mut (), key: u64, value: u64) {
        self.0.write().unwrap().insert(key, value);
    }
    #[inline]
    fn remove(&self, _: &mut (), key: u64) {
        self.0.write().unwrap().remove(&key);
    }
    fn insert_batch(&self, _: &mut (), keys: &[u64], value: u64) {
        let mut map = self.0.write().unwrap();
        for &k in keys {
            map.insert(k, value);
        }
    }
    fn remove_batch(&self, _: &mut (), keys: &[u64]) {
        let mut map = self.0.write().unwrap();
        for k in keys {
            map.remove(k);
        }
    }
    fn sum(&self, _: &mut ()) -> u64 {
        self.0
            .read()
            .unwrap()
            .values()
            .fold(0, |a, v| a.wrapping_add(*v))
    }
}

/// `spin::RwLock<heapless::FnvIndexMap>` at <= 50% load.
pub struct SpinHeapless(pub spin::RwLock<Heapless>);

impl Shared for SpinHeapless {
    const ID: &'static str = "spin-heapless";
    type Local<'a> = ();
    fn with_keys(keys: &[u64]) -> Box<Self> {
        let map: Box<Self> = Box::new(Self(spin::RwLock::new(Heapless::new())));
        {
            let mut table = map.0.write();
            for &k in keys {
                table.insert(k, k).expect("capacity");
            }
        }
        map
    }
    fn local(&self) {}
    #[inline]
    fn get(&self, _: &mut (), key: u64) -> Option<u64> {
        self.0.read().get(&key).copied()
    }
    #[inline]
    fn insert(&self, _: &mut (), key: u64, value: u64) {
        self.0.write().insert(key, value).expect("capacity");
    }
    #[inline]
    fn remove(&self, _: &mut (), key: u64) {
        self.0.write().swap_remove(&key);
    }
    fn insert_batch(&self, _: &mut (), keys: &[u64], value: u64) {
        let mut map = self.0.write();
        for &k in keys {
            map.insert(k, value).expect("capacity");
        }
    }
    fn remove_batch(&self, _: &mut (), keys: &[u64]) {
        let mut map = self.0.write();
        for k in keys {
            map.swap_remove(k);
        }
    }
    fn sum(&self, _: &mut ()) -> u64 {
        self.0.read().values().fold(0, |a, v| a.wrapping_add(*v))
    }
}

/// `arc_swap::ArcSwap<HashMap>`: copy-on-write, Go's `atomic.Value` pattern. A write clones the
/// whole map and publishes the clone with `rcu` (a CAS loop); old copies are freed by `Arc`.
pub struct ArcSwapMap<S>(pub ArcSwap<HashMap<u64, u64, S>>);

impl<S: BuildHasher + Default + Clone + Send + Sync + 'static> Shared for ArcSwapMap<S>
where
    ArcSwapMap<S>: HasherId,
{
    const ID: &'static str = <Self as HasherId>::ID;
    type Local<'a> = ();
    fn with_keys(keys: &[u64]) -> Box<Self> {
        Box::new(Self(ArcSwap::from_pointee(
            keys.iter().map(|&k| (k, k)).collect(),
        )))
    }
    fn local(&self) {}
    #[inline]
    fn get(&self, _: &mut (), key: u64) -> Option<u64> {
        self.0.load().get(&key).copied()
    }
    fn insert(&self, _: &mut (), key: u64, value: u64) {
        self.0.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(key, value);
            map
        });
    }
    fn remove(&self, _: &mut (), key: u64) {
        self.0.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(&key);
            map
        });
    }
    fn insert_batch(&self, _: &mut (), keys: &[u64], value: u64) {
        self.0.rcu(|map| {
            let mut map = HashMap::clone(map);
            for &k in keys {
                map.insert(k, value);
            }
            map
        });
    }
    fn remove_batch(&self, _: &mut (), keys: &[u64]) {
        self.0.rcu(|map| {
            let mut map = HashMap::clone(map);
            for k in keys {
                map.remove(k);
            }
            map
        });
    }
    fn sum(&self, _: &mut ()) -> u64 {
        self.0.load().values().fold(0, |a, v| a.wrapping_add(*v))
    }
}

/// `dashmap::DashMap` (sharded `RwLock`s). A batch is 64 separate inserts: dashmap has no atomic
/// multi-key update. Iteration is not a consistent snapshot.
pub struct Dash<S>(pub dashmap::DashMap<u64, u64, S>);

impl<S: BuildHasher + Default + Clone + Send + Sync + 'static> Shared for Dash<S>
where
    Dash<S>: HasherId,
{
    const ID: &'static str = <Self as HasherId>::ID;
    type Local<'a> = ();
    fn with_keys(keys: &[u64]) -> Box<Self> {
        let map = dashmap::DashMap::with_hasher(S::default());
        for &k in keys {
            map.insert(k, k);
        }
        Box::new(Self(map))
    }
    fn local(&self) {}
    #[inline]
    fn get(&self, _: &mut (), key: u64) -> Option<u64> {
        self.0.get(&key).map(|v| *v)
    }
    #[inline]
    fn insert(&self, _: &mut (), key: u64, value: u64) {
        self.0.insert(key, value);
    }
    #[inline]
    fn remove(&self, _: &mut (), key: u64) {
        self.0.remove(&key);
    }
    fn insert_batch(&self, _: &mut (), keys: &[u64], value: u64) {
        for &k in keys {
            self.0.insert(k, value);
        }
    }
    fn remove_batch(&self, _: &mut (), keys: &[u64]) {
        for k in keys {
            self.0.remove(k);
        }
    }
    fn sum(&self, _: &mut ()) -> u64 {
        self.0.iter().fold(0, |a, e| a.wrapping_add(*e.value()))
    }
}

/// papaya with a guard per operation (`map.pin().get(..)`).
pub struct PapayaPerOp<S>(pub papaya::HashMap<u64, u64, S>);
/// papaya with a guard held across many operations (refreshed every [`TICK`] operations in the
/// worker loops, so that retired memory can be reclaimed).
pub struct PapayaHeld<S>(pub papaya::HashMap<u64, u64, S>);

fn papaya_with<S: BuildHasher + Default>(keys: &[u64]) -> papaya::HashMap<u64, u64, S> {
    let map = papaya::HashMap::with_hasher(S::default());
    {
        let pinned = map.pin();
        for &k in keys {
            pinned.insert(k, k);
        }
    }
    map
}

impl<S: BuildHasher + Default + Send + Sync + 'static> Shared for PapayaPerOp<S>
where
    PapayaPerOp<S>: HasherId,
{
    const ID: &'static str = <Self as HasherId>::ID;
    type Local<'a> = ();
    fn with_keys(keys: &[u64]) -> Box<Self> {
        Box::new(Self(papaya_with(keys)))
    }
    fn local(&self) {}
    #[inline]
    fn get(&self, _: &mut (), key: u64) -> Option<u64> {
        self.0.pin().get(&key).copied()
    }
    #[inline]
    fn insert(&self, _: &mut (), key: u64, value: u64) {
        self.0.pin().insert(key, value);
    }
    #[inline]
    fn remove(&self, _: &mut (), key: u64) {
        self.0.pin().remove(&key);
    }
    fn insert_batch(&self, _: &mut (), keys: &[u64], value: u64) {
        let map = self.0.pin();
        for &k in keys {
            map.insert(k, value);
        }
    }
    fn remove_batch(&self, _: &mut (), keys: &[u64]) {
        let map = self.0.pin();
        for k in keys {
            map.remove(k);
        }
    }
    fn sum(&self, _: &mut ()) -> u64 {
        self.0.pin().values().fold(0, |a, v| a.wrapping_add(*v))
    }
}

impl<S: BuildHasher + Default + Send + Sync + 'static> Shared for PapayaHeld<S>
where
    PapayaHeld<S>: HasherId,
{
    const ID: &'static str = <Self as HasherId>::ID;
    type Local<'a> = papaya::LocalGuard<'a>;
    fn with_keys(keys: &[u64]) -> Box<Self> {
        Box::new(Self(papaya_with(keys)))
    }
    fn local(&self) -> Self::Local<'_> {
        self.0.guard()
    }
    #[inline]
    fn get(&self, guard: &mut Self::Local<'_>, key: u64) -> Option<u64> {
        self.0.get(&key, &*guard).copied()
    }
    #[inline]
    fn insert(&self, guard: &mut Self::Local<'_>, key: u64, value: u64) {
        self.0.insert(key, value, &*guard);
    }
    #[inline]
    fn remove(&self, guard: &mut Self::Local<'_>, key: u64) {
        self.0.remove(&key, &*guard);
    }
    fn insert_batch(&self, guard: &mut Self::Local<'_>, keys: &[u64], value: u64) {
        for &k in keys {
            self.0.insert(k, value, &*guard);
        }
    }
    fn remove_batch(&self, guard: &mut Self::Local<'_>, keys: &[u64]) {
        for k in keys {
            self.0.remove(k, &*guard);
        }
    }
    fn sum(&self, guard: &mut Self::Local<'_>) -> u64 {
        self.0.iter(&*guard).fold(0, |a, (_, v)| a.wrapping_add(*v))
    }
    #[inline]
    fn tick(&self, guard: &mut Self::Local<'_>) {
        papaya::Guard::refresh(guard);
    }
}

/// The identifier of a peer for each hasher (a const per concrete type).
pub trait HasherId {
    const ID: &'static str;
}

macro_rules! ids {
    ($($ty:ident: $std:literal, $fx:literal;)*) => {$(
        impl HasherId for $ty<StdHash> {
            const ID: &'static str = $std;
        }
        impl HasherId for $ty<Fx> {
            const ID: &'static str = $fx;
        }
    )*};
}

ids! {
    StdRwLock: "rwlock-std", "rwlock-fx";
    ArcSwapMap: "arcswap-std", "arcswap-fx";
    Dash: "dashmap-std", "dashmap-fx";
    PapayaPerOp: "papaya-op-std", "papaya-op-fx";
    PapayaHeld: "papaya-held-std", "papaya-held-fx";
}

/// Calls `$f::<Type>($args)` for every shared map, snapmap first: one list for every binary.
#[allow(unused_macros)] // not every binary uses it
macro_rules! for_each_shared {
    ($f:ident($($arg:expr),*)) => {{
        use $crate::common::*;
        $f::<SnapReader>($($arg),*);
        $f::<SnapOneOff>($($arg),*);
        $f::<StdRwLock<StdHash>>($($arg),*);
        $f::<StdRwLock<Fx>>($($arg),*);
        $f::<SpinHeapless>($($arg),*);
        $f::<ArcSwapMap<StdHash>>($($arg),*);
        $f::<ArcSwapMap<Fx>>($($arg),*);
        $f::<Dash<StdHash>>($($arg),*);
        $f::<Dash<Fx>>($($arg),*);
        $f::<PapayaPerOp<StdHash>>($($arg),*);
        $f::<PapayaPerOp<Fx>>($($arg),*);
        $f::<PapayaHeld<StdHash>>($($arg),*);
        $f::<PapayaHeld<Fx>>($($arg),*);
    }};
}
