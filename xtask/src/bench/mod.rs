//! `cargo xtask bench [--quick] [--report-only]`: runs the host benchmarks against peers, the
//! emulated boards' benchmarks, and the report, then fills `benchmarks/bench.template.md` into
//! BENCHMARKS.md.
//!
//! The measuring and plotting live in `host-tests/benches/` (criterion, a timed multi-threaded
//! harness, a memory census, and `report`, which reads criterion's estimates, draws the plots and
//! writes one flat `results.tsv`). Here the results become [`Figures`] and tables; the page's
//! prose is the template's, the targets are `benchmarks/targets.toml`'s.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod tables;

use crate::bench_emulated::{self, M33, RP2040, RP2350};
use crate::page::Figures;
use crate::toolchain::cargo_program;
use crate::util::{commit, fail, format_duration, now_utc, run, workspace_root, Result};
use tables::{render, PEERS, SNAPMAPS};

pub const HELP: &str = "\
cargo xtask bench [--quick] [--report-only]

Runs the host benchmarks of snapmap against its peers (std RwLock<HashMap>,
spin::RwLock<heapless map>, ArcSwap<HashMap>, dashmap, papaya, with std and Fx hashers) and the
unsynchronized floors, all in one run, then writes the results page:
  cargo bench -p host-tests --bench memory          size_of and peers' footprints
  cargo bench -p host-tests --bench single_thread   criterion: get hit/miss, insert, remove,
                                                    batch of 64, iteration, and snapmap's parts;
                                                    snapmap also through its sole Writer
                                                    (snapmap-sole: no base pin, no CAS)
  cargo bench -p host-tests --bench turns           maps taking turns (colder data): snapmap
                                                    (sole Writer; shared), papaya, dashmap,
                                                    RwLock<HashMap> (std, Fx) each do a turn
                                                    of 64 inserts, replaces or removes, a batch
                                                    of 64 or one iteration, timed, while the
                                                    others' data goes cold
  cargo bench -p host-tests --bench concurrent      2 threads 98/1/1; a reader while a writer
                                                    writes at 10,000/s or flat out; latencies
  cargo xtask bench-m33, bench-rp2040, bench-rp2350
                                                    the emulated boards (their pages too)
  cargo bench -p host-tests --bench report          results.tsv and the PNG plots
A full run takes about 15 minutes and writes BENCHMARKS.md and benchmarks/*.png at the workspace
root; raw results stay in target/snapmap-bench. The page's text is benchmarks/bench.template.md,
its targets benchmarks/targets.toml.

Options:
  --quick         smoke sizes for CI (a few minutes): short criterion runs, 30 rounds of
                  turns, 2 runs of 0.2 s per threaded workload; writes the page and plots under
                  target/snapmap-bench-quick/ instead, leaving the committed page alone
  --report-only   do not measure: rebuild the pages and plots from the last run's results
                  (after an edit of a template or of the targets file)
";

#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub quick: bool,
    pub report_only: bool,
}

pub fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let mut options = Options::default();
    for arg in args {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--report-only" => options.report_only = true,
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(options)
}

pub fn bench(options: &Options) -> Result {
    let root = workspace_root();
    // Raw results, the page, and the plots with how the page links to them.
    let (out, page, plots, plots_link) = if options.quick {
        let out = root.join("target/snapmap-bench-quick");
        (
            out.clone(),
            out.join("BENCHMARKS.md"),
            out.join("plots"),
            "plots",
        )
    } else {
        let out = root.join("target/snapmap-bench");
        (
            out,
            root.join("BENCHMARKS.md"),
            root.join("benchmarks"),
            "benchmarks",
        )
    };
    std::fs::create_dir_all(&plots)?;
    let criterion = out.join("criterion");
    let started = Instant::now();
    let cargo_bench = |bench: &str| {
        let mut cmd = Command::new(cargo_program());
        cmd.current_dir(&root)
            .env("SNAPMAP_BENCH_OUT", &out)
            .env("CRITERION_HOME", &criterion)
            .env("SNAPMAP_BENCH_PLOTS", &plots)
            .args(["bench", "-p", "host-tests", "--bench", bench]);
        if options.quick {
            cmd.env("SNAPMAP_BENCH_QUICK", "1");
        }
        cmd
    };

    // What the page says about the measuring run, kept with its results for `--report-only`.
    let info_path = out.join("run.tsv");
    if !options.report_only {
        std::fs::create_dir_all(&out)?;
        let commit = commit(&["snapmap-core", "host-tests", "firmware-demo"]);
        let load_before = load_average();
        // Compile everything first, so that no benchmark runs next to the compiler.
        run(Command::new(cargo_program()).current_dir(&root).args([
            "bench",
            "-p",
            "host-tests",
            "--no-run",
        ]))?;
        // Stale estimates of a renamed benchmark would otherwise land in the page.
        if criterion.exists() {
            std::fs::remove_dir_all(&criterion)?;
        }
        for bench in ["memory", "single_thread", "turns", "concurrent"] {
            run(&mut cargo_bench(bench))?;
        }
        // Instruction and cycle counts, which the machine's load does not change. A failure is
        // shown in their section, not fatal.
        bench_emulated::refresh_for_bench(&M33, options.quick);
        bench_emulated::refresh_for_bench(&RP2040, options.quick);
        bench_emulated::refresh_for_bench(&RP2350, options.quick);
        let info = format!(
            "date\t{}\ncommit\t{commit}\nload_before\t{load_before}\nload_after\t{}\ntook\t{}\n",
            now_utc(),
            load_average(),
            format_duration(started.elapsed())
        );
        std::fs::write(&info_path, info)?;
    }
    run(&mut cargo_bench("report"))?;
    if options.report_only && !options.quick {
        for board in [&M33, &RP2040, &RP2350] {
            if let Err(e) = bench_emulated::rerender(board) {
                eprintln!("bench: {} left as it was: {e}", board.page);
            }
        }
    }
    let info = read_tsv(&info_path).into_iter().next().unwrap_or_default();
    let results = Results::read(&out)?;
    let text = render(&results, &info, options.quick, plots_link)?;
    std::fs::write(&page, text)?;
    println!(
        "bench: wrote {} and plots in {} ({})",
        page.display(),
        plots.display(),
        format_duration(started.elapsed())
    );
    crate::page::check_measured("bench", &results.figures)
}

/// A TSV file with a header line, as rows of column -> value; `run.tsv` (`key\tvalue` lines)
/// comes back as one row.
fn read_tsv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if path.ends_with("run.tsv") {
        let row = text.lines().filter_map(|l| l.split_once('\t'));
        return vec![row.map(|(k, v)| (k.to_owned(), v.to_owned())).collect()];
    }
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let cells = l.split('\t').map(str::to_owned);
            header.iter().map(|h| h.to_string()).zip(cells).collect()
        })
        .collect()
}

/// `key=value` words of a `;`- or space-separated list.
fn extras(list: &str) -> BTreeMap<&str, f64> {
    list.split([';', ' '])
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect()
}

/// One run's results: figures by name, and the rows the tables list.
struct Results {
    figures: Figures,
    memory: Vec<BTreeMap<String, String>>,
    /// The last run's snapmap counters in 98/1/1, per map.
    mixed_counters: Vec<(String, String)>,
}

impl Results {
    fn read(out: &Path) -> Result<Self> {
        let rows = read_tsv(&out.join("results.tsv"));
        if rows.is_empty() {
            return fail(format!(
                "no results in {}: run `cargo xtask bench` without --report-only first",
                out.join("results.tsv").display()
            ));
        }
        let mut f = Figures::new();
        let mut mixed_counters = Vec::new();
        let num = |row: &BTreeMap<String, String>, k: &str| {
            row.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
        };
        for row in &rows {
            let key = format!("{}/{}", row["workload"], row["id"]);
            let extra = row.get("extra").map_or("", String::as_str);
            if row["kind"] == "ns" {
                f.insert(format!("ns:{key}"), num(row, "value"));
                // Criterion's interval of the median; the quartiles of the turns for `turns_*`.
                f.insert(format!("ns-low:{key}"), num(row, "low"));
                f.insert(format!("ns-high:{key}"), num(row, "high"));
                continue;
            }
            f.insert(format!("mops:{key}"), num(row, "value"));
            f.insert(format!("mops-low:{key}"), num(row, "low"));
            f.insert(format!("mops-high:{key}"), num(row, "high"));
            let x = extras(extra);
            for (name, unit) in [("writes_per_s", "writes"), ("rss_growth_kib", "rss-kib")] {
                if let Some(v) = x.get(name) {
                    f.insert(format!("{unit}:{key}"), *v);
                }
            }
            if let (Some(p), Some(c)) = (x.get("publishes"), x.get("page_copies")) {
                f.insert(format!("pages:{key}"), c / p);
            }
            if row["workload"] == "mixed" && x.contains_key("publishes") {
                let counters = extra.rsplit(';').next().unwrap_or_default();
                mixed_counters.push((row["id"].clone(), counters.to_owned()));
            }
        }
        for row in read_tsv(&out.join("single_thread.tsv")) {
            let x = extras(row.get("notes").map_or("", String::as_str));
            if let (Some(p), Some(c)) = (x.get("publishes"), x.get("page_copies")) {
                f.insert(format!("pages:{}/{}", row["workload"], row["id"]), c / p);
            }
        }
        for row in read_tsv(&out.join("latency.tsv")) {
            for p in ["p50", "p99", "p999", "p9999", "max"] {
                let key = format!("lat-ns:{}/{}/{p}", row["mode"], row["id"]);
                f.insert(key, num(&row, &format!("{p}_ns")));
            }
        }
        let memory = read_tsv(&out.join("memory.tsv"));
        for row in memory.iter().filter(|r| r["section"] == "sizeof") {
            f.insert(format!("bytes:{}", row["what"]), num(row, "bytes"));
        }
        // The best of a set of maps, for the targets that compare against all peers.
        let best = |f: &Figures, workload: &str, ids: &[&str]| {
            ids.iter()
                .filter_map(|id| f.get(&format!("mops:{workload}/{id}")).copied())
                .filter(|v| v.is_finite())
                .max_by(f64::total_cmp)
        };
        for (workload, name, ids) in [
            ("mixed", "best-snapmap", &SNAPMAPS[..]),
            ("mixed", "best-peer", &PEERS[..]),
            ("read_flat", "best-peer", &PEERS[..]),
        ] {
            if let Some(v) = best(&f, workload, ids) {
                f.insert(format!("mops:{workload}/{name}"), v);
            }
        }
        Ok(Self {
            figures: f,
            memory,
            mixed_counters,
        })
    }

    fn get(&self, name: &str) -> Option<f64> {
        self.figures.get(name).copied().filter(|v| v.is_finite())
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Where `cargo xtask bench` keeps its raw results, for the tests.
#[cfg(test)]
fn write_results(dir: &Path) {
    let results = "kind\tworkload\tid\tvalue\tlow\thigh\textra\n\
        ns\tget_hit\tsnapmap-snapshot\t2.0\t1.9\t2.1\t\n\
        ns\tget_hit\tfloor-hashmap-fx\t1.6\t1.5\t1.7\t\n\
        ns\tturns_insert\tsnapmap-sole\t250\t240\t260\tturns=30\n\
        ns\tturns_insert\tpapaya-op-fx\t70\t65\t75\tturns=30\n\
        mops\tmixed\tsnapmap-reader\t74.4\t70\t75\twrites_per_s=100;rss_growth_kib=0;runs=3;publishes=10 page_copies=12\n\
        mops\tmixed\tpapaya-held-fx\t62.0\t60\t63\twrites_per_s=100;rss_growth_kib=0;runs=3;\n\
        mops\tread_alone\tsnapmap-reader\t100\t99\t101\t\n\
        mops\tread_flat\tsnapmap-reader\t40\t39\t41\truns=3;publishes=9 page_copies=9\n";
    std::fs::write(dir.join("results.tsv"), results).unwrap();
    std::fs::write(
        dir.join("memory.tsv"),
        "section\twhat\tbytes\tnote\nsizeof\tFnvIndexMap<u64, u64, N=2048>\t57352\t\n",
    )
    .unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        assert_eq!(parse(&[]), Ok(Options::default()));
        let quick = Options {
            quick: true,
            report_only: false,
        };
        assert_eq!(parse(&["--quick".into()]), Ok(quick));
        assert!(parse(&["--bogus".into()]).is_err());
    }

    #[test]
    fn results_become_figures_and_the_page_has_no_placeholder_left() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_results(&dir);
        let r = Results::read(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(r.get("ns:get_hit/snapmap-snapshot"), Some(2.0));
        assert_eq!(r.get("pages:mixed/snapmap-reader"), Some(1.2));
        assert_eq!(r.get("mops:mixed/best-snapmap"), Some(74.4));
        assert_eq!(r.get("mops:mixed/best-peer"), Some(62.0));
        assert_eq!(r.get("pages:read_flat/snapmap-reader"), Some(1.0));
        // The page lists the 98/1/1 counters only.
        assert_eq!(r.mixed_counters.len(), 1);
        assert_eq!(r.get("bytes:FnvIndexMap<u64, u64, N=2048>"), Some(57352.0));
        let info = BTreeMap::from([("took".to_owned(), "1s".to_owned())]);
        let text = render(&r, &info, true, "plots").unwrap();
        assert!(text.contains("`cargo xtask bench --quick`"), "{text}");
        assert!(
            text.contains("| snapmap, held snapshot | 2.00 ns | – |"),
            "{text}"
        );
        assert!(
            text.contains("| snapmap, held snapshot | 1.25× |"),
            "{text}"
        );
        // The maps taking turns: medians with their quartiles, and ratios to papaya.
        assert!(
            text.contains("| snapmap, sole `Writer` | 250 ns (240 ns–260 ns) | – |"),
            "{text}"
        );
        assert!(
            text.contains("| snapmap, sole `Writer` | 3.57× | – |"),
            "{text}"
        );
        assert!(!text.contains("{{") && !text.contains("}}"));
        assert!(!text.to_lowercase().contains("issue"), "{text}");
    }
}
