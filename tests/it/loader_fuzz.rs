//! The loader and the compiler never panic, whatever text they are fed: arbitrary strings, and a
//! valid runbook mangled (bytes flipped, lines deleted, duplicated or swapped, keys inserted,
//! text cut short, non-ASCII text inserted), and runbooks whose templates, `run:` blocks, ids
//! and durations hold characters of more than one byte, CRs and tabs. Every problem they
//! report carries a message, points inside its file, and renders with miette.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use runbook::compile::{self, Library, Options};
use runbook::diag::{Problems, SourceFile};
use runbook::format::{Kind, Loaded, RunbookDoc, parse};
use runbook::project::Project;

/// A runbook that uses most of the format, so that mutations reach most of the compiler.
const VALID: &str = r#"# yaml-language-server: $schema=schema.json
scenario: fuzz
title: Fuzzed scenario
description: Every part of the format, to be mangled.
rto: 2h
rpo: 1h
roles:
  devops-lead: [alice, bob]
  cto: [carol]
vars:
  database: omni
  replicas: 2
secrets: [POSTGRES_PASSWORD]
notify:
  devops-lead: "./notify.sh {{ message }}"
escalation:
  - { after: 30m, notify: devops-lead }
steps:
  - id: stop-writes
    title: Stop writes to {{ database }}
    budget: 10m
    estimate: 2m..5m..10m
    timeout: 20m
    run: ./stop.sh {{ database }}
    drill: skip
  - id: pick-backup
    needs: [stop-writes]
    budget: 5m
    run: ./latest.sh
    drill: run
  - id: approve
    needs: [pick-backup]
    approval:
      prompt: "Restore {{ steps['pick-backup'].outputs.file }} over {{ database }}?"
      approvers: [devops-lead]
      min: 1
      timeout: 15m
    budget: 15m
  - id: restore
    needs: [approve]
    budget: 30m
    uses: db/restore
    with: { file: "{{ steps['pick-backup'].outputs.file }}" }
    drill: { with: { database: omni_drill } }
    retries: 1
    backoff: 10s
    on_failure: abort
    idempotent: false
  - id: verify
    needs: [restore]
    budget: 30m
    poll: { every: 10s, within: 10m }
    run: ./verify.sh {{ database | raw }} {{ env.HOME }}
    env: { PGDATABASE: "{{ database }}" }
    on: [db-eu-1]
    drill: { run: "echo verify" }
"#;

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/project")
}

/// Loads and compiles `text` as `runbooks/fuzz.yaml`, then checks what came back.
fn load_and_compile(text: &str) {
    let root = project_root();
    let path = root.join("runbooks/fuzz.yaml");
    let file = SourceFile::new(&path, "runbooks/fuzz.yaml", text.to_owned());
    let doc = match parse::<RunbookDoc>(&file, Kind::Runbook) {
        Ok(doc) => doc,
        Err(problems) => {
            assert!(problems.has_errors(), "a failed load reports an error");
            check_problems(&problems, text);
            return;
        }
    };
    let loaded = Loaded {
        doc,
        file: file.clone(),
    };
    let mut library = Library::new();
    for strict in [false, true] {
        let (plan, problems) = compile::compile(
            &loaded,
            &Project::at(&root),
            &mut library,
            Options { strict },
        );
        check_problems(&problems, text);
        match plan {
            None => assert!(problems.has_errors(), "no plan and no error"),
            Some(plan) => {
                assert!(!problems.has_errors());
                assert_eq!(plan.order.len(), plan.steps.len(), "every step is ordered");
                assert!(!plan.critical_path.is_empty());
            }
        }
    }
}

fn check_problems(problems: &Problems, text: &str) {
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::none())
        .with_width(usize::MAX);
    for p in &problems.0 {
        assert!(!p.message.trim().is_empty(), "a problem without a message");
        assert!(
            !p.message.contains('\n'),
            "a message is one line: {:?}",
            p.message
        );
        if let Some(pos) = p.pos {
            let file = p.file.as_ref().expect("a position has a file");
            assert!(pos.offset <= file.text().len(), "{p:?} points past the end");
            assert!(pos.line >= 1, "{p:?}");
            if file.display_name() == "runbooks/fuzz.yaml" {
                assert_eq!(
                    file.text(),
                    text,
                    "a problem of this runbook points into it"
                );
            }
        }
        let mut out = String::new();
        handler
            .render_report(&mut out, p)
            .expect("a problem renders");
        assert!(out.contains(&p.message), "{out}");
    }
}

/// One way to mangle a runbook.
#[derive(Clone, Debug)]
enum Mutation {
    FlipByte(usize, u8),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    InsertKey(usize, &'static str, &'static str),
    /// Non-ASCII text anywhere: in a template, a `run:` block, an id, a duration.
    InsertText(usize, &'static str),
    Truncate(usize),
}

const KEYS: &[&str] = &[
    "id", "needs", "budget", "estimate", "run", "uses", "with", "drill", "approval", "poll",
    "scenario", "rto", "steps", "tiemout", "on", "env", "- id", "<<", "&a", "*a",
];
const VALUES: &[&str] = &[
    "x",
    "[]",
    "{}",
    "5m",
    "1m..2m",
    "2m..1m",
    "[stop-writes]",
    "[verify]",
    "[restore]",
    "\"{{ nope }}\"",
    "\"{{ steps['verify'].outputs.x }}\"",
    "{ run: x }",
    "{ with: {} }",
    "run",
    "db/restore",
    "db/nope",
    "-1",
    "~",
    "|\n  block",
    "\"{{ x | shout }}\"",
    "'",
    "{{",
    "*a",
    "\"two\\nlines\"",
    "|\n  two\n  lines",
    "é {{ steps['x'].outputs. }}\n  and more",
    "\"→ {{ nope. }}\n  two\"",
    "|\n  🦀 {{ x | shout }}\n  two",
    ">\n  \te\u{301} {{ \n  two",
    "ré-store",
    "[ré-store]",
    "５m",
    "1m\u{301}",
    "5m..١٠m",
    "\"\r\n\"",
];

/// Text that is not one byte a character, or not printable: what a runbook written in another
/// language, pasted from a chat, or saved on Windows holds. Byte offsets that land inside one
/// of these panic where text is sliced.
const NON_ASCII: &[&str] = &[
    "é",
    "e\u{301}",
    "→",
    "🦀",
    "👩\u{200d}🚒",
    "\u{200b}",
    "\u{feff}",
    "ß",
    "İ",
    "Ω",
    "\r",
    "\r\n",
    "\t",
    "\u{85}",
    "\u{2028}",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::SwapLines(i, j)),
        (
            any::<usize>(),
            prop::sample::select(KEYS),
            prop::sample::select(VALUES)
        )
            .prop_map(|(i, k, v)| Mutation::InsertKey(i, k, v)),
        (any::<usize>(), prop::sample::select(NON_ASCII))
            .prop_map(|(i, t)| Mutation::InsertText(i, t)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len().max(1);
    match *m {
        Mutation::FlipByte(i, b) => {
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.is_empty() {
                let i = i % bytes.len();
                bytes[i] = b;
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        Mutation::DeleteLine(i) if !lines.is_empty() => {
            lines.remove(i % n);
        }
        Mutation::DuplicateLine(i) if !lines.is_empty() => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Mutation::SwapLines(i, j) if !lines.is_empty() => lines.swap(i % n, j % n),
        Mutation::InsertKey(i, k, v) => {
            let at = i % (lines.len() + 1);
            // Indent like the line before it, so the key lands inside that mapping.
            let indent: String = lines
                .get(at.saturating_sub(1))
                .map(|l| l.chars().take_while(|c| *c == ' ').collect())
                .unwrap_or_default();
            lines.insert(at, format!("{indent}{k}: {v}"));
        }
        Mutation::InsertText(i, t) => {
            let mut at = i % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return format!("{}{t}{}", &text[..at], &text[at..]);
        }
        Mutation::Truncate(i) => {
            let mut cut = i % (text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return text[..cut].to_owned();
        }
        _ => {}
    }
    lines.join("\n") + "\n"
}

#[test]
fn the_valid_runbook_compiles() {
    // The mutations start from a runbook that is valid, so they test what they mean to.
    let root = project_root();
    let file = SourceFile::new(
        &root.join("runbooks/fuzz.yaml"),
        "runbooks/fuzz.yaml",
        VALID.to_owned(),
    );
    let doc = parse::<RunbookDoc>(&file, Kind::Runbook).expect("VALID loads");
    let (plan, problems) = compile::compile(
        &Loaded { doc, file },
        &Project::at(&root),
        &mut Library::new(),
        Options::default(),
    );
    assert!(problems.is_empty(), "{problems}");
    assert_eq!(plan.expect("a plan").steps.len(), 5);
}

/// A runbook of `n` steps built in memory (parsing thousands of steps in a debug build would be
/// the slow part of the test), each needing the one before it; the first needs the last when
/// `cycle` is set.
fn chain(n: usize, cycle: bool) -> Loaded<RunbookDoc> {
    use runbook::format::{DrillDoc, Pos, Sp, StepDoc};
    let sp = |s: &str| Sp::new(s.to_owned(), Pos::default());
    let id = |i: usize| format!("s{i}");
    let steps = (0..n)
        .map(|i| StepDoc {
            id: sp(&id(i)),
            title: None,
            description: None,
            needs: match (i, cycle) {
                (0, false) => vec![],
                (0, true) => vec![sp(&id(n - 1))],
                _ => vec![sp(&id(i - 1))],
            },
            budget: Some(sp("1m")),
            estimate: None,
            timeout: None,
            run: Some(sp("true")),
            uses: None,
            with: Default::default(),
            runbook: None,
            approval: None,
            drill: Some(Sp::new(DrillDoc::Run, Pos::default())),
            retries: None,
            backoff: None,
            poll: None,
            on_failure: None,
            idempotent: None,
            on: vec![],
            hosts: None,
            env: Default::default(),
            when: None,
            likelihood: None,
            for_each: None,
            max_parallel: None,
            input: None,
            manual: None,
        })
        .collect();
    let doc = RunbookDoc {
        scenario: sp("chain"),
        title: sp("A long chain"),
        description: None,
        rto: sp("1000h"),
        rpo: None,
        rto_ends_at: None,
        roles: Default::default(),
        vars: Default::default(),
        secrets: vec![],
        notify: Default::default(),
        escalation: vec![],
        steps,
        finally: vec![],
    };
    let path = project_root().join("runbooks/chain.yaml");
    let file = SourceFile::new(&path, "runbooks/chain.yaml", String::new());
    Loaded { doc, file }
}

/// Regression: petgraph's recursive Tarjan (and a recursive search for the cycle to name)
/// overflowed the stack on a runbook whose steps form one long chain or cycle.
#[test]
fn a_long_chain_or_cycle_does_not_overflow_the_stack() {
    let run = || {
        let root = project_root();
        let (plan, problems) = compile::compile(
            &chain(5_000, false),
            &Project::at(&root),
            &mut Library::new(),
            Options::default(),
        );
        assert!(!problems.has_errors(), "{problems}");
        assert_eq!(plan.expect("a plan").critical_path.len(), 5_000);
        let (plan, problems) = compile::compile(
            &chain(5_000, true),
            &Project::at(&root),
            &mut Library::new(),
            Options::default(),
        );
        assert!(plan.is_none());
        assert_eq!(problems.errors(), 1);
        assert!(
            problems.0[0]
                .message
                .starts_with("steps form a cycle: s0 → s4999 → s4998 → "),
            "{}",
            problems.0[0].message
        );
    };
    // A small stack, so that recursion once per step fails at once, in any build.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(run)
        .expect("a thread")
        .join()
        .expect("compiled without a panic");
}

/// A few characters of runbook-ish ASCII and non-ASCII text.
fn mixed_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(NON_ASCII).prop_map(str::to_owned),
            "[a-z0-9 {}'\\[\\]._|:-]{1,4}",
        ],
        0..6,
    )
    .prop_map(|v| v.concat())
}

/// A `run:` written each way YAML allows, spread over two lines, holding a template that is
/// as likely broken as not, after and before mixed text.
fn run_scalar() -> impl Strategy<Value = String> {
    let template = prop_oneof![
        Just("{{ steps['a'].outputs. }}"),
        Just("{{ steps['a'].outputs.file }}"),
        Just("{{ nope }}"),
        Just("{{ database | shout }}"),
        Just(
            "{% for x in range(100000) %}{% for y in range(100000) %}{{ y }}{% endfor %}{% endfor %}"
        ),
        Just("{{"),
        Just("{{ database }}"),
    ];
    (
        0..4usize,
        mixed_text(),
        template,
        mixed_text(),
        mixed_text(),
    )
        .prop_map(|(style, first, template, rest, second)| {
            let line = format!("{first}{template}{rest}");
            match style {
                0 => format!("{line}\n      {second}"),
                1 => format!("\"{line}\n      {second}\""),
                2 => format!("|\n      {line}\n      {second}"),
                _ => format!(">\n      {line}\n      {second}"),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        load_and_compile(&text);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[a-z0-9:\\-\\[\\]{}'\"#|>&*!%@ .,?\n]{0,300}") {
        load_and_compile(&text);
    }

    /// Regression: a multi-line `run:` starting with `é` and holding a template error made
    /// `check` panic slicing the file inside the `é`.
    #[test]
    fn non_ascii_in_runs_templates_ids_and_durations_never_panics(
        run in run_scalar(),
        id in mixed_text(),
        budget in mixed_text(),
        title in mixed_text(),
        key in mixed_text(),
    ) {
        let text = format!(
            "scenario: fuzz\ntitle: T{title}\nrto: 1h\nvars:\n  database: omni\nsteps:\n  - id: a\n    budget: 1m\n    run: ./a.sh\n    drill: run\n  - id: b{id}\n    needs: [a]\n    budget: 1{budget}m\n    run: {run}\n    env: {{ K: \"{{{{ steps['a'].outputs.{key} }}}}\" }}\n    drill: run\n"
        );
        load_and_compile(&text);
    }

    #[test]
    fn a_mangled_runbook_never_panics(mutations in prop::collection::vec(mutation(), 1..5)) {
        let mut text = VALID.to_owned();
        for m in &mutations {
            text = apply(&text, m);
        }
        load_and_compile(&text);
    }
}

/// A problem whose position starts or ends inside a multi-byte character (a caret of one
/// byte on `é`, an offset from another crate) still renders.
#[test]
fn a_problem_pointing_into_a_multi_byte_character_renders() {
    use runbook::diag::Problem;
    use runbook::format::Pos;
    let text = "scenario: é→🦀\n";
    let file = SourceFile::new(
        Path::new("runbooks/x.yaml"),
        "runbooks/x.yaml",
        text.to_owned(),
    );
    for offset in 10..text.len() {
        for len in [0, 1, 2] {
            let pos = Pos {
                line: 1,
                column: 11,
                offset,
                len,
            };
            let problems: Problems = Problem::error("bad").at(&file, pos).into();
            check_problems(&problems, text);
        }
    }
}
