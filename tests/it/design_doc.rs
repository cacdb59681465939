//! docs/design.md stays true: every event type and field a journal holds, and every exit code
//! the command line promises, is documented there. A field added to the journal, or a code
//! added to a command's `--help`, without a line in the design fails here.
//!
//! The journal's fields are taken two ways: from the journals of real runs through the binary
//! (success, failure, gates answered, denied and answered late, a gate's timeout and a resume,
//! a drill in a rehearsal environment, a dry-run), which shows the keys exactly as written; and
//! from `engine/journal/events.rs`, for the optional fields only rare paths write (a dead
//! supervisor, `--mark-done`).

use std::collections::{BTreeMap, BTreeSet};

use crate::support::Project;
use serde_json::Value;

fn design() -> String {
    std::fs::read_to_string(crate::support::repo_root().join("docs/design.md"))
        .expect("docs/design.md exists")
}

/// The text of a `## ` section, to the next one.
fn section(doc: &str, heading: &str) -> String {
    let start = doc
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("docs/design.md has no section `## {heading}`"));
    let body = &doc[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 3);
    body[..end].to_owned()
}

/// The words in backticks in a piece of text.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// One `### ` part of the journal section: the names it documents (event types, or `record`
/// for the fields of every line), its table's fields with their type, and its text.
struct Part {
    fields: BTreeMap<String, String>,
    text: String,
}

/// The journal section of the design, by event type (`record`: the fields of every line).
fn journal_doc() -> BTreeMap<String, Part> {
    let text = section(&design(), "The journal");
    let mut parts = BTreeMap::new();
    for sub in text.split("\n### ").skip(1) {
        let (title, body) = sub.split_once('\n').unwrap_or((sub, ""));
        let names = if title == "A record" {
            vec!["record".to_owned()]
        } else {
            backticked(title)
        };
        let fields: BTreeMap<String, String> = body
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split(" | ").collect();
                let name = backticked(cells[0]).remove(0);
                (name, cells.get(1).unwrap_or(&"").to_string())
            })
            .collect();
        for name in names {
            parts.insert(
                name,
                Part {
                    fields: fields.clone(),
                    text: body.to_owned(),
                },
            );
        }
    }
    parts
}

/// Every key under `value`, as `a`, `a.b` and `a[].b` paths; not into a field the design
/// documents as a map (its keys are the runbook's: variables, outputs, library steps).
fn paths(prefix: &str, value: &Value, part: Option<&Part>, out: &mut BTreeSet<String>) {
    let Value::Object(map) = value else { return };
    for (k, v) in map {
        let path = format!("{prefix}{k}");
        out.insert(path.clone());
        let is_map = part
            .and_then(|p| p.fields.get(&path))
            .is_some_and(|ty| ty.contains("map"));
        if is_map {
            continue;
        }
        match v {
            Value::Object(_) => paths(&format!("{path}."), v, part, out),
            Value::Array(items) => {
                for item in items {
                    paths(&format!("{path}[]."), item, part, out);
                }
            }
            _ => {}
        }
    }
}

const WIDE: &str = r#"
scenario: wide
title: Every event a run can write
rto: 2m
rpo: 1h
rto_ends_at: restore
roles: { oncall: [tester, bob, carol] }
vars: { token: none }
secrets: [DESIGN_DOC_SECRET]
notify:
  oncall: "echo paged >&2; exit 3"
escalation: [{ after: 0s, notify: oncall }, { after: 1h, notify: oncall }]
steps:
  - id: seed
    budget: 10s
    estimate: 50s..70s..90s
    run: "printf 'file=/b/x\nkey=%s\n' \"$DESIGN_DOC_SECRET\" >> \"$RUNBOOK_OUTPUT\""
    drill: run
  - id: flaky
    needs: [seed]
    budget: 10s
    retries: 1
    backoff: 0s
    on_failure: continue
    run: "exit 1"
    drill: run
  - id: wait-ready
    needs: [seed]
    budget: 10s
    poll: { every: 100ms, within: 20s }
    run: "test -e ready || { touch ready; exit 1; }"
    drill: mock
  - id: approve
    needs: [seed]
    budget: 30s
    approval: { prompt: "Go?", approvers: [oncall] }
  - id: restore
    needs: [approve, wait-ready, flaky]
    budget: 30s
    run: "true"
    drill: { run: "echo drill" }
  - id: watch
    needs: [restore]
    budget: 30s
    run: "true"
    drill: skip
"#;

const BROKEN: &str = r#"
scenario: broken
title: A step fails, another times out
rto: 1h
steps:
  - id: slow
    budget: 1m
    timeout: 1s
    on_failure: continue
    run: "sleep 30"
    drill: run
  - id: fails
    budget: 1m
    run: "exit 3"
    drill: run
  - id: after
    needs: [fails]
    budget: 1m
    run: "true"
    drill: run
"#;

const GATE: &str = r#"
scenario: gate
title: Two people decide
rto: 1h
roles: { oncall: [tester, bob, carol] }
steps:
  - id: decide
    budget: 10m
    approval: { prompt: "Go?", approvers: [oncall], min: 2 }
  - id: act
    needs: [decide]
    budget: 1m
    run: "true"
    drill: run
"#;

const TIMEOUT: &str = r#"
scenario: timeout
title: Nobody answers
rto: 1h
roles: { oncall: [tester] }
steps:
  - id: decide
    budget: 10m
    approval: { prompt: "Go?", approvers: [oncall], timeout: 1s }
  - id: act
    needs: [decide]
    budget: 1m
    run: "true"
    drill: run
"#;

/// A loop over an upstream output: `loop_expanded`.
const OUTPUT_LOOP: &str = r#"scenario: outloop
title: Loop over an output
rto: 10m
steps:
  - id: discover
    budget: 1m
    run: "echo 'regions=[\"a\",\"b\"]' >> $RUNBOOK_OUTPUT"
    drill: run
  - id: sync
    needs: [discover]
    for_each: "{{ steps['discover'].outputs.regions }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
"#;

/// Runs that between them write every event type; returns every journal's records.
fn journals() -> Vec<Value> {
    let p = Project::with_runbook("wide", WIDE);
    p.write("runbooks/broken.yaml", BROKEN)
        .write("runbooks/gate.yaml", GATE)
        .write("runbooks/timeout.yaml", TIMEOUT)
        .write(
            "runbooks/env/rehearse.yaml",
            "rehearsal: true\nauto_approve: true\n",
        );
    let with_secret = |args: &[&str]| {
        let mut c = p.cmd(args);
        c.env("DESIGN_DOC_SECRET", "s3cr3t-value");
        p.run_with(c)
    };
    with_secret(&["run", "wide", "--dry-run", "--max-parallel", "3"]).code(0);
    with_secret(&["run", "wide", "--yes", "--as", "tester"]).code(0);
    with_secret(&["run", "wide", "--drill", "--env", "rehearse", "--yes"]).code(0);
    p.run(&["run", "broken"]).code(1);

    let gate = p.spawn(&["run", "gate"]);
    let run = p.wait_for("approval_requested", "decide");
    p.run(&["approve", &run, "decide", "--as", "mallory"])
        .code(1);
    p.run(&["approve", &run, "decide", "--as", "bob"]).code(0);
    p.run(&["deny", &run, "decide", "--as", "carol"]).code(0);
    gate.finish().code(1);
    p.run(&["approve", &run, "decide", "--as", "tester"])
        .code(1);

    p.run(&["run", "timeout"]).code(3);
    p.run(&["resume", "--yes", "--as", "tester"]).code(0);
    // Last: `wait_for` and `resume` above look at the newest run.
    p.write("runbooks/outloop.yaml", OUTPUT_LOOP);
    p.run(&["run", "outloop"]).code(0);

    p.run_ids()
        .iter()
        .flat_map(|id| p.journal_events(id))
        .collect()
}

/// Regression: the journal's docs had drifted from what runs write (`how` values never
/// written, `escalated.reason` without `approval_requested`), and no design said what it holds.
#[test]
fn every_event_field_and_value_a_run_journals_is_in_the_design() {
    let doc = journal_doc();
    let mut missing = Vec::new();
    let mut types = BTreeSet::new();
    for rec in journals() {
        let Value::Object(map) = &rec else {
            panic!("a journal line is an object: {rec}")
        };
        for k in map.keys() {
            if !doc["record"].fields.contains_key(k) {
                missing.push(format!("the record field `{k}`"));
            }
        }
        let ty = rec["type"]
            .as_str()
            .expect("a record has a type")
            .to_owned();
        types.insert(ty.clone());
        let Some(part) = doc.get(&ty) else {
            missing.push(format!("the event type `{ty}`"));
            continue;
        };
        let mut seen = BTreeSet::new();
        paths("", &rec["data"], Some(part), &mut seen);
        for path in seen {
            if !part.fields.contains_key(&path) {
                missing.push(format!("`{ty}` field `{path}`"));
            }
        }
        // The words a field takes are documented with its event.
        for field in ["how", "status", "reason", "mode", "decision"] {
            let Some(word) = rec["data"][field].as_str() else {
                continue;
            };
            let free_text = matches!(
                (ty.as_str(), field),
                ("approval_rejected" | "approval_late", "reason")
            );
            if !free_text && !part.text.contains(&format!("`{word}`")) {
                missing.push(format!("`{ty}`.`{field}` value `{word}`"));
            }
        }
    }
    // The runs above must reach every event type, or this test checks less than it says.
    let documented: BTreeSet<String> = doc.keys().filter(|k| *k != "record").cloned().collect();
    let unreached: Vec<&String> = documented.difference(&types).collect();
    assert!(unreached.is_empty(), "no run here journaled {unreached:?}");
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "docs/design.md (\"The journal\") does not document:\n  {}",
        missing.join("\n  ")
    );
}

/// The structs of `events.rs`, each with its `pub` fields and their types.
fn event_structs(src: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut structs = BTreeMap::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    for line in src.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches(" {").trim().to_owned();
            current = Some((name, Vec::new()));
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                structs.insert(name, fields);
            }
        } else if let Some((_, fields)) = current.as_mut()
            && let Some(rest) = line.strip_prefix("pub ")
            && let Some((name, ty)) = rest.split_once(": ")
        {
            fields.push((name.to_owned(), ty.trim_end_matches(',').to_owned()));
        }
    }
    structs
}

/// `RunStarted` -> `run_started`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The field paths of a struct, into the structs it holds (`plan.steps[].id`).
fn struct_paths(
    structs: &BTreeMap<String, Vec<(String, String)>>,
    name: &str,
    prefix: &str,
    out: &mut Vec<String>,
) {
    for (field, ty) in &structs[name] {
        let path = format!("{prefix}{field}");
        out.push(path.clone());
        let inner = ty
            .trim_start_matches("Option<")
            .trim_start_matches("Box<")
            .trim_end_matches('>');
        if let Some(elem) = inner.strip_prefix("Vec<") {
            if structs.contains_key(elem) {
                struct_paths(structs, elem, &format!("{path}[]."), out);
            }
        } else if structs.contains_key(inner) {
            struct_paths(structs, inner, &format!("{path}."), out);
        }
    }
}

/// Regression: a field written only on a rare path (`marked_done_by`, `run_resumed.marked_done`)
/// could go undocumented with no run of the test above to show it.
#[test]
fn every_field_of_every_event_type_in_the_source_is_in_the_design() {
    let root = crate::support::repo_root();
    let src = std::fs::read_to_string(root.join("engine/journal/events.rs")).unwrap();
    let structs = event_structs(&src);
    let body = &src[src.find("pub enum EventKind {").expect("EventKind")..];
    let body = &body[..body.find("\n}").unwrap()];
    let variants: Vec<(String, String)> = body
        .lines()
        .filter_map(|l| {
            let (variant, ty) = l.trim().trim_end_matches("),").split_once('(')?;
            let ty = ty.trim_start_matches("Box<").trim_end_matches('>');
            Some((snake(variant), ty.to_owned()))
        })
        .collect();
    assert!(variants.len() >= 19, "EventKind read as {variants:?}");
    let doc = journal_doc();
    let mut missing = Vec::new();
    for (ty, st) in &variants {
        let Some(part) = doc.get(ty) else {
            missing.push(format!("the event type `{ty}`"));
            continue;
        };
        let mut fields = Vec::new();
        struct_paths(&structs, st, "", &mut fields);
        for f in fields {
            if !part.fields.contains_key(&f) {
                missing.push(format!("`{ty}` field `{f}`"));
            }
        }
    }
    // The words the enums are written as (`as_str`, `type_name`), and every `how`.
    let journal = section(&design(), "The journal");
    // The machine is a folder of files, one concern each: every `how` is in one of them.
    let mut machine = String::new();
    for entry in std::fs::read_dir(root.join("engine/exec/machine")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            machine.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    let words = src
        .split("=> \"")
        .skip(1)
        .chain(machine.split("How::Run(\"").skip(1))
        .filter_map(|s| s.split_once('"').map(|(w, _)| w.to_owned()));
    for word in words {
        if !journal.contains(&format!("`{word}`")) {
            missing.push(format!("the value `{word}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/design.md (\"The journal\") does not document:\n  {}",
        missing.join("\n  ")
    );
}

/// Regression: exit codes were described in README.md and in `--help`, per command, and in
/// no one table; a code a command's `--help` promises must be in that command's row.
#[test]
fn every_exit_code_the_help_promises_is_in_the_design_table() {
    let table = section(&design(), "Exit codes");
    let header = table
        .lines()
        .find(|l| l.starts_with("| command |"))
        .expect("the exit code table's header");
    let columns: Vec<String> = header
        .split('|')
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    let rows: BTreeMap<String, Vec<String>> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let cells: Vec<String> = l
                .split(" | ")
                .map(|c| c.trim_matches(|ch| ch == '|' || ch == ' ').to_owned())
                .collect();
            backticked(&cells[0])
                .into_iter()
                .map(move |cmd| (cmd, cells.clone()))
        })
        .collect();
    let mut missing = Vec::new();
    // Every code the CLI defines has a column.
    let cli =
        std::fs::read_to_string(crate::support::repo_root().join("engine/cli/mod.rs")).unwrap();
    for line in cli.lines().filter(|l| l.trim().starts_with("pub const ")) {
        let code = line.rsplit("= ").next().unwrap().trim_end_matches(';');
        if !columns.iter().any(|c| c == code) {
            missing.push(format!("a column for exit code {code} ({})", line.trim()));
        }
    }
    let p = Project::new();
    let help = p.run(&["--help"]);
    help.code(0);
    let commands: Vec<String> = help
        .stdout
        .split("Commands:")
        .nth(1)
        .expect("`--help` lists the commands")
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 13, "commands read as {commands:?}");
    for cmd in commands {
        let Some(row) = rows.get(&cmd) else {
            missing.push(format!("a row for `{cmd}`"));
            continue;
        };
        let out = p.run(&[&cmd, "--help"]);
        out.code(0);
        let text = out.stdout.to_lowercase();
        for promised in text.split("exit ").skip(1) {
            let code: String = promised.chars().take_while(char::is_ascii_digit).collect();
            if code.is_empty() {
                continue;
            }
            let cell = columns
                .iter()
                .position(|c| *c == code)
                .and_then(|i| row.get(i));
            if cell.is_none_or(|c| c.is_empty() || c == "—") {
                missing.push(format!(
                    "`{cmd}` exit {code}, which `runbook {cmd} --help` promises"
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/design.md (\"Exit codes\") lacks:\n  {}",
        missing.join("\n  ")
    );
}
