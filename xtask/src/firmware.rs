//! Building `firmware-demo/` for a board: the demo, or the target-side test binary.
//!
//! Cargo runs inside `firmware-demo/` (its own workspace, outside the host one), so its
//! `.cargo/config.toml` applies; the compiler comes from [`crate::toolchain::TargetToolchain`]: the installed
//! `core` for the target, or Debian's rustc with `-Zbuild-std`.

use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::boards::Board;
use crate::host_tools;
use crate::util::{display_command, fail, format_duration, workspace_root, Failure, Result};

/// The firmware crate, relative to the workspace root.
pub const FIRMWARE_DIR: &str = "firmware-demo";
/// The embassy firmware (RP2040 only), relative to the workspace root.
pub const EMBASSY_DIR: &str = "firmware-embassy";
/// Where firmware builds go, relative to the workspace root.
pub const FIRMWARE_TARGET_DIR: &str = "target/firmware";
/// How often a long build says it is still going, when cargo's own progress bar is not shown.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// `src/bin/demo`: the dual-core demo.
    Demo,
    /// `tests/on_target`: snapmap-core's tests on the target.
    TargetTests,
    /// `src/bin/bench`: instruction counts on the emulated dual Cortex-M33, cycle counts on the
    /// emulated RP2040.
    Bench,
    /// `firmware-embassy/`: the embassy firmware (RP2040 only; its own crate, no board feature).
    Embassy,
}

/// Builds `artifact` for `board` (release profile) and returns the ELF's path.
pub fn build(board: &Board, artifact: Artifact) -> Result<PathBuf> {
    let root = workspace_root();
    let toolchain = host_tools::target_toolchain(board.triple)?;
    let target_dir = root.join(FIRMWARE_TARGET_DIR);
    let what = match artifact {
        Artifact::Demo => "demo",
        Artifact::TargetTests => "target tests",
        Artifact::Bench => "benchmark",
        Artifact::Embassy => "embassy firmware",
    };
    println!("==> building the {what} for {}", board.description);
    println!("    {}", toolchain.describe());
    let profile_dir = target_dir.join(board.triple).join("release");
    if toolchain.builds_std() && !profile_dir.is_dir() {
        println!(
            "    first build for {}: compiling `core` from source takes 1-2.5 minutes",
            board.triple
        );
    }

    let mut cargo = toolchain.cargo(match artifact {
        Artifact::Demo | Artifact::Bench | Artifact::Embassy => "build",
        Artifact::TargetTests => "test",
    });
    let dir = if artifact == Artifact::Embassy {
        EMBASSY_DIR
    } else {
        FIRMWARE_DIR
    };
    cargo
        .current_dir(root.join(dir))
        .args(["--release", "--locked"])
        .arg("--target-dir")
        .arg(&target_dir);
    if artifact != Artifact::Embassy {
        // firmware-demo's default feature is the Pico (for a plain `cargo run` there): exactly
        // one board's feature, whichever board this is.
        cargo
            .arg("--no-default-features")
            .args(["--features", board.feature]);
    }
    match artifact {
        Artifact::Demo => cargo.args(["--bin", "demo"]),
        Artifact::Bench => cargo.args(["--bin", "bench"]),
        Artifact::Embassy => cargo.args(["--bin", "embassy"]),
        Artifact::TargetTests => cargo.args([
            "--no-run",
            "--test",
            "on_target",
            "--message-format=json-render-diagnostics",
        ]),
    };
    println!("$ (cd {dir} && {})", display_command(&cargo));

    let started = Instant::now();
    let stdout = run_with_heartbeat(&mut cargo, what)?;
    println!("    built in {}", format_duration(started.elapsed()));
    let elf = match artifact {
        Artifact::Demo => profile_dir.join("demo"),
        Artifact::Bench => profile_dir.join("bench"),
        Artifact::Embassy => profile_dir.join("embassy"),
        Artifact::TargetTests => test_executable(&stdout, "on_target").ok_or_else(|| {
            Failure("cargo built the target tests but named no executable".to_owned())
        })?,
    };
    if !elf.is_file() {
        return fail(format!(
            "the build reported success but {} is missing",
            elf.display()
        ));
    }
    Ok(elf)
}

/// Runs `cargo`, with stderr shown as it comes (progress and diagnostics), and returns its
/// stdout. While it runs without a terminal (CI, pipes), prints a line every [`HEARTBEAT`].
fn run_with_heartbeat(cargo: &mut Command, what: &str) -> Result<String> {
    let shown = display_command(cargo);
    let mut child = cargo
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Failure(format!("could not start `{shown}`: {e}")))?;
    let stdout = child.stdout.take();
    let reader = thread::spawn(move || {
        let mut text = String::new();
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines().map_while(io::Result::ok) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    });
    let started = Instant::now();
    let mut next_beat = HEARTBEAT;
    let quiet = io::stderr().is_terminal();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if !quiet && started.elapsed() >= next_beat {
            println!(
                "    ... still building the {what} ({})",
                format_duration(started.elapsed())
            );
            next_beat += HEARTBEAT;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let stdout = reader.join().unwrap_or_default();
    if !status.success() {
        return fail(format!("`{shown}` failed ({status})"));
    }
    Ok(stdout)
}

/// The `executable` cargo reported for test target `name`, from its JSON messages.
fn test_executable(json_lines: &str, name: &str) -> Option<PathBuf> {
    let target = format!("\"name\":\"{name}\"");
    json_lines
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\"") && l.contains(&target))
        .find_map(|l| json_string_field(l, "executable"))
        .map(PathBuf::from)
}

/// The string value of `"field":"..."` in one line of JSON (cargo's messages: no nesting of
/// that field, escapes limited to what paths contain).
fn json_string_field(line: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\":\"");
    let start = line.find(&key)? + key.len();
    let mut value = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_test_executable_in_cargo_json() {
        let json = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"firmware_demo"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"on_target"},"#,
            r#""executable":"/w/target/firmware/thumbv6m-none-eabi/release/deps/on_target-1a\"b","fresh":true}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            test_executable(json, "on_target"),
            Some(PathBuf::from(
                "/w/target/firmware/thumbv6m-none-eabi/release/deps/on_target-1a\"b"
            ))
        );
        assert_eq!(test_executable(json, "other"), None);
        assert_eq!(
            json_string_field(r#"{"executable":"unterminated"#, "executable"),
            None
        );
    }
}
