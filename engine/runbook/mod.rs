//! The runbook format: its serde types, and loading a file with source positions.
//!
//! Loading takes two passes over the text. The first reads the YAML into a bare tree of
//! positioned nodes and reports *every* unknown key in the file at once, with a did-you-mean;
//! the second deserializes the typed form (`deny_unknown_fields`, duplicate keys rejected by
//! serde-saphyr). The compiler then checks everything the types cannot.

pub mod span;
pub mod types;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::options::DuplicateKeyPolicy;

use crate::diag::{Problem, Problems, SourceFile, suggestion};
pub use span::{Pos, Sp};
pub use types::*;

/// A document loaded from a file, with the file kept for error reports.
#[derive(Debug)]
pub struct Loaded<T> {
    pub doc: T,
    pub file: Arc<SourceFile>,
}

/// Which kind of file is being loaded: it decides the keys each mapping may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Runbook,
    Library,
    Env,
}

pub fn load_runbook(path: &Path) -> Result<Loaded<RunbookDoc>, Problems> {
    load(path, Kind::Runbook)
}

pub fn load_library(path: &Path) -> Result<Loaded<LibraryDoc>, Problems> {
    load(path, Kind::Library)
}

pub fn load_env(path: &Path) -> Result<Loaded<EnvDoc>, Problems> {
    load(path, Kind::Env)
}

/// Reads and parses a file of the given kind.
pub fn load<T: DeserializeOwned>(path: &Path, kind: Kind) -> Result<Loaded<T>, Problems> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Problem::error(format!("cannot read `{}`: {e}", path.display()))
            .help("check the path; a scenario name is looked up as runbooks/<name>.yaml")
    })?;
    let file = SourceFile::new(path, &display_path(path), text);
    let doc = parse(&file, kind)?;
    Ok(Loaded { doc, file })
}

/// Parses text already read; used by `load` and by tests that feed the loader arbitrary text.
pub fn parse<T: DeserializeOwned>(file: &Arc<SourceFile>, kind: Kind) -> Result<T, Problems> {
    let text = file.text();
    if text.trim().is_empty() {
        return Err(Problem::error("the file is empty")
            .in_file(file)
            .help(match kind {
                Kind::Runbook => "a runbook needs at least `scenario`, `title`, `rto` and `steps`",
                Kind::Library => "a library step needs at least `title` and `run`",
                Kind::Env => "an environment file holds `vars`, `inventory` and `auto_approve`",
            })
            .into());
    }
    let tree: Node = serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| Problems::from(yaml_problem(&e, file)))?;
    let mut problems = Problems::default();
    lint_keys(&tree, shape_of(kind), file, "", &mut problems);
    if problems.has_errors() {
        return Err(problems);
    }
    serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| Problems::from(yaml_problem(&e, file)))
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::Error,
        with_snippet: false,
    }
}

/// Paths are shown relative to the current directory when they lie below it.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn yaml_problem(e: &serde_saphyr::Error, file: &Arc<SourceFile>) -> Problem {
    let message = e.without_snippet().render();
    // serde-saphyr appends "at line X column Y"; the caret says that already.
    let message = first_line(&message);
    let mut p = Problem::error(message).in_file(file);
    if let Some(loc) = e.location() {
        p = p.at(file, Pos::from_location(&loc));
    }
    let help = if p.message.contains("duplicate") {
        Some("a key may appear once in a mapping: remove or rename the repeated one")
    } else if p.message.contains("missing field") {
        Some("add the missing key; `runbook schema` lists every key of the format")
    } else {
        None
    };
    p.maybe_help(help.map(str::to_owned))
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s).trim();
    let line = match line.rfind(" at line ") {
        Some(i) => &line[..i],
        None => line,
    };
    line.to_owned()
}

/// A bare YAML tree with positions, used only to report unknown keys.
#[derive(Debug)]
struct Node(Sp<NodeKind>);

#[derive(Debug)]
enum NodeKind {
    Map(Vec<(Sp<String>, Node)>),
    Seq(Vec<Node>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Sp::<NodeKind>::deserialize(d).map(Node)
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeKind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<NodeKind, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<NodeKind, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<NodeKind, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<NodeKind, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<NodeKind, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<NodeKind, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<NodeKind, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<NodeKind, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
                NodeKind::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
                let mut items = Vec::new();
                while let Some(n) = seq.next_element::<Node>()? {
                    items.push(n);
                }
                Ok(NodeKind::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = map.next_key::<Sp<KeyText>>()? {
                    let v = map.next_value::<Node>()?;
                    entries.push((Sp::new(k.value.0, k.pos), v));
                }
                Ok(NodeKind::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping key of any scalar type, as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        types::Text::deserialize(d).map(|t| KeyText(t.0))
    }
}

/// What a mapping may hold: its known keys, and the shape of the values under some of them.
struct Shape {
    what: &'static str,
    keys: &'static [&'static str],
    children: &'static [(&'static str, Child)],
}

#[derive(Clone, Copy)]
enum Child {
    /// A mapping of the given shape.
    One(&'static Shape),
    /// A list of mappings of the given shape.
    List(&'static Shape),
    /// A mapping from free names to mappings of the given shape.
    Named(&'static Shape),
}

static APPROVAL: Shape = Shape {
    what: "approval",
    keys: keys::APPROVAL,
    children: &[],
};
static POLL: Shape = Shape {
    what: "poll",
    keys: keys::POLL,
    children: &[],
};
static STEP: Shape = Shape {
    what: "step",
    keys: keys::STEP,
    children: &[
        ("approval", Child::One(&APPROVAL)),
        ("poll", Child::One(&POLL)),
    ],
};
static ESCALATION: Shape = Shape {
    what: "escalation",
    keys: keys::ESCALATION,
    children: &[],
};
static RUNBOOK: Shape = Shape {
    what: "runbook",
    keys: keys::RUNBOOK,
    children: &[
        ("steps", Child::List(&STEP)),
        ("escalation", Child::List(&ESCALATION)),
    ],
};
static INPUT: Shape = Shape {
    what: "input",
    keys: keys::INPUT,
    children: &[],
};
static LIBRARY: Shape = Shape {
    what: "library step",
    keys: keys::LIBRARY,
    children: &[
        ("inputs", Child::Named(&INPUT)),
        ("poll", Child::One(&POLL)),
    ],
};
static HOST: Shape = Shape {
    what: "inventory host",
    keys: keys::HOST,
    children: &[],
};
static ENV: Shape = Shape {
    what: "environment",
    keys: keys::ENV,
    children: &[("inventory", Child::Named(&HOST))],
};

fn shape_of(kind: Kind) -> &'static Shape {
    match kind {
        Kind::Runbook => &RUNBOOK,
        Kind::Library => &LIBRARY,
        Kind::Env => &ENV,
    }
}

fn lint_keys(
    node: &Node,
    shape: &'static Shape,
    file: &Arc<SourceFile>,
    context: &str,
    out: &mut Problems,
) {
    let NodeKind::Map(entries) = &node.0.value else {
        return; // a wrong type is reported by the typed pass
    };
    // Name a step by its id in messages, when it has one.
    let id = entries
        .iter()
        .find(|(k, _)| k.value == "id")
        .and_then(|(_, v)| scalar_text(file, v));
    let here = match (&id, context.is_empty()) {
        (Some(id), _) => format!("{} `{id}`", shape.what),
        (None, true) => shape.what.to_owned(),
        (None, false) => context.to_owned(),
    };
    for (key, value) in entries {
        if !shape.keys.contains(&key.value.as_str()) {
            let help = suggestion(&key.value, shape.keys.iter().copied())
                .unwrap_or_else(|| format!("a {} takes: {}", shape.what, shape.keys.join(", ")));
            out.push(
                Problem::error(format!("unknown key `{}` in {here}", key.value))
                    .at(file, key.pos)
                    .label("unknown key")
                    .help(help),
            );
            continue;
        }
        let Some((_, child)) = shape.children.iter().find(|(k, _)| *k == key.value) else {
            continue;
        };
        match (child, &value.0.value) {
            (Child::One(s), _) => lint_keys(value, s, file, &format!("{} of {here}", s.what), out),
            (Child::List(s), NodeKind::Seq(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let ctx = format!("{} #{}", s.what, i + 1);
                    lint_keys(item, s, file, &ctx, out);
                }
            }
            (Child::Named(s), NodeKind::Map(named)) => {
                for (name, item) in named {
                    let ctx = format!("{} `{}`", s.what, name.value);
                    lint_keys(item, s, file, &ctx, out);
                }
            }
            _ => {}
        }
    }
}

/// The text of a scalar node, read back from the source by its span.
fn scalar_text(file: &Arc<SourceFile>, node: &Node) -> Option<String> {
    if !matches!(node.0.value, NodeKind::Scalar) {
        return None;
    }
    let p = node.0.pos;
    let text = file.text();
    let s = text.get(p.offset..p.offset + p.len)?;
    Some(s.trim_matches(|c| c == '"' || c == '\'').to_owned())
}
