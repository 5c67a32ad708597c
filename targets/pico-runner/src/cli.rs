//! The runners' shared command line: `NAME [--cycles N] [--chunk N] [chip options] ELF`, the
//! log printed as it comes, and a last line
//! `NAME: <how it ended> after <cycles> cycles (<seconds> s at <MHz> MHz; core 0 <c0> cycles,
//! core 1 <c1><chip details>), <wall> s`.
//!
//! Exit status: 0 when the firmware stopped at its `BKPT` (success), 1 when a core faulted (a
//! panic included), 124 when the cycle budget ran out first (as coreutils' `timeout`), 2 when
//! the runner itself failed (a bad command line included).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::{run_to_end, Chip, Error, Firmware, Log, Outcome};

/// Cycles per chunk when none is given (1.6 ms of emulated time at 125 MHz): small enough for a
/// live log, large enough to cost nothing.
pub const DEFAULT_CHUNK: u64 = 200_000;

/// The options every runner takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The firmware.
    pub elf: PathBuf,
    /// `--cycles`: stop after this many cycles of the shared clock.
    pub budget: u64,
    /// `--chunk`: cycles per chunk, after each of which the log is read.
    pub chunk: u64,
}

impl Options {
    /// Parses `args` (without the program name). `extra` names the runner's own numeric options
    /// and where their values go. An empty error means `--help`.
    pub fn parse(
        args: &[String],
        default_budget: u64,
        extra: &mut [(&str, &mut u64)],
    ) -> Result<Self, String> {
        let (mut elf, mut budget, mut chunk) = (None, default_budget, DEFAULT_CHUNK);
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut number = |name: &str| -> Result<u64, String> {
                let value = it.next().ok_or(format!("`{name}` needs a number"))?;
                value
                    .replace('_', "")
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("`{name} {value}`: not a positive number"))
            };
            match arg.as_str() {
                "--cycles" => budget = number("--cycles")?,
                "--chunk" => chunk = number("--chunk")?,
                name if extra.iter().any(|(n, _)| *n == name) => {
                    let value = number(name)?;
                    for (n, slot) in extra.iter_mut() {
                        if *n == name {
                            **slot = value;
                        }
                    }
                }
                "-h" | "--help" => return Err(String::new()),
                other if other.starts_with('-') => return Err(format!("unknown option `{other}`")),
                path if elf.is_none() => elf = Some(PathBuf::from(path)),
                extra => return Err(format!("unexpected argument `{extra}`")),
            }
        }
        Ok(Self {
            elf: elf.ok_or("no ELF given")?,
            budget,
            chunk,
        })
    }
}

/// A runner's `main`: `parse` the arguments (on an error, print it and `usage` and exit 2),
/// then `run` (exit with its status, or print its error and exit 2).
pub fn main<O>(
    name: &str,
    usage: &str,
    parse: impl FnOnce(&[String]) -> Result<O, String>,
    run: impl FnOnce(O) -> Result<u8, Error>,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(options) => options,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{name}: {e}");
            }
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(2)
        }
    }
}

/// Decodes `firmware`'s log (saying so on stderr if it has no defmt table), builds its chip
/// with `new` and runs it to the end, printing each log line as it comes.
pub fn run<C: Chip>(
    name: &str,
    options: &Options,
    firmware: &Firmware,
    new: impl FnOnce(&Firmware) -> Result<C, Error>,
) -> Result<(C, Outcome), Error> {
    let mut log = Log::new(firmware)?;
    if log.is_none() {
        eprintln!("{name}: the ELF has no defmt table; its log is not decoded");
    }
    let mut chip = new(firmware)?;
    let outcome = run_to_end(
        &mut chip,
        log.as_mut(),
        options.budget,
        options.chunk,
        |line| println!("{line}"),
    )?;
    Ok((chip, outcome))
}

/// How the run ended, in words, and the exit status that says it.
pub fn verdict(outcome: &Outcome, budget: u64) -> (String, u8) {
    match outcome.halt {
        Some(halt) if halt.passed() => (halt.to_string(), 0),
        Some(halt) => (format!("{halt} (failure)"), 1),
        None => (
            format!("still running: the budget of {budget} cycles ran out"),
            124,
        ),
    }
}

/// Prints the last line (`details`: the chip's own, each after `; `) and returns the exit
/// status; `started`: when the runner started, for the wall time.
pub fn finish(
    name: &str,
    options: &Options,
    outcome: &Outcome,
    clock_hz: u64,
    details: &str,
    started: Instant,
) -> u8 {
    let (verdict, code) = verdict(outcome, options.budget);
    println!(
        "{name}: {verdict} after {} cycles ({:.3} s at {} MHz; core 0 {} cycles, core 1 {}{details}), {:.1} s",
        outcome.cycles,
        outcome.cycles as f64 / clock_hz as f64,
        clock_hz / 1_000_000,
        outcome.core_cycles[0],
        outcome.core_cycles[1],
        started.elapsed().as_secs_f64()
    );
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Halt;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_default_and_parse_numbers_with_underscores() {
        let mut quantum = 64;
        let options = Options::parse(
            &args("--cycles 1_000 fw.elf --quantum 8"),
            7,
            &mut [("--quantum", &mut quantum)],
        )
        .unwrap();
        assert_eq!(
            options,
            Options {
                elf: PathBuf::from("fw.elf"),
                budget: 1000,
                chunk: DEFAULT_CHUNK
            }
        );
        assert_eq!(quantum, 8);
        assert_eq!(Options::parse(&args("a"), 7, &mut []).unwrap().budget, 7);
    }

    #[test]
    fn bad_command_lines_are_errors() {
        let parse = |line: &str| Options::parse(&args(line), 7, &mut []).unwrap_err();
        assert_eq!(parse("--cycles 0 a"), "`--cycles 0`: not a positive number");
        assert_eq!(parse("a --chunk"), "`--chunk` needs a number");
        assert_eq!(parse("--quantum 8 a"), "unknown option `--quantum`");
        assert_eq!(parse("a b"), "unexpected argument `b`");
        assert_eq!(parse(""), "no ELF given");
        assert_eq!(parse("a --help"), "");
    }

    #[test]
    fn the_verdict_and_its_exit_status() {
        let outcome = |halt| Outcome {
            halt,
            cycles: 5,
            core_cycles: [5, 0],
        };
        let pass = Halt::Breakpoint { core: 0, pc: 0x100 };
        let fault = Halt::Fault { core: 1, pc: 0x200 };
        assert_eq!(
            verdict(&outcome(Some(pass)), 9),
            ("core 0 stopped at BKPT, pc=0x00000100".to_owned(), 0)
        );
        assert_eq!(
            verdict(&outcome(Some(fault)), 9),
            ("core 1 HardFault, pc=0x00000200 (failure)".to_owned(), 1)
        );
        assert_eq!(
            verdict(&outcome(None), 9),
            (
                "still running: the budget of 9 cycles ran out".to_owned(),
                124
            )
        );
    }
}
