//! `rp2040-runner [--cycles N] [--chunk N] ELF`: runs an RP2040 firmware on the emulated
//! dual Cortex-M0+ (see the library docs), printing its defmt log as it comes.
//!
//! Last line: `rp2040-runner: <how it ended> after <cycles> (<seconds> of emulated time at
//! 125 MHz; core 0 <c0> cycles, core 1 <c1>), <wall> s`. Exit status: 0 when the firmware
//! stopped at its `BKPT` (success), 1 when a core faulted (a panic included), 124 when the
//! cycle budget ran out first (as coreutils' `timeout`), 2 when the runner itself failed.

use std::process::ExitCode;
use std::time::Instant;

use pico_runner::cli::{self, Options};
use rp2040_runner::{Error, Rp2040, CLOCK_HZ};

const NAME: &str = "rp2040-runner";

const USAGE: &str = "usage: rp2040-runner [--cycles N] [--chunk N] ELF
  --cycles N  the budget: stop after N cycles of the shared clock (default 1000000000, 8 s
              of emulated time at 125 MHz); exit 124 if the firmware has not stopped by then
  --chunk N   cycles per chunk, after each of which the log is read (default 200000)";

/// The budget when none is given: 8 s of emulated time.
const DEFAULT_BUDGET: u64 = 8 * CLOCK_HZ;

fn main() -> ExitCode {
    cli::main(
        NAME,
        USAGE,
        |args| Options::parse(args, DEFAULT_BUDGET, &mut []),
        run,
    )
}

fn run(options: Options) -> Result<u8, Error> {
    let started = Instant::now();
    let firmware = rp2040_runner::load(&options.elf)?;
    let (_, outcome) = cli::run(NAME, &options, &firmware, Rp2040::new)?;
    Ok(cli::finish(NAME, &options, &outcome, CLOCK_HZ, "", started))
}
