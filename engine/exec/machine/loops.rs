//! The instances of a `for_each:` step (see `compile/loops.rs`): each is a step of the plan,
//! scheduled like any other, except that no more than the loop's `max_parallel` of them are
//! active at once; each sees `{{ item }}`, and later steps see the loop's outputs by item.

use std::collections::BTreeMap;

use minijinja::Value;

use super::{Machine, StepState};

impl Machine {
    /// Step `i` is an instance whose loop has `max_parallel` instances active (running,
    /// backing off or waiting at a gate): it waits for one of them to end.
    pub(super) fn loop_full(&self, i: usize) -> bool {
        let Some(inst) = &self.plan.steps[i].instance else {
            return false;
        };
        let Some(max) = inst.max_parallel else {
            return false;
        };
        let active = self
            .frontier
            .active
            .iter()
            .filter(|&&j| {
                self.plan.steps[j]
                    .instance
                    .as_ref()
                    .is_some_and(|o| o.of == inst.of)
            })
            .count();
        active >= max as usize
    }

    /// What step `i`'s templates see as `item`: its item, for an instance of a loop.
    pub(super) fn item_of(&self, i: usize) -> Option<(String, Value)> {
        let inst = self.plan.steps[i].instance.as_ref()?;
        Some(("item".to_owned(), Value::from(inst.item.clone())))
    }

    /// The loops of the plan and their items, by the loop's id.
    pub(super) fn loops(&self) -> BTreeMap<String, Vec<String>> {
        let mut loops: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for inst in self.plan.steps.iter().filter_map(|s| s.instance.as_ref()) {
            loops
                .entry(inst.of.clone())
                .or_default()
                .push(inst.item.clone());
        }
        // A loop over an output not expanded (a dry-run's): its items are not known, any is one.
        for (id, l) in &self.plan.output_loops {
            if l.items.is_none() {
                loops.entry(id.clone()).or_default();
            }
        }
        loops
    }

    /// `steps['id'].outputs['item'].key`: a loop's outputs by item, from the instances that
    /// have finished, beside each instance's own entry.
    pub(super) fn loop_outputs(&self, steps: &mut BTreeMap<String, Value>) {
        let mut loops: BTreeMap<&str, BTreeMap<String, Value>> = BTreeMap::new();
        for (j, s) in self.plan.steps.iter().enumerate() {
            let Some(inst) = &s.instance else {
                continue;
            };
            let by_item = loops.entry(inst.of.as_str()).or_default();
            if !matches!(self.runtime[j].state, StepState::Done(_)) {
                continue;
            }
            let outputs: BTreeMap<String, Value> = self.runtime[j]
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
            by_item.insert(inst.item.clone(), Value::from(outputs));
        }
        for (of, by_item) in loops {
            steps.insert(
                of.to_owned(),
                Value::from(BTreeMap::from([(
                    "outputs".to_owned(),
                    Value::from(by_item),
                )])),
            );
        }
    }
}
