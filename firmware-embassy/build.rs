//! Links the Pico's memory layout (`../targets/rp2040/memory.x`) with the linker scripts of
//! cortex-m-rt (`link.x`) and defmt (`defmt.x`), and wraps the critical section (see `src/cs.rs`).

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let layout = manifest_dir.join("../targets/rp2040/memory.x");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    if let Err(e) = fs::copy(&layout, out.join("memory.x")) {
        panic!("cannot copy the memory layout {}: {e}", layout.display());
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={}", layout.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg=--nmagic");
    println!("cargo:rustc-link-arg=-Tlink.x");
    println!("cargo:rustc-link-arg=-Tdefmt.x");
    println!("cargo:rustc-link-arg=--wrap=_critical_section_1_0_acquire");
    println!("cargo:rustc-link-arg=--wrap=_critical_section_1_0_release");
}
