//! A conservative reference graph over a GNU-style assembly file (rustc `--emit=asm`).
//!
//! Nodes are functions (from `.type NAME,%function` / `@function` to the end of the function:
//! `.Lfunc_end*` or `.size NAME`) and data labels outside functions (vtables, statics, constant
//! tables; each extends to the next label or section change). A node references every label or
//! symbol named in its instructions and data directives: direct calls (`bl`, `b`), constant pools
//! (`.long sym`), function pointers in vtables. Labels inside a function (`.LBB*`, `.LCPI*`, ...)
//! stand for the function itself. Names defined nowhere in the file are *external* symbols
//! (`memcpy`, `_critical_section_1_0_acquire`, ...).
//!
//! Over-approximate by design: anything a function could reach through code or data it names is
//! considered reachable. Only pointers handed in from outside the file escape it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Debug, Default)]
pub struct AsmGraph {
    /// node -> names it references (labels, resolved later, and externals).
    refs: BTreeMap<String, BTreeSet<String>>,
    /// label -> the node it belongs to.
    owner: BTreeMap<String, String>,
    functions: BTreeSet<String>,
    /// Nodes containing an instruction that masks interrupts (`cpsid`).
    masks_interrupts: BTreeSet<String>,
}

/// What [`AsmGraph::reachable`] found.
#[derive(Debug, Default)]
pub struct Reach {
    /// Nodes (functions and data) of the file that were reached.
    pub nodes: BTreeSet<String>,
    /// External symbols referenced by reached nodes.
    pub externals: BTreeSet<String>,
    /// For each reached node and external, the node it was first reached from (for a path).
    parent: BTreeMap<String, String>,
}

impl Reach {
    /// The reference chain from a root to `name` (both included).
    pub fn path_to(&self, name: &str) -> Vec<String> {
        let mut path = vec![name.to_owned()];
        let mut cur = name;
        while let Some(p) = self.parent.get(cur) {
            path.push(p.clone());
            cur = p;
        }
        path.reverse();
        path
    }
}

fn strip_quotes(s: &str) -> &str {
    s.trim().trim_matches('"')
}

fn is_symbol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$')
}

/// Names that may be symbols in an operand list (quoted names kept whole).
fn symbol_tokens(operands: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = operands;
    while let Some(start) = rest.find(|c: char| c == '"' || is_symbol_char(c)) {
        rest = &rest[start..];
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or("");
        } else {
            let end = rest
                .find(|c: char| !is_symbol_char(c))
                .unwrap_or(rest.len());
            let token = &rest[..end];
            // Numbers and registers are not symbols; they are filtered out later by never being
            // defined, except registers, which we drop here to keep the externals list clean.
            if !token.starts_with(|c: char| c.is_ascii_digit()) {
                out.push(token);
            }
            rest = &rest[end..];
        }
    }
    out
}

/// Directives whose operands may name symbols (data that can hold addresses).
const DATA_DIRECTIVES: &[&str] = &[
    ".long", ".word", ".4byte", ".quad", ".8byte", ".xword", ".short", ".2byte",
];

impl AsmGraph {
    pub fn parse(asm: &str) -> Self {
        let mut graph = AsmGraph::default();
        // Names announced as functions by `.type`, so their label opens a function region.
        let mut function_types = BTreeSet::new();
        for line in asm.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix(".type") {
                let mut parts = rest.splitn(2, ',');
                let name = strip_quotes(parts.next().unwrap_or(""));
                let kind = parts.next().unwrap_or("").trim();
                if kind == "%function" || kind == "@function" {
                    function_types.insert(name.to_owned());
                }
            }
        }

        let mut current: Option<String> = None;
        let mut in_function = false;
        for raw in asm.lines() {
            let line = raw.split('@').next().unwrap_or("").trim(); // ARM comment char
            let line = line.split("//").next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some(label) = line.strip_suffix(':').map(strip_quotes) {
                if !label.contains(char::is_whitespace) {
                    if function_types.contains(label) {
                        graph.functions.insert(label.to_owned());
                        current = Some(label.to_owned());
                        in_function = true;
                    } else if label.starts_with(".Lfunc_end") {
                        if let Some(f) = &current {
                            graph.owner.insert(label.to_owned(), f.clone());
                        }
                        in_function = false;
                        current = None;
                        continue;
                    } else if !in_function {
                        current = Some(label.to_owned());
                    }
                    if let Some(node) = &current {
                        graph.owner.insert(label.to_owned(), node.clone());
                        graph.refs.entry(node.clone()).or_default();
                    }
                    continue;
                }
            }
            let (head, operands) = match line.find(char::is_whitespace) {
                Some(i) => (&line[..i], line[i..].trim()),
                None => (line, ""),
            };
            if head.starts_with('.') {
                if head == ".size" && in_function {
                    in_function = false;
                    current = None;
                } else if matches!(head, ".section" | ".text" | ".data" | ".bss" | ".rodata")
                    && !in_function
                {
                    current = None;
                }
                if !DATA_DIRECTIVES.contains(&head) {
                    continue;
                }
            }
            let Some(node) = &current else { continue };
            if head.eq_ignore_ascii_case("cpsid") {
                graph.masks_interrupts.insert(node.clone());
            }
            let refs = graph.refs.entry(node.clone()).or_default();
            for token in symbol_tokens(operands) {
                refs.insert(token.to_owned());
            }
        }
        graph
    }

    pub fn functions(&self) -> &BTreeSet<String> {
        &self.functions
    }

    /// Whether `node` contains an instruction that masks interrupts (`cpsid`).
    pub fn masks_interrupts(&self, node: &str) -> bool {
        self.masks_interrupts.contains(node)
    }

    /// Whether `name` is a function or data label defined in the file.
    pub fn defines(&self, name: &str) -> bool {
        self.owner.contains_key(name)
    }

    /// Everything reachable from `roots` by references. Tokens that are neither labels of the
    /// file nor plausible external symbols (registers, shift names) are ignored.
    pub fn reachable<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> Reach {
        let mut reach = Reach::default();
        let mut queue = VecDeque::new();
        for root in roots {
            if let Some(node) = self.owner.get(root) {
                if reach.nodes.insert(node.clone()) {
                    queue.push_back(node.clone());
                }
            }
        }
        while let Some(node) = queue.pop_front() {
            for name in self.refs.get(&node).into_iter().flatten() {
                if let Some(target) = self.owner.get(name) {
                    if reach.nodes.insert(target.clone()) {
                        reach.parent.insert(target.clone(), node.clone());
                        queue.push_back(target.clone());
                    }
                } else if looks_external(name) && reach.externals.insert(name.clone()) {
                    reach.parent.insert(name.clone(), node.clone());
                }
            }
        }
        reach
    }
}

/// Registers, condition and shift names, and local labels are not external symbols.
fn looks_external(name: &str) -> bool {
    const NOT_SYMBOLS: &[&str] = &[
        "sp",
        "lr",
        "pc",
        "fp",
        "ip",
        "sl",
        "sb",
        "apsr",
        "primask",
        "basepri",
        "faultmask",
        "control",
        "msp",
        "psp",
        "lsl",
        "lsr",
        "asr",
        "ror",
        "rrx",
        "sy",
        "ish",
        "ishst",
        "st",
        "ld",
        "lower16",
        "upper16",
        "eq",
        "ne",
        "cs",
        "hs",
        "cc",
        "lo",
        "mi",
        "pl",
        "vs",
        "vc",
        "hi",
        "ls",
        "ge",
        "lt",
        "gt",
        "le",
        "al",
        "i",
        "f",
        "got",
        "gotoff",
        "target1",
        "prel31",
        "sbrel",
        "tlsgd",
        "tpoff",
    ];
    if name.starts_with(".L") || name.starts_with('.') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    if NOT_SYMBOLS.contains(&lower.as_str()) {
        return false;
    }
    // r0-r15, s0-s31, d0-d31, q0-q15.
    let mut chars = lower.chars();
    if let Some('r' | 's' | 'd' | 'q') = chars.next() {
        let rest = chars.as_str();
        if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASM: &str = r#"
	.text
	.section	.text.reader,"ax",%progbits
	.globl	reader
	.p2align	1
	.type	reader,%function
	.code	16
	.thumb_func
reader:
	.fnstart
	push	{r7, lr}
	ldr	r0, .LCPI0_0
	ldr	r1, [r0]
	dmb	sy
	bl	helper
	pop	{r7, pc}
	.p2align	2
.LCPI0_0:
	.long	MAP
.Lfunc_end0:
	.size	reader, .Lfunc_end0-reader
	.cantunwind
	.fnend

	.section	.text.helper,"ax",%progbits
	.type	helper,%function
helper:
	movs	r0, #0
	bx	lr
.Lfunc_end1:
	.size	helper, .Lfunc_end1-helper

	.section	.text.writer,"ax",%progbits
	.type	writer,%function
writer:
	push	{r7, lr}
	ldr	r0, .LCPI2_0
	bl	_critical_section_1_0_acquire
	cpsid	i
	bl	__aeabi_memcpy
	pop	{r7, pc}
.LCPI2_0:
	.long	.Lvtable
.Lfunc_end2:
	.size	writer, .Lfunc_end2-writer

	.section	.rodata..Lvtable,"a",%progbits
.Lvtable:
	.long	helper
	.long	indirect
	.type	MAP,%object
	.section	.bss.MAP,"aw",%nobits
MAP:
	.zero	8
	.size	MAP, 8

	.section	.text.indirect,"ax",%progbits
	.type	indirect,%function
indirect:
	b	__sync_fetch_and_add_4
.Lfunc_end3:
"#;

    #[test]
    fn read_side_does_not_reach_writer_side() {
        let g = AsmGraph::parse(ASM);
        assert!(g.functions().contains("reader") && g.functions().contains("indirect"));
        let r = g.reachable(["reader"]);
        assert!(r.nodes.contains("helper") && r.nodes.contains("MAP"));
        assert!(r.externals.is_empty(), "{:?}", r.externals);
        assert!(!r.nodes.iter().any(|n| g.masks_interrupts(n)));
        assert!(g.masks_interrupts("writer"));
    }

    #[test]
    fn writer_reaches_externals_directly_and_through_vtables() {
        let g = AsmGraph::parse(ASM);
        let w = g.reachable(["writer"]);
        assert!(w.externals.contains("_critical_section_1_0_acquire"));
        assert!(w.externals.contains("__aeabi_memcpy"));
        assert!(
            w.externals.contains("__sync_fetch_and_add_4"),
            "{:?}",
            w.externals
        );
        assert_eq!(
            w.path_to("__sync_fetch_and_add_4"),
            ["writer", ".Lvtable", "indirect", "__sync_fetch_and_add_4"]
        );
    }
}
