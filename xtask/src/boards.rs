//! The boards the firmware in `firmware-demo/` runs on, and their runner settings, which live
//! in `targets/<board>/` next to each board's memory layout.

use std::fs;
use std::path::PathBuf;

use crate::util::{workspace_root, Failure, Result};

/// How a board's firmware is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// `qemu-system-arm` with the words of `targets/<dir>/qemu-args`, then `-kernel <ELF>`.
    Qemu,
    /// `probe-rs run` with the words of `targets/<dir>/probe-rs-args`, then the ELF.
    ProbeRs,
}

/// One board.
#[derive(Debug, PartialEq, Eq)]
pub struct Board {
    /// What `--board` accepts first, and the folder under `targets/`.
    pub name: &'static str,
    /// Other spellings `--board` accepts.
    pub aliases: &'static [&'static str],
    /// What it is, for messages.
    pub description: &'static str,
    /// The Rust target triple.
    pub triple: &'static str,
    /// The firmware-demo feature that selects it.
    pub feature: &'static str,
    /// Cores running the firmware.
    pub cores: usize,
    pub runner: Runner,
}

/// QEMU's dual Cortex-M33 machine: the demo's default board, and real two-core races.
pub const AN521: Board = Board {
    name: "mps2-an521",
    aliases: &["an521", "qemu"],
    description: "QEMU mps2-an521, 2 x Cortex-M33",
    triple: "thumbv8m.main-none-eabihf",
    feature: "board-an521",
    cores: 2,
    runner: Runner::Qemu,
};

/// QEMU's micro:bit with a Cortex-M0: ARMv6-M, snapmap's critical-section CAS path.
pub const MICROBIT: Board = Board {
    name: "microbit",
    aliases: &["m0", "cortex-m0"],
    description: "QEMU microbit, Cortex-M0 (ARMv6-M)",
    triple: "thumbv6m-none-eabi",
    feature: "board-microbit",
    cores: 1,
    runner: Runner::Qemu,
};

/// The Raspberry Pi Pico: two Cortex-M0+, run through a debug probe.
pub const RP2040: Board = Board {
    name: "rp2040",
    aliases: &["pico"],
    description: "Raspberry Pi Pico (RP2040), 2 x Cortex-M0+",
    triple: "thumbv6m-none-eabi",
    feature: "board-rp2040",
    cores: 2,
    runner: Runner::ProbeRs,
};

/// The Raspberry Pi Pico 2: two Cortex-M33 (RP2350), run through a debug probe or on the
/// emulated RP2350 (targets/rp2350/runner).
pub const RP2350: Board = Board {
    name: "rp2350",
    aliases: &["pico2", "pico-2"],
    description: "Raspberry Pi Pico 2 (RP2350), 2 x Cortex-M33",
    triple: "thumbv8m.main-none-eabihf",
    feature: "board-rp2350",
    cores: 2,
    runner: Runner::ProbeRs,
};

#[cfg(test)]
pub const ALL: &[&Board] = &[&AN521, &MICROBIT, &RP2040, &RP2350];

impl Board {
    /// The board named `name` (or one of its aliases), among `choices`.
    pub fn find(name: &str, choices: &[&'static Board]) -> Option<&'static Board> {
        choices
            .iter()
            .copied()
            .find(|b| b.name == name || b.aliases.contains(&name))
    }

    /// `targets/<name>/`.
    pub fn dir(&self) -> PathBuf {
        workspace_root().join("targets").join(self.name)
    }

    /// The runner's arguments from `targets/<name>/<qemu-args|probe-rs-args>`.
    pub fn runner_args(&self) -> Result<Vec<String>> {
        let file = self.dir().join(match self.runner {
            Runner::Qemu => "qemu-args",
            Runner::ProbeRs => "probe-rs-args",
        });
        let text = fs::read_to_string(&file).map_err(|e| {
            Failure(format!(
                "cannot read the runner settings {}: {e}",
                file.display()
            ))
        })?;
        Ok(parse_args(&text))
    }
}

/// Whitespace-separated words, `#` to the end of the line a comment.
fn parse_args(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .map(str::to_owned)
        .collect()
}

/// `a, b or c`: the names `--board` accepts among `choices`, for messages.
pub fn names(choices: &[&Board]) -> String {
    let names: Vec<&str> = choices.iter().map(|b| b.name).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_files_parse_to_words() {
        let text = "# comment\n-machine mps2-an521  # trailing\n\n-semihosting-config enable=on\n";
        assert_eq!(
            parse_args(text),
            ["-machine", "mps2-an521", "-semihosting-config", "enable=on"]
        );
    }

    #[test]
    fn boards_are_found_by_name_and_alias() {
        assert_eq!(Board::find("an521", ALL), Some(&AN521));
        assert_eq!(Board::find("pico", ALL), Some(&RP2040));
        assert_eq!(Board::find("rp2040", &[&AN521]), None);
        assert_eq!(Board::find("pico2", ALL), Some(&RP2350));
        assert_eq!(
            names(&[&AN521, &MICROBIT, &RP2040]),
            "mps2-an521, microbit or rp2040"
        );
    }

    #[test]
    fn every_board_has_its_files() {
        for board in ALL {
            assert!(board.dir().join("memory.x").is_file(), "{}", board.name);
            assert!(!board.runner_args().unwrap().is_empty(), "{}", board.name);
        }
    }
}
