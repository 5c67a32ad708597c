//! Running firmware on emulators: under QEMU (the command line from `targets/<board>/qemu-args`,
//! bounded by coreutils' `timeout`), or on the emulated RP2040 (`targets/rp2040/runner`, bounded
//! by a cycle budget); and what their exit statuses mean.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::boards::{Board, Runner};
use crate::host_tools;
use crate::toolchain::cargo_program;
use crate::util::{fail, workspace_root, Result};

/// The status `timeout` exits with when it had to stop the program.
pub const TIMED_OUT: i32 = 124;
/// After the time limit, `timeout` sends SIGTERM, then SIGKILL this much later.
const KILL_AFTER: &str = "5s";

/// `timeout <limit> qemu-system-arm <board's arguments> -kernel <elf>`; stdio left to the caller.
pub fn qemu_command(board: &Board, elf: &Path, limit: Duration) -> Result<Command> {
    if board.runner != Runner::Qemu {
        return fail(format!("{} does not run under QEMU", board.name));
    }
    let qemu = host_tools::qemu()?;
    let mut cmd = Command::new(host_tools::timeout()?);
    cmd.arg(format!("--kill-after={KILL_AFTER}"))
        .arg(format!("{}s", limit.as_secs().max(1)))
        .arg(qemu)
        .args(board.runner_args()?)
        .arg("-kernel")
        .arg(elf);
    Ok(cmd)
}

/// What an exit status of a bounded QEMU run means, for messages; `None` for success.
pub fn explain_exit(code: Option<i32>, limit: Duration) -> Option<String> {
    match code {
        Some(0) => None,
        Some(1) => Some("the firmware exited with status 1 (failure)".to_owned()),
        Some(TIMED_OUT) => Some(format!(
            "the run did not finish within {}s and was stopped",
            limit.as_secs()
        )),
        Some(code) => Some(format!("QEMU exited with status {code}")),
        None => Some("QEMU was killed by a signal".to_owned()),
    }
}

/// `cargo run -p rp2040-runner -- --cycles <budget> <elf>`: the emulated RP2040 (the first run
/// compiles the emulator, about a minute); stdio left to the caller.
pub fn rp2040_command(elf: &Path, budget_cycles: u64) -> Command {
    let mut cmd = Command::new(cargo_program());
    cmd.current_dir(workspace_root())
        .args(["run", "--locked", "-p", "rp2040-runner", "--", "--cycles"])
        .arg(budget_cycles.to_string())
        .arg(elf);
    cmd
}

/// `cargo run -p rp2350-runner -- --cycles <budget> --quantum <quantum> <elf>`: the emulated
/// RP2350 (two Cortex-M33, each running `quantum` cycles in turn); stdio left to the caller.
pub fn rp2350_command(elf: &Path, budget_cycles: u64, quantum: u32) -> Command {
    let mut cmd = Command::new(cargo_program());
    cmd.current_dir(workspace_root())
        .args(["run", "--locked", "-p", "rp2350-runner", "--", "--cycles"])
        .arg(budget_cycles.to_string())
        .arg("--quantum")
        .arg(quantum.to_string())
        .arg(elf);
    cmd
}

/// What an exit status of `rp2350-runner` means, for messages; `None` for success (the same
/// statuses as `rp2040-runner`'s).
pub fn explain_rp2350_exit(code: Option<i32>) -> Option<String> {
    explain_rp2040_exit(code).map(|why| why.replace("RP2040", "RP2350"))
}

/// What an exit status of `rp2040-runner` means, for messages; `None` for success.
pub fn explain_rp2040_exit(code: Option<i32>) -> Option<String> {
    match code {
        Some(0) => None,
        Some(1) => Some("the firmware faulted or panicked (see the runner's last line)".to_owned()),
        Some(TIMED_OUT) => {
            Some("the firmware was still running when its cycle budget ran out".to_owned())
        }
        Some(code) => Some(format!("the RP2040 runner failed (exit status {code})")),
        None => Some("the RP2040 runner was killed by a signal".to_owned()),
    }
}
