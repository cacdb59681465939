//! `runbook check` and `runbook list`.

use std::path::{Path, PathBuf};

use super::{CliError, exit, report_problems};
use crate::app::error::Said;
use crate::compile::{self, Library, Options};
use crate::diag::Problems;
use crate::format::inventory;
use crate::format::{Kind, load_env, load_runbook};
use crate::project::Project;
use crate::units::fmt_duration;

/// What a file is, by where it lives.
fn kind_of(path: &Path) -> Kind {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let parent = abs
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned());
    let grandparent = abs
        .parent()
        .and_then(Path::parent)
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned());
    match (parent.as_deref(), grandparent.as_deref()) {
        (Some("env"), Some("runbooks")) => Kind::Env,
        (_, Some("steps")) => Kind::Library,
        _ => Kind::Runbook,
    }
}

fn expand(paths: &[PathBuf], project: &Project) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let roots: Vec<PathBuf> = if paths.is_empty() {
        // A project need not have a step library; runbooks/ is looked for (and missed) always.
        let steps = project.steps_dir();
        std::iter::once(project.runbooks_dir())
            .chain(steps.is_dir().then_some(steps))
            .collect()
    } else {
        paths.to_vec()
    };
    for p in roots {
        if p.is_dir() {
            walk(&p, &mut files);
        } else {
            files.push(p);
        }
    }
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

pub fn check(paths: &[PathBuf], strict: bool, env: Option<&str>) -> Result<u8, CliError> {
    let project = Project::current();
    let files = expand(paths, &project);
    if files.is_empty() {
        return Err(CliError::usage(Said::error(
            "nothing to check: no runbooks/ or steps/ here, and no paths given",
        )));
    }
    let mut all = Problems::default();
    // `--env`: the environment whose hosts and groups every `on:` must name.
    let (inventory, env_failed) = match env {
        None => (None, false),
        Some(name) => match check_env(&project, name)? {
            Ok((inv, warnings)) => {
                all.extend(warnings);
                (Some((name, inv)), false)
            }
            Err(p) => {
                all.extend(p);
                (None, true)
            }
        },
    };
    let mut unchecked: Vec<(PathBuf, Vec<String>)> = Vec::new();
    let mut library = Library::new();
    let (mut runbooks, mut steps, mut envs) = (0, 0, 0);
    let mut plans = Vec::new();
    let mut rehearsal_envs = Vec::new();
    for f in &files {
        match kind_of(f) {
            Kind::Runbook => {
                runbooks += 1;
                let (plan, problems) =
                    compile::compile_file(&project, f, &mut library, Options { strict });
                all.extend(problems);
                plans.extend(plan);
                if let Ok(rb) = load_runbook(f) {
                    match &inventory {
                        Some((name, inv)) => {
                            all.extend(compile::on_problems(&rb.doc, &rb.file, inv, name));
                        }
                        None => {
                            let mut names: Vec<String> = Vec::new();
                            for (_, h) in compile::on_names(&rb.doc) {
                                if !names.contains(&h.value) {
                                    names.push(h.value.clone());
                                }
                            }
                            if !names.is_empty() {
                                unchecked.push((f.clone(), names));
                            }
                        }
                    }
                }
            }
            Kind::Library => {
                steps += 1;
                let name = format!(
                    "{}/{}",
                    f.parent()
                        .and_then(|p| p.file_name())
                        .unwrap_or_default()
                        .to_string_lossy(),
                    f.file_stem().unwrap_or_default().to_string_lossy()
                );
                if let Err(p) = compile::library::check_entry(&name, f) {
                    all.extend(p);
                }
            }
            Kind::Env => {
                envs += 1;
                // The `--env` file's problems are said once, when it was loaded above.
                let said = env.is_some_and(|name| same_file(&project.env_file(name), f));
                match load_env(f) {
                    Ok(env) => {
                        if !said {
                            all.extend(inventory::warnings(&env.doc, &env.file));
                        }
                        if env.doc.rehearsal {
                            rehearsal_envs.push(f.clone());
                        }
                    }
                    Err(p) if !said => all.extend(p),
                    Err(_) => {}
                }
            }
        }
    }
    let signers = crate::app::signers::path(&project).is_file();
    all.extend(crate::app::signers::review(&project, &plans));
    report_problems(&all);
    // A drill there runs the dangerous path for real: said before anyone starts one.
    for env in &rehearsal_envs {
        eprintln!(
            "note: {} is a rehearsal environment: a drill there runs for real the steps a drill mocks",
            env.display()
        );
        for plan in &plans {
            let steps = crate::app::run::rehearsed_steps(plan);
            if !steps.is_empty() {
                eprintln!("  {}: {}", plan.scenario, steps.join(", "));
            }
        }
    }
    // Which hosts a name stands for is the environment's to say: without one, say what
    // was left unchecked rather than pass it silently or refuse it.
    say_unchecked(&unchecked, env, env_failed);
    let mut what = Vec::new();
    if runbooks > 0 || steps + envs == 0 {
        what.push(plural(runbooks, "runbook"));
    }
    if steps > 0 {
        what.push(plural(steps, "library step"));
    }
    if envs > 0 {
        what.push(plural(envs, "environment"));
    }
    if signers {
        what.push("allowed_signers".into());
    }
    let (e, w) = (all.errors(), all.warnings());
    if e > 0 {
        eprintln!(
            "checked {}: {}, {}",
            what.join(", "),
            plural(e, "error"),
            plural(w, "warning")
        );
        Ok(exit::USAGE)
    } else {
        let warn = if w > 0 {
            format!(", {}", plural(w, "warning"))
        } else {
            String::new()
        };
        eprintln!("checked {}: ok{warn}", what.join(", "));
        Ok(exit::OK)
    }
}

/// The environment of `check --env NAME`: its inventory and warnings, or its problems (an
/// environment that will not load is not a usage error: its problems are reported with the
/// rest).
fn check_env(
    project: &Project,
    name: &str,
) -> Result<Result<(compile::Inventory, Problems), Problems>, CliError> {
    let path = project.env_file(name);
    if !path.is_file() {
        return Err(CliError::usage(
            Said::error(format!(
                "no environment `{name}` (looked for {})",
                path.display()
            ))
            .help("environments live in runbooks/env/<name>.yaml"),
        ));
    }
    Ok(load_env(&path).map(|loaded| {
        (
            compile::inventory(&loaded.doc),
            inventory::warnings(&loaded.doc, &loaded.file),
        )
    }))
}

/// Which hosts a name stands for is the environment's to say: without one, what was left
/// unchecked is said rather than passed silently or refused.
fn say_unchecked(unchecked: &[(PathBuf, Vec<String>)], env: Option<&str>, env_failed: bool) {
    let why = match env {
        Some(name) if env_failed => format!("environment `{name}` has errors"),
        _ => "pass `--env NAME` to check them against its hosts and groups".to_owned(),
    };
    for (file, names) in unchecked {
        eprintln!(
            "note: {}: `on:` names {} not checked: {why}",
            file.display(),
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn list(state_dir: Option<PathBuf>) -> Result<u8, CliError> {
    let project = Project::current();
    let state = crate::state::StateDir::resolve(state_dir);
    let (runs, _) = crate::report::history::load_runs(&state);
    let now = chrono::Utc::now();
    let files = project.runbook_files();
    if files.is_empty() {
        return Err(CliError::usage(Said::error(format!(
            "no runbooks under {}",
            project.runbooks_dir().display()
        ))));
    }
    let mut library = Library::new();
    let mut rows = vec![[
        "SCENARIO".to_owned(),
        "TITLE".to_owned(),
        "RTO".to_owned(),
        "STEPS".to_owned(),
        "CRITICAL PATH".to_owned(),
        "FITS".to_owned(),
        "LAST DRILL".to_owned(),
        "LAST ATTEMPT".to_owned(),
    ]];
    let mut overdue = Vec::new();
    let mut invalid = 0;
    for f in &files {
        let (plan, problems) = compile::compile_file(&project, f, &mut library, Options::default());
        match plan {
            Some(p) => {
                use crate::report::history::{drill_overdue, last_drill, last_drill_attempt};
                // The schedule counts from the last drill that succeeded; the last attempt,
                // whatever its outcome, is shown beside it.
                let last = last_drill(&runs, &p.scenario);
                let attempt = match last_drill_attempt(&runs, &p.scenario) {
                    Some((t, outcome)) => format!("{} {outcome}", t.format("%Y-%m-%d")),
                    None => "-".into(),
                };
                let late = drill_overdue(last, now);
                if late {
                    overdue.push(p.scenario.clone());
                }
                let drilled = match last {
                    Some(t) => format!(
                        "{}{}",
                        t.format("%Y-%m-%d"),
                        if late { " OVERDUE" } else { "" }
                    ),
                    None => "never (OVERDUE)".into(),
                };
                let fits = if p.critical_path_budget <= p.rto {
                    "fits"
                } else {
                    "OVER"
                };
                rows.push([
                    p.scenario.clone(),
                    p.title.clone(),
                    fmt_duration(p.rto),
                    p.steps.len().to_string(),
                    fmt_duration(p.critical_path_budget),
                    fits.into(),
                    drilled,
                    attempt,
                ])
            }
            None => {
                let stem = f
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                rows.push([
                    stem,
                    "(invalid: see `runbook check`)".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
                if problems.has_errors() {
                    invalid += 1;
                }
            }
        }
    }
    print!("{}", table(&rows));
    if !overdue.is_empty() {
        eprintln!(
            "not drilled in the last {} days (the plan asks for quarterly drills): {}",
            crate::report::history::DRILL_EVERY_DAYS,
            overdue.join(", ")
        );
    }
    if invalid > 0 {
        eprintln!(
            "{} invalid; `runbook check` says why",
            plural(invalid, "runbook")
        );
        return Ok(exit::USAGE);
    }
    Ok(exit::OK)
}

/// Left-aligned columns separated by two spaces.
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
