//! Drills, dry-runs on the virtual clock, Monte Carlo, and the reports made from journals —
//! through the real binary.

use std::time::{Duration, Instant};

use crate::support::{Project, repo_root, report_step as step};
use serde_json::Value;

const DRILL: &str = r#"scenario: drill
title: Every kind of drill variant
rto: 1h
steps:
  - id: safe
    budget: 10s
    run: echo "mode=$RUNBOOK_MODE" >> effects.txt
    drill: run
  - id: dangerous
    needs: [safe]
    budget: 10s
    run: echo production-changed >> effects.txt
    drill: skip
  - id: slow
    needs: [safe]
    budget: 30m
    estimate: 10m..20m..30m
    run: echo slow-ran >> effects.txt
    drill: mock
  - id: restore
    needs: [dangerous, slow]
    budget: 10s
    run: echo restore-into-production >> effects.txt
    drill: { run: echo restore-into-scratch >> effects.txt }
"#;

#[test]
fn a_drill_runs_drill_variants_and_journals_skip_and_mock_as_such() {
    let p = Project::new();
    p.write("runbooks/drill.yaml", DRILL);
    let (code, _, err) = p.run(&["run", "drill", "--drill"]).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "mode=drill\nrestore-into-scratch\n");
    let run = p.run_ids().pop().unwrap();
    let finished: Vec<(String, String)> = p
        .events_of(&run, "step_finished")
        .iter()
        .map(|e| {
            (
                e["data"]["step"].as_str().unwrap().to_owned(),
                e["data"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        finished.contains(&("dangerous".into(), "skipped".into())),
        "{finished:?}"
    );
    assert!(
        finished.contains(&("slow".into(), "simulated".into())),
        "{finished:?}"
    );
    let started: Vec<Value> = p.events_of(&run, "step_started");
    let restore = started
        .iter()
        .find(|e| e["data"]["step"] == "restore")
        .unwrap();
    assert_eq!(restore["data"]["how"], "drill-command");

    // The report: measured durations where steps ran, the estimate where they did not, and
    // the projected RTO of a real run on the critical path (safe as measured + slow's 20m
    // likely + restore's 10s estimate, since its drill variant ran instead).
    let report = p.report_json(&run);
    assert_eq!(report["mode"], "drill");
    assert_eq!(step(&report, "slow")["estimated"], true);
    assert_eq!(step(&report, "slow")["status"], "simulated");
    let projected = report["projected_rto_s"].as_f64().unwrap();
    assert!((1210.0..1220.0).contains(&projected), "{projected}");
    let (_, md, _) = p.run(&["report", &run, "--format", "md"]).parts();
    assert!(md.contains("a real run projects 20m10s"), "{md}");
}

#[test]
fn a_dry_run_executes_nothing_and_its_virtual_timeline_is_exact() {
    let p = Project::new();
    p.write(
        "runbooks/rehearse.yaml",
        r#"scenario: rehearse
title: Four hours on a virtual clock
rto: 4h
roles: { lead: [alice] }
steps:
  - { id: a, budget: 1h, estimate: 30m..45m..1h, run: touch a-ran, drill: run }
  - { id: b, budget: 30m, run: touch b-ran, drill: run }
  - { id: gate, needs: [a, b], budget: 20m, estimate: 5m..10m..20m, approval: { prompt: go?, approvers: [lead] } }
  - { id: c, needs: [gate], budget: 2h, estimate: 1h..1h30m..2h, run: "touch c-ran {{ steps.a.outputs.file }}", drill: run }
"#,
    );
    let t0 = Instant::now();
    let (code, _, err) = p.run(&["run", "rehearse", "--dry-run"]).parts();
    let took = t0.elapsed();
    assert_eq!(code, 0, "{err}");
    assert!(
        took < Duration::from_secs(5),
        "a four-hour rehearsal took {took:?}"
    );
    for f in ["a-ran", "b-ran", "c-ran"] {
        assert!(!p.path().join(f).exists(), "{f}: a dry-run executed a step");
    }
    let run = p.run_ids().pop().unwrap();
    let at = |ty: &str, step: &str| -> u64 {
        p.events_of(&run, ty)
            .iter()
            .find(|e| e["data"]["step"] == step)
            .unwrap_or_else(|| panic!("no {ty} for {step}"))["elapsed_ms"]
            .as_u64()
            .unwrap()
    };
    let min = 60_000;
    // a: 45m likely; b: 30m (its budget); the gate opens at max(45m, 30m) and takes 10m;
    // c starts at 55m and takes 1h30m.
    assert_eq!(at("step_started", "a"), 0);
    assert_eq!(at("step_finished", "a"), 45 * min);
    assert_eq!(at("step_finished", "b"), 30 * min);
    assert_eq!(at("approval_requested", "gate"), 45 * min);
    assert_eq!(at("approval_granted", "gate"), 55 * min);
    assert_eq!(at("step_started", "c"), 55 * min);
    assert_eq!(at("step_finished", "c"), 145 * min);
    let finished = &p.events_of(&run, "run_finished")[0];
    assert_eq!(finished["data"]["elapsed_ms"], 145 * min);
    assert_eq!(finished["data"]["rto_met"], true);
    // The rendered command shows where a runtime value will go.
    let c = p
        .events_of(&run, "step_started")
        .into_iter()
        .find(|e| e["data"]["step"] == "c")
        .unwrap();
    assert_eq!(c["data"]["command"], "touch c-ran '<a.file>'");
    // Budget warnings fire at their virtual instants: c's 2h budget is not reached, a's 1h is
    // not either; none here.
    assert!(p.events_of(&run, "budget_breached").is_empty());
}

#[test]
fn every_shipped_scenario_rehearses_with_dry_run_in_well_under_a_second() {
    let root = repo_root();
    let state = Project::new();
    let scenarios = [
        "region-failure",
        "database-corruption",
        "security-breach",
        "datacenter-failure",
    ];
    for s in scenarios {
        let t0 = Instant::now();
        // Run from the repository root, the state in the project folder.
        let mut cmd = state.cmd(&["run", s, "--dry-run", "--env", "production.example"]);
        cmd.current_dir(&root);
        let out = state.run_with(cmd);
        let took = t0.elapsed();
        assert_eq!(out.code, Some(0), "{s}: {}", out.stderr);
        // Generous for a slow machine; it takes milliseconds.
        assert!(took < Duration::from_secs(3), "{s} took {took:?}");
    }
}

#[test]
fn sampled_dry_runs_follow_the_seed() {
    let p = Project::new();
    p.write("runbooks/rehearse.yaml", "scenario: rehearse\ntitle: t\nrto: 1h\nsteps:\n  - { id: a, budget: 1h, estimate: 10m..20m..50m, run: 'true', drill: run }\n");
    let elapsed = |seed: &str| {
        let (code, _, err) = p
            .run(&["run", "rehearse", "--dry-run", "--sample", "--seed", seed])
            .parts();
        assert_eq!(code, 0, "{err}");
        let run = p.run_ids().pop().unwrap();
        let e = p.events_of(&run, "run_finished")[0]["data"]["elapsed_ms"]
            .as_u64()
            .unwrap();
        std::fs::remove_dir_all(p.path().join(".runbook/runs").join(&run)).unwrap();
        e
    };
    let (a, b, c) = (elapsed("7"), elapsed("7"), elapsed("8"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!((600_000..=3_000_000).contains(&a), "{a}");
}

fn simulate(p: &Project, scenario: &str, n: &str, seed: &str) -> Value {
    let (code, out, err) = p
        .run(&[
            "plan",
            scenario,
            "--simulate",
            n,
            "--seed",
            seed,
            "--format",
            "json",
        ])
        .parts();
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn simulation_agrees_with_analytic_answers_and_the_same_seed_gives_the_same_answer() {
    let p = Project::new();
    // A chain: the mean of the total is the sum of the PERT means (min + 4 mode + max) / 6.
    p.write(
        "runbooks/chain.yaml",
        "scenario: chain\ntitle: t\nrto: 3h\nsteps:\n  - { id: a, budget: 15m, estimate: 1m..5m..15m, run: 'true', drill: run }\n  - { id: b, needs: [a], budget: 1h, estimate: 10m..15m..1h, run: 'true', drill: run }\n  - { id: c, needs: [b], budget: 10m, estimate: 5m..10m..10m, run: 'true', drill: run }\n",
    );
    let sim = simulate(&p, "chain", "100000", "42");
    let expected = ((60.0 + 4.0 * 300.0 + 900.0)
        + (600.0 + 4.0 * 900.0 + 3600.0)
        + (300.0 + 4.0 * 600.0 + 600.0))
        / 6.0;
    let mean = sim["mean_s"].as_f64().unwrap();
    assert!(
        (mean - expected).abs() / expected < 0.01,
        "mean {mean} vs {expected}"
    );
    for c in sim["criticality"].as_array().unwrap() {
        assert_eq!(c["index"], 1.0, "every step of a chain is always critical");
    }
    assert_eq!(sim, simulate(&p, "chain", "100000", "42"));
    assert_ne!(sim["p50_s"], simulate(&p, "chain", "100000", "43")["p50_s"]);

    // Two parallel symmetric steps against an RTO at their mode: P(max <= mode) = 1/4.
    p.write(
        "runbooks/pair.yaml",
        "scenario: pair\ntitle: t\nrto: 20m\nsteps:\n  - { id: x, budget: 30m, estimate: 10m..20m..30m, run: 'true', drill: run }\n  - { id: y, budget: 30m, estimate: 10m..20m..30m, run: 'true', drill: run }\n",
    );
    let sim = simulate(&p, "pair", "100000", "1");
    let pm = sim["p_meet_rto"].as_f64().unwrap();
    assert!((pm - 0.25).abs() < 0.01, "{pm}");
    for k in ["p50_s", "p90_s", "p99_s"] {
        assert!(
            sim[k].as_f64().unwrap() > 1200.0,
            "the max of two is above either's median"
        );
    }
}

#[test]
fn list_flags_scenarios_not_drilled_in_90_days() {
    let p = Project::new();
    p.write("runbooks/drill.yaml", DRILL);
    p.write(
        "runbooks/other.yaml",
        &DRILL.replace("scenario: drill", "scenario: other"),
    );
    let (code, out, err) = p.run(&["list"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("drill ") && l.contains("never (OVERDUE)")),
        "{out}"
    );
    assert!(err.contains("not drilled in the last 90 days"), "{err}");
    assert_eq!(p.run(&["run", "drill", "--drill"]).parts().0, 0);
    let (_, out, err) = p.run(&["list"]).parts();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let line = out.lines().find(|l| l.starts_with("drill ")).unwrap();
    assert!(line.contains(&today) && !line.contains("OVERDUE"), "{line}");
    assert!(err.contains("other") && !err.contains("drill,"), "{err}");
}

const SMALL: &str = r#"scenario: small
title: A small recovery
rto: 2m
roles: { lead: [alice] }
steps:
  - { id: fetch, budget: 5s, run: "echo fetched; echo 'file=backup.tar' >> $RUNBOOK_OUTPUT", drill: run }
  - { id: gate, needs: [fetch], budget: 1m, approval: { prompt: "restore?", approvers: [lead] } }
  - { id: slow, needs: [gate], budget: 500ms, run: "sleep 0.8", drill: run }
  - { id: check, needs: [gate], budget: 5s, run: "test -z \"$FAIL\"", drill: run }
"#;

/// Replaces what changes from run to run for snapshots: every run of digits becomes `N`
/// (times, durations, ids), and 64-character hex runs (hashes) become `<sha>`.
fn redact(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let hex = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if hex >= 64 {
            out.push_str("<sha>");
            i += hex;
            continue;
        }
        if chars[i].is_ascii_digit() {
            // A duration (`1.2s`, `850ms`, `1h30m`) becomes `<d>` whatever its size, so a slow
            // machine does not change the snapshot; any other number becomes `N`.
            if let Some(end) = duration_at(&chars, i) {
                out.push_str("<d>");
                i = end;
                continue;
            }
            out.push('N');
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Where a duration starting at `i` ends, if one does: groups of digits with an optional
/// fraction and a unit (`h`, `m`, `s`, `ms`) not followed by another letter.
fn duration_at(c: &[char], i: usize) -> Option<usize> {
    let (mut j, mut end) = (i, None);
    loop {
        let start = j;
        while j < c.len() && c[j].is_ascii_digit() {
            j += 1;
        }
        if j == start {
            return end;
        }
        if c.get(j) == Some(&'.') && c.get(j + 1).is_some_and(|x| x.is_ascii_digit()) {
            j += 1;
            while j < c.len() && c[j].is_ascii_digit() {
                j += 1;
            }
        }
        let unit = match (c.get(j), c.get(j + 1)) {
            (Some('m'), Some('s')) => 2,
            (Some('h' | 'm' | 's'), _) => 1,
            _ => return end,
        };
        if c.get(j + unit).is_some_and(|x| x.is_ascii_alphabetic()) {
            return end;
        }
        j += unit;
        end = Some(j);
    }
}

#[test]
fn markdown_and_json_reports_hold_every_section_and_field() {
    let p = Project::new();
    p.write("runbooks/small.yaml", SMALL);
    let (code, _, err) = p.run(&["run", "small", "--as", "alice", "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().pop().unwrap();
    let (code, md, _) = p.run(&["report", "--last", "--format", "md"]).parts();
    assert_eq!(code, 0);
    insta::assert_snapshot!("small_report_md", redact(&md));
    // Every field of the JSON report (engine/report/json.rs) is checked in tests/it/run.rs; here, the values of this run.
    let report = p.report_json(&run);
    assert_eq!(report["version"], 1);
    assert_eq!(step(&report, "slow")["breached"], true);
    assert_eq!(
        step(&report, "gate")["approved_by"],
        serde_json::json!(["alice"])
    );
    assert_eq!(
        report["critical_path"],
        serde_json::json!(["fetch", "gate", "slow"])
    );
    assert_eq!(report["breaches"][0]["step"], "slow");
    let mut shape = report.clone();
    for k in [
        "run_id",
        "started_at",
        "finished_at",
        "elapsed_s",
        "machine_s",
        "human_wait_s",
        "runbook_sha256",
        "rto_verdict",
    ] {
        shape[k] = Value::from("<redacted>");
    }
    for s in shape["steps"].as_array_mut().unwrap() {
        for k in ["started_at", "finished_at", "duration_s", "wait_s"] {
            if !s[k].is_null() {
                s[k] = Value::from("<redacted>");
            }
        }
    }
    for b in shape["breaches"].as_array_mut().unwrap() {
        b["at_s"] = Value::from("<redacted>");
    }
    insta::assert_snapshot!(
        "small_report_json",
        serde_json::to_string_pretty(&shape).unwrap()
    );
}

#[test]
fn junit_has_one_testcase_per_step_and_fails_breaches_and_failed_steps() {
    let p = Project::new();
    p.write("runbooks/small.yaml", SMALL);
    let (code, _, _) = p
        .cmd(&["run", "small", "--drill", "--yes"])
        .env("FAIL", "1")
        .output()
        .map(|o| (o.status.code().unwrap(), (), ()))
        .unwrap();
    assert_eq!(code, 1);
    let (code, xml, _) = p.run(&["report", "--last", "--format", "junit"]).parts();
    assert_eq!(code, 0);
    // Parse it: a well-formed document with one testcase per step.
    let doc = roxmltree::Document::parse(&xml).expect("junit parses");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let names: Vec<&str> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
    assert_eq!(names, vec!["fetch", "gate", "slow", "check", "RTO"]);
    let failed = |name: &str| {
        cases
            .iter()
            .find(|c| c.attribute("name") == Some(name))
            .unwrap()
            .children()
            .any(|n| n.has_tag_name("failure"))
    };
    assert!(failed("slow"), "a budget breach is a failure");
    assert!(failed("check"), "a failed step is a failure");
    assert!(failed("RTO"), "a run that failed did not recover");
    assert!(!failed("fetch"));
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("tests"), Some("5"));
    assert_eq!(suite.attribute("failures"), Some("3"));
}

#[test]
fn the_html_report_is_self_contained_and_renders_in_a_real_browser() {
    let p = Project::new();
    p.write("runbooks/small.yaml", SMALL);
    assert_eq!(
        p.run(&["run", "small", "--as", "alice", "--yes"]).parts().0,
        0
    );
    let html_path = p.path().join("r.html");
    let (code, _, err) = p
        .run(&["report", "--last", "--format", "html", "-o", "r.html"])
        .parts();
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(
        html.contains("<svg") && html.contains("class=\"rto\""),
        "an SVG Gantt with the RTO line"
    );
    // Nothing to fetch, nothing to run: no scripts, stylesheets, images or fonts from outside.
    for needle in ["<script", "<link", "src=", "@import", "url(http"] {
        assert!(!html.contains(needle), "not self-contained: {needle}");
    }
    for id in ["fetch", "gate", "slow", "check"] {
        assert!(
            html.contains(&format!(">{id}</text>")),
            "a bar label for {id}"
        );
    }

    // Render it in headless Chromium and check the picture is not blank.
    let png = crate::support::chromium_screenshot(&html_path, p.path());
    let img = image_stats(&png);
    // A blank page is one colour; the report has text, tables and coloured bars.
    assert!(
        img.distinct_colours > 20,
        "the screenshot looks blank: {img:?}"
    );
    assert!(
        img.green_pixels > 200,
        "the succeeded bars should be drawn in green: {img:?}"
    );
}

#[derive(Debug)]
struct ImageStats {
    distinct_colours: usize,
    green_pixels: usize,
}

fn image_stats(path: &std::path::Path) -> ImageStats {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    let mut green = 0;
    for px in bytes.chunks(step) {
        let (r, g, b) = (px[0], px[1], px[2]);
        colours.insert((r, g, b));
        // The succeeded colour, #2e9d4f.
        if (r as i32 - 0x2e).abs() < 12
            && (g as i32 - 0x9d).abs() < 12
            && (b as i32 - 0x4f).abs() < 12
        {
            green += 1;
        }
    }
    ImageStats {
        distinct_colours: colours.len(),
        green_pixels: green,
    }
}

#[test]
fn history_figures_match_the_runs_in_the_state_folder() {
    let p = Project::new();
    p.write("runbooks/small.yaml", SMALL);
    // Two real runs (one failed), one drill, one dry-run (left out of the figures).
    assert_eq!(
        p.run(&["run", "small", "--as", "alice", "--yes"]).parts().0,
        0
    );
    let code = p
        .cmd(&["run", "small", "--as", "alice", "--yes"])
        .env("FAIL", "1")
        .status()
        .unwrap()
        .code();
    assert_eq!(code, Some(1));
    assert_eq!(p.run(&["run", "small", "--drill", "--yes"]).parts().0, 0);
    assert_eq!(p.run(&["run", "small", "--dry-run"]).parts().0, 0);
    // A run stopped at its gate (nobody answered within 1 s), then resumed and approved.
    p.write(
        "runbooks/small.yaml",
        &SMALL.replace(
            r#"approvers: [lead] }"#,
            r#"approvers: [lead], timeout: 1s }"#,
        ),
    );
    assert_eq!(p.run(&["run", "small", "--as", "alice"]).parts().0, 3);
    let stopped = p.run_ids().pop().unwrap();
    let (code, _, err) = p
        .run(&["resume", &stopped, "--as", "alice", "--yes"])
        .parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.events_of(&stopped, "run_resumed").len(), 1);
    let (code, out, err) = p.run(&["history", "--format", "json"]).parts();
    assert_eq!(code, 0, "{err}");
    let h: Value = serde_json::from_str(&out).unwrap();
    let s = &h[0];
    assert_eq!(s["scenario"], "small");
    assert_eq!(
        s["runs"],
        serde_json::json!({"drill": 1, "dry-run": 1, "real": 3})
    );
    assert_eq!(s["finished"], 4);
    let rate = s["success_rate"].as_f64().unwrap();
    assert!((rate - 3.0 / 4.0).abs() < 1e-9, "{rate}");
    assert_eq!(s["rto_met_share"], 1.0);
    assert!(
        s["mttr_s"].as_f64().unwrap() > 0.8,
        "real runs of over 0.8 s"
    );
    // The resumed run's RTO clock kept running through its stop.
    assert!(
        s["rto_max_s"].as_f64().unwrap() >= 1.0,
        "the resumed run took at least its 1 s gate timeout"
    );
    assert_eq!(s["drill_overdue"], false);
    let slow = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "slow")
        .unwrap();
    assert_eq!(slow["runs"], 4);
    assert!(slow["p50_s"].as_f64().unwrap() >= 0.8);
    assert!(
        slow["suggestion"]
            .as_str()
            .unwrap()
            .starts_with("too tight"),
        "{slow}"
    );
    let (_, md, _) = p.run(&["history"]).parts();
    assert!(
        md.contains("| Success rate | 75% of 4 finished real runs and drills |"),
        "{md}"
    );
}

#[test]
fn export_bundles_the_evidence_an_auditor_needs() {
    let p = Project::new();
    p.write("runbooks/small.yaml", SMALL);
    assert_eq!(p.run(&["run", "small", "--drill", "--yes"]).parts().0, 0);
    let run = p.run_ids().pop().unwrap();
    let (code, _, err) = p.run(&["export", &run, "-o", "evidence.tar.gz"]).parts();
    assert_eq!(code, 0, "{err}");
    let x = p.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let st = std::process::Command::new("tar")
        .args(["-xzf", "../evidence.tar.gz"])
        .current_dir(&x)
        .status()
        .unwrap();
    assert!(st.success());
    let b = x.join(&run);
    for f in [
        "journal.jsonl",
        "journal.head",
        "runbook.yaml",
        "report.md",
        "report.html",
        "report.json",
        "report.junit.xml",
        "verify.txt",
        "logs/fetch.log",
    ] {
        assert!(b.join(f).is_file(), "{f} is missing from the bundle");
    }
    // The runbook is exactly the one that ran.
    let verify = std::fs::read_to_string(b.join("verify.txt")).unwrap();
    assert!(
        verify.contains("intact and sealed") && verify.contains("runbook matches the run"),
        "{verify}"
    );
    assert_eq!(
        std::fs::read_to_string(b.join("runbook.yaml")).unwrap(),
        SMALL
    );

    // Without the runbook that ran, the bundle is still written, and fails its own check.
    std::fs::remove_file(
        p.path()
            .join(".runbook/runs")
            .join(&run)
            .join("runbook.yaml"),
    )
    .unwrap();
    let (code, _, err) = p.run(&["export", &run, "-o", "partial.tar.gz"]).parts();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not the runbook that ran"), "{err}");
    assert!(p.path().join("partial.tar.gz").is_file());
}
