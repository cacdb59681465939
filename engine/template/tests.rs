//! Tests of the templates: quoting, strict names, checks at compile time.

use super::*;

fn ctx(pairs: &[(&str, &str)]) -> Value {
    let m: BTreeMap<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    Value::from(m)
}

#[test]
fn shell_quotes_every_value_unless_raw() {
    let c = ctx(&[("x", "; touch pwned"), ("y", "$(id)"), ("plain", "omni")]);
    let out = render("echo {{ x }} {{ y }} {{ plain }}", Quoting::Shell, &c).unwrap();
    assert_eq!(out, "echo '; touch pwned' '$(id)' omni");
    let out = render("echo {{ x | raw }}", Quoting::Shell, &c).unwrap();
    assert_eq!(out, "echo ; touch pwned");
    let out = render("{{ x }}", Quoting::Plain, &c).unwrap();
    assert_eq!(out, "; touch pwned");
}

#[test]
fn check_names_undefined_variables_with_a_suggestion() {
    let scope = Scope {
        names: BTreeSet::from(["database"]),
        ..Default::default()
    };
    let errs = check("restore {{ databse }}", Quoting::Shell, &scope);
    let [err] = errs.as_slice() else {
        panic!("one error expected: {errs:?}")
    };
    assert_eq!(err.message, "undefined variable `databse`");
    assert_eq!(err.range, Some(11..18));
    assert_eq!(err.help.as_deref(), Some("did you mean `database`?"));
}

#[test]
fn check_rejects_outputs_of_steps_not_upstream() {
    let all = BTreeSet::from(["a".to_owned(), "b".to_owned(), "c".to_owned()]);
    let scope = Scope {
        steps: Some(StepsScope {
            is_upstream: &|id| id == "a",
            all: &all,
            this: "c",
            loops: &BTreeMap::new(),
        }),
        ..Default::default()
    };
    assert!(check("{{ steps['a'].outputs.file }}", Quoting::Shell, &scope).is_empty());
    let errs = check("{{ steps['b'].outputs.file }}", Quoting::Shell, &scope);
    assert_eq!(
        errs.first().map(|e| e.message.as_str()),
        Some("step `c` uses an output of `b`, which is not upstream of it")
    );
    let errs = check("{{ steps.zz.outputs.file }}", Quoting::Shell, &scope);
    assert_eq!(
        errs.first().map(|e| e.message.as_str()),
        Some("no step `zz` to take outputs from")
    );
}

#[test]
fn check_reports_unknown_filters() {
    let scope = Scope {
        names: BTreeSet::from(["x"]),
        ..Default::default()
    };
    let errs = check("{{ x | shout }}", Quoting::Shell, &scope);
    let [err] = errs.as_slice() else {
        panic!("one error expected: {errs:?}")
    };
    assert_eq!(err.message, "unknown filter `shout`");
}
