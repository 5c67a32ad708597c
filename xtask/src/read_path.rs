//! Static check that snapmap-core's read path takes no critical section on a target.
//!
//! Builds the probe crate `xtask/probes/v6m-read-path` (a staticlib that instantiates a map and
//! exports read-side and writer-side entry points) for the target with fat LTO, so its one
//! assembly file holds the whole program except the externals (`critical-section`'s
//! `_critical_section_1_0_acquire`, compiler-builtins). Then [`AsmGraph`] computes everything
//! the read entry points can reach through calls, constant pools and vtables, and this fails if
//! any of it references the critical-section implementation, an atomic libcall (`__sync_*`,
//! `__atomic_*`) or contains `cpsid`. As a control, the writer entry points must reach
//! `_critical_section_1_0_acquire` on targets without compare-and-swap: a check that cannot see
//! the writer's critical section proves nothing about the reader.
//!
//! This is a static over-approximation (it sees every call the code could make); the emulated
//! Cortex-M0 run with a counting critical-section implementation is the run-time proof.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::asm_graph::AsmGraph;
use crate::toolchain::TargetToolchain;
use crate::util::{fail, format_duration, run, Failure, Result};

/// The probe crate, relative to the workspace root.
pub const PROBE_DIR: &str = "xtask/probes/v6m-read-path";
const READ_PREFIX: &str = "snapmap_probe_read_";
const WRITE_PREFIX: &str = "snapmap_probe_write_";
const BORROWED_PREFIX: &str = "snapmap_probe_borrowed_";
const CS_ACQUIRE: &str = "_critical_section_1_0_acquire";

/// What the check found for one target.
#[derive(Debug)]
pub struct ReadPathReport {
    pub triple: String,
    pub read_roots: Vec<String>,
    pub read_functions: usize,
    /// External symbols the read path calls (compiler-builtins and the like).
    pub read_externals: BTreeSet<String>,
    /// Whether the writer entry points reach the critical section (expected without CAS).
    pub writer_takes_cs: bool,
    /// Whether the one-off `SnapMap::get` (borrowed reader slot) reaches it.
    pub borrowed_takes_cs: bool,
}

impl ReadPathReport {
    pub fn summary(&self) -> String {
        let externals = if self.read_externals.is_empty() {
            "none".to_owned()
        } else {
            self.read_externals
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "read path OK: {} entry points reach {} functions/data, no critical section, no atomic \
             libcall, no cpsid (externals called: {externals}); writer side takes a critical section: \
             {}; one-off SnapMap::get (borrowed slot): {}",
            self.read_roots.len(),
            self.read_functions,
            yes_no(self.writer_takes_cs),
            if self.borrowed_takes_cs { "takes one (documented)" } else { "takes none" },
        )
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn forbidden(name: &str) -> bool {
    name.starts_with("_critical_section_")
        || name.starts_with("__sync_")
        || name.starts_with("__atomic_")
}

/// Builds the probe for `tc`'s target into `target_dir` and checks its read path.
/// `expect_writer_cs`: the target has no compare-and-swap, so writers must take a critical section.
pub fn check(
    tc: &TargetToolchain,
    root: &Path,
    target_dir: &Path,
    expect_writer_cs: bool,
) -> Result<ReadPathReport> {
    let triple = tc.triple();
    let probe = root.join(PROBE_DIR);
    // Same dependency versions as the workspace: start from its lock file (cargo prunes it).
    fs::copy(root.join("Cargo.lock"), probe.join("Cargo.lock"))
        .map_err(|e| Failure(format!("copying Cargo.lock into {}: {e}", probe.display())))?;
    let asm = asm_path(target_dir, triple);
    if !asm.is_file() {
        // cargo only reruns rustc (which writes the file) when something changed.
        touch(&probe.join("src/lib.rs"))?;
    }
    let start = Instant::now();
    let mut cmd = tc.cargo("rustc");
    cmd.current_dir(&probe)
        .args(["--release", "--lib", "--target-dir"])
        .arg(target_dir)
        .arg("--")
        .arg(format!("--emit=asm={}", asm.display()));
    run(&mut cmd)?;
    println!("    probe built in {}", format_duration(start.elapsed()));
    let text =
        fs::read_to_string(&asm).map_err(|e| Failure(format!("reading {}: {e}", asm.display())))?;
    analyse(triple, &text, expect_writer_cs)
}

/// The assembly file the probe build writes for `triple`.
pub fn asm_path(target_dir: &Path, triple: &str) -> PathBuf {
    target_dir.join(triple).join("read-path-probe.s")
}

fn touch(path: &Path) -> Result {
    let file = fs::OpenOptions::new().append(true).open(path)?;
    file.set_modified(SystemTime::now())?;
    Ok(())
}

/// The check proper, on the probe's assembly.
pub fn analyse(triple: &str, asm: &str, expect_writer_cs: bool) -> Result<ReadPathReport> {
    let graph = AsmGraph::parse(asm);
    let roots = |prefix: &str| -> Vec<String> {
        graph
            .functions()
            .iter()
            .filter(|f| f.starts_with(prefix))
            .cloned()
            .collect()
    };
    let (read_roots, write_roots, borrowed_roots) = (
        roots(READ_PREFIX),
        roots(WRITE_PREFIX),
        roots(BORROWED_PREFIX),
    );
    if read_roots.is_empty() || write_roots.is_empty() {
        return fail(format!(
            "{triple}: the probe's assembly has no `{READ_PREFIX}*` or `{WRITE_PREFIX}*` functions; \
             cannot check the read path"
        ));
    }

    let read = graph.reachable(read_roots.iter().map(String::as_str));
    let mut problems = Vec::new();
    for name in read.externals.iter().filter(|n| forbidden(n)) {
        problems.push(format!(
            "references {name}: {}",
            read.path_to(name).join(" -> ")
        ));
    }
    for node in read
        .nodes
        .iter()
        .filter(|n| forbidden(n) || graph.masks_interrupts(n))
    {
        problems.push(format!(
            "masks interrupts or takes a critical section in {node}: {}",
            read.path_to(node).join(" -> ")
        ));
    }
    if !problems.is_empty() {
        return fail(format!(
            "{triple}: the read path is not free of critical sections / interrupt masking:\n  {}",
            problems.join("\n  ")
        ));
    }

    let write = graph.reachable(write_roots.iter().map(String::as_str));
    let writer_takes_cs = write.externals.contains(CS_ACQUIRE);
    if expect_writer_cs && !writer_takes_cs {
        return fail(format!(
            "{triple}: the writer entry points do not reach {CS_ACQUIRE}, so this check cannot see a \
             critical section at all: the probe or the analysis is broken"
        ));
    }
    let borrowed_takes_cs = graph
        .reachable(borrowed_roots.iter().map(String::as_str))
        .externals
        .contains(CS_ACQUIRE);
    let read_externals = read
        .externals
        .iter()
        .filter(|n| !graph.defines(n))
        .cloned()
        .collect();
    Ok(ReadPathReport {
        triple: triple.to_owned(),
        read_functions: read.nodes.len(),
        read_roots,
        read_externals,
        writer_takes_cs,
        borrowed_takes_cs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str, body: &str) -> String {
        format!(
            "\t.type\t{name},%function\n{name}:\n{body}\n.Lfunc_end_{name}:\n\t.size\t{name}, 4\n"
        )
    }

    #[test]
    fn clean_read_path_passes_and_tainted_one_fails() {
        let reader = function("snapmap_probe_read_get", "\tbl\tpin\n\tbx\tlr");
        let pin = function("pin", "\tldr\tr0, [r1]\n\tdmb\tsy\n\tbx\tlr");
        let writer = function("snapmap_probe_write_insert", "\tbl\tcas");
        let cas = function(
            "cas",
            "\tbl\t_critical_section_1_0_acquire\n\tbl\t_critical_section_1_0_release",
        );
        let ok = [reader.clone(), pin, writer.clone(), cas.clone()].concat();
        let report = analyse("thumbv6m-none-eabi", &ok, true).unwrap();
        assert!(report.writer_takes_cs);
        assert_eq!(report.read_functions, 2);

        let tainted_pin = function("pin", "\tbl\tcas\n\tbx\tlr");
        let bad = [reader, tainted_pin, writer, cas].concat();
        let err = analyse("thumbv6m-none-eabi", &bad, true).unwrap_err().0;
        assert!(
            err.contains("snapmap_probe_read_get -> pin -> cas -> _critical_section_1_0_acquire"),
            "{err}"
        );
    }

    #[test]
    fn a_check_that_cannot_see_the_writer_cs_fails() {
        let asm = [
            function("snapmap_probe_read_get", "\tbx\tlr"),
            function("snapmap_probe_write_insert", "\tbx\tlr"),
        ]
        .concat();
        assert!(analyse("thumbv6m-none-eabi", &asm, true).is_err());
        assert!(
            !analyse("thumbv7em-none-eabihf", &asm, false)
                .unwrap()
                .writer_takes_cs
        );
    }
}
