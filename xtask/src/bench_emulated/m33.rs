//! The emulated dual Cortex-M33 (QEMU `mps2-an521` under `-icount shift=0,sleep=off`): its
//! [`Bench`], page and the issue-4 targets, whose row `cargo xtask bench` also shows
//! ([`target_row`]).

use std::fmt::Write as _;

use super::output::{f1, fields, histograms, ratio, times, verdict, Measured};
use super::{Bench, Emulator};
use crate::boards::AN521;

pub static M33: Bench = Bench {
    command: "bench-m33",
    help: HELP,
    board: &AN521,
    emulator: Emulator::QemuIcount,
    unit: "instructions",
    // Under `-icount shift=0` (1 ns an instruction) SysTick on the 20 MHz processor clock.
    per_tick: 50.0,
    // The repeats agree within the one tick of phase.
    repeat_spread: Some(1),
    page: "BENCHMARKS-m33.md",
    title: "snapmap on an emulated dual Cortex-M33",
    section: "Emulated Cortex-M33",
    render,
};

pub const HELP: &str = "\
cargo xtask bench-m33 [--no-page]

Instructions per operation of snapmap and its peers on QEMU mps2-an521 (two Cortex-M33) under
`-icount shift=0,sleep=off`, where SysTick counts exactly 50 instructions a tick and every run
is the same:
  - get (hit), insert and batch of 8 inserts on one core, for snapmap (registered Reader, held
    snapshot, one-off map.get), a critical_section::Mutex<RefCell<heapless::FnvIndexMap>> and the
    unsynchronized FnvIndexMap floor; u32 -> u32, 64 entries in 128 slots (50% load);
  - one read on core 1 while core 0 applies batches of 8 (flat out, paced, or not at all):
    percentiles and histograms, for snapmap and the mutex map;
  - size_of the maps on the target.
Builds firmware-demo's `bench` (the thumbv8m toolchain as for `cargo xtask demo`), runs it
twice (the outputs must be identical), checks the calibration, prints the tables and writes
BENCHMARKS-m33.md at the workspace root; raw output in target/bench-m33/. Takes a few seconds
after the build. `cargo xtask bench` runs it too and puts the same section into BENCHMARKS.md.

Options:
  --no-page   print the tables, leave BENCHMARKS-m33.md alone
";

/// The issue-4 target row for `BENCHMARKS.md`: (this run, reached?, why).
pub fn target_row() -> (String, Option<bool>, String) {
    match M33.load() {
        Ok(m) => {
            let t = Targets::of(&m);
            (t.got(), t.reached(), t.why())
        }
        Err(e) => (
            "not measured".into(),
            None,
            format!("the emulated figures are missing: {e}"),
        ),
    }
}

/// The issue-4 targets, from one run.
struct Targets {
    reader_get: Option<f64>,
    held_get: Option<f64>,
    floor_get: Option<f64>,
    get_ratio: Option<f64>,
    snap: Option<(u64, u64, u64)>,
    mutex: Option<(u64, u64, u64)>,
}

impl Targets {
    fn of(m: &Measured) -> Self {
        let reader_get = m.per_op("get/snapmap-reader");
        let floor_get = m.per_op("get/floor");
        // (max, median, median with no writer)
        let worst = |map: &str| {
            let under = m.lat(map, "flat-out")?;
            let alone = m.lat(map, "none")?;
            Some((under.get("max"), under.get("p50"), alone.get("p50")))
        };
        Self {
            reader_get,
            held_get: m.per_op("get/snapmap-held"),
            floor_get,
            get_ratio: ratio(reader_get, floor_get),
            snap: worst("snapmap-reader"),
            mutex: worst("mutex"),
        }
    }

    fn worst_ratio(w: Option<(u64, u64, u64)>) -> Option<f64> {
        w.and_then(|(max, p50, _)| ratio(Some(max as f64), Some(p50 as f64)))
    }

    fn get_reached(&self) -> Option<bool> {
        self.get_ratio.map(|r| r <= 1.3)
    }

    fn worst_reached(&self) -> Option<bool> {
        Self::worst_ratio(self.snap).map(|r| r <= 2.0)
    }

    fn reached(&self) -> Option<bool> {
        Some(self.get_reached()? && self.worst_reached()?)
    }

    fn got(&self) -> String {
        let (snap_max, snap_p50) = self.snap.map_or((0, 0), |(m, p, _)| (m, p));
        let (mutex_max, mutex_p50, mutex_alone) = self.mutex.unwrap_or((0, 0, 0));
        format!(
            "`Reader::get` {} vs {} instructions = {}; worst / median read under flat-out \
             batches: snapmap {snap_max} / {snap_p50} = {}, mutex map {mutex_max} / \
             {mutex_p50} = {} ({} its median alone)",
            f1(self.reader_get),
            f1(self.floor_get),
            times(self.get_ratio),
            times(Self::worst_ratio(self.snap)),
            times(Self::worst_ratio(self.mutex)),
            times(ratio(Some(mutex_max as f64), Some(mutex_alone as f64))),
        )
    }

    fn why(&self) -> String {
        format!(
            "Through a held snapshot a get is {} instructions: snapmap's own table (Fx hash, \
             linear probing, one page-index load per slot looked at) looks up in under a third \
             of heapless's; a `Reader::get` adds the pin (announce, fence, validate), its end (a \
             store) and the clone-out. A snapmap read never waits for the writer: its spread is \
             the keys' probe lengths, which Robin Hood insertion keeps within 3 slots of home; a \
             mutex read waits for the rest of the writer's batch.",
            f1(self.held_get)
        )
    }
}

/// The tables and notes, with `##`-level headings at `level`.
fn render(m: &Measured, level: usize) -> String {
    let h = "#".repeat(level);
    let mut w = String::new();
    let fact = |k: &str| m.facts.get(k).cloned().unwrap_or_else(|| "?".into());
    let _ = writeln!(
        w,
        "Measured {} at commit `{}` with {} (`mps2-an521`, two Cortex-M33, \
         `-icount shift=0,sleep=off`); {} runs. Firmware: `firmware-demo`'s release profile \
         (`opt-level = \"s\"`, no LTO).\n",
        fact("date"),
        fact("commit"),
        fact("emulator"),
        fact("runs")
    );
    let _ = writeln!(
        w,
        "**How.** Under `-icount shift=0` one instruction is one nanosecond of virtual time, so \
         SysTick on the 20 MHz processor clock counts exactly 50 instructions a tick. A figure \
         is a loop of {} operations on core 0 (core 1 held in reset) minus the same loop empty, \
         × 50 / {}; each is measured three times (the repeats agree within the one tick of \
         phase, 0.05 instruction per operation) and ten `nop`s measure {} instructions. Every \
         map is `u32 -> u32` holding the same 64 pseudo-random keys in 128 slots (50% load; \
         snapmap `N = 128, G = 4, R = 2`); inserts replace a key's value, so the tables stay at \
         64 entries.\n",
        m.ops.get("get/floor").map_or(0, |o| o.iters),
        m.ops.get("get/floor").map_or(0, |o| o.iters),
        m.per_op("calibration-10-nops")
            .map_or("–".into(), |v| format!("{v:.2}")),
    );

    let _ = writeln!(w, "{h} Instructions per operation, one core\n");
    let _ = writeln!(
        w,
        "| operation | floor: `FnvIndexMap` (unsync.) | `Mutex<RefCell<FnvIndexMap>>` | \
         snapmap | snapmap ÷ floor | snapmap ÷ mutex |\n|---|---:|---:|---:|---:|---:|"
    );
    let row = |w: &mut String, what: &str, floor: &str, mutex: &str, snap: &str| {
        let (f, mx, s) = (m.per_op(floor), m.per_op(mutex), m.per_op(snap));
        let _ = writeln!(
            w,
            "| {what} | {} | {} | {} | {} | {} |",
            f1(f),
            f1(mx),
            f1(s),
            times(ratio(s, f)),
            times(ratio(s, mx))
        );
    };
    row(
        &mut w,
        "get (hit): `Reader::get` (pin, look up, clone out, unpin)",
        "get/floor",
        "get/mutex",
        "get/snapmap-reader",
    );
    row(
        &mut w,
        "get (hit): `Snapshot::get` through a held snapshot",
        "get/floor",
        "get/mutex",
        "get/snapmap-held",
    );
    row(
        &mut w,
        "get (hit): one-off `SnapMap::get` (counts a pin on the generation: an atomic add, and a subtract on drop)",
        "get/floor",
        "get/mutex",
        "get/snapmap-oneoff",
    );
    row(
        &mut w,
        "get (hit), table full (64 entries in 64 slots): `Reader::get`",
        "get/floor-full",
        "",
        "get/snapmap-reader-full",
    );
    row(
        &mut w,
        "insert (one key; snapmap: copy the index and the key's page, publish)",
        "insert/floor",
        "insert/mutex",
        "insert/snapmap",
    );
    row(
        &mut w,
        "snapmap `update` that changes nothing (pin, claim a slot, copy the index, free it)",
        "",
        "",
        "update-noop/snapmap",
    );
    row(
        &mut w,
        "batch of 8 inserts (snapmap: one `update`; mutex: one critical section)",
        "batch8/floor",
        "batch8/mutex",
        "batch8/snapmap",
    );
    let per = |batch: &str, one: &str| ratio(m.per_op(batch), m.per_op(one));
    let _ = writeln!(
        w,
        "| batch of 8 ÷ one insert | {} | {} | {} | | |\n",
        times(per("batch8/floor", "insert/floor")),
        times(per("batch8/mutex", "insert/mutex")),
        times(per("batch8/snapmap", "insert/snapmap")),
    );
    let _ = writeln!(
        w,
        "Critical sections per get: mutex map {}, snapmap `Reader::get` {} (counted by the \
         board's counting critical-section implementation).\n",
        m.cs("get/mutex"),
        m.cs("get/snapmap-reader")
    );

    let _ = writeln!(
        w,
        "{h} One read on core 1 while core 0 applies batches of 8\n"
    );
    let _ = writeln!(
        w,
        "Instructions of one read (`Reader::get` / a get under the critical section), timed on \
         core 1 to within 4 instructions, {} samples per row. With `-icount` QEMU runs the two \
         CPUs round-robin on one host thread, so \"concurrent\" is an interleaving, the same on \
         every run: core 0 yields at points about one insert apart (inside snapmap's \
         transaction; inside the mutex map's critical section, lock held; between batches; in \
         a paced writer's idle time), at a pseudo-random one in 1 to 16, and core 1 reads \
         there. A read that finds the lock held spins (`yield`), core 0 finishes its batch and \
         yields as it releases the lock, so that sample is the rest of the batch plus the \
         read, as on two real cores at the same speed. Core 1 is never stopped inside a read \
         otherwise, so a snapmap pin never retries here (that needs a publication inside its \
         few-instruction window; one retry would add one turn of the pin loop). Flat out: \
         batches back to back; paced: a batch, then 20,000 instructions of other work (1 ms \
         at 20 MHz).\n",
        m.lat("snapmap-reader", "none").map_or(0, |l| l.get("n"))
    );
    let _ = writeln!(
        w,
        "| map | core 0 meanwhile | median | p90 | p99 | p99.9 | max | max ÷ median | max ÷ \
         median alone | reads that waited |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (map, name) in [
        ("snapmap-reader", "snapmap, `Reader::get`"),
        ("mutex", "`Mutex<RefCell<FnvIndexMap>>`"),
    ] {
        let alone = m.lat(map, "none").map(|l| l.get("p50"));
        for (writer, doing) in [
            ("none", "nothing"),
            ("flat-out", "batches flat out"),
            ("paced", "a batch per 20,000 instructions"),
        ] {
            let Some(l) = m.lat(map, writer) else {
                continue;
            };
            let max = Some(l.get("max") as f64);
            let _ = writeln!(
                w,
                "| {name} | {doing} | {} | {} | {} | {} | {} | {} | {} | {} |",
                l.get("p50"),
                l.get("p90"),
                l.get("p99"),
                l.get("p999"),
                l.get("max"),
                times(ratio(max, Some(l.get("p50") as f64))),
                times(ratio(max, alone.map(|a| a as f64))),
                l.get("waited"),
            );
        }
    }
    histograms(&mut w, m, M33.unit);
    for s in &m.stats {
        let f = fields(s);
        let at = match f.get("at").map(String::as_str) {
            Some("one-core") => "after the one-core figures",
            _ => "at the end",
        };
        let _ = writeln!(
            w,
            "snapmap's writer statistics {at}: {} publications, {} CAS retries, {} slot waits.  ",
            f.get("publishes").map_or("?", |s| s),
            f.get("cas_retries").map_or("?", |s| s),
            f.get("slot_waits").map_or("?", |s| s),
        );
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "{h} Memory on the Cortex-M33\n");
    let _ = writeln!(
        w,
        "`size_of` on the target (32-bit words; reader slots 32-byte aligned), against one \
         plain heapless table of the same capacity: generations share the table's pages, so \
         `G` costs an index of 2 bytes per 16 slots each, and `P` spare pages of 16 slots \
         are the rest.\n\n| shape | `SnapMap` | one `FnvIndexMap` | `SnapMap` ÷ one table \
         |\n|---|---:|---:|---:|"
    );
    for s in &m.sizes {
        let get = |k: &str| s.fields.get(k).copied();
        if let (Some(snap), Some(table)) = (get("snapmap"), get("table")) {
            let _ = writeln!(
                w,
                "| {} | {snap} | {table} | {} |",
                s.shape,
                times(ratio(Some(snap as f64), Some(table as f64)))
            );
        } else if let Some(mutex) = get("mutex") {
            let _ = writeln!(
                w,
                "| `Mutex<RefCell<FnvIndexMap>>`, {} | {mutex} | | |",
                s.shape
            );
        }
    }
    let _ = writeln!(w);

    let t = Targets::of(m);
    let _ = writeln!(w, "{h} Issue 4 targets (emulated part)\n");
    let _ = writeln!(w, "| target | this run | reached? |\n|---|---|---|");
    let _ = writeln!(
        w,
        "| get ≤ 1.3× the unsynchronized table's instructions | `Reader::get` {} vs the \
         `FnvIndexMap` floor {} = {} (held snapshot: {} = {}) | {} |",
        f1(t.reader_get),
        f1(t.floor_get),
        times(t.get_ratio),
        f1(t.held_get),
        times(ratio(t.held_get, t.floor_get)),
        verdict(t.get_reached())
    );
    let describe = |x: Option<(u64, u64, u64)>| {
        x.map_or("–".into(), |(max, p50, alone)| {
            format!(
                "{max} / {p50} = {} ({} the median with no writer)",
                times(ratio(Some(max as f64), Some(p50 as f64))),
                times(ratio(Some(max as f64), Some(alone as f64)))
            )
        })
    };
    let _ = writeln!(
        w,
        "| worst-case read under concurrent batches ≤ 2× its median | snapmap {}; mutex map {} \
         | {} |\n",
        describe(t.snap),
        describe(t.mutex),
        verdict(t.worst_reached())
    );
    let _ = writeln!(w, "{}\n", t.why());
    w
}

#[cfg(test)]
mod tests {
    use super::super::output::tests::SAMPLE;
    use super::*;

    #[test]
    fn renders_what_is_there_and_dashes_the_rest() {
        let m = Measured::parse(SAMPLE, M33.per_tick).unwrap();
        let page = M33.render_page(&m);
        assert!(page.starts_with("# snapmap on an emulated dual Cortex-M33"));
        assert!(page.contains("## Instructions per operation, one core"));
        assert!(page.contains("| `Mutex<RefCell<FnvIndexMap>>` | batches flat out | 954 |"));
        assert!(
            page.contains("| u32->u32, N=128, G=4, R=2 (this benchmark) | 6336 | 2052 | 3.09× |")
        );
        assert!(page.contains("Histograms (instructions: count"));
        // No snapmap figure in the sample: its targets are not judged.
        let t = Targets::of(&m);
        assert_eq!(t.reached(), None);
        assert!(render(&m, 3).contains("### Issue 4 targets"));
    }
}
