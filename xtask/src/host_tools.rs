//! The host programs that running the firmware needs: found on `PATH`, installed when that can
//! be done here, or named with the command that installs them.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::toolchain::{cargo_program, TargetToolchain, ToolchainError, DEBIAN_PACKAGES};
use crate::util::{fail, run, Result};

/// Debian's package for `qemu-system-arm`.
const QEMU_PACKAGE: &str = "qemu-system-arm";

/// `qemu-system-arm`; installed with apt-get when missing and we are root.
pub fn qemu() -> Result<PathBuf> {
    if let Some(path) = find("qemu-system-arm") {
        return Ok(path);
    }
    if !is_root() || find("apt-get").is_none() {
        return fail(format!(
            "qemu-system-arm is not installed. Install it with:\n  \
             sudo apt-get install {QEMU_PACKAGE}   (Debian/Ubuntu; other systems: the QEMU \
             package that provides qemu-system-arm)"
        ));
    }
    println!(
        "==> installing Debian's {QEMU_PACKAGE} (apt-get install): qemu-system-arm runs the \
         firmware on QEMU's emulated Cortex-M machines, and it is missing"
    );
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            QEMU_PACKAGE,
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    match find("qemu-system-arm") {
        Some(path) => Ok(path),
        None => fail(format!(
            "installed {QEMU_PACKAGE}, but qemu-system-arm is still not on PATH"
        )),
    }
}

/// How to build for `triple`, installing what is missing: first the target's prebuilt `core`
/// with `rustup target add`; if rustup cannot, Debian's `rustc-web rust-web-src` (with apt-get,
/// as root) for the `-Zbuild-std` fallback; only when both fail, an error naming what is missing.
pub fn target_toolchain(triple: &str) -> Result<TargetToolchain> {
    if let Ok(toolchain) = TargetToolchain::detect(triple) {
        if !toolchain.builds_std() {
            return Ok(toolchain);
        }
    }
    // `RUSTC` set by the caller means a compiler rustup does not manage: leave it alone.
    let rustup_managed = env::var_os("RUSTC").is_none();
    if let (true, Some(rustup)) = (rustup_managed, find("rustup")) {
        println!(
            "==> installing the {triple} target (rustup target add {triple}): the prebuilt \
             `core` the firmware is compiled against, which the active toolchain lacks"
        );
        // Its output only matters when it fails (then its first `error:` line says why).
        let out = Command::new(rustup)
            .args(["target", "add", triple])
            .output();
        let added = out.as_ref().is_ok_and(|o| o.status.success());
        if let (false, Ok(out)) = (added, &out) {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if let Some(why) = stderr.lines().find(|l| l.starts_with("error:")) {
                println!("    {why}");
            }
        }
        match TargetToolchain::detect(triple) {
            Ok(toolchain) if !toolchain.builds_std() => return Ok(toolchain),
            _ if added => println!("    rustup added {triple}, yet no `core` is installed for it"),
            _ => println!("    rustup could not add {triple}; trying the build-std fallback"),
        }
    }
    match TargetToolchain::detect(triple) {
        Ok(toolchain) => return Ok(toolchain),
        Err(ToolchainError::MissingFallback { .. }) if is_root() && find("apt-get").is_some() => {}
        Err(e) => return Err(e.into()),
    }
    println!(
        "==> installing Debian's {DEBIAN_PACKAGES} (apt-get install): a compiler for every \
         thumb target and its library source, to build `core` for {triple} from source, since \
         the active toolchain has no `core` for it"
    );
    let packages: Vec<&str> = DEBIAN_PACKAGES.split_whitespace().collect();
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(TargetToolchain::detect(triple)?)
}

/// `defmt-print`, which decodes the demo's log; installed with `cargo install` when missing.
pub fn defmt_print() -> Result<PathBuf> {
    if let Some(path) = find("defmt-print") {
        return Ok(path);
    }
    println!(
        "==> installing defmt-print (cargo install defmt-print --locked; compiles for about \
         2-4 minutes, once): it decodes the firmware's defmt log, and it is missing"
    );
    run(Command::new(cargo_program()).args(["install", "defmt-print", "--locked"]))?;
    match find("defmt-print") {
        Some(path) => Ok(path),
        None => fail(
            "installed defmt-print, but it is not on PATH nor in $CARGO_HOME/bin \
             (add ~/.cargo/bin to PATH)",
        ),
    }
}

/// coreutils' `timeout`, which bounds every emulator run.
pub fn timeout() -> Result<PathBuf> {
    match find("timeout") {
        Some(path) => Ok(path),
        None => fail("`timeout` (GNU coreutils) is not on PATH; install coreutils"),
    }
}

/// `probe-rs`, if installed: never installed from here (a 15-minute build that needs
/// libudev-dev and pkg-config, and useless without a debug probe).
pub fn probe_rs() -> Option<PathBuf> {
    find("probe-rs")
}

/// The first executable `program` on `PATH`, else in cargo's bin directory (where `cargo
/// install` puts things, even when it is not on `PATH`).
pub fn find(program: &str) -> Option<PathBuf> {
    let path_dirs = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(cargo_bin_dir())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn cargo_bin_dir() -> Option<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    Some(home.join("bin"))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Whether we run as root (so apt-get can install).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.status.success() && out.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path() {
        assert!(find("sh").is_some());
        assert!(find("surely-not-a-program-xtask").is_none());
    }
}
