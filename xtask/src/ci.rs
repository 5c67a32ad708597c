//! `cargo xtask ci`: every check, in order, each timed, stopping at the first failure.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::toolchain::cargo_program;
use crate::util::{fail, format_duration, run, workspace_root, Result};

pub const HELP: &str = "\
cargo xtask ci [--allow-dirty] [--skip STEP]...

Runs, in order, stopping at the first failure:
  fmt             cargo fmt --all -- --check
  fmt-firmware    cargo fmt --manifest-path firmware-demo/Cargo.toml -- --check
  clippy          cargo clippy --workspace --all-targets -- -D warnings
  test            cargo test
  loom            cargo xtask loom
  build-targets   cargo xtask build-targets
  tsan            cargo xtask tsan
  asan            cargo xtask asan
  miri            cargo xtask miri
  package         cargo package -p snapmap-core
and prints the time each step took.

Options:
  --allow-dirty   pass --allow-dirty to cargo package (for local runs with uncommitted changes;
                  CI runs on a clean checkout and does not need it)
  --skip STEP     do not run STEP (one of the names above; repeatable; for local runs)
";

/// The steps, as [`HELP`] lists them: a short name for `--skip`, and cargo's arguments.
/// firmware-demo is a workspace of its own, which `fmt --all` does not reach.
pub const STEPS: [(&str, &str); 10] = [
    ("fmt", "fmt --all -- --check"),
    (
        "fmt-firmware",
        "fmt --manifest-path firmware-demo/Cargo.toml -- --check",
    ),
    ("clippy", "clippy --workspace --all-targets -- -D warnings"),
    ("test", "test"),
    ("loom", "xtask loom"),
    ("build-targets", "xtask build-targets"),
    ("tsan", "xtask tsan"),
    ("asan", "xtask asan"),
    ("miri", "xtask miri"),
    ("package", "package -p snapmap-core"),
];

/// Options of `cargo xtask ci`.
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub allow_dirty: bool,
    /// Short names from [`STEPS`] not to run (local use; CI runs everything).
    pub skip: Vec<String>,
}

pub fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let mut opts = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--allow-dirty" => opts.allow_dirty = true,
            "--skip" => match it.next() {
                Some(step) if STEPS.iter().any(|s| s.0 == step) => opts.skip.push(step.clone()),
                Some(step) => {
                    let known = STEPS.map(|s| s.0).join(", ");
                    return Err(format!("unknown step `{step}` (steps: {known})"));
                }
                None => return Err("`--skip` needs a step name".into()),
            },
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(opts)
}

pub fn ci(opts: &Options) -> Result {
    let total = Instant::now();
    let mut done: Vec<(String, Option<Duration>, bool)> = Vec::new();
    let count = STEPS.len();
    for (i, (key, args)) in STEPS.iter().enumerate() {
        let n = i + 1;
        let mut args: Vec<&str> = args.split_whitespace().collect();
        if *key == "package" && opts.allow_dirty {
            args.push("--allow-dirty");
        }
        let name = format!("cargo {}", args.join(" "));
        if opts.skip.iter().any(|s| s == key) {
            println!("\n=== ci [{n}/{count}] {name}: skipped (--skip {key})");
            done.push((name, None, true));
            continue;
        }
        println!("\n=== ci [{n}/{count}] {name}");
        let start = Instant::now();
        let result = run(Command::new(cargo_program())
            .current_dir(workspace_root())
            .args(&args));
        let took = format_duration(start.elapsed());
        done.push((name.clone(), Some(start.elapsed()), result.is_ok()));
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
    println!("ci: {} steps passed, {skipped} skipped", count - skipped);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The help lists every step with the command it runs.
    #[test]
    fn the_help_lists_the_steps() {
        for (key, args) in STEPS {
            let line = HELP.lines().find(|l| l.trim_start().starts_with(key));
            let line = line.unwrap_or_else(|| panic!("no `{key}` in the help"));
            assert!(line.ends_with(&format!("cargo {args}")), "{line}");
        }
    }
}
