//! What people read of a run — the terminal, `status`, the Markdown and HTML reports — in
//! words, with the HTML timeline drawing only what happened; through the real binary, the HTML
//! parsed and rendered in headless Chromium.

mod support;

use support::Project;

/// The text a reader sees of an HTML page: tags (and their attributes, CSS classes included)
/// dropped.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn html_report(p: &Project, run: &str) -> String {
    let (code, _, err) = p
        .run(&["report", run, "--format", "html", "-o", "r.html"])
        .parts();
    assert_eq!(code, 0, "{err}");
    p.read("r.html")
}

/// `status` and the reports showed `timed_out`, `not_run` and `approval_timed_out` to people.
#[test]
fn people_read_words_where_they_read_machine_names() {
    let p = Project::new();
    p.write(
        "runbooks/words.yaml",
        r#"scenario: words
title: A timeout and what it left undone
rto: 5m
steps:
  - { id: slow, budget: 10s, timeout: 1s, run: "sleep 30", drill: run }
  - { id: after, needs: [slow], budget: 10s, run: "true", drill: run }
"#,
    );
    p.write(
        "runbooks/waits.yaml",
        r#"scenario: waits
title: Nobody answers
rto: 5m
roles: { lead: [alice] }
steps:
  - { id: gate, budget: 1m, approval: { prompt: "go?", approvers: [lead], timeout: 1s } }
"#,
    );
    let machine = ["timed_out", "not_run", "approval_timed_out", "rto_at_risk"];
    let no_machine_names = |what: &str, text: &str| {
        for name in machine {
            assert!(!text.contains(name), "{what} shows `{name}`:\n{text}");
        }
    };

    let (code, _, err) = p.run(&["run", "words"]).parts();
    assert_eq!(code, 1, "{err}");
    let words = p.run_ids().pop().unwrap();
    let (code, out, err) = p.run(&["status", &words]).parts();
    assert_eq!(code, 0, "{err}");
    no_machine_names("status", &out);
    assert!(
        out.contains("timed out") && out.contains("not run"),
        "{out}"
    );

    let (code, md, err) = p.run(&["report", &words, "--format", "md"]).parts();
    assert_eq!(code, 0, "{err}");
    no_machine_names("the Markdown report", &md);
    assert!(
        md.contains("| timed out |") && md.contains("| not run |"),
        "{md}"
    );
    let html = visible_text(&html_report(&p, &words));
    no_machine_names("the HTML report", &html);
    // The JSON report keeps the machine names.
    let json = p.report_json(&words);
    let statuses: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["timed_out", "not_run"]);

    let (code, _, err) = p.run(&["run", "waits", "--as", "alice"]).parts();
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("run stopped (nobody answered a gate in time); it can be resumed"),
        "{err}"
    );
    no_machine_names("the run's terminal", &err);
    let waits = p.run_ids().pop().unwrap();
    let (code, out, err) = p.run(&["status", &waits]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("stopped (nobody answered a gate in time)"),
        "{out}"
    );
    no_machine_names("status", &out);
    let (code, md, err) = p.run(&["report", &waits, "--format", "md"]).parts();
    assert_eq!(code, 0, "{err}");
    no_machine_names("the Markdown report", &md);
    let html = visible_text(&html_report(&p, &waits));
    no_machine_names("the HTML report", &html);
    assert_eq!(
        p.events_of(&waits, "run_interrupted")[0]["data"]["reason"],
        "approval_timed_out",
        "the journal keeps the machine name"
    );
}

/// A page that failed said only "the notify command failed"; its log ended in Rust's
/// `exit: Some(7)`.
#[test]
fn a_failed_page_shows_its_exit_and_the_end_of_its_stderr_masked() {
    let p = Project::with_runbook(
        "page",
        r#"scenario: page
title: A pager that refuses
rto: 5m
secrets: [PAGER_TOKEN]
notify:
  oncall: 'echo "sending {{ message }}"; echo "connecting as $PAGER_TOKEN" >&2; echo "401 unauthorized for $PAGER_TOKEN" >&2; exit 7'
  lead: 'kill -KILL $$'
escalation:
  - { after: 0s, notify: oncall }
  - { after: 0s, notify: lead }
steps:
  - { id: a, budget: 10s, run: "sleep 1", drill: run }
"#,
    );
    let secret = "s3cr3t-pager-token";
    let mut cmd = p.cmd(&["run", "page"]);
    cmd.env("PAGER_TOKEN", secret);
    let (code, _, err) = p.run_with(cmd).parts();
    assert_eq!(code, 0, "a failed page does not fail the run: {err}");
    assert!(
        err.contains(
            "escalated to oncall (on schedule): the notify command failed \
             (exit 7; stderr: connecting as *** / 401 unauthorized for ***)"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "escalated to lead (on schedule): the notify command failed (killed by signal 9)"
        ),
        "{err}"
    );
    let run = p.run_ids().pop().unwrap();
    let escalated = p.events_of(&run, "escalated");
    let oncall = escalated
        .iter()
        .find(|e| e["data"]["channel"] == "oncall")
        .unwrap();
    assert_eq!(oncall["data"]["ok"], false);
    assert_eq!(oncall["data"]["exit_code"], 7);
    assert_eq!(oncall["data"]["error"], "exit 7");
    assert_eq!(
        oncall["data"]["stderr_tail"],
        "connecting as ***\n401 unauthorized for ***"
    );
    let lead = escalated
        .iter()
        .find(|e| e["data"]["channel"] == "lead")
        .unwrap();
    assert_eq!(lead["data"]["error"], "killed by signal 9");
    assert!(lead["data"].get("exit_code").is_none(), "{lead}");

    let log = std::fs::read_to_string(p.run_dir(&run).join("logs").join("notify.log")).unwrap();
    assert!(log.contains("\nexit 7\n"), "{log}");
    assert!(log.contains("\nkilled by signal 9\n"), "{log}");
    assert!(!log.contains("Some("), "no Rust debug text: {log}");

    let (code, md, err) = p.run(&["report", &run, "--format", "md"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        md.contains(
            "to `oncall` (on schedule) — the notify command FAILED (exit 7; stderr: connecting as *** / 401 unauthorized for ***)"
        ),
        "{md}"
    );
    let html = html_report(&p, &run);
    assert!(
        visible_text(&html).contains("the notify command FAILED (killed by signal 9)"),
        "{html}"
    );
    for (what, text) in [
        ("terminal", err),
        ("journal", p.journal(&run)),
        ("notify.log", log),
        ("md", md),
        ("html", html),
    ] {
        assert!(!text.contains(secret), "the secret reached the {what}");
    }
}
