//! A board's page: its template (`benchmarks/<command>.template.md`) filled with one run's
//! figures, and its targets from `benchmarks/targets.toml`.

use std::collections::BTreeMap;

use super::{output, Bench, Measured};
use crate::page::{self, cell, Figures};
use crate::util::Result;

impl Bench {
    /// The run's figures, named as `benchmarks/targets.toml` and the template name them.
    pub(super) fn figures(&self, m: &Measured) -> Figures {
        let mut f = Figures::new();
        for (id, op) in &m.ops {
            if let Some(v) = m.per_op(id) {
                f.insert(format!("{}:{id}", self.unit), v);
            }
            f.insert(format!("cs:{id}"), op.critical_sections as f64);
            f.insert(format!("iters:{id}"), op.iters as f64);
        }
        for l in &m.lats {
            for (k, v) in l.fields() {
                f.insert(format!("lat:{}/{}/{k}", l.map, l.writer), *v as f64);
            }
        }
        for size in &m.sizes {
            for (k, v) in &size.fields {
                f.insert(format!("{k}-bytes:{}", size.shape), *v as f64);
            }
        }
        f
    }

    pub(super) fn targets(&self, m: &Measured) -> Result<String> {
        Ok(page::targets_table(
            &page::targets(self.command)?,
            &self.figures(m),
        ))
    }

    /// The page: the board's template filled with the run's figures and tables.
    pub(super) fn render_page(&self, m: &Measured) -> Result<String> {
        let fact = |k: &str| m.facts.get(k).cloned().unwrap_or_else(|| "?".into());
        let mut blocks: BTreeMap<&str, String> = ["date", "commit", "emulator", "runs"]
            .into_iter()
            .map(|k| (k, fact(k)))
            .collect();
        blocks.insert("targets", self.targets(m)?);
        blocks.insert("histograms", output::histograms(m));
        let mut sizes = String::from(
            "| shape | `SnapMap` | one `FnvIndexMap` | `SnapMap` ÷ one table |\n|---|---:|---:|---:|\n",
        );
        for s in &m.sizes {
            let get = |k: &str| s.fields.get(k).map(|&v| v as f64);
            let row = match (get("snapmap"), get("table"), get("mutex")) {
                (Some(snap), table, _) => format!(
                    "| {} | {snap:.0} | {} | {} |",
                    s.shape,
                    cell("bytes:", table),
                    page::ratio(table.map(|t| snap / t))
                ),
                (None, _, Some(mutex)) => {
                    format!(
                        "| `Mutex<RefCell<FnvIndexMap>>`, {} | {mutex:.0} | | |",
                        s.shape
                    )
                }
                _ => continue,
            };
            sizes.push_str(&row);
            sizes.push('\n');
        }
        blocks.insert("sizes", sizes);
        let mut stats = String::from("| after | writer statistics |\n|---|---|\n");
        for line in &m.stats {
            let (at, rest) = line.split_once(' ').unwrap_or(("", line));
            stats.push_str(&format!("| {} | {rest} |\n", at.trim_start_matches("at=")));
        }
        blocks.insert("stats", stats);
        let template = page::template(&format!("{}.template.md", self.command))?;
        page::fill(&template, &blocks, &self.figures(m))
    }
}
