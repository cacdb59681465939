//! `runbook plan`: the compiled plan as text, JSON, Graphviz dot or Mermaid.

use serde_json::json;

use super::{CliError, exit, report_problems};
use crate::app::run::load_plan;
use crate::cli::PlanFormat;
use crate::compile::{self, Plan, StepKind};
use crate::project::Project;
use crate::units::{fmt_duration, secs};

/// `plan --drill [--env ENV]`: what each step does in a drill there.
#[derive(Clone, Copy, Debug, Default)]
pub struct DrillView {
    pub drill: bool,
    /// The environment is a rehearsal one: the steps a drill mocks run for real.
    pub rehearsal: bool,
}

pub fn plan(
    scenario: &str,
    format: PlanFormat,
    drill: bool,
    env: Option<&str>,
) -> Result<u8, CliError> {
    let (plan, warnings) = load_plan(scenario)?;
    report_problems(&warnings);
    let project = Project::at(plan.root.clone());
    let env = crate::app::run::load_environment(&project, env)?;
    let view = DrillView {
        drill,
        rehearsal: drill && env.rehearsal,
    };
    let out = match format {
        PlanFormat::Text => text(&plan) + &drill_text(&plan, view),
        PlanFormat::Json => {
            let mut v = json(&plan);
            if view.drill {
                v["drill"] = drill_json(&plan, view);
            }
            serde_json::to_string_pretty(&v).expect("json") + "\n"
        }
        PlanFormat::Dot => dot(&plan),
        PlanFormat::Mermaid => mermaid(&plan),
    };
    print!("{out}");
    Ok(exit::OK)
}

/// `plan --simulate N`: Monte Carlo over the DAG, with measured history where there is enough.
pub fn simulate(
    scenario: &str,
    format: PlanFormat,
    n: usize,
    seed: u64,
    state_dir: Option<std::path::PathBuf>,
) -> Result<u8, CliError> {
    let (plan, warnings) = load_plan(scenario)?;
    report_problems(&warnings);
    let state = crate::state::StateDir::resolve(state_dir);
    let (runs, _) = crate::report::history::load_runs(&state);
    let history = crate::report::history::step_durations(&runs, &plan.scenario);
    let dists = crate::simulate::distributions(&plan, &history);
    let sim = crate::simulate::simulate(&plan, &dists, n, seed);
    let mut crit: Vec<(usize, f64)> = sim.criticality.iter().copied().enumerate().collect();
    crit.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let d = |s: f64| fmt_duration(std::time::Duration::from_secs_f64(s.max(0.0)));
    match format {
        PlanFormat::Json => {
            let v = json!({
                "scenario": plan.scenario,
                "iterations": n,
                "seed": seed,
                "rto_s": secs(plan.rto),
                "rto_ends_at": plan.rto_ends_at.map(|i| plan.steps[i].id.clone()),
                "observation_p50_s": sim.observation_p50_s,
                "observation_p90_s": sim.observation_p90_s,
                "mean_s": sim.mean_s,
                "p50_s": sim.p50_s,
                "p90_s": sim.p90_s,
                "p99_s": sim.p99_s,
                "p_meet_rto": sim.p_meet_rto,
                "criticality": crit.iter().map(|&(i, c)| json!({
                    "id": plan.steps[i].id,
                    "index": c,
                    "source": sim.sources[i],
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        _ => {
            println!("{}: {} simulations (seed {seed})", plan.scenario, n);
            let at = plan
                .rto_ends_at
                .map(|i| format!(", measured at {}", plan.steps[i].id))
                .unwrap_or_default();
            println!(
                "P(meet the RTO of {}{at}) = {:.1}%",
                fmt_duration(plan.rto),
                sim.p_meet_rto * 100.0
            );
            println!(
                "{}P50 {}   P90 {}   P99 {}   mean {}",
                if plan.rto_ends_at.is_some() {
                    "recovery: "
                } else {
                    ""
                },
                d(sim.p50_s),
                d(sim.p90_s),
                d(sim.p99_s),
                d(sim.mean_s)
            );
            if let (Some(p50), Some(p90)) = (sim.observation_p50_s, sim.observation_p90_s) {
                println!(
                    "observation after it (not counted against the RTO): P50 {}   P90 {}",
                    d(p50),
                    d(p90)
                );
            }
            println!(
                "\ncriticality (share of simulations in which the step was on the critical path):"
            );
            let w = plan.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
            for (i, c) in crit {
                println!(
                    "  {:<w$}  {:>5.1}%  ({})",
                    plan.steps[i].id,
                    c * 100.0,
                    sim.sources[i]
                );
            }
        }
    }
    Ok(exit::OK)
}

/// Whether each step is on the critical path (a lookup per step, not a scan of the path).
fn on_critical_path(plan: &Plan) -> Vec<bool> {
    let mut on = vec![false; plan.steps.len()];
    for &i in &plan.critical_path {
        on[i] = true;
    }
    on
}

/// Stage of each step: 1 + the highest stage among its needs.
pub fn stages(plan: &Plan) -> Vec<usize> {
    let needs: Vec<&[usize]> = plan.steps.iter().map(|s| s.needs.as_slice()).collect();
    crate::dag::stages(&needs, &plan.order)
}

fn kind(plan: &Plan, i: usize) -> String {
    let s = &plan.steps[i];
    let kind = match &s.kind {
        StepKind::Approval(a) if a.manual.is_some() => {
            let items = a.manual.as_ref().map(|m| m.checklist.join(", "));
            format!(
                "manual: {}; confirm: {}",
                a.approvers.join(", "),
                items.unwrap_or_default()
            )
        }
        StepKind::Approval(a) if a.input.is_some() => {
            format!("input: {}", a.approvers.join(", "))
        }
        StepKind::Approval(a) => format!("gate: {}", a.approvers.join(", ")),
        StepKind::Command(_) => match &s.uses {
            Some(u) => format!("uses {u}"),
            None => "run".into(),
        },
    };
    match &s.condition {
        Some(c) => format!("{kind}; when {}{}", c.expr, likelihood_words(c)),
        None => kind,
    }
}

/// A conditional step's odds as the simulation takes them.
fn likelihood_words(c: &compile::Condition) -> String {
    match c.likelihood {
        Some(p) => format!(", likelihood {p}"),
        None => ", counted as running".into(),
    }
}

fn verdict(plan: &Plan) -> String {
    if plan.critical_path_budget <= plan.rto {
        format!(
            "fits the RTO of {} with {} to spare",
            fmt_duration(plan.rto),
            fmt_duration(plan.rto - plan.critical_path_budget)
        )
    } else {
        format!(
            "OVER the RTO of {} by {}",
            fmt_duration(plan.rto),
            fmt_duration(plan.critical_path_budget - plan.rto)
        )
    }
}

pub fn text(plan: &Plan) -> String {
    let stage = stages(plan);
    let on_path = on_critical_path(plan);
    // The `finally:` steps are listed apart, after the stages.
    let main_stages = (0..plan.steps.len())
        .filter(|&i| !plan.steps[i].finally)
        .map(|i| stage[i])
        .max()
        .unwrap_or(0);
    let mut out = format!("{}: {}\n", plan.scenario, plan.title);
    let rpo = plan
        .rpo
        .map(|r| format!(", RPO {}", fmt_duration(r)))
        .unwrap_or_default();
    out.push_str(&format!(
        "RTO {}{rpo}; {} steps in {} stages\n",
        fmt_duration(plan.rto),
        plan.steps.len(),
        main_stages
    ));
    out.push_str(&list_loops_text(plan));
    let id_w = plan.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
    for st in 1..=main_stages {
        out.push_str(&format!("\nstage {st}\n"));
        for &i in &plan.order {
            if stage[i] != st || plan.steps[i].finally {
                continue;
            }
            let s = &plan.steps[i];
            let mark = if on_path[i] { '*' } else { ' ' };
            out.push_str(&format!(
                "  {mark} {:<id_w$}  {:>7}  {}  [{}]\n",
                s.id,
                fmt_duration(s.budget),
                s.title,
                kind(plan, i)
            ));
        }
    }
    let names: Vec<&str> = plan
        .critical_path
        .iter()
        .map(|&i| plan.steps[i].id.as_str())
        .collect();
    out.push_str(&format!(
        "\ncritical path (*): {} = {}{}\n{}\n",
        names.join(" → "),
        fmt_duration(plan.critical_path_budget),
        plan.rto_ends_at
            .map(|i| format!(
                " (to {}, where service is restored and the RTO ends)",
                plan.steps[i].id
            ))
            .unwrap_or_default(),
        verdict(plan)
    ));
    out.push_str(&finally_text(plan, id_w));
    out.push_str(&calls_text(plan));
    let observation: Vec<usize> = plan
        .observation_steps()
        .into_iter()
        .filter(|&i| !plan.steps[i].finally)
        .collect();
    if let (Some(end), false) = (plan.rto_ends_at, observation.is_empty()) {
        out.push_str(&format!(
            "observation after {} (not counted against the RTO):\n",
            plan.steps[end].id
        ));
        for i in observation {
            let s = &plan.steps[i];
            out.push_str(&format!(
                "    {:<id_w$}  {:>7}  {}\n",
                s.id,
                fmt_duration(s.budget),
                s.title
            ));
        }
    }
    out
}

/// The loops over list variables: their instances are the defaults' here, and the run's
/// values (`--var regions=a,b`, the environment file) decide them when it starts.
fn list_loops_text(plan: &Plan) -> String {
    let mut out = String::new();
    for (var, loops) in &plan.lists {
        let items = crate::format::vars::split(plan.vars.get(var).map_or("", String::as_str));
        for step in loops {
            out.push_str(&format!(
                "{step}: one per item of {var} (shown: its default, {}; `--var {var}=a,b` or the environment sets others)\n",
                items.join(", ")
            ));
        }
    }
    for (step, l) in &plan.output_loops {
        out.push_str(&format!(
            "{step}: one per item of {} (known once `{}` has finished; counted here as one instance)\n",
            l.source(),
            l.from
        ));
    }
    out
}

/// The `finally:` steps, after the stages: cleanup, run once every other step has ended.
fn finally_text(plan: &Plan, id_w: usize) -> String {
    let mut out = String::new();
    let on_path = on_critical_path(plan);
    for &i in plan.order.iter().filter(|&&i| plan.steps[i].finally) {
        if out.is_empty() {
            out.push_str("finally (once every other step has ended, whatever its outcome):\n");
        }
        let s = &plan.steps[i];
        let mark = if on_path[i] { '*' } else { ' ' };
        out.push_str(&format!(
            "  {mark} {:<id_w$}  {:>7}  {}  [{}]\n",
            s.id,
            fmt_duration(s.budget),
            s.title,
            kind(plan, i)
        ));
    }
    out
}

/// The called runbooks: each group's budget, and its steps under the call.
fn calls_text(plan: &Plan) -> String {
    let mut out = String::new();
    for c in &plan.calls {
        if out.is_empty() {
            out.push_str(
                "calls (a group's budget runs from its first step's start to its last step's end):
",
            );
        }
        out.push_str(&format!(
            "  {}  {}  runbook {}: {}
",
            c.id,
            fmt_duration(c.budget),
            c.runbook,
            c.title
        ));
        for &i in &c.steps {
            out.push_str(&format!(
                "      {}
",
                plan.steps[i].id
            ));
        }
    }
    out
}

/// What a step does in a drill, in words; in a rehearsal environment a mocked step's real
/// command runs.
fn in_drill(step: &compile::Step, view: DrillView) -> &'static str {
    use compile::Drill;
    if step.is_gate() {
        return "gate";
    }
    match &step.drill {
        Drill::Mock if view.rehearsal => "run for real (rehearsal)",
        Drill::Mock => "mock",
        Drill::Run => "run",
        Drill::Skip => "skip",
        Drill::Command { .. } => "drill command",
        Drill::With(_) => "drill inputs",
    }
}

/// `plan --drill`: each step's drill behaviour; in a rehearsal environment, the steps that run
/// for real where another drill mocks them.
pub fn drill_text(plan: &Plan, view: DrillView) -> String {
    if !view.drill {
        return String::new();
    }
    let rehearsed = crate::app::run::rehearsed_steps(plan);
    let mut out = if view.rehearsal {
        format!(
            "\nin a drill here ({}):\n",
            crate::app::run::rehearsal_header(plan)
        )
    } else if rehearsed.is_empty() {
        "\nin a drill:\n".to_owned()
    } else {
        "\nin a drill (a rehearsal environment would run the mocked steps for real):\n".to_owned()
    };
    let id_w = plan.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
    for &i in &plan.order {
        let s = &plan.steps[i];
        out.push_str(&format!("  {:<id_w$}  {}\n", s.id, in_drill(s, view)));
    }
    out
}

fn drill_json(plan: &Plan, view: DrillView) -> serde_json::Value {
    json!({
        "rehearsal": view.rehearsal,
        "run_for_real": if view.rehearsal { crate::app::run::rehearsed_steps(plan) } else { Vec::new() },
        "steps": plan.order.iter().map(|&i| json!({
            "id": plan.steps[i].id,
            "in_drill": in_drill(&plan.steps[i], view),
        })).collect::<Vec<_>>(),
    })
}

pub fn json(plan: &Plan) -> serde_json::Value {
    let stage = stages(plan);
    let on_path = on_critical_path(plan);
    let steps: Vec<serde_json::Value> = plan
        .order
        .iter()
        .map(|&i| {
            let s = &plan.steps[i];
            let (kind, approvers) = match &s.kind {
                StepKind::Approval(a) if a.manual.is_some() => {
                    ("manual", Some(a.approvers.clone()))
                }
                StepKind::Approval(a) if a.input.is_some() => {
                    ("input", Some(a.approvers.clone()))
                }
                StepKind::Approval(a) => ("approval", Some(a.approvers.clone())),
                StepKind::Command(_) => ("command", None),
            };
            let mut step = json!({
                "id": s.id,
                "title": s.title,
                "kind": kind,
                "uses": s.uses,
                "needs": s.needs.iter().map(|&j| plan.steps[j].id.clone()).collect::<Vec<_>>(),
                "stage": stage[i],
                "budget_s": secs(s.budget),
                "estimate": { "min_s": secs(s.estimate.min), "likely_s": secs(s.estimate.likely), "max_s": secs(s.estimate.max) },
                "timeout_s": s.timeout.map(secs),
                "drill": s.drill.label(),
                "critical": on_path[i],
                "approvers": approvers,
                "on": s.on,
            });
            // Only a conditional step has `when`, and only a cleanup step `finally`: the plan of
            // every other runbook is as it was.
            if let Some(c) = &s.condition {
                step["when"] = json!({"expr": c.expr, "likelihood": c.likelihood});
            }
            if s.finally {
                step["finally"] = json!(true);
            }
            step
        })
        .collect();
    let mut v = json!({
        "scenario": plan.scenario,
        "title": plan.title,
        "rto_s": secs(plan.rto),
        "rpo_s": plan.rpo.map(secs),
        "critical_path": plan.critical_path.iter().map(|&i| plan.steps[i].id.clone()).collect::<Vec<_>>(),
        "critical_path_s": secs(plan.critical_path_budget),
        "rto_ends_at": plan.rto_ends_at.map(|i| plan.steps[i].id.clone()),
        "observation": plan.observation_steps().iter().map(|&i| plan.steps[i].id.clone()).collect::<Vec<_>>(),
        "fits_rto": plan.critical_path_budget <= plan.rto,
        "escalation": plan.escalation.iter().map(|e| json!({"after_s": secs(e.after), "notify": e.channel})).collect::<Vec<_>>(),
        "steps": steps,
    });
    // Only a runbook that calls others has `calls`: every other plan is as it was.
    if !plan.calls.is_empty() {
        v["calls"] = plan
            .calls
            .iter()
            .map(|c| json!({"id": c.id, "runbook": c.runbook, "title": c.title, "budget_s": secs(c.budget), "steps": c.steps.iter().map(|&i| plan.steps[i].id.clone()).collect::<Vec<_>>()}))
            .collect();
    }
    v
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn dot(plan: &Plan) -> String {
    let on_path = on_critical_path(plan);
    let crit = |i: usize| on_path[i];
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  label=\"{} (RTO {}, critical path {})\";\n  node [shape=box, style=rounded];\n",
        escape(&plan.scenario),
        escape(&plan.title),
        fmt_duration(plan.rto),
        fmt_duration(plan.critical_path_budget)
    );
    for &i in &plan.order {
        let s = &plan.steps[i];
        let shape = if s.is_gate() { ", shape=diamond" } else { "" };
        let color = if crit(i) {
            ", color=red, penwidth=2"
        } else {
            ""
        };
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\\n{}\"{shape}{color}];\n",
            escape(&s.id),
            escape(&s.id),
            fmt_duration(s.budget)
        ));
    }
    for &i in &plan.order {
        for &j in &plan.steps[i].needs {
            let color = if crit(i) && crit(j) {
                " [color=red, penwidth=2]"
            } else {
                ""
            };
            out.push_str(&format!(
                "  \"{}\" -> \"{}\"{color};\n",
                escape(&plan.steps[j].id),
                escape(&plan.steps[i].id)
            ));
        }
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(plan: &Plan) -> String {
    let on_path = on_critical_path(plan);
    let crit = |i: usize| on_path[i];
    let mut out = String::from("flowchart TD\n");
    for &i in &plan.order {
        let s = &plan.steps[i];
        let label = format!("{}<br/>{}", s.id, fmt_duration(s.budget)).replace('"', "'");
        if s.is_gate() {
            out.push_str(&format!("  s{i}{{\"{label}\"}}\n"));
        } else {
            out.push_str(&format!("  s{i}[\"{label}\"]\n"));
        }
    }
    for &i in &plan.order {
        for &j in &plan.steps[i].needs {
            out.push_str(&format!("  s{j} --> s{i}\n"));
        }
    }
    out.push_str("  classDef critical stroke:#d00,stroke-width:3px\n");
    let c: Vec<String> = (0..plan.steps.len())
        .filter(|&i| crit(i))
        .map(|i| format!("s{i}"))
        .collect();
    if !c.is_empty() {
        out.push_str(&format!("  class {} critical\n", c.join(",")));
    }
    out
}
