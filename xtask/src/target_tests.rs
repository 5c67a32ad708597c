//! `cargo xtask test-targets`: snapmap-core's target-side tests (`firmware-demo/tests/on_target`)
//! on emulated ARM cores: the dual Cortex-M33 (real two-core races, hardware LDREX/STREX), the
//! Cortex-M0 (ARMv6-M: the critical-section CAS path; reads must take none), the RP2040's
//! two Cortex-M0+ (the critical-section CAS racing between two cores) and the RP2350's two
//! Cortex-M33 (native CAS racing between two cores, at several interleaving quanta).

use std::io::{self, BufRead, BufReader};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use crate::boards::{self, Board, AN521, MICROBIT, RP2040, RP2350};
use crate::emulator;
use crate::firmware::{self, Artifact};
use crate::host_tools;
use crate::util::{display_command, Failure, Result};

pub const HELP: &str = "\
cargo xtask test-targets [--board mps2-an521|microbit|rp2040|rp2350]...

Builds snapmap-core's target-side tests (firmware-demo/tests/on_target, a harness=false runner
that prints each test and exits through semihosting: 0 pass, 1 on the first panic) and runs them
under qemu-system-arm (installed if missing), each run bounded by `timeout`:

  mps2-an521  two Cortex-M33 in parallel: both cores write and read the same maps (no lost
              update, batches atomic, try_ forms under contention) plus the single-core tests
  microbit    a Cortex-M0 (ARMv6-M, no CAS; -icount, deterministic): writers take the
              critical-section CAS, and a counting critical-section implementation shows that
              reads through a registered Reader take none, also from an interrupt handler
  rp2040      the emulated RP2040 (targets/rp2040/runner: two Cortex-M0+, lockstep, so the
              tests add pseudo-random delays): the M0 tests, plus the two-core ones with both
              cores' writers racing through the critical-section CAS; a pass is the run
              stopping at its closing BKPT, a failed assertion or a fault ends at a HardFault
  rp2350      the emulated RP2350 (targets/rp2350/runner: two Cortex-M33, native LDREX/STREX;
              the emulator runs each core a quantum of cycles in turn): the same tests, run
              at quanta of 1 (the cores alternate instruction by instruction), 7 and 64
              cycles, with the tests' own pseudo-random delays on top; a pass is the run
              stopping at its closing BKPT

Default: all four. Ends with `N passed, M failed`; exits 0 only if every test passed.
";

/// How long one board's test run may take under QEMU (it takes about a second).
const LIMIT: Duration = Duration::from_secs(120);
/// How many cycles the emulated RP2040 may take: 4 s at 125 MHz.
const RP2040_BUDGET_CYCLES: u64 = 4 * 125_000_000;

/// How many cycles the emulated RP2350 may take per run: 4 s at 150 MHz (a run takes 0.5 s).
const RP2350_BUDGET_CYCLES: u64 = 4 * 150_000_000;
/// The emulated RP2350's quanta, one run each: how the two cores' instructions interleave.
const RP2350_QUANTA: [u32; 3] = [1, 7, 64];

/// The boards to test on.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub boards: Vec<&'static Board>,
}

/// Parses the arguments after `test-targets`.
pub fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let choices: &[&'static Board] = &[&AN521, &MICROBIT, &RP2040, &RP2350];
    let mut selected: Vec<&'static Board> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let name = match arg.as_str() {
            "--board" => it.next().ok_or("`--board` needs a board name")?.as_str(),
            other => match other.strip_prefix("--board=") {
                Some(name) => name,
                None => return Err(format!("unexpected argument `{other}`")),
            },
        };
        let board = Board::find(name, choices).ok_or_else(|| {
            format!(
                "unknown board `{name}` (the target tests run on {})",
                boards::names(choices)
            )
        })?;
        if !selected.contains(&board) {
            selected.push(board);
        }
    }
    if selected.is_empty() {
        selected = choices.to_vec();
    }
    Ok(Options { boards: selected })
}

/// One board's result.
struct BoardResult {
    /// The board's name, and the run's variant if it has several (`rp2350 q=7`).
    label: String,
    passed: usize,
    failed: usize,
    /// Why the run failed beyond (or instead of) failed tests.
    problem: Option<String>,
}

/// Runs the command; its own exit status (the closing count stays the last line).
pub fn run(options: &Options) -> ExitCode {
    let mut results = Vec::new();
    for &board in &options.boards {
        match test_on(board) {
            Ok(runs) => results.extend(runs),
            Err(e) => results.push(BoardResult {
                label: board.name.to_owned(),
                passed: 0,
                failed: 0,
                problem: Some(e.to_string()),
            }),
        }
    }
    println!("==> target tests");
    let (mut passed, mut failed) = (0, 0);
    for r in &results {
        println!(
            "    {:<12} {:>3} passed, {} failed{}",
            r.label,
            r.passed,
            r.failed,
            r.problem
                .as_deref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default()
        );
        passed += r.passed;
        // A run that broke down counts as (at least) one failure.
        failed += r.failed.max(usize::from(r.problem.is_some()));
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Builds the tests for `board` and runs them: once, or on the RP2350 once per quantum.
fn test_on(board: &'static Board) -> Result<Vec<BoardResult>> {
    if board != &RP2350 {
        return Ok(vec![test_once(board)?]);
    }
    let elf = firmware::build(board, Artifact::TargetTests)?;
    let mut runs = Vec::new();
    for quantum in RP2350_QUANTA {
        println!(
            "==> running them on the emulated RP2350 (rp2350-emu, 2 x Cortex-M33), quantum {quantum}"
        );
        let command = emulator::rp2350_command(&elf, RP2350_BUDGET_CYCLES, quantum);
        let mut result = run_tests(command, emulator::explain_rp2350_exit)?;
        result.label = format!("{} q={quantum}", board.name);
        runs.push(result);
    }
    Ok(runs)
}

fn test_once(board: &'static Board) -> Result<BoardResult> {
    let emulated_rp2040 = board == &RP2040;
    if !emulated_rp2040 {
        host_tools::timeout()?;
        host_tools::qemu()?;
    }
    let elf = firmware::build(board, Artifact::TargetTests)?;
    let command = if emulated_rp2040 {
        println!("==> running them on the emulated RP2040 (rp2040-emu, 2 x Cortex-M0+)");
        emulator::rp2040_command(&elf, RP2040_BUDGET_CYCLES)
    } else {
        println!("==> running them on {}", board.description);
        emulator::qemu_command(board, &elf, LIMIT)?
    };
    // The run's own end decides first: QEMU's semihosting exit status, or where the RP2040
    // stopped (its closing BKPT, or a fault); the printed lines are only counted.
    let explain: Box<dyn Fn(Option<i32>) -> Option<String>> = if emulated_rp2040 {
        Box::new(emulator::explain_rp2040_exit)
    } else {
        Box::new(|code| emulator::explain_exit(code, LIMIT))
    };
    let mut result = run_tests(command, explain)?;
    result.label = board.name.to_owned();
    Ok(result)
}

/// Runs one test binary under `command`, echoing its lines, and counts what it printed;
/// `explain` turns the command's exit status into a problem (or `None` for success).
fn run_tests(
    mut command: std::process::Command,
    explain: impl Fn(Option<i32>) -> Option<String>,
) -> Result<BoardResult> {
    println!("$ {}", display_command(&command));
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("could not start the emulator: {e}")))?;
    let lines: Vec<String> = match child.stdout.take() {
        Some(out) => BufReader::new(out)
            .lines()
            .map_while(io::Result::ok)
            .inspect(|line| println!("{line}"))
            .collect(),
        None => Vec::new(),
    };
    let status = child.wait()?;
    let counted = Counts::from_output(&lines);
    let mut problem = explain(status.code());
    match counted.closing {
        None if problem.is_none() => {
            problem = Some("the runner printed no closing `N passed, M failed` line".to_owned())
        }
        Some((passed, _)) if passed != counted.ok_lines => {
            problem = Some(format!(
                "the closing line says {passed} passed, but {} tests printed ok",
                counted.ok_lines
            ))
        }
        _ => {}
    }
    let failed = counted.closing.map_or(0, |(_, failed)| failed);
    Ok(BoardResult {
        label: String::new(),
        passed: counted.ok_lines,
        failed,
        problem,
    })
}

/// What a run printed.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    /// `test NAME ... ok` lines.
    ok_lines: usize,
    /// The closing `N passed, M failed`, if printed.
    closing: Option<(usize, usize)>,
}

impl Counts {
    fn from_output(lines: &[String]) -> Self {
        let ok_lines = lines
            .iter()
            .filter(|l| l.starts_with("test ") && l.ends_with(" ... ok"))
            .count();
        let closing = lines.iter().rev().find_map(|l| parse_closing(l));
        Counts { ok_lines, closing }
    }
}

/// `N passed, M failed` (nothing else on the line).
fn parse_closing(line: &str) -> Option<(usize, usize)> {
    let (passed, failed) = line.trim().split_once(" passed, ")?;
    let failed = failed.strip_suffix(" failed")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options() {
        assert_eq!(
            parse(&[]).unwrap().boards,
            [&AN521, &MICROBIT, &RP2040, &RP2350]
        );
        assert_eq!(parse(&args("--board pico2")).unwrap().boards, [&RP2350]);
        assert_eq!(parse(&args("--board m0")).unwrap().boards, [&MICROBIT]);
        assert_eq!(
            parse(&args("--board=an521 --board mps2-an521"))
                .unwrap()
                .boards,
            [&AN521]
        );
        assert_eq!(parse(&args("--board pico")).unwrap().boards, [&RP2040]);
        assert!(parse(&args("--board")).is_err());
        assert!(parse(&args("-v")).is_err());
    }

    #[test]
    fn counts_ok_lines_and_the_closing_line() {
        let output: Vec<String> = [
            "snapmap-core target tests on QEMU",
            "test a ...",
            "test a ... ok",
            "    a note",
            "test b ... ok",
            "2 passed, 0 failed",
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        assert_eq!(
            Counts::from_output(&output),
            Counts {
                ok_lines: 2,
                closing: Some((2, 0))
            }
        );
        assert_eq!(parse_closing("1 passed, 1 failed"), Some((1, 1)));
        assert_eq!(parse_closing("passed, failed"), None);
        assert_eq!(parse_closing("x passed, 0 failed"), None);
    }
}
