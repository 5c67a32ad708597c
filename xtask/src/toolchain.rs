//! Which compiler builds for a given target, and how to ask cargo for it.
//!
//! Two ways to get `core` for a bare-metal target:
//!
//! - **Installed**: the active toolchain ships it (`rustup target add <triple>`). Plain
//!   `cargo build --target <triple>`; rustc finds its own `rust-lld`.
//! - **Build-std fallback**: the active toolchain has no `core` for the target (machines where
//!   rustup can only serve the host). Debian's `rustc-web` (`/usr/bin/rustc`) knows every thumb
//!   target and `rust-web-src` ships the matching library source, so cargo compiles `core` from
//!   source: `RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 cargo build -Zbuild-std=core
//!   -Zbuild-std-features=compiler-builtins-mem`. Debian's rustc has no `rust-lld`, so the active
//!   (rustup) toolchain's one is set as the target's linker through `CARGO_TARGET_<TRIPLE>_LINKER`.
//!
//! Nothing here is written to a config file: the choice is made per target, per run, so the
//! committed configuration stays portable.
//!
//! ```ignore
//! let mut build = crate::toolchain::cargo_for_target("thumbv6m-none-eabi", "build")?;
//! build.args(["--release", "-p", "snapmap-core", "--target-dir", "target/thumb"]);
//! crate::util::run(&mut build)?;
//! ```

use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's compiler (package `rustc-web`): knows every thumb target, ships no `core` for them.
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
/// The library source matching [`DEBIAN_RUSTC`] (package `rust-web-src`).
pub const DEBIAN_LIBRARY_SRC: &str = "/usr/lib/rustlib/src/rust/library";
/// The Debian packages that provide the build-std fallback.
pub const DEBIAN_PACKAGES: &str = "rustc-web rust-web-src";
/// The standard-library crates compiled from source in the fallback.
pub const BUILD_STD_CRATES: &str = "core";

/// Where a target's `core` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdSource {
    /// The active toolchain ships `core` for the target, in this directory.
    Installed { libdir: PathBuf },
    /// `core` is compiled from `library` with this rustc (`-Zbuild-std`).
    BuildStd { rustc: PathBuf, library: PathBuf },
}

/// How to build for one target triple. Make one with [`TargetToolchain::detect`].
#[derive(Debug, Clone)]
pub struct TargetToolchain {
    triple: String,
    std: StdSource,
    /// `rust-lld` of the active toolchain, set as the linker in the build-std fallback.
    linker: Option<PathBuf>,
}

/// Why no toolchain could be found for a target.
#[derive(Debug)]
pub enum ToolchainError {
    /// The active `rustc` could not be run or did not answer as expected.
    Rustc { command: String, detail: String },
    /// No installed `core` for the target, and the build-std fallback is incomplete.
    MissingFallback {
        triple: String,
        rustc: String,
        missing: Vec<String>,
    },
}

impl fmt::Display for ToolchainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolchainError::Rustc { command, detail } => write!(f, "`{command}` failed: {detail}"),
            ToolchainError::MissingFallback {
                triple,
                rustc,
                missing,
            } => {
                writeln!(
                    f,
                    "no `core` for {triple}: the active compiler ({rustc}) does not ship it,"
                )?;
                writeln!(
                    f,
                    "and the build-std fallback is missing: {}.",
                    missing.join(", ")
                )?;
                writeln!(f, "Fix one of:")?;
                writeln!(
                    f,
                    "  - Debian:  apt-get update && apt-get install -y {DEBIAN_PACKAGES}"
                )?;
                write!(f, "  - rustup:  rustup target add {triple}")
            }
        }
    }
}

impl std::error::Error for ToolchainError {}

impl TargetToolchain {
    /// Decides how to build for `triple`: with the active toolchain if it ships `core` for it,
    /// otherwise with Debian's rustc and `-Zbuild-std`. Fails with a message naming the Debian
    /// packages (and the rustup alternative) when neither is available.
    pub fn detect(triple: &str) -> Result<Self, ToolchainError> {
        Self::detect_with(
            triple,
            Path::new(DEBIAN_RUSTC),
            Path::new(DEBIAN_LIBRARY_SRC),
        )
    }

    /// [`detect`](Self::detect) with the fallback compiler and library source given.
    fn detect_with(
        triple: &str,
        debian_rustc: &Path,
        library: &Path,
    ) -> Result<Self, ToolchainError> {
        let rustc = active_rustc();
        let libdir = rustc_print(&rustc, &["--print", "target-libdir", "--target", triple])?;
        let libdir = PathBuf::from(libdir);
        let std = if has_core(&libdir) {
            StdSource::Installed { libdir }
        } else {
            let mut missing = Vec::new();
            if !debian_rustc.is_file() {
                missing.push(format!("{} (package rustc-web)", debian_rustc.display()));
            }
            if !library.join("core").is_dir() {
                missing.push(format!("{} (package rust-web-src)", library.display()));
            }
            if !missing.is_empty() {
                return Err(ToolchainError::MissingFallback {
                    triple: triple.to_owned(),
                    rustc: rustc.to_string_lossy().into_owned(),
                    missing,
                });
            }
            StdSource::BuildStd {
                rustc: debian_rustc.to_path_buf(),
                library: library.to_path_buf(),
            }
        };
        let linker = match std {
            StdSource::Installed { .. } => None,
            StdSource::BuildStd { .. } => rust_lld(),
        };
        Ok(Self {
            triple: triple.to_owned(),
            std,
            linker,
        })
    }

    /// The target triple.
    pub fn triple(&self) -> &str {
        &self.triple
    }

    /// Where `core` comes from.
    pub fn std_source(&self) -> &StdSource {
        &self.std
    }

    /// True when `core` is compiled from source (the first such build takes minutes).
    pub fn builds_std(&self) -> bool {
        matches!(self.std, StdSource::BuildStd { .. })
    }

    /// The linker that [`cargo`](Self::cargo) sets for the target, if it sets one.
    pub fn linker(&self) -> Option<&Path> {
        self.linker.as_deref()
    }

    /// The environment variable cargo reads the target's linker from.
    pub fn linker_env_var(&self) -> String {
        format!("CARGO_TARGET_{}_LINKER", env_triple(&self.triple))
    }

    /// The environment variable cargo reads the target's runner from (for `cargo run`/`test`).
    pub fn runner_env_var(&self) -> String {
        format!("CARGO_TARGET_{}_RUNNER", env_triple(&self.triple))
    }

    /// `cargo <subcommand> --target <triple>` with whatever this target needs: nothing extra when
    /// `core` is installed; in the fallback `RUSTC`, `RUSTC_BOOTSTRAP=1`, `-Zbuild-std=core`,
    /// `-Zbuild-std-features=compiler-builtins-mem` and the linker (unless the caller's
    /// environment already names one). Works for `build`, `rustc`, `run`, `test`, `check`...; add
    /// your own arguments (`-p`, `--release`, `--target-dir`, `-- <args>`) after it.
    pub fn cargo(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(cargo_program());
        cmd.arg(subcommand).arg("--target").arg(&self.triple);
        if let StdSource::BuildStd { rustc, .. } = &self.std {
            cmd.env("RUSTC", rustc).env("RUSTC_BOOTSTRAP", "1");
            cmd.arg(format!("-Zbuild-std={BUILD_STD_CRATES}"));
            cmd.arg("-Zbuild-std-features=compiler-builtins-mem");
            if let Some(linker) = &self.linker {
                let var = self.linker_env_var();
                if env::var_os(&var).is_none() {
                    cmd.env(var, linker);
                }
            }
        }
        cmd
    }

    /// One line for logs: which compiler, and where `core` comes from.
    pub fn describe(&self) -> String {
        match &self.std {
            StdSource::Installed { libdir } => {
                format!(
                    "{}: core installed for the active toolchain ({})",
                    self.triple,
                    libdir.display()
                )
            }
            StdSource::BuildStd { rustc, library } => {
                let version = rustc_print(rustc.as_os_str(), &["--version"])
                    .unwrap_or_else(|e| e.to_string());
                let linker = match &self.linker {
                    Some(l) => format!("linker {}", l.display()),
                    None => "no rust-lld found: libraries build, binaries will not link".to_owned(),
                };
                format!(
                    "{}: core built from source ({}) with {} [{}], -Zbuild-std={BUILD_STD_CRATES}; {linker}",
                    self.triple,
                    library.display(),
                    rustc.display(),
                    version
                )
            }
        }
    }
}

/// `cargo <subcommand> --target <triple>` set up for `triple` (see [`TargetToolchain::cargo`]).
pub fn cargo_for_target(triple: &str, subcommand: &str) -> Result<Command, ToolchainError> {
    Ok(TargetToolchain::detect(triple)?.cargo(subcommand))
}

/// The cargo that runs us (`$CARGO`, set by `cargo run`), else `cargo` from `PATH`.
pub fn cargo_program() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The rustc cargo would use for an ordinary build: `$RUSTC`, else `rustc` from `PATH`.
pub fn active_rustc() -> OsString {
    env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}

/// The host triple of the active rustc (`rustc -vV`).
pub fn host_triple() -> Result<String, ToolchainError> {
    let rustc = active_rustc();
    let verbose = rustc_print(&rustc, &["-vV"])?;
    verbose
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|h| h.trim().to_owned())
        .ok_or_else(|| ToolchainError::Rustc {
            command: format!("{} -vV", rustc.to_string_lossy()),
            detail: "no `host:` line".to_owned(),
        })
}

/// A tool shipped in the active toolchain's host bin directory
/// (`$(rustc --print sysroot)/lib/rustlib/<host>/bin/<name>`: `rust-lld`, `rust-objcopy`, ...),
/// if it is there.
pub fn host_tool(name: &str) -> Option<PathBuf> {
    let sysroot = rustc_print(&active_rustc(), &["--print", "sysroot"]).ok()?;
    let host = host_triple().ok()?;
    let path = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(host)
        .join("bin")
        .join(name);
    path.is_file().then_some(path)
}

/// The active toolchain's `rust-lld`, if it has one.
pub fn rust_lld() -> Option<PathBuf> {
    host_tool("rust-lld")
}

/// Whether `libdir` holds a compiled `core` (`libcore-*.rlib`).
fn has_core(libdir: &Path) -> bool {
    fs::read_dir(libdir)
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with("libcore-"))
            })
        })
        .unwrap_or(false)
}

/// `CARGO_TARGET_<THIS_PART>_LINKER`: upper case, `-` and `.` as `_`.
fn env_triple(triple: &str) -> String {
    triple
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs `rustc args...` and returns its trimmed stdout.
fn rustc_print(rustc: &OsStr, args: &[&str]) -> Result<String, ToolchainError> {
    let command = format!("{} {}", rustc.to_string_lossy(), args.join(" "));
    let out = Command::new(rustc)
        .args(args)
        .output()
        .map_err(|e| ToolchainError::Rustc {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        let detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(ToolchainError::Rustc { command, detail });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_follow_cargo() {
        assert_eq!(
            env_triple("thumbv8m.main-none-eabihf"),
            "THUMBV8M_MAIN_NONE_EABIHF"
        );
        assert_eq!(env_triple("thumbv6m-none-eabi"), "THUMBV6M_NONE_EABI");
    }

    #[test]
    fn missing_fallback_names_the_debian_packages() {
        let nowhere = Path::new("/nonexistent/xtask-test");
        match TargetToolchain::detect_with("thumbv6m-none-eabi", &nowhere.join("rustc"), nowhere) {
            // A toolchain with the target installed (`rustup target add`) needs no fallback.
            Ok(tc) => assert!(matches!(tc.std_source(), StdSource::Installed { .. })),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("apt-get install -y rustc-web rust-web-src"),
                    "{msg}"
                );
                assert!(
                    msg.contains("rustup target add thumbv6m-none-eabi"),
                    "{msg}"
                );
                assert!(msg.contains("(package rustc-web)"), "{msg}");
                println!("{msg}");
            }
        }
    }

    #[test]
    fn core_detection_needs_libcore() {
        let dir = env::temp_dir().join(format!("xtask-has-core-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(!has_core(&dir));
        fs::write(dir.join("libcore-0123abcd.rlib"), b"").unwrap();
        assert!(has_core(&dir));
        fs::remove_dir_all(&dir).unwrap();
        assert!(!has_core(&dir));
    }
}
