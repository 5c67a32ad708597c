//! BENCHMARKS.md's tables and blocks, from one run's [`Results`]; the prose around them is
//! `benchmarks/bench.template.md`'s.

use std::collections::BTreeMap;

use super::Results;
use crate::bench_emulated::{self, M33, RP2040, RP2350};
use crate::page::{self, cell, fmt_ns, ratio};
use crate::util::{first_line, Result};

/// Every map, in the tables' order, with how the tables name it.
const MAPS: [(&str, &str); 18] = [
    ("snapmap-snapshot", "snapmap, held snapshot"),
    ("snapmap-reader", "snapmap, `Reader` (snapshot per op)"),
    ("snapmap-oneoff", "snapmap, one-off `map.get`"),
    ("snapmap-sole", "snapmap, sole `Writer` (pinless reads)"),
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

pub const PEERS: [&str; 11] = [
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

pub const SNAPMAPS: [&str; 2] = ["snapmap-reader", "snapmap-oneoff"];

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
const AGAINST: [(&str, &str, &str); 10] = [
    ("get_hit", "snapmap-snapshot", "get, held snapshot"),
    ("get_hit", "snapmap-reader", "get, `Reader`"),
    ("get_hit", "snapmap-oneoff", "get, one-off"),
    ("get_miss", "snapmap-reader", "miss, `Reader`"),
    ("insert", "snapmap-reader", "insert"),
    ("insert", "snapmap-sole", "insert, `Writer`"),
    ("remove", "snapmap-reader", "remove"),
    ("batch64", "snapmap-reader", "batch of 64"),
    ("batch64", "snapmap-sole", "batch, `Writer`"),
    ("iter", "snapmap-reader", "iterate"),
];

/// The maps taking turns (the `turns` benchmark), with how its tables name them.
const TURN_MAPS: [(&str, &str); 6] = [
    ("snapmap-sole", "snapmap, sole `Writer`"),
    (
        "snapmap-reader",
        "snapmap, writes through the map, `Reader`",
    ),
    ("papaya-op-fx", "papaya, guard per op, Fx"),
    ("rwlock-std", "`RwLock<HashMap>`, std hash"),
    ("rwlock-fx", "`RwLock<HashMap>`, Fx"),
    ("dashmap-fx", "dashmap, Fx"),
];

/// The workloads of the maps taking turns: (name in the results, column title).
const TURN_WORKLOADS: [(&str, &str); 5] = [
    ("insert", "insert (new key)"),
    ("replace", "replace"),
    ("remove", "remove"),
    ("batch64", "batch of 64"),
    ("iter", "iterate 1024"),
];

/// The peer the taking-turns ratios divide by.
const TURN_PEER: &str = "papaya-op-fx";

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

pub fn render(
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
    let (turns, turn_ratios) = turns(r);
    blocks.insert("turns", turns);
    blocks.insert("turn_ratios", turn_ratios);
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
    for (key, board) in [
        ("m33_targets", &M33),
        ("rp2040_targets", &RP2040),
        ("rp2350_targets", &RP2350),
    ] {
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
        ("kernel", first_line("uname", &["-sr"])),
        ("rustc", first_line("rustc", &["-V"])),
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

/// The maps taking turns: each workload's median turn per operation (per batch, per pass) with
/// the quartiles of the turns; and each map's medians ÷ papaya's.
fn turns(r: &Results) -> (String, String) {
    let titles: Vec<&str> = std::iter::once("map")
        .chain(TURN_WORKLOADS.map(|w| w.1))
        .collect();
    let figure = |unit: &str, w: &str, id: &str| r.get(&format!("{unit}:turns_{w}/{id}"));
    let times = TURN_MAPS.iter().map(|(id, name)| {
        let cells = TURN_WORKLOADS.iter().map(|(w, _)| {
            match (
                figure("ns", w, id),
                figure("ns-low", w, id),
                figure("ns-high", w, id),
            ) {
                (Some(m), Some(lo), Some(hi)) => {
                    format!("{} ({}–{})", fmt_ns(m), fmt_ns(lo), fmt_ns(hi))
                }
                (m, _, _) => cell("ns:", m),
            }
        });
        std::iter::once(name.to_string()).chain(cells).collect()
    });
    let ratios = TURN_MAPS.iter().map(|(id, name)| {
        let cells = TURN_WORKLOADS.iter().map(|(w, _)| {
            ratio(
                figure("ns", w, id)
                    .zip(figure("ns", w, TURN_PEER))
                    .map(|(a, b)| a / b),
            )
        });
        std::iter::once(name.to_string()).chain(cells).collect()
    });
    (table(&titles, times), table(&titles, ratios))
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
