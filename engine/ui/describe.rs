//! One human line per journal record: for the terminal, the plain log and report timelines.

use std::time::Duration;

use super::paint::paint;
use crate::journal::*;
use crate::units::fmt_duration;

/// A step status as people read it: `timed out`, not `timed_out` (JSON and the journal keep
/// the machine names; these are for the terminal and the md/html reports).
pub fn status_words(status: StepStatus) -> &'static str {
    match status {
        StepStatus::TimedOut => "timed out",
        StepStatus::NotRun => "not run",
        StepStatus::Unknown => "outcome unknown",
        other => other.as_str(),
    }
}

/// Why a run stopped, in words: `run_interrupted`'s `reason`.
pub fn stop_words(reason: &InterruptReason) -> &'static str {
    match reason {
        InterruptReason::Signal => "interrupted by Ctrl-C or a signal",
        InterruptReason::ApprovalTimedOut => "nobody answered a gate in time",
        InterruptReason::SupervisorDied => {
            "the step supervisor died (the engine saw the steps it was running to their end)"
        }
        InterruptReason::OutcomeUnknown => "a step's outcome is unknown and it is not idempotent",
    }
}

/// Why a channel was paged, in words: `escalated`'s `reason`.
pub fn escalation_words(reason: &EscalationReason) -> &'static str {
    match reason {
        EscalationReason::Schedule => "on schedule",
        EscalationReason::RtoAtRisk => "RTO at risk",
        EscalationReason::ApprovalRequested => "approval needed",
    }
}

/// How a notify command failed, in one line: `exit 3; stderr: a line / the last line`, or
/// None when the journal does not say (older journals). The stderr lines are what the command
/// wrote, masked; they are joined so that a report row stays one row.
pub fn notify_failure_words(x: &Escalated) -> Option<String> {
    let tail = x
        .stderr_tail
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| format!("stderr: {}", t.lines().collect::<Vec<_>>().join(" / ")));
    match (x.error.as_deref(), tail) {
        (Some(how), Some(tail)) => Some(format!("{how}; {tail}")),
        (Some(how), None) => Some(how.to_owned()),
        (None, tail) => tail,
    }
}

/// A human line for a record, or None for records not worth a line.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per journal event type, each a few lines: its one concern is the full list"
)]
pub fn describe(rec: &Record, color: bool, rto_ms: u64) -> Option<String> {
    let e = &rec.event;
    Some(match e {
        EventKind::RunStarted(r) => format!(
            "run {} started: {} ({}), mode {}{}, RTO {}{}, operator {}",
            r.run_id,
            r.scenario,
            r.title,
            r.mode.map(Mode::as_str).unwrap_or("real"),
            if r.rehearsal {
                " (rehearsal: the steps a drill mocks run for real)"
            } else {
                ""
            },
            fmt_duration(Duration::from_millis(r.rto_ms)),
            r.rto_ends_at
                .as_ref()
                .map(|s| format!(" (ends at {s})"))
                .unwrap_or_default(),
            r.operator
        ),
        EventKind::StepStarted(s) => {
            let attempt = if s.attempt > 1 {
                format!(" (attempt {})", s.attempt)
            } else {
                String::new()
            };
            let how = match s.how {
                How::Run => "",
                How::Rehearsal => " [run for real (rehearsal)]",
                How::DrillCommand => " [drill command]",
                How::DrillWith => " [drill with]",
                How::DryRun => " [dry run]",
            };
            match &s.command {
                Some(c) => format!("{} {}{attempt}{how}: {c}", paint(color, "36", "▶"), s.step),
                None => format!("{} {}{attempt}{how}", paint(color, "36", "▶"), s.step),
            }
        }
        EventKind::StepOutput(o) => {
            let kv: Vec<String> = o.outputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("  {} outputs: {}", o.step, kv.join(" "))
        }
        EventKind::StepFinished(f) => {
            let d = fmt_duration(Duration::from_millis(f.duration_ms));
            let why = match (&f.error, f.exit_code, f.signal) {
                (Some(e), _, _) => format!(": {e}"),
                (None, Some(c), _) if c != 0 => format!(" (exit {c})"),
                (None, _, Some(s)) => format!(" (signal {s})"),
                _ => String::new(),
            };
            let retry = if f.will_retry { ", will retry" } else { "" };
            match f.status {
                StepStatus::Succeeded if f.marked_done_by.is_some() => format!(
                    "{} {} marked done by {} (its outcome was unknown)",
                    paint(color, "32", "✓"),
                    f.step,
                    f.marked_done_by.as_deref().unwrap_or_default()
                ),
                StepStatus::Succeeded => format!(
                    "{} {} succeeded in {d}{}",
                    paint(color, "32", "✓"),
                    f.step,
                    f.condition
                        .as_ref()
                        .filter(|c| c.assumed)
                        .map(|c| format!(
                            " (its condition `{}` reads outputs a dry-run does not have: taken as running)",
                            c.expr
                        ))
                        .unwrap_or_default()
                ),
                StepStatus::Skipped if f.condition.is_some() => format!(
                    "{} {} skipped: {}",
                    paint(color, "2", "-"),
                    f.step,
                    f.condition.as_ref().map(condition_words).unwrap_or_default()
                ),
                // A loop over an output with no items, or none known: the reason is its error.
                StepStatus::Skipped if f.error.is_some() => format!(
                    "{} {} skipped: {}",
                    paint(color, "2", "-"),
                    f.step,
                    f.error.as_deref().unwrap_or_default()
                ),
                StepStatus::Skipped => {
                    format!("{} {} skipped (drill)", paint(color, "2", "-"), f.step)
                }
                StepStatus::Simulated => format!(
                    "{} {} simulated: estimate {d}",
                    paint(color, "2", "~"),
                    f.step
                ),
                StepStatus::NotRun => format!("{} {} not run", paint(color, "2", "-"), f.step),
                StepStatus::Unknown => format!(
                    "{} {} outcome unknown after {d}{why}{}",
                    paint(color, "33", "?"),
                    f.step,
                    if f.will_retry {
                        ", will run again (idempotent)"
                    } else {
                        ""
                    }
                ),
                StepStatus::Interrupted => format!(
                    "{} {} interrupted after {d}",
                    paint(color, "33", "■"),
                    f.step
                ),
                StepStatus::TimedOut => format!(
                    "{} {} timed out after {d}{why}{retry}",
                    paint(color, "31", "✗"),
                    f.step
                ),
                StepStatus::NotReady => paint(
                    color,
                    "2",
                    &format!(
                        "⋯ {} not ready (attempt {}){}",
                        f.step,
                        f.attempt,
                        f.next_in_ms
                            .map(|n| format!(
                                ", next in {}",
                                fmt_duration(Duration::from_millis(n))
                            ))
                            .unwrap_or_default()
                    ),
                ),
                StepStatus::Failed => format!(
                    "{} {} failed after {d}{why}{retry}",
                    paint(color, "31", "✗"),
                    f.step
                ),
            }
        }
        EventKind::BudgetWarning(b) => format!(
            "{} {}{} at 80% of its budget: {} of {}",
            paint(color, "33", "!"),
            b.step,
            group_words(b),
            fmt_duration(Duration::from_millis(b.elapsed_ms)),
            fmt_duration(Duration::from_millis(b.budget_ms))
        ),
        EventKind::BudgetBreached(b) => format!(
            "{} {}{} over its budget of {}",
            paint(color, "31", "!!"),
            b.step,
            group_words(b),
            fmt_duration(Duration::from_millis(b.budget_ms))
        ),
        EventKind::RtoAtRisk(r) => format!(
            "{} RTO at risk: projected finish at +{} against a target of {} (path: {})",
            paint(color, "31;1", "!!"),
            fmt_duration(Duration::from_millis(r.projected_ms)),
            fmt_duration(Duration::from_millis(r.target_ms)),
            r.path.join(" → ")
        ),
        // A manual task is work a person does, not a decision awaited.
        EventKind::ApprovalRequested(a) if a.manual.is_some() => format!(
            "{} {} is a manual task for {}: {}; confirm: {} (`y [note]` here when it is done)",
            paint(color, "35", "▶"),
            a.step,
            a.approvers.join(", "),
            a.prompt,
            a.manual
                .as_ref()
                .map(|m| m.checklist.join(", "))
                .unwrap_or_default()
        ),
        EventKind::ApprovalGranted(a) if a.items.is_some() => format!(
            "{} {} done by {}{} in {}",
            paint(color, "32", "✓"),
            a.step,
            a.by.join(", "),
            if a.auto { " (auto)" } else { "" },
            fmt_duration(Duration::from_millis(a.wait_ms))
        ),
        EventKind::ApprovalRequested(a) => format!(
            "{} {} waits for approval by {}{}: {}",
            paint(color, "35", "?"),
            a.step,
            a.approvers.join(", "),
            if a.min > 1 {
                format!(" ({} people)", a.min)
            } else {
                String::new()
            },
            a.prompt
        ),
        EventKind::ApprovalReceived(a) => {
            format!("  {} approved by {} (more needed)", a.step, a.by)
        }
        EventKind::ApprovalGranted(a) => format!(
            "{} {} approved by {}{} after {}",
            paint(color, "32", "✓"),
            a.step,
            a.by.join(", "),
            if a.auto { " (auto)" } else { "" },
            fmt_duration(Duration::from_millis(a.wait_ms))
        ),
        EventKind::ApprovalDenied(a) => {
            format!("{} {} denied by {}", paint(color, "31", "✗"), a.step, a.by)
        }
        EventKind::ApprovalRejected(a) => {
            format!("{} {}: {}", paint(color, "33", "!"), a.step, a.reason)
        }
        EventKind::ApprovalLate(a) => format!(
            "{} {}: {} by {} came late: {}",
            paint(color, "33", "!"),
            a.step,
            if a.approve { "approval" } else { "denial" },
            a.by,
            a.reason
        ),
        EventKind::ApprovalTimedOut(a) => format!(
            "{} {}: nobody answered in {}; the run stops (resume it with `runbook resume`)",
            paint(color, "33", "■"),
            a.step,
            fmt_duration(Duration::from_millis(a.wait_ms))
        ),
        EventKind::Escalated(x) => format!(
            "{} escalated to {} ({}){}",
            paint(color, "35", "↑"),
            x.channel,
            escalation_words(&x.reason),
            match (x.ok, notify_failure_words(x)) {
                (true, _) => String::new(),
                (false, Some(how)) => format!(": the notify command failed ({how})"),
                (false, None) => ": the notify command failed".into(),
            }
        ),
        EventKind::RunInterrupted(r) => format!(
            "{} run stopped ({}); it can be resumed",
            paint(color, "33", "■"),
            stop_words(&r.reason)
        ),
        // The seal ends the chain; the line before it already said how the run ended.
        EventKind::RunSealed(_) => return None,
        EventKind::LoopExpanded(e) => format!(
            "{} {}: one instance per item of its list ({})",
            paint(color, "36", "⇉"),
            e.step,
            e.items.join(", ")
        ),
        EventKind::RunResumed(r) => format!(
            "run resumed by {} after {} of downtime",
            r.operator,
            fmt_duration(Duration::from_millis(r.downtime_ms))
        ),
        EventKind::RunFinished(f) => {
            let target = fmt_duration(Duration::from_millis(rto_ms.max(f.rto_ms)));
            let elapsed = fmt_duration(Duration::from_millis(f.elapsed_ms));
            // From status and elapsed, not `rto_met`: an old journal says it of failed runs.
            let line = match f.status {
                RunStatus::Failed => format!(
                    "run {}: {} (target {target})",
                    paint(color, "31", "failed"),
                    paint(
                        color,
                        "31",
                        &match (&f.failed_at, f.recovery_ms) {
                            // Service came back and did not hold: still no recovery.
                            (step, Some(r)) => format!(
                                "RTO not met: recovery failed during observation{} after {elapsed}, after service was restored in {}: it did not hold",
                                step.as_ref()
                                    .map(|s| format!(" at {s}"))
                                    .unwrap_or_default(),
                                fmt_duration(Duration::from_millis(r))
                            ),
                            (Some(step), None) =>
                                format!("RTO not met: recovery failed at {step} after {elapsed}"),
                            (None, None) => format!("RTO not met: recovery failed after {elapsed}"),
                        }
                    )
                ),
                // With `rto_ends_at`: the RTO is measured at that step, the observation apart.
                RunStatus::Succeeded if f.recovery_ms.is_some() && f.projected_ms.is_none() => {
                    let r = fmt_duration(Duration::from_millis(f.recovery_ms.unwrap_or_default()));
                    format!(
                        "run {}: recovered in {r} ({}) · observation {} after",
                        paint(color, "32", "succeeded"),
                        if f.recovered_within_rto() {
                            paint(color, "32", &format!("RTO {target} met"))
                        } else {
                            paint(color, "31", &format!("RTO {target} MISSED"))
                        },
                        fmt_duration(Duration::from_millis(f.observation_ms.unwrap_or_default()))
                    )
                }
                RunStatus::Succeeded => format!(
                    "run {} in {elapsed}: {} (target {target}{})",
                    paint(color, "32", "succeeded"),
                    if f.recovered_within_rto() {
                        paint(color, "32", "RTO met")
                    } else {
                        paint(color, "31", "RTO MISSED")
                    },
                    // A drill is judged on what a real run would take, not on its own clock.
                    match (f.projected_ms, f.recovery_ms) {
                        (Some(p), Some(_)) => format!(
                            "; a real run projects a recovery in {}, then the observation",
                            fmt_duration(Duration::from_millis(p))
                        ),
                        (Some(p), None) => format!(
                            "; a real run projects {}",
                            fmt_duration(Duration::from_millis(p))
                        ),
                        _ => String::new(),
                    }
                ),
            };
            if f.continued.is_empty() {
                line
            } else {
                format!(
                    "{line}; {}: {}",
                    paint(color, "33", "failed, continued"),
                    f.continued.join(", ")
                )
            }
        }
    })
}

/// A `when:` that skipped a step, in words: `` `lag_s | int <= 3600` was false (lag_s=7200) ``.
pub fn condition_words(c: &crate::journal::ConditionSeen) -> String {
    let values: Vec<String> = c.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let verdict = if c.held { "true" } else { "false" };
    if values.is_empty() {
        format!("`{}` was {verdict}", c.expr)
    } else {
        format!("`{}` was {verdict} ({})", c.expr, values.join(", "))
    }
}

/// A called runbook's group is named as one: ` (runbook restore-database, its steps)`.
fn group_words(b: &BudgetEvent) -> String {
    b.runbook
        .as_ref()
        .map(|r| format!(" (runbook {r}, its steps)"))
        .unwrap_or_default()
}
