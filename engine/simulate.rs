//! Monte Carlo over the plan: how likely is the scenario to meet its RTO, and which steps
//! decide it? Step durations are drawn from PERT distributions built from `estimate` (a plain
//! budget counts as ±10% around itself), or from the durations measured in past runs where
//! the history holds at least [`MIN_HISTORY`] of them. Pure and seeded: the same seed gives
//! the same answer.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Pert};

use crate::compile::Plan;
use crate::units::Estimate;

/// Finished runs of a step needed before its measured durations replace the estimate.
pub const MIN_HISTORY: usize = 3;

/// How one step's duration is drawn, in seconds.
#[derive(Clone, Debug)]
pub enum Dist {
    Fixed(f64),
    Pert(Pert<f64>),
    /// Resampled from measured durations (bootstrap).
    Measured(Vec<f64>),
}

impl Dist {
    pub fn from_estimate(e: &Estimate) -> Dist {
        let (min, mode, max) = (
            e.min.as_secs_f64(),
            e.likely.as_secs_f64(),
            e.max.as_secs_f64(),
        );
        match Pert::new(min, max).with_mode(mode) {
            Ok(p) if max > min => Dist::Pert(p),
            _ => Dist::Fixed(mode),
        }
    }

    fn sample(&self, rng: &mut SmallRng) -> f64 {
        match self {
            Dist::Fixed(v) => *v,
            Dist::Pert(p) => p.sample(rng),
            Dist::Measured(v) => {
                let i = (rand::RngExt::random::<u64>(rng) % v.len() as u64) as usize;
                v[i]
            }
        }
    }

    pub fn source(&self) -> &'static str {
        match self {
            Dist::Measured(_) => "history",
            _ => "estimate",
        }
    }
}

/// Each step's distribution: measured history where there is enough of it, else its estimate.
pub fn distributions(plan: &Plan, history: &BTreeMap<String, Vec<Duration>>) -> Vec<Dist> {
    plan.steps
        .iter()
        .map(|s| match history.get(&s.id) {
            Some(h) if h.len() >= MIN_HISTORY => {
                Dist::Measured(h.iter().map(Duration::as_secs_f64).collect())
            }
            _ => Dist::from_estimate(&s.estimate),
        })
        .collect()
}

/// One duration per step, for a sampled dry-run.
pub fn sample_durations(plan: &Plan, seed: u64) -> Vec<Duration> {
    let mut rng = SmallRng::seed_from_u64(seed);
    plan.steps
        .iter()
        .map(|s| {
            Duration::from_secs_f64(Dist::from_estimate(&s.estimate).sample(&mut rng).max(0.0))
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct Simulation {
    pub iterations: usize,
    pub mean_s: f64,
    pub p50_s: f64,
    pub p90_s: f64,
    pub p99_s: f64,
    pub p_meet_rto: f64,
    /// With `rto_ends_at`: the observation after service is restored (the run's end less the
    /// recovery), reported apart: P50 and P90. `None` without it.
    pub observation_p50_s: Option<f64>,
    pub observation_p90_s: Option<f64>,
    /// Per step (plan index): the share of iterations in which it lay on the critical path.
    pub criticality: Vec<f64>,
    pub sources: Vec<&'static str>,
}

/// Runs `n` iterations over the DAG. With `rto_ends_at`, the time measured (and set against
/// the RTO) is the finish of that step: the recovery; the observation after it is apart.
pub fn simulate(plan: &Plan, dists: &[Dist], n: usize, seed: u64) -> Simulation {
    let steps = plan.steps.len();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut totals = Vec::with_capacity(n);
    let mut on_path = vec![0u64; steps];
    let mut finish = vec![0f64; steps];
    let mut pred = vec![usize::MAX; steps];
    let rto = plan.rto.as_secs_f64();
    let mut met = 0usize;
    let mut observations = Vec::new();
    // The `finally:` steps start once every other step has ended: after the main steps.
    let order: Vec<usize> = plan
        .order
        .iter()
        .filter(|&&i| !plan.steps[i].finally)
        .chain(plan.order.iter().filter(|&&i| plan.steps[i].finally))
        .copied()
        .collect();
    // A loop bounded by `max_parallel` runs its instances in turns.
    let waits = crate::compile::waits(&plan.steps);
    for _ in 0..n {
        let mut end = usize::MAX;
        let mut best = f64::NEG_INFINITY;
        let mut main_end = (0.0, usize::MAX);
        for &i in &order {
            let mut start = 0.0;
            pred[i] = usize::MAX;
            if plan.steps[i].finally {
                if main_end.1 == usize::MAX {
                    main_end = (best.max(0.0), end);
                }
                (start, pred[i]) = main_end;
            }
            for &j in &waits[i] {
                if finish[j] > start || pred[i] == usize::MAX && finish[j] >= start {
                    start = finish[j];
                    pred[i] = j;
                }
            }
            // A step with a `when:` runs (the worst case) unless it gives its `likelihood`.
            let runs = match plan.steps[i].condition.as_ref().and_then(|c| c.likelihood) {
                Some(p) => rand::RngExt::random::<f64>(&mut rng) < p,
                None => true,
            };
            finish[i] = start
                + if runs {
                    dists[i].sample(&mut rng).max(0.0)
                } else {
                    0.0
                };
            if finish[i] > best {
                best = finish[i];
                end = i;
            }
        }
        let run_end = if steps == 0 { 0.0 } else { best };
        let total = match plan.rto_ends_at {
            Some(r) => {
                observations.push((run_end - finish[r]).max(0.0));
                end = r;
                finish[r]
            }
            None => run_end,
        };
        if total <= rto {
            met += 1;
        }
        totals.push(total);
        let mut at = end;
        while at != usize::MAX {
            on_path[at] += 1;
            at = pred[at];
        }
    }
    totals.sort_by(|a, b| a.total_cmp(b));
    observations.sort_by(|a, b| a.total_cmp(b));
    let pct_of = |v: &[f64], p: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        let idx = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[idx]
    };
    let pct = |p: f64| pct_of(&totals, p);
    let observed = plan.rto_ends_at.is_some();
    let mean = if n == 0 {
        0.0
    } else {
        totals.iter().sum::<f64>() / n as f64
    };
    Simulation {
        iterations: n,
        mean_s: mean,
        p50_s: pct(0.50),
        p90_s: pct(0.90),
        p99_s: pct(0.99),
        p_meet_rto: if n == 0 { 0.0 } else { met as f64 / n as f64 },
        observation_p50_s: observed.then(|| pct_of(&observations, 0.50)),
        observation_p90_s: observed.then(|| pct_of(&observations, 0.90)),
        criticality: on_path
            .iter()
            .map(|&c| if n == 0 { 0.0 } else { c as f64 / n as f64 })
            .collect(),
        sources: dists.iter().map(Dist::source).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pert_mean(min: f64, mode: f64, max: f64) -> f64 {
        (min + 4.0 * mode + max) / 6.0
    }

    fn plan_of(estimates: &[(u64, u64, u64)], chain: bool, rto: u64) -> Plan {
        let steps = estimates
            .iter()
            .enumerate()
            .map(|(i, &(a, b, c))| crate::compile::Step {
                id: format!("s{i}"),
                at: String::new(),
                title: String::new(),
                description: None,
                needs: if chain && i > 0 { vec![i - 1] } else { vec![] },
                budget: Duration::from_secs(c),
                estimate: Estimate {
                    min: Duration::from_secs(a),
                    likely: Duration::from_secs(b),
                    max: Duration::from_secs(c),
                },
                timeout: None,
                kind: crate::compile::StepKind::Command(crate::compile::Command {
                    template: "true".into(),
                    inputs: None,
                }),
                drill: crate::compile::Drill::Run,
                retries: 0,
                backoff: crate::compile::Backoff::fixed(Duration::ZERO),
                poll: None,
                on_failure: Default::default(),
                idempotent: false,
                on: vec![],
                fanout: Default::default(),
                env: Default::default(),
                uses: None,
                condition: None,
                finally: false,
                instance: None,
                call: None,
            })
            .collect::<Vec<_>>();
        let needs: Vec<Vec<usize>> = steps.iter().map(|s| s.needs.clone()).collect();
        Plan {
            scenario: "t".into(),
            title: "t".into(),
            description: None,
            rto: Duration::from_secs(rto),
            rpo: None,
            roles: Default::default(),
            vars: Default::default(),
            secrets: vec![],
            notify: Default::default(),
            escalation: vec![],
            order: crate::dag::topo_order(&needs),
            steps,
            rto_ends_at: None,
            critical_path: vec![],
            critical_path_budget: Duration::ZERO,
            path: "t.yaml".into(),
            root: ".".into(),
            sha256: String::new(),
            library: BTreeMap::new(),
            calls: vec![],
            lists: BTreeMap::new(),
            output_loops: BTreeMap::new(),
        }
    }

    #[test]
    fn a_chains_mean_is_the_sum_of_pert_means() {
        let est = [(60, 300, 900), (600, 900, 3600), (300, 600, 600)];
        let plan = plan_of(&est, true, 10_000);
        let dists = distributions(&plan, &BTreeMap::new());
        let sim = simulate(&plan, &dists, 100_000, 7);
        let expected: f64 = est
            .iter()
            .map(|&(a, b, c)| pert_mean(a as f64, b as f64, c as f64))
            .sum();
        assert!(
            (sim.mean_s - expected).abs() / expected < 0.01,
            "{} vs {expected}",
            sim.mean_s
        );
        // Every step of a chain is always critical.
        assert!(sim.criticality.iter().all(|&c| c == 1.0));
    }

    #[test]
    fn two_parallel_symmetric_steps_meet_their_mode_a_quarter_of_the_time() {
        // P(max(X, Y) <= mode) = P(X <= mode)^2 = 0.25 for symmetric X, Y.
        let plan = plan_of(&[(100, 200, 300), (100, 200, 300)], false, 200);
        let dists = distributions(&plan, &BTreeMap::new());
        let sim = simulate(&plan, &dists, 100_000, 11);
        assert!((sim.p_meet_rto - 0.25).abs() < 0.01, "{}", sim.p_meet_rto);
        assert!((sim.p50_s - 200.0 * 1.0).abs() > 0.0);
        // Each is critical about half of the time.
        assert!((sim.criticality[0] - 0.5).abs() < 0.01);
    }

    /// A conditional step counts always (the worst case) unless it gives its likelihood: then
    /// it adds its time to that share of the runs.
    #[test]
    fn a_conditional_step_runs_in_its_likelihood_of_the_runs() {
        let est = [(100, 100, 100), (1000, 1000, 1000)];
        let mut plan = plan_of(&est, true, 1050);
        plan.steps[1].condition = Some(crate::compile::Condition {
            expr: "x".into(),
            likelihood: None,
        });
        let dists = distributions(&plan, &BTreeMap::new());
        let worst = simulate(&plan, &dists, 10_000, 5);
        assert_eq!(worst.p_meet_rto, 0.0);
        plan.steps[1].condition = Some(crate::compile::Condition {
            expr: "x".into(),
            likelihood: Some(0.3),
        });
        let likely = simulate(&plan, &dists, 10_000, 5);
        assert!(
            (likely.p_meet_rto - 0.7).abs() < 0.02,
            "{}",
            likely.p_meet_rto
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_answer() {
        let plan = plan_of(&[(1, 2, 9), (3, 4, 5)], false, 6);
        let dists = distributions(&plan, &BTreeMap::new());
        let a = simulate(&plan, &dists, 1000, 3);
        let b = simulate(&plan, &dists, 1000, 3);
        assert_eq!(
            (a.p50_s, a.p99_s, a.p_meet_rto),
            (b.p50_s, b.p99_s, b.p_meet_rto)
        );
        let c = simulate(&plan, &dists, 1000, 4);
        assert_ne!(a.p50_s, c.p50_s);
    }

    #[test]
    fn measured_history_replaces_the_estimate_from_three_runs() {
        let plan = plan_of(&[(1, 2, 3)], false, 10);
        let two = BTreeMap::from([("s0".to_owned(), vec![Duration::from_secs(7); 2])]);
        assert_eq!(distributions(&plan, &two)[0].source(), "estimate");
        let three = BTreeMap::from([("s0".to_owned(), vec![Duration::from_secs(7); 3])]);
        let d = distributions(&plan, &three);
        let sim = simulate(&plan, &d, 100, 1);
        assert_eq!(sim.p50_s, 7.0);
    }
}
