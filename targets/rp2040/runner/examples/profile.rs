//! `cargo run -p rp2040-runner --example profile -- ELF [CYCLES] [EVERY] [FROM]`: a sampling
//! profile of both cores. Runs the firmware for CYCLES (default 125,000,000: 1 s at 125 MHz),
//! samples each core's PC every EVERY cycles (default 1,000) from cycle FROM on (default 0) and
//! prints, per core, the functions that held most samples. The emulator is cycle-accounted, so a
//! function's share of samples is its share of that core's cycles.
//!
//! To find the window of one phase of a firmware, `PROFILE_STAMPS=1` prints the cycle at which
//! each chunk of its RTT output arrives. `PROFILE_FUNCTION=NAME` counts the samples in functions
//! whose name contains `NAME` by address instead, to read beside `llvm-objdump -d`.

use std::collections::HashMap;

use object::{Object, ObjectSymbol, SymbolKind};
use rp2040_runner::{Chip, Rp2040};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let elf = args
        .first()
        .ok_or("usage: profile ELF [CYCLES] [EVERY] [FROM]")?;
    let cycles: u64 = args.get(1).map_or(Ok(125_000_000), |a| a.parse())?;
    let every: u64 = args.get(2).map_or(Ok(1_000), |a| a.parse())?;
    let from: u64 = args.get(3).map_or(Ok(0), |a| a.parse())?;

    let firmware = rp2040_runner::load(std::path::Path::new(elf))?;
    let file = object::File::parse(&*firmware.elf)?;
    let mut functions: Vec<(u32, u32, String)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter_map(|s| {
            let name = s.name().ok()?;
            let name = short(name);
            Some(((s.address() as u32) & !1, s.size() as u32, name))
        })
        .collect();
    functions.sort();

    let mut rp2040 = Rp2040::new(&firmware)?;
    let mut samples = [HashMap::<String, u64>::new(), HashMap::new()];
    let stamps = std::env::var_os("PROFILE_STAMPS").is_some();
    let focus = std::env::var("PROFILE_FUNCTION").ok();
    let mut last = [0u64; 2];
    while rp2040.cycles() < cycles {
        rp2040.run(every)?;
        let output = rp2040.take_rtt();
        if stamps && !output.is_empty() {
            eprintln!(
                "{} bytes of RTT output at cycle {}",
                output.len(),
                rp2040.cycles()
            );
        }
        if rp2040.halt().is_some() {
            break;
        }
        if rp2040.cycles() < from {
            continue;
        }
        for (core, counts) in samples.iter_mut().enumerate() {
            // A core that did not advance (parked, asleep) is not sampled.
            let now = rp2040.core_cycles(core);
            if now == last[core] {
                continue;
            }
            last[core] = now;
            let pc = rp2040.pc(core) & !1;
            let at = functions.partition_point(|f| f.0 <= pc);
            let name = match at.checked_sub(1).map(|i| &functions[i]) {
                Some((start, size, name)) if pc < start + size => match &focus {
                    Some(focus) if name.contains(focus.as_str()) => format!("{pc:#010x}"),
                    _ => name.clone(),
                },
                _ => format!("{pc:#010x}"),
            };
            *counts.entry(name).or_default() += 1;
        }
    }
    for (core, counts) in samples.iter().enumerate() {
        let total: u64 = counts.values().sum();
        let mut sorted: Vec<_> = counts.iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(a.1));
        println!("core {core}: {total} samples");
        for (name, n) in sorted
            .into_iter()
            .take(if focus.is_some() { usize::MAX } else { 15 })
        {
            println!("  {:5.1}%  {name}", 100.0 * *n as f64 / total.max(1) as f64);
        }
    }
    Ok(())
}

/// A legacy-mangled Rust name without its hash, its path joined by `::`: enough to read.
fn short(name: &str) -> String {
    let Some(mut rest) = name.strip_prefix("_ZN") else {
        return name.to_owned();
    };
    let mut parts = Vec::new();
    while let Some(end) = rest.find(|c: char| !c.is_ascii_digit()) {
        let Ok(len) = rest[..end].parse::<usize>() else {
            break;
        };
        let part = &rest[end..end + len.min(rest.len() - end)];
        rest = &rest[end + part.len()..];
        if !(part.starts_with('h') && part.len() == 17) {
            parts.push(part);
        }
    }
    parts.join("::")
}
