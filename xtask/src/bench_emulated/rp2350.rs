//! The emulated RP2350 (two Cortex-M33, `targets/rp2350/runner`, each core's cycles counted by
//! its DWT): its [`Bench`] and page, the same figures as the RP2040's in M33 cycles.

use std::fmt::Write as _;
use std::fs;

use super::output::{f1, histograms, ratio, times, Measured};
use super::{Bench, Emulator};
use crate::util::workspace_root;

pub static RP2350: Bench = Bench {
    command: "bench-rp2350",
    help: HELP,
    board: &crate::boards::RP2350,
    // The run takes about 120 M cycles; give it ten times that and more.
    emulator: Emulator::Rp2350Runner {
        budget_cycles: 2_000_000_000,
    },
    unit: "cycles",
    // The firmware's clock is the core's DWT CYCCNT: one cycle a tick.
    per_tick: 1.0,
    repeat_spread: None,
    page: "BENCHMARKS-rp2350.md",
    title: "snapmap on the emulated RP2350 (two Cortex-M33)",
    section: "Emulated RP2350 (two Cortex-M33)",
    render,
};

pub const HELP: &str = "\
cargo xtask bench-rp2350 [--no-page]

Cycles per operation of snapmap and its peers on the emulated RP2350 (rp2350-emu: the Pico 2's
two Cortex-M33 at 150 MHz, each core's cycles counted; targets/rp2350/runner), the figures
bench-rp2040 measures on the M0+ pair:
  - get (hit), insert and batch of 8 inserts on one core, for snapmap (registered Reader, held
    snapshot, one-off map.get, all native CAS), a critical_section::Mutex<RefCell<FnvIndexMap>>
    on the firmware's exclusives-based spinlock critical section and the unsynchronized
    FnvIndexMap floor;
  - one read on core 1 while core 0 applies batches of 8 (flat out, paced, or not at all).
Builds firmware-demo's `bench` for thumbv8m.main with board-rp2350, runs it twice (the outputs
must be identical), prints the tables and writes BENCHMARKS-rp2350.md; raw output in
target/bench-rp2350/. About 10 s a run after the build.

Options:
  --no-page   print the tables, leave BENCHMARKS-rp2350.md alone
";

/// `rp2350-emu <version>`, from Cargo.lock.
pub fn emu_version() -> String {
    let lock = fs::read_to_string(workspace_root().join("Cargo.lock")).unwrap_or_default();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"rp2350-emu\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_owned());
    format!("rp2350-emu {}", version.as_deref().unwrap_or("?"))
}

fn render(m: &Measured, level: usize) -> String {
    let h = "#".repeat(level);
    let mut w = String::new();
    let fact = |k: &str| m.facts.get(k).cloned().unwrap_or_else(|| "?".into());
    let _ = writeln!(
        w,
        "Measured {} at commit `{}` with {} (targets/rp2350/runner: both M33 cores, clk_sys \
         150 MHz, quantum 64 cycles); {} runs. Firmware: `firmware-demo`'s `bench` for \
         thumbv8m.main-none-eabihf with `board-rp2350`, release profile (`opt-level = \"s\"`, \
         no LTO); the critical section is a lock word taken with LDREX/STREX plus masked \
         interrupts (not rp235x-hal's hardware spinlock, see the README).\n",
        fact("date"),
        fact("commit"),
        fact("emulator"),
        fact("runs")
    );
    let _ = writeln!(
        w,
        "**How.** The emulator charges each instruction the cycles of its Cortex-M33 timing \
         model, and each core's DWT `CYCCNT` counts that core's cycles: a figure is the same on \
         every run. One-core figures: a loop of 1024 operations on core 0 (core 1 not yet \
         launched) minus the same loop empty, over 1024; ten `nop`s in that loop measure {} \
         cycles (the model's loop, not exactly one cycle a `nop`). The maps are the other \
         boards': `u32 -> u32`, 64 keys in 128 slots (snapmap `N = 128, G = 4, R = 2`). What \
         the emulator does not model: the XIP cache and flash wait states (code runs from flash \
         as fast as from SRAM; on a Pico 2 a miss in the 16 KiB XIP cache costs a QSPI fetch), \
         SRAM bank contention between the cores, and `ACTLR.EXTEXCLALL` (its exclusive monitor \
         is always global). The cores take turns a quantum of 64 cycles at a time.\n",
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
        "\nThe mutex map takes 1 critical section per operation; snapmap takes none on this chip, \
         writes included (native compare-and-swap).\n"
    );

    let _ = writeln!(
        w,
        "{h} One read on core 1 while core 0 applies batches of 8\n\n\
         Cycles of one read (`Reader::get` / a get under the critical section), timed on core 1 \
         with its DWT cycle counter, reads back to back, 16384 samples per row; core 0 \
         meanwhile runs nothing, batches flat out, or a batch then about 20,000 cycles of other \
         work (paced). A mutex read that finds the lock held spins until the batch is done. \
         The lock is not fair, and the emulator switches cores only every 64 cycles: a core 1 \
         that keeps finding core 0 inside its next batch can wait for many batches, which is \
         where the mutex map's largest maxima come from.\n"
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
    histograms(&mut w, m, RP2350.unit);
    let _ = writeln!(
        w,
        "A snapmap read never waits for the writer: its spread is the keys' probe lengths and a \
         re-pin after a publication, the same with no writer as under flat-out batches. Only a \
         Pico 2 shows what the XIP cache, the timer's own clock and two cores on one SRAM bank \
         add.\n"
    );
    w
}

#[cfg(test)]
mod tests {
    use super::super::output::tests::SAMPLE;
    use super::*;

    #[test]
    fn renders_in_cycles() {
        let m = Measured::parse(SAMPLE, RP2350.per_tick).unwrap();
        let page = RP2350.render_page(&m);
        assert!(page.starts_with("# snapmap on the emulated RP2350 (two Cortex-M33)"));
        assert!(page.contains("## Cycles per operation, one core"));
        assert!(page.contains("Raw output: `target/bench-rp2350/output.txt`"));
        assert!(page.contains("Histograms (cycles: count"));
    }
}
