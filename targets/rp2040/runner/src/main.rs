//! `rp2040-runner [--cycles N] [--chunk N] ELF`: runs an RP2040 firmware on the emulated
//! dual Cortex-M0+ (see the library docs), printing its defmt log as it comes.
//!
//! Last line: `rp2040-runner: <how it ended> after <cycles> (<seconds> of emulated time at
//! 125 MHz; core 0 <c0> cycles, core 1 <c1>), <wall> s`. Exit status: 0 when the firmware
//! stopped at its `BKPT` (success), 1 when a core faulted (a panic included), 124 when the
//! cycle budget ran out first (as coreutils' `timeout`), 2 when the runner itself failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use rp2040_runner::{run_to_end, Firmware, Log, Rp2040, CLOCK_HZ};

const USAGE: &str = "usage: rp2040-runner [--cycles N] [--chunk N] ELF
  --cycles N  the budget: stop after N cycles of the shared clock (default 1000000000, 8 s
              of emulated time at 125 MHz); exit 124 if the firmware has not stopped by then
  --chunk N   cycles per chunk, after each of which the log is read (default 200000)";

/// The budget when none is given: 8 s of emulated time.
const DEFAULT_BUDGET: u64 = 8 * CLOCK_HZ;
/// 1.6 ms of emulated time: small enough for a live log, large enough to cost nothing.
const DEFAULT_CHUNK: u64 = 200_000;

struct Options {
    elf: PathBuf,
    budget: u64,
    chunk: u64,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let (mut elf, mut budget, mut chunk) = (None, DEFAULT_BUDGET, DEFAULT_CHUNK);
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
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with('-') => return Err(format!("unknown option `{other}`")),
            path if elf.is_none() => elf = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument `{extra}`")),
        }
    }
    Ok(Options {
        elf: elf.ok_or("no ELF given")?,
        budget,
        chunk,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(options) => options,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("rp2040-runner: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rp2040-runner: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(options: &Options) -> Result<u8, rp2040_runner::Error> {
    let started = Instant::now();
    let firmware = Firmware::load(&options.elf)?;
    let mut log = Log::new(&firmware)?;
    if log.is_none() {
        eprintln!("rp2040-runner: the ELF has no defmt table; its log is not decoded");
    }
    let mut rp2040 = Rp2040::new(&firmware)?;
    let outcome = run_to_end(
        &mut rp2040,
        log.as_mut(),
        options.budget,
        options.chunk,
        |line| println!("{line}"),
    )?;
    let (verdict, code) = match outcome.halt {
        Some(halt) if halt.passed() => (halt.to_string(), 0),
        Some(halt) => (format!("{halt} (failure)"), 1),
        None => (
            format!(
                "still running: the budget of {} cycles ran out",
                options.budget
            ),
            124,
        ),
    };
    println!(
        "rp2040-runner: {verdict} after {} cycles ({:.3} s at 125 MHz; core 0 {} cycles, core 1 {}), {:.1} s",
        outcome.cycles,
        outcome.cycles as f64 / CLOCK_HZ as f64,
        outcome.core_cycles[0],
        outcome.core_cycles[1],
        started.elapsed().as_secs_f64()
    );
    Ok(code)
}
