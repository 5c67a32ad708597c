//! The demo firmware's `SUMMARY` line: found in the decoded log, checked, and printed back as the
//! command's verdict.

use super::App;
use crate::boards::{Board, RP2040, RP2350};

/// The keys the summary must carry.
const REQUIRED_KEYS: &[&str] = &[
    "reads",
    "snapshots",
    "isr_reads",
    "writes",
    "batches",
    "cas_retries",
    "violations",
    "reader_cs",
    "writer_cs",
    "writes_per_s",
    "completed",
];

/// The demo's counts that must be 0: violations, and critical sections taken by core 1 while
/// reading and by core 0's sole writer while writing.
const ZERO_KEYS: &[&str] = &["violations", "reader_cs", "writer_cs"];

/// The keys the embassy firmware's summary must carry (numbers).
const EMBASSY_KEYS: &[&str] = &[
    "versions",
    "wakeups",
    "coalesced",
    "isr_reads",
    "violations",
    "reader_cs",
    "wake_cycles_median",
    "wake_cycles_worst",
    "completed",
];

/// The embassy firmware's counts that must be 0 (its writer writes through the map).
const EMBASSY_ZERO_KEYS: &[&str] = &["violations", "reader_cs"];

/// The unit of the summary's `read_<unit>_median` and `read_<unit>_worst` on `board` (the
/// firmware's `tick::CYCLES_UNIT`): the RP2040 counts its cores' cycles; the AN521's timer,
/// which QEMU runs in host time without `-icount`, counts no cycles.
fn read_unit(board: &Board) -> &'static str {
    if board == &RP2040 || board == &RP2350 {
        "cycles"
    } else {
        "timer_ticks"
    }
}

/// The firmware's summary, and anything else that makes the run fail.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Summary {
    /// The firmware's own verdict: `PASS` or `FAIL`, if it got that far.
    pub(super) firmware_verdict: Option<String>,
    /// `key=value` pairs, in the firmware's order.
    pub(super) fields: Vec<(String, String)>,
    pub(super) problems: Vec<String>,
}

impl Summary {
    /// [`from_log`](Self::from_log) for the demo, [`from_keys`](Self::from_keys) with the
    /// embassy firmware's keys for it.
    pub(super) fn for_app(lines: &[String], board: &Board, app: App) -> Self {
        match app {
            App::Demo => Self::from_log(lines, board),
            App::Embassy => Self::from_keys(lines, EMBASSY_KEYS.iter().copied(), EMBASSY_ZERO_KEYS),
        }
    }

    /// Finds and checks the last `SUMMARY` line of a decoded log of the demo from `board`.
    pub(super) fn from_log(lines: &[String], board: &Board) -> Self {
        let unit = read_unit(board);
        let read_keys = [format!("read_{unit}_median"), format!("read_{unit}_worst")];
        let keys = REQUIRED_KEYS
            .iter()
            .copied()
            .chain(read_keys.iter().map(String::as_str));
        Self::from_keys(lines, keys, ZERO_KEYS)
    }

    /// Finds the last `SUMMARY` line of a decoded log and checks it: the firmware said `PASS`,
    /// it has a number for each of `keys`, each of `zeros` is 0, and `completed=1`.
    fn from_keys<'k>(
        lines: &[String],
        keys: impl Iterator<Item = &'k str>,
        zeros: &[&str],
    ) -> Self {
        let mut summary = Summary::default();
        let Some(line) = lines
            .iter()
            .rev()
            .find_map(|l| l.find("SUMMARY ").map(|at| &l[at + "SUMMARY ".len()..]))
        else {
            summary
                .problems
                .push("the firmware printed no summary: the run did not complete".to_owned());
            return summary;
        };
        let mut words = line.split_whitespace();
        summary.firmware_verdict = words.next().map(str::to_owned);
        for word in words {
            if let Some((key, value)) = word.split_once('=') {
                summary.fields.push((key.to_owned(), value.to_owned()));
            }
        }
        for key in keys {
            if summary.number(key).is_none() {
                summary
                    .problems
                    .push(format!("the summary has no numeric `{key}`"));
            }
        }
        if summary.firmware_verdict.as_deref() != Some("PASS") {
            summary
                .problems
                .push("the firmware reported FAIL (see the log above)".to_owned());
        }
        let expected = zeros.iter().map(|&key| (key, 0)).chain([("completed", 1)]);
        for (key, expected) in expected {
            if let Some(value) = summary.number(key).filter(|v| *v != expected) {
                summary
                    .problems
                    .push(format!("{key}={value}, expected {expected}"));
            }
        }
        summary
    }

    pub(super) fn number(&self, key: &str) -> Option<u64> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    }

    pub(super) fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// `PASS k=v ...` or `FAIL k=v ...`.
    pub(super) fn line(&self) -> String {
        let mut line = String::from(if self.passed() { "PASS" } else { "FAIL" });
        if self.fields.is_empty() {
            line.push_str(" completed=0");
        }
        for (key, value) in &self.fields {
            line.push_str(&format!(" {key}={value}"));
        }
        line
    }
}
