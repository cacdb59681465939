//! `finally:`: the cleanup steps' place in the graph. They share the runbook's id space and
//! may need each other, but a main step may not need one (it runs after every main step has
//! ended) and one may not need a main step (it runs whatever that step's outcome; it reads
//! `run.status` and `run.failed_steps` instead). Nor can the RTO end at one. They may read
//! every main step's outputs: each has ended before any cleanup starts.

use super::Compiler;
use super::graph::Graph;

/// A `finally:` step (index `i`) sees main step `j`'s outputs as it would an upstream
/// step's: every main step has ended when the cleanup starts. One that was skipped or not
/// run wrote none, which is an error at run time unless the template gives a `default`.
pub(super) fn reads_main_step(main: usize, i: usize, j: usize) -> bool {
    i >= main && j < main
}

impl Compiler<'_> {
    pub(super) fn finally_needs(&mut self, graph: &Graph) {
        let main = self.doc.steps.len();
        for (i, s) in self.steps.clone().into_iter().enumerate() {
            for n in &s.needs {
                let Some(&j) = graph.index.get(&n.value) else {
                    continue;
                };
                let id = &s.id.value;
                match (i >= main, j >= main) {
                    (true, false) => {
                        self.err(
                            n.pos,
                            format!(
                                "`finally:` step `{id}` needs `{}`, a step of `steps:`",
                                n.value
                            ),
                        )
                        .label("a main step")
                        .help("a `finally:` step runs once every step has ended, whatever its outcome: read `run.status` and `run.failed_steps` instead of needing one");
                    }
                    (false, true) => {
                        self.err(
                            n.pos,
                            format!("step `{id}` needs `{}`, a `finally:` step", n.value),
                        )
                        .label("a `finally:` step")
                        .help("`finally:` steps run after every step of `steps:` has ended: move the step into `finally:`, or the needed one out of it");
                    }
                    _ => {}
                }
            }
        }
        if let Some(at) = &self.doc.rto_ends_at
            && graph.index.get(&at.value).is_some_and(|&i| i >= main)
        {
            self.err(
                at.pos,
                format!("`rto_ends_at` names `{}`, a `finally:` step", at.value),
            )
            .label("a cleanup step")
            .help("name the step of `steps:` whose success restores service");
        }
    }
}
