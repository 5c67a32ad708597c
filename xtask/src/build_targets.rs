//! `cargo xtask build-targets`: snapmap-core for every thumb target in the matrix.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::read_path;
use crate::util::{fail, format_duration, run, workspace_root, Result};

/// The thumb build matrix: Cortex-M0/M0+ (RP2040; no compare-and-swap), Cortex-M4F/M7F,
/// Cortex-M33 (the dual-core QEMU mps2-an521 machine).
pub const THUMB_TARGETS: &[&str] = &[
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "thumbv8m.main-none-eabihf",
];

/// Feature sets built for every target: (label, cargo arguments).
pub const FEATURE_SETS: &[(&str, &[&str])] = &[
    ("no default features", &["--no-default-features"]),
    ("defmt", &["--no-default-features", "--features", "defmt"]),
];

/// Where thumb builds go, relative to the workspace root: apart from the host's `target/debug`,
/// so switching between host and thumb builds invalidates nothing.
pub const THUMB_TARGET_DIR: &str = "target/thumb";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub targets: Vec<String>,
    pub read_path_check: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            targets: THUMB_TARGETS.iter().map(|t| t.to_string()).collect(),
            read_path_check: true,
        }
    }
}

pub fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let (mut targets, mut read_path_check) = (Vec::new(), true);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let target = match arg.as_str() {
            "--no-read-path-check" => {
                read_path_check = false;
                continue;
            }
            "--target" => it.next().ok_or("`--target` needs a triple")?.as_str(),
            a => a
                .strip_prefix("--target=")
                .ok_or(format!("unexpected argument `{a}`"))?,
        };
        if !THUMB_TARGETS.contains(&target) {
            let known = THUMB_TARGETS.join(", ");
            return Err(format!("`{target}` is not in the matrix ({known})"));
        }
        if !targets.iter().any(|t| t == target) {
            targets.push(target.to_owned());
        }
    }
    if targets.is_empty() {
        targets = Options::default().targets;
    }
    Ok(Options {
        targets,
        read_path_check,
    })
}

pub const HELP: &str = "\
cargo xtask build-targets [--target TRIPLE]... [--no-read-path-check]

Builds snapmap-core (lib, release) for each thumb target, with --no-default-features and with
--features defmt, into target/thumb. Per target, uses the active toolchain if it ships core for
the target, else Debian's /usr/bin/rustc with RUSTC_BOOTSTRAP=1 -Zbuild-std=core (packages
rustc-web rust-web-src). The first build of core for a target takes 1-2.5 minutes.

Then links a probe (xtask/probes/read-path) per target: a binary that calls only the read API
(Reader::get, a held snapshot's get, contains_key and iteration) and provides no critical-section
implementation, so it links only if no read takes a critical section. Its `mutant` feature adds
a read that takes one, and must fail to link with `undefined symbol:
_critical_section_1_0_acquire`.

Options:
  --target TRIPLE         build only this target (repeatable; default: all of
                          thumbv6m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf)
  --no-read-path-check    skip the probe and its mutant
";

struct Row {
    triple: String,
    what: String,
    time: Duration,
    cold: bool,
}

pub fn build_targets(opts: &Options) -> Result {
    let root = workspace_root();
    let target_dir = root.join(THUMB_TARGET_DIR);

    // Detect every target first: fail before spending minutes on the first one.
    println!("==> toolchains");
    let mut toolchains = Vec::new();
    for triple in &opts.targets {
        let tc = crate::host_tools::target_toolchain(triple)?;
        println!("    {}", tc.describe());
        toolchains.push(tc);
    }

    let mut rows = Vec::new();
    let mut reports: Vec<(String, String)> = Vec::new();
    for tc in &toolchains {
        let triple = tc.triple();
        for (label, flags) in FEATURE_SETS {
            let cold = tc.builds_std() && !core_built(&target_dir, triple);
            let note = if cold {
                " (first build of core from source for this target: 1-2.5 minutes)"
            } else {
                ""
            };
            println!("==> snapmap-core for {triple}, {label}{note}");
            let start = Instant::now();
            let mut cmd = tc.cargo("build");
            cmd.current_dir(&root)
                .args([
                    "--release",
                    "--package",
                    "snapmap-core",
                    "--lib",
                    "--target-dir",
                ])
                .arg(&target_dir)
                .args(*flags);
            run(&mut cmd)?;
            let time = start.elapsed();
            println!("    {triple}, {label}: built in {}", format_duration(time));
            rows.push(Row {
                triple: triple.to_owned(),
                what: label.to_string(),
                time,
                cold,
            });
        }
        if opts.read_path_check {
            println!("==> read-path check for {triple}");
            let start = Instant::now();
            let cold = tc.builds_std() && !probe_core_built(&target_dir, triple);
            let report = read_path::check(tc, &root, &target_dir)?;
            println!("    {triple}: {report}");
            rows.push(Row {
                triple: triple.to_owned(),
                what: "read-path probe".into(),
                time: start.elapsed(),
                cold,
            });
            reports.push((triple.to_owned(), report));
        }
    }

    println!("==> build-targets summary");
    for row in &rows {
        let cold = if row.cold {
            "  (core built from source)"
        } else {
            ""
        };
        println!(
            "    {:<28} {:<22} {:>8}{cold}",
            row.triple,
            row.what,
            format_duration(row.time)
        );
    }
    for tc in &toolchains {
        let triple = tc.triple();
        match reports.iter().find(|(t, _)| t == triple) {
            Some((_, r)) => println!("    {triple}: {r}"),
            None => println!("    {triple}: read path not checked (--no-read-path-check)"),
        }
    }
    if rows.is_empty() {
        return fail("no target to build");
    }
    Ok(())
}

/// Whether `core` was already compiled from source for `triple` in `target_dir`.
fn core_built(target_dir: &Path, triple: &str) -> bool {
    has_libcore(&target_dir.join(triple).join("release/deps"))
}

/// The probe is a crate of its own, so its `core` is a build of its own.
fn probe_core_built(target_dir: &Path, triple: &str) -> bool {
    // Both builds share the deps directory; a second libcore means the probe's exists too.
    count_libcore(&target_dir.join(triple).join("release/deps")) >= 2
}

fn has_libcore(dir: &Path) -> bool {
    count_libcore(dir) > 0
}

fn count_libcore(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with("libcore-") && n.ends_with(".rlib"))
                })
                .count()
        })
        .unwrap_or(0)
}
