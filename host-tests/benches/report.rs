//! Collects what the other benchmark binaries wrote and draws the plots of BENCHMARKS.md.
//!
//! Reads criterion's estimates (`$CRITERION_HOME`, default `<out>/criterion`), `turns.tsv`,
//! `concurrent.tsv` and `latency_hist.tsv` from the output directory (see `common::out_dir`), and
//! writes:
//! - `results.tsv`: one line per (workload, map): the single-thread medians in ns per operation
//!   (with criterion's 95% interval of the median), the maps taking turns (workloads
//!   `turns_<workload>`, with the quartiles of the turns), and the medians over runs of the
//!   multi-threaded Mops/s; `cargo xtask bench` builds the page's tables from it;
//! - PNG plots into `$SNAPMAP_BENCH_PLOTS` (default `<out>/plots`).
//!
//! Plots are drawn with `plotters` on its bitmap backend, with the DejaVu Sans font compiled in
//! (the `dejavu` crate) through `ab_glyph`: no system font, no fontconfig, no C library, nothing
//! but crates.io. `cargo bench -p host-tests --bench report` runs it alone.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// One single-thread estimate.
struct Estimate {
    median_ns: f64,
    low_ns: f64,
    high_ns: f64,
}

fn read_criterion(dir: &Path) -> Res<BTreeMap<(String, String), Estimate>> {
    let mut out = BTreeMap::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for group in std::fs::read_dir(dir)? {
        let group = group?.path();
        if !group.is_dir() {
            continue;
        }
        for bench in std::fs::read_dir(&group)? {
            let new = bench?.path().join("new");
            let (Ok(meta), Ok(est)) = (
                std::fs::read_to_string(new.join("benchmark.json")),
                std::fs::read_to_string(new.join("estimates.json")),
            ) else {
                continue;
            };
            let meta: serde_json::Value = serde_json::from_str(&meta)?;
            let est: serde_json::Value = serde_json::from_str(&est)?;
            let median = &est["median"];
            let (Some(g), Some(f), Some(m)) = (
                meta["group_id"].as_str(),
                meta["function_id"].as_str(),
                median["point_estimate"].as_f64(),
            ) else {
                continue;
            };
            let ci = &median["confidence_interval"];
            out.insert(
                (g.to_owned(), f.to_owned()),
                Estimate {
                    median_ns: m,
                    low_ns: ci["lower_bound"].as_f64().unwrap_or(m),
                    high_ns: ci["upper_bound"].as_f64().unwrap_or(m),
                },
            );
        }
    }
    Ok(out)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// A parsed TSV with a header line: rows as column-name -> value maps.
fn read_tsv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names: Vec<&str> = header.split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            names
                .iter()
                .map(|n| n.to_string())
                .zip(l.split('\t').map(str::to_owned))
                .collect()
        })
        .collect()
}

/// Multi-threaded medians per (workload, id): (Mops/s, writes/s, max RSS growth KiB, runs, notes).
struct Concurrent {
    mops: f64,
    min: f64,
    max: f64,
    writes_per_s: f64,
    rss_growth_kib: f64,
    runs: usize,
    notes: String,
}

fn read_concurrent(path: &Path) -> BTreeMap<(String, String), Concurrent> {
    let mut raw: BTreeMap<(String, String), Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for row in read_tsv(path) {
        raw.entry((row["workload"].clone(), row["id"].clone()))
            .or_default()
            .push(row);
    }
    raw.into_iter()
        .map(|(key, rows)| {
            let col = |name: &str| -> Vec<f64> {
                rows.iter()
                    .map(|r| r[name].parse::<f64>().unwrap_or(f64::NAN))
                    .collect()
            };
            let mut mops = col("mops");
            let min = mops.iter().copied().fold(f64::INFINITY, f64::min);
            let max = mops.iter().copied().fold(0.0, f64::max);
            let notes = rows
                .last()
                .and_then(|r| r.get("notes").cloned())
                .unwrap_or_default();
            let value = Concurrent {
                mops: median(&mut mops),
                min,
                max,
                writes_per_s: median(&mut col("writes_per_s")),
                rss_growth_kib: col("rss_growth_kib").into_iter().fold(0.0, f64::max),
                runs: rows.len(),
                notes,
            };
            (key, value)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Plots
// ---------------------------------------------------------------------------------------------

const FONT: &str = "sans-serif";

fn color_of(id: &str) -> RGBColor {
    if id.starts_with("snapmap") {
        RGBColor(214, 39, 40)
    } else if id.starts_with("floor") || id == "hashmap-std" {
        RGBColor(127, 127, 127)
    } else {
        RGBColor(31, 119, 180)
    }
}

/// Horizontal bars on a log axis, one per (label, value), largest first.
fn bars(path: &Path, title: &str, unit: &str, rows: &[(String, f64)]) -> Res {
    let mut rows: Vec<_> = rows
        .iter()
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .cloned()
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let n = rows.len();
    let lo = rows.iter().map(|r| r.1).fold(f64::INFINITY, f64::min) / 3.0;
    let hi = rows.iter().map(|r| r.1).fold(0.0, f64::max) * 3.0;
    let height = 70 + 22 * n as u32;
    let root = BitMapBackend::new(path, (760, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 17))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(150)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n - 1).into_segmented())?;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&log_label)
        .x_desc(unit)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(i, (id, v))| {
        let mut bar = Rectangle::new(
            [
                (lo, SegmentValue::Exact(i)),
                (*v, SegmentValue::Exact(i + 1)),
            ],
            color_of(id).filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        bar
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
        Text::new(
            format!(" {}", fmt_num(*v)),
            (*v, SegmentValue::CenterOf(i)),
            (FONT, 11).into_font(),
        )
    }))?;
    root.present()?;
    Ok(())
}

/// Grouped horizontal bars: for each label, one bar per series.
fn grouped_bars(
    path: &Path,
    title: &str,
    unit: &str,
    labels: &[String],
    series: &[(&str, RGBColor, Vec<f64>)],
) -> Res {
    let n = labels.len();
    if n == 0 {
        return Ok(());
    }
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min) / 3.0;
    let hi = all.iter().copied().fold(0.0, f64::max) * 4.0;
    let per = series.len() as u32;
    let bar_px = 9u32;
    let seg_px = bar_px * per + 8;
    let height = 100 + seg_px * n as u32;
    let root = BitMapBackend::new(path, (760, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 17))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(150)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n - 1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&log_label)
        .x_desc(unit)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()?;
    // Segment i spans [Exact(i), Exact(i+1)], drawn top (i+1) to bottom (i) in pixels.
    let plot_px = chart.plotting_area().dim_in_pixel().1 as f64 / n as f64;
    for (k, (name, color, values)) in series.iter().enumerate() {
        let top_of = |k: u32| ((plot_px - (bar_px * per) as f64) / 2.0) as u32 + k * bar_px;
        let color = *color;
        chart
            .draw_series(
                values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite() && **v > 0.0)
                    .map(|(i, v)| {
                        let top = top_of(k as u32);
                        let bottom = (plot_px as u32).saturating_sub(top + bar_px - 1);
                        let mut bar = Rectangle::new(
                            [
                                (lo, SegmentValue::Exact(i)),
                                (*v, SegmentValue::Exact(i + 1)),
                            ],
                            color.filled(),
                        );
                        bar.set_margin(top, bottom, 0, 0);
                        bar
                    }),
            )?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Latency against percentile ("nines" on the x axis), one line per map.
fn latency_plot(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Res {
    let max_ns = lines
        .iter()
        .flat_map(|l| l.1.iter().map(|p| p.1))
        .fold(10.0, f64::max)
        * 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 16))
        .margin(8)
        .margin_right(30)
        .x_label_area_size(34)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..5.0f64, (5.0..max_ns).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|x| match x.round() as i32 {
            0 => "p0".into(),
            1 => "p90".into(),
            2 => "p99".into(),
            3 => "p99.9".into(),
            4 => "p99.99".into(),
            _ => "p99.999".into(),
        })
        .y_label_formatter(&|y| fmt_ns(*y))
        .x_desc("percentile of reads")
        .y_desc("read latency (incl. ~timer cost)")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()?;
    let palette = [
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
        RGBColor(127, 127, 127),
    ];
    for (k, (id, points)) in lines.iter().enumerate() {
        let color = palette[k % palette.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(id.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 11))
        .draw()?;
    Ok(())
}

/// Labels only 1, 2 and 5 times a power of ten on a log axis (the others crowd it).
fn log_label(v: &f64) -> String {
    let mantissa = v / 10f64.powf(v.log10().floor());
    if [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 0.01) {
        fmt_num(*v)
    } else {
        String::new()
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.0} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.0} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The maps shown in the latency plots (one hasher per peer keeps them readable: Fx, so the
/// table and not the hash function is compared).
const LATENCY_IDS: [&str; 8] = [
    "snapmap-reader",
    "snapmap-oneoff",
    "rwlock-fx",
    "spin-heapless",
    "arcswap-fx",
    "dashmap-fx",
    "papaya-op-fx",
    "papaya-held-fx",
];

fn latency_lines(path: &Path, mode: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut hists: BTreeMap<String, Vec<(f64, u64)>> = BTreeMap::new();
    for row in read_tsv(path) {
        if row["mode"] == mode {
            let ns = row["upper_ns"].parse().unwrap_or(0.0);
            let count = row["count"].parse().unwrap_or(0);
            hists
                .entry(row["id"].clone())
                .or_default()
                .push((ns, count));
        }
    }
    LATENCY_IDS
        .iter()
        .filter_map(|id| {
            let h = hists.get(*id)?;
            let total: u64 = h.iter().map(|b| b.1).sum();
            let mut seen = 0u64;
            let mut points = Vec::new();
            for &(ns, count) in h {
                // Each bucket: from the fraction below it to the fraction through it.
                let before = seen as f64 / total as f64;
                seen += count;
                let after = seen as f64 / total as f64;
                let nines = |q: f64| (-(1.0 - q).max(1e-5).log10()).min(5.0);
                points.push((nines(before), ns.max(5.0)));
                points.push((nines(after), ns.max(5.0)));
            }
            Some((id.to_string(), points))
        })
        .collect()
}

const WORKLOADS: [(&str, &str, f64); 6] = [
    // (group, title, operations per criterion iteration)
    ("get_hit", "get (hit)", 1.0),
    ("get_miss", "get (miss)", 1.0),
    ("insert", "insert (new key)", 1.0),
    ("remove", "remove", 1.0),
    ("batch64", "batch of 64 inserts (keys/s)", 64.0),
    ("iter", "iteration over 1024 entries (entries/s)", 1024.0),
];

fn main() -> Res {
    // Fonts: compiled in, so plots render on any machine.
    plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "register the DejaVu font")?;
    let out = common::out_dir();
    let criterion_dir =
        std::env::var_os("CRITERION_HOME").map_or_else(|| out.join("criterion"), PathBuf::from);
    let plots =
        std::env::var_os("SNAPMAP_BENCH_PLOTS").map_or_else(|| out.join("plots"), PathBuf::from);
    std::fs::create_dir_all(&plots)?;

    let single = read_criterion(&criterion_dir)?;
    let conc = read_concurrent(&out.join("concurrent.tsv"));

    let mut tsv = String::from("kind\tworkload\tid\tvalue\tlow\thigh\textra\n");
    for ((group, id), e) in &single {
        writeln!(
            tsv,
            "ns\t{group}\t{id}\t{:.4}\t{:.4}\t{:.4}\t",
            e.median_ns, e.low_ns, e.high_ns
        )?;
    }
    for ((workload, id), c) in &conc {
        writeln!(
            tsv,
            "mops\t{workload}\t{id}\t{:.4}\t{:.4}\t{:.4}\twrites_per_s={:.0};rss_growth_kib={:.0};runs={};{}",
            c.mops, c.min, c.max, c.writes_per_s, c.rss_growth_kib, c.runs, c.notes
        )?;
    }
    // The maps taking turns (`turns`): the median turn per operation, with the quartiles.
    for row in read_tsv(&out.join("turns.tsv")) {
        writeln!(
            tsv,
            "ns\tturns_{}\t{}\t{}\t{}\t{}\tturns={}",
            row["workload"],
            row["id"],
            row["median_ns"],
            row["p25_ns"],
            row["p75_ns"],
            row["turns"]
        )?;
    }
    std::fs::write(out.join("results.tsv"), tsv)?;

    for (group, title, per_iter) in WORKLOADS {
        let rows: Vec<(String, f64)> = single
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, id), e)| (id.clone(), per_iter * 1e3 / e.median_ns))
            .collect();
        bars(
            &plots.join(format!("st_{group}.png")),
            &format!("1 thread, 1024 entries u64->u64: {title}"),
            "million operations per second (log scale)",
            &rows,
        )?;
    }

    let mixed: Vec<(String, f64)> = conc
        .iter()
        .filter(|((w, _), _)| w == "mixed")
        .map(|((_, id), c)| (id.clone(), c.mops))
        .collect();
    bars(
        &plots.join("mt_mixed.png"),
        "2 threads, 98% get / 1% insert / 1% remove (median of runs)",
        "million operations per second, both threads (log scale)",
        &mixed,
    )?;

    let mut ids: Vec<String> = conc
        .keys()
        .filter(|(w, _)| w == "read_alone")
        .map(|(_, id)| id.clone())
        .collect();
    ids.sort_by_key(|id| !id.starts_with("snapmap"));
    let get = |w: &str| -> Vec<f64> {
        ids.iter()
            .map(|id| {
                conc.get(&(w.to_owned(), id.clone()))
                    .map_or(f64::NAN, |c| c.mops)
            })
            .collect()
    };
    grouped_bars(
        &plots.join("mt_read_under_writes.png"),
        "1 reader while 1 writer writes (median of runs)",
        "reader: million gets per second (log scale)",
        &ids,
        &[
            ("reader alone", RGBColor(44, 160, 44), get("read_alone")),
            (
                "writer at 10,000/s",
                RGBColor(31, 119, 180),
                get("read_10k"),
            ),
            ("writer flat out", RGBColor(214, 39, 40), get("read_flat")),
        ],
    )?;

    let hist = out.join("latency_hist.tsv");
    let path = plots.join("latency.png");
    let root = BitMapBackend::new(&path, (900, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(380);
    latency_plot(
        &top,
        "Read latency, writer at 10,000 writes/s",
        &latency_lines(&hist, "10k"),
    )?;
    latency_plot(
        &bottom,
        "Read latency, writer flat out",
        &latency_lines(&hist, "flat"),
    )?;
    root.present()?;
    drop(root);

    println!(
        "report: {} and plots in {}",
        out.join("results.tsv").display(),
        plots.display()
    );
    Ok(())
}
