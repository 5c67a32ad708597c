//! Links the selected board's memory layout (`../targets/<board>/memory.x`) with the linker
//! scripts of cortex-m-rt (`link.x`) and, for the demo, defmt (`defmt.x`).

use std::env;
use std::fs;
use std::path::PathBuf;

/// `board-*` feature (as cargo spells it in `CARGO_FEATURE_*`) and its folder under `targets/`.
const BOARDS: [(&str, &str); 4] = [
    ("BOARD_AN521", "mps2-an521"),
    ("BOARD_MICROBIT", "microbit"),
    ("BOARD_RP2040", "rp2040"),
    ("BOARD_RP2350", "rp2350"),
];

fn main() {
    let selected: Vec<&str> = BOARDS
        .iter()
        .filter(|(feature, _)| env::var_os(format!("CARGO_FEATURE_{feature}")).is_some())
        .map(|&(_, dir)| dir)
        .collect();
    let board = match selected.as_slice() {
        [board] => *board,
        // src/board/mod.rs reports this with a clear compile error; link nothing meanwhile.
        _ => return,
    };

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let layout = manifest_dir.join("../targets").join(board).join("memory.x");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    if let Err(e) = fs::copy(&layout, out.join("memory.x")) {
        panic!("cannot copy the memory layout {}: {e}", layout.display());
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={}", layout.display());
    println!("cargo:rerun-if-changed=build.rs");

    println!("cargo:rustc-link-arg=-Tlink.x");
    // The demo logs with defmt; the target tests print plain text over semihosting (QEMU).
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");

    if board == "rp2350" {
        // As on the RP2040: the target tests log with defmt over RTT, and flash images keep
        // their sections at their load addresses. The critical section is this crate's own
        // (`cs::spinlock`, counted through `cs::Counting`): no link-time wrapping.
        println!("cargo:rustc-link-arg-tests=-Tdefmt.x");
        println!("cargo:rustc-link-arg=--nmagic");
    }
    if board == "rp2040" {
        // There the target tests log with defmt too (over RTT: no semihosting).
        println!("cargo:rustc-link-arg-tests=-Tdefmt.x");
        // Flash images: keep sections at their load addresses without page alignment padding.
        println!("cargo:rustc-link-arg=--nmagic");
        // rp2040-hal's `critical-section-impl` registers the real critical section; route every
        // call to it through the counting shim in src/cs/link_wrap.rs.
        println!("cargo:rustc-link-arg=--wrap=_critical_section_1_0_acquire");
        println!("cargo:rustc-link-arg=--wrap=_critical_section_1_0_release");
    }
}
