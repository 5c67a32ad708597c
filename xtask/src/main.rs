//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! Plain std, no dependencies. The per-target toolchain logic (installed `core` or Debian's
//! rustc with `-Zbuild-std`) lives in [`toolchain`] for reuse by firmware builds.

mod bench;
mod bench_emulated;
mod boards;
mod build_targets;
mod demo;
mod elf;
mod emulator;
mod firmware;
mod host_tools;
mod page;
mod read_path;
mod target_tests;
mod tasks;
mod toolchain;
mod uf2;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
cargo xtask <COMMAND> [OPTIONS]

Commands:
  build-targets   build snapmap-core for the thumb targets (v6m, v7em, v8m.main), both
                  feature sets, into target/thumb; link a probe proving the read path takes no
                  critical section
  loom            run the loom models (host-tests/tests/loom.rs), LOOM_MAX_PREEMPTIONS=3 unless set
  tsan            run the stress tests (host-tests/tests/stress.rs) under ThreadSanitizer
                  (nightly)
  asan            run the core's unit tests and the host tests under AddressSanitizer (nightly)
  miri            run the core's unit tests and three small stress tests under Miri (nightly)
  ci              fmt, clippy, cargo test, loom, build-targets, tsan, asan, miri, cargo
                  package; timed
  bench [--quick] run the host benchmarks against peers; write BENCHMARKS.md and plots
  bench-m33 [--no-page]
                  instructions per get/insert/batch and per read under concurrent writes on
                  the emulated dual Cortex-M33 (QEMU -icount); write BENCHMARKS-m33.md
  bench-rp2040 [--no-page]
                  cycles per get/insert/batch and per read under concurrent writes on the
                  emulated RP2040 (two M0+); write BENCHMARKS-rp2040.md
  toolchain [TRIPLE]...
                  show how each thumb target is built (installed core or Debian build-std) and
                  the equivalent cargo command line
  demo [--board rp2040|mps2-an521] [--build-only]
                  the dual-core firmware demo for the RP2040 (default: ELF + UF2, run on a
                  Pico through probe-rs when a probe is listed, else on the emulated RP2040)
                  or QEMU mps2-an521; prints PASS/FAIL with counts
  test-targets [--board mps2-an521|microbit|rp2040]...
                  snapmap-core's tests on emulated cores: dual Cortex-M33, Cortex-M0, and
                  the RP2040's dual Cortex-M0+
  help [COMMAND]  this text, or a command's

Run `cargo xtask help <COMMAND>` or `cargo xtask <COMMAND> --help` for details.
";

const TOOLCHAIN_HELP: &str = "\
cargo xtask toolchain [TRIPLE]...

For each target (default: the thumb matrix), shows where core comes from (the active toolchain,
or Debian's /usr/bin/rustc with -Zbuild-std=core), the linker, and the equivalent command line
for `cargo build`. Exits 1 if a target has no usable toolchain.
";

/// A parsed command line.
#[derive(Debug, PartialEq)]
enum Cli {
    Help(Option<&'static str>),
    BuildTargets {
        targets: Vec<String>,
        read_path_check: bool,
    },
    Loom(Vec<String>),
    Tsan(Vec<String>),
    Asan(Vec<String>),
    Miri(Vec<String>),
    Ci(tasks::CiOptions),
    Toolchain(Vec<String>),
    Bench(bench::Options),
    BenchEmulated(&'static bench_emulated::Bench, bench_emulated::Options),
    Demo(demo::Options),
    TestTargets(target_tests::Options),
}

/// A usage error: printed with the relevant help, exit code 2.
#[derive(Debug, PartialEq)]
struct UsageError {
    message: String,
    help: &'static str,
}

fn usage_error(message: impl Into<String>, help: &'static str) -> UsageError {
    UsageError {
        message: message.into(),
        help,
    }
}

fn command_help(name: &str) -> Option<&'static str> {
    match name {
        "build-targets" => Some(build_targets::HELP),
        "loom" => Some(tasks::LOOM_HELP),
        "tsan" => Some(tasks::TSAN_HELP),
        "asan" => Some(tasks::ASAN_HELP),
        "miri" => Some(tasks::MIRI_HELP),
        "ci" => Some(tasks::CI_HELP),
        "toolchain" => Some(TOOLCHAIN_HELP),
        "bench" => Some(bench::HELP),
        "bench-m33" => Some(bench_emulated::M33.help),
        "bench-rp2040" => Some(bench_emulated::RP2040.help),
        "demo" => Some(demo::HELP),
        "test-targets" => Some(target_tests::HELP),
        "help" => Some(USAGE),
        _ => None,
    }
}

fn is_help(arg: &str) -> bool {
    arg == "-h" || arg == "--help"
}

fn parse(args: &[String]) -> Result<Cli, UsageError> {
    let Some((command, rest)) = args.split_first() else {
        return Err(usage_error("no command given", USAGE));
    };
    match command.as_str() {
        "-h" | "--help" | "help" => match rest {
            [] => Ok(Cli::Help(None)),
            [name] => command_help(name)
                .map(|h| Cli::Help(Some(h)))
                .ok_or_else(|| usage_error(format!("unknown command `{name}`"), USAGE)),
            _ => Err(usage_error("`help` takes at most one command", USAGE)),
        },
        "build-targets" => {
            let help = build_targets::HELP;
            let (mut targets, mut read_path_check) = (Vec::new(), true);
            let mut it = rest.iter();
            while let Some(arg) = it.next() {
                match arg.as_str() {
                    a if is_help(a) => return Ok(Cli::Help(Some(help))),
                    "--target" => match it.next() {
                        Some(t) if build_targets::THUMB_TARGETS.contains(&t.as_str()) => {
                            targets.push(t.clone())
                        }
                        Some(t) => {
                            let known = build_targets::THUMB_TARGETS.join(", ");
                            return Err(usage_error(
                                format!("`{t}` is not in the matrix ({known})"),
                                help,
                            ));
                        }
                        None => return Err(usage_error("`--target` needs a triple", help)),
                    },
                    a if a.starts_with("--target=") => {
                        let t = &a["--target=".len()..];
                        if !build_targets::THUMB_TARGETS.contains(&t) {
                            let known = build_targets::THUMB_TARGETS.join(", ");
                            return Err(usage_error(
                                format!("`{t}` is not in the matrix ({known})"),
                                help,
                            ));
                        }
                        targets.push(t.to_owned());
                    }
                    "--no-read-path-check" => read_path_check = false,
                    other => {
                        return Err(usage_error(format!("unexpected argument `{other}`"), help))
                    }
                }
            }
            if targets.is_empty() {
                targets = build_targets::Options::default().targets;
            }
            targets.dedup();
            Ok(Cli::BuildTargets {
                targets,
                read_path_check,
            })
        }
        "loom" | "tsan" | "asan" | "miri" => {
            // Everything is passed to cargo test; only a leading --help is ours.
            if rest.first().is_some_and(|a| is_help(a)) {
                return Ok(Cli::Help(command_help(command)));
            }
            let extra = rest.to_vec();
            Ok(match command.as_str() {
                "loom" => Cli::Loom(extra),
                "tsan" => Cli::Tsan(extra),
                "asan" => Cli::Asan(extra),
                _ => Cli::Miri(extra),
            })
        }
        "ci" => {
            let mut opts = tasks::CiOptions::default();
            let mut it = rest.iter();
            while let Some(arg) = it.next() {
                match arg.as_str() {
                    a if is_help(a) => return Ok(Cli::Help(Some(tasks::CI_HELP))),
                    "--allow-dirty" => opts.allow_dirty = true,
                    "--skip" => match it.next() {
                        Some(step) if tasks::CI_STEPS.contains(&step.as_str()) => {
                            opts.skip.push(step.clone())
                        }
                        Some(step) => {
                            let known = tasks::CI_STEPS.join(", ");
                            return Err(usage_error(
                                format!("unknown step `{step}` (steps: {known})"),
                                tasks::CI_HELP,
                            ));
                        }
                        None => {
                            return Err(usage_error("`--skip` needs a step name", tasks::CI_HELP))
                        }
                    },
                    other => {
                        return Err(usage_error(
                            format!("unexpected argument `{other}`"),
                            tasks::CI_HELP,
                        ));
                    }
                }
            }
            Ok(Cli::Ci(opts))
        }
        "toolchain" => {
            if rest.iter().any(|a| is_help(a)) {
                return Ok(Cli::Help(Some(TOOLCHAIN_HELP)));
            }
            if let Some(flag) = rest.iter().find(|a| a.starts_with('-')) {
                return Err(usage_error(
                    format!("unexpected argument `{flag}`"),
                    TOOLCHAIN_HELP,
                ));
            }
            Ok(Cli::Toolchain(rest.to_vec()))
        }
        "bench" => {
            if rest.iter().any(|a| is_help(a)) {
                return Ok(Cli::Help(Some(bench::HELP)));
            }
            bench::parse(rest)
                .map(Cli::Bench)
                .map_err(|e| usage_error(e, bench::HELP))
        }
        "bench-m33" | "bench-rp2040" => {
            let bench = if command == "bench-m33" {
                &bench_emulated::M33
            } else {
                &bench_emulated::RP2040
            };
            if rest.iter().any(|a| is_help(a)) {
                return Ok(Cli::Help(Some(bench.help)));
            }
            bench_emulated::parse(rest)
                .map(|options| Cli::BenchEmulated(bench, options))
                .map_err(|e| usage_error(e, bench.help))
        }
        "demo" | "test-targets" => {
            let help = command_help(command).unwrap_or(USAGE);
            if rest.iter().any(|a| is_help(a)) {
                return Ok(Cli::Help(Some(help)));
            }
            let parsed = if command == "demo" {
                demo::parse(rest).map(Cli::Demo)
            } else {
                target_tests::parse(rest).map(Cli::TestTargets)
            };
            parsed.map_err(|e| usage_error(e, help))
        }
        other => Err(usage_error(format!("unknown command `{other}`"), USAGE)),
    }
}

fn main() -> ExitCode {
    // Arguments that are not valid UTF-8 are a usage error, not a panic.
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let Ok(args) = args else {
        eprintln!("error: arguments must be valid UTF-8\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {}\n\nUsage: {}", e.message, e.help);
            return ExitCode::from(2);
        }
    };
    let result = match cli {
        Cli::Help(help) => {
            print!("Usage: {}", help.unwrap_or(USAGE));
            Ok(())
        }
        Cli::BuildTargets {
            targets,
            read_path_check,
        } => build_targets::build_targets(&build_targets::Options {
            targets,
            read_path_check,
        }),
        Cli::Loom(extra) => tasks::loom(&extra),
        Cli::Tsan(extra) => tasks::tsan(&extra),
        Cli::Asan(extra) => tasks::asan(&extra),
        Cli::Miri(extra) => tasks::miri(&extra),
        Cli::Ci(opts) => tasks::ci(&opts),
        Cli::Toolchain(triples) => show_toolchains(&triples),
        Cli::Bench(options) => bench::bench(&options),
        Cli::BenchEmulated(bench, options) => bench_emulated::run(bench, &options),
        // These print their own verdict as the last line, and choose their exit status.
        Cli::Demo(options) => return demo::run(&options),
        Cli::TestTargets(options) => return target_tests::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask toolchain`: what [`toolchain`] decides for each target.
fn show_toolchains(triples: &[String]) -> util::Result {
    let defaults: Vec<String> = build_targets::THUMB_TARGETS
        .iter()
        .map(|t| t.to_string())
        .collect();
    let triples = if triples.is_empty() {
        &defaults[..]
    } else {
        triples
    };
    let mut failed = false;
    for triple in triples {
        match toolchain::TargetToolchain::detect(triple) {
            Ok(tc) => {
                let source = match tc.std_source() {
                    toolchain::StdSource::Installed { .. } => "installed",
                    toolchain::StdSource::BuildStd { .. } => "build-std",
                };
                println!("{triple}: {source}");
                println!("  {}", tc.describe());
                match tc.linker() {
                    Some(l) => println!("  linker: {} (via {})", l.display(), tc.linker_env_var()),
                    None => println!("  linker: the toolchain's default"),
                }
                println!("  runner variable: {}", tc.runner_env_var());
                let build = toolchain::cargo_for_target(triple, "build")?;
                println!("  $ {}", util::display_command(&build));
            }
            Err(e) => {
                failed = true;
                eprintln!("{triple}: {e}");
            }
        }
    }
    if failed {
        return util::fail("some targets have no usable toolchain");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn help_forms() {
        assert_eq!(parse(&args("--help")), Ok(Cli::Help(None)));
        assert_eq!(parse(&args("help")), Ok(Cli::Help(None)));
        assert_eq!(parse(&args("help ci")), Ok(Cli::Help(Some(tasks::CI_HELP))));
        assert_eq!(
            parse(&args("build-targets -h")),
            Ok(Cli::Help(Some(build_targets::HELP)))
        );
        assert_eq!(
            parse(&args("loom --help")),
            Ok(Cli::Help(Some(tasks::LOOM_HELP)))
        );
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        assert!(parse(&[]).is_err());
        assert!(parse(&args("frobnicate")).is_err());
        assert!(parse(&args("help frobnicate")).is_err());
        assert!(parse(&args("ci --bogus")).is_err());
        assert!(parse(&args("build-targets --target")).is_err());
        assert!(parse(&args("build-targets --target x86_64-unknown-linux-gnu")).is_err());
    }

    #[test]
    fn build_targets_options() {
        let all = build_targets::Options::default().targets;
        assert_eq!(
            parse(&args("build-targets")),
            Ok(Cli::BuildTargets {
                targets: all,
                read_path_check: true
            })
        );
        assert_eq!(
            parse(&args(
                "build-targets --target thumbv6m-none-eabi --no-read-path-check"
            )),
            Ok(Cli::BuildTargets {
                targets: vec!["thumbv6m-none-eabi".into()],
                read_path_check: false
            })
        );
        assert_eq!(
            parse(&args("build-targets --target=thumbv8m.main-none-eabihf")),
            Ok(Cli::BuildTargets {
                targets: vec!["thumbv8m.main-none-eabihf".into()],
                read_path_check: true
            })
        );
    }

    #[test]
    fn passthrough_and_ci() {
        assert_eq!(
            parse(&args("loom -- model --nocapture")),
            Ok(Cli::Loom(args("-- model --nocapture")))
        );
        assert_eq!(parse(&args("tsan")), Ok(Cli::Tsan(vec![])));
        assert_eq!(parse(&args("asan")), Ok(Cli::Asan(vec![])));
        assert_eq!(
            parse(&args("miri --release")),
            Ok(Cli::Miri(args("--release")))
        );
        assert_eq!(
            parse(&args("ci --allow-dirty --skip tsan --skip fmt")),
            Ok(Cli::Ci(tasks::CiOptions {
                allow_dirty: true,
                skip: args("tsan fmt")
            }))
        );
        assert!(parse(&args("ci --skip")).is_err());
        assert!(parse(&args("ci --skip everything")).is_err());
        assert_eq!(
            parse(&args("toolchain thumbv6m-none-eabi")),
            Ok(Cli::Toolchain(args("thumbv6m-none-eabi")))
        );
        assert!(parse(&args("toolchain --bogus")).is_err());
    }

    #[test]
    fn each_emulated_bench_gets_its_board() {
        let no_page = bench_emulated::Options { no_page: true };
        assert_eq!(
            parse(&args("bench-m33 --no-page")),
            Ok(Cli::BenchEmulated(&bench_emulated::M33, no_page))
        );
        assert_eq!(
            parse(&args("bench-rp2040")),
            Ok(Cli::BenchEmulated(
                &bench_emulated::RP2040,
                bench_emulated::Options::default()
            ))
        );
        assert_eq!(
            parse(&args("bench-rp2040 -h")),
            Ok(Cli::Help(Some(bench_emulated::RP2040.help)))
        );
        assert!(parse(&args("bench-m33 --quick")).is_err());
    }
}
