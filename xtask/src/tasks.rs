//! `cargo xtask loom`, `cargo xtask tsan`, `cargo xtask asan`, `cargo xtask miri`.

use std::env;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::toolchain::{cargo_program, host_triple};
use crate::util::{display_command, fail, format_duration, run, workspace_root, Failure, Result};

/// Loom's preemption bound unless `LOOM_MAX_PREEMPTIONS` is set: keeps CI short.
pub const DEFAULT_LOOM_MAX_PREEMPTIONS: &str = "3";
/// Work scale for the stress tests under ThreadSanitizer (5-15x slower) unless set.
pub const DEFAULT_TSAN_STRESS_SCALE: &str = "0.05";

/// Work scale for the stress tests under AddressSanitizer (about 2x slower) unless set.
pub const DEFAULT_ASAN_STRESS_SCALE: &str = "0.2";
/// Work scale for the stress tests under Miri (thousands of times slower) unless set.
pub const DEFAULT_MIRI_STRESS_SCALE: &str = "0.0001";
/// Scheduler seeds Miri runs the concurrent tests on (`-Zmiri-many-seeds=0..N`).
pub const MIRI_SEEDS: u32 = 4;
/// The stress tests Miri runs: batches racing two readers (by writers of the map, and by its
/// sole `Writer`), transfers in a `static` map with CAS retries, drop counting with injected
/// clone panics, writers that run out of spare pages while readers hold them, and the `Writer`
/// handed over between threads that write through it and threads that write through the map
/// (each under 12 s per seed).
const MIRI_STRESS_TESTS: [&str; 7] = [
    "batches_are_atomic_with_scarce_generations",
    "batches_by_the_sole_writer_are_atomic",
    "the_writer_and_shared_writers_take_turns_and_lose_nothing",
    "transfers_conserve_the_sum_in_a_static_map",
    "every_key_and_value_dropped_once_with_scarce_generations",
    "page_exhaustion_with_one_spare_page",
    "page_exhaustion_with_two_spare_pages",
];

/// Protocol mutants (as for loom) that Miri must catch in those stress tests: each lets a writer
/// overwrite a generation that a reader or another writer still reads, which Miri reports as a
/// data race (Undefined Behavior).
const MIRI_MUTANTS: [&str; 2] = ["no_writer_fence", "no_base_pin"];

/// ThreadSanitizer suppressions (false positives of the uninstrumented std), from the root.
pub const TSAN_SUPPRESSIONS: &str = "xtask/tsan-suppressions.txt";

pub const LOOM_HELP: &str = "\
cargo xtask loom [ARGS]...

Runs the loom models: RUSTFLAGS=\"--cfg loom\" cargo test -p host-tests --release --test loom,
into target/loom, each model in a process of its own, as many at once as there are cores.
LOOM_MAX_PREEMPTIONS defaults to 3 (set it to explore more). ARGS go to one cargo test of them
all instead (e.g. `-- model_name --nocapture`).

Without ARGS it then proves the models have teeth: for each mutant of the protocol
(--cfg snapmap_mutant=\"no_base_pin\", \"early_page_reuse\", \"birth_is_base\",
\"cleared_life_lost\", \"page_after_base\", for waiting for a change \"no_publish_order\", and
for the sole writer \"sole_ignores_pins\" and \"takeover_skips_wait\", into target/loom-mutant)
it runs the models that must catch it, which pass only if loom reports the race or the lost
wake-up (`should_panic`).
";

/// Where the loom models live: the map's, through its public API.
const MAP_MODELS: [&str; 4] = ["-p", "host-tests", "--test", "loom"];

/// Protocol mutants (`cfg(snapmap_mutant)` in snapmap-core) and the models that must fail under
/// each.
const LOOM_MUTANTS: [(&str, &[&str]); 8] = [
    (
        "no_base_pin",
        &["writer_base_holds_pages_another_writer_retires"],
    ),
    (
        "early_page_reuse",
        &[
            "reader_holds_pages_a_writer_retires",
            "writer_base_holds_pages_another_writer_retires",
            "two_writers_change_different_pages",
            "a_sole_writer_reuses_nothing_a_reader_holds",
        ],
    ),
    (
        "birth_is_base",
        &["a_pin_holds_a_page_born_before_the_base"],
    ),
    (
        "cleared_life_lost",
        &["a_pin_holds_a_page_a_clear_took_out"],
    ),
    (
        "page_after_base",
        &["a_stale_base_does_not_reuse_pages_that_died_after_it"],
    ),
    (
        "no_publish_order",
        &[
            "a_waiter_never_misses_a_publication",
            "a_waiter_never_misses_a_sole_publication",
        ],
    ),
    (
        "sole_ignores_pins",
        &[
            "a_sole_writer_reuses_nothing_a_reader_holds",
            "a_sole_writer_reuses_nothing_a_one_off_read_holds",
        ],
    ),
    (
        "takeover_skips_wait",
        &["a_takeover_waits_for_a_shared_write_in_flight"],
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

pub const ASAN_HELP: &str = "\
cargo xtask asan [ARGS]...

Runs snapmap-core's unit tests and every host test (property, stress; the loom file is empty
without --cfg loom) under AddressSanitizer with the nightly toolchain:
RUSTFLAGS=\"-Zsanitizer=address -Cunsafe-allow-abi-mismatch=sanitizer\" cargo +nightly test
-p snapmap-core -p host-tests --tests --target <host> into target/asan. The standard library stays
uninstrumented, as for tsan. SNAPMAP_STRESS_SCALE defaults to 0.2. ARGS go to cargo test.
";

pub const MIRI_HELP: &str = "\
cargo xtask miri [ARGS]...

Runs under Miri (nightly, components miri and rust-src; into target/miri):
  1. snapmap-core's unit tests: cargo +nightly miri test -p snapmap-core --lib
  2. seven small stress tests (host-tests/tests/stress.rs: batches by writers of the map and by
     its sole Writer, transfers, drop counting, page exhaustion with one and with two spare
     pages, the Writer taken in turns against writers of the map) at
     SNAPMAP_STRESS_SCALE=0.0001 unless set, on 4 scheduler seeds (-Zmiri-many-seeds=0..4);
  3. without ARGS, the same stress tests under each of the protocol mutants no_writer_fence and
     no_base_pin (--cfg snapmap_mutant, into target/miri-mutant): passes only if Miri reports
     Undefined Behavior, which shows the run has teeth.
Your MIRIFLAGS are appended to Miri's flags. ARGS go to the cargo commands of 1 and 2 (cargo
options, before the test binary's `--`). Install Miri with:
  rustup component add --toolchain nightly miri rust-src
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

/// `flags`, then the caller's value of the variable `var`, if any (later flags win).
fn flags_then_callers(var: &str, flags: &str) -> OsString {
    let mut all = OsString::from(flags);
    if let Some(user) = env::var_os(var).filter(|v| !v.is_empty()) {
        all.push(" ");
        all.push(user);
    }
    all
}

fn cargo_in_root() -> Command {
    let mut cmd = Command::new(cargo_program());
    cmd.current_dir(workspace_root());
    cmd
}

pub fn loom(extra: &[String]) -> Result {
    if !extra.is_empty() {
        return run(loom_test("--cfg loom", "target/loom", &MAP_MODELS).args(extra));
    }
    run_each_model()?;
    for (mutant, models) in LOOM_MUTANTS {
        for model in models {
            println!("xtask: loom mutant {mutant}: {model} must fail");
            let cfg = format!("--cfg loom --cfg snapmap_mutant=\"{mutant}\"");
            run(loom_test(&cfg, "target/loom-mutant", &MAP_MODELS).args(["--", "--exact", model]))?;
        }
    }
    Ok(())
}

/// Runs every loom model, each in a process of its own, as many at once as there are cores.
/// Loom runs a model's threads as coroutines on stacks it maps and unmaps by the thousand, and
/// two models in one process contend for its memory map: the models took 307 s as two test
/// threads of one process on this project's 2-core machines, and 141 s as two processes.
fn run_each_model() -> Result {
    let mut list = loom_test("--cfg loom", "target/loom", &MAP_MODELS);
    list.args(["--", "--list", "--format", "terse"]);
    println!("$ {}", display_command(&list));
    let out = list.output()?;
    if !out.status.success() {
        return fail(format!(
            "listing the loom models failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let models: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_owned)
        .collect();
    if models.is_empty() {
        return fail("no loom models found");
    }
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(models.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(model) = models.get(i) else { break };
                let mut cmd = loom_test("--cfg loom", "target/loom", &MAP_MODELS);
                cmd.args(["--", "--exact", model]);
                let started = Instant::now();
                // Printed whole when it ends, so that two models' lines do not interleave.
                let result = cmd.output();
                let took = format_duration(started.elapsed());
                let mut report = format!("$ {}  ({took})\n", display_command(&cmd));
                match result {
                    Ok(out) => {
                        report.push_str(&String::from_utf8_lossy(&out.stdout));
                        if !out.status.success() {
                            report.push_str(&String::from_utf8_lossy(&out.stderr));
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{model} ({})", out.status));
                        }
                    }
                    Err(e) => failures.lock().unwrap().push(format!("{model}: {e}")),
                }
                print!("{report}");
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    if failures.is_empty() {
        Ok(())
    } else {
        fail(format!("loom models failed: {}", failures.join(", ")))
    }
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

/// What `rustup` prints for `args`, or a failure naming `what` needs it.
fn rustup_output(args: &[&str], what: &str) -> Result<String> {
    let out = Command::new("rustup").args(args).output().map_err(|e| {
        Failure(format!(
            "`rustup {}` could not run: {e} ({what} needs rustup's nightly)",
            args.join(" ")
        ))
    })?;
    if !out.status.success() {
        return fail(format!(
            "`rustup {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails with how to install it unless rustup has a nightly toolchain (`what` needs it).
fn require_nightly(what: &str) -> Result {
    let toolchains = rustup_output(&["toolchain", "list"], what)?;
    if toolchains
        .lines()
        .any(|l| l.trim_start().starts_with("nightly"))
    {
        return Ok(());
    }
    fail(format!(
        "{what} needs the nightly toolchain, and rustup has none.\n\
         Install it with: rustup toolchain install nightly --profile minimal"
    ))
}

/// `cargo +nightly ...` in the workspace root. Through the rustup proxy on PATH (not $CARGO,
/// which is stable's cargo itself); `+nightly` overrides the RUSTUP_TOOLCHAIN that `cargo run`
/// passed down, and the stable toolchain's rustc must not leak into the nightly build.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root());
    cmd.env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO")
        .arg("+nightly");
    cmd
}

/// Sets `SNAPMAP_STRESS_SCALE` to `scale` unless the caller set it.
fn default_stress_scale(cmd: &mut Command, scale: &str) {
    if env::var_os("SNAPMAP_STRESS_SCALE").is_none() {
        cmd.env("SNAPMAP_STRESS_SCALE", scale);
    }
}

pub fn tsan(extra: &[String]) -> Result {
    require_nightly("ThreadSanitizer")?;
    let root = workspace_root();
    let host = host_triple()?;
    let mut cmd = nightly_cargo();
    cmd.env(
        "RUSTFLAGS",
        rustflags_with("-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer"),
    );
    default_stress_scale(&mut cmd, DEFAULT_TSAN_STRESS_SCALE);
    // False positives of an uninstrumented std (see the file); the caller's options come after.
    let suppressions = root.join(TSAN_SUPPRESSIONS);
    let options = flags_then_callers(
        "TSAN_OPTIONS",
        &format!(
            "suppressions={} print_suppressions=1",
            suppressions.display()
        ),
    );
    cmd.env("TSAN_OPTIONS", options);
    cmd.args([
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

pub fn asan(extra: &[String]) -> Result {
    require_nightly("AddressSanitizer")?;
    let host = host_triple()?;
    let mut cmd = nightly_cargo();
    // `--target`: build scripts and proc macros stay uninstrumented.
    cmd.env(
        "RUSTFLAGS",
        rustflags_with("-Zsanitizer=address -Cunsafe-allow-abi-mismatch=sanitizer"),
    );
    default_stress_scale(&mut cmd, DEFAULT_ASAN_STRESS_SCALE);
    cmd.args([
        "test",
        "-p",
        "snapmap-core",
        "-p",
        "host-tests",
        "--tests",
        "--target",
        &host,
        "--target-dir",
    ])
    .arg(workspace_root().join("target/asan"))
    .args(extra);
    run(&mut cmd)
}

pub fn miri(extra: &[String]) -> Result {
    require_nightly("Miri")?;
    let installed = rustup_output(
        &["component", "list", "--toolchain", "nightly", "--installed"],
        "Miri",
    )?;
    for component in ["miri", "rust-src"] {
        // Listed as `miri-x86_64-unknown-linux-gnu`, but `rust-src` bare.
        if !installed
            .lines()
            .any(|l| l == component || l.starts_with(&format!("{component}-")))
        {
            return fail(format!(
                "Miri needs the nightly component {component}.\n\
                 Install it with: rustup component add --toolchain nightly miri rust-src"
            ));
        }
    }
    let target_dir = workspace_root().join("target/miri");
    let mut unit = nightly_cargo();
    unit.env("MIRIFLAGS", flags_then_callers("MIRIFLAGS", ""));
    unit.args([
        "miri",
        "test",
        "-p",
        "snapmap-core",
        "--lib",
        "--target-dir",
    ])
    .arg(&target_dir)
    .args(extra);
    run(&mut unit)?;

    run(&mut miri_stress(&target_dir, extra))?;
    if !extra.is_empty() {
        return Ok(());
    }
    for mutant in MIRI_MUTANTS {
        println!("xtask: miri mutant {mutant}: the stress tests must show Undefined Behavior");
        let mut cmd = miri_stress(&workspace_root().join("target/miri-mutant"), &[]);
        cmd.env(
            "RUSTFLAGS",
            rustflags_with(&format!("--cfg snapmap_mutant=\"{mutant}\"")),
        );
        let shown = display_command(&cmd);
        println!("$ {shown}");
        let out = cmd
            .output()
            .map_err(|e| Failure(format!("could not start `{shown}`: {e}")))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let Some(found) = stderr.lines().find(|l| l.contains("Undefined Behavior")) else {
            print!("{}", String::from_utf8_lossy(&out.stdout));
            eprint!("{stderr}");
            return fail(format!("Miri did not catch the mutant {mutant}"));
        };
        println!("xtask: caught: {}", found.trim());
    }
    Ok(())
}

/// `cargo miri test` of the stress tests Miri runs, into `target_dir`.
fn miri_stress(target_dir: &Path, extra: &[String]) -> Command {
    let mut cmd = nightly_cargo();
    default_stress_scale(&mut cmd, DEFAULT_MIRI_STRESS_SCALE);
    // Miri isolates the program from the environment: forward the scale.
    cmd.env(
        "MIRIFLAGS",
        flags_then_callers(
            "MIRIFLAGS",
            &format!("-Zmiri-env-forward=SNAPMAP_STRESS_SCALE -Zmiri-many-seeds=0..{MIRI_SEEDS}"),
        ),
    );
    cmd.args([
        "miri",
        "test",
        "-p",
        "host-tests",
        "--test",
        "stress",
        "--target-dir",
    ])
    .arg(target_dir)
    .args(extra)
    .args(["--", "--exact"])
    .args(MIRI_STRESS_TESTS);
    cmd
}
