//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! A driver: it sequences cargo, QEMU, the emulators and the benchmark report, and leaves the
//! parsing to crates (`object` for ELF files, `toml_edit` for the targets file). The per-target
//! toolchain logic (installed `core` or Debian's rustc with `-Zbuild-std`) lives in
//! [`toolchain`] for reuse by firmware builds.

mod bench;
mod bench_emulated;
mod boards;
mod build_targets;
mod ci;
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
  miri            run the core's unit tests and seven small stress tests under Miri (nightly)
  ci              fmt, clippy, cargo test, loom, build-targets, tsan, asan, miri, cargo
                  package; timed
  bench [--quick] [--report-only]
                  run the host benchmarks against peers; write BENCHMARKS.md and plots
  bench-m33 [--no-page] [--report-only]
                  instructions per get/insert/batch and per read under concurrent writes on
                  the emulated dual Cortex-M33 (QEMU -icount); write BENCHMARKS-m33.md
  bench-rp2040 [--no-page] [--report-only]
                  cycles per get/insert/batch and per read under concurrent writes on the
                  emulated RP2040 (two M0+); write BENCHMARKS-rp2040.md
  bench-rp2350 [--no-page] [--report-only]
                  the same in cycles on the emulated RP2350 (the Pico 2's two M33); write
                  BENCHMARKS-rp2350.md
  toolchain [TRIPLE]...
                  show how each thumb target is built (installed core or Debian build-std) and
                  the equivalent cargo command line
  demo [--board rp2040|rp2350|mps2-an521] [--build-only]
                  [--app demo|embassy] [--elf ELF]
                  the dual-core firmware demo for the RP2040 (default: ELF + UF2, run on a
                  Pico through probe-rs when a probe is listed, else on the emulated RP2040),
                  the Pico 2's RP2350 (likewise, on the emulated RP2350) or QEMU mps2-an521;
                  prints PASS/FAIL with counts
  test-targets [--board mps2-an521|microbit|rp2040|rp2350]...
                  snapmap-core's tests on emulated cores: dual Cortex-M33, Cortex-M0, the
                  RP2040's dual Cortex-M0+ and the RP2350's dual Cortex-M33
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
    Help(&'static str),
    BuildTargets(build_targets::Options),
    Loom(Vec<String>),
    Tsan(Vec<String>),
    Asan(Vec<String>),
    Miri(Vec<String>),
    Ci(ci::Options),
    Toolchain(Vec<String>),
    Bench(bench::Options),
    BenchEmulated(&'static bench_emulated::Bench, bench_emulated::Options),
    Demo(demo::Options),
    TestTargets(target_tests::Options),
}

/// A usage error: the message and the help to print with it (exit code 2).
type UsageError = (String, &'static str);

fn command_help(name: &str) -> Option<&'static str> {
    Some(match name {
        "build-targets" => build_targets::HELP,
        "loom" => tasks::LOOM_HELP,
        "tsan" => tasks::TSAN_HELP,
        "asan" => tasks::ASAN_HELP,
        "miri" => tasks::MIRI_HELP,
        "ci" => ci::HELP,
        "toolchain" => TOOLCHAIN_HELP,
        "bench" => bench::HELP,
        "bench-m33" => bench_emulated::M33.help,
        "bench-rp2040" => bench_emulated::RP2040.help,
        "bench-rp2350" => bench_emulated::RP2350.help,
        "demo" => demo::HELP,
        "test-targets" => target_tests::HELP,
        "help" => USAGE,
        _ => return None,
    })
}

fn is_help(arg: &str) -> bool {
    arg == "-h" || arg == "--help"
}

fn parse(args: &[String]) -> Result<Cli, UsageError> {
    let Some((command, rest)) = args.split_first() else {
        return Err(("no command given".into(), USAGE));
    };
    let unknown = |name: &str| (format!("unknown command `{name}`"), USAGE);
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        return match rest {
            [] => Ok(Cli::Help(USAGE)),
            [name] => command_help(name)
                .map(Cli::Help)
                .ok_or_else(|| unknown(name)),
            _ => Err(("`help` takes at most one command".into(), USAGE)),
        };
    }
    let help = command_help(command).ok_or_else(|| unknown(command))?;
    // Everything after these is passed to cargo test; only a leading --help is ours.
    let passthrough = matches!(command.as_str(), "loom" | "tsan" | "asan" | "miri");
    let asks_help = if passthrough {
        rest.first().is_some_and(|a| is_help(a))
    } else {
        rest.iter().any(|a| is_help(a))
    };
    if asks_help {
        return Ok(Cli::Help(help));
    }
    let extra = rest.to_vec();
    let parsed = match command.as_str() {
        "build-targets" => build_targets::parse(rest).map(Cli::BuildTargets),
        "loom" => Ok(Cli::Loom(extra)),
        "tsan" => Ok(Cli::Tsan(extra)),
        "asan" => Ok(Cli::Asan(extra)),
        "miri" => Ok(Cli::Miri(extra)),
        "ci" => ci::parse(rest).map(Cli::Ci),
        "toolchain" => match rest.iter().find(|a| a.starts_with('-')) {
            Some(flag) => Err(format!("unexpected argument `{flag}`")),
            None => Ok(Cli::Toolchain(extra)),
        },
        "bench" => bench::parse(rest).map(Cli::Bench),
        "bench-m33" => {
            bench_emulated::parse(rest).map(|o| Cli::BenchEmulated(&bench_emulated::M33, o))
        }
        "bench-rp2040" => {
            bench_emulated::parse(rest).map(|o| Cli::BenchEmulated(&bench_emulated::RP2040, o))
        }
        "bench-rp2350" => {
            bench_emulated::parse(rest).map(|o| Cli::BenchEmulated(&bench_emulated::RP2350, o))
        }
        "demo" => demo::parse(rest).map(Cli::Demo),
        "test-targets" => target_tests::parse(rest).map(Cli::TestTargets),
        _ => return Err(unknown(command)),
    };
    parsed.map_err(|e| (e, help))
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
        Err((message, help)) => {
            eprintln!("error: {message}\n\nUsage: {help}");
            return ExitCode::from(2);
        }
    };
    let result = match cli {
        Cli::Help(help) => {
            print!("Usage: {help}");
            Ok(())
        }
        Cli::BuildTargets(options) => build_targets::build_targets(&options),
        Cli::Loom(extra) => tasks::loom(&extra),
        Cli::Tsan(extra) => tasks::tsan(&extra),
        Cli::Asan(extra) => tasks::asan(&extra),
        Cli::Miri(extra) => tasks::miri(&extra),
        Cli::Ci(opts) => ci::ci(&opts),
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
        assert_eq!(parse(&args("--help")), Ok(Cli::Help(USAGE)));
        assert_eq!(parse(&args("help")), Ok(Cli::Help(USAGE)));
        assert_eq!(parse(&args("help ci")), Ok(Cli::Help(ci::HELP)));
        let build_help = Ok(Cli::Help(build_targets::HELP));
        assert_eq!(parse(&args("build-targets -h")), build_help);
        assert_eq!(parse(&args("loom --help")), Ok(Cli::Help(tasks::LOOM_HELP)));
        let rp2040 = Ok(Cli::Help(bench_emulated::RP2040.help));
        assert_eq!(parse(&args("bench-rp2040 -h")), rp2040);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            "",
            "frobnicate",
            "help frobnicate",
            "help ci loom",
            "ci --bogus",
            "ci --skip",
            "ci --skip everything",
            "build-targets --target",
            "build-targets --target x86_64-unknown-linux-gnu",
            "toolchain --bogus",
            "bench-m33 --quick",
        ] {
            assert!(parse(&args(bad)).is_err(), "`{bad}` parsed");
        }
    }

    #[test]
    fn build_targets_options() {
        let all = build_targets::Options::default();
        assert_eq!(parse(&args("build-targets")), Ok(Cli::BuildTargets(all)));
        let one = build_targets::Options {
            targets: args("thumbv6m-none-eabi"),
            read_path_check: false,
        };
        let parsed = parse(&args(
            "build-targets --target thumbv6m-none-eabi --no-read-path-check",
        ));
        assert_eq!(parsed, Ok(Cli::BuildTargets(one)));
        let parsed = parse(&args("build-targets --target=thumbv8m.main-none-eabihf"));
        let Ok(Cli::BuildTargets(options)) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(options.targets, args("thumbv8m.main-none-eabihf"));
    }

    #[test]
    fn passthrough_ci_and_benches() {
        let loom = parse(&args("loom -- model --nocapture"));
        assert_eq!(loom, Ok(Cli::Loom(args("-- model --nocapture"))));
        assert_eq!(parse(&args("tsan")), Ok(Cli::Tsan(vec![])));
        assert_eq!(parse(&args("asan")), Ok(Cli::Asan(vec![])));
        assert_eq!(
            parse(&args("miri --release")),
            Ok(Cli::Miri(args("--release")))
        );
        let ci = ci::Options {
            allow_dirty: true,
            skip: args("tsan fmt"),
        };
        assert_eq!(
            parse(&args("ci --allow-dirty --skip tsan --skip fmt")),
            Ok(Cli::Ci(ci))
        );
        let triple = args("thumbv6m-none-eabi");
        assert_eq!(
            parse(&args("toolchain thumbv6m-none-eabi")),
            Ok(Cli::Toolchain(triple))
        );
        let no_page = bench_emulated::Options {
            no_page: true,
            report_only: false,
        };
        let m33 = Cli::BenchEmulated(&bench_emulated::M33, no_page);
        assert_eq!(parse(&args("bench-m33 --no-page")), Ok(m33));
        let rp2040 = Cli::BenchEmulated(&bench_emulated::RP2040, Default::default());
        assert_eq!(parse(&args("bench-rp2040")), Ok(rp2040));
    }
}
