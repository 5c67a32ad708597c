//! Memory: `size_of` of snapmap at the demo's sizes and at 1024 entries, against one plain
//! heapless table of the same capacity (the generations share one table's pages: each adds an
//! index, and the spare pages are the rest); and the memory of each peer holding the same 1024
//! entries (its inline size plus the heap it allocated, counted by a global allocator).
//! Writes `memory.tsv` to the output directory (see `common::out_dir`).

#[macro_use]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::mem::size_of;
use std::sync::atomic::{AtomicIsize, Ordering};

use common::*;
use heapless::index_map::FnvIndexMap;
use snapmap_core::SnapMap;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A demo-sized value: a small calibration record (12 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
struct Calibration {
    offset: i32,
    gain: i32,
    stamp: u32,
}

fn row(out: &mut String, section: &str, what: &str, bytes: usize, note: &str) {
    println!("{section:<8} {what:<52} {bytes:>9} B  {note}");
    writeln!(out, "{section}\t{what}\t{bytes}\t{note}").unwrap();
}

fn snap_vs_tables<K, V, const N: usize>(out: &mut String, label: &str) {
    let table = size_of::<FnvIndexMap<K, V, N>>();
    row(
        out,
        "sizeof",
        &format!("FnvIndexMap<{label}, N={N}>"),
        table,
        "one plain table",
    );
    let ratio = |bytes: usize| format!("{:.3}x one table", bytes as f64 / table as f64);
    let one_key = size_of::<SnapMap<K, V, N, 4, 2, 8>>();
    row(
        out,
        "sizeof",
        &format!("SnapMap<{label}, N={N}, G=4, R=2, P=8>"),
        one_key,
        &format!(
            "{} (sized for one-key writes: the defaults)",
            ratio(one_key)
        ),
    );
    let many = size_of::<SnapMap<K, V, N, 16, 2, 8>>();
    row(
        out,
        "sizeof",
        &format!("SnapMap<{label}, N={N}, G=16, R=2, P=8>"),
        many,
        &format!(
            "{}: G from 4 to 16 adds {:.1}%",
            ratio(many),
            (many - one_key) as f64 * 100.0 / one_key as f64
        ),
    );
    let batches = size_of::<SnapMap<K, V, N, 4, 2, 64>>();
    row(
        out,
        "sizeof",
        &format!("SnapMap<{label}, N={N}, G=4, R=2, P=64>"),
        batches,
        &format!("{} (room for 64-key batches)", ratio(batches)),
    );
}

/// Inline size plus heap bytes of a map built by `build`.
fn footprint<T>(out: &mut String, what: &str, note: &str, build: impl FnOnce() -> T) {
    let before = LIVE.load(Ordering::Relaxed);
    let value = build();
    let heap = LIVE.load(Ordering::Relaxed) - before;
    let total = size_of::<T>() as isize + heap;
    row(out, "peers", what, total as usize, note);
    drop(value);
}

fn shared<M: Shared>(out: &mut String, keys: &[u64]) {
    // `with_keys` boxes the map, so its inline size is counted as heap.
    footprint(out, M::ID, "1024 entries: inline size + heap", || {
        M::with_keys(keys)
    });
}

fn main() {
    let mut out = String::from("section\twhat\tbytes\tnote\n");
    snap_vs_tables::<u16, Calibration, 64>(&mut out, "u16, 12-byte struct");
    snap_vs_tables::<u16, Calibration, 128>(&mut out, "u16, 12-byte struct");
    snap_vs_tables::<u64, u64, 1024>(&mut out, "u64, u64");
    snap_vs_tables::<u64, u64, 2048>(&mut out, "u64, u64");

    let keys = &pool_keys()[..ENTRIES];
    for_each_shared!(shared(&mut out, keys));
    footprint(
        &mut out,
        "floor-hashmap-fx",
        "1024 entries: inline size + heap",
        || {
            keys.iter()
                .map(|&k| (k, k))
                .collect::<HashMap<u64, u64, Fx>>()
        },
    );
    footprint(
        &mut out,
        "floor-heapless",
        "capacity 2048, inline",
        Heapless::new,
    );
    std::fs::write(out_dir().join("memory.tsv"), out).expect("write memory.tsv");
}
