//! The layers of `engine/` point down only, and form no cycle (docs/design.md, "Layers").
//!
//! Every path to another module of the crate — `use crate::…`, `crate::x::f()` in code,
//! `super::…` that climbs to the crate root — is an edge from the module (the top-level one:
//! `engine/exec/machine/frontier.rs` is `exec`) to the one it names. An edge to a module of a
//! higher layer, or a cycle of modules, fails here with the file and line that made it: a
//! newcomer reads the crate bottom-up, and a module that reaches up drags the layers above
//! it into every change below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use its own layer (no cycle allowed) and those below.
/// `ui` (the words and colours of records, and the observers) sits below `exec`, which feeds
/// the observers, and `report`, which uses its words.
const LAYERS: &[&[&str]] = &[
    // Leaves: they know nothing of the engine.
    &["units", "dag", "digest", "span", "diag", "signing"],
    // The runbook format and what it is made of.
    &["format", "template", "project", "state"],
    &["compile", "schema"],
    &["journal", "simulate"],
    &["ui"],
    &["exec"],
    &["report"],
    &["app"],
    &["cli"],
];

/// The crate roots: they declare the modules (`lib.rs`) or start the binaries, and are above all.
const ROOTS: &[&str] = &["lib", "main", "bin"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// One path from a file to another module of the crate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    file: String,
    line: usize,
}

/// The module path of a file under `engine/`: `exec/machine/mod.rs` is `[exec, machine]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_owned());
    }
    parts
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}

/// The first segment of each item of a `{a, b::c, self}` group that `s` starts inside of.
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_item = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item = true,
            c if at_item && is_ident(c) => {
                at_item = false;
                if depth == 0 {
                    heads.push(ident(&s[i..]).to_owned());
                }
            }
            _ => {}
        }
    }
    heads
}

/// The modules at the crate root that `source` (the file at `path`, a module path) names.
fn edges_of(path: &[String], file: &str, source: &str) -> Vec<Edge> {
    let from = path.first().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (n, line) in source.lines().enumerate() {
        // Comments say why, they name no dependency.
        let code = line.split("//").next().unwrap_or("");
        let mut push = |to: String| {
            if to != from && to != "self" && to != "super" && !to.is_empty() {
                out.push(Edge {
                    from: from.clone(),
                    to,
                    file: file.to_owned(),
                    line: n + 1,
                });
            }
        };
        for (i, _) in code.match_indices("crate::") {
            let before = code[..i].chars().next_back();
            if before.is_some_and(is_ident) {
                continue;
            }
            let rest = &code[i + "crate::".len()..];
            match rest.strip_prefix('{') {
                Some(group) => group_heads(group).into_iter().for_each(&mut push),
                None => push(ident(rest).to_owned()),
            }
        }
        for (i, _) in code.match_indices("super::") {
            if code[..i].ends_with("super::") || code[..i].chars().next_back().is_some_and(is_ident)
            {
                continue;
            }
            let mut rest = &code[i..];
            let mut up = 0;
            while let Some(r) = rest.strip_prefix("super::") {
                up += 1;
                rest = r;
            }
            // Only a `super` that climbs to the crate root names another top-level module.
            if up < path.len() {
                continue;
            }
            match rest.strip_prefix('{') {
                Some(group) => group_heads(group).into_iter().for_each(&mut push),
                None => push(ident(rest).to_owned()),
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

struct Crate {
    /// Top-level modules found under engine/.
    modules: BTreeSet<String>,
    /// Edges between top-level modules (the roots left out).
    edges: Vec<Edge>,
}

fn engine() -> Crate {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("engine");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut modules = BTreeSet::new();
    let mut edges = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&root).expect("under engine/");
        let path = module_path(rel);
        let Some(top) = path.first() else { continue };
        if ROOTS.contains(&top.as_str()) {
            continue;
        }
        modules.insert(top.clone());
        let text = std::fs::read_to_string(&f).expect("a readable source file");
        let file = format!("engine/{}", rel.display());
        edges.extend(edges_of(&path, &file, &text));
    }
    // A path to something at the root that is not a module (a macro, `crate::main`) is no edge.
    edges.retain(|e| modules.contains(&e.to));
    edges.sort();
    Crate { modules, edges }
}

/// The edges that point to a higher layer.
fn upward(edges: &[Edge]) -> Vec<String> {
    edges
        .iter()
        .filter(|e| match (layer_of(&e.from), layer_of(&e.to)) {
            (Some(from), Some(to)) => to > from,
            _ => false,
        })
        .map(|e| {
            format!(
                "{}:{}: `{}` uses `{}`, a layer above it",
                e.file, e.line, e.from, e.to
            )
        })
        .collect()
}

/// One cycle of modules, if there is any, as `a → b → a` with the file and line of each edge.
fn a_cycle(edges: &[Edge]) -> Option<Vec<&Edge>> {
    let mut next: BTreeMap<&str, Vec<&Edge>> = BTreeMap::new();
    for e in edges {
        let out = next.entry(&e.from).or_default();
        if !out.iter().any(|o| o.to == e.to) {
            out.push(e);
        }
    }
    // Depth-first from each module; a module met again on the current path closes a cycle.
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for &start in next.keys() {
        let mut path: Vec<&Edge> = Vec::new();
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        while let Some((at, tried)) = stack.last_mut() {
            let at: &str = at;
            let outs = next.get(at).map(Vec::as_slice).unwrap_or(&[]);
            let Some(&e) = outs.get(*tried) else {
                done.insert(at);
                stack.pop();
                path.pop();
                continue;
            };
            *tried += 1;
            if let Some(k) = stack.iter().position(|(m, _)| *m == e.to) {
                let mut cycle: Vec<&Edge> = path[k..].to_vec();
                cycle.push(e);
                return Some(cycle);
            }
            if !done.contains(e.to.as_str()) {
                path.push(e);
                stack.push((&e.to, 0));
            }
        }
    }
    None
}

/// Regression: `diag` and the format's loader imported each other (over the position types).
#[test]
fn the_modules_of_engine_form_no_cycle() {
    let c = engine();
    if let Some(cycle) = a_cycle(&c.edges) {
        let steps: Vec<String> = cycle
            .iter()
            .map(|e| format!("  `{}` → `{}` ({}:{})", e.from, e.to, e.file, e.line))
            .collect();
        panic!(
            "the modules of engine/ form a cycle; break one of these edges (move what both need into a leaf):\n{}",
            steps.join("\n")
        );
    }
}

/// A module that reaches up (the position types in `diag` reaching into the format did) ties
/// every change of the layer above to the one below.
#[test]
fn no_module_of_engine_uses_one_of_a_higher_layer() {
    let c = engine();
    let up = upward(&c.edges);
    assert!(
        up.is_empty(),
        "edges that point up (the layers are in tests/it/layers.rs and docs/design.md); move the item down or the caller up:\n{}",
        up.join("\n")
    );
}

#[test]
fn every_module_of_engine_has_a_layer() {
    let c = engine();
    let missing: Vec<&String> = c.modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "modules with no layer: {missing:?}; add each to `LAYERS` in tests/it/layers.rs (and to docs/design.md's table)"
    );
    let gone: Vec<&&str> = LAYERS
        .iter()
        .flat_map(|l| l.iter())
        .filter(|m| !c.modules.contains(**m))
        .collect();
    assert!(
        gone.is_empty(),
        "`LAYERS` names modules engine/ lacks: {gone:?}; remove them from tests/it/layers.rs"
    );
}

/// Regression: the executor took the environment's YAML `HostDoc`, bypassing the compiler.
/// Its tests may still build their plans from YAML text.
#[test]
fn the_executor_takes_compiled_hosts_not_the_format() {
    let c = engine();
    let bypass: Vec<String> = c
        .edges
        .iter()
        .filter(|e| e.from == "exec" && e.to == "format")
        .filter(|e| !e.file.ends_with("/tests.rs") && !e.file.contains("/tests/"))
        .map(|e| format!("{}:{}", e.file, e.line))
        .collect();
    assert!(
        bypass.is_empty(),
        "exec uses the format directly at {bypass:?}; take what it needs from the compiled plan (`compile::Host`, `compile::OnFailure`)"
    );
}

/// The scanner itself: a check that sees no edge can never fail.
#[test]
fn the_scanner_sees_use_lines_groups_paths_in_code_and_supers_that_climb_to_the_root() {
    let src = "use crate::journal::Record;\n\
               use crate::{dag, format::{Pos, Sp}, self};\n\
               let x = crate::units::fmt_duration(d); // crate::cli in a comment\n\
               use super::super::report::Model;\n\
               use super::sibling;\n";
    let path = vec!["exec".to_owned(), "machine".to_owned()];
    let to: Vec<(String, usize)> = edges_of(&path, "f.rs", src)
        .into_iter()
        .map(|e| (e.to, e.line))
        .collect();
    assert_eq!(
        to,
        [
            ("journal".to_owned(), 1),
            ("dag".to_owned(), 2),
            ("format".to_owned(), 2),
            ("units".to_owned(), 3),
            ("report".to_owned(), 4),
        ]
    );
    let edge = |from: &str, to: &str| Edge {
        from: from.into(),
        to: to.into(),
        file: "f.rs".into(),
        line: 1,
    };
    assert_eq!(upward(&[edge("journal", "exec")]).len(), 1);
    assert!(upward(&[edge("exec", "journal")]).is_empty());
    let cycle = [
        edge("diag", "span"),
        edge("span", "format"),
        edge("format", "diag"),
    ];
    assert_eq!(a_cycle(&cycle).map(|c| c.len()), Some(3));
    assert!(a_cycle(&cycle[..2]).is_none());
}
