//! `when:` and `likelihood:`: a step's condition, checked like any template (its names, the
//! steps whose outputs it reads, which must be upstream) and its likelihood a probability.

use crate::format::{Sp, StepDoc};
use crate::template::{self, Scope};

use super::{Compiler, Condition};

impl Compiler<'_> {
    /// The step's condition, if it has one. A `likelihood` without a `when` says nothing and
    /// is an error, as is one outside 0..1.
    pub(super) fn condition(&mut self, id: &str, s: &StepDoc, scope: &Scope) -> Option<Condition> {
        let likelihood = s.likelihood.as_ref().and_then(|l| self.likelihood(id, l));
        let Some(when) = &s.when else {
            if let Some(l) = &s.likelihood {
                self.err(l.pos, format!("step `{id}` has a `likelihood` but no `when`"))
                    .label("no condition")
                    .help("`likelihood` is the chance that the step's `when` holds; add a `when`, or remove it");
            }
            return None;
        };
        let errs = template::check_condition(&when.value, scope);
        let file = self.file.clone();
        self.template_errors(&file, when, errs, "condition");
        Some(Condition {
            expr: when.value.clone(),
            likelihood,
        })
    }

    fn likelihood(&mut self, id: &str, l: &Sp<f64>) -> Option<f64> {
        if (0.0..=1.0).contains(&l.value) {
            return Some(l.value);
        }
        self.err(
            l.pos,
            format!(
                "`likelihood` of step `{id}` is {}, not a probability",
                l.value
            ),
        )
        .label("not within 0..1")
        .help("write the chance that the step runs, from 0 to 1: `likelihood: 0.3`");
        None
    }
}
