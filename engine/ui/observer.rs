//! Observers: every one is fed by the same stream of journaled records (and step log lines).
//! On a terminal, indicatif bars — a line per running step with elapsed against budget and a
//! header with the RTO clock and the projection; off a terminal, plain timestamped lines;
//! with `--json`, one record a line on stdout. What reaches the terminal has its control
//! characters made visible (see [`visible`]): a step's output, in a log line or in a record
//! (a gate's prompt, its outputs, a command), cannot move the cursor or erase lines there.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::journal::*;
use crate::ui::describe::describe;
use crate::ui::paint::paint;
use crate::ui::visible::visible;
use crate::units::fmt_duration;

pub trait Observer: Send {
    fn record(&mut self, rec: &Record);
    fn log(&mut self, _step: &str, _line: &str) {}
    /// Called about every second while the run is live, for clocks on screen.
    fn tick(&mut self, _now: Duration, _projected: Duration) {}
    fn finish(&mut self) {}
}

/// A record's line for the terminal. One holding a control character (a step's output in a
/// gate's prompt, say) is shown without colour: its own escapes could not be told from those of
/// the colours, and it is the line the operator must be able to read as it is.
fn shown(rec: &Record, color: bool, rto_ms: u64) -> Option<String> {
    let plain = describe(rec, false, rto_ms)?;
    match visible(&plain) {
        Cow::Owned(escaped) => Some(escaped),
        Cow::Borrowed(_) if color => describe(rec, true, rto_ms),
        Cow::Borrowed(_) => Some(plain),
    }
}

/// Plain timestamped lines on stderr.
pub struct Plain {
    pub color: bool,
    pub rto_ms: u64,
    pub show_logs: bool,
}

impl Observer for Plain {
    fn record(&mut self, rec: &Record) {
        if let Some(line) = shown(rec, self.color, self.rto_ms) {
            // One write a line: stderr is unbuffered.
            let text = format!(
                "{} +{:<7} {line}\n",
                rec.at.format("%H:%M:%S"),
                fmt_duration(rec.elapsed())
            );
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }
    fn log(&mut self, step: &str, line: &str) {
        if self.show_logs {
            let text = format!("    {step} | {line}\n");
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }
}

/// One JSON object a line on stdout: the journal's records as written.
pub struct JsonLines;

impl Observer for JsonLines {
    fn record(&mut self, rec: &Record) {
        if let Ok(s) = serde_json::to_string(rec) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
    }
}

/// Progress bars on a terminal.
pub struct Bars {
    multi: MultiProgress,
    header: ProgressBar,
    bars: BTreeMap<String, (ProgressBar, Duration, Duration)>,
    budgets: BTreeMap<String, Duration>,
    color: bool,
    rto: Duration,
    now: Duration,
    /// `rto_ends_at`, and when it succeeded: the header's RTO clock stops there.
    rto_ends_at: Option<String>,
    restored: Option<Duration>,
}

impl Bars {
    pub fn new(
        budgets: BTreeMap<String, Duration>,
        rto: Duration,
        rto_ends_at: Option<String>,
        color: bool,
    ) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(ProgressStyle::with_template("{msg}").expect("template"));
        Bars {
            multi,
            header,
            bars: BTreeMap::new(),
            budgets,
            color,
            rto,
            now: Duration::ZERO,
            rto_ends_at,
            restored: None,
        }
    }

    fn println(&self, line: &str) {
        let _ = self.multi.println(line);
    }

    fn redraw(&mut self, projected: Duration) {
        if let Some(r) = self.restored {
            // Service is restored: the RTO clock stopped; what runs now is observation.
            self.header.set_message(format!(
                "RTO clock stopped at {} of {}: service restored · observation +{}",
                fmt_duration(r),
                fmt_duration(self.rto),
                fmt_duration(self.now.saturating_sub(r))
            ));
        } else {
            self.draw_clock(projected);
        }
        self.draw_bars();
    }

    fn draw_clock(&mut self, projected: Duration) {
        let over = projected > self.rto;
        let proj = format!("projected {}", fmt_duration(projected));
        let proj = if over {
            paint(self.color, "31", &proj)
        } else {
            proj
        };
        self.header.set_message(format!(
            "RTO clock {} of {} · {}",
            fmt_duration(self.now),
            fmt_duration(self.rto),
            proj
        ));
    }

    fn draw_bars(&mut self) {
        for (id, (bar, started, budget)) in &self.bars {
            let el = self.now.saturating_sub(*started);
            let frac = if budget.is_zero() {
                1.0
            } else {
                el.as_secs_f64() / budget.as_secs_f64()
            };
            let text = format!("{id}  {} / {}", fmt_duration(el), fmt_duration(*budget));
            let text = if frac >= 1.0 {
                paint(self.color, "31", &text)
            } else if frac >= 0.8 {
                paint(self.color, "33", &text)
            } else {
                text
            };
            bar.set_position(((frac.min(1.0)) * 1000.0) as u64);
            bar.set_message(text);
        }
    }
}

impl Observer for Bars {
    fn record(&mut self, rec: &Record) {
        self.now = self.now.max(rec.elapsed());
        if let Some(line) = shown(rec, self.color, self.rto.as_millis() as u64) {
            self.println(&format!(
                "{} +{:<7} {line}",
                rec.at.format("%H:%M:%S"),
                fmt_duration(rec.elapsed())
            ));
        }
        if let EventKind::StepFinished(f) = &rec.event
            && f.status.is_ok()
            && !f.will_retry
            && self.rto_ends_at.as_deref() == Some(f.step.as_str())
        {
            self.restored.get_or_insert(rec.elapsed());
        }
        // A loop over an output got its instances: each has the loop's budget.
        if let EventKind::LoopExpanded(e) = &rec.event {
            for p in &e.instances {
                self.budgets
                    .insert(p.id.clone(), Duration::from_millis(p.budget_ms));
            }
        }
        let running_start = match &rec.event {
            EventKind::StepStarted(s) => Some(s.step.clone()),
            EventKind::ApprovalRequested(a) => Some(a.step.clone()),
            _ => None,
        };
        if let Some(id) = running_start
            && !self.bars.contains_key(&id)
        {
            let bar = self.multi.add(ProgressBar::new(1000));
            bar.set_style(
                ProgressStyle::with_template("  {bar:20} {msg}")
                    .expect("template")
                    .progress_chars("█▓░"),
            );
            let budget = self.budgets.get(&id).copied().unwrap_or_default();
            self.bars.insert(id, (bar, rec.elapsed(), budget));
        }
        let ended = match &rec.event {
            EventKind::StepFinished(f) if !f.will_retry => Some(f.step.clone()),
            EventKind::ApprovalGranted(a) => Some(a.step.clone()),
            EventKind::ApprovalDenied(a) => Some(a.step.clone()),
            EventKind::ApprovalTimedOut(a) => Some(a.step.clone()),
            _ => None,
        };
        if let Some(id) = ended
            && let Some((bar, _, _)) = self.bars.remove(&id)
        {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
    fn log(&mut self, step: &str, line: &str) {
        self.println(&format!("    {step} | {line}"));
    }
    fn tick(&mut self, now: Duration, projected: Duration) {
        self.now = now;
        self.redraw(projected);
    }
    fn finish(&mut self) {
        for (_, (bar, _, _)) in std::mem::take(&mut self.bars) {
            bar.finish_and_clear();
        }
        self.header.finish_and_clear();
    }
}

/// All the observers of a run, fed together.
pub struct Observers {
    pub plain: Option<Plain>,
    pub bars: Option<Bars>,
    pub json: Option<JsonLines>,
}

impl Observers {
    pub fn record(&mut self, rec: &Record) {
        if let Some(o) = &mut self.plain {
            o.record(rec);
        }
        if let Some(o) = &mut self.bars {
            o.record(rec);
        }
        if let Some(o) = &mut self.json {
            o.record(rec);
        }
    }
    pub fn log(&mut self, step: &str, line: &str) {
        // The step's log keeps the bytes; the terminal shows them.
        let line = &*visible(line);
        if let Some(o) = &mut self.plain {
            o.log(step, line);
        }
        if let Some(o) = &mut self.bars {
            o.log(step, line);
        }
    }
    pub fn tick(&mut self, now: Duration, projected: Duration) {
        if let Some(o) = &mut self.bars {
            o.tick(now, projected);
        }
    }
    /// A message for the person at the terminal (a question, a warning), printed above the
    /// bars so they do not tear it.
    pub fn notice(&mut self, text: &str) {
        let text = &*visible(text);
        match &mut self.bars {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }
    pub fn finish(&mut self) {
        if let Some(o) = &mut self.bars {
            o.finish();
        }
    }
}
