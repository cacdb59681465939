//! Loops over an upstream step's output (`for_each: "{{ steps['discover'].outputs.regions }}"`):
//! their items are known only when that step has finished. Checked here, at the `for_each:`'s
//! line (the step it names exists and is upstream: among the loop's needs, transitively), the
//! loop is one step of the plan, a placeholder, until the run knows its items; then
//! [`Plan::expand_output_loop`] appends its instances `id[item]` to the plan's steps (so that no
//! index moves) and makes every step that needed the loop need each of them.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::Compiler;
use super::graph::Graph;
use super::loops::{is_item, item_title};
use super::{Instance, Plan};
use crate::dag;
use crate::diag::suggestion;
use crate::format::ForEachDoc;

/// A loop over an upstream step's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputLoop {
    /// The step whose output holds the items, and the output's key.
    pub from: String,
    pub key: String,
    /// `max_parallel:` of the loop.
    pub max_parallel: Option<u32>,
    /// The items, once the run has expanded the loop: its step then only stands for them.
    pub items: Option<Vec<String>>,
}

impl OutputLoop {
    /// `steps['discover'].outputs.regions`, as `plan` and messages name the list.
    pub fn source(&self) -> String {
        format!("steps['{}'].outputs.{}", self.from, self.key)
    }
}

impl Plan {
    /// The plan with loop `id` expanded into one instance per item, appended to the steps in
    /// item order; a step that needed the loop needs each instance too. `None` if `id` is no
    /// loop over an output, or one already expanded.
    pub fn expand_output_loop(&self, id: &str, items: &[String]) -> Option<Plan> {
        let spec = self.output_loops.get(id)?;
        if spec.items.is_some() {
            return None;
        }
        let p = self.step_index(id)?;
        let mut plan = self.clone();
        let base = plan.steps.len();
        let step = self.steps.get(p)?;
        for item in items {
            let mut inst = step.clone();
            inst.id = format!("{id}[{item}]");
            inst.title = if step.title == step.id {
                inst.id.clone()
            } else {
                item_title(&step.title, item)
            };
            inst.instance = Some(Instance {
                of: id.to_owned(),
                item: item.clone(),
                max_parallel: spec.max_parallel,
            });
            plan.steps.push(inst);
        }
        let new: Vec<usize> = (base..plan.steps.len()).collect();
        for s in plan.steps.iter_mut().take(base) {
            if s.needs.contains(&p) {
                s.needs.extend(&new);
            }
        }
        let needs: Vec<Vec<usize>> = plan.steps.iter().map(|s| s.needs.clone()).collect();
        plan.order = dag::topo_order(&needs);
        if let Some(l) = plan.output_loops.get_mut(id) {
            l.items = Some(items.to_vec());
        }
        Some(plan)
    }
}

/// The items an output holds: a JSON list of strings (`["eu-1","eu-2"]`), or words separated
/// by commas or whitespace (`eu-1, eu-2`). An empty list is no items; an item unfit for an id,
/// or one given twice, is refused with the reason.
pub fn parse_items(value: &str) -> Result<Vec<String>, String> {
    let text = value.trim();
    let items: Vec<String> = if text.starts_with('[') {
        let list: Vec<serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| format!("it is not a JSON list of strings ({e})"))?;
        list.into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                other => Err(format!("item `{other}` is not a string")),
            })
            .collect::<Result<_, _>>()?
    } else {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut seen = std::collections::BTreeSet::new();
    for item in &items {
        if !is_item(item) {
            return Err(format!(
                "item `{item}` cannot be part of a step id (letters, digits, `-`, `_` and `.`)"
            ));
        }
        if !seen.insert(item) {
            return Err(format!("item `{item}` is given twice"));
        }
    }
    Ok(items)
}

/// `{{ steps['<id>'].outputs.<key> }}` (or `steps["<id>"]`, `outputs['<key>']`): the one form
/// a loop over an output takes.
static OUTPUT_LOOP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^\s*\{\{-?\s*steps\[\s*(?:'([^']+)'|"([^"]+)")\s*\]\s*\.\s*outputs\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_-]*)|\[\s*(?:'([^']+)'|"([^"]+)")\s*\])\s*-?\}\}\s*$"#,
    )
    .expect("a valid pattern")
});

/// The step and output a `for_each:` template names, if it is a loop over an output.
pub(super) fn output_loop(text: &str) -> Option<(String, String)> {
    let c = OUTPUT_LOOP.captures(text)?;
    let step = c.get(1).or_else(|| c.get(2))?.as_str().to_owned();
    let key = c
        .get(3)
        .or_else(|| c.get(4))
        .or_else(|| c.get(5))?
        .as_str()
        .to_owned();
    Some((step, key))
}

impl Compiler<'_> {
    /// Every `for_each:` over an upstream output, checked at its line: the step it names exists
    /// and is upstream of the loop. (Its other forms are checked by `loop_items`.)
    pub(super) fn output_loops(&mut self, graph: &Graph) -> BTreeMap<String, OutputLoop> {
        let mut loops = BTreeMap::new();
        for (i, s) in self.steps.clone().into_iter().enumerate() {
            let Some(for_each) = &s.for_each else {
                continue;
            };
            let ForEachDoc::Template(text) = &for_each.value else {
                continue;
            };
            let Some((from, key)) = output_loop(text) else {
                continue;
            };
            let id = &s.id.value;
            if i >= self.doc.steps.len() {
                self.err(
                    for_each.pos,
                    format!("`finally:` step `{id}` loops over an output"),
                )
                .label("a loop over an output in cleanup")
                .help(
                    "cleanup runs whatever happened before it: list the items, or loop in `steps:`",
                );
                continue;
            }
            let Some(&j) = graph.index.get(&from) else {
                let help = suggestion(&from, self.steps.iter().map(|s| s.id.value.as_str()))
                    .unwrap_or_else(|| {
                        "name the step that writes the list, and list it under `needs`".into()
                    });
                self.err(
                    for_each.pos,
                    format!(
                        "`for_each` of step `{id}` reads an output of `{from}`, which is no step"
                    ),
                )
                .label("unknown step")
                .help(help);
                continue;
            };
            if graph.acyclic && !graph.is_upstream(j, i) {
                self.err(
                    for_each.pos,
                    format!(
                        "`for_each` of step `{id}` reads an output of `{from}`, which is not upstream of it"
                    ),
                )
                .label("not among its needs")
                .help(format!(
                    "the items are known once `{from}` has finished: add `needs: [{from}]` to step `{id}`"
                ));
                continue;
            }
            // A loop's outputs are by item (`steps['sync'].outputs['a'].key`): there is no
            // one list to read.
            if self.steps.get(j).is_some_and(|f| f.for_each.is_some()) {
                self.err(
                    for_each.pos,
                    format!(
                        "`for_each` of step `{id}` reads an output of `{from}`, which is a loop: its outputs are by item"
                    ),
                )
                .label("a loop's output")
                .help(format!(
                    "loop over the list one step writes: e.g. a step after `{from}` that gathers its instances' lists into one output"
                ));
                continue;
            }
            loops.insert(
                id.clone(),
                OutputLoop {
                    from,
                    key,
                    max_parallel: s.max_parallel.as_ref().map(|m| m.value),
                    items: None,
                },
            );
        }
        loops
    }

    /// A called runbook's loops over outputs are not expanded in the caller's run yet: the
    /// call is refused at its `runbook:`.
    pub(super) fn call_without_output_loops(&mut self, pos: super::Pos, id: &str, called: &Plan) {
        if let Some((step, l)) = called.output_loops.iter().next() {
            self.err(
                pos,
                format!(
                    "step `{id}` calls a runbook whose step `{step}` loops over `{}`",
                    l.source()
                ),
            )
            .label("a loop over an output in a called runbook")
            .help("a called runbook's loops go over written lists or list variables; loop in the calling runbook instead");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{output_loop, parse_items};

    #[test]
    fn an_output_loop_is_read_in_each_quoting() {
        let want = Some(("discover".to_owned(), "regions".to_owned()));
        assert_eq!(output_loop("{{ steps['discover'].outputs.regions }}"), want);
        assert_eq!(
            output_loop("{{steps[\"discover\"].outputs['regions']}}"),
            want
        );
        assert_eq!(output_loop("{{ regions }}"), None);
        assert_eq!(
            output_loop("{{ steps['discover'].outputs.regions | reverse }}"),
            None
        );
    }

    #[test]
    fn an_output_holds_a_json_list_or_words() {
        let want = vec!["eu-1".to_owned(), "eu-2".to_owned()];
        assert_eq!(parse_items(r#"["eu-1", "eu-2"]"#), Ok(want.clone()));
        assert_eq!(parse_items("eu-1, eu-2\n"), Ok(want.clone()));
        assert_eq!(parse_items("eu-1 eu-2"), Ok(want));
        assert_eq!(parse_items("[]"), Ok(vec![]));
        assert_eq!(parse_items(""), Ok(vec![]));
        assert_eq!(
            parse_items(r#"["a", "a"]"#),
            Err("item `a` is given twice".into())
        );
        assert!(
            parse_items(r#"["a b"]"#)
                .unwrap_err()
                .contains("item `a b` cannot be part")
        );
        assert!(
            parse_items(r#"[{"a": 1}]"#)
                .unwrap_err()
                .contains("is not a string")
        );
        assert!(
            parse_items("[eu-1")
                .unwrap_err()
                .contains("not a JSON list")
        );
    }
}
