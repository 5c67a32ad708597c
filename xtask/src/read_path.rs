//! The read path takes no critical section: the linker proves it.
//!
//! `xtask/probes/read-path` is a binary that calls only the read API (a `Reader`'s get, a held
//! snapshot's lookup and iteration) and provides no `critical-section` implementation. It must
//! link. Its `mutant` feature adds a read that does take a critical section; that link must fail
//! with `undefined symbol: _critical_section_1_0_acquire`, or the check could not see one.

use std::fs;
use std::path::Path;
use std::process::Stdio;

use object::{Object, ObjectSymbol};

use crate::toolchain::TargetToolchain;
use crate::util::{display_command, fail, run, Failure, Result};

/// The probe crate, relative to the workspace root.
pub const PROBE_DIR: &str = "xtask/probes/read-path";
const CS_ACQUIRE: &str = "_critical_section_1_0_acquire";
/// Below this, the reads were optimized out of `_start` and the link would prove nothing.
const MIN_START_BYTES: u64 = 256;

/// Links the probe and its mutant for `tc`'s target; returns a one-line summary.
pub fn check(tc: &TargetToolchain, root: &Path, target_dir: &Path) -> Result<String> {
    let triple = tc.triple();
    let probe = root.join(PROBE_DIR);
    // Same dependency versions as the workspace: start from its lock file (cargo prunes it).
    fs::copy(root.join("Cargo.lock"), probe.join("Cargo.lock"))
        .map_err(|e| Failure(format!("copying Cargo.lock into {}: {e}", probe.display())))?;
    let build = |mutant: bool| {
        let mut cmd = tc.cargo("build");
        cmd.current_dir(&probe)
            .args(["--release", "--target-dir"])
            .arg(target_dir);
        if mutant {
            cmd.args(["--features", "mutant"]);
        }
        cmd
    };
    run(&mut build(false))?;
    let elf = target_dir.join(triple).join("release/read-path-probe");
    let start = start_size(&elf)?;
    if start < MIN_START_BYTES {
        return fail(format!(
            "{triple}: the probe's `_start` is {start} bytes: its reads were optimized out"
        ));
    }

    let mut cmd = build(true);
    println!("$ {}  (must fail to link)", display_command(&cmd));
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .map_err(|e| Failure(format!("could not start cargo: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains(&format!("undefined symbol: {CS_ACQUIRE}")) {
        return fail(format!(
            "{triple}: the mutant probe (a read that takes a critical section) {}: the check \
             cannot see a critical section\n{stderr}",
            if out.status.success() {
                "linked"
            } else {
                "failed for another reason"
            }
        ));
    }
    Ok(format!(
        "read path links with no critical section ({start}-byte `_start`); the mutant fails \
         with `undefined symbol: {CS_ACQUIRE}`"
    ))
}

/// The size of the probe's `_start`, which holds the inlined reads.
fn start_size(elf: &Path) -> Result<u64> {
    let data = fs::read(elf).map_err(|e| Failure(format!("reading {}: {e}", elf.display())))?;
    let file = object::File::parse(&*data)
        .map_err(|e| Failure(format!("{}: not an ELF file: {e}", elf.display())))?;
    file.symbols()
        .find(|s| s.name() == Ok("_start"))
        .map(|s| s.size())
        .ok_or_else(|| Failure(format!("{}: no `_start`", elf.display())))
}
