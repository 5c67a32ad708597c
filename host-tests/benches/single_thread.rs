//! Single-thread costs, one criterion run for every map so that ratios hold on a noisy machine:
//! get (hit, miss), insert, remove, a batch of 64 inserts, and iteration, over 1024 entries of
//! `u64 -> u64`. Run by `cargo xtask bench` (which also writes BENCHMARKS.md); by hand:
//! `cargo bench -p host-tests --bench single_thread` (`SNAPMAP_BENCH_QUICK=1` for the smoke sizes).
//!
//! How the writes are timed: a map stays near 1024 entries by cycling through 64-key chunks of
//! its own keys. `insert` removes a chunk (untimed, as one batch) and times inserting its keys
//! back one by one, so it measures the insert of a *new* key; `remove` mirrors it; `batch64`
//! times one atomic insert of the 64 keys (one `update`, one write lock, one `rcu`; 64 separate
//! inserts for dashmap and papaya, which have no atomic batch). Timing a chunk rather than each
//! operation keeps the clock's own cost (about 20 ns a read) out of the figures.
//!
//! snapmap runs three ways: read through a `Reader` (`snapmap-reader`), one-off
//! (`snapmap-oneoff`), and through its sole `Writer` (`snapmap-sole`: writes without a base pin
//! or a compare-and-swap, reads through the writer's pinless `get` and `snapshot`).
//!
//! Besides criterion's estimates it writes `single_thread.tsv` to the output directory (see
//! `common::out_dir`): snapmap's counters after each workload (publications, pages copied), so
//! that the page can say how many pages a write copied.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::*;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use snapmap_core::SnapMap;

const CHUNK: usize = 64;

/// A map as one thread uses it; `&mut self` so that unsynchronized floors fit too.
trait Subject {
    fn get(&mut self, key: u64) -> Option<u64>;
    fn insert(&mut self, key: u64, value: u64);
    fn remove(&mut self, key: u64);
    fn insert_batch(&mut self, keys: &[u64], value: u64);
    fn remove_batch(&mut self, keys: &[u64]);
    fn sum(&mut self) -> u64;
}

/// A shared map with this thread's local state (reader, guard).
struct Bound<'a, M: Shared> {
    map: &'a M,
    local: M::Local<'a>,
}

impl<M: Shared> Subject for Bound<'_, M> {
    #[inline]
    fn get(&mut self, key: u64) -> Option<u64> {
        self.map.get(&mut self.local, key)
    }
    #[inline]
    fn insert(&mut self, key: u64, value: u64) {
        self.map.insert(&mut self.local, key, value)
    }
    #[inline]
    fn remove(&mut self, key: u64) {
        self.map.remove(&mut self.local, key)
    }
    fn insert_batch(&mut self, keys: &[u64], value: u64) {
        self.map.insert_batch(&mut self.local, keys, value)
    }
    fn remove_batch(&mut self, keys: &[u64]) {
        self.map.remove_batch(&mut self.local, keys)
    }
    fn sum(&mut self) -> u64 {
        self.map.sum(&mut self.local)
    }
}

/// Floor: an unsynchronized `std::collections::HashMap` (std or Fx hasher).
struct FloorHashMap<S>(HashMap<u64, u64, S>);

impl<S: BuildHasher> Subject for FloorHashMap<S> {
    #[inline]
    fn get(&mut self, key: u64) -> Option<u64> {
        self.0.get(&key).copied()
    }
    #[inline]
    fn insert(&mut self, key: u64, value: u64) {
        self.0.insert(key, value);
    }
    #[inline]
    fn remove(&mut self, key: u64) {
        self.0.remove(&key);
    }
    fn insert_batch(&mut self, keys: &[u64], value: u64) {
        for &k in keys {
            self.0.insert(k, value);
        }
    }
    fn remove_batch(&mut self, keys: &[u64]) {
        for k in keys {
            self.0.remove(k);
        }
    }
    fn sum(&mut self) -> u64 {
        self.0.values().fold(0, |a, v| a.wrapping_add(*v))
    }
}

/// Floor: an unsynchronized `heapless::FnvIndexMap` of capacity 2048 (<= 50% load): the table
/// every snapmap generation holds today.
struct FloorHeapless(Box<Heapless>);

impl Subject for FloorHeapless {
    #[inline]
    fn get(&mut self, key: u64) -> Option<u64> {
        self.0.get(&key).copied()
    }
    #[inline]
    fn insert(&mut self, key: u64, value: u64) {
        self.0.insert(key, value).expect("capacity");
    }
    #[inline]
    fn remove(&mut self, key: u64) {
        self.0.swap_remove(&key);
    }
    fn insert_batch(&mut self, keys: &[u64], value: u64) {
        for &k in keys {
            self.0.insert(k, value).expect("capacity");
        }
    }
    fn remove_batch(&mut self, keys: &[u64]) {
        for k in keys {
            self.0.swap_remove(k);
        }
    }
    fn sum(&mut self) -> u64 {
        self.0.values().fold(0, |a, v| a.wrapping_add(*v))
    }
}

struct Keys {
    hit: Vec<u64>,
    miss: Vec<u64>,
}

fn bench_get<S: Subject>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, s: &mut S, keys: &[u64]) {
    g.bench_function(id, |b| {
        let mut i = 0usize;
        b.iter(|| {
            let key = keys[i & (ENTRIES - 1)];
            i = i.wrapping_add(1);
            s.get(black_box(key))
        })
    });
}

/// Times `timed` on successive 64-key chunks of the map's own keys, after `untimed` on the same
/// chunk; `per_chunk` operations are counted per chunk (64 single operations, or 1 batch).
fn bench_chunks<S: Subject>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    s: &mut S,
    keys: &[u64],
    per_chunk: u64,
    untimed: impl Fn(&mut S, &[u64]),
    timed: impl Fn(&mut S, &[u64]),
) {
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            let mut pos = 0;
            while done < iters {
                let chunk = &keys[pos..pos + CHUNK];
                pos = (pos + CHUNK) % ENTRIES;
                untimed(s, chunk);
                let start = Instant::now();
                timed(s, black_box(chunk));
                total += start.elapsed();
                done += per_chunk;
            }
            // A partial last chunk is timed whole: scale to the iterations asked for.
            total.mul_f64(iters as f64 / done as f64)
        })
    });
}

/// One workload on one map.
fn workload<S: Subject>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    id: &str,
    s: &mut S,
    keys: &Keys,
) {
    match name {
        "get_hit" => bench_get(g, id, s, &keys.hit),
        "get_miss" => bench_get(g, id, s, &keys.miss),
        "insert" => bench_chunks(
            g,
            id,
            s,
            &keys.hit,
            CHUNK as u64,
            |s, c| s.remove_batch(c),
            |s, c| c.iter().for_each(|&k| s.insert(k, k)),
        ),
        "remove" => bench_chunks(
            g,
            id,
            s,
            &keys.hit,
            CHUNK as u64,
            |s, c| s.insert_batch(c, 7),
            |s, c| c.iter().for_each(|&k| s.remove(k)),
        ),
        "batch64" => bench_chunks(
            g,
            id,
            s,
            &keys.hit,
            1,
            |s, c| s.remove_batch(c),
            |s, c| s.insert_batch(c, 7),
        ),
        "iter" => {
            g.bench_function(id, |b| b.iter(|| s.sum()));
        }
        other => unreachable!("workload {other}"),
    }
}

/// One workload on a shared map, through this thread's `Local` (reader, guard); the map's
/// counters, if it has any, go to `counters`.
fn shared<M: Shared>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    keys: &Keys,
    counters: &mut String,
) {
    let map = M::with_keys(&keys.hit);
    let mut bound = Bound {
        map: &*map,
        local: map.local(),
    };
    workload(g, name, M::ID, &mut bound, keys);
    drop(bound);
    count(counters, name, M::ID, &map.notes());
}

/// A `single_thread.tsv` line: a workload's counters, for the maps that keep some.
fn count(counters: &mut String, workload: &str, id: &str, notes: &str) {
    if !notes.is_empty() {
        counters.push_str(&format!("{workload}\t{id}\t{notes}\n"));
    }
}

/// snapmap through one snapshot held across the whole measurement (reads only).
fn held_snapshot(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, keys: &Keys) {
    let map = <SnapReader>::with_keys(&keys.hit);
    let mut reader = map.0.reader().expect("reader slot");
    let snapshot = reader.snapshot();
    let lookups = if name == "get_miss" {
        &keys.miss
    } else {
        &keys.hit
    };
    if name == "iter" {
        g.bench_function("snapmap-snapshot", |b| {
            b.iter(|| snapshot.iter().map(|(_, v)| *v).fold(0, u64::wrapping_add))
        });
    } else {
        g.bench_function("snapmap-snapshot", |b| {
            let mut i = 0usize;
            b.iter(|| {
                let key = lookups[i & (ENTRIES - 1)];
                i = i.wrapping_add(1);
                snapshot.get(&black_box(key)).copied()
            })
        });
    }
}

/// Where snapmap's time goes: the parts of a get and of a write, timed alone, so that the
/// report can say what dominates (`parts` group; not a peer comparison).
fn parts(c: &mut Criterion, keys: &Keys, counters: &mut String) {
    use std::hash::{BuildHasher, BuildHasherDefault};
    use std::sync::atomic::{fence, AtomicUsize, Ordering};
    let mut g = c.benchmark_group("parts");
    let map = <SnapReader>::with_keys(&keys.hit);
    {
        let mut reader = map.0.reader().expect("reader slot");
        g.bench_function("pin-unpin-reader", |b| {
            b.iter(|| drop(black_box(reader.snapshot())))
        });
    }
    g.bench_function("pin-unpin-oneoff", |b| {
        b.iter(|| drop(black_box(map.0.snapshot())))
    });
    let word = AtomicUsize::new(0);
    g.bench_function("store+fence-seqcst", |b| {
        b.iter(|| {
            word.store(black_box(1), Ordering::Release);
            fence(Ordering::SeqCst);
        })
    });
    g.bench_function("swap-seqcst", |b| {
        b.iter(|| word.swap(black_box(1), Ordering::SeqCst))
    });
    g.bench_function("cas-acqrel", |b| {
        b.iter(|| word.compare_exchange(black_box(1), 1, Ordering::AcqRel, Ordering::Acquire))
    });
    let fnv = BuildHasherDefault::<hash32::FnvHasher>::default();
    let fx = Fx::default();
    let mut i = 0usize;
    g.bench_function("hash-fnv-u64", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            fnv.hash_one(black_box(keys.hit[i & (ENTRIES - 1)]))
        })
    });
    g.bench_function("hash-fx-u64", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            fx.hash_one(black_box(keys.hit[i & (ENTRIES - 1)]))
        })
    });
    // What a held-snapshot get would cost if the generation table hashed with Fx instead of
    // FNV: the same heapless table (2048, 50% load) with another `BuildHasher`.
    let mut fx_table: Box<heapless::IndexMap<u64, u64, Fx, CAPACITY>> = Box::default();
    for &k in &keys.hit {
        fx_table.insert(k, k).expect("capacity");
    }
    g.bench_function("heapless-fx-get-hit", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let key = keys.hit[i & (ENTRIES - 1)];
            i = i.wrapping_add(1);
            fx_table.get(&black_box(key)).copied()
        })
    });
    // A write that publishes on every call (replacing a present key): one page copied, with the
    // benchmark's pool (P = 64) and with the default (P = 8), which sizes the map for one-key
    // writes.
    replace_inserts::<SPARE>(&mut g, "insert-replace-p64", &keys.hit, counters);
    replace_inserts::<8>(&mut g, "insert-replace-p8", &keys.hit, counters);
    g.finish();
}

fn replace_inserts<const P: usize>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    keys: &[u64],
    counters: &mut String,
) {
    let map: Box<SnapMap<u64, u64, CAPACITY, 4, 2, P>> = Box::default();
    fill(&map, keys);
    // Only the inserts' own counts: the fill's batches copied many pages each.
    let filled = map.stats();
    let mut i = 0usize;
    g.bench_function(id, |b| {
        b.iter(|| {
            let key = keys[i & (ENTRIES - 1)];
            i = i.wrapping_add(1);
            map.insert(black_box(key), i as u64)
        })
    });
    let stats = map.stats();
    count(
        counters,
        "parts",
        id,
        &format!(
            "publishes={} page_copies={}",
            stats.publishes - filled.publishes,
            stats.page_copies - filled.page_copies
        ),
    );
}

const WORKLOADS: [&str; 6] = ["get_hit", "get_miss", "insert", "remove", "batch64", "iter"];

fn main() {
    let quick = quick();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(if quick { 100 } else { 1000 }))
        .measurement_time(Duration::from_millis(if quick { 300 } else { 2000 }))
        .sample_size(if quick { 10 } else { 40 })
        .configure_from_args();
    let pool = pool_keys();
    let keys = Keys {
        hit: pool[..ENTRIES].to_vec(),
        miss: miss_keys(),
    };
    let mut counters = String::from("workload\tid\tnotes\n");
    for name in WORKLOADS {
        let mut g = c.benchmark_group(name);
        if matches!(name, "get_hit" | "get_miss" | "iter") {
            held_snapshot(&mut g, name, &keys);
        }
        for_each_shared!(shared(&mut g, name, &keys, &mut counters));
        // The sole writer's map: writes through its `Writer`, reads through the writer's own
        // pinless `get` and `snapshot` (one writer, so not in the threaded workloads' list).
        shared::<SnapSole>(&mut g, name, &keys, &mut counters);
        let fill = || keys.hit.iter().map(|&k| (k, k));
        workload(
            &mut g,
            name,
            "floor-hashmap-fx",
            &mut FloorHashMap::<Fx>(fill().collect()),
            &keys,
        );
        workload(
            &mut g,
            name,
            "hashmap-std",
            &mut FloorHashMap::<StdHash>(fill().collect()),
            &keys,
        );
        let mut heapless: Box<Heapless> = Box::default();
        for (k, v) in fill() {
            heapless.insert(k, v).expect("capacity");
        }
        workload(
            &mut g,
            name,
            "floor-heapless",
            &mut FloorHeapless(heapless),
            &keys,
        );
        g.finish();
    }
    parts(&mut c, &keys, &mut counters);
    c.final_summary();
    std::fs::write(out_dir().join("single_thread.tsv"), counters).expect("write single_thread.tsv");
}
