//! The graph checks: resolving `needs`, naming every step on a cycle, where the RTO ends,
//! and the critical path through the budgets.

use std::collections::HashMap;
use std::time::Duration;

use crate::dag;
use crate::diag::suggestion;

use super::{Compiler, Step};

/// One step's own view while compiling: which steps it may take outputs from.
pub(super) struct Graph {
    pub(super) needs: Vec<Vec<usize>>,
    pub(super) acyclic: bool,
    /// Step index by id (the first step of a duplicated id).
    pub(super) index: HashMap<String, usize>,
}

impl Graph {
    /// Is step `j` upstream of step `i`?
    pub(super) fn is_upstream(&self, j: usize, i: usize) -> bool {
        dag::is_upstream(&self.needs, j, i)
    }
}

impl Compiler<'_> {
    /// `rto_ends_at:` names a step of the runbook that runs something: a gate restores no
    /// service, so the RTO cannot end at one.
    pub(super) fn rto_ends_at(
        &mut self,
        graph: &Graph,
        steps: &[Step],
        items: &[Option<Vec<String>>],
    ) -> Option<usize> {
        let at = self.doc.rto_ends_at.as_ref()?;
        if !graph.index.contains_key(&at.value)
            && let Some(called) = self.rto_ends_at_called_step(at)
        {
            return called;
        }
        let Some(&i) = graph.index.get(&at.value) else {
            let help = suggestion(&at.value, self.steps.iter().map(|s| s.id.value.as_str()))
                .unwrap_or_else(|| {
                    "`rto_ends_at` names the id of the step at which service is restored".into()
                });
            self.err(
                at.pos,
                format!("`rto_ends_at` names `{}`, which is not a step", at.value),
            )
            .label("unknown step")
            .help(help);
            return None;
        };
        if steps.get(i).is_some_and(Step::is_gate) {
            self.err(
                at.pos,
                format!("`rto_ends_at` names `{}`, an approval gate", at.value),
            )
            .label("a gate")
            .help("name the step whose success restores service (a check that the service answers), not a decision");
            return None;
        }
        if items.get(i).is_some_and(Option::is_some)
            || self.steps.get(i).is_some_and(|s| s.for_each.is_some())
        {
            self.err(
                at.pos,
                format!("`rto_ends_at` names `{}`, a `for_each:` step", at.value),
            )
            .label("a loop")
            .help("service is restored when one step succeeds: name a step that needs the loop");
            return None;
        }
        Some(i)
    }

    /// Resolves `needs` and finds cycles, naming every step on each.
    pub(super) fn graph(&mut self, index: &HashMap<&str, usize>) -> Graph {
        let steps = self.steps.clone();
        let ids: Vec<&str> = steps.iter().map(|s| s.id.value.as_str()).collect();
        let mut needs = vec![Vec::new(); steps.len()];
        for (i, s) in steps.iter().enumerate() {
            for n in &s.needs {
                match index.get(n.value.as_str()) {
                    Some(&j) => {
                        if let Some(own) = needs.get_mut(i)
                            && !own.contains(&j)
                        {
                            own.push(j);
                        }
                    }
                    None => {
                        let help = suggestion(&n.value, ids.iter().copied())
                            .unwrap_or_else(|| "`needs` names ids of steps in this runbook".into());
                        self.err(
                            n.pos,
                            format!(
                                "step `{}` needs `{}`, which does not exist",
                                s.id.value, n.value
                            ),
                        )
                        .label("no such step")
                        .help(help);
                    }
                }
            }
        }
        let cycles = dag::cycles(&needs);
        let acyclic = cycles.is_empty();
        for cycle in cycles {
            // `dag::cycles` returns no empty cycle and only indices of `needs`, one per step.
            let (Some(&first), Some(s)) =
                (cycle.first(), cycle.first().and_then(|&i| steps.get(i)))
            else {
                continue;
            };
            let names: Vec<&str> = cycle
                .iter()
                .chain([&first])
                .filter_map(|&i| ids.get(i).copied())
                .collect();
            // Point at the `needs` entry that closes the cycle.
            let next = cycle.get(1).copied().unwrap_or(first);
            let pos = s
                .needs
                .iter()
                .find(|n| ids.get(next) == Some(&n.value.as_str()))
                .map(|n| n.pos)
                .unwrap_or(s.id.pos);
            self.err(pos, format!("steps form a cycle: {}", names.join(" → ")))
                .label("closes the cycle")
                .help(
                    "a step cannot wait, directly or not, for itself: remove one of these `needs`",
                );
        }
        let index = index.iter().map(|(k, &v)| (k.to_string(), v)).collect();
        Graph {
            needs,
            acyclic,
            index,
        }
    }
}

/// The longest path of budgets through the DAG; ties go to the step earliest in the file.
/// With `rto_ends_at`, the longest path that ends at that step: the observation after it does
/// not count against the RTO.
pub(super) fn critical_path(
    steps: &[Step],
    order: &[usize],
    end: Option<usize>,
) -> (Vec<usize>, Duration) {
    // The cleanup of `finally:` runs after every other step: without `rto_ends_at` its
    // longest chain follows the main steps' (with it, the cleanup is observation).
    let weights_of = |cleanup: bool| -> Vec<Duration> {
        steps
            .iter()
            .map(|s| {
                if s.finally == cleanup {
                    s.budget
                } else {
                    Duration::ZERO
                }
            })
            .collect()
    };
    // A loop bounded by `max_parallel` runs its instances in turns: the path waits for them.
    let waits = super::loops::waits(steps);
    let needs: Vec<&[usize]> = waits.iter().map(Vec::as_slice).collect();
    let (mut path, mut total) = dag::longest_path_to(&weights_of(false), &needs, order, end);
    path.retain(|&i| steps.get(i).is_some_and(|s| !s.finally));
    if end.is_none() && steps.iter().any(|s| s.finally) {
        let (cleanup, took) = dag::longest_path_to(&weights_of(true), &needs, order, None);
        path.extend(
            cleanup
                .into_iter()
                .filter(|&i| steps.get(i).is_some_and(|s| s.finally)),
        );
        total += took;
    }
    (path, total)
}
