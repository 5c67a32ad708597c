//! `cargo xtask test-targets`: snapmap-core's target-side tests (`firmware-demo/tests/on_target`)
//! on emulated ARM cores: the dual Cortex-M33 (real two-core races, hardware LDREX/STREX) and
//! the Cortex-M0 (ARMv6-M: the critical-section CAS path; reads must take none).

use std::io::{self, BufRead, BufReader};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use crate::boards::{self, Board, AN521, MICROBIT};
use crate::emulator;
use crate::firmware::{self, Artifact};
use crate::host_tools;
use crate::util::{display_command, Failure, Result};

pub const HELP: &str = "\
cargo xtask test-targets [--board mps2-an521|microbit]...

Builds snapmap-core's target-side tests (firmware-demo/tests/on_target, a harness=false runner
that prints each test and exits through semihosting: 0 pass, 1 on the first panic) and runs them
under qemu-system-arm (installed if missing), each run bounded by `timeout`:

  mps2-an521  two Cortex-M33 in parallel: both cores write and read the same maps (no lost
              update, batches atomic, try_ forms under contention) plus the single-core tests
  microbit    a Cortex-M0 (ARMv6-M, no CAS; -icount, deterministic): writers take the
              critical-section CAS, and a counting critical-section implementation shows that
              reads through a registered Reader take none, also from an interrupt handler

Default: both boards. Ends with `N passed, M failed`; exits 0 only if every test passed.
";

/// How long one board's test run may take (it takes about a second).
const LIMIT: Duration = Duration::from_secs(120);

/// The boards to test on.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub boards: Vec<&'static Board>,
}

/// Parses the arguments after `test-targets`.
pub fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let choices: &[&'static Board] = &[&AN521, &MICROBIT];
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
    board: &'static Board,
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
            Ok(result) => results.push(result),
            Err(e) => results.push(BoardResult {
                board,
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
            r.board.name,
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

fn test_on(board: &'static Board) -> Result<BoardResult> {
    host_tools::timeout()?;
    host_tools::qemu()?;
    let elf = firmware::build(board, Artifact::TargetTests)?;
    println!("==> running them on {}", board.description);
    let mut qemu = emulator::qemu_command(board, &elf, LIMIT)?;
    println!("$ {}", display_command(&qemu));
    let mut child = qemu
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("could not start QEMU: {e}")))?;
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
    let mut problem = emulator::explain_exit(status.code(), LIMIT);
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
        board,
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
        assert_eq!(parse(&[]).unwrap().boards, [&AN521, &MICROBIT]);
        assert_eq!(parse(&args("--board m0")).unwrap().boards, [&MICROBIT]);
        assert_eq!(
            parse(&args("--board=an521 --board mps2-an521"))
                .unwrap()
                .boards,
            [&AN521]
        );
        assert!(parse(&args("--board rp2040")).is_err());
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
