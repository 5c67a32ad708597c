//! `rp2350-runner [--cycles N] [--chunk N] [--quantum N] ELF`: runs a Pico 2 (RP2350) firmware
//! on the two emulated Cortex-M33 (see the library docs), printing its defmt log as it comes.
//!
//! Last line: `rp2350-runner: <how it ended> after <cycles> (<seconds> of emulated time at
//! 150 MHz; core 0 <c0> cycles, core 1 <c1>; quantum <q>; <n> acquire/release instructions
//! rewritten; core 1 launched at <entry>), <wall> s`. Exit status: 0 when the firmware stopped
//! at its `bkpt` (success), 1 when a core faulted (a panic included), 124 when the cycle budget
//! ran out first (as coreutils' `timeout`), 2 when the runner itself failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use rp2350_runner::{run_to_end, Firmware, Log, Rp2350, CLOCK_HZ, DEFAULT_QUANTUM};

const USAGE: &str = "usage: rp2350-runner [--cycles N] [--chunk N] [--quantum N] ELF
  --cycles N   the budget: stop after N cycles of the shared clock (default 1200000000, 8 s
               of emulated time at 150 MHz); exit 124 if the firmware has not stopped by then
  --chunk N    cycles per chunk, after each of which the log is read (default 200000)
  --quantum N  cycles each core runs in turn (default 64; 1: the cores alternate instruction
               by instruction)";

const DEFAULT_BUDGET: u64 = 8 * CLOCK_HZ;
const DEFAULT_CHUNK: u64 = 200_000;

struct Options {
    elf: PathBuf,
    budget: u64,
    chunk: u64,
    quantum: u32,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let (mut elf, mut budget, mut chunk, mut quantum) = (
        None,
        DEFAULT_BUDGET,
        DEFAULT_CHUNK,
        u64::from(DEFAULT_QUANTUM),
    );
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
            "--quantum" => quantum = number("--quantum")?,
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
        quantum: u32::try_from(quantum).map_err(|_| "`--quantum`: too large".to_owned())?,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(options) => options,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("rp2350-runner: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rp2350-runner: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(options: &Options) -> Result<u8, rp2350_runner::Error> {
    let started = Instant::now();
    let firmware = Firmware::load(&options.elf)?;
    let mut log = Log::new(&firmware)?;
    if log.is_none() {
        eprintln!("rp2350-runner: the ELF has no defmt table; its log is not decoded");
    }
    let mut rp2350 = Rp2350::new(&firmware, options.quantum)?;
    let outcome = run_to_end(
        &mut rp2350,
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
    let launch = match rp2350.core1_launch() {
        Some((_, _, entry)) => format!("core 1 launched at {entry:#010x}"),
        None => "core 1 not launched".to_owned(),
    };
    println!(
        "rp2350-runner: {verdict} after {} cycles ({:.3} s at 150 MHz; core 0 {} cycles, core 1 {}; \
         quantum {}; {} acquire/release instructions rewritten; {launch}), {:.1} s",
        outcome.cycles,
        outcome.cycles as f64 / CLOCK_HZ as f64,
        outcome.core_cycles[0],
        outcome.core_cycles[1],
        options.quantum,
        firmware.rewrites.total(),
        started.elapsed().as_secs_f64()
    );
    Ok(code)
}
