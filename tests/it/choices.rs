//! What the engine picks for the operator, and what it lets through: which run `last` means,
//! who a gate can be approved by, and the README's tour followed literally — through the real
//! binary.

use crate::support::{Project, runbook, wait_until};

const TYPO_APPROVER: &str = "\
scenario: typo
title: A gate nobody can approve
rto: 1h
roles:
  dba: [alice]
steps:
  - id: go
    budget: 5m
    approval: { prompt: Go?, approvers: [dbas] }
";

/// `approvers: [dbas]` beside the role `dba` passed `check`, and then nobody could approve the
/// gate: a real run would wait there until it timed out.
#[test]
fn a_typod_approver_role_is_an_error_at_check_with_did_you_mean() {
    let out = runbook(&["check"])
        .file("runbooks/typo.yaml", TYPO_APPROVER)
        .run();
    out.code(2)
        .stderr_has(
            "approval `go` names approver `dbas`, which is neither a role nor a person of a role",
        )
        .stderr_has("[runbooks/typo.yaml:9:42]")
        .stderr_has("did you mean `dba`?")
        .stderr_has("checked 1 runbook: 1 error");
}

/// A person of a role may be named directly; a name nobody holds may not.
#[test]
fn an_approver_may_be_a_person_of_a_role_but_not_a_stranger() {
    let person = TYPO_APPROVER.replace("[dbas]", "[alice, dba]");
    runbook(&["check"])
        .file("runbooks/typo.yaml", &person)
        .run()
        .code(0);
    let stranger = TYPO_APPROVER.replace("[dbas]", "[dba, mallory]");
    runbook(&["check"])
        .file("runbooks/typo.yaml", &stranger)
        .run()
        .code(2)
        .stderr_has("names approver `mallory`, which is neither a role nor a person of a role")
        .stderr_has("name a role (dba) or a person of one, or add it under `roles:`");
}

/// The shipped runbooks name only real roles.
#[test]
fn the_shipped_runbooks_pass_the_approver_check() {
    let p = Project::new().with_repo_runbooks().with_repo_steps();
    let out = p.run(&["check"]);
    out.code(0);
    assert!(!out.stderr.contains("approver"), "{}", out.stderr);
}

const FAILOVER: &str = "\
scenario: failover
title: A failover stopped at its gate
rto: 1h
roles:
  lead: [alice]
steps:
  - { id: prep, budget: 1m, run: echo prep >> effects.txt, drill: run }
  - id: go
    needs: [prep]
    budget: 5m
    approval: { prompt: Fail over?, approvers: [lead], timeout: 1s }
  - { id: act, needs: [go], budget: 1m, run: echo act >> effects.txt, drill: run }
";

/// A real failover stopped at its gate, then a colleague's dry-run of it: the newest run is
/// the dry-run.
fn stopped_failover_then_a_dry_run() -> (Project, String, String) {
    let p = Project::with_runbook("failover", FAILOVER);
    let real = p.run_scenario(&[]);
    real.code(3);
    let dry = p.run_scenario(&["--dry-run"]);
    dry.code(0);
    let (real, dry) = (real.id(), dry.id());
    assert_ne!(real, dry);
    (p, real, dry)
}

/// After a half-finished real failover was stopped, `runbook resume last` picked a colleague's
/// newer dry-run and advised starting a new failover.
#[test]
fn resume_last_picks_the_stopped_real_run_not_a_newer_dry_run() {
    let (p, real, _dry) = stopped_failover_then_a_dry_run();
    let out = p.run(&["resume", "last"]);
    out.stderr_has(&format!("resuming run `{real}` (failover, real, started "))
        .stderr_has("the newest run that is neither finished nor a dry-run");
    assert!(
        !out.stderr.contains("dry-runs are not resumed"),
        "{}",
        out.stderr
    );
    // It did resume that run: the gate asked again (and timed out again: nobody answered).
    out.code(3);
    assert_eq!(p.events_of(&real, "run_resumed").len(), 1);
}

/// `resume` needed a RUN argument; without one it now means `last`.
#[test]
fn resume_without_a_run_resumes_the_newest_resumable_run() {
    let (p, real, _dry) = stopped_failover_then_a_dry_run();
    let out = p.run(&["resume"]);
    out.code(3).stderr_has(&format!("resuming run `{real}`"));
    assert_eq!(p.events_of(&real, "run_resumed").len(), 1);
}

/// With nothing to resume, `resume` says so instead of picking a finished run or a dry-run.
#[test]
fn resume_with_only_dry_runs_says_there_is_nothing_to_resume() {
    let p = Project::with_runbook("failover", FAILOVER);
    p.run_scenario(&["--dry-run"]).code(0);
    p.run(&["resume"])
        .code(2)
        .stderr_has("error: no run to resume (every run there has finished, or is a dry-run");
}

/// `status last` and `report --last` showed a colleague's dry-run, not the real run.
#[test]
fn status_and_report_last_skip_dry_runs_unless_asked() {
    let (p, real, dry) = stopped_failover_then_a_dry_run();
    let (code, out, _) = p.run(&["status", "last"]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("run {real}: failover")), "{out}");
    let (_, out, _) = p.run(&["status", "last", "--dry-run"]).parts();
    assert!(out.starts_with(&format!("run {dry}: failover")), "{out}");

    let (code, out, err) = p.run(&["report", "--last", "--format", "json"]).parts();
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["run_id"], real.as_str(), "{out}");
    let (_, out, _) = p
        .run(&["report", "--last", "--dry-run", "--format", "json"])
        .parts();
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["run_id"], dry.as_str(), "{out}");
}

/// A stopped real run dropped out of sight behind newer runs: every `status` names it, the
/// listing and any single run's view, until it is resumed or finished.
#[test]
fn every_status_names_a_stopped_real_run_until_it_finishes() {
    let (p, real, dry) = stopped_failover_then_a_dry_run();
    let named = format!("not finished: run `{real}` (failover) stopped at +");
    let resume = format!("`runbook resume {real}` continues it");
    for args in [vec!["status"], vec!["status", dry.as_str()]] {
        let (code, out, _) = p.run(&args).parts();
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains(&named) && out.contains(&resume),
            "{args:?}:\n{out}"
        );
        assert!(out.contains("with 1 of 3 steps done"), "{out}");
    }
    // Its own view says it in its state line, once.
    let (_, out, _) = p.run(&["status", &real]).parts();
    assert!(!out.contains(&named), "{out}");
    assert!(
        out.contains(&format!("`runbook resume {real}` continues the run")),
        "{out}"
    );

    // Finished, it is named no more.
    p.run(&["resume", &real, "--yes", "--as", "alice"]).code(0);
    assert_eq!(p.read("effects.txt"), "prep\nact\n");
    let (_, out, _) = p.run(&["status"]).parts();
    assert!(!out.contains("not finished"), "{out}");
}

/// The pages of region-failure's failover gate in a run's journal: (elapsed ms, channel).
/// (Its other gate, accept-data-loss, pages the DevOps lead and the CTO at once: a loss past
/// the RPO is theirs to accept. A dry-run takes it, as the worst case.)
fn gate_pages(p: &Project, run: &str) -> Vec<(u64, String)> {
    p.events_of(run, "escalated")
        .iter()
        .filter(|e| e["data"]["reason"] == "approval_requested")
        .filter(|e| {
            e["data"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("gate `approve-failover`"))
        })
        .map(|e| {
            (
                e["elapsed_ms"].as_u64().unwrap(),
                e["data"]["channel"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// region-failure's gate paged the CTO at once, against the plan's escalation path (on-call
/// 0–30, DevOps lead 30–60, CTO 60+). Its dry-run gate waits from +12m30s (after the
/// restore path's search and acceptance, which a dry-run takes) to +17m30s: only on-call's
/// time has come. The schedule pages the others at their times while the recovery lasts.
#[test]
fn region_failures_gate_pages_only_the_roles_whose_escalation_time_has_come() {
    let p = Project::new().with_repo_runbooks().with_repo_steps();
    let out = p.run(&["run", "region-failure", "--dry-run"]);
    out.code(0);
    let run = out.id();
    assert_eq!(gate_pages(&p, &run), vec![(750_000, "on-call".to_owned())]);
    // The schedule still reaches the others at their times.
    let schedule: Vec<(u64, String)> = p
        .events_of(&run, "escalated")
        .iter()
        .filter(|e| e["data"]["reason"] == "schedule")
        .map(|e| {
            (
                e["elapsed_ms"].as_u64().unwrap(),
                e["data"]["channel"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Until service is restored (verify-services, the runbook's `rto_ends_at`): the CTO's
    // hour comes during the observation after it, when there is no recovery left to escalate.
    let restored = p.events_of(&run, "run_finished")[0]["data"]["recovery_ms"]
        .as_u64()
        .expect("recovery_ms");
    assert!((1_800_000..3_600_000).contains(&restored), "{restored}");
    assert_eq!(
        schedule,
        vec![
            (0, "on-call".to_owned()),
            (1_800_000, "devops-lead".to_owned())
        ]
    );
}

/// A gate's own `page_after:` pages a role that long into its wait.
#[test]
fn page_after_on_region_failures_gate_pages_the_cto_three_minutes_in() {
    let p = Project::new().with_repo_runbooks().with_repo_steps();
    let yaml = p.read("runbooks/region-failure.yaml");
    let gate = "      approvers: [on-call, devops-lead, cto]\n      timeout: 30m\n";
    assert!(yaml.contains(gate));
    p.write(
        "runbooks/region-failure.yaml",
        &yaml.replace(gate, &format!("{gate}      page_after: {{ cto: 3m }}\n")),
    );
    let out = p.run(&["run", "region-failure", "--dry-run"]);
    out.code(0);
    assert_eq!(
        gate_pages(&p, &out.id()),
        vec![(750_000, "on-call".to_owned()), (930_000, "cto".to_owned())]
    );
}

/// `page_after` names approvers of the gate that are notify channels: anything else would
/// page nobody.
#[test]
fn page_after_naming_no_approver_is_an_error_with_did_you_mean() {
    let yaml = "\
scenario: pager
title: Pages
rto: 1h
roles:
  lead: [alice]
  cto: [carol]
notify:
  cto: echo {{ message }}
steps:
  - id: go
    budget: 5m
    approval: { prompt: Go?, approvers: [lead, cto], page_after: { ctoo: 5m, lead: 1m } }
";
    runbook(&["check"])
        .file("runbooks/pager.yaml", yaml)
        .run()
        .code(2)
        .stderr_has(
            "`page_after.ctoo` of step `go` names `ctoo`, which is not an approver of the gate",
        )
        .stderr_has("did you mean `cto`?")
        .stderr_has("`page_after.lead` of step `go` names `lead`, which is not a notify channel")
        .stderr_has("help: nobody would be paged: declare `lead` under `notify:`")
        .stderr_has("checked 1 runbook: 2 errors");
}

/// The tour's `sh` block: the commands README.md tells a newcomer to run, in order.
fn tour_commands(readme: &str) -> (String, Vec<String>) {
    let section = &readme[readme
        .find("## A five-minute tour")
        .expect("README.md has the tour")..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the tour has a ```sh block");
    let lines = block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(str::to_owned)
        .collect();
    (section.to_owned(), lines)
}

/// Stops the sandbox the tour started, whatever became of the test.
struct SandboxDown(std::path::PathBuf);

impl Drop for SandboxDown {
    fn drop(&mut self) {
        if self.0.join(".sandbox").exists() {
            let _ = std::process::Command::new("examples/sandbox/down.sh")
                .current_dir(&self.0)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Followed literally, the README's tour failed at its drill step (no sandbox, no backup yet;
/// before that, at a `--format json|dot|mermaid` the shell took for pipes), and its next line
/// started a real production failover. Each command of the tour, run in order in a fresh copy
/// of the project, exits as the README says: 0.
#[test]
fn the_readmes_tour_runs_in_order_on_a_fresh_clone() {
    let readme = std::fs::read_to_string(crate::support::repo_root().join("README.md")).unwrap();
    let (section, commands) = tour_commands(&readme);
    assert!(section.contains("each one exits 0"), "{section}");
    // Nothing in the block to paste acts on a real system.
    for c in &commands {
        if c.starts_with("runbook run ") {
            assert!(
                c.contains("--dry-run") || c.contains("--drill") || c.contains("--env local"),
                "the tour's `{c}` would run for real; real-incident commands are not steps of the tour"
            );
        }
    }
    assert!(
        commands
            .iter()
            .any(|c| c.contains("examples/sandbox/up.sh"))
            && commands.iter().any(|c| c.contains("--drill")),
        "{commands:?}"
    );

    // The drill watches the sandbox's health endpoint for a minute.
    let p = Project::new().with_deadline(std::time::Duration::from_secs(600));
    for d in ["runbooks", "steps", "examples"] {
        crate::support::copy_dir(&crate::support::repo_root().join(d), &p.path().join(d));
    }
    let _down = SandboxDown(p.path().to_owned());
    // One shell, as a reader's terminal: the sandbox's `eval` sets what later lines use. It
    // stops at the first command that fails, and writes each exit code down.
    let mut script = String::new();
    for c in &commands {
        script.push_str(&format!(
            "{c}\nrc=$?; echo \"$rc\" >> .tour-rc; [ \"$rc\" = 0 ] || exit \"$rc\"\n"
        ));
    }
    let bin_dir = std::path::Path::new(crate::support::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(p.path())
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // A newcomer has none of the suite's settings: no state folder, no sandbox of its own.
    for (k, _) in std::env::vars() {
        if k.starts_with("PG")
            || k.starts_with("REDIS")
            || k.starts_with("RUNBOOK_")
            || ["SANDBOX_DIR", "APP_HEALTH_URL", "REDISCLI_AUTH"].contains(&k.as_str())
        {
            cmd.env_remove(&k);
        }
    }
    let out = p.run_with(cmd);
    let codes: Vec<String> = p.read(".tour-rc").lines().map(str::to_owned).collect();
    let ran: Vec<(&String, &String)> = commands.iter().zip(codes.iter()).collect();
    assert_eq!(
        codes.len(),
        commands.len(),
        "the tour stopped at `{}` (exit {}); ran {ran:?}\n--- stdout\n{}\n--- stderr\n{}",
        commands.get(codes.len().saturating_sub(1)).unwrap(),
        codes.last().map_or("?", String::as_str),
        out.stdout,
        out.stderr
    );
    assert!(codes.iter().all(|c| c == "0"), "{ran:?}\n{}", out.stderr);
    assert!(p.path().join("review.html").is_file());
    assert!(p.path().join("evidence.tar.gz").is_file());
    assert!(
        !p.path().join(".sandbox").exists(),
        "the tour stops its sandbox"
    );
}

/// Review of issue 13: with a real run stopped and a colleague's drill stopped after it,
/// plain `resume` resumed the drill. A stopped recovery comes first.
#[test]
fn resume_last_picks_a_stopped_real_run_before_a_newer_stopped_drill() {
    let p = Project::with_runbook(
        "slow",
        "scenario: slow\ntitle: t\nrto: 1h\nsteps:\n  - id: a\n    budget: 1m\n    run: sleep 30\n    drill: run\n",
    );
    let real = p.spawn(&["run", "slow", "--run-id", "real"]);
    wait_until("the real run's step has started", || {
        !p.events_of("real", "step_started").is_empty()
    });
    real.interrupt_and_stop();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let drill = p.spawn(&["run", "slow", "--drill", "--run-id", "drill"]);
    wait_until("the drill's step has started", || {
        !p.events_of("drill", "step_started").is_empty()
    });
    drill.interrupt_and_stop();
    let (_, out, _) = p.run(&["status"]).parts();
    assert!(out.contains("not finished: run `real`"), "{out}");
    assert!(
        out.contains("with 0 of 1 steps done"),
        "an interrupted step is not done: {out}"
    );
    let mut resume = p.spawn(&["resume", "--yes"]);
    wait_until("the resume has journaled", || {
        !p.events_of("real", "run_resumed").is_empty()
    });
    resume.kill().unwrap();
    assert!(p.events_of("drill", "run_resumed").is_empty());
}
