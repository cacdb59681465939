//! What people read of a run — the terminal, `status`, the Markdown and HTML reports — in
//! words, with the HTML timeline drawing only what happened; through the real binary, the HTML
//! parsed and rendered in headless Chromium.

use std::time::Duration;

use crate::support::Project;

/// The `<svg>` of an HTML report, parsed (the SVG is XML; the page around it is not).
fn svg_of(html: &str) -> roxmltree::Document<'_> {
    let from = html.find("<svg").expect("the report has an SVG timeline");
    let to = html.find("</svg>").expect("the SVG ends") + "</svg>".len();
    roxmltree::Document::parse(&html[from..to]).expect("the SVG parses as XML")
}

fn class_has(n: &roxmltree::Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|w| w == class))
}

fn num(n: &roxmltree::Node, attr: &str) -> f64 {
    n.attribute(attr).unwrap().parse().unwrap()
}

/// An element's text, its `<title>` tooltip left out.
fn text_of(n: &roxmltree::Node) -> String {
    n.children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect()
}

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

/// A step whose budget ran out past the chart's end had its budget tick drawn at the edge, as
/// if it ran out there.
#[test]
fn html_timeline_does_not_draw_a_budget_past_its_axis_at_the_edge() {
    let p = Project::with_runbook(
        "clip",
        r#"scenario: clip
title: A budget far past the run
rto: 1h
steps:
  - { id: quick, budget: 1s, run: "sleep 0.3", drill: run }
  - { id: roomy, needs: [quick], budget: 1h, run: "sleep 1.5", drill: run }
"#,
    );
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().pop().unwrap();
    let html = html_report(&p, &run);
    let svg = svg_of(&html);
    let root = svg.root_element();
    let budgets: Vec<f64> = root
        .descendants()
        .filter(|n| n.has_tag_name("line") && class_has(n, "budget"))
        .map(|n| num(&n, "x1"))
        .collect();
    assert_eq!(
        budgets.len(),
        1,
        "only quick's budget is on the axis: {budgets:?}"
    );
    let beyond: Vec<roxmltree::Node> = root
        .descendants()
        .filter(|n| class_has(n, "budget-beyond"))
        .collect();
    assert_eq!(beyond.len(), 1, "roomy's budget is said to lie beyond");
    assert!(
        text_of(&beyond[0]).contains("budget ends beyond the axis"),
        "{:?}",
        text_of(&beyond[0])
    );
    let title: String = beyond[0]
        .children()
        .filter(|n| n.has_tag_name("title"))
        .map(|n| text_of(&n))
        .collect();
    assert!(title.contains("runs out at +1h"), "{title:?}");
    // The words stand to the right of every bar, not over one.
    let bar_ends = root
        .descendants()
        .filter(|n| n.has_tag_name("rect") && class_has(n, "bar"))
        .map(|n| num(&n, "x") + num(&n, "width"))
        .fold(0.0, f64::max);
    assert!(num(&beyond[0], "x") > bar_ends, "{bar_ends}");
}

/// Renders `r.html` of the project in headless Chromium; the screenshot's pixels.
fn screenshot(p: &Project) -> Vec<(u8, u8, u8)> {
    let png = crate::support::chromium_screenshot(&p.path().join("r.html"), p.path());
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf[..info.buffer_size()]
        .chunks(info.color_type.samples())
        .map(|px| (px[0], px[1], px[2]))
        .collect()
}

fn near(px: (u8, u8, u8), rgb: u32) -> bool {
    let (r, g, b) = ((rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8);
    (px.0 as i32 - r as i32).abs() < 10
        && (px.1 as i32 - g as i32).abs() < 10
        && (px.2 as i32 - b as i32).abs() < 10
}

/// A step stopped by Ctrl-C and run again on resume was drawn as one bar across the time the
/// run stood stopped, and the legend had no colour for "interrupted".
#[test]
fn html_timeline_draws_the_time_a_run_stood_stopped_as_a_labelled_gap() {
    let p = Project::with_runbook(
        "gap",
        r#"scenario: gap
title: Stopped and resumed
rto: 5m
steps:
  - { id: first, budget: 5s, run: "sleep 0.2", drill: run }
  - id: long
    needs: [first]
    budget: 1m
    idempotent: true
    run: "if [ -f once ]; then sleep 0.5; else touch once; sleep 60; fi"
    drill: run
"#,
    );
    let child = p.spawn(&["run", "gap"]);
    let run = p.wait_for("step_started", "long");
    crate::support::wait_until("long to have begun", || p.path().join("once").exists());
    child.interrupt_and_stop();
    // The stop lasts long enough to be seen on the chart: a lower bound only.
    std::thread::sleep(Duration::from_secs(3));
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 0, "{err}");

    let html = html_report(&p, &run);
    let svg = svg_of(&html);
    let root = svg.root_element();
    let band = root
        .descendants()
        .find(|n| n.has_tag_name("rect") && class_has(n, "stopped"))
        .expect("a band where the run stood stopped");
    let (b0, b1) = (num(&band, "x"), num(&band, "x") + num(&band, "width"));
    assert!(
        b1 - b0 > 50.0,
        "a stop of over 3 s in a run of about 4 s: {b0}..{b1}"
    );
    let label: String = root
        .descendants()
        .filter(|n| n.has_tag_name("text") && class_has(n, "stopped"))
        .map(|n| text_of(&n))
        .collect();
    assert!(
        label.starts_with("stopped "),
        "the band is labelled: {label:?}"
    );
    // long's bar is in pieces, before and after the stop, and none of it covers the stop.
    let long: Vec<(f64, f64)> = root
        .descendants()
        .filter(|n| n.has_tag_name("rect") && class_has(n, "bar"))
        .filter(|n| {
            n.descendants()
                .any(|t| t.has_tag_name("title") && text_of(&t).starts_with("long —"))
        })
        .map(|n| (num(&n, "x"), num(&n, "x") + num(&n, "width")))
        .collect();
    assert_eq!(long.len(), 2, "long before and after the stop: {long:?}");
    for (a, b) in &long {
        assert!(
            *b <= b0 + 0.5 || *a >= b1 - 0.5,
            "a piece of long's bar {a}..{b} covers the stop {b0}..{b1}"
        );
    }
    let text = visible_text(&html);
    assert!(text.contains("interrupted"), "the legend names interrupted");

    // In a real browser: the stopped band and the legend's interrupted swatch are drawn.
    let pixels = screenshot(&p);
    let band_px = pixels
        .iter()
        .filter(|&&px| near(px, 0xfbf1dc) || near(px, 0xf0c987))
        .count();
    assert!(
        band_px > 1000,
        "the stopped band is drawn: {band_px} pixels"
    );
    let orange = pixels.iter().filter(|&&px| near(px, 0xe39b20)).count();
    assert!(
        orange >= 60,
        "the legend's interrupted swatch is drawn: {orange} pixels"
    );
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
        // A step not run says which need kept it from running (issue 17: as against a step
        // its condition skipped).
        md.contains("| timed out |") && md.contains("| not run: `slow` timed out |"),
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
