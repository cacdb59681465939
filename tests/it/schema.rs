//! The JSON Schema that editors use (`runbooks/schema.json`): it is what `runbook schema` prints,
//! it accepts every shipped runbook, and it rejects what the compiler rejects as shape errors.

use crate::support::{repo_root, runbook};
use serde_json::{Value, json};

fn committed_schema() -> Value {
    let text = std::fs::read_to_string(repo_root().join("runbooks/schema.json"))
        .expect("runbooks/schema.json is committed");
    serde_json::from_str(&text).expect("runbooks/schema.json is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&committed_schema()).expect("the schema is a valid JSON Schema")
}

/// A runbook as an editor's YAML language server sees it: YAML read into JSON values.
fn yaml_to_json(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).expect("YAML")
}

/// The schema's complaints about a document, one line each.
fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn runbook_schema_prints_the_committed_schema() {
    let out = runbook(&["schema"]).run();
    out.code(0);
    let committed = std::fs::read_to_string(repo_root().join("runbooks/schema.json"))
        .expect("runbooks/schema.json is committed");
    assert!(
        out.stdout == committed,
        "runbooks/schema.json is stale: regenerate it with `runbook schema > runbooks/schema.json`"
    );
}

#[test]
fn the_schema_accepts_every_shipped_runbook() {
    let v = validator();
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("runbooks"))
        .expect("runbooks/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no shipped runbooks under runbooks/");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(
            text.lines().next(),
            Some("# yaml-language-server: $schema=schema.json"),
            "{} points editors at the schema on its first line",
            f.display()
        );
        let errs = errors(&v, &yaml_to_json(&text));
        assert!(errs.is_empty(), "{}:\n{}", f.display(), errs.join("\n"));
    }
}

const VALID: &str = "\
scenario: demo
title: Demo
rto: 1h
roles: { ops: [alice] }
vars: { database: omni, port: 5432 }
steps:
  - id: stop
    budget: 5m
    run: ./stop.sh
    drill: skip
  - id: approve
    needs: [stop]
    approval: { prompt: Go?, approvers: [ops], min: 1 }
    budget: 5m
  - id: restore
    needs: [approve]
    uses: db/restore
    with: { file: x.dump }
    drill: { with: { database: omni_drill } }
    on: [db-1]
";

#[test]
fn the_schema_accepts_a_small_valid_runbook() {
    let v = validator();
    let errs = errors(&v, &yaml_to_json(VALID));
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

#[test]
fn the_schema_rejects_unknown_keys() {
    let v = validator();
    let mut doc = yaml_to_json(VALID);
    doc["owner"] = json!("ops");
    let errs = errors(&v, &doc);
    assert!(
        errs.iter().any(|e| e.contains("owner")),
        "an unknown top-level key is rejected: {errs:?}"
    );

    let mut doc = yaml_to_json(VALID);
    doc["steps"][0]["tiemout"] = json!("5m");
    let errs = errors(&v, &doc);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("/steps/0") && e.contains("tiemout")),
        "an unknown step key is rejected: {errs:?}"
    );

    let mut doc = yaml_to_json(VALID);
    doc["steps"][1]["approval"]["minimum"] = json!(2);
    assert!(!v.is_valid(&doc), "an unknown approval key is rejected");
}

#[test]
fn the_schema_rejects_a_runbook_missing_a_required_key_or_with_a_bad_drill() {
    let v = validator();
    let mut doc = yaml_to_json(VALID);
    doc.as_object_mut().unwrap().remove("rto");
    let errs = errors(&v, &doc);
    assert!(errs.iter().any(|e| e.contains("rto")), "{errs:?}");

    let mut doc = yaml_to_json(VALID);
    doc["steps"][0]["drill"] = json!("sometimes");
    assert!(!v.is_valid(&doc), "`drill: sometimes` is rejected");
}
