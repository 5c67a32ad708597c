//! `cargo xtask bench-m33`, `bench-rp2040` and `bench-rp2350`: snapmap's instruction or cycle
//! counts on an emulated two-core board.
//!
//! One driver for all three: it builds `firmware-demo/src/bin/bench` for the board, runs it twice on
//! its emulator (the two outputs must be identical), parses and checks the output ([`output`]),
//! keeps it raw in `target/<command>/`, and fills the board's template
//! (`benchmarks/<command>.template.md`) into its page with the figures and the targets of
//! `benchmarks/targets.toml`. `cargo xtask bench` shows the same targets ([`targets_block`]).

mod output;
mod page;
mod rp2350;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::boards::Board;
use crate::emulator;
use crate::firmware::{self, Artifact};
use crate::host_tools;
use crate::util::{commit, display_command, fail, first_line, format_duration, now_utc};
use crate::util::{workspace_root, Failure, Result};

pub use output::Measured;
pub use rp2350::RP2350;

/// One emulated board's benchmark.
pub struct Bench {
    /// The xtask command, `bench-m33`; also the folder under `target/` for the raw output.
    pub command: &'static str,
    pub help: &'static str,
    pub board: &'static Board,
    pub emulator: Emulator,
    /// What the firmware's ticks count, for tables and messages: `instructions`, `cycles`.
    pub unit: &'static str,
    /// Units per SysTick tick.
    pub per_tick: f64,
    /// How many ticks an `OP` figure's repeats may differ by, if that is checked.
    pub repeat_spread: Option<u64>,
    /// The page at the workspace root.
    pub page: &'static str,
}

pub static M33: Bench = Bench {
    command: "bench-m33",
    help: M33_HELP,
    board: &crate::boards::AN521,
    emulator: Emulator::QemuIcount,
    unit: "instructions",
    // Under `-icount shift=0` (1 ns an instruction) SysTick on the 20 MHz processor clock.
    per_tick: 50.0,
    // The repeats agree within the one tick of phase.
    repeat_spread: Some(1),
    page: "BENCHMARKS-m33.md",
};

pub static RP2040: Bench = Bench {
    command: "bench-rp2040",
    help: RP2040_HELP,
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
};

const M33_HELP: &str = "\
cargo xtask bench-m33 [--no-page] [--report-only]

Instructions per operation of snapmap and its peers on QEMU mps2-an521 (two Cortex-M33) under
`-icount shift=0,sleep=off`, where SysTick counts exactly 50 instructions a tick and every run
is the same:
  - get (hit), insert and batch of 8 inserts on one core, for snapmap (registered Reader, held
    snapshot, one-off map.get), a critical_section::Mutex<RefCell<heapless::FnvIndexMap>> and the
    unsynchronized FnvIndexMap floor; u32 -> u32, 64 entries in 128 slots (50% load);
  - snapmap's writes (insert, update that changes nothing, batch of 8) both through the map and
    through its sole Writer (SnapMap::writer: no base pin, no compare-and-swap), with the
    critical sections each takes;
  - one read on core 1 while core 0 applies batches of 8 (flat out, paced, or not at all):
    percentiles and histograms, for snapmap and the mutex map;
  - size_of the maps on the target.
Builds firmware-demo's `bench` (the thumbv8m toolchain as for `cargo xtask demo`), runs it
twice (the outputs must be identical), checks the calibration, and fills
benchmarks/bench-m33.template.md into BENCHMARKS-m33.md with the targets of
benchmarks/targets.toml; raw output in target/bench-m33/. Takes a few seconds after the build.
`cargo xtask bench` runs it too.

Options:
  --no-page       print the targets, leave BENCHMARKS-m33.md alone
  --report-only   do not measure: fill the page again from the last run's output (after an
                  edit of the template or of the targets file)
";

const RP2040_HELP: &str = "\
cargo xtask bench-rp2040 [--no-page] [--report-only]

Cycles per operation of snapmap and its peers on the emulated RP2040 (rp2040-emu: two
Cortex-M0+, every instruction's cycles counted; targets/rp2040/runner), the same figures as
bench-m33 measures in instructions on the M33 pair:
  - get (hit), insert and batch of 8 inserts on one core, for snapmap (registered Reader, held
    snapshot, one-off map.get), a critical_section::Mutex<RefCell<heapless::FnvIndexMap>> on
    rp2040-hal's spinlock critical section and the unsynchronized FnvIndexMap floor;
  - snapmap's writes both through the map and through its sole Writer (SnapMap::writer: no
    base pin, no critical section), with the critical sections each takes;
  - one read on core 1 while core 0 applies batches of 8 (flat out, paced, or not at all).
Builds firmware-demo's `bench` for thumbv6m, runs it twice (the outputs must be identical), and
fills benchmarks/bench-rp2040.template.md into BENCHMARKS-rp2040.md with the targets of
benchmarks/targets.toml; raw output in target/bench-rp2040/. About 10 s a run after the build.
`cargo xtask bench` runs it too.

Options:
  --no-page       print the targets, leave BENCHMARKS-rp2040.md alone
  --report-only   do not measure: fill the page again from the last run's output (after an
                  edit of the template or of the targets file)
";

/// A bench is known by its command (for `Cli`'s derived traits).
impl PartialEq for Bench {
    fn eq(&self, other: &Self) -> bool {
        self.command == other.command
    }
}

impl std::fmt::Debug for Bench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bench({})", self.command)
    }
}

/// How a board's benchmark firmware runs; every emulator gives the same figures on every run.
pub enum Emulator {
    /// QEMU (the board's `qemu-args`) under `-icount`, bounded by `timeout`.
    QemuIcount,
    /// `targets/rp2040/runner`, bounded by a budget of cycles.
    Rp2040Runner { budget_cycles: u64 },
    /// `targets/rp2350/runner` at the emulator's default quantum, bounded by a budget of cycles.
    Rp2350Runner { budget_cycles: u64 },
}

/// How long one QEMU run may take (it takes about a second).
const QEMU_LIMIT: Duration = Duration::from_secs(120);
/// Appended to the board's QEMU arguments: one instruction per virtual nanosecond, CPUs
/// round-robin on one thread. `sleep=off`: virtual time never waits for real time (with the
/// default `sleep=on`, 3 to 6 runs in 30 came out different where core 1 waits for core 0's
/// lock; with `sleep=off`, 110 runs out of 110 were byte-identical, also four at a time).
const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];
/// The RP2040 runner's own last line, which carries the wall time: not part of the output.
const RUNNER_PREFIX: &str = "rp2040-runner:";
/// The same for the RP2350 runner.
const RP2350_RUNNER_PREFIX: &str = "rp2350-runner:";
/// The RP2350 benchmark's quantum: the emulator's default.
const RP2350_QUANTUM: u32 = 64;

impl Emulator {
    /// For `==> running it ...`.
    fn how(&self, board: &Board) -> String {
        match self {
            Self::QemuIcount => format!("on {} with {}", board.description, ICOUNT.join(" ")),
            Self::Rp2040Runner { .. } => "on the emulated RP2040 (rp2040-emu)".to_owned(),
            Self::Rp2350Runner { .. } => "on the emulated RP2350 (rp2350-emu)".to_owned(),
        }
    }

    fn command(&self, board: &Board, elf: &Path) -> Result<Command> {
        Ok(match self {
            Self::QemuIcount => {
                let mut qemu = emulator::qemu_command(board, elf, QEMU_LIMIT)?;
                qemu.args(ICOUNT);
                qemu
            }
            Self::Rp2040Runner { budget_cycles } => emulator::rp2040_command(elf, *budget_cycles),
            Self::Rp2350Runner { budget_cycles } => {
                emulator::rp2350_command(elf, *budget_cycles, RP2350_QUANTUM)
            }
        })
    }

    fn explain_exit(&self, code: Option<i32>) -> Option<String> {
        match self {
            Self::QemuIcount => emulator::explain_exit(code, QEMU_LIMIT),
            Self::Rp2040Runner { .. } => emulator::explain_rp2040_exit(code),
            Self::Rp2350Runner { .. } => emulator::explain_rp2350_exit(code),
        }
    }

    /// The `run.tsv` facts that name the emulator and how the runs compared.
    fn facts(&self) -> [(&'static str, String); 2] {
        match self {
            Self::QemuIcount => [
                ("emulator", first_line("qemu-system-arm", &["--version"])),
                ("runs", "2, byte-identical".to_owned()),
            ],
            Self::Rp2040Runner { .. } => [
                ("emulator", rp2040_emu_version()),
                ("runs", "2, identical".to_owned()),
            ],
            Self::Rp2350Runner { .. } => [
                ("emulator", rp2350::emu_version()),
                ("runs", "2, identical".to_owned()),
            ],
        }
    }
}

/// Parsed `cargo xtask bench-m33` / `bench-rp2040` / `bench-rp2350` options.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub no_page: bool,
    pub report_only: bool,
}

pub fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let mut options = Options::default();
    for arg in args {
        match arg.as_str() {
            "--no-page" => options.no_page = true,
            "--report-only" => options.report_only = true,
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(options)
}

/// `cargo xtask bench-m33` / `bench-rp2040` / `bench-rp2350`.
pub fn run(bench: &Bench, options: &Options) -> Result {
    let started = Instant::now();
    let measured = if options.report_only {
        bench.load()?
    } else {
        bench.measure()?
    };
    println!();
    print!("{}", bench.targets(&measured)?);
    if !options.no_page {
        let page = workspace_root().join(bench.page);
        fs::write(&page, bench.render_page(&measured)?)?;
        println!("{}: wrote {}", bench.command, page.display());
    }
    println!(
        "{}: done in {} (raw output in {}/)",
        bench.command,
        format_duration(started.elapsed()),
        bench.out_dir_name()
    );
    crate::page::check_measured(bench.command, &bench.figures(&measured))
}

/// For `cargo xtask bench` (not with `--report-only`, which renders the last results kept in
/// `target/<command>/`): measures again and, on a full run, rewrites the board's page. A failure
/// (no QEMU, no thumb toolchain) is recorded for [`targets_block`] to show; it does not stop the
/// host benchmark.
pub fn refresh_for_bench(bench: &Bench, quick: bool) {
    let outcome = bench.measure().and_then(|measured| {
        if !quick {
            fs::write(
                workspace_root().join(bench.page),
                bench.render_page(&measured)?,
            )?;
        }
        Ok(())
    });
    let failure = bench.out_dir().join("failure.txt");
    match outcome {
        Ok(()) => {
            let _ = fs::remove_file(&failure);
        }
        Err(e) => {
            eprintln!(
                "bench: the figures on {} were not measured: {e}",
                bench.board.description
            );
            let _ = fs::create_dir_all(bench.out_dir());
            let _ = fs::write(&failure, e.to_string());
        }
    }
}

/// For `cargo xtask bench --report-only`: the board's page again from its last run's output.
pub fn rerender(bench: &Bench) -> Result {
    let measured = bench.load()?;
    fs::write(
        workspace_root().join(bench.page),
        bench.render_page(&measured)?,
    )?;
    Ok(())
}

/// The board's targets for `BENCHMARKS.md`, from the last run's raw output.
pub fn targets_block(bench: &Bench) -> Result<String> {
    match bench.load() {
        Ok(measured) => bench.targets(&measured),
        Err(e) => Ok(format!("Not measured: {e}\n")),
    }
}

impl Bench {
    fn out_dir_name(&self) -> String {
        format!("target/{}", self.command)
    }

    fn out_dir(&self) -> PathBuf {
        workspace_root().join(self.out_dir_name())
    }

    /// Builds and runs the firmware twice, saves its output and the run's facts, and parses
    /// and checks them.
    fn measure(&self) -> Result<Measured> {
        if let Emulator::QemuIcount = self.emulator {
            host_tools::timeout()?;
            host_tools::qemu()?;
        }
        let elf = firmware::build(self.board, Artifact::Bench)?;
        println!("==> running it {}, twice", self.emulator.how(self.board));
        let first = self.run_once(&elf)?;
        let second = self.run_once(&elf)?;
        let dir = self.out_dir();
        fs::create_dir_all(&dir)?;
        if first != second {
            fs::write(dir.join("output-1.txt"), &first)?;
            fs::write(dir.join("output-2.txt"), &second)?;
            return fail(format!(
                "two runs {} printed different output: the {} counts are not deterministic \
                 (see {}/output*.txt)",
                self.emulator.how(self.board),
                self.unit,
                self.out_dir_name()
            ));
        }
        fs::write(dir.join("output.txt"), &first)?;
        // A fresh output supersedes the failure an earlier run recorded (which `load` reports).
        let _ = fs::remove_file(dir.join("failure.txt"));
        let [emulator, runs] = self.emulator.facts();
        let facts = [
            ("date", now_utc()),
            ("commit", commit(&["snapmap-core", "firmware-demo"])),
            emulator,
            runs,
        ];
        let facts: String = facts.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
        fs::write(dir.join("run.tsv"), facts)?;
        let measured = self.load()?;
        measured.check(self)?;
        Ok(measured)
    }

    /// One run; the firmware's lines, which must end with `DONE`.
    fn run_once(&self, elf: &Path) -> Result<String> {
        let mut cmd = self.emulator.command(self.board, elf)?;
        println!("$ {}", display_command(&cmd));
        let output = cmd
            .stdout(Stdio::piped())
            .output()
            .map_err(|e| Failure(format!("could not start `{}`: {e}", display_command(&cmd))))?;
        let text = String::from_utf8_lossy(&output.stdout);
        if let Some(problem) = self.emulator.explain_exit(output.status.code()) {
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            return fail(format!(
                "{problem}; last lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(RUNNER_PREFIX) && !l.starts_with(RP2350_RUNNER_PREFIX))
            .collect();
        if lines.last() != Some(&"DONE") {
            return fail("the benchmark firmware stopped before `DONE`");
        }
        Ok(lines.iter().map(|l| format!("{l}\n")).collect())
    }

    /// The last run's results from `target/<command>/`.
    pub fn load(&self) -> Result<Measured> {
        let dir = self.out_dir();
        if let Ok(why) = fs::read_to_string(dir.join("failure.txt")) {
            return fail(why);
        }
        let text = fs::read_to_string(dir.join("output.txt")).map_err(|_| {
            Failure(format!(
                "no results in {}/output.txt: run `cargo xtask {}`",
                self.out_dir_name(),
                self.command
            ))
        })?;
        let mut m = Measured::parse(&text, self.per_tick)?;
        m.facts = fs::read_to_string(dir.join("run.tsv"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(m)
    }
}

/// `rp2040-emu <version>`, from Cargo.lock.
fn rp2040_emu_version() -> String {
    let lock = fs::read_to_string(workspace_root().join("Cargo.lock")).unwrap_or_default();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"rp2040-emu\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_owned());
    format!("rp2040-emu {}", version.as_deref().unwrap_or("?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        assert_eq!(parse(&[]), Ok(Options::default()));
        let no_page = Options {
            no_page: true,
            report_only: false,
        };
        assert_eq!(parse(&["--no-page".into()]), Ok(no_page));
        assert!(parse(&["--report-only".into()]).unwrap().report_only);
        assert!(parse(&["--quick".into()]).is_err());
    }

    #[test]
    fn each_board_has_its_own_page_and_folder() {
        assert_ne!(M33.page, RP2040.page);
        assert_ne!(RP2350.page, RP2040.page);
        assert_eq!(M33.out_dir_name(), "target/bench-m33");
        assert_eq!(RP2040.out_dir_name(), "target/bench-rp2040");
        assert_eq!(RP2350.out_dir_name(), "target/bench-rp2350");
    }

    /// Both boards' pages fill from a run's output with no placeholder left, and name no issue.
    #[test]
    fn the_pages_fill_from_the_output() {
        for bench in [&M33, &RP2040, &RP2350] {
            let mut m = Measured::parse(output::tests::SAMPLE, bench.per_tick).unwrap();
            m.facts.insert("commit".into(), "abc1234".into());
            let f = bench.figures(&m);
            assert!(f.contains_key(&format!("{}:get/floor", bench.unit)));
            assert_eq!(f["lat:mutex/flat-out/max"], 1762.0);
            assert_eq!(
                f["snapmap-bytes:u32->u32, N=128, G=4, R=2 (this benchmark)"],
                6336.0
            );
            let text = bench.render_page(&m).unwrap();
            assert!(text.contains("`abc1234`"), "{text}");
            assert!(text
                .contains("| u32->u32, N=128, G=4, R=2 (this benchmark) | 6336 | 2052 | 3.09× |"));
            assert!(
                text.contains("| end | map=snapmap publishes=6145"),
                "{text}"
            );
            assert!(
                !text.contains("{{") && !text.to_lowercase().contains("issue"),
                "{text}"
            );
        }
    }
}
