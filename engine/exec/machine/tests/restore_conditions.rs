//! Resume after a `when:` skipped a step: the restored machine knows the condition skipped it
//! (not a drill), so what it says of the skipped step's outputs is right.

use super::restore::{replayed, resumed};
use super::*;

/// check-lag writes `lag_s`; promote runs only on a small lag; slow runs meanwhile; verify
/// reads promote's output with no default.
const SKIP_THEN_STOP: &str = "rto: 1h\nsteps:\n  \
    - { id: check-lag, budget: 1m, run: c, drill: run }\n  \
    - { id: promote, needs: [check-lag], budget: 5m, run: p, drill: run, when: \"steps['check-lag'].outputs.lag_s | int <= 3600\" }\n  \
    - { id: slow, needs: [check-lag], budget: 30m, run: s, drill: run }\n  \
    - { id: verify, needs: [promote, slow], budget: 1m, run: \"echo {{ steps['promote'].outputs.at }}\", drill: run }\n";

#[test]
fn a_step_skipped_by_its_condition_before_a_stop_is_still_skipped_by_it_after_the_resume() {
    let p = plan(SKIP_THEN_STOP);
    let mut first = Sim::new(p.clone(), cfg(Mode::Real));
    first.advance(s(30));
    first.feed(Input::Exited {
        step: 0,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("lag_s".into(), "7200".into())]),
    });
    assert_eq!(first.finished("promote")[0].status, StepStatus::Skipped);
    first.advance(s(60));
    first.feed(Input::Interrupt);
    first.feed(Input::Exited {
        step: 2,
        attempt: 1,
        result: ExitResult::Signal(15),
        outputs: BTreeMap::new(),
    });
    assert_eq!(first.outcome, Some(Outcome::Stopped));

    let mut again = resumed(p, &replayed(&first), s(120));
    assert_eq!(again.spawned(), vec![(s(120), "slow".to_owned())]);
    again.advance(s(180));
    again.exit("slow", 0);
    // verify reads an output of the skipped step with no default: it fails, and says that
    // promote's condition skipped it, not that a drill did.
    let verify = &again.finished("verify")[0];
    assert_eq!(verify.status, StepStatus::Failed);
    let error = verify.error.clone().unwrap_or_default();
    assert!(
        error.contains("step `promote` wrote no output `at` (it was skipped: its `when` was false"),
        "{error}"
    );
    assert!(!error.contains("in this drill"), "{error}");
}
