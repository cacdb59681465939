//! The runbook format: its serde types, and loading a file with source positions.
//!
//! Loading deserializes the typed form (`deny_unknown_fields`, duplicate keys rejected by
//! serde-saphyr). When that fails, a second pass reads the YAML into a bare tree of positioned
//! nodes and reports *every* unknown or repeated key in the file at once, with a did-you-mean.
//! The compiler then checks everything the types cannot.

pub mod groups;
pub mod inventory;
pub mod operator;
pub mod types;
pub mod vars;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::options::DuplicateKeyPolicy;

use crate::diag::{Problem, Problems, SourceFile, suggestion};
pub use crate::span::{Pos, Sp};
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
    let mut loaded: Loaded<RunbookDoc> = load(path, Kind::Runbook)?;
    vars::as_written(&mut loaded.doc.vars, loaded.file.text());
    Ok(loaded)
}

pub fn load_library(path: &Path) -> Result<Loaded<LibraryDoc>, Problems> {
    load(path, Kind::Library)
}

/// Reads an environment file, its inventory checked: nothing in it may reach ssh unless it
/// is what it says it is.
pub fn load_env(path: &Path) -> Result<Loaded<EnvDoc>, Problems> {
    let mut loaded: Loaded<EnvDoc> = load(path, Kind::Env)?;
    vars::as_written(&mut loaded.doc.vars, loaded.file.text());
    inventory::check(&loaded.doc, &loaded.file)?;
    Ok(loaded)
}

/// Reads and parses a file of the given kind.
pub fn load<T: DeserializeOwned>(path: &Path, kind: Kind) -> Result<Loaded<T>, Problems> {
    // A FIFO or a device would be read forever, or block: only files are runbooks.
    if let Ok(m) = std::fs::metadata(path)
        && !m.is_file()
    {
        return Err(
            Problem::error(format!("`{}` is not a file", path.display()))
                .help("give the path of a runbook's YAML file, or a scenario name")
                .into(),
        );
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Problem::error(format!("cannot read `{}`: {e}", path.display()))
            .help("check the path; a scenario name is looked up as runbooks/<name>.yaml")
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = bytes_line(e.as_bytes(), at);
        Problem::error(format!(
            "`{}` is not UTF-8 text: line {line} holds a byte that is not (byte {at})",
            path.display()
        ))
        .help("save the file as UTF-8")
    })?;
    let file = SourceFile::new(path, &display_path(path), text);
    let doc = parse(&file, kind)?;
    Ok(Loaded { doc, file })
}

/// The 1-based line of a byte offset.
fn bytes_line(bytes: &[u8], at: usize) -> usize {
    1 + bytes.iter().take(at).filter(|b| **b == b'\n').count()
}

/// Parses text already read; used by `load` and by tests that feed the loader arbitrary text.
pub fn parse<T: DeserializeOwned>(file: &Arc<SourceFile>, kind: Kind) -> Result<T, Problems> {
    let text = file.text();
    // Comments alone (a schema line, say) make no document either.
    let blank = text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    });
    if blank {
        let start = Pos {
            line: 1,
            column: 1,
            offset: 0,
            len: 0,
        };
        return Err(Problem::error("the file is empty")
            .at(file, start)
            .label("nothing here")
            .help(match kind {
                Kind::Runbook => "a runbook needs at least `scenario`, `title`, `rto` and `steps`",
                Kind::Library => "a library step needs at least `title` and `run`",
                Kind::Env => "an environment file holds `vars`, `ssh`, `groups`, `inventory` and `auto_approve`",
            })
            .into());
    }
    // The typed pass rejects unknown and repeated keys too, but stops at the first; a valid
    // file (the common case) needs no other pass, which halves the time to load a large one.
    let typed_error = match serde_saphyr::from_str_with_options(text, options(text)) {
        Ok(doc) => return Ok(doc),
        Err(e) => yaml_problem(&e, file),
    };
    // The bare tree lets repeated keys through, so that every one of them is reported.
    let tree: Node = serde_saphyr::from_str_with_options(text, tree_options(text))
        .map_err(|e| Problems::from(yaml_problem(&e, file)))?;
    let mut problems = Problems::default();
    lint_duplicates(&tree, file, &mut problems);
    lint_keys(&tree, shape_of(kind), file, "", &mut problems);
    if problems.has_errors() {
        problems
            .0
            .sort_by_key(|p| p.pos.map(|pos| pos.offset).unwrap_or(0));
        return Err(problems);
    }
    Err(typed_error.into())
}

fn tree_options(text: &str) -> serde_saphyr::Options {
    let mut o = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        with_snippet: false,
    };
    o.budget = Some(budget(text));
    o
}

fn options(text: &str) -> serde_saphyr::Options {
    let mut o = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::Error,
        with_snippet: false,
    };
    o.budget = Some(budget(text));
    o
}

/// serde-saphyr's default budget stops at 250,000 nodes, about 35,000 steps. Without aliases a
/// document cannot hold more nodes than it has bytes, so the caps on nodes and events grow with
/// the text; the caps on aliases and anchors, which guard against expansion bombs, stay.
fn budget(text: &str) -> serde_saphyr::Budget {
    let mut b = serde_saphyr::Budget::default();
    b.max_nodes = b.max_nodes.max(text.len());
    b.max_events = b.max_events.max(2 * text.len());
    b
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
    let mut message = first_line(&message);
    // serde-saphyr's own wording names its options; say it in the format's words.
    if let Some(rest) = message.strip_prefix("duplicate mapping key") {
        let key = rest
            .split(',')
            .next()
            .unwrap_or("")
            .trim_start_matches(':')
            .trim();
        message = if key.is_empty() {
            "duplicate key".to_owned()
        } else {
            format!("duplicate key `{key}`")
        };
    }
    // And its type-level wording, in the format's.
    let mut help_for: Option<&str> = None;
    for (says, means, help) in WORDING {
        if message.contains(says) {
            message = (*means).to_owned();
            help_for = Some(help);
            break;
        }
    }
    let mut p = Problem::error(message).in_file(file);
    if let Some(loc) = e.location() {
        let mut pos = Pos::from_location(&loc);
        // Syntax errors come with a line and column but no byte offset: find it.
        if loc.span().byte_offset().is_none() {
            pos.offset = offset_of(file.text(), pos.line, pos.column);
            pos.len = 0;
        }
        p = p.at(file, pos);
    }
    let help = if let Some(h) = help_for {
        Some(h)
    } else if p.message.contains("duplicate") {
        Some("a key may appear once in a mapping: remove or rename the repeated one")
    } else if p.message.contains("missing field") {
        Some("add the missing key; `runbook schema` lists every key of the format")
    } else {
        None
    };
    p.maybe_help(help.map(str::to_owned))
}

/// serde-saphyr's messages that speak of Rust types or of its own API, and what they mean in
/// a runbook: (what it says, what we say, the help).
const WORDING: &[(&str, &str, &str)] = &[
    (
        "cannot deserialize null into",
        "a value is missing here (null)",
        "write a value, or \"\" for an empty one",
    ),
    (
        "invalid u32",
        "expected a whole number, 0 or more",
        "e.g. `retries: 2`",
    ),
    (
        // Only an inventory host's `port` is one.
        "invalid u16",
        "expected a port number, 1 to 65535",
        "e.g. `port: 2222`",
    ),
    (
        "invalid u64",
        "expected a whole number, 0 or more",
        "e.g. `min: 2`",
    ),
    (
        "expected sequence start",
        "expected a list here",
        "e.g. `needs: [a, b]`, or one item a line, each after `- `",
    ),
    (
        "expected string scalar",
        "expected a text value here, not a list or a mapping",
        "quote it to keep it as written, e.g. `run: \"echo {{ x }}\"`",
    ),
    (
        "multiple YAML documents detected",
        "more than one YAML document in the file (a `---` separator)",
        "a runbook is one document: remove the `---` line, or put the second document in a file of its own",
    ),
    (
        "budget breached",
        "too many YAML nodes or aliases to read this file",
        "a runbook needs no anchors that expand to large trees; write the values out",
    ),
];

/// The byte offset of a 1-based line and (character) column, clamped to the text.
fn offset_of(text: &str, line: u32, column: u32) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            let col = l
                .char_indices()
                .nth(column.saturating_sub(1) as usize)
                .map(|(b, _)| b)
                .unwrap_or(l.trim_end_matches('\n').len());
            return offset + col;
        }
        offset += l.len();
    }
    text.len()
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s).trim();
    let line = line.rsplit_once(" at line ").map_or(line, |(head, _)| head);
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

/// A mapping key of any scalar type, as text. Read as a string, as the typed pass reads field
/// names: read as "any", YAML 1.1 turns the key `on` into `true`.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
        }
        d.deserialize_str(V)
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
static INPUT_STEP: Shape = Shape {
    what: "input",
    keys: keys::INPUT_STEP,
    children: &[],
};
static MANUAL_STEP: Shape = Shape {
    what: "manual",
    keys: keys::MANUAL_STEP,
    children: &[],
};
static POLL: Shape = Shape {
    what: "poll",
    keys: keys::POLL,
    children: &[],
};
static HOSTS: Shape = Shape {
    what: "`hosts:`",
    keys: keys::HOSTS,
    children: &[],
};
static STEP: Shape = Shape {
    what: "step",
    keys: keys::STEP,
    children: &[
        ("approval", Child::One(&APPROVAL)),
        ("poll", Child::One(&POLL)),
        ("hosts", Child::One(&HOSTS)),
        ("input", Child::One(&INPUT_STEP)),
        ("manual", Child::One(&MANUAL_STEP)),
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
        ("finally", Child::List(&STEP)),
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
static SSH: Shape = Shape {
    what: "ssh defaults",
    keys: keys::SSH,
    children: &[],
};
static GROUP: Shape = Shape {
    what: "group",
    keys: keys::GROUP,
    children: &[],
};
static ENV: Shape = Shape {
    what: "environment",
    keys: keys::ENV,
    children: &[
        ("ssh", Child::One(&SSH)),
        ("groups", Child::Named(&GROUP)),
        ("inventory", Child::Named(&HOST)),
    ],
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
            let help = suggestion(&key.value, shape.keys.iter().copied()).unwrap_or_else(|| {
                let article = if shape.what.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                let keys: Vec<String> = shape.keys.iter().map(|k| format!("`{k}`")).collect();
                format!("{article} {} takes: {}", shape.what, keys.join(", "))
            });
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

/// Reports every key repeated in a mapping, anywhere in the file (serde stops at the first).
fn lint_duplicates(node: &Node, file: &Arc<SourceFile>, out: &mut Problems) {
    match &node.0.value {
        NodeKind::Map(entries) => {
            for (i, (key, value)) in entries.iter().enumerate() {
                if let Some((first, _)) = entries.iter().take(i).find(|(k, _)| k.value == key.value)
                {
                    out.push(
                        Problem::error(format!("duplicate key `{}`", key.value))
                            .at(file, key.pos)
                            .label("repeated key")
                            .help(format!(
                                "`{}` is already set on line {}; a key may appear once in a mapping: remove one",
                                key.value, first.pos.line
                            )),
                    );
                }
                lint_duplicates(value, file, out);
            }
        }
        NodeKind::Seq(items) => {
            for item in items {
                lint_duplicates(item, file, out);
            }
        }
        NodeKind::Scalar => {}
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
    // A block scalar is no name to put in a one-line message.
    if s.contains('\n') {
        return None;
    }
    Some(s.trim_matches(|c| c == '"' || c == '\'').to_owned())
}
