//! Multi-threaded workloads, with a timed harness (not criterion: throughput over a fixed time,
//! several runs, medians; the maps take turns within each run so that drift hits all alike):
//!
//! - `mixed`: 2 threads, 98% get / 1% insert / 1% remove of random keys from a pool of 2048 over
//!   maps of 1024 entries (conc-map-bench's read-heavy mix); total Mops/s.
//! - `read_alone`, `read_10k`, `read_flat`: one thread gets (hits) as fast as it can while a
//!   second thread writes nothing, 10,000 writes/s (paced by deadline), or flat out; reader
//!   Mops/s, the writes/s reached, and the growth of the process's resident memory.
//! - latency: the same three settings, each get timed alone (TSC on x86_64), as histograms.
//!
//! Results go to `concurrent.tsv`, `latency.tsv` and `latency_hist.tsv` in the output directory
//! (see `common::out_dir`). `cargo xtask bench` runs this; by hand:
//! `cargo bench -p host-tests --bench concurrent` (`SNAPMAP_BENCH_QUICK=1` for smoke sizes).

#[macro_use]
mod common;

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

struct Config {
    runs: usize,
    run_time: Duration,
    latency_time: Duration,
}

/// What the second thread does while the first one reads.
#[derive(Clone, Copy, PartialEq)]
enum Writer {
    None,
    Rate(u64),
    Flat,
}

impl Writer {
    fn name(self) -> &'static str {
        match self {
            Writer::None => "alone",
            Writer::Rate(_) => "10k",
            Writer::Flat => "flat",
        }
    }
}

const WRITERS: [Writer; 3] = [Writer::None, Writer::Rate(10_000), Writer::Flat];

/// Resident memory of this process, in KiB (0 where /proc is missing).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4)
}

/// 2 threads, 98/1/1. Returns total Mops/s.
fn mixed<M: Shared>(cfg: &Config, out: &mut String, run: usize) {
    let pool = pool_keys();
    let map = M::with_keys(&pool[..ENTRIES]);
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(3);
    let mops: f64 = thread::scope(|s| {
        let workers: Vec<_> = (0..2u64)
            .map(|t| {
                let (map, pool, stop, barrier) = (&*map, &pool, &stop, &barrier);
                s.spawn(move || {
                    let mut local = map.local();
                    let mut rng = Rng::new(t + 1 + 1000 * run as u64);
                    let mut ops = 0u64;
                    barrier.wait();
                    let start = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..TICK {
                            let dice = rng.below(100);
                            let key = pool[rng.below(POOL as u64) as usize];
                            match dice {
                                0 => map.insert(&mut local, key, dice),
                                1 => map.remove(&mut local, key),
                                _ => {
                                    black_box(map.get(&mut local, key));
                                }
                            }
                        }
                        ops += TICK;
                        map.tick(&mut local);
                    }
                    ops as f64 / start.elapsed().as_secs_f64() / 1e6
                })
            })
            .collect();
        barrier.wait();
        thread::sleep(cfg.run_time);
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    println!(
        "mixed      {:<16} run {run}: {mops:8.2} Mops/s  {}",
        M::ID,
        map.notes()
    );
    writeln!(
        out,
        "mixed\t{}\t{run}\t{mops:.4}\t0\t0\t{}",
        M::ID,
        map.notes()
    )
    .unwrap();
}

/// Paces or floods writes until `stop`; returns writes per second.
fn write_loop<M: Shared>(map: &M, writer: Writer, stop: &AtomicBool, keys: &[u64]) -> f64 {
    let mut local = map.local();
    let start = Instant::now();
    let mut writes = 0u64;
    let mut i = 0usize;
    let mut write = |writes: &mut u64| {
        let key = keys[i & (ENTRIES - 1)];
        i += 1;
        map.insert(&mut local, key, *writes);
        *writes += 1;
    };
    match writer {
        Writer::None => {}
        Writer::Flat => {
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    write(&mut writes);
                }
            }
        }
        Writer::Rate(per_s) => {
            let period = Duration::from_nanos(1_000_000_000 / per_s);
            let mut next = start;
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                // Catch up by deadline (bounded), so the average rate holds despite sleep jitter.
                let mut burst = 0;
                while next <= now && burst < 100 {
                    write(&mut writes);
                    next += period;
                    burst += 1;
                }
                if next < now {
                    next = now;
                }
                let wait = next.saturating_duration_since(Instant::now());
                if wait > Duration::from_micros(20) {
                    thread::sleep(wait);
                } else {
                    thread::yield_now();
                }
            }
        }
    }
    writes as f64 / start.elapsed().as_secs_f64()
}

/// One reader (gets of present keys) while another thread writes per `writer`.
fn read_under<M: Shared>(cfg: &Config, out: &mut String, run: usize, writer: Writer) {
    let pool = pool_keys();
    let keys = &pool[..ENTRIES];
    let map = M::with_keys(keys);
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(3);
    let rss_before = rss_kib();
    let peak = AtomicU64::new(rss_before);
    let (mops, wps) = thread::scope(|s| {
        let (map, stop, barrier) = (&*map, &stop, &barrier);
        let reader = s.spawn(move || {
            let mut local = map.local();
            let mut rng = Rng::new(7 + run as u64);
            let mut ops = 0u64;
            barrier.wait();
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..TICK {
                    let key = keys[(rng.next_u64() as usize) & (ENTRIES - 1)];
                    black_box(map.get(&mut local, key));
                }
                ops += TICK;
                map.tick(&mut local);
            }
            ops as f64 / start.elapsed().as_secs_f64() / 1e6
        });
        let writer = s.spawn(move || {
            barrier.wait();
            write_loop(map, writer, stop, keys)
        });
        barrier.wait();
        let end = Instant::now() + cfg.run_time;
        while Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
            peak.fetch_max(rss_kib(), Ordering::Relaxed);
        }
        stop.store(true, Ordering::Relaxed);
        (
            reader.join().expect("reader"),
            writer.join().expect("writer"),
        )
    });
    let growth = peak.load(Ordering::Relaxed).saturating_sub(rss_before);
    let name = writer.name();
    println!(
        "read_{name:<6} {:<16} run {run}: {mops:8.2} Mops/s  writes/s {wps:10.0}  rss +{growth} KiB  {}",
        M::ID,
        map.notes()
    );
    writeln!(
        out,
        "read_{name}\t{}\t{run}\t{mops:.4}\t{wps:.0}\t{growth}\t{}",
        M::ID,
        map.notes()
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Latency: every get timed alone
// ---------------------------------------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn ticks() -> u64 {
    // LFENCE then RDTSC: the read is not hoisted above earlier loads (the get before it).
    #[allow(unused_unsafe)]
    // SAFETY: LFENCE and RDTSC exist on every x86_64 processor and have no memory effects.
    unsafe {
        core::arch::x86_64::_mm_lfence();
        core::arch::x86_64::_rdtsc()
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn ticks() -> u64 {
    use std::sync::OnceLock;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Log-linear histogram of tick counts: exact below 256, then 128 buckets per power of two.
struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    const LINEAR: u64 = 256;
    const SUB: u64 = 128;

    fn new() -> Self {
        Self {
            counts: vec![0; (Self::LINEAR + 56 * Self::SUB) as usize],
        }
    }
    #[inline]
    fn index(v: u64) -> usize {
        if v < Self::LINEAR {
            return v as usize;
        }
        let msb = 63 - u64::from(v.leading_zeros()); // >= 8
        let sub = (v >> (msb - 7)) & (Self::SUB - 1);
        (Self::LINEAR + (msb - 8) * Self::SUB + sub) as usize
    }
    /// The largest value of bucket `i`.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < Self::LINEAR {
            return i;
        }
        let msb = (i - Self::LINEAR) / Self::SUB + 8;
        let sub = (i - Self::LINEAR) % Self::SUB;
        ((Self::SUB + sub + 1) << (msb - 7)) - 1
    }
    #[inline]
    fn record(&mut self, v: u64) {
        let i = Self::index(v).min(self.counts.len() - 1);
        self.counts[i] += 1;
    }
    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// The value at quantile `q` (upper bound of its bucket).
    fn quantile(&self, q: f64) -> u64 {
        let target = ((self.total() as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Self::upper(i);
            }
        }
        0
    }
}

/// Ticks per nanosecond of [`ticks`], measured against `Instant` over 50 ms.
fn ticks_per_ns() -> f64 {
    let (t0, i0) = (ticks(), Instant::now());
    thread::sleep(Duration::from_millis(50));
    let (t1, i1) = (ticks(), Instant::now());
    (t1 - t0) as f64 / (i1 - i0).as_nanos() as f64
}

/// The cost of the timing itself: an empty timed section.
fn clock_floor() -> Histogram {
    let mut h = Histogram::new();
    for _ in 0..1_000_000 {
        let t0 = ticks();
        let t1 = ticks();
        h.record(t1 - t0);
    }
    h
}

fn write_latency(
    out: &mut String,
    hist_out: &mut String,
    mode: &str,
    id: &str,
    h: &Histogram,
    tpn: f64,
) {
    let ns = |t: u64| t as f64 / tpn;
    let max = h
        .counts
        .iter()
        .rposition(|&c| c > 0)
        .map_or(0, Histogram::upper);
    writeln!(
        out,
        "{mode}\t{id}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{}",
        ns(h.quantile(0.5)),
        ns(h.quantile(0.9)),
        ns(h.quantile(0.99)),
        ns(h.quantile(0.999)),
        ns(h.quantile(0.9999)),
        ns(max),
        h.total()
    )
    .unwrap();
    for (i, &c) in h.counts.iter().enumerate() {
        if c > 0 {
            writeln!(
                hist_out,
                "{mode}\t{id}\t{:.2}\t{c}",
                ns(Histogram::upper(i))
            )
            .unwrap();
        }
    }
    println!(
        "latency {mode:<5} {id:<16} p50 {:6.1} ns  p99 {:7.1} ns  p99.9 {:8.1} ns  p99.99 {:9.1} ns  max {:10.1} ns",
        ns(h.quantile(0.5)),
        ns(h.quantile(0.99)),
        ns(h.quantile(0.999)),
        ns(h.quantile(0.9999)),
        ns(max)
    );
}

fn latency<M: Shared>(cfg: &Config, out: &mut String, hist_out: &mut String, tpn: f64) {
    for writer in WRITERS {
        let pool = pool_keys();
        let keys = &pool[..ENTRIES];
        let map = M::with_keys(keys);
        let stop = AtomicBool::new(false);
        let barrier = Barrier::new(3);
        let hist = thread::scope(|s| {
            let (map, stop, barrier) = (&*map, &stop, &barrier);
            let reader = s.spawn(move || {
                let mut local = map.local();
                let mut rng = Rng::new(11);
                let mut h = Histogram::new();
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..TICK {
                        let key = keys[(rng.next_u64() as usize) & (ENTRIES - 1)];
                        let t0 = ticks();
                        black_box(map.get(&mut local, black_box(key)));
                        let t1 = ticks();
                        h.record(t1.wrapping_sub(t0));
                    }
                    map.tick(&mut local);
                }
                h
            });
            let writer = s.spawn(move || {
                barrier.wait();
                write_loop(map, writer, stop, keys)
            });
            barrier.wait();
            thread::sleep(cfg.latency_time);
            stop.store(true, Ordering::Relaxed);
            writer.join().expect("writer");
            reader.join().expect("reader")
        });
        write_latency(out, hist_out, writer.name(), M::ID, &hist, tpn);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or other flags are not supported here.
    let quick = quick();
    let cfg = Config {
        runs: if quick { 2 } else { 5 },
        run_time: Duration::from_millis(if quick { 200 } else { 1000 }),
        latency_time: Duration::from_millis(if quick { 100 } else { 500 }),
    };
    let dir = out_dir();
    println!(
        "concurrent: {} runs of {:?} per map and workload, nproc {}",
        cfg.runs,
        cfg.run_time,
        thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut out = String::from("workload\tid\trun\tmops\twrites_per_s\trss_growth_kib\tnotes\n");
    for run in 0..cfg.runs {
        for_each_shared!(mixed(&cfg, &mut out, run));
    }
    for run in 0..cfg.runs {
        for writer in WRITERS {
            for_each_shared!(read_under(&cfg, &mut out, run, writer));
        }
    }
    std::fs::write(dir.join("concurrent.tsv"), &out).expect("write concurrent.tsv");

    let tpn = ticks_per_ns();
    let mut lat =
        String::from("mode\tid\tp50_ns\tp90_ns\tp99_ns\tp999_ns\tp9999_ns\tmax_ns\tsamples\n");
    let mut hist = String::from("mode\tid\tupper_ns\tcount\n");
    let floor = clock_floor();
    write_latency(&mut lat, &mut hist, "clock", "timer-only", &floor, tpn);
    for_each_shared!(latency(&cfg, &mut lat, &mut hist, tpn));
    std::fs::write(dir.join("latency.tsv"), &lat).expect("write latency.tsv");
    std::fs::write(dir.join("latency_hist.tsv"), &hist).expect("write latency_hist.tsv");
    println!("concurrent: results in {}", dir.display());
}
