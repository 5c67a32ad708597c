//! `cargo xtask loom`, `cargo xtask tsan`, `cargo xtask ci`.

use std::env;
use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::build_targets::{self, build_targets};
use crate::toolchain::{cargo_program, host_triple};
use crate::util::{fail, format_duration, run, workspace_root, Failure, Result};

/// Loom's preemption bound unless `LOOM_MAX_PREEMPTIONS` is set: keeps CI short.
pub const DEFAULT_LOOM_MAX_PREEMPTIONS: &str = "3";
/// Work scale for the stress tests under ThreadSanitizer (5-15x slower) unless set.
pub const DEFAULT_TSAN_STRESS_SCALE: &str = "0.05";

/// ThreadSanitizer suppressions (false positives of the uninstrumented std), from the root.
pub const TSAN_SUPPRESSIONS: &str = "xtask/tsan-suppressions.txt";

pub const LOOM_HELP: &str = "\
cargo xtask loom [ARGS]...

Runs the loom models: RUSTFLAGS=\"--cfg loom\" cargo test -p host-tests --release --test loom
(the map's), then the same for -p snapmap-core --lib (the page pool's, in src/pages.rs), into
target/loom. LOOM_MAX_PREEMPTIONS defaults to 3 (set it to explore more). ARGS go to both cargo
test runs (e.g. `-- model_name --nocapture`).

Without ARGS it then proves the models have teeth: for each mutant of the protocol
(--cfg snapmap_mutant=\"no_writer_fence\", \"no_base_pin\", \"no_sticky_pin\" and
\"early_page_reuse\", into target/loom-mutant) it runs
the model that must catch it, which passes only if loom reports the race (`should_panic`).
";

/// Where loom models live: the map's, through its public API, and the page pool's, inside the
/// crate (the pool is not public).
const MAP_MODELS: [&str; 4] = ["-p", "host-tests", "--test", "loom"];
const POOL_MODELS: [&str; 3] = ["-p", "snapmap-core", "--lib"];

/// Protocol mutants (`cfg(snapmap_mutant)` in snapmap-core), where the model that must fail
/// under each lives, and its name.
const LOOM_MUTANTS: [(&str, &[&str], &str); 4] = [
    ("no_writer_fence", &MAP_MODELS, "two_writers_and_a_reader"),
    ("no_base_pin", &MAP_MODELS, "two_writers_and_a_reader"),
    (
        "no_sticky_pin",
        &MAP_MODELS,
        "reader_rereads_through_its_sticky_pin",
    ),
    (
        "early_page_reuse",
        &POOL_MODELS,
        "pages::model::reader_holds_a_page_a_writer_retires",
    ),
];

pub const TSAN_HELP: &str = "\
cargo xtask tsan [ARGS]...

Runs the stress tests under ThreadSanitizer with the nightly toolchain:
RUSTFLAGS=\"-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer\" cargo +nightly test
-p host-tests --test stress --target <host> into target/tsan. The standard library stays
uninstrumented (no rust-src for nightly here), so TSAN_OPTIONS gets the suppressions in
xtask/tsan-suppressions.txt (std-internal false positives only; your TSAN_OPTIONS are appended).
SNAPMAP_STRESS_SCALE defaults to 0.05 (the stress tests scale their work by it). ARGS go to
cargo test.
";

pub const CI_HELP: &str = "\
cargo xtask ci [--allow-dirty] [--skip STEP]...

Runs, in order, stopping at the first failure:
  fmt             cargo fmt --all -- --check
  clippy          cargo clippy --workspace --all-targets -- -D warnings
  test            cargo test
  loom            cargo xtask loom
  build-targets   cargo xtask build-targets
  tsan            cargo xtask tsan
  package         cargo package -p snapmap-core
and prints the time each step took.

Options:
  --allow-dirty   pass --allow-dirty to cargo package (for local runs with uncommitted changes;
                  CI runs on a clean checkout and does not need it)
  --skip STEP     do not run STEP (one of the names above; repeatable; for local runs)
";

/// Appends `flags` to the caller's `RUSTFLAGS`, if any.
fn rustflags_with(flags: &str) -> OsString {
    match env::var_os("RUSTFLAGS") {
        Some(existing) if !existing.is_empty() => {
            let mut all = existing;
            all.push(" ");
            all.push(flags);
            all
        }
        _ => flags.into(),
    }
}

fn cargo_in_root() -> Command {
    let mut cmd = Command::new(cargo_program());
    cmd.current_dir(workspace_root());
    cmd
}

pub fn loom(extra: &[String]) -> Result {
    for models in [&MAP_MODELS[..], &POOL_MODELS] {
        run(loom_test("--cfg loom", "target/loom", models).args(extra))?;
    }
    if extra.is_empty() {
        for (mutant, models, model) in LOOM_MUTANTS {
            println!("xtask: loom mutant {mutant}: {model} must fail");
            let cfg = format!("--cfg loom --cfg snapmap_mutant=\"{mutant}\"");
            run(loom_test(&cfg, "target/loom-mutant", models).args(["--", "--exact", model]))?;
        }
    }
    Ok(())
}

/// `cargo test` of the loom models in `models` (cargo's package and target selection) with
/// `cfgs` added to RUSTFLAGS, into `target_dir`.
fn loom_test(cfgs: &str, target_dir: &str, models: &[&str]) -> Command {
    let mut cmd = cargo_in_root();
    cmd.env("RUSTFLAGS", rustflags_with(cfgs));
    if env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        cmd.env("LOOM_MAX_PREEMPTIONS", DEFAULT_LOOM_MAX_PREEMPTIONS);
    }
    cmd.arg("test")
        .args(models)
        .args(["--release", "--target-dir"])
        .arg(workspace_root().join(target_dir));
    cmd
}

/// Whether rustup knows a nightly toolchain.
fn nightly_installed() -> Result<bool> {
    let out = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map_err(|e| {
            Failure(format!(
                "`rustup toolchain list` could not run: {e} (tsan needs rustup's nightly)"
            ))
        })?;
    if !out.status.success() {
        return fail(format!(
            "`rustup toolchain list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim_start().starts_with("nightly")))
}

pub fn tsan(extra: &[String]) -> Result {
    if !nightly_installed()? {
        return fail(
            "ThreadSanitizer needs the nightly toolchain, and rustup has none.\n\
             Install it with: rustup toolchain install nightly --profile minimal",
        );
    }
    let root = workspace_root();
    let host = host_triple()?;
    // `cargo +nightly` goes through the rustup proxy on PATH (not $CARGO, which is stable's
    // cargo itself); `+nightly` overrides the RUSTUP_TOOLCHAIN that `cargo run` passed down.
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&root);
    cmd.env(
        "RUSTFLAGS",
        rustflags_with("-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer"),
    );
    if env::var_os("SNAPMAP_STRESS_SCALE").is_none() {
        cmd.env("SNAPMAP_STRESS_SCALE", DEFAULT_TSAN_STRESS_SCALE);
    }
    // False positives of an uninstrumented std (see the file); the caller's options come after.
    let suppressions = root.join(TSAN_SUPPRESSIONS);
    let mut options = OsString::from(format!(
        "suppressions={} print_suppressions=1",
        suppressions.display()
    ));
    if let Some(user) = env::var_os("TSAN_OPTIONS") {
        options.push(" ");
        options.push(user);
    }
    cmd.env("TSAN_OPTIONS", options);
    // The stable toolchain's rustc must not leak into the nightly build.
    cmd.env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO");
    cmd.args([
        "+nightly",
        "test",
        "-p",
        "host-tests",
        "--test",
        "stress",
        "--target",
        &host,
        "--target-dir",
    ])
    .arg(root.join("target/tsan"))
    .args(extra);
    run(&mut cmd)
}

/// The CI steps' short names, in order (for `--skip`).
pub const CI_STEPS: &[&str] = &[
    "fmt",
    "clippy",
    "test",
    "loom",
    "build-targets",
    "tsan",
    "package",
];

/// Options of `cargo xtask ci`.
#[derive(Debug, Default, PartialEq)]
pub struct CiOptions {
    pub allow_dirty: bool,
    /// Short names from [`CI_STEPS`] not to run (local use; CI runs everything).
    pub skip: Vec<String>,
}

/// What a step runs: a cargo command line, or one of our own tasks.
enum Action {
    Cargo(&'static [&'static str]),
    Task(fn() -> Result),
}

pub fn ci(opts: &CiOptions) -> Result {
    let package: &'static [&'static str] = if opts.allow_dirty {
        &["package", "-p", "snapmap-core", "--allow-dirty"]
    } else {
        &["package", "-p", "snapmap-core"]
    };
    let steps: [(&str, String, Action); 7] = [
        (
            "fmt",
            "cargo fmt --all -- --check".into(),
            Action::Cargo(&["fmt", "--all", "--", "--check"]),
        ),
        (
            "clippy",
            "cargo clippy --workspace --all-targets -- -D warnings".into(),
            Action::Cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        ("test", "cargo test".into(), Action::Cargo(&["test"])),
        (
            "loom",
            "cargo xtask loom".into(),
            Action::Task(|| loom(&[])),
        ),
        (
            "build-targets",
            "cargo xtask build-targets".into(),
            Action::Task(|| build_targets(&build_targets::Options::default())),
        ),
        (
            "tsan",
            "cargo xtask tsan".into(),
            Action::Task(|| tsan(&[])),
        ),
        (
            "package",
            format!("cargo {}", package.join(" ")),
            Action::Cargo(package),
        ),
    ];
    debug_assert!(steps.iter().map(|s| s.0).eq(CI_STEPS.iter().copied()));

    let total = Instant::now();
    let mut done: Vec<(String, Option<Duration>, bool)> = Vec::new();
    let count = steps.len();
    for (i, (key, name, action)) in steps.iter().enumerate() {
        let n = i + 1;
        if opts.skip.iter().any(|s| s == key) {
            println!("\n=== ci [{n}/{count}] {name}: skipped (--skip {key})");
            done.push((name.clone(), None, true));
            continue;
        }
        println!("\n=== ci [{n}/{count}] {name}");
        let start = Instant::now();
        let result = match action {
            Action::Cargo(args) => run(cargo_in_root().args(*args)),
            Action::Task(task) => task(),
        };
        let time = start.elapsed();
        let took = format_duration(time);
        done.push((name.clone(), Some(time), result.is_ok()));
        if let Err(e) = result {
            println!("=== ci [{n}/{count}] {name}: FAILED after {took}");
            print_timings(&done, total.elapsed());
            println!("ci: FAILED at step {n}/{count}; later steps not run");
            return fail(format!("ci step `{name}` failed: {e}"));
        }
        println!("=== ci [{n}/{count}] {name}: ok in {took}");
    }
    print_timings(&done, total.elapsed());
    let skipped = done.iter().filter(|d| d.1.is_none()).count();
    if skipped == 0 {
        println!("ci: all {count} steps passed");
    } else {
        println!("ci: {} steps passed, {skipped} skipped", count - skipped);
    }
    Ok(())
}

fn print_timings(done: &[(String, Option<Duration>, bool)], total: Duration) {
    println!("\n=== ci timings");
    for (name, time, ok) in done {
        let (time, status) = match time {
            None => (String::from("-"), "skipped"),
            Some(t) => (format_duration(*t), if *ok { "ok" } else { "FAILED" }),
        };
        println!("    {time:>8}  {status:<7}  {name}");
    }
    println!("    {:>8}  total", format_duration(total));
}
