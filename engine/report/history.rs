//! Across runs: every journal in the state folder, replayed, for `history`, `list`'s last
//! drill, and the measured durations that the simulator prefers to estimates.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::journal::*;
use crate::state::StateDir;

/// How often the plan asks for a drill: quarterly.
pub const DRILL_EVERY_DAYS: i64 = 90;

/// Every run in the state folder whose journal verifies, oldest first. Runs with a broken
/// chain are left out (and named), never trusted.
pub fn load_runs(state: &StateDir) -> (Vec<(String, RunState)>, Vec<String>) {
    let mut ok = Vec::new();
    let mut broken = Vec::new();
    for id in state.runs() {
        match read_verified(&state.journal(&id)) {
            Ok((records, _)) => ok.push((id, RunState::replay(&records))),
            Err(_) => broken.push(id),
        }
    }
    (ok, broken)
}

/// Measured durations of each step of a scenario, from finished real runs and drills: steps
/// that succeeded with a process (not skipped, simulated or auto-approved), and gates' waits.
pub fn step_durations(
    runs: &[(String, RunState)],
    scenario: &str,
) -> BTreeMap<String, Vec<Duration>> {
    let mut out: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for (_, rs) in runs {
        if rs.scenario() != scenario || rs.mode() == Mode::DryRun {
            continue;
        }
        for s in &rs.steps {
            if s.status != Some(StepStatus::Succeeded) || s.estimated || s.auto_approved {
                continue;
            }
            let ms = if s.gate {
                s.wait_ms
            } else {
                s.duration_ms(rs.last_elapsed_ms)
            };
            if let Some(ms) = ms {
                out.entry(s.id.clone())
                    .or_default()
                    .push(Duration::from_millis(ms));
            }
        }
    }
    out
}

/// When the scenario was last drilled: its last drill that succeeded, if ever. A drill that
/// failed (or stopped) proved nothing about the recovery, so it does not reset the schedule.
pub fn last_drill(runs: &[(String, RunState)], scenario: &str) -> Option<DateTime<Utc>> {
    runs.iter()
        .filter(|(_, rs)| rs.scenario() == scenario && rs.mode() == Mode::Drill)
        .filter(|(_, rs)| {
            rs.finished
                .as_ref()
                .is_some_and(|f| f.status == RunStatus::Succeeded)
        })
        .filter_map(|(_, rs)| rs.started_at)
        .max()
}

/// The scenario's last drill of any outcome, and that outcome (`succeeded`, `failed`,
/// `stopped` or `running`): shown beside the last successful one.
pub fn last_drill_attempt(
    runs: &[(String, RunState)],
    scenario: &str,
) -> Option<(DateTime<Utc>, &'static str)> {
    runs.iter()
        .filter(|(_, rs)| rs.scenario() == scenario && rs.mode() == Mode::Drill)
        .filter_map(|(_, rs)| Some((rs.started_at?, super::run_status(rs))))
        .max_by_key(|(t, _)| *t)
}

/// Is a drill overdue at `now`?
pub fn drill_overdue(last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match last {
        None => true,
        Some(t) => (now - t).num_days() > DRILL_EVERY_DAYS,
    }
}

/// One step across runs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepHistory {
    pub id: String,
    pub runs: usize,
    pub p50_s: f64,
    pub p95_s: f64,
    pub budget_s: f64,
    pub suggestion: Option<String>,
}

/// One scenario across runs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScenarioHistory {
    pub scenario: String,
    pub rto_target_s: f64,
    pub runs: BTreeMap<String, usize>,
    /// Finished real runs and drills (dry-runs are rehearsals on a virtual clock: counted in
    /// `runs`, left out of the figures).
    pub finished: usize,
    pub success_rate: Option<f64>,
    /// Of `finished`, the runs that recovered (succeeded): the only ones the RTO figures and
    /// MTTR count. A failed or denied run did not recover, however soon it ended.
    pub recoveries: usize,
    /// Of `finished`, the runs that failed (or were denied): left out of the RTO figures.
    pub not_recovered: usize,
    /// Real runs and drills with no end (stopped, or still running): left out of every figure.
    pub unfinished: usize,
    /// The RTO achieved, over recoveries.
    pub rto_p50_s: Option<f64>,
    pub rto_p90_s: Option<f64>,
    pub rto_max_s: Option<f64>,
    /// The share of recoveries that recovered within the RTO.
    pub rto_met_share: Option<f64>,
    /// Mean time to recovery over real runs that recovered.
    pub mttr_s: Option<f64>,
    /// How many real runs the MTTR counts, and how many failed real runs it leaves out.
    pub mttr_runs: usize,
    pub mttr_left_out: usize,
    pub last_drill: Option<DateTime<Utc>>,
    pub drill_overdue: bool,
    pub steps: Vec<StepHistory>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[idx])
}

fn round_budget(s: f64) -> String {
    // Up to the next whole minute above a minute, the next 5 s below.
    let secs = if s >= 60.0 {
        (s / 60.0).ceil() * 60.0
    } else {
        (s / 5.0).ceil().max(1.0) * 5.0
    };
    crate::units::fmt_duration(Duration::from_secs_f64(secs))
}

pub fn scenario_history(
    runs: &[(String, RunState)],
    scenario: &str,
    now: DateTime<Utc>,
) -> ScenarioHistory {
    let mine: Vec<&RunState> = runs
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.scenario() == scenario)
        .collect();
    let mut by_mode = BTreeMap::new();
    for r in &mine {
        *by_mode.entry(r.mode().as_str().to_owned()).or_insert(0) += 1;
    }
    let counted: Vec<&&RunState> = mine
        .iter()
        .filter(|r| r.mode() != Mode::DryRun && r.is_finished())
        .collect();
    let unfinished = mine
        .iter()
        .filter(|r| r.mode() != Mode::DryRun && !r.is_finished())
        .count();
    // Only a recovery has a time to recover: a failed run's elapsed is when it gave up, and
    // its `rto_met` (in journals written before this was so) is not to be believed.
    let recoveries: Vec<&RunFinished> = counted
        .iter()
        .filter_map(|r| r.finished.as_ref())
        .filter(|f| f.status == RunStatus::Succeeded)
        .collect();
    // A drill's recovery time is what a real run projects: its own clock runs at drill speed.
    let mut elapsed: Vec<f64> = recoveries
        .iter()
        .map(|f| f.judged_ms() as f64 / 1000.0)
        .collect();
    elapsed.sort_by(f64::total_cmp);
    let succeeded = recoveries.len();
    let met = recoveries
        .iter()
        .filter(|f| f.recovered_within_rto())
        .count();
    let real_finished: Vec<&RunFinished> = counted
        .iter()
        .filter(|r| r.mode() == Mode::Real)
        .filter_map(|r| r.finished.as_ref())
        .collect();
    let real: Vec<f64> = real_finished
        .iter()
        .filter(|f| f.status == RunStatus::Succeeded)
        // With `rto_ends_at`, the time to recover ends where service was restored: the
        // observation after it is not repair time.
        .map(|f| f.recovery_ms.unwrap_or(f.elapsed_ms) as f64 / 1000.0)
        .collect();
    let share = |k: usize| (!counted.is_empty()).then(|| k as f64 / counted.len() as f64);
    let latest_plan = mine
        .iter()
        .rev()
        .find_map(|r| r.started.as_ref())
        .map(|s| s.plan.clone());
    let rto_target_s = mine
        .iter()
        .rev()
        .find_map(|r| r.started.as_ref())
        .map(|s| s.rto_ms as f64 / 1000.0)
        .unwrap_or(0.0);
    let durations = step_durations(runs, scenario);
    let steps = latest_plan
        .map(|p| p.steps)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let mut v: Vec<f64> = durations
                .get(&p.id)?
                .iter()
                .map(Duration::as_secs_f64)
                .collect();
            v.sort_by(f64::total_cmp);
            let (p50, p95) = (percentile(&v, 0.5)?, percentile(&v, 0.95)?);
            let budget = p.budget_ms as f64 / 1000.0;
            let suggestion = if p95 > budget {
                Some(format!(
                    "too tight: p95 is over the budget; consider `budget: {}`",
                    round_budget(p95 * 1.1)
                ))
            } else if v.len() >= 3 && p95 < budget * 0.5 {
                Some(format!(
                    "loose: p95 is under half the budget; consider `budget: {}`",
                    round_budget(p95 * 1.25)
                ))
            } else {
                None
            };
            Some(StepHistory {
                id: p.id,
                runs: v.len(),
                p50_s: p50,
                p95_s: p95,
                budget_s: budget,
                suggestion,
            })
        })
        .collect();
    let last = last_drill(runs, scenario);
    ScenarioHistory {
        scenario: scenario.to_owned(),
        rto_target_s,
        runs: by_mode,
        finished: counted.len(),
        success_rate: share(succeeded),
        recoveries: succeeded,
        not_recovered: counted.len() - succeeded,
        unfinished,
        rto_p50_s: percentile(&elapsed, 0.5),
        rto_p90_s: percentile(&elapsed, 0.9),
        rto_max_s: elapsed.last().copied(),
        rto_met_share: (succeeded > 0).then(|| met as f64 / succeeded as f64),
        mttr_s: (!real.is_empty()).then(|| real.iter().sum::<f64>() / real.len() as f64),
        mttr_runs: real.len(),
        mttr_left_out: real_finished.len() - real.len(),
        last_drill: last,
        drill_overdue: drill_overdue(last, now),
        steps,
    }
}

pub fn history_markdown(all: &[ScenarioHistory]) -> String {
    use std::fmt::Write;
    let d = |s: Option<f64>| {
        s.map(|s| crate::units::fmt_duration(Duration::from_secs_f64(s)))
            .unwrap_or_else(|| "-".into())
    };
    let pct = |s: Option<f64>| {
        s.map(|s| format!("{:.0}%", s * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    let mut o = String::from("# Run history\n");
    for h in all {
        let _ = writeln!(o, "\n## {}\n", h.scenario);
        let modes: Vec<String> = h.runs.iter().map(|(m, n)| format!("{n} {m}")).collect();
        let _ = writeln!(o, "| | |\n|---|---|");
        let _ = writeln!(o, "| Runs | {} |", modes.join(", "));
        let _ = writeln!(
            o,
            "| Success rate | {} of {} finished real runs and drills |",
            pct(h.success_rate),
            h.finished
        );
        let count =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        // What the RTO figures leave out, and why: an auditor reads the rate with it.
        let mut left_out = Vec::new();
        if h.not_recovered > 0 {
            left_out.push(format!(
                "{}, which did not recover",
                count(h.not_recovered, "failed run", "failed runs")
            ));
        }
        if h.unfinished > 0 {
            left_out.push(format!(
                "{} with no end yet (stopped or running)",
                count(h.unfinished, "run", "runs")
            ));
        }
        let left_out = if left_out.is_empty() {
            String::new()
        } else {
            format!("; left out: {}", left_out.join(", "))
        };
        let _ = writeln!(
            o,
            "| RTO achieved | p50 {}, p90 {}, max {} against a target of {}, over {}{left_out} |",
            d(h.rto_p50_s),
            d(h.rto_p90_s),
            d(h.rto_max_s),
            d(Some(h.rto_target_s)),
            count(h.recoveries, "recovery", "recoveries")
        );
        let _ = writeln!(
            o,
            "| RTO met | {} of {}{left_out} |",
            pct(h.rto_met_share),
            count(h.recoveries, "recovery", "recoveries")
        );
        let _ = writeln!(
            o,
            "| MTTR (real runs) | {} over {}{} |",
            d(h.mttr_s),
            count(h.mttr_runs, "real recovery", "real recoveries"),
            if h.mttr_left_out > 0 {
                format!(
                    "; left out: {}, which did not recover",
                    count(h.mttr_left_out, "failed real run", "failed real runs")
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            o,
            "| Last drill | {}{} |",
            h.last_drill
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "never".into()),
            if h.drill_overdue {
                " — OVERDUE (quarterly drills)"
            } else {
                ""
            }
        );
        if !h.steps.is_empty() {
            let _ = writeln!(
                o,
                "\n| Step | Runs | p50 | p95 | Budget | Suggestion |\n|---|---|---|---|---|---|"
            );
            for s in &h.steps {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} |",
                    s.id,
                    s.runs,
                    d(Some(s.p50_s)),
                    d(Some(s.p95_s)),
                    d(Some(s.budget_s)),
                    s.suggestion.clone().unwrap_or_default()
                );
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTO_MS: u64 = 1_800_000;

    /// A run of `scenario` as its journal would replay: started, and ended as `end` says.
    fn run(mode: Mode, end: Option<RunFinished>) -> RunState {
        let mut rs = RunState::default();
        rs.started = Some(RunStarted {
            scenario: "s".into(),
            mode: Some(mode),
            rto_ms: RTO_MS,
            ..Default::default()
        });
        rs.started_at = Some(DateTime::<Utc>::UNIX_EPOCH);
        rs.finished = end;
        rs
    }

    fn ended(status: RunStatus, elapsed_ms: u64) -> RunFinished {
        RunFinished {
            status,
            elapsed_ms,
            // Believed by no figure: old journals said `true` of failed runs.
            rto_met: true,
            rto_ms: RTO_MS,
            failed_at: None,
            continued: Vec::new(),
            projected_ms: None,
            recovery_ms: None,
            observation_ms: None,
        }
    }

    fn history(runs: Vec<RunState>) -> ScenarioHistory {
        let runs: Vec<(String, RunState)> = runs
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i.to_string(), r))
            .collect();
        scenario_history(&runs, "s", DateTime::<Utc>::UNIX_EPOCH)
    }

    /// MTTR is over real runs that recovered, each up to where service was restored: a failed
    /// run's elapsed is when it gave up, and a drill's clock runs at drill speed.
    #[test]
    fn mttr_averages_real_recoveries_to_their_restore_and_leaves_out_failed_runs() {
        let restored_at_15m = RunFinished {
            recovery_ms: Some(900_000),
            observation_ms: Some(300_000),
            ..ended(RunStatus::Succeeded, 1_200_000)
        };
        let h = history(vec![
            run(Mode::Real, Some(ended(RunStatus::Succeeded, 600_000))),
            run(Mode::Real, Some(restored_at_15m)),
            run(Mode::Real, Some(ended(RunStatus::Failed, 60_000))),
            run(Mode::Drill, Some(ended(RunStatus::Succeeded, 1_000))),
        ]);
        assert_eq!(h.mttr_s, Some(750.0));
        assert_eq!((h.mttr_runs, h.mttr_left_out), (2, 1));
    }

    /// The RTO figures count recoveries only, a drill judged on what a real run projects;
    /// dry-runs are counted as runs and in no figure, unfinished runs in none either.
    #[test]
    fn rto_figures_count_recoveries_only_and_judge_a_drill_on_its_projection() {
        let drill_projected_40m = RunFinished {
            projected_ms: Some(2_400_000),
            ..ended(RunStatus::Succeeded, 2_000)
        };
        let h = history(vec![
            run(Mode::Real, Some(ended(RunStatus::Succeeded, 600_000))),
            run(Mode::Real, Some(ended(RunStatus::Succeeded, 900_000))),
            run(Mode::Drill, Some(drill_projected_40m)),
            run(Mode::Real, Some(ended(RunStatus::Failed, 60_000))),
            run(Mode::DryRun, Some(ended(RunStatus::Succeeded, 5_000))),
            run(Mode::Real, None),
        ]);
        let runs: Vec<(&str, usize)> = h.runs.iter().map(|(m, n)| (m.as_str(), *n)).collect();
        assert_eq!(runs, [("drill", 1), ("dry-run", 1), ("real", 4)]);
        assert_eq!(
            (h.finished, h.recoveries, h.not_recovered, h.unfinished),
            (4, 3, 1, 1)
        );
        assert_eq!(h.success_rate, Some(0.75));
        assert_eq!(
            (h.rto_p50_s, h.rto_p90_s, h.rto_max_s),
            (Some(900.0), Some(2400.0), Some(2400.0))
        );
        // The drill took 2 s and still missed: a real run would have taken 40 minutes.
        assert_eq!(h.rto_met_share, Some(2.0 / 3.0));
        assert_eq!(h.rto_target_s, 1800.0);
    }

    /// A failed run's early end is no recovery: with nothing but failures there are no RTO
    /// figures and no MTTR, rather than a fast one.
    #[test]
    fn a_scenario_that_never_recovered_has_no_rto_figures_and_no_mttr() {
        let h = history(vec![
            run(Mode::Real, Some(ended(RunStatus::Failed, 60_000))),
            run(Mode::Drill, Some(ended(RunStatus::Failed, 1_000))),
        ]);
        assert_eq!((h.recoveries, h.not_recovered), (0, 2));
        assert_eq!(h.success_rate, Some(0.0));
        assert_eq!(
            (h.rto_p50_s, h.rto_max_s, h.rto_met_share),
            (None, None, None)
        );
        assert_eq!((h.mttr_s, h.mttr_runs, h.mttr_left_out), (None, 0, 1));
        assert!(h.drill_overdue, "a failed drill proves no recovery");
    }
}
