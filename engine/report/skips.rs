//! Why a step did not run, in the reports' words: a `when:` that was false (with the values it
//! saw), a need that failed (naming it), or a drill that skipped it. The three read
//! differently, so that a reviewer never takes a branch not taken for a failure, or the
//! other way round.

use crate::journal::{RunState, StepRun, StepStatus};

/// The words for a skipped or not-run step; `None` for any other.
pub fn why_not_run(state: &RunState, s: &StepRun) -> Option<String> {
    let needs: Vec<&StepRun> = state
        .started
        .as_ref()
        .and_then(|st| st.plan.steps.iter().find(|p| p.id == s.id))
        .map(|p| p.needs.iter().filter_map(|n| state.step(n)).collect())
        .unwrap_or_default();
    words(s, &needs)
}

/// [`why_not_run`] with the step's needs as they ended.
fn words(s: &StepRun, needs: &[&StepRun]) -> Option<String> {
    match s.status? {
        StepStatus::Skipped => Some(match &s.condition {
            Some(c) if !c.held => {
                format!(
                    "skipped: its condition {}",
                    crate::ui::describe::condition_words(c)
                )
            }
            // A loop over an empty list, or one a dry-run could not read, says why itself.
            _ => match &s.error {
                Some(why) => format!("skipped: {why}"),
                None => "skipped in this drill".to_owned(),
            },
        }),
        StepStatus::NotRun => Some(not_run_words(needs)),
        _ => None,
    }
}

/// A not-run step: the needs that did not succeed, each with what became of it.
fn not_run_words(needs: &[&StepRun]) -> String {
    let blocked: Vec<String> = needs
        .iter()
        .filter_map(|need| {
            let what = match need.status {
                Some(StepStatus::Failed) if need.denied_by.is_some() => "was denied",
                Some(StepStatus::Failed) => "failed",
                Some(StepStatus::TimedOut) => "timed out",
                Some(StepStatus::NotRun) => "was not run",
                Some(StepStatus::Unknown) => "has an unknown outcome",
                Some(StepStatus::Interrupted) | None => "did not finish",
                Some(_) => return None,
            };
            Some(format!("`{}` {what}", need.id))
        })
        .collect();
    if blocked.is_empty() {
        // No need failed: the run stopped (an abort, a denial elsewhere) before it got here.
        "not run: the run ended before it".to_owned()
    } else {
        format!("not run: {}", blocked.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::ConditionSeen;

    fn step(id: &str, status: StepStatus) -> StepRun {
        StepRun {
            id: id.into(),
            status: Some(status),
            ..StepRun::default()
        }
    }

    #[test]
    fn a_condition_skip_names_its_expression_and_values() {
        let mut s = step("promote", StepStatus::Skipped);
        s.condition = Some(ConditionSeen {
            expr: "lag_s | int <= 60".into(),
            values: [("lag_s".to_owned(), "900".to_owned())].into(),
            held: false,
            assumed: false,
        });
        assert_eq!(
            words(&s, &[]).as_deref(),
            Some("skipped: its condition `lag_s | int <= 60` was false (lag_s=900)")
        );
        let drill = step("promote", StepStatus::Skipped);
        assert_eq!(words(&drill, &[]).as_deref(), Some("skipped in this drill"));
    }

    #[test]
    fn a_step_not_run_names_the_need_that_failed() {
        let verify = step("verify", StepStatus::NotRun);
        let restore = step("restore", StepStatus::Failed);
        let check = step("check", StepStatus::Succeeded);
        let mut gate = step("go", StepStatus::Failed);
        gate.denied_by = Some("bob".into());
        assert_eq!(
            words(&verify, &[&restore, &check]).as_deref(),
            Some("not run: `restore` failed")
        );
        assert_eq!(
            words(&verify, &[&gate]).as_deref(),
            Some("not run: `go` was denied")
        );
        assert_eq!(words(&check, &[]), None);
    }
}
