//! The emulated RP2350 (two Cortex-M33, `targets/rp2350/runner`, each core's cycles counted by
//! its DWT): its [`Bench`], the same figures as the RP2040's in M33 cycles. Its page is
//! `benchmarks/bench-rp2350.template.md` filled as the other boards' are.

use std::fs;

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
};

const HELP: &str = "\
cargo xtask bench-rp2350 [--no-page] [--report-only]

Cycles per operation of snapmap and its peers on the emulated RP2350 (rp2350-emu: the Pico 2's
two Cortex-M33 at 150 MHz, each core's cycles counted; targets/rp2350/runner), the figures
bench-rp2040 measures on the M0+ pair:
  - get (hit), insert and batch of 8 inserts on one core, for snapmap (registered Reader, held
    snapshot, one-off map.get, all native CAS), a critical_section::Mutex<RefCell<FnvIndexMap>>
    on the firmware's exclusives-based spinlock critical section and the unsynchronized
    FnvIndexMap floor;
  - snapmap's writes both through the map and through its sole Writer (SnapMap::writer: no
    base pin, no compare-and-swap), with the critical sections each takes;
  - one read on core 1 while core 0 applies batches of 8 (flat out, paced, or not at all).
Builds firmware-demo's `bench` for thumbv8m.main with board-rp2350, runs it twice (the outputs
must be identical), and fills benchmarks/bench-rp2350.template.md into BENCHMARKS-rp2350.md with
the targets of benchmarks/targets.toml; raw output in target/bench-rp2350/. About 10 s a run
after the build. `cargo xtask bench` runs it too.

Options:
  --no-page       print the targets, leave BENCHMARKS-rp2350.md alone
  --report-only   do not measure: fill the page again from the last run's output (after an
                  edit of the template or of the targets file)
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
