//! Dry-runs: the same machine driven on a virtual clock in a plain loop, so a four-hour
//! scenario rehearses in milliseconds.

use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use super::machine::{Effect, ExitResult, Input, Machine, Outcome};
use super::{ExecError, RunContext};

/// Drives the machine on a virtual clock: nothing executes, nothing is sent. Simulated
/// steps end after their duration; timers fire at their exact instants.
pub fn dry_run(cx: &mut RunContext, machine: &mut Machine) -> Result<Outcome, ExecError> {
    use std::cmp::Reverse;
    let mut queue: BinaryHeap<Reverse<(Duration, u64, usize, u32)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut now = Duration::ZERO;
    let mut effects = machine.handle(now, Input::Start);
    loop {
        let mut events = Vec::new();
        let mut follow = Vec::new();
        let mut outcome = None;
        for a in effects {
            match a {
                Effect::Record(e) => events.push(e),
                Effect::Simulate {
                    step,
                    attempt,
                    after,
                } => {
                    seq += 1;
                    queue.push(Reverse((now + after, seq, step, attempt)));
                }
                Effect::Notify {
                    channel,
                    reason,
                    message,
                    ..
                } => follow.push(Input::Notified {
                    channel,
                    reason,
                    message: format!("{message} (dry-run: not sent)"),
                    failed: None,
                }),
                Effect::Done(o) => outcome = Some(o),
                Effect::Spawn { step, attempt, .. } => {
                    // Cannot happen in a dry-run; treat as simulated rather than run anything.
                    seq += 1;
                    queue.push(Reverse((now, seq, step, attempt)));
                }
                Effect::Kill { .. } | Effect::Ask { .. } => {}
            }
        }
        if !events.is_empty() {
            cx.record_all(now, events)?;
        }
        if let Some(o) = outcome {
            cx.observers.finish();
            return Ok(o);
        }
        effects = Vec::new();
        for i in follow {
            effects.extend(machine.handle(now, i));
        }
        if !effects.is_empty() {
            continue;
        }
        let next_sim = queue.peek().map(|Reverse((t, ..))| *t);
        let next_wake = machine.next_wake();
        let next = match (next_sim, next_wake) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => {
                return Err(ExecError::Other(
                    "the dry-run stalled: no step can start and nothing is pending".into(),
                ));
            }
        };
        now = now.max(next);
        if next_sim == Some(next) {
            let Reverse((_, _, step, attempt)) = queue.pop().expect("peeked");
            effects = machine.handle(
                now,
                Input::Exited {
                    step,
                    attempt,
                    result: ExitResult::Code(0),
                    outputs: BTreeMap::new(),
                },
            );
        } else {
            effects = machine.handle(now, Input::Tick);
        }
    }
}
