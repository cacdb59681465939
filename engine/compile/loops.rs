//! `for_each:` and `max_parallel:`: a loop over a static list, expanded here, at compile time,
//! into one step instance `id[item]` per item. Each instance is a step of the plan like any
//! other (its own status, timing against the budget, retries, log and outputs) that sees
//! `{{ item }}`; a step that needs `id` needs every instance, and `steps['id'].outputs` is a
//! map by item (`steps['id'].outputs['eu-1'].key`).

use std::collections::BTreeSet;

use crate::format::{ForEachDoc, StepDoc};
use crate::template::{self, Quoting};

use super::{Compiler, Instance, Step};

impl Compiler<'_> {
    /// The items of a `for_each:` step, checked: a list that is not empty, no item twice,
    /// each one fit for an id (`id[item]`). `max_parallel` only with `for_each`, above zero.
    pub(super) fn loop_items(&mut self, id: &str, s: &StepDoc) -> Option<Vec<String>> {
        if let Some(m) = &s.max_parallel {
            if s.for_each.is_none() {
                self.err(m.pos, format!("step `{id}` has `max_parallel` but no `for_each`"))
                    .label("no loop")
                    .help("`max_parallel` bounds how many instances of a `for_each:` step run at once; add `for_each: [...]`, or remove it");
            } else if m.value == 0 {
                self.err(m.pos, format!("`max_parallel` of step `{id}` is 0"))
                    .label("nothing would run")
                    .help("write how many instances may run at once, 1 or more; leave it out to run them all");
            }
        }
        let for_each = s.for_each.as_ref()?;
        let list = match &for_each.value {
            ForEachDoc::Items(list) => list,
            ForEachDoc::Template(text) => return self.var_loop_items(id, text, for_each.pos),
        };
        if list.is_empty() {
            self.err(for_each.pos, format!("`for_each` of step `{id}` is an empty list"))
                .label("no items")
                .help("list the items the step runs once for, e.g. `for_each: [eu-1, eu-2]`, or remove the step");
            return None;
        }
        let mut seen = BTreeSet::new();
        let mut items = Vec::with_capacity(list.len());
        for item in list {
            let text = &item.value.0;
            if !is_item(text) {
                self.err(
                    item.pos,
                    format!("item `{text}` of step `{id}` cannot be part of a step id"),
                )
                .label("bad item")
                .help(format!(
                    "items name instances `{id}[item]`: letters, digits, `-`, `_` and `.`"
                ));
            } else if !seen.insert(text.as_str()) {
                self.err(
                    item.pos,
                    format!("item `{text}` of step `{id}` is listed twice"),
                )
                .label("second time")
                .help("each item is one instance of the step; list it once");
            } else {
                items.push(text.clone());
            }
        }
        Some(items)
    }
}

/// An item is a word of letters, digits, `-`, `_` and `.`.
pub(super) fn is_item(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// An instance's title: the step's, with `{{ item }}` rendered. A title that names more than
/// `item` (a var, whose value is known only when the run starts) keeps those names as
/// written and has only its `{{ item }}`s replaced.
pub(super) fn item_title(title: &str, item: &str) -> String {
    let ctx = minijinja::Value::from(std::collections::BTreeMap::from([(
        "item",
        item.to_owned(),
    )]));
    match template::render(title, Quoting::Plain, &ctx) {
        Ok(t) => t,
        Err(_) => ITEM.replace_all(title, regex::NoExpand(item)).into_owned(),
    }
}

/// `{{ item }}`, as a title may write it.
static ITEM: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"\{\{-?\s*item\s*-?\}\}").expect("a valid pattern")
});

/// The steps with each `for_each:` step replaced by its instances, in place and in item
/// order, `needs` renumbered (a need of a loop is a need of every instance), and where each
/// step of the file went (its indices in the new list).
pub(super) fn expand(
    steps: Vec<Step>,
    items: &[Option<Vec<String>>],
    max_parallel: &[Option<u32>],
) -> (Vec<Step>, Vec<Vec<usize>>) {
    let mut at: Vec<Vec<usize>> = Vec::with_capacity(steps.len());
    let mut n = 0;
    for list in items {
        let k = list.as_ref().map_or(1, Vec::len);
        at.push((n..n + k).collect());
        n += k;
    }
    let mut out = Vec::with_capacity(n);
    for (i, step) in steps.into_iter().enumerate() {
        let mut step = step;
        step.needs = step
            .needs
            .iter()
            .flat_map(|&j| at.get(j).cloned().unwrap_or_default())
            .collect();
        match items.get(i).and_then(Option::as_ref) {
            None => out.push(step),
            Some(list) => {
                for item in list {
                    let mut inst = step.clone();
                    inst.id = format!("{}[{item}]", step.id);
                    if step.title == step.id {
                        inst.title = inst.id.clone();
                    } else {
                        inst.title = item_title(&step.title, item);
                    }
                    inst.instance = Some(Instance {
                        of: step.id.clone(),
                        item: item.clone(),
                        max_parallel: max_parallel.get(i).copied().flatten(),
                    });
                    out.push(inst);
                }
            }
        }
    }
    (out, at)
}

/// Each step's needs and, for an instance of a loop with `max_parallel: N`, the instance N
/// places before it: the one whose slot it waits for when the instances take their budgets.
/// The critical path, the simulation and the run's projection go through these waits, so that `max_parallel: 1` over three items
/// counts three budgets, not one.
pub fn waits(steps: &[Step]) -> Vec<Vec<usize>> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut needs = s.needs.clone();
            if let Some(Instance {
                of,
                max_parallel: Some(n),
                ..
            }) = &s.instance
                && let Some(j) = i.checked_sub(*n as usize)
                && steps
                    .get(j)
                    .and_then(|o| o.instance.as_ref())
                    .is_some_and(|o| &o.of == of)
            {
                needs.push(j);
            }
            needs
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::item_title;

    #[test]
    fn an_instance_title_has_its_item_rendered() {
        assert_eq!(item_title("sync {{ item }}", "eu-1"), "sync eu-1");
        assert_eq!(item_title("sync {{ item | upper }}", "eu-1"), "sync EU-1");
        // A var is known only at run time: the item is filled in, the var left as written.
        assert_eq!(
            item_title("sync {{item}} to {{ target }}", "eu-1"),
            "sync eu-1 to {{ target }}"
        );
    }
}
