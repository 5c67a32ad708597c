//! Maps taking turns: each map's data is colder when its turn comes, as in an application that
//! writes now and then among other work. Criterion (`single_thread`) times one map at a time, so
//! everything it touches stays in the L1 cache; here several maps, each holding the same 1024
//! keys, take turns in one thread, and while one works the others' data goes cold.
//!
//! A round gives every map one turn, in an order shuffled each round. A turn is one workload's
//! unit on a 64-key chunk of the map's own keys, timed as a whole: 64 inserts of new keys, 64
//! inserts replacing present keys' values, 64 removes, one atomic batch of 64 inserts, or one
//! pass over all 1024 entries. What readies the map for its next turn (removing the next chunk
//! before inserts, putting the removed chunk back after removes) is done right after the timed
//! part, untimed, so that the other maps' turns come between it and the next timed part. Each
//! map is built afresh for each workload.
//!
//! Writes `turns.tsv` to the output directory (see `common::out_dir`): per workload and map, the
//! median turn's time per operation (per batch, per pass), the quartiles, and the turns timed.
//! `report` copies these into `results.tsv` as the `turns_<workload>` rows of BENCHMARKS.md.
//! By hand: `cargo bench -p host-tests --bench turns` (`SNAPMAP_BENCH_QUICK=1` for smoke sizes).

mod common;

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::*;

/// Keys per turn (one-key workloads: operations per turn; `batch64`: the batch).
const TURN: usize = 64;
/// snapmap's spare pages in this run: the configuration the cold figures were first seen with
/// (128 pages of table, so a batch may change every page, plus 8).
const TURN_P: usize = 136;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Workload {
    /// 64 inserts of keys the map does not hold.
    Insert,
    /// 64 inserts of keys it holds, with a new value.
    Replace,
    /// 64 removes of keys it holds.
    Remove,
    /// One atomic batch of 64 inserts of keys it does not hold.
    Batch64,
    /// One pass over the 1024 entries, summing the values.
    Iter,
}

/// (workload, name in the results, operations a turn is divided by).
const WORKLOADS: [(Workload, &str, u32); 5] = [
    (Workload::Insert, "insert", TURN as u32),
    (Workload::Replace, "replace", TURN as u32),
    (Workload::Remove, "remove", TURN as u32),
    (Workload::Batch64, "batch64", 1),
    (Workload::Iter, "iter", 1),
];

/// One map in the round: a shared map with this thread's local state (reader, guard, writer).
trait Player {
    fn id(&self) -> &'static str;
    /// Readies the map for its first turn, on `first`.
    fn start(&mut self, w: Workload, first: &[u64]);
    /// One turn on `chunk`, timed; then, untimed, readies the map for its next turn, on `next`.
    fn turn(&mut self, w: Workload, chunk: &[u64], next: &[u64], value: u64) -> Duration;
}

struct Bound<'a, M: Shared> {
    map: &'a M,
    local: M::Local<'a>,
}

fn player<M: Shared>(map: &M) -> Box<dyn Player + '_> {
    Box::new(Bound {
        map,
        local: map.local(),
    })
}

impl<M: Shared> Player for Bound<'_, M> {
    fn id(&self) -> &'static str {
        M::ID
    }

    fn start(&mut self, w: Workload, first: &[u64]) {
        if matches!(w, Workload::Insert | Workload::Batch64) {
            self.map.remove_batch(&mut self.local, first);
        }
    }

    fn turn(&mut self, w: Workload, chunk: &[u64], next: &[u64], value: u64) -> Duration {
        let (map, local) = (self.map, &mut self.local);
        let chunk = black_box(chunk);
        let start = Instant::now();
        match w {
            Workload::Insert | Workload::Replace => {
                chunk.iter().for_each(|&k| map.insert(local, k, value))
            }
            Workload::Remove => chunk.iter().for_each(|&k| map.remove(local, k)),
            Workload::Batch64 => map.insert_batch(local, chunk, value),
            Workload::Iter => {
                black_box(map.sum(local));
            }
        }
        let took = start.elapsed();
        match w {
            Workload::Insert | Workload::Batch64 => map.remove_batch(local, next),
            Workload::Remove => map.insert_batch(local, chunk, value),
            Workload::Replace | Workload::Iter => {}
        }
        map.tick(local);
        took
    }
}

/// The `q`-quantile of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Plays `rounds` timed rounds (after `warmup` untimed ones) of workload `w`; per map, the time
/// of each timed turn divided by `per_turn`, in ns.
fn play(
    w: Workload,
    keys: &[u64],
    warmup: usize,
    rounds: usize,
    per_turn: u32,
) -> Vec<(&'static str, Vec<f64>)> {
    let sole = SnapSole::<TURN_P>::with_keys(keys);
    let shared = SnapReader::<TURN_P>::with_keys(keys);
    let papaya = PapayaPerOp::<Fx>::with_keys(keys);
    let rwlock_std = StdRwLock::<StdHash>::with_keys(keys);
    let rwlock_fx = StdRwLock::<Fx>::with_keys(keys);
    let dash = Dash::<Fx>::with_keys(keys);
    let mut players = [
        player(&*sole),
        player(&*shared),
        player(&*papaya),
        player(&*rwlock_std),
        player(&*rwlock_fx),
        player(&*dash),
    ];
    let chunks: Vec<&[u64]> = keys.chunks(TURN).collect();
    for p in &mut players {
        p.start(w, chunks[0]);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); players.len()];
    let mut order: Vec<usize> = (0..players.len()).collect();
    let mut rng = Rng::new(w as u64);
    for round in 0..warmup + rounds {
        // Fisher-Yates: no map always follows the same one.
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let (chunk, next) = (
            chunks[round % chunks.len()],
            chunks[(round + 1) % chunks.len()],
        );
        for &i in &order {
            let took = players[i].turn(w, chunk, next, round as u64);
            if round >= warmup {
                times[i].push(took.as_nanos() as f64 / f64::from(per_turn));
            }
        }
    }
    players.iter().map(|p| p.id()).zip(times).collect()
}

fn main() {
    let (warmup, rounds) = if quick() { (2, 30) } else { (32, 5000) };
    let keys = &pool_keys()[..ENTRIES];
    let mut tsv = String::from("workload\tid\tmedian_ns\tp25_ns\tp75_ns\tturns\n");
    for (w, name, per_turn) in WORKLOADS {
        println!("turns: {name}, {rounds} rounds: median ns per operation (quartiles)");
        for (id, mut ns) in play(w, keys, warmup, rounds, per_turn) {
            ns.sort_by(f64::total_cmp);
            let (median, p25, p75) = (quantile(&ns, 0.5), quantile(&ns, 0.25), quantile(&ns, 0.75));
            println!("  {id:<16} {median:>9.1} ns  ({p25:.1}-{p75:.1})");
            writeln!(
                tsv,
                "{name}\t{id}\t{median:.2}\t{p25:.2}\t{p75:.2}\t{}",
                ns.len()
            )
            .expect("format");
        }
    }
    std::fs::write(out_dir().join("turns.tsv"), tsv).expect("write turns.tsv");
}
