//! The benchmark pages: a template from `benchmarks/` filled with a run's figures, and the
//! targets of `benchmarks/targets.toml` judged against them.
//!
//! A template is Markdown written by hand. `{{name}}` is replaced by a block the command
//! renders from data (a table, the machine), `{{unit:id}}` by one figure, and
//! `{{unit:id / unit:id}}` by the ratio of two. A figure that was not measured shows as `–`.

use std::collections::BTreeMap;

use crate::util::{fail, workspace_root, Failure, Result};

/// Measured figures, by name (`ns:get_hit/snapmap-snapshot`, `instructions:get/floor`).
pub type Figures = BTreeMap<String, f64>;

/// `12.3 ns`, `4.56 µs`: three significant figures.
pub fn fmt_ns(ns: f64) -> String {
    let (v, unit) = match ns {
        ns if ns >= 1e6 => (ns / 1e6, "ms"),
        ns if ns >= 1e3 => (ns / 1e3, "µs"),
        ns => (ns, "ns"),
    };
    format!("{} {unit}", sig3(v))
}

/// Three significant figures, whatever the magnitude (`0.00271`, `3.46`, `123`).
pub fn sig3(v: f64) -> String {
    if v.abs() >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    }
}

pub fn ratio(r: Option<f64>) -> String {
    r.filter(|r| r.is_finite())
        .map_or("–".into(), |r| format!("{}×", sig3(r)))
}

/// A figure as a table cell: its unit (the part of its name before `:`) says how.
pub fn cell(name: &str, value: Option<f64>) -> String {
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return "–".into();
    };
    match name.split_once(':').map_or("", |(unit, _)| unit) {
        "ns" => fmt_ns(v),
        "pages" => format!("{v:.2}"),
        "mops" | "instructions" | "cycles" => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    }
}

/// The unit a figure's value is shown with, after a space.
fn unit(name: &str) -> &'static str {
    match name.split_once(':').map_or("", |(unit, _)| unit) {
        "ns" => " ns",
        "mops" => " Mops/s",
        "instructions" => " instructions",
        "cycles" => " cycles",
        u if u.ends_with("bytes") => " B",
        _ => "",
    }
}

/// A figure with its unit, for the targets' *measured* column (`ns` carries its own).
fn with_unit(name: &str, value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() && name.starts_with("ns:") => cell(name, value),
        Some(v) if v.is_finite() => cell(name, value) + unit(name),
        _ => "–".into(),
    }
}

fn figure(figures: &Figures, name: &str) -> Option<f64> {
    figures.get(name.trim()).copied().filter(|v| v.is_finite())
}

/// `a / b`, if both were measured.
fn quotient(figures: &Figures, a: &str, b: &str) -> Option<f64> {
    Some(figure(figures, a)? / figure(figures, b).filter(|b| *b != 0.0)?)
}

/// Fills `template`'s placeholders: blocks first, then figures and ratios.
pub fn fill(template: &str, blocks: &BTreeMap<&str, String>, figures: &Figures) -> Result<String> {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find("}}") else {
            return fail("a `{{` without its `}}` in a page template");
        };
        let name = rest[start + 2..start + len].trim();
        rest = &rest[start + len + 2..];
        if let Some(block) = blocks.get(name) {
            out.push_str(block);
        } else if let Some((a, b)) = name.split_once(" / ") {
            out.push_str(&ratio(quotient(figures, a, b)));
        } else if name.contains(':') {
            out.push_str(&cell(name, figure(figures, name)));
        } else {
            return fail(format!(
                "unknown placeholder `{{{{{name}}}}}` in a page template"
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A template of `benchmarks/`.
pub fn template(name: &str) -> Result<String> {
    let path = workspace_root().join("benchmarks").join(name);
    std::fs::read_to_string(&path).map_err(|e| Failure(format!("{}: {e}", path.display())))
}

/// One target of `benchmarks/targets.toml`.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    /// The measured value: `figure`, or `figure ÷ over`.
    pub figure: String,
    pub over: Option<String>,
    /// `<=` or `>=`, and the bound.
    pub at_most: bool,
    pub bound: f64,
    /// The bound as the file writes it (`1000`, `1.10`).
    bound_text: String,
    pub reason: String,
}

impl Target {
    /// The measured value, if its figures were measured.
    pub fn measured(&self, figures: &Figures) -> Option<f64> {
        match &self.over {
            Some(over) => quotient(figures, &self.figure, over),
            None => figure(figures, &self.figure),
        }
    }

    pub fn met(&self, figures: &Figures) -> Option<bool> {
        let v = self.measured(figures)?;
        Some(if self.at_most {
            v <= self.bound
        } else {
            v >= self.bound
        })
    }

    fn bound_text(&self) -> String {
        let op = if self.at_most { "≤" } else { "≥" };
        let unit = match &self.over {
            Some(_) => "×",
            None => unit(&self.figure),
        };
        format!("{op} {}{unit}", self.bound_text)
    }

    fn measured_text(&self, figures: &Figures) -> String {
        let a = with_unit(&self.figure, figure(figures, &self.figure));
        match &self.over {
            Some(over) => format!(
                "{a} / {} = {}",
                with_unit(over, figure(figures, over)),
                ratio(self.measured(figures))
            ),
            None => a,
        }
    }
}

/// The targets of `page` (a command: `bench`, `bench-m33`, `bench-rp2040`), in file order.
pub fn targets(page: &str) -> Result<Vec<Target>> {
    let path = workspace_root().join("benchmarks/targets.toml");
    let text =
        std::fs::read_to_string(&path).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    parse_targets(&text, page).map_err(|e| Failure(format!("{}: {}", path.display(), e.0)))
}

fn parse_targets(text: &str, page: &str) -> Result<Vec<Target>> {
    let doc: toml_edit::DocumentMut = text.parse()?;
    let Some(list) = doc.get("target").and_then(|t| t.as_array_of_tables()) else {
        return fail("no [[target]] tables");
    };
    let mut targets = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let text = |key: &str| t.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let need =
            |key: &str| text(key).ok_or_else(|| Failure(format!("target {}: no `{key}`", i + 1)));
        if need("page")? != page {
            continue;
        }
        let bound = need("bound")?;
        let (at_most, value) = match bound.split_once(' ') {
            Some(("<=", v)) => (true, v),
            Some((">=", v)) => (false, v),
            _ => return fail(format!("bound `{bound}`: write `<= X` or `>= X`")),
        };
        targets.push(Target {
            name: need("name")?,
            figure: need("figure")?,
            over: text("over"),
            at_most,
            bound: value
                .parse()
                .map_err(|_| Failure(format!("bound `{bound}`: not a number")))?,
            bound_text: value.to_owned(),
            reason: need("reason")?,
        });
    }
    Ok(targets)
}

/// Fails naming what `page` (a command) shows but this run did not measure: a target's figures,
/// or a figure of its template. A misspelt name would otherwise show as *not measured* or `–`.
pub fn check_measured(page: &str, figures: &Figures) -> Result {
    let mut missing: Vec<String> = targets(page)?
        .iter()
        .filter(|t| t.measured(figures).is_none())
        .map(|t| format!("target `{}`", t.name))
        .collect();
    let template = template(&format!("{page}.template.md"))?;
    let mut rest = template.as_str();
    while let Some((_, after)) = rest.split_once("{{") {
        let (name, after) = after.split_once("}}").unwrap_or((after, ""));
        rest = after;
        let names = name.split(" / ").filter(|n| n.contains(':'));
        for n in names.filter(|n| figure(figures, n).is_none()) {
            missing.push(format!("`{}` in {page}.template.md", n.trim()));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    fail(format!(
        "the run measured no figure for {}",
        missing.join(", ")
    ))
}

/// The targets table: target, bound, measured, met, and why the bound.
pub fn targets_table(targets: &[Target], figures: &Figures) -> String {
    let mut w = String::from("| target | bound | measured | met | why this bound |\n");
    w.push_str("|---|---|---|---|---|\n");
    for t in targets {
        let met = match t.met(figures) {
            Some(true) => "**yes**",
            Some(false) => "**no**",
            None => "not measured",
        };
        w.push_str(&format!(
            "| {} | {} | {} | {met} | {} |\n",
            t.name,
            t.bound_text(),
            t.measured_text(figures),
            t.reason
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(list: &[(&str, f64)]) -> Figures {
        list.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_ns(3.456), "3.46 ns");
        assert_eq!(fmt_ns(6543.0), "6.54 µs");
        assert_eq!(ratio(Some(0.002712)), "0.00271×");
        assert_eq!(ratio(None), "–");
        assert_eq!(sig3(1234.0), "1234");
        assert_eq!(cell("instructions:get", Some(50.55)), "50.5");
        assert_eq!(cell("ns:x", None), "–");
    }

    #[test]
    fn templates_take_blocks_figures_and_ratios() {
        let f = figures(&[("ns:a", 2.0), ("ns:b", 4.0)]);
        let blocks = BTreeMap::from([("table", "|x|".to_owned())]);
        let page = fill(
            "{{table}} {{ns:a}} {{ns:a / ns:b}} {{ns:gone}}",
            &blocks,
            &f,
        )
        .unwrap();
        assert_eq!(page, "|x| 2.00 ns 0.500× –");
        assert!(fill("{{typo}}", &blocks, &f).is_err());
        assert!(fill("{{ns:a", &blocks, &f).is_err());
    }

    const TARGETS: &str = r#"
[[target]]
page = "bench"
name = "held get"
figure = "ns:a"
over = "ns:b"
bound = "<= 1.1"
reason = "pages cost one load"

[[target]]
page = "bench-m33"
name = "insert"
figure = "instructions:insert"
bound = "<= 500"
reason = "small"

[[target]]
page = "bench"
name = "mixed"
figure = "mops:x"
bound = ">= 2"
reason = "fast"
"#;

    #[test]
    fn targets_are_judged_from_the_figures() {
        let t = parse_targets(TARGETS, "bench").unwrap();
        assert_eq!(t.len(), 2);
        let f = figures(&[("ns:a", 2.3), ("ns:b", 2.0), ("mops:x", 3.0)]);
        assert_eq!(t[0].met(&f), Some(false), "2.3 / 2.0 = 1.15 > 1.1");
        assert_eq!(t[1].met(&f), Some(true));
        assert_eq!(t[0].met(&figures(&[])), None);
        let table = targets_table(&t, &f);
        assert!(
            table.contains(
                "| held get | ≤ 1.1× | 2.30 ns / 2.00 ns = 1.15× | **no** | pages cost one load |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| mixed | ≥ 2 Mops/s | 3.0 Mops/s | **yes** |"),
            "{table}"
        );
        let m33 = parse_targets(TARGETS, "bench-m33").unwrap();
        assert!(m33[0]
            .measured(&figures(&[("instructions:insrt", 1.0)]))
            .is_none());
        assert!(targets_table(&m33, &figures(&[])).contains("| – | not measured |"));
        assert!(parse_targets("[[target]]\npage = \"bench\"\n", "bench").is_err());
        let bad = TARGETS.replace("<= 1.1", "< 1.1");
        assert!(parse_targets(&bad, "bench").is_err());
    }

    /// A run that measured nothing fails the check, naming targets and template figures.
    #[test]
    fn what_a_page_shows_must_be_measured() {
        let err = check_measured("bench-m33", &Figures::new()).unwrap_err().0;
        assert!(
            err.contains("target `one-key insert, in instructions`"),
            "{err}"
        );
        assert!(
            err.contains("`instructions:get/mutex` in bench-m33.template.md"),
            "{err}"
        );
    }

    /// The committed targets file parses, and every target names a figure the pages produce.
    #[test]
    fn the_targets_file_is_valid() {
        for page in ["bench", "bench-m33", "bench-rp2040", "bench-rp2350"] {
            let targets = targets(page).unwrap();
            assert!(!targets.is_empty(), "no targets for {page}");
            for t in targets {
                assert!(t.figure.contains(':'), "{}: figure `{}`", t.name, t.figure);
                assert!(!t.name.to_lowercase().contains("issue"), "{}", t.name);
                assert!(!t.reason.to_lowercase().contains("issue"), "{}", t.reason);
            }
        }
    }
}
