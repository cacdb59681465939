//! What `resume` does with each step that started and never finished: adopt it, take the end
//! its supervisor recorded, run it again, take it as done, ask, or stop. A pure function of
//! what the journal and the step's files say and what the operator asked, so that every
//! decision is tested without a process or a terminal.

/// What is known of a step that started and never finished, when a resume looks at it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unfinished {
    /// The journal has it running: it started and no end is journaled.
    pub in_flight: bool,
    /// The journal says the engine stopped it (Ctrl-C, a stop): it did not complete.
    pub interrupted: bool,
    /// `idempotent: true`: running it again is safe whatever it did.
    pub idempotent: bool,
    /// Its supervisor recorded how its process ended, in the step's files.
    pub end_recorded: bool,
    /// Its process group, when it is alive now.
    pub alive_group: Option<u32>,
}

/// What the operator said on the command line, and whether there is anyone to ask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    /// `--yes`: re-run interrupted steps that are not idempotent.
    pub yes: bool,
    /// `--rerun STEP` names this step.
    pub rerun: bool,
    /// `--mark-done STEP` names this step.
    pub mark_done: bool,
    /// A terminal to ask at.
    pub interactive: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It ended while nobody watched, and its supervisor recorded how: that is its outcome.
    TakeRecordedEnd,
    /// Its process group is alive: watch it again, as the run did.
    Adopt { pgid: u32 },
    /// Done, on the operator's word (`--mark-done`).
    MarkDone,
    /// Run it again: it is idempotent, or the operator said so.
    Rerun,
    /// Interrupted and not idempotent: ask whether to run it again (no is a stop).
    AskRerun,
    /// Its outcome is unknown and it is not idempotent: ask to run it again, take it as done,
    /// or stop.
    AskRunMarkOrStop,
    /// Interrupted and not idempotent, with nobody to ask and no `--yes`: stop, and say how to
    /// go on.
    RefuseInterrupted,
    /// Its outcome is unknown and it is not idempotent, and nobody gave their word: stop. Only
    /// the operator can say whether it did its work; `--yes` does not.
    RefuseUnknown,
}

/// The decision for one unfinished step. What the process says comes first (an end recorded,
/// a group alive: facts beat words); then the operator's `--mark-done` and `--rerun`; then
/// what is safe on its own (idempotent); then asking.
pub fn decide(u: Unfinished, asked: Asked) -> Decision {
    if u.in_flight && u.end_recorded {
        return Decision::TakeRecordedEnd;
    }
    if u.in_flight
        && let Some(pgid) = u.alive_group
    {
        return Decision::Adopt { pgid };
    }
    if asked.mark_done {
        return Decision::MarkDone;
    }
    if u.idempotent || asked.rerun {
        return Decision::Rerun;
    }
    if u.interrupted {
        // Stopped by us, so known not to have completed: `--yes` is the word to re-run it.
        return match (asked.yes, asked.interactive) {
            (true, _) => Decision::Rerun,
            (false, true) => Decision::AskRerun,
            (false, false) => Decision::RefuseInterrupted,
        };
    }
    if asked.interactive && !asked.yes {
        Decision::AskRunMarkOrStop
    } else {
        Decision::RefuseUnknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Its process ended while no executor watched, and nothing recorded how.
    fn ended_unseen() -> Unfinished {
        Unfinished {
            in_flight: true,
            ..Unfinished::default()
        }
    }

    fn interrupted() -> Unfinished {
        Unfinished {
            interrupted: true,
            ..Unfinished::default()
        }
    }

    #[test]
    fn a_step_whose_group_is_alive_is_adopted_whatever_was_asked() {
        let u = Unfinished {
            alive_group: Some(4242),
            ..ended_unseen()
        };
        let asked = Asked {
            yes: true,
            rerun: true,
            mark_done: true,
            interactive: true,
        };
        assert_eq!(decide(u, asked), Decision::Adopt { pgid: 4242 });
    }

    #[test]
    fn a_step_whose_supervisor_recorded_its_end_takes_that_end_over_a_rerun() {
        let u = Unfinished {
            end_recorded: true,
            alive_group: Some(7),
            ..ended_unseen()
        };
        let asked = Asked {
            rerun: true,
            ..Asked::default()
        };
        assert_eq!(decide(u, asked), Decision::TakeRecordedEnd);
    }

    #[test]
    fn a_group_alive_of_a_step_not_in_flight_is_not_adopted() {
        // An interrupted step's pgid may be reused by another process: only a step the
        // journal has running is watched again.
        let u = Unfinished {
            alive_group: Some(7),
            ..interrupted()
        };
        assert_eq!(decide(u, Asked::default()), Decision::RefuseInterrupted);
    }

    #[test]
    fn an_idempotent_step_is_run_again_without_asking() {
        let u = Unfinished {
            idempotent: true,
            ..ended_unseen()
        };
        let asked = Asked {
            interactive: true,
            ..Asked::default()
        };
        assert_eq!(decide(u, asked), Decision::Rerun);
        let u = Unfinished {
            idempotent: true,
            ..interrupted()
        };
        assert_eq!(decide(u, Asked::default()), Decision::Rerun);
    }

    #[test]
    fn mark_done_is_taken_before_idempotent_and_rerun() {
        let u = Unfinished {
            idempotent: true,
            ..ended_unseen()
        };
        let asked = Asked {
            mark_done: true,
            ..Asked::default()
        };
        assert_eq!(decide(u, asked), Decision::MarkDone);
    }

    #[test]
    fn rerun_runs_a_step_of_unknown_outcome_again() {
        let asked = Asked {
            rerun: true,
            ..Asked::default()
        };
        assert_eq!(decide(ended_unseen(), asked), Decision::Rerun);
    }

    #[test]
    fn an_interrupted_step_that_is_not_idempotent_reruns_on_yes() {
        let asked = Asked {
            yes: true,
            ..Asked::default()
        };
        assert_eq!(decide(interrupted(), asked), Decision::Rerun);
    }

    #[test]
    fn an_interrupted_step_that_is_not_idempotent_is_asked_about_at_a_terminal() {
        let asked = Asked {
            interactive: true,
            ..Asked::default()
        };
        assert_eq!(decide(interrupted(), asked), Decision::AskRerun);
    }

    #[test]
    fn an_interrupted_step_that_is_not_idempotent_is_refused_with_nobody_to_ask() {
        assert_eq!(
            decide(interrupted(), Asked::default()),
            Decision::RefuseInterrupted
        );
    }

    #[test]
    fn a_step_of_unknown_outcome_is_asked_about_at_a_terminal() {
        let asked = Asked {
            interactive: true,
            ..Asked::default()
        };
        assert_eq!(decide(ended_unseen(), asked), Decision::AskRunMarkOrStop);
    }

    #[test]
    fn yes_does_not_rerun_a_step_of_unknown_outcome() {
        // It may have done all, some or none of its work: `--yes` is not the operator's word
        // on that, at a terminal or not.
        for interactive in [false, true] {
            let asked = Asked {
                yes: true,
                interactive,
                ..Asked::default()
            };
            assert_eq!(decide(ended_unseen(), asked), Decision::RefuseUnknown);
        }
    }

    #[test]
    fn a_step_of_unknown_outcome_is_refused_with_nobody_to_ask() {
        assert_eq!(
            decide(ended_unseen(), Asked::default()),
            Decision::RefuseUnknown
        );
    }
}
