//! The bench firmware's output: its `OP`, `LAT`, `HIST`, `SIZE` and `STATS` lines, parsed into
//! [`Measured`] and checked; and the formatting the boards' pages share.

use std::collections::BTreeMap;

use super::Bench;
use crate::util::{fail, Result};

/// `OP` line: one single-core figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// Ticks of the loop of operations, per repeat.
    ticks: Vec<u64>,
    /// Ticks of the empty loop, per repeat.
    empty: Vec<u64>,
    pub iters: u64,
    pub critical_sections: u64,
}

impl Op {
    /// Units (instructions, cycles) per operation: the median repeat's net ticks × `per_tick`
    /// / iterations.
    fn per_op(&self, per_tick: f64) -> f64 {
        let mut net: Vec<u64> = self
            .ticks
            .iter()
            .zip(&self.empty)
            .map(|(t, e)| t.saturating_sub(*e))
            .collect();
        net.sort_unstable();
        net[net.len() / 2] as f64 * per_tick / self.iters as f64
    }

    /// How far apart the repeats are, in ticks (loop and empty loop alike).
    fn spread(&self) -> u64 {
        let spread = |v: &[u64]| v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0);
        spread(&self.ticks).max(spread(&self.empty))
    }
}

/// `LAT` line: one two-core configuration's read latencies, in the board's unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Lat {
    pub map: String,
    pub writer: String,
    fields: BTreeMap<String, u64>,
    /// `lo:count` bins of the `HIST` line.
    pub hist: String,
    pub hist_width: u64,
}

impl Lat {
    pub fn get(&self, key: &str) -> u64 {
        self.fields.get(key).copied().unwrap_or(0)
    }

    pub fn fields(&self) -> &BTreeMap<String, u64> {
        &self.fields
    }
}

/// `SIZE` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Size {
    pub shape: String,
    pub fields: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Measured {
    pub ops: BTreeMap<String, Op>,
    pub lats: Vec<Lat>,
    pub sizes: Vec<Size>,
    /// `STATS` lines, as printed.
    pub stats: Vec<String>,
    /// `run.tsv`: date, commit, emulator, runs.
    pub facts: BTreeMap<String, String>,
    /// Units per tick, for [`Measured::per_op`].
    per_tick: f64,
}

/// `key=value` words of a line (words without `=` are skipped).
pub fn fields(words: &str) -> BTreeMap<String, String> {
    words
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn numbers(list: &str) -> Vec<u64> {
    list.split(',').filter_map(|n| n.parse().ok()).collect()
}

impl Measured {
    /// Parses the firmware's output, whose ticks count `per_tick` units.
    pub fn parse(text: &str, per_tick: f64) -> Result<Measured> {
        let mut m = Measured {
            per_tick,
            ..Measured::default()
        };
        for line in text.lines() {
            let Some((keyword, rest)) = line.split_once(' ') else {
                continue;
            };
            match keyword {
                "OP" => {
                    let f = fields(rest);
                    let num = |k: &str| f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
                    let op = Op {
                        ticks: numbers(f.get("ticks").map_or("", |s| s)),
                        empty: numbers(f.get("empty").map_or("", |s| s)),
                        iters: num("iters"),
                        critical_sections: num("cs"),
                    };
                    if op.ticks.is_empty() || op.ticks.len() != op.empty.len() || op.iters == 0 {
                        return fail(format!("malformed line: {line}"));
                    }
                    m.ops.insert(f.get("id").cloned().unwrap_or_default(), op);
                }
                "LAT" => {
                    let f = fields(rest);
                    m.lats.push(Lat {
                        map: f.get("map").cloned().unwrap_or_default(),
                        writer: f.get("writer").cloned().unwrap_or_default(),
                        fields: f
                            .iter()
                            .filter_map(|(k, v)| v.parse().ok().map(|n| (k.clone(), n)))
                            .collect(),
                        hist: String::new(),
                        hist_width: 0,
                    });
                }
                "HIST" => {
                    let f = fields(rest);
                    let bins: Vec<&str> = rest
                        .split_whitespace()
                        .filter(|w| !w.contains('=') && w.contains(':'))
                        .collect();
                    if let Some(lat) = m.lats.iter_mut().rev().find(|l| {
                        Some(&l.map) == f.get("map") && Some(&l.writer) == f.get("writer")
                    }) {
                        lat.hist = bins.join(" ");
                        lat.hist_width = f.get("width").and_then(|w| w.parse().ok()).unwrap_or(0);
                    }
                }
                "SIZE" => {
                    let (words, shape) = rest.split_once("shape=").unwrap_or((rest, ""));
                    m.sizes.push(Size {
                        shape: shape.to_owned(),
                        fields: fields(words)
                            .into_iter()
                            .filter_map(|(k, v)| v.parse().ok().map(|n| (k, n)))
                            .collect(),
                    });
                }
                "STATS" => m.stats.push(rest.to_owned()),
                "FAILED" => return fail(format!("the firmware failed: {line}")),
                _ => {}
            }
        }
        Ok(m)
    }
}

/// Single-core figures the page needs (the firmware's `OP` ids).
const OPS: [&str; 18] = [
    "calibration-10-nops",
    "get/floor",
    "get/floor-full",
    "get/mutex",
    "get/snapmap-reader",
    "get/snapmap-held",
    "get/snapmap-oneoff",
    "get/snapmap-reader-full",
    "insert/floor",
    "insert/mutex",
    "insert/snapmap",
    "batch8/floor",
    "batch8/mutex",
    "batch8/snapmap",
    "update-noop/snapmap",
    // The same writes through the map's sole `Writer`.
    "insert/snapmap-sole",
    "update-noop/snapmap-sole",
    "batch8/snapmap-sole",
];

impl Measured {
    /// Units per operation of figure `id`.
    pub fn per_op(&self, id: &str) -> Option<f64> {
        self.ops.get(id).map(|op| op.per_op(self.per_tick))
    }

    pub fn lat(&self, map: &str, writer: &str) -> Option<&Lat> {
        self.lats
            .iter()
            .find(|l| l.map == map && l.writer == writer)
    }

    /// Everything the page reports is there and believable.
    pub fn check(&self, bench: &Bench) -> Result {
        let unit = bench.unit;
        let mut problems = Vec::new();
        for id in OPS {
            if !self.ops.contains_key(id) {
                problems.push(format!("no figure for `{id}`"));
            }
        }
        // Ten `nop`s must measure ten units (instructions; cycles on the M0+): the units per
        // tick are right and the empty loop is subtracted right.
        // (Not on the emulated RP2350, whose M33 timing model charges ten `nop`s in a loop
        // about nine cycles: its page reports the figure instead.)
        let calibrated = bench.command != "bench-rp2350";
        if let Some(nops) = self.per_op("calibration-10-nops").filter(|_| calibrated) {
            if (nops - 10.0).abs() > 0.1 {
                problems.push(format!(
                    "ten nops measure {nops:.3} {unit}, not 10: the {} {unit} per tick or the \
                     empty-loop subtraction is off",
                    bench.per_tick
                ));
            }
        }
        if let Some(allowed) = bench.repeat_spread {
            for (id, op) in &self.ops {
                if op.spread() > allowed {
                    problems.push(format!(
                        "`{id}`: repeats differ by {} ticks (more than {allowed})",
                        op.spread()
                    ));
                }
            }
        }
        for (map, expected_cs) in [("mutex", 1), ("snapmap-reader", 0), ("snapmap-held", 0)] {
            let id = format!("get/{map}");
            if let Some(op) = self.ops.get(&id) {
                if op.critical_sections != expected_cs {
                    problems.push(format!(
                        "`{id}` took {} critical sections per get, expected {expected_cs}",
                        op.critical_sections
                    ));
                }
            }
        }
        for map in ["snapmap-reader", "mutex"] {
            for writer in ["none", "flat-out", "paced"] {
                match self.lat(map, writer) {
                    None => problems.push(format!("no latencies for {map} / {writer}")),
                    Some(l) if l.get("n") == 0 || l.get("max") < l.get("p50") => {
                        problems.push(format!("implausible latencies for {map} / {writer}"))
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(l) = self.lat("snapmap-reader", "flat-out") {
            if l.get("waited") != 0 {
                problems.push("a snapmap read waited for the writer".into());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            fail(format!(
                "implausible benchmark output:\n  {}",
                problems.join("\n  ")
            ))
        }
    }
}

/// The `<details>` block of every `LAT` configuration's histogram.
pub fn histograms(m: &Measured) -> String {
    let lines = m.lats.iter().map(|l| {
        format!(
            "{:<15} {:<9} width {:>3}: {}\n",
            l.map, l.writer, l.hist_width, l.hist
        )
    });
    format!("```\n{}```\n", lines.collect::<String>())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::bench_emulated::{M33, RP2040};

    pub const SAMPLE: &str = "\
bench-m33 on QEMU mps2-an521 (2 x Cortex-M33): 50 instructions per SysTick tick
SIZE snapmap=6336 table=2052 g=4 shape=u32->u32, N=128, G=4, R=2 (this benchmark)
SIZE mutex=2056 shape=u32->u32, N=128 (this benchmark)
OP id=calibration-10-nops instr=10.009 cs=0 iters=1024 ticks=328,327,328 empty=123,123,123
OP id=get/floor instr=147.998 cs=0 iters=1024 ticks=3195,3195,3194 empty=164,164,164
LAT map=mutex writer=flat-out n=16 min=204 p50=954 p90=1440 p99=1624 p999=1716 max=1762 mean=929 batches=3 waited=2
HIST map=mutex writer=flat-out width=98 204:258 302:183
STATS at=end map=snapmap publishes=6145 cas_retries=0 slot_waits=0
DONE
";

    #[test]
    fn parses_the_firmware_output() {
        let m = Measured::parse(SAMPLE, M33.per_tick).unwrap();
        let nops = m.per_op("calibration-10-nops").unwrap();
        assert!((nops - 10.009).abs() < 0.01, "{nops}");
        // The median repeat: 3031 net ticks.
        let get = m.per_op("get/floor").unwrap();
        assert!((get - 3031.0 * 50.0 / 1024.0).abs() < 1e-9, "{get}");
        assert_eq!(m.ops["get/floor"].spread(), 1);
        let lat = m.lat("mutex", "flat-out").unwrap();
        assert_eq!((lat.get("p50"), lat.get("max")), (954, 1762));
        assert_eq!(lat.hist, "204:258 302:183");
        assert_eq!(lat.hist_width, 98);
        assert_eq!(m.sizes.len(), 2);
        assert_eq!(
            m.sizes[0].shape,
            "u32->u32, N=128, G=4, R=2 (this benchmark)"
        );
        assert_eq!(m.sizes[0].fields["snapmap"], 6336);
        assert_eq!(m.stats.len(), 1);
        // Most figures are missing from the sample: the check says so, on either board.
        assert!(m.check(&M33).is_err());
        assert!(m.check(&RP2040).is_err());
    }

    #[test]
    fn units_per_tick_scale_the_figures() {
        let m = Measured::parse(SAMPLE, RP2040.per_tick).unwrap();
        let get = m.per_op("get/floor").unwrap();
        assert!((get - 3031.0 / 1024.0).abs() < 1e-9, "{get}");
        // Ten nops would then measure 0.2 cycles: the calibration check catches a wrong unit.
        let problems = m.check(&RP2040).unwrap_err().to_string();
        assert!(problems.contains("ten nops measure"), "{problems}");
    }

    #[test]
    fn repeats_that_drift_fail_where_they_must_agree() {
        let drifting = SAMPLE.replace("ticks=3195,3195,3194", "ticks=3195,3195,3190");
        let m = Measured::parse(&drifting, M33.per_tick).unwrap();
        let m33 = m.check(&M33).unwrap_err().to_string();
        assert!(
            m33.contains("`get/floor`: repeats differ by 5 ticks"),
            "{m33}"
        );
        let m = Measured::parse(&drifting, RP2040.per_tick).unwrap();
        let rp2040 = m.check(&RP2040).unwrap_err().to_string();
        assert!(!rp2040.contains("repeats differ"), "{rp2040}");
    }

    #[test]
    fn a_failed_firmware_run_is_an_error() {
        assert!(Measured::parse("FAILED on core 1: boom\n", 1.0).is_err());
    }
}
