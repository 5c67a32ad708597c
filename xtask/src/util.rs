//! Small helpers: the workspace root, running commands with an echo, errors, timings.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A failed task: a message for the user. `main` prints it and exits 1.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// What every task returns.
pub type Result<T = ()> = std::result::Result<T, Failure>;

/// Shorthand for an `Err(Failure)`.
pub fn fail<T>(msg: impl Into<String>) -> Result<T> {
    Err(Failure(msg.into()))
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// A command as a shell would show it, with the environment variables we set in front.
pub fn display_command(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            parts.push(format!("{}={}", key.to_string_lossy(), quote(value)));
        }
    }
    parts.push(quote(cmd.get_program()));
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:+,@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Echoes `cmd`, runs it with inherited stdio, fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result {
    let shown = display_command(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .map_err(|e| Failure(format!("could not start `{shown}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        fail(format!("`{shown}` failed ({status})"))
    }
}

/// `12.3s` or `2m05s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// The first line `program args` prints, or `?`.
pub fn first_line(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().ok();
    out.filter(|o| o.status.success())
        .and_then(|o| {
            Some(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()?
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| "?".into())
}

/// The short commit, with `+dirty` if `paths` have uncommitted changes (pages a run rewrites do
/// not count).
pub fn commit(paths: &[&str]) -> String {
    let root = workspace_root();
    let root = root.to_string_lossy();
    let hash = first_line("git", &["-C", &root, "rev-parse", "--short", "HEAD"]);
    let status = [&["-C", &root, "status", "--porcelain", "--"], paths].concat();
    let out = Command::new("git").args(status).output();
    match out {
        Ok(o) if !o.stdout.is_empty() => format!("{hash}+dirty"),
        _ => hash,
    }
}

/// Now, as the pages date a run.
pub fn now_utc() -> String {
    first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn commands_are_shown_quoted() {
        let mut cmd = Command::new("cargo");
        cmd.env("RUSTFLAGS", "--cfg loom")
            .args(["test", "-p", "host-tests"]);
        assert_eq!(
            display_command(&cmd),
            "RUSTFLAGS='--cfg loom' cargo test -p host-tests"
        );
    }
}
