//! `cargo xtask bench-m33`: snapmap's instruction counts on the emulated dual Cortex-M33.
//!
//! Builds `firmware-demo/src/bin/bench` for QEMU `mps2-an521`, runs it twice under
//! `-icount shift=0,sleep=off` (the two runs must print the same bytes), checks that its figures
//! are plausible, and renders them: printed as a table, written to `BENCHMARKS-m33.md`, and kept
//! raw in `target/bench-m33/`, from where `cargo xtask bench` puts the same section into
//! `BENCHMARKS.md` ([`refresh_for_bench`], [`page_section`], [`target_row`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::boards::AN521;
use crate::emulator;
use crate::firmware::{self, Artifact};
use crate::host_tools;
use crate::util::{display_command, fail, format_duration, workspace_root, Failure, Result};

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

/// Where the raw output and the run's facts go, relative to the workspace root.
const OUT_DIR: &str = "target/bench-m33";
/// The committed page, relative to the workspace root.
const PAGE: &str = "BENCHMARKS-m33.md";
/// How long one QEMU run may take (it takes about a second).
const LIMIT: Duration = Duration::from_secs(120);
/// Appended to the board's QEMU arguments: one instruction per virtual nanosecond, CPUs
/// round-robin on one thread. `sleep=off`: virtual time never waits for real time (with the
/// default `sleep=on`, 3 to 6 runs in 30 came out different where core 1 waits for core 0's
/// lock; with `sleep=off`, 110 runs out of 110 were byte-identical, also four at a time).
const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];
/// Instructions per SysTick tick under `-icount shift=0` (20 MHz processor clock).
const INSTRUCTIONS_PER_TICK: f64 = 50.0;

/// Parsed `cargo xtask bench-m33` options.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub no_page: bool,
}

pub fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let mut options = Options::default();
    for arg in args {
        match arg.as_str() {
            "--no-page" => options.no_page = true,
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(options)
}

/// `cargo xtask bench-m33`.
pub fn run(options: &Options) -> Result {
    let started = Instant::now();
    let measured = measure()?;
    println!();
    print!("{}", render(&measured, 2));
    if !options.no_page {
        let page = workspace_root().join(PAGE);
        fs::write(&page, render_page(&measured))?;
        println!("bench-m33: wrote {}", page.display());
    }
    println!(
        "bench-m33: done in {} (raw output in {OUT_DIR}/)",
        format_duration(started.elapsed())
    );
    Ok(())
}

/// For `cargo xtask bench` (not with `--report-only`, which renders the last results kept in
/// `target/bench-m33/`): measures again and, on a full run, rewrites `BENCHMARKS-m33.md`. A
/// failure (no QEMU, no thumb toolchain) is reported and leaves the section saying so; it does
/// not stop the host benchmark.
pub fn refresh_for_bench(quick: bool) {
    let outcome = measure().and_then(|measured| {
        if !quick {
            fs::write(workspace_root().join(PAGE), render_page(&measured))?;
        }
        Ok(())
    });
    let failure = out_dir().join("failure.txt");
    match outcome {
        Ok(()) => {
            let _ = fs::remove_file(&failure);
        }
        Err(e) => {
            eprintln!("bench: the emulated Cortex-M33 figures were not measured: {e}");
            let _ = fs::create_dir_all(out_dir());
            let _ = fs::write(&failure, e.to_string());
        }
    }
}

/// The `## Emulated Cortex-M33` section of `BENCHMARKS.md`, from the last run's raw output.
pub fn page_section() -> String {
    match load() {
        Ok(measured) => {
            let mut s = String::from("## Emulated Cortex-M33\n\n");
            s.push_str(&format!(
                "Generated by `cargo xtask bench-m33` (also run by `cargo xtask bench`); the same \
                 figures as [`{PAGE}`]({PAGE}).\n\n"
            ));
            s.push_str(&render(&measured, 3));
            s
        }
        Err(e) => format!("## Emulated Cortex-M33\n\nNot measured: {e}\n\n"),
    }
}

/// The issue-4 target row for `BENCHMARKS.md`: (this run, reached?, why).
pub fn target_row() -> (String, Option<bool>, String) {
    match load() {
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

fn out_dir() -> PathBuf {
    workspace_root().join(OUT_DIR)
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

/// Builds and runs the firmware twice, saves its output and the run's facts, and parses them.
fn measure() -> Result<Measured> {
    host_tools::timeout()?;
    host_tools::qemu()?;
    let elf = firmware::build(&AN521, Artifact::Bench)?;
    println!(
        "==> running it on {} with -icount shift=0,sleep=off, twice",
        AN521.description
    );
    let first = run_once(&elf)?;
    let second = run_once(&elf)?;
    let dir = out_dir();
    fs::create_dir_all(&dir)?;
    if first != second {
        fs::write(dir.join("output-1.txt"), &first)?;
        fs::write(dir.join("output-2.txt"), &second)?;
        return fail(
            "two runs under -icount printed different output: the instruction counts are not \
             deterministic (see target/bench-m33/output*.txt)",
        );
    }
    fs::write(dir.join("output.txt"), &first)?;
    // A fresh output supersedes the failure an earlier run recorded (which `load` reports).
    let _ = fs::remove_file(dir.join("failure.txt"));
    let facts = [
        ("date", command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        ("commit", commit()),
        ("qemu", command_line("qemu-system-arm", &["--version"])),
        ("runs", "2, byte-identical".to_owned()),
    ];
    let facts: String = facts.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
    fs::write(dir.join("run.tsv"), facts)?;
    let measured = load()?;
    measured.check()?;
    Ok(measured)
}

/// One QEMU run; its stdout, which must end with `DONE`.
fn run_once(elf: &std::path::Path) -> Result<String> {
    let mut qemu = emulator::qemu_command(&AN521, elf, LIMIT)?;
    qemu.args(ICOUNT);
    println!("$ {}", display_command(&qemu));
    let output = qemu
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| Failure(format!("could not start QEMU: {e}")))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if let Some(problem) = emulator::explain_exit(output.status.code(), LIMIT) {
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        return fail(format!(
            "{problem}; last lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    if text.lines().last() != Some("DONE") {
        return fail("the benchmark firmware stopped before `DONE`");
    }
    Ok(text)
}

pub(crate) fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".into())
}

/// The short commit, with `+dirty` if the firmware or the core have uncommitted changes.
pub(crate) fn commit() -> String {
    let root = workspace_root();
    let hash = command_line(
        "git",
        &[
            "-C",
            &root.to_string_lossy(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    let dirty = Command::new("git")
        .current_dir(&root)
        .args([
            "status",
            "--porcelain",
            "--",
            "snapmap-core",
            "firmware-demo",
        ])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{hash}+dirty")
    } else {
        hash
    }
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// `OP` line: one single-core figure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Op {
    /// Ticks of the loop of operations, per repeat.
    ticks: Vec<u64>,
    /// Ticks of the empty loop, per repeat.
    empty: Vec<u64>,
    iters: u64,
    pub(crate) critical_sections: u64,
}

impl Op {
    /// Instructions per operation: the median repeat's net ticks × 50 / iterations.
    fn instructions(&self) -> f64 {
        self.per_op(INSTRUCTIONS_PER_TICK)
    }

    /// Units (instructions, cycles) per operation: the median repeat's net ticks × `per_tick`
    /// / iterations.
    pub(crate) fn per_op(&self, per_tick: f64) -> f64 {
        let mut net: Vec<u64> = self
            .ticks
            .iter()
            .zip(&self.empty)
            .map(|(t, e)| t.saturating_sub(*e))
            .collect();
        net.sort_unstable();
        net[net.len() / 2] as f64 * per_tick / self.iters as f64
    }

    /// How far apart the repeats are, in ticks (loop and empty loop alike).
    pub(crate) fn spread(&self) -> u64 {
        let spread = |v: &[u64]| v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0);
        spread(&self.ticks).max(spread(&self.empty))
    }
}

/// `LAT` line: one two-core configuration's read latencies, in instructions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lat {
    pub(crate) map: String,
    pub(crate) writer: String,
    fields: BTreeMap<String, u64>,
    /// `lo:count` bins of the `HIST` line.
    pub(crate) hist: String,
    pub(crate) hist_width: u64,
}

impl Lat {
    pub(crate) fn get(&self, key: &str) -> u64 {
        self.fields.get(key).copied().unwrap_or(0)
    }
}

/// `SIZE` line.
#[derive(Debug, Clone, PartialEq)]
struct Size {
    shape: String,
    fields: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub(crate) ops: BTreeMap<String, Op>,
    pub(crate) lats: Vec<Lat>,
    sizes: Vec<Size>,
    /// `STATS` lines, as printed.
    pub(crate) stats: Vec<String>,
    /// `run.tsv`: date, commit, qemu, runs.
    pub(crate) facts: BTreeMap<String, String>,
}

/// `key=value` words of a line (words without `=` are skipped).
fn fields(words: &str) -> BTreeMap<String, String> {
    words
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn numbers(list: &str) -> Vec<u64> {
    list.split(',').filter_map(|n| n.parse().ok()).collect()
}

/// Parses the firmware's output.
pub(crate) fn parse_output(text: &str) -> Result<Measured> {
    let mut m = Measured::default();
    for line in text.lines() {
        let Some((keyword, rest)) = line.split_once(' ') else {
            continue;
        };
        match keyword {
            "OP" => {
                let f = fields(rest);
                let num = |k: &str| f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
                let op = Op {
                    ticks: numbers(f.get("ticks").map_or("", |s| s)),
                    empty: numbers(f.get("empty").map_or("", |s| s)),
                    iters: num("iters"),
                    critical_sections: num("cs"),
                };
                if op.ticks.is_empty() || op.ticks.len() != op.empty.len() || op.iters == 0 {
                    return fail(format!("malformed line: {line}"));
                }
                m.ops.insert(f.get("id").cloned().unwrap_or_default(), op);
            }
            "LAT" => {
                let f = fields(rest);
                m.lats.push(Lat {
                    map: f.get("map").cloned().unwrap_or_default(),
                    writer: f.get("writer").cloned().unwrap_or_default(),
                    fields: f
                        .iter()
                        .filter_map(|(k, v)| v.parse().ok().map(|n| (k.clone(), n)))
                        .collect(),
                    hist: String::new(),
                    hist_width: 0,
                });
            }
            "HIST" => {
                let f = fields(rest);
                let bins: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|w| !w.contains('=') && w.contains(':'))
                    .collect();
                if let Some(lat) =
                    m.lats.iter_mut().rev().find(|l| {
                        Some(&l.map) == f.get("map") && Some(&l.writer) == f.get("writer")
                    })
                {
                    lat.hist = bins.join(" ");
                    lat.hist_width = f.get("width").and_then(|w| w.parse().ok()).unwrap_or(0);
                }
            }
            "SIZE" => {
                let (words, shape) = rest.split_once("shape=").unwrap_or((rest, ""));
                m.sizes.push(Size {
                    shape: shape.to_owned(),
                    fields: fields(words)
                        .into_iter()
                        .filter_map(|(k, v)| v.parse().ok().map(|n| (k, n)))
                        .collect(),
                });
            }
            "STATS" => m.stats.push(rest.to_owned()),
            "FAILED" => return fail(format!("the firmware failed: {line}")),
            _ => {}
        }
    }
    Ok(m)
}

/// The last run's results from `target/bench-m33/`.
fn load() -> Result<Measured> {
    let dir = out_dir();
    if let Ok(why) = fs::read_to_string(dir.join("failure.txt")) {
        return fail(why);
    }
    let text = fs::read_to_string(dir.join("output.txt")).map_err(|_| {
        Failure(format!(
            "no results in {OUT_DIR}/output.txt: run `cargo xtask bench-m33`"
        ))
    })?;
    let mut m = parse_output(&text)?;
    m.facts = fs::read_to_string(dir.join("run.tsv"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok(m)
}

/// Single-core figures the page needs (the firmware's `OP` ids).
const OPS: [&str; 15] = [
    "calibration-10-nops",
    "get/floor",
    "get/floor-full",
    "get/mutex",
    "get/snapmap-reader",
    "get/snapmap-held",
    "get/snapmap-oneoff",
    "get/snapmap-reader-full",
    "insert/floor",
    "insert/mutex",
    "insert/snapmap",
    "batch8/floor",
    "batch8/mutex",
    "batch8/snapmap",
    "update-noop/snapmap",
];

impl Measured {
    fn instr(&self, id: &str) -> Option<f64> {
        self.ops.get(id).map(Op::instructions)
    }

    pub(crate) fn lat(&self, map: &str, writer: &str) -> Option<&Lat> {
        self.lats
            .iter()
            .find(|l| l.map == map && l.writer == writer)
    }

    /// Everything the page reports is there and believable.
    fn check(&self) -> Result {
        let mut problems = Vec::new();
        for id in OPS {
            if !self.ops.contains_key(id) {
                problems.push(format!("no figure for `{id}`"));
            }
        }
        // Ten `nop`s must measure ten instructions: the tick is 50 instructions and the empty
        // loop is subtracted right.
        if let Some(nops) = self.instr("calibration-10-nops") {
            if (nops - 10.0).abs() > 0.1 {
                problems.push(format!(
                    "ten nops measure {nops:.3} instructions, not 10: the 50 instructions per \
                     tick or the empty-loop subtraction is off"
                ));
            }
        }
        for (id, op) in &self.ops {
            if op.spread() > 1 {
                problems.push(format!(
                    "`{id}`: repeats differ by {} ticks (more than the one tick of phase)",
                    op.spread()
                ));
            }
        }
        for (map, expected_cs) in [("mutex", 1), ("snapmap-reader", 0)] {
            let id = format!("get/{map}");
            if let Some(op) = self.ops.get(&id) {
                if op.critical_sections != expected_cs {
                    problems.push(format!(
                        "`{id}` took {} critical sections per get, expected {expected_cs}",
                        op.critical_sections
                    ));
                }
            }
        }
        for map in ["snapmap-reader", "mutex"] {
            for writer in ["none", "flat-out", "paced"] {
                match self.lat(map, writer) {
                    None => problems.push(format!("no latencies for {map} / {writer}")),
                    Some(l) if l.get("n") == 0 || l.get("max") < l.get("p50") => {
                        problems.push(format!("implausible latencies for {map} / {writer}"))
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(l) = self.lat("snapmap-reader", "flat-out") {
            if l.get("waited") != 0 {
                problems.push("a snapmap read waited for the writer".into());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            fail(format!(
                "implausible benchmark output:\n  {}",
                problems.join("\n  ")
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

pub(crate) fn f1(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

pub(crate) fn times(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}×"))
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
        let reader_get = m.instr("get/snapmap-reader");
        let floor_get = m.instr("get/floor");
        // (max, median, median with no writer)
        let worst = |map: &str| {
            let under = m.lat(map, "flat-out")?;
            let alone = m.lat(map, "none")?;
            Some((under.get("max"), under.get("p50"), alone.get("p50")))
        };
        Self {
            reader_get,
            held_get: m.instr("get/snapmap-held"),
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
             linear probing) looks up in a quarter of heapless's; a `Reader::get` adds a load of \
             `current` (its pin stands while the map is unchanged) and the clone-out. A snapmap \
             read never waits for the writer: its spread is a re-pin after a publication and the \
             keys' probe lengths, which Robin Hood insertion keeps within 3 slots of home; a \
             mutex read waits for the rest of the writer's batch.",
            f1(self.held_get)
        )
    }
}

pub(crate) fn verdict(reached: Option<bool>) -> &'static str {
    match reached {
        Some(true) => "**reached**",
        Some(false) => "**not reached**",
        None => "n/a",
    }
}

/// The standalone page.
fn render_page(m: &Measured) -> String {
    let mut p = String::from("# snapmap on an emulated dual Cortex-M33\n\n");
    p.push_str(
        "Generated by `cargo xtask bench-m33` (and by `cargo xtask bench`, which puts the same \
         section into [BENCHMARKS.md](BENCHMARKS.md)); do not edit by hand. Raw output: \
         `target/bench-m33/output.txt`.\n\n",
    );
    p.push_str(&render(m, 2));
    p
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
        fact("qemu"),
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
        m.instr("calibration-10-nops")
            .map_or("–".into(), |v| format!("{v:.2}")),
    );

    let _ = writeln!(w, "{h} Instructions per operation, one core\n");
    let _ = writeln!(
        w,
        "| operation | floor: `FnvIndexMap` (unsync.) | `Mutex<RefCell<FnvIndexMap>>` | \
         snapmap | snapmap ÷ floor | snapmap ÷ mutex |\n|---|---:|---:|---:|---:|---:|"
    );
    let row = |w: &mut String, what: &str, floor: &str, mutex: &str, snap: &str| {
        let (f, mx, s) = (m.instr(floor), m.instr(mutex), m.instr(snap));
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
        "get (hit): `Reader::get` (map unchanged: its pin stands; look up, clone out)",
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
        "insert (one key; snapmap: catch-up copy of the slots written since + publish)",
        "insert/floor",
        "insert/mutex",
        "insert/snapmap",
    );
    row(
        &mut w,
        "snapmap `update` that changes nothing (pin, claim a slot, catch it up, free it)",
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
    let per = |batch: &str, one: &str| ratio(m.instr(batch), m.instr(one));
    let _ = writeln!(
        w,
        "| batch of 8 ÷ one insert | {} | {} | {} | | |\n",
        times(per("batch8/floor", "insert/floor")),
        times(per("batch8/mutex", "insert/mutex")),
        times(per("batch8/snapmap", "insert/snapmap")),
    );
    let cs = |id: &str| m.ops.get(id).map_or(0, |o| o.critical_sections);
    let _ = writeln!(
        w,
        "Critical sections per get: mutex map {}, snapmap `Reader::get` {} (counted by the \
         board's counting critical-section implementation).\n",
        cs("get/mutex"),
        cs("get/snapmap-reader")
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
    let _ = writeln!(
        w,
        "\n<details><summary>Histograms (instructions: count, bins of equal width)</summary>\n"
    );
    let _ = writeln!(w, "```");
    for l in &m.lats {
        let _ = writeln!(
            w,
            "{:<15} {:<9} width {:>3}: {}",
            l.map, l.writer, l.hist_width, l.hist
        );
    }
    let _ = writeln!(w, "```\n\n</details>\n");
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
        "`size_of` on the target (32-bit words; reader slots 32-byte aligned), against `G` \
         plain heapless tables of the same capacity.\n\n| shape | `SnapMap` | one \
         `FnvIndexMap` | G × `FnvIndexMap` | `SnapMap` ÷ G tables |\n|---|---:|---:|---:|---:|"
    );
    for s in &m.sizes {
        let get = |k: &str| s.fields.get(k).copied();
        if let (Some(snap), Some(table), Some(g)) = (get("snapmap"), get("table"), get("g")) {
            let tables = table * g;
            let _ = writeln!(
                w,
                "| {} | {snap} | {table} | {tables} | {} |",
                s.shape,
                times(ratio(Some(snap as f64), Some(tables as f64)))
            );
        } else if let Some(mutex) = get("mutex") {
            let _ = writeln!(
                w,
                "| `Mutex<RefCell<FnvIndexMap>>`, {} | {mutex} | | | |",
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
    use super::*;

    const SAMPLE: &str = "\
bench-m33 on QEMU mps2-an521 (2 x Cortex-M33): 50 instructions per SysTick tick
SIZE snapmap=6336 table=2052 g=4 shape=u32->u32, N=128, G=4, R=2 (this benchmark)
SIZE mutex=2056 shape=u32->u32, N=128 (this benchmark)
OP id=calibration-10-nops instr=10.009 cs=0 iters=1024 ticks=328,327,328 empty=123,123,123
OP id=get/floor instr=147.998 cs=0 iters=1024 ticks=3195,3195,3194 empty=164,164,164
LAT map=mutex writer=flat-out n=16 min=204 p50=954 p90=1440 p99=1624 p999=1716 max=1762 mean=929 batches=3 waited=2
HIST map=mutex writer=flat-out width=98 204:258 302:183
STATS at=end map=snapmap publishes=6145 cas_retries=0 slot_waits=0
DONE
";

    #[test]
    fn parses_the_firmware_output() {
        let m = parse_output(SAMPLE).unwrap();
        let nops = m.instr("calibration-10-nops").unwrap();
        assert!((nops - 10.009).abs() < 0.01, "{nops}");
        // The median repeat: 3031 net ticks.
        let get = m.instr("get/floor").unwrap();
        assert!((get - 3031.0 * 50.0 / 1024.0).abs() < 1e-9, "{get}");
        assert_eq!(m.ops["get/floor"].spread(), 1);
        let lat = m.lat("mutex", "flat-out").unwrap();
        assert_eq!((lat.get("p50"), lat.get("max")), (954, 1762));
        assert_eq!(lat.hist, "204:258 302:183");
        assert_eq!(lat.hist_width, 98);
        assert_eq!(m.sizes.len(), 2);
        assert_eq!(
            m.sizes[0].shape,
            "u32->u32, N=128, G=4, R=2 (this benchmark)"
        );
        assert_eq!(m.sizes[0].fields["snapmap"], 6336);
        assert_eq!(m.stats.len(), 1);
        // Most figures are missing from the sample: the check says so.
        assert!(m.check().is_err());
    }

    #[test]
    fn renders_what_is_there_and_dashes_the_rest() {
        let m = parse_output(SAMPLE).unwrap();
        let page = render_page(&m);
        assert!(page.starts_with("# snapmap on an emulated dual Cortex-M33"));
        assert!(page.contains("## Instructions per operation, one core"));
        assert!(page.contains("| `Mutex<RefCell<FnvIndexMap>>` | batches flat out | 954 |"));
        assert!(
            page.contains("| u32->u32, N=128, G=4, R=2 (this benchmark) | 6336 | 2052 | 8208 |")
        );
        // No snapmap figure in the sample: its targets are not judged.
        let t = Targets::of(&m);
        assert_eq!(t.reached(), None);
        assert!(render(&m, 3).contains("### Issue 4 targets"));
    }

    #[test]
    fn a_failed_firmware_run_is_an_error() {
        assert!(parse_output("FAILED on core 1: boom\n").is_err());
    }

    #[test]
    fn options() {
        assert_eq!(parse(&[]), Ok(Options::default()));
        assert_eq!(parse(&["--no-page".into()]), Ok(Options { no_page: true }));
        assert!(parse(&["--quick".into()]).is_err());
    }
}
