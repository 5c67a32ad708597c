//! Running firmware under QEMU: the command line from `targets/<board>/qemu-args`, bounded by
//! coreutils' `timeout`, and what its exit status means.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::boards::{Board, Runner};
use crate::host_tools;
use crate::util::{fail, Result};

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
