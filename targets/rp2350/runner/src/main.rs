//! `rp2350-runner [--cycles N] [--chunk N] [--quantum N] ELF`: runs a Pico 2 (RP2350) firmware
//! on the two emulated Cortex-M33 (see the library docs), printing its defmt log as it comes.
//!
//! Last line: `rp2350-runner: <how it ended> after <cycles> (<seconds> of emulated time at
//! 150 MHz; core 0 <c0> cycles, core 1 <c1>; quantum <q>; <n> acquire/release instructions
//! rewritten; core 1 launched at <entry>), <wall> s`. Exit status: 0 when the firmware stopped
//! at its `bkpt` (success), 1 when a core faulted (a panic included), 124 when the cycle budget
//! ran out first (as coreutils' `timeout`), 2 when the runner itself failed.

use std::process::ExitCode;
use std::time::Instant;

use pico_runner::cli::{self, Options};
use rp2350_runner::{Error, Rp2350, CLOCK_HZ, DEFAULT_QUANTUM};

const NAME: &str = "rp2350-runner";

const USAGE: &str = "usage: rp2350-runner [--cycles N] [--chunk N] [--quantum N] ELF
  --cycles N   the budget: stop after N cycles of the shared clock (default 1200000000, 8 s
               of emulated time at 150 MHz); exit 124 if the firmware has not stopped by then
  --chunk N    cycles per chunk, after each of which the log is read (default 200000)
  --quantum N  cycles each core runs in turn (default 64; 1: the cores alternate instruction
               by instruction)";

/// The budget when none is given: 8 s of emulated time.
const DEFAULT_BUDGET: u64 = 8 * CLOCK_HZ;

fn main() -> ExitCode {
    cli::main(NAME, USAGE, parse, run)
}

/// The shared options and `--quantum`.
fn parse(args: &[String]) -> Result<(Options, u32), String> {
    let mut quantum = u64::from(DEFAULT_QUANTUM);
    let options = Options::parse(args, DEFAULT_BUDGET, &mut [("--quantum", &mut quantum)])?;
    let quantum = u32::try_from(quantum).map_err(|_| "`--quantum`: too large".to_owned())?;
    Ok((options, quantum))
}

fn run((options, quantum): (Options, u32)) -> Result<u8, Error> {
    let started = Instant::now();
    let (firmware, rewrites) = rp2350_runner::load(&options.elf)?;
    let (rp2350, outcome) = cli::run(NAME, &options, &firmware, |firmware| {
        Rp2350::new(firmware, quantum)
    })?;
    let launch = match rp2350.core1_launch() {
        Some((_, _, entry)) => format!("core 1 launched at {entry:#010x}"),
        None => "core 1 not launched".to_owned(),
    };
    let details = format!(
        "; quantum {quantum}; {} acquire/release instructions rewritten; {launch}",
        rewrites.total()
    );
    Ok(cli::finish(
        NAME, &options, &outcome, CLOCK_HZ, &details, started,
    ))
}
