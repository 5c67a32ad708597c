//! `cargo xtask demo`: snapmap's dual-core demo (`firmware-demo/`) for the RP2040, run on a
//! Pico through a debug probe or on the emulated RP2040; or built and run on QEMU `mps2-an521`.
//!
//! The firmware logs with defmt and ends with a line `SUMMARY PASS|FAIL key=value...`. This
//! command checks that line itself (the run completed, `violations=0`, `reader_cs=0` and, for the
//! demo, `writer_cs=0`) and
//! prints `PASS` or `FAIL` and the counts as its last line; it exits 0 only on `PASS`.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::Duration;

use crate::boards::{Board, AN521, RP2040, RP2350};
use crate::elf::Elf;
use crate::emulator;
use crate::firmware::{self, Artifact};
use crate::host_tools;
use crate::uf2;
use crate::util::{display_command, fail, Failure, Result};

pub use options::{parse, App, Options};
use summary::Summary;

pub const HELP: &str = "\
cargo xtask demo [--board mps2-an521|rp2040|rp2350] [--app demo|embassy] [--build-only]
                 [--elf ELF]

Builds snapmap's dual-core demo (firmware-demo/): core 0 owns a 64-entry table and publishes
single-key writes and atomic batches through the map's sole Writer; core 1 reads it from a
fixed-rate loop and from its timer interrupt, checks every snapshot, and counts the critical
sections it takes while reading; core 0 counts those it takes while writing.

  --board rp2040      (default; also `pico`) The Raspberry Pi Pico: writes the ELF and a UF2,
                      checks that boot2 sits at 0x10000000, reports sizes, and runs that ELF
                      with `probe-rs run --chip RP2040` when probe-rs is installed and
                      `probe-rs list` shows a probe; otherwise on the emulated RP2040
                      (targets/rp2040/runner: rp2040-emu, both M0+ cores, cycle-counted; the
                      defmt log is read from RTT in emulated RAM and decoded as it comes).
  --board rp2350      (also `pico2`) The Raspberry Pi Pico 2: two Cortex-M33, rp235x-hal. Runs
                      the ELF with `probe-rs run --chip RP2350` when a probe is listed;
                      otherwise on the emulated RP2350 (targets/rp2350/runner: rp2350-emu, both
                      M33 cores, cycle-counted, no boot ROM: the runner starts core 0 from the
                      vector table, answers core 1's FIFO launch and rewrites the acquire/release
                      instructions the emulator cannot decode in the image it loads).
  --board mps2-an521  (also `an521`) QEMU's two Cortex-M33, both cores in parallel (qemu-system-arm,
                      log decoded by defmt-print; both are installed if missing).
  --app embassy       (RP2040 only) the embassy firmware (firmware-embassy/) instead: embassy-rp
                      executors on both cores; an async task on core 0 writes single keys and
                      batches, two tasks on core 1 `reader.changed().await` and check what they
                      read, and TIMER_IRQ_1 on core 1 reads too. Its summary: versions, wakeups,
                      coalesced, violations, reader_cs, wake_cycles_median/_worst (from a write's
                      stamp to the woken task's read, on a clk_sys counter both cores read).
  --build-only        build (and for rp2040 write the UF2), do not run.
  --elf ELF           run this ELF instead of building one: the runner of `cargo run` in
                      firmware-demo/ (targets/rp2040/run) hands cargo's build over this way.

Every run ends with the summary line:
  PASS|FAIL reads=.. snapshots=.. isr_reads=.. writes=.. batches=.. cas_retries=..
  violations=.. reader_cs=.. writer_cs=.. writes_per_s=.. ... read_cycles_median=..
  read_cycles_worst=.. ...
(writes_per_s: core 0's writes, single keys and batches, per second; read_cycles_*: a
control-loop read's time; on mps2-an521 `read_timer_ticks_*`: QEMU's 20 MHz timer runs in host
time there, its ticks are not cycles).
Exit status 0 only for PASS: the firmware stopped on its own saying PASS, the run completed,
violations=0, reader_cs=0, writer_cs=0 (the embassy firmware: no writer_cs).

Toolchain: the installed `core` for the target if rustup has it, else Debian's /usr/bin/rustc with
-Zbuild-std (see `cargo xtask toolchain`); the first such build takes 1-2.5 minutes.
";

/// How many cycles the emulated RP2040 may run the demo for: 5 s at 125 MHz (it runs 3 s).
const RP2040_BUDGET_CYCLES: u64 = 5 * 125_000_000;
/// How many cycles the emulated RP2350 may run the demo for: 5 s at 150 MHz (it runs 3 s).
const RP2350_BUDGET_CYCLES: u64 = 5 * 150_000_000;
/// The emulated RP2350's quantum for the demo: the emulator's default.
const RP2350_QUANTUM: u32 = 64;
/// How long QEMU may run the demo (it runs about 3 seconds).
const QEMU_LIMIT: Duration = Duration::from_secs(60);
/// How long probe-rs may flash and run it.
const PROBE_LIMIT: Duration = Duration::from_secs(120);
/// Runs the command; its own exit status (the verdict line must stay the last line, so errors
/// are printed here, before it).
pub fn run(options: &Options) -> ExitCode {
    let outcome = if options.board == &RP2040 {
        rp2040(options)
    } else if options.board == &RP2350 {
        rp2350(options)
    } else {
        an521(options)
    };
    match outcome {
        Ok(Verdict::Built) => ExitCode::SUCCESS,
        Ok(Verdict::Ran(summary)) => {
            for problem in &summary.problems {
                eprintln!("demo: {problem}");
            }
            println!("{}", summary.line());
            if summary.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Verdict {
    /// Built, not run (`--build-only`).
    Built,
    /// Ran, with this summary.
    Ran(Summary),
}

fn an521(options: &Options) -> Result<Verdict> {
    let (board, build_only) = (&AN521, options.build_only);
    // Tools first: a missing one should not wait for a long first build.
    let defmt_print = if build_only {
        None
    } else {
        host_tools::timeout()?;
        host_tools::qemu()?;
        Some(host_tools::defmt_print()?)
    };
    let elf_path = built_or_given(board, Artifact::Demo, options)?;
    report_sizes(&elf_path)?;
    let Some(defmt_print) = defmt_print else {
        return Ok(Verdict::Built);
    };

    println!(
        "==> running it on {} (both cores in parallel)",
        board.description
    );
    let mut qemu = emulator::qemu_command(board, &elf_path, QEMU_LIMIT)?;
    let mut decoder = Command::new(defmt_print);
    decoder.arg("-e").arg(&elf_path);
    println!(
        "$ {} | {}",
        display_command(&qemu),
        display_command(&decoder)
    );
    let mut qemu_child = qemu
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("could not start QEMU: {e}")))?;
    let frames = qemu_child
        .stdout
        .take()
        .ok_or_else(|| Failure("no pipe from QEMU".to_owned()))?;
    let mut decoder_child = match decoder.stdin(frames).stdout(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = qemu_child.kill();
            let _ = qemu_child.wait();
            return fail(format!("could not start defmt-print: {e}"));
        }
    };
    let log = decoder_child
        .stdout
        .take()
        .map(|out| echo_lines(BufReader::new(out)))
        .unwrap_or_default();
    let qemu_status = qemu_child.wait()?;
    let decoder_status = decoder_child.wait()?;

    let mut summary = Summary::from_log(&log, &AN521);
    if let Some(problem) = emulator::explain_exit(qemu_status.code(), QEMU_LIMIT) {
        summary.problems.push(problem);
    }
    if !decoder_status.success() {
        summary
            .problems
            .push(format!("defmt-print failed ({decoder_status})"));
    }
    Ok(Verdict::Ran(summary))
}

fn rp2040(options: &Options) -> Result<Verdict> {
    let (board, build_only) = (&RP2040, options.build_only);
    let artifact = match options.app {
        App::Demo => Artifact::Demo,
        App::Embassy => Artifact::Embassy,
    };
    let elf_path = built_or_given(board, artifact, options)?;
    let bytes = fs::read(&elf_path)?;
    let elf = Elf::parse(&bytes)?;
    check_boot2(&elf)?;
    report_sizes(&elf_path)?;
    let image = uf2::from_segments(&elf.segments, uf2::RP2040_FLASH, uf2::RP2040_FAMILY_ID)
        .map_err(|e| Failure(format!("cannot make a UF2 of {}: {e}", elf_path.display())))?;
    let uf2_path = elf_path.with_extension("uf2");
    fs::write(&uf2_path, &image)?;
    println!("    ELF: {}", elf_path.display());
    println!(
        "    UF2: {} ({} blocks; hold BOOTSEL while plugging the Pico in, then copy it to RPI-RP2)",
        uf2_path.display(),
        image.len() / 512
    );
    if build_only {
        return Ok(Verdict::Built);
    }

    let Some(probe_rs) = host_tools::probe_rs().filter(|p| probe_attached(p)) else {
        return rp2040_emulated(&elf_path, options.app);
    };

    println!("==> running it on the Pico through {}", probe_rs.display());
    let mut cmd = Command::new(host_tools::timeout()?);
    cmd.arg(format!("{}s", PROBE_LIMIT.as_secs()))
        .arg(&probe_rs)
        .arg("run")
        .args(board.runner_args()?)
        .arg(&elf_path);
    println!("$ {}", display_command(&cmd));
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("could not start probe-rs: {e}")))?;
    // probe-rs prints the decoded log on one stream and its own messages on the other.
    let (log, status) = echo_both(child)?;
    let mut summary = Summary::for_app(&log, &RP2040, options.app);
    if !status.success() {
        summary
            .problems
            .push(format!("probe-rs run failed ({status})"));
    }
    Ok(Verdict::Ran(summary))
}

/// The Pico 2: the ELF (no UF2 is written), run through probe-rs on a board or on the emulated
/// RP2350.
fn rp2350(options: &Options) -> Result<Verdict> {
    let (board, build_only) = (&RP2350, options.build_only);
    let elf_path = built_or_given(board, Artifact::Demo, options)?;
    let bytes = fs::read(&elf_path)?;
    check_image_def(&Elf::parse(&bytes)?)?;
    report_sizes(&elf_path)?;
    println!("    ELF: {}", elf_path.display());
    if build_only {
        return Ok(Verdict::Built);
    }
    let Some(probe_rs) = host_tools::probe_rs().filter(|p| probe_attached(p)) else {
        println!(
            "==> no debug probe (probe-rs not installed or no probe listed): running it on the \
             emulated RP2350 (rp2350-emu, both Cortex-M33 cores)"
        );
        let runner = emulator::rp2350_command(&elf_path, RP2350_BUDGET_CYCLES, RP2350_QUANTUM);
        return run_emulated(runner, board, emulator::explain_rp2350_exit);
    };
    println!(
        "==> running it on the Pico 2 through {}",
        probe_rs.display()
    );
    let mut cmd = Command::new(host_tools::timeout()?);
    cmd.arg(format!("{}s", PROBE_LIMIT.as_secs()))
        .arg(&probe_rs)
        .arg("run")
        .args(board.runner_args()?)
        .arg(&elf_path);
    println!("$ {}", display_command(&cmd));
    let output = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("could not start probe-rs: {e}")))?;
    let (log, status) = echo_both(output)?;
    let mut summary = Summary::from_log(&log, board);
    if !status.success() {
        summary
            .problems
            .push(format!("probe-rs run failed ({status})"));
    }
    Ok(Verdict::Ran(summary))
}

/// The ELF `--elf` names, or else `artifact` built for `board`.
fn built_or_given(board: &Board, artifact: Artifact, options: &Options) -> Result<PathBuf> {
    match &options.elf {
        Some(elf) => Ok(elf.clone()),
        None => firmware::build(board, artifact),
    }
}

/// Echoes a child's stdout and stderr as they come; returns all their lines and its status.
fn echo_both(mut child: std::process::Child) -> Result<(Vec<String>, std::process::ExitStatus)> {
    let stderr = child
        .stderr
        .take()
        .map(|err| thread::spawn(move || echo_lines(BufReader::new(err))));
    let mut log = child
        .stdout
        .take()
        .map(|out| echo_lines(BufReader::new(out)))
        .unwrap_or_default();
    if let Some(Ok(more)) = stderr.map(thread::JoinHandle::join) {
        log.extend(more);
    }
    Ok((log, child.wait()?))
}

/// Runs an emulator `runner` whose stdout is the decoded log, echoing it, and judges the run.
fn run_emulated(
    mut runner: Command,
    board: &Board,
    explain: fn(Option<i32>) -> Option<String>,
) -> Result<Verdict> {
    println!("$ {}", display_command(&runner));
    let mut child = runner
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("could not start the {} runner: {e}", board.name)))?;
    let log = child
        .stdout
        .take()
        .map(|out| echo_lines(BufReader::new(out)))
        .unwrap_or_default();
    let status = child.wait()?;
    let mut summary = Summary::from_log(&log, board);
    if let Some(problem) = explain(status.code()) {
        summary.problems.push(problem);
    }
    Ok(Verdict::Ran(summary))
}

/// The RP2350's boot ROM runs an image only if it finds an IMAGE_DEF block (`.start_block`) in
/// the first 4 KiB of flash. (The emulated RP2350 has no ROM and boots without one: this check
/// is what stands in for it.)
fn check_image_def(elf: &Elf<'_>) -> Result {
    const FLASH: u32 = 0x1000_0000;
    const SEARCH_WINDOW: u32 = 4096;
    /// PICOBIN_BLOCK_MARKER_START and _END.
    const START: u32 = 0xFFFF_DED3;
    const END: u32 = 0xAB12_3579;
    let Some(s) = elf.section(".start_block") else {
        return fail(
            "the image has no .start_block section: the Pico 2's boot ROM would not run it",
        );
    };
    if s.addr < FLASH || s.addr + s.size > FLASH + SEARCH_WINDOW || s.size < 8 {
        return fail(format!(
            ".start_block is {} bytes at {:#010x}; the boot ROM looks in the first 4 KiB of flash",
            s.size, s.addr
        ));
    }
    let word = |at: u32| {
        elf.read(at, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let last = s.addr + s.size - 4;
    if word(s.addr) != Some(START) || word(last) != Some(END) {
        return fail(".start_block does not hold a block (its start and end markers are missing)");
    }
    println!(
        "    IMAGE_DEF: {} bytes at {:#010x}, within the first 4 KiB",
        s.size, s.addr
    );
    Ok(())
}

/// Whether `probe-rs list` lists a debug probe.
fn probe_attached(probe_rs: &Path) -> bool {
    let Ok(out) = Command::new(probe_rs).arg("list").output() else {
        return false;
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    out.status.success() && !listing.contains("No debug probes") && !listing.trim().is_empty()
}

/// No Pico attached: the same ELF on the emulated RP2040 (targets/rp2040/runner), whose log
/// lines are echoed as they come. The runner's exit status is the firmware's own verdict (0: it
/// stopped at its BKPT, 1: a fault or panic, 124: still running when the budget ran out).
fn rp2040_emulated(elf_path: &Path, app: App) -> Result<Verdict> {
    println!(
        "==> no debug probe (probe-rs not installed or no probe listed): running it on the \
         emulated RP2040 (rp2040-emu, both Cortex-M0+ cores)"
    );
    let mut runner = emulator::rp2040_command(elf_path, RP2040_BUDGET_CYCLES);
    println!("$ {}", display_command(&runner));
    let mut child = runner
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("could not start the RP2040 runner: {e}")))?;
    let log = child
        .stdout
        .take()
        .map(|out| echo_lines(BufReader::new(out)))
        .unwrap_or_default();
    let status = child.wait()?;
    let mut summary = Summary::for_app(&log, &RP2040, app);
    if let Some(problem) = emulator::explain_rp2040_exit(status.code()) {
        summary.problems.push(problem);
    }
    Ok(Verdict::Ran(summary))
}

/// The RP2040 boot ROM copies the 256 bytes at the start of flash to SRAM and runs them as the
/// second-stage bootloader, but only if their last word is the CRC-32 of the first 252.
fn check_boot2(elf: &Elf<'_>) -> Result {
    const BOOT2_ADDR: u32 = 0x1000_0000;
    match elf.section(".boot2") {
        Some(s) if s.addr == BOOT2_ADDR && s.size == 256 => {}
        Some(s) => {
            return fail(format!(
                ".boot2 is {} bytes at {:#010x}; the boot ROM needs 256 bytes at 0x10000000",
                s.size, s.addr
            ))
        }
        None => return fail("the image has no .boot2 section: the Pico would not boot it"),
    }
    let Some(boot2) = elf.read(BOOT2_ADDR, 256) else {
        return fail(".boot2 has no contents in the image");
    };
    let (code, stored) = boot2.split_at(252);
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    if boot2_crc(code) != stored {
        return fail(".boot2's CRC does not match: the boot ROM would refuse it");
    }
    println!("    boot2: 256 bytes at 0x10000000, CRC ok");
    Ok(())
}

/// The boot ROM's CRC-32: polynomial 0x04C11DB7, not reflected, initial value all ones, no final
/// XOR (the CRC-32/MPEG-2 variant).
fn boot2_crc(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in bytes {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn report_sizes(elf_path: &Path) -> Result {
    let bytes = fs::read(elf_path)?;
    let sizes = Elf::parse(&bytes)?.sizes();
    println!(
        "    size: text={} data={} bss={} (flash {} bytes, RAM {} bytes + stacks)",
        sizes.text,
        sizes.data,
        sizes.bss,
        sizes.text + sizes.data,
        sizes.data + sizes.bss
    );
    Ok(())
}

/// Echoes each line as it arrives and returns them all.
fn echo_lines(reader: impl BufRead) -> Vec<String> {
    let mut lines = Vec::new();
    for line in reader.lines().map_while(io::Result::ok) {
        println!("{line}");
        lines.push(line);
    }
    lines
}

mod options;
mod summary;
#[cfg(test)]
mod tests;
