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

use crate::bench_emulated::{self, M33, RP2040};
use crate::page::{self, cell, fmt_ns, ratio, Figures};
use crate::toolchain::cargo_program;
use crate::util::{fail, format_duration, run, workspace_root, Result};

pub const HELP: &str = "\
cargo xtask bench [--quick] [--report-only]

Runs the host benchmarks of snapmap against its peers (std RwLock<HashMap>,
spin::RwLock<heapless map>, ArcSwap<HashMap>, dashmap, papaya, with std and Fx hashers) and the
unsynchronized floors, all in one run, then writes the results page:
  cargo bench -p host-tests --bench memory          size_of and peers' footprints
  cargo bench -p host-tests --bench single_thread   criterion: get hit/miss, insert, remove,
                                                    batch of 64, iteration, and snapmap's parts
  cargo bench -p host-tests --bench concurrent      2 threads 98/1/1; a reader while a writer
                                                    writes at 10,000/s or flat out; latencies
  cargo xtask bench-m33, cargo xtask bench-rp2040   the emulated boards (their pages too)
  cargo bench -p host-tests --bench report          results.tsv and the PNG plots
A full run takes about 15 minutes and writes BENCHMARKS.md and benchmarks/*.png at the workspace
root; raw results stay in target/snapmap-bench. The page's text is benchmarks/bench.template.md,
its targets benchmarks/targets.toml.

Options:
  --quick         smoke sizes for CI (a few minutes): short criterion runs, 2 runs of 0.2 s
                  per threaded workload; writes the page and plots under
                  target/snapmap-bench-quick/ instead, leaving the committed page alone
  --report-only   do not measure: rebuild the page and plots from the last run's results
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
        // Before measuring: the run rewrites the boards' pages, which would mark the tree dirty.
        let commit = command_output("git", &["describe", "--always", "--dirty"]);
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
        for bench in ["memory", "single_thread", "concurrent"] {
            run(&mut cargo_bench(bench))?;
        }
        // Instruction and cycle counts, which the machine's load does not change. A failure is
        // shown in their section, not fatal.
        bench_emulated::refresh_for_bench(&M33, options.quick);
        bench_emulated::refresh_for_bench(&RP2040, options.quick);
        let info = format!(
            "date\t{}\ncommit\t{commit}\nload_before\t{load_before}\nload_after\t{}\ntook\t{}\n",
            command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            load_average(),
            format_duration(started.elapsed())
        );
        std::fs::write(&info_path, info)?;
    }
    run(&mut cargo_bench("report"))?;
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
    Ok(())
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

/// Every map, in the tables' order, with how the tables name it.
const MAPS: [(&str, &str); 17] = [
    ("snapmap-snapshot", "snapmap, held snapshot"),
    ("snapmap-reader", "snapmap, `Reader` (snapshot per op)"),
    ("snapmap-oneoff", "snapmap, one-off `map.get`"),
    ("rwlock-std", "`RwLock<HashMap>`, std hash"),
    ("rwlock-fx", "`RwLock<HashMap>`, Fx"),
    ("spin-heapless", "`spin::RwLock<FnvIndexMap>`"),
    ("arcswap-std", "`ArcSwap<HashMap>`, std hash"),
    ("arcswap-fx", "`ArcSwap<HashMap>`, Fx"),
    ("dashmap-std", "dashmap, std hash"),
    ("dashmap-fx", "dashmap, Fx"),
    ("papaya-op-std", "papaya, guard per op, std hash"),
    ("papaya-op-fx", "papaya, guard per op, Fx"),
    ("papaya-held-std", "papaya, held guard, std hash"),
    ("papaya-held-fx", "papaya, held guard, Fx"),
    ("hashmap-std", "`HashMap`, std hash (unsync.)"),
    ("floor-hashmap-fx", "**floor**: `HashMap`, Fx (unsync.)"),
    ("floor-heapless", "**floor**: `FnvIndexMap` 50% (unsync.)"),
];

const PEERS: [&str; 11] = [
    "rwlock-std",
    "rwlock-fx",
    "spin-heapless",
    "arcswap-std",
    "arcswap-fx",
    "dashmap-std",
    "dashmap-fx",
    "papaya-op-std",
    "papaya-op-fx",
    "papaya-held-std",
    "papaya-held-fx",
];

const SNAPMAPS: [&str; 2] = ["snapmap-reader", "snapmap-oneoff"];

/// Single-thread workloads: (criterion group, column title).
const WORKLOADS: [(&str, &str); 6] = [
    ("get_hit", "get hit"),
    ("get_miss", "get miss"),
    ("insert", "insert"),
    ("remove", "remove"),
    ("batch64", "batch of 64"),
    ("iter", "iterate 1024"),
];

/// The columns of *snapmap against each peer*: (workload, snapmap variant, title).
const AGAINST: [(&str, &str, &str); 8] = [
    ("get_hit", "snapmap-snapshot", "get, held snapshot"),
    ("get_hit", "snapmap-reader", "get, `Reader`"),
    ("get_hit", "snapmap-oneoff", "get, one-off"),
    ("get_miss", "snapmap-reader", "miss, `Reader`"),
    ("insert", "snapmap-reader", "insert"),
    ("remove", "snapmap-reader", "remove"),
    ("batch64", "snapmap-reader", "batch of 64"),
    ("iter", "snapmap-reader", "iterate"),
];

fn name_of(id: &str) -> &str {
    MAPS.iter().find(|(i, _)| *i == id).map_or(id, |(_, n)| n)
}

/// A Markdown table: a header row (first column left-aligned, the rest right-aligned) and rows.
fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut w = format!(
        "| {} |\n|---|{}\n",
        header.join(" | "),
        "---:|".repeat(header.len() - 1)
    );
    for row in rows {
        w.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    w
}

fn render(
    r: &Results,
    info: &BTreeMap<String, String>,
    quick: bool,
    plots: &str,
) -> Result<String> {
    let field = |k: &str| info.get(k).cloned().unwrap_or_else(|| "?".into());
    let ns = |name: &str| cell(name, r.get(name));
    let mut blocks: BTreeMap<&str, String> = BTreeMap::new();
    blocks.insert(
        "command",
        format!("cargo xtask bench{}", if quick { " --quick" } else { "" }),
    );
    blocks.insert("took", field("took"));
    blocks.insert("plots", plots.to_owned());
    blocks.insert("machine", machine(info));
    blocks.insert(
        "targets",
        page::targets_table(&page::targets("bench")?, &r.figures),
    );

    let titles: Vec<&str> = std::iter::once("map")
        .chain(WORKLOADS.map(|w| w.1))
        .collect();
    let rows = |f: &dyn Fn(&str, &str) -> String| -> Vec<Vec<String>> {
        MAPS.iter()
            .map(|(id, name)| {
                let cells = WORKLOADS.iter().map(|(g, _)| f(g, id));
                std::iter::once(name.to_string()).chain(cells).collect()
            })
            .collect()
    };
    blocks.insert(
        "single_thread",
        table(&titles, rows(&|g, id| ns(&format!("ns:{g}/{id}")))),
    );
    let to_floor = |g: &str, id: &str| {
        ratio(
            r.get(&format!("ns:{g}/{id}"))
                .zip(r.get(&format!("ns:{g}/floor-hashmap-fx")))
                .map(|(a, b)| a / b),
        )
    };
    blocks.insert("ratios", table(&titles, rows(&to_floor)));
    let titles: Vec<&str> = std::iter::once("peer")
        .chain(AGAINST.map(|c| c.2))
        .collect();
    let peers = PEERS
        .iter()
        .chain(&["hashmap-std", "floor-hashmap-fx", "floor-heapless"]);
    blocks.insert(
        "against",
        table(
            &titles,
            peers.map(|peer| {
                let cells = AGAINST.iter().map(|(g, snap, _)| {
                    let (p, s) = (
                        r.get(&format!("ns:{g}/{peer}")),
                        r.get(&format!("ns:{g}/{snap}")),
                    );
                    ratio(p.zip(s).map(|(p, s)| p / s))
                });
                std::iter::once(name_of(peer).to_owned())
                    .chain(cells)
                    .collect()
            }),
        ),
    );
    blocks.insert(
        "st_plots",
        WORKLOADS
            .map(|(g, t)| format!("![{t}]({plots}/st_{g}.png)\n"))
            .concat(),
    );
    blocks.insert("concurrent", concurrent(r));
    blocks.insert(
        "counters",
        r.mixed_counters
            .iter()
            .map(|(id, c)| format!("- `{id}` in 98/1/1, last run's counters: {c}\n"))
            .collect(),
    );
    blocks.insert("latency", latency(r));
    let sizeof = r.memory.iter().filter(|row| row["section"] == "sizeof");
    blocks.insert(
        "sizeof",
        table(
            &["what", "bytes", "note"],
            sizeof.map(|row| {
                vec![
                    format!("`{}`", row["what"]),
                    row["bytes"].clone(),
                    row["note"].clone(),
                ]
            }),
        ),
    );
    let peers = r.memory.iter().filter(|row| row["section"] == "peers");
    blocks.insert(
        "peer_memory",
        table(
            &["map", "bytes"],
            peers.map(|row| vec![name_of(&row["what"]).to_owned(), row["bytes"].clone()]),
        ),
    );
    for (name, board) in [("m33", &M33), ("rp2040", &RP2040)] {
        let key = if name == "m33" {
            "m33_targets"
        } else {
            "rp2040_targets"
        };
        blocks.insert(key, bench_emulated::targets_block(board)?);
    }
    page::fill(&page::template("bench.template.md")?, &blocks, &r.figures)
}

fn machine(info: &BTreeMap<String, String>) -> String {
    let field = |k: &str| info.get(k).cloned().unwrap_or_else(|| "?".into());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = |name: &str| {
        let line = cpuinfo.lines().find(|l| l.starts_with(name));
        let value = line
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned());
        value.unwrap_or_else(|| "?".into())
    };
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
    let rows = [
        ("date", field("date")),
        (
            "processor",
            format!(
                "{} (family {}, model {}, {} MHz)",
                cpu("model name"),
                cpu("cpu family"),
                cpu("model\t"),
                cpu("cpu MHz")
            ),
        ),
        (
            "cores",
            format!("{nproc} (`nproc`); cache {}", cpu("cache size")),
        ),
        (
            "memory",
            mem_kib.map_or("?".into(), |k| format!("{:.0} GiB", k / 1024.0 / 1024.0)),
        ),
        ("kernel", command_output("uname", &["-sr"])),
        ("rustc", command_output("rustc", &["-V"])),
        ("measured commit", format!("`{}`", field("commit"))),
        (
            "load average (1, 5, 15 min)",
            format!(
                "before: {}; after: {}",
                field("load_before"),
                field("load_after")
            ),
        ),
    ];
    let mut w = String::from("| | |\n|---|---|\n");
    for (k, v) in rows {
        w.push_str(&format!("| {k} | {v} |\n"));
    }
    w
}

fn concurrent(r: &Results) -> String {
    let header = [
        "map",
        "98/1/1, Mops/s",
        "reader alone, Mops/s",
        "at 10k writes/s",
        "writer flat out",
        "flat-out writes/s",
        "RSS growth, flat out",
    ];
    let rows = MAPS.iter().filter_map(|(id, name)| {
        let alone = r.get(&format!("mops:read_alone/{id}"))?;
        let spread = |w: &str| match r.get(&format!("mops:{w}/{id}")) {
            Some(v) => format!(
                "{v:.1} ({}–{})",
                cell("mops:", r.get(&format!("mops-low:{w}/{id}"))),
                cell("mops:", r.get(&format!("mops-high:{w}/{id}")))
            ),
            None => "–".into(),
        };
        let frac = |w: &str| match r.get(&format!("mops:{w}/{id}")) {
            Some(v) => format!("{} ({v:.1})", ratio(Some(v / alone))),
            None => "–".into(),
        };
        let flat = |unit: &str| cell(unit, r.get(&format!("{unit}:read_flat/{id}")));
        let rss = flat("rss-kib");
        Some(vec![
            name.to_string(),
            spread("mixed"),
            spread("read_alone"),
            frac("read_10k"),
            frac("read_flat"),
            flat("writes"),
            if rss == "–" { rss } else { rss + " KiB" },
        ])
    });
    table(&header, rows)
}

fn latency(r: &Results) -> String {
    let header = ["map", "writer", "p50", "p99", "p99.9", "p99.99", "max"];
    let row = |mode: &str, id: &str, name: &str| {
        r.get(&format!("lat-ns:{mode}/{id}/p50"))?;
        let cells = ["p50", "p99", "p999", "p9999", "max"].map(|p| {
            r.get(&format!("lat-ns:{mode}/{id}/{p}"))
                .map_or("–".into(), fmt_ns)
        });
        Some([vec![name.to_owned(), mode.to_owned()], cells.to_vec()].concat())
    };
    let maps = MAPS.iter().filter(|(id, _)| !id.ends_with("-std"));
    let rows = maps.flat_map(|(id, name)| ["10k", "flat"].map(|mode| row(mode, id, name)));
    table(
        &header,
        row("clock", "timer-only", "timer only")
            .into_iter()
            .chain(rows.flatten()),
    )
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().ok();
    out.filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
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
        mops\tmixed\tsnapmap-reader\t74.4\t70\t75\twrites_per_s=100;rss_growth_kib=0;runs=3;publishes=10 page_copies=12\n\
        mops\tmixed\tpapaya-held-fx\t62.0\t60\t63\twrites_per_s=100;rss_growth_kib=0;runs=3;\n\
        mops\tread_alone\tsnapmap-reader\t100\t99\t101\t\n";
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
        assert!(!text.contains("{{") && !text.contains("}}"));
        assert!(!text.to_lowercase().contains("issue"), "{text}");
    }
}
