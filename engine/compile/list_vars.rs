//! List variables (`vars: { regions: [eu-1, eu-2] }`) and the loops over them
//! (`for_each: "{{ regions }}"`). A list variable's value, in the run's variables and the
//! journal, is its items joined by `,` (as `--var regions=a,b` gives it); templates see a list.
//! A loop over one expands here, like a written list: with the defaults when a runbook is
//! checked or planned, and with the run's values when the run starts or resumes
//! ([`compile_with_lists`]), so that the plan a run journals lists every instance.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use minijinja::Value;
use regex::Regex;

use super::loops::is_item;
use super::{Compiler, Library, Options, Plan, Pos, compile_in};
use crate::diag::{Problems, suggestion};
use crate::format::{RunbookDoc, Text, VarDoc, load_runbook, vars};
use crate::project::Project;
use crate::span::Sp;

/// The one template form a `for_each:` string takes: `{{ name }}`, a list variable.
static VAR_LOOP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}\s*$").expect("a valid pattern")
});

/// A list variable's items, from its value as the run's variables hold it (`a,b`).
pub fn list_items(value: &str) -> Vec<String> {
    vars::split(value)
}

/// The variable a template names when it is exactly `{{ name }}`: a call's `with:` that passes
/// one of the caller's list variables passes its items, not their rendering as text.
pub fn named_var(text: &str) -> Option<&str> {
    VAR_LOOP
        .captures(text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

/// Compiles a runbook with the run's values of its list variables (`regions` -> `a,b,c`)
/// in place of their defaults: the loops over them get one instance per item of these.
pub fn compile_with_lists(
    project: &Project,
    path: &Path,
    library: &mut Library,
    opts: Options,
    lists: &BTreeMap<String, String>,
) -> (Option<Plan>, Problems) {
    match load_runbook(path) {
        Ok(loaded) => {
            let project = project.for_file(path);
            compile_in(&loaded, &project, library, opts, Vec::new(), lists)
        }
        Err(p) => (None, p),
    }
}

impl Plan {
    /// The run's variables as its templates see them: a list variable as a list.
    pub fn var_values(&self, vars: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
        vars.iter()
            .map(|(k, v)| {
                let value = if self.lists.contains_key(k) {
                    Value::from(vars::split(v))
                } else {
                    Value::from(v.clone())
                };
                (k.clone(), value)
            })
            .collect()
    }

    /// The list variables whose run values differ from the defaults this plan was compiled
    /// with, and that a loop goes over: the plan must be compiled again with them.
    pub fn lists_changed(&self, vars: &BTreeMap<String, String>) -> bool {
        self.lists
            .iter()
            .any(|(k, loops)| !loops.is_empty() && vars.get(k) != self.vars.get(k))
    }
}

/// Why a list variable's value cannot be the items of a loop, if it cannot: none, an empty
/// one, one unfit for an id, one given twice.
pub fn unfit_items(items: &[String]) -> Option<String> {
    if items.is_empty() {
        return Some("it has no items".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for item in items {
        if !is_item(item) {
            return Some(format!(
                "item `{item}` cannot be part of a step id (letters, digits, `-`, `_` and `.`)"
            ));
        }
        if !seen.insert(item) {
            return Some(format!("item `{item}` is given twice"));
        }
    }
    None
}

impl Compiler<'_> {
    /// The items a call's `with:` gives the called runbook's list variables: `"{{ name }}"`
    /// of this runbook's list variable passes its items (the run's, or its defaults), and the
    /// call counts among the loops over it, so that `--var name=...` expands the called loops
    /// again; a value without a template is the items (`a,b`). Any other template is an error
    /// at the value: the called loops are expanded before anything renders.
    pub(super) fn call_lists(
        &mut self,
        call: &str,
        with: &BTreeMap<Sp<String>, Sp<Text>>,
        callee: &RunbookDoc,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in with {
            if callee
                .vars
                .get(&k.value)
                .and_then(|d| d.value.list())
                .is_none()
            {
                continue;
            }
            let text = &v.value.0;
            if !text.contains("{{") && !text.contains("{%") {
                out.insert(k.value.clone(), text.clone());
                continue;
            }
            let own = VAR_LOOP
                .captures(text)
                .map(|c| c[1].to_owned())
                .filter(|n| {
                    self.doc
                        .vars
                        .get(n)
                        .is_some_and(|d| d.value.list().is_some())
                });
            let Some(name) = own else {
                self.err(
                    v.pos,
                    format!(
                        "step `{call}` sets list variable `{}` from `{text}`, which names no list variable of this runbook",
                        k.value
                    ),
                )
                .label("not `{{ <list variable> }}`")
                .help("the called runbook's loops over it are expanded before anything renders: pass a list variable (`\"{{ regions }}\"`) or write the items (`a,b`)");
                continue;
            };
            self.list_loops
                .entry(name.clone())
                .or_default()
                .push(call.to_owned());
            let items = self
                .run_lists
                .get(&name)
                .cloned()
                .or_else(|| self.doc.vars.get(&name).map(|d| d.value.text()))
                .unwrap_or_default();
            out.insert(k.value.clone(), items);
        }
        out
    }

    /// Every list variable's items: each one a value that survives the run's `a,b` form.
    pub(super) fn check_list_vars(&mut self) {
        let doc = self.doc;
        for (name, v) in &doc.vars {
            let Some(items) = v.value.list() else {
                continue;
            };
            for item in items {
                if item.value.0.is_empty() || item.value.0.contains(',') {
                    self.err(
                        item.pos,
                        format!("item `{}` of list variable `{name}` is empty or holds a `,`", item.value.0),
                    )
                    .label("bad item")
                    .help("a list variable's value is its items joined by `,` (as `--var k=a,b` gives it): an item holds no `,`");
                }
            }
        }
    }

    /// The items of `for_each: "{{ name }}"`: the run's value of list variable `name`, or its
    /// default. Errors at the line: a form other than `{{ name }}`, an unknown variable, one
    /// that is not a list, and a default list that is empty, repeats an item or holds one
    /// unfit for an id.
    pub(super) fn var_loop_items(&mut self, id: &str, text: &str, pos: Pos) -> Option<Vec<String>> {
        let Some(name) = VAR_LOOP.captures(text).map(|c| c[1].to_owned()) else {
            if super::output_loops::output_loop(text).is_some() {
                // Said at its line by `output_loops`.
                return None;
            }
            let help = if text.contains("steps[") {
                "a loop over an output names it as `{{ steps['<id>'].outputs.<key> }}`, nothing more"
            } else {
                "write the items (`for_each: [eu-1, eu-2]`) or name a list variable (`for_each: \"{{ regions }}\"`)"
            };
            self.err(
                pos,
                format!("`for_each` of step `{id}` is `{text}`, which names no list variable"),
            )
            .label("not `{{ <list variable> }}`")
            .help(help);
            return None;
        };
        let doc = self.doc;
        let Some(var) = doc.vars.get(&name) else {
            let help = suggestion(&name, doc.vars.keys().map(String::as_str))
                .unwrap_or_else(|| format!("declare it under `vars:` as a list: `{name}: [a, b]`"));
            self.err(
                pos,
                format!("`for_each` of step `{id}` names `{name}`, which is no variable"),
            )
            .label("unknown variable")
            .help(help);
            return None;
        };
        let VarDoc::List(default) = &var.value else {
            self.err(
                pos,
                format!("`for_each` of step `{id}` names `{name}`, which is not a list variable"),
            )
            .label("not a list")
            .help(format!(
                "write `{name}` as a list under `vars:` (`{name}: [a, b]`); `--var {name}=a,b` then sets its items"
            ));
            return None;
        };
        self.list_loops
            .entry(name.clone())
            .or_default()
            .push(id.to_owned());
        if let Some(run) = self.run_lists.get(&name) {
            let items = vars::split(run);
            if let Some(why) = unfit_items(&items) {
                self.err(
                    pos,
                    format!("step `{id}` loops over `{name}` = `{run}`: {why}"),
                )
                .label("over this list");
                return None;
            }
            return Some(items);
        }
        if default.is_empty() {
            self.err(
                var.pos,
                format!("list variable `{name}` is empty, and step `{id}` loops over it"),
            )
            .label("no items")
            .help(format!(
                "give its default items (`{name}: [eu-1, eu-2]`): `plan` and `check` show the loop with them"
            ));
            return None;
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut ok = true;
        for item in default {
            let text = &item.value.0;
            if !is_item(text) {
                self.err(
                    item.pos,
                    format!("item `{text}` of `{name}` cannot be part of a step id, and step `{id}` loops over it"),
                )
                .label("bad item")
                .help(format!(
                    "items name instances `{id}[item]`: letters, digits, `-`, `_` and `.`"
                ));
                ok = false;
            } else if !seen.insert(text.as_str()) {
                self.err(
                    item.pos,
                    format!("item `{text}` of `{name}` is listed twice"),
                )
                .label("second time")
                .help("each item is one instance of the loops over it; list it once");
                ok = false;
            }
        }
        ok.then(|| default.iter().map(|i| i.value.0.clone()).collect())
    }
}
