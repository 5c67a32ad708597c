//! The emulated RP2040 (two Cortex-M0+, `targets/rp2040/runner`, every instruction's cycles
//! counted): its [`Bench`] and page, judged against the M0+ targets of issue 8.

use std::fmt::Write as _;

use super::output::{f1, histograms, ratio, times, verdict, Measured};
use super::{Bench, Emulator};

pub static RP2040: Bench = Bench {
    command: "bench-rp2040",
    help: HELP,
    board: &crate::boards::RP2040,
    // The run takes about 180 M cycles; give it ten times that.
    emulator: Emulator::Rp2040Runner {
        budget_cycles: 2_000_000_000,
    },
    unit: "cycles",
    // SysTick counts clk_sys: one cycle a tick.
    per_tick: 1.0,
    // The repeats differ by tens of cycles with where the loop's code and data sit.
    repeat_spread: None,
    page: "BENCHMARKS-rp2040.md",
    title: "snapmap on the emulated RP2040 (two Cortex-M0+)",
    section: "Emulated RP2040 (two Cortex-M0+)",
    render,
};

pub const HELP: &str = "\
cargo xtask bench-rp2040 [--no-page]

Cycles per operation of snapmap and its peers on the emulated RP2040 (rp2040-emu: two
Cortex-M0+, every instruction's cycles counted; targets/rp2040/runner), the same figures as
bench-m33 measures in instructions on the M33 pair:
  - get (hit), insert and batch of 8 inserts on one core, for snapmap (registered Reader, held
    snapshot, one-off map.get), a critical_section::Mutex<RefCell<heapless::FnvIndexMap>> on
    rp2040-hal's spinlock critical section and the unsynchronized FnvIndexMap floor;
  - one read on core 1 while core 0 applies batches of 8 (flat out, paced, or not at all);
  - the targets: Reader::get <= 0.5x the mutex map's get, worst read under flat-out batches
    <= 2x its median, one-key insert <= 4x the mutex map's insert.
Builds firmware-demo's `bench` for thumbv6m, runs it twice (the outputs must be identical),
prints the tables and writes BENCHMARKS-rp2040.md; raw output in target/bench-rp2040/. About
10 s a run after the build. `cargo xtask bench` runs it too.

Options:
  --no-page   print the tables, leave BENCHMARKS-rp2040.md alone
";

/// A target: what was measured, the limit, and whether it was met.
struct Target {
    what: &'static str,
    got: String,
    ratio: Option<f64>,
    limit: f64,
}

impl Target {
    fn reached(&self) -> Option<bool> {
        self.ratio.map(|r| r <= self.limit)
    }
}

fn targets(m: &Measured) -> [Target; 3] {
    let reader = m.per_op("get/snapmap-reader");
    let mutex_get = m.per_op("get/mutex");
    let (max, p50) = m
        .lat("snapmap-reader", "flat-out")
        .map_or((0, 0), |l| (l.get("max"), l.get("p50")));
    let insert = m.per_op("insert/snapmap");
    let mutex_insert = m.per_op("insert/mutex");
    [
        Target {
            what: "`Reader::get` ≤ 0.5× the mutex map's get",
            got: format!(
                "{} vs {} cycles = {}",
                f1(reader),
                f1(mutex_get),
                times(ratio(reader, mutex_get))
            ),
            ratio: ratio(reader, mutex_get),
            limit: 0.5,
        },
        Target {
            what: "worst read on core 1 under flat-out batches ≤ 2× its median",
            got: format!(
                "{max} / {p50} cycles = {}",
                times(ratio(Some(max as f64), Some(p50 as f64)))
            ),
            ratio: ratio(Some(max as f64), Some(p50 as f64)),
            limit: 2.0,
        },
        Target {
            what: "one-key insert ≤ 4× the mutex map's insert",
            got: format!(
                "{} vs {} cycles = {}",
                f1(insert),
                f1(mutex_insert),
                times(ratio(insert, mutex_insert))
            ),
            ratio: ratio(insert, mutex_insert),
            limit: 4.0,
        },
    ]
}

fn render(m: &Measured, level: usize) -> String {
    let h = "#".repeat(level);
    let mut w = String::new();
    let fact = |k: &str| m.facts.get(k).cloned().unwrap_or_else(|| "?".into());
    let _ = writeln!(
        w,
        "Measured {} at commit `{}` with {} (targets/rp2040/runner: both M0+ cores, clk_sys \
         125 MHz); {} runs. Firmware: `firmware-demo`'s `bench` for thumbv6m, release profile \
         (`opt-level = \"s\"`, no LTO), rp2040-hal's spinlock critical section.\n",
        fact("date"),
        fact("commit"),
        fact("emulator"),
        fact("runs")
    );
    let _ = writeln!(
        w,
        "**How.** The emulator charges every instruction its Cortex-M0+ cycles (loads and stores \
         2, taken branches 2, the single-cycle multiplier, +1 on an SRAM bank both cores touch), \
         and each core's SysTick on clk_sys counts that core's cycles: a figure is the same on \
         every run. One-core figures: a loop of 1024 operations on core 0 (core 1 not yet \
         launched) minus the same loop empty, over 1024; ten `nop`s measure {} cycles. The maps \
         are the M33 benchmark's: `u32 -> u32`, 64 keys in 128 slots (snapmap `N = 128, G = 4, \
         R = 2`). What the emulator does not model: XIP flash runs without wait states or cache \
         misses (on a Pico, code outside the 16 KiB XIP cache costs a QSPI fetch of tens of \
         cycles per miss; code placed in SRAM avoids that), and the two cores alternate one \
         instruction at a time, so a core is slowed while the other runs longer instructions \
         (cycles counted per core stay exact; wall-clock progress is pessimistic).\n",
        f1(m.per_op("calibration-10-nops"))
    );

    let _ = writeln!(w, "{h} Cycles per operation, one core\n");
    let _ = writeln!(
        w,
        "| operation | floor: `FnvIndexMap` (unsync.) | `Mutex<RefCell<FnvIndexMap>>` | snapmap \
         | snapmap ÷ mutex | critical sections (snapmap) |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|");
    let rows: [(&str, &str, &str, &str); 7] = [
        (
            "get (hit): `Reader::get`",
            "get/floor",
            "get/mutex",
            "get/snapmap-reader",
        ),
        (
            "get (hit): `Snapshot::get`, held snapshot",
            "get/floor",
            "get/mutex",
            "get/snapmap-held",
        ),
        (
            "get (hit): one-off `SnapMap::get`",
            "get/floor",
            "get/mutex",
            "get/snapmap-oneoff",
        ),
        (
            "get (hit), table full (64 in 64): `Reader::get`",
            "get/floor-full",
            "",
            "get/snapmap-reader-full",
        ),
        (
            "insert (one key)",
            "insert/floor",
            "insert/mutex",
            "insert/snapmap",
        ),
        (
            "`update` that changes nothing",
            "",
            "",
            "update-noop/snapmap",
        ),
        (
            "batch of 8 inserts",
            "batch8/floor",
            "batch8/mutex",
            "batch8/snapmap",
        ),
    ];
    for (label, floor, mutex, snap) in rows {
        let get = |id: &str| (!id.is_empty()).then(|| m.per_op(id)).flatten();
        let cs = m
            .ops
            .get(snap)
            .map_or("–".into(), |op| op.critical_sections.to_string());
        let _ = writeln!(
            w,
            "| {label} | {} | {} | {} | {} | {cs} |",
            f1(get(floor)),
            f1(get(mutex)),
            f1(get(snap)),
            times(ratio(get(snap), get(mutex)))
        );
    }
    let _ = writeln!(
        w,
        "\nThe mutex map takes 1 critical section per operation (interrupts masked and hardware \
         spinlock 31); snapmap's readers take none.\n"
    );

    let _ = writeln!(
        w,
        "{h} One read on core 1 while core 0 applies batches of 8\n\n\
         Cycles of one read (`Reader::get` / a get under the critical section), timed on core 1 \
         with its SysTick, reads back to back, 16384 samples per row; core 0 meanwhile runs \
         nothing, batches flat out, or a batch then about 20,000 cycles of other work (paced). \
         A mutex read that finds the lock held spins on the hardware spinlock until the batch \
         is done.\n"
    );
    let _ = writeln!(
        w,
        "| map | core 0 meanwhile | median | p90 | p99 | p99.9 | max | max ÷ median |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|");
    for (map, label) in [
        ("snapmap-reader", "snapmap, `Reader::get`"),
        ("mutex", "`Mutex<RefCell<FnvIndexMap>>`"),
    ] {
        for (writer, doing) in [
            ("none", "nothing"),
            ("flat-out", "batches flat out"),
            ("paced", "a batch per ~20,000 cycles"),
        ] {
            if let Some(l) = m.lat(map, writer) {
                let _ = writeln!(
                    w,
                    "| {label} | {doing} | {} | {} | {} | {} | {} | {} |",
                    l.get("p50"),
                    l.get("p90"),
                    l.get("p99"),
                    l.get("p999"),
                    l.get("max"),
                    times(ratio(Some(l.get("max") as f64), Some(l.get("p50") as f64)))
                );
            }
        }
    }
    histograms(&mut w, m, RP2040.unit);

    let _ = writeln!(w, "{h} Issue 8 targets (M0+)\n");
    let _ = writeln!(w, "| target | this run | reached? |");
    let _ = writeln!(w, "|---|---|---|");
    for t in targets(m) {
        let _ = writeln!(w, "| {} | {} | {} |", t.what, t.got, verdict(t.reached()));
    }
    let _ = writeln!(w);
    for (i, t) in targets(m).iter().enumerate() {
        if let (Some(false), Some(r)) = (t.reached(), t.ratio) {
            let _ = writeln!(
                w,
                "- Short: {}: {r:.2}× against {:.1}×, {:.0}% over. {}",
                t.what,
                t.limit,
                (r / t.limit - 1.0) * 100.0,
                why_short(m, i)
            );
        }
    }
    let _ = writeln!(
        w,
        "\nA snapmap read never waits for the writer: its spread is the keys' probe lengths \
         (about 22 cycles a probe step on the M0+; Robin Hood insertion keeps keys within 3 \
         slots of home) and a re-pin after a publication. A mutex read under flat-out batches \
         waits for the rest of the writer's batch: its median is {} its median alone.\n",
        times(ratio(
            m.lat("mutex", "flat-out").map(|l| l.get("p50") as f64),
            m.lat("mutex", "none").map(|l| l.get("p50") as f64)
        ))
    );
    w
}

/// Why target `index` of [`targets`] was missed, as far as the figures say.
fn why_short(m: &Measured, index: usize) -> String {
    match index {
        2 => format!(
            "A one-key write copies-on-write: it pins its base (a count on that generation), \
             claims a generation slot (a scan of the pins, which also says which spare pages \
             may be reused), copies the base's page index, claims a spare page and copies the \
             key's page of 16 slots into it, and publishes by CAS, which also ends the base \
             pin; on the M0+ the pin, the slot claim, the page claim and the CAS are critical \
             sections, {} per insert to the mutex map's {}. At about 130 cycles each \
             (rp2040-hal's spinlock and the benchmark's counting wrapper, which both maps pay) \
             they are about {:.0}% of its cycles; most of the rest is the page copy (`cargo run \
             -p rp2040-runner --example profile` gives a sampling profile).",
            m.cs("insert/snapmap"),
            m.cs("insert/mutex"),
            m.per_op("insert/snapmap")
                .map_or(0.0, |c| 100.0 * 130.0 * m.cs("insert/snapmap") as f64 / c)
        ),
        1 => {
            let alone = m.lat("snapmap-reader", "none");
            format!(
                "The writer is not the cause: with no writer at all the worst read is {} cycles, \
                 {} its median. The spread is the lookup's: a key in its home slot is found by \
                 the first check, the others walk the probe loop. A faster first check lowers \
                 the median, not the longest probe, so it raises this ratio.",
                alone.map_or(0, |l| l.get("max")),
                times(ratio(
                    alone.map(|l| l.get("max") as f64),
                    alone.map(|l| l.get("p50") as f64)
                ))
            )
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::output::tests::SAMPLE;
    use super::*;

    #[test]
    fn renders_in_cycles_with_the_m0_targets() {
        let m = Measured::parse(SAMPLE, RP2040.per_tick).unwrap();
        let page = RP2040.render_page(&m);
        assert!(page.starts_with("# snapmap on the emulated RP2040 (two Cortex-M0+)"));
        assert!(page.contains("## Cycles per operation, one core"));
        assert!(page.contains("Raw output: `target/bench-rp2040/output.txt`"));
        assert!(page.contains("Histograms (cycles: count"));
        assert!(page.contains("## Issue 8 targets (M0+)"));
        // No snapmap figure in the sample: no target is judged.
        assert!(targets(&m).iter().all(|t| t.reached().is_none()));
    }
}
