//! The async run loop: `execute` turns processes ending, timers, approvals, terminal answers
//! and interrupts into the machine's inputs in one select loop, and hands its effects to
//! [`perform`](super::perform). The supervisor's events come in here; signals come in as a
//! parameter ([`Interrupts`]), made by the caller, as mini-redis passes `shutdown` to `run`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::journal::*;
use crate::ui::observer::Observers;

use super::adopt::{Adopted, await_adopted};
use super::approvals::{Answered, take_answers, write_approval_results};
use super::machine::{Effect, ExitResult, Input, Machine, Outcome};
use super::perform::perform;
use super::process::{LogLine, StepFiles};
use super::{ExecError, RunContext, fallback, process, supervisor};

/// A step's process, as the run tracks it: its process group, once the supervisor has
/// reported it (an adopted step's is known from the start).
pub(super) struct Running {
    pub(super) pgid: Arc<std::sync::Mutex<Option<u32>>>,
    pub(super) exited: Arc<AtomicBool>,
}

impl Running {
    pub(super) fn pgid(&self) -> Option<u32> {
        *self.pgid.lock().expect("pgid lock")
    }
}

/// A step the supervisor runs for us, until it reports the end.
pub(super) struct Pending {
    pub(super) step: usize,
    pub(super) attempt: u32,
    pub(super) output: PathBuf,
    pub(super) log: PathBuf,
    pub(super) pgid: Arc<std::sync::Mutex<Option<u32>>>,
    pub(super) exited: Arc<AtomicBool>,
    /// Read ends of its stdout and stderr, held for the day its supervisor dies.
    pub(super) pipes: Vec<std::fs::File>,
}

pub(super) type PendingMap = Arc<std::sync::Mutex<HashMap<String, Pending>>>;

/// Starts the run's step supervisor; its events become inputs and log lines.
fn start_supervisor(
    cx: &RunContext,
    pending: &PendingMap,
    sup_dead: &Arc<AtomicBool>,
    tx: &mpsc::UnboundedSender<Input>,
    log_tx: &mpsc::UnboundedSender<LogLine>,
) -> Result<supervisor::Handle, ExecError> {
    let (pending, tx, log_tx, mask) =
        (pending.clone(), tx.clone(), log_tx.clone(), cx.mask.clone());
    let status_log = cx.run_dir.join("steps.status");
    let sup_dead = sup_dead.clone();
    supervisor::spawn(
        &cx.plan.root,
        &cx.run_dir.join("steps.status"),
        &cx.plan.secrets.join(","),
        move |ev| match ev {
            Some(supervisor::Event::Pid { key, pid }) => {
                if let Some(p) = pending.lock().expect("pending lock").get(&key) {
                    *p.pgid.lock().expect("pgid lock") = Some(pid);
                }
                // Read ends of its pipes, for the day its supervisor dies, are taken once the
                // step has run a moment: most steps of a large DAG are over sooner, and the
                // opens would cost each of them (see `fallback::HOLD_AFTER`).
                let pending = pending.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(fallback::HOLD_AFTER).await;
                    if let Some(p) = pending.lock().expect("pending lock").get_mut(&key) {
                        p.pipes = fallback::hold_pipes(pid);
                    }
                });
            }
            Some(supervisor::Event::Line { step, text }) => {
                let _ = log_tx.send(LogLine { step, text });
            }
            Some(supervisor::Event::Exit { key, code, signal }) => {
                let Some(p) = pending.lock().expect("pending lock").remove(&key) else {
                    return;
                };
                p.exited.store(true, std::sync::atomic::Ordering::SeqCst);
                let (outputs, problems) = process::take_outputs(&p.output, &p.log, &mask);
                for text in problems {
                    let _ = log_tx.send(LogLine { step: p.step, text });
                }
                let result = match (code, signal) {
                    (Some(c), _) => ExitResult::Code(c),
                    (None, Some(sig)) => ExitResult::Signal(sig),
                    _ => ExitResult::Error("unknown exit status".into()),
                };
                let _ = tx.send(Input::Exited {
                    step: p.step,
                    attempt: p.attempt,
                    result,
                    outputs,
                });
            }
            None => {
                // The supervisor is gone. That is the engine's fault, not its steps': none is
                // killed or called failed. The run stops, resumable, once the steps it left
                // have ended, seen to their end by the engine in the supervisor's place (see
                // `fallback`). A step whose pid never came is left for a resume to adopt.
                sup_dead.store(true, std::sync::atomic::Ordering::SeqCst);
                let mut lost = Vec::new();
                for (key, p) in pending.lock().expect("pending lock").drain() {
                    let pid = *p.pgid.lock().expect("pgid lock");
                    let Some(pid) = pid else {
                        lost.push(p.step);
                        continue;
                    };
                    let files = StepFiles {
                        log: p.log,
                        output: p.output,
                        status_log: status_log.clone(),
                        key,
                    };
                    // Not held yet (a step younger than `HOLD_AFTER`): taken now, before
                    // it next writes, if it has not since the supervisor died.
                    let pipes = if p.pipes.is_empty() {
                        fallback::hold_pipes(pid)
                    } else {
                        p.pipes
                    };
                    let orphan = fallback::Orphan {
                        step: p.step,
                        attempt: p.attempt,
                        pid,
                        pipes,
                        files,
                    };
                    fallback::watch(orphan, mask.clone(), tx.clone(), log_tx.clone());
                }
                let _ = tx.send(Input::Fault {
                    reason: InterruptReason::SupervisorDied,
                    lost,
                    not_started: Vec::new(),
                });
            }
        },
    )
    .map_err(|e| ExecError::Other(format!("cannot start the step supervisor: {e}")))
}

/// What the operator's signals ask of a run, as the driver hears them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// SIGINT, Ctrl-C: on a terminal (`tty_signals`) the first press only asks.
    CtrlC,
    /// SIGTERM: stop, never asked (a service manager or `kill` does not answer questions).
    Terminate,
    /// SIGHUP: the terminal is gone; the run goes on.
    Hangup,
}

/// Where the driver hears interrupts: the process's signals ([`watch_signals`]) on a real run,
/// a channel a test feeds otherwise. The stop path is then driven without a real signal.
pub type Interrupts = mpsc::UnboundedReceiver<Interrupt>;

/// The process's SIGINT, SIGTERM and SIGHUP as [`Interrupts`]. Called inside the runtime;
/// from then on those signals no longer end the process, they are the run's to handle.
pub fn watch_signals() -> Result<Interrupts, ExecError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| ExecError::Other(format!("cannot watch for Ctrl-C: {e}")))?;
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| ExecError::Other(format!("cannot watch for SIGTERM: {e}")))?;
    // The terminal going away (a dropped ssh session) must not end a recovery half-way: the
    // run goes on without it, and `runbook status` and `runbook approve` reach it from a new one.
    let mut sighup = signal(SignalKind::hangup())
        .map_err(|e| ExecError::Other(format!("cannot watch for SIGHUP: {e}")))?;
    let (tx, rx) = mpsc::unbounded_channel();
    // Ends with the run: its receiver gone, the next signal finds no one to tell. The
    // handlers stay installed (tokio never removes them), so a late Ctrl-C is still no kill.
    tokio::spawn(async move {
        loop {
            let interrupt = tokio::select! {
                Some(()) = sigint.recv() => Interrupt::CtrlC,
                Some(()) = sigterm.recv() => Interrupt::Terminate,
                Some(()) = sighup.recv() => Interrupt::Hangup,
                else => return,
            };
            if tx.send(interrupt).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// The steps a resume adopted: each one still running is awaited (its exit comes through
/// `tx`); each one that ended while no engine watched is returned, to be handled first, before
/// the clock is looked at: at the resume's instant it would be over budget by the time nobody
/// was there.
fn take_adopted(
    cx: &RunContext,
    adopted: Vec<Adopted>,
    tx: &mpsc::UnboundedSender<Input>,
    running: &mut HashMap<usize, Running>,
) -> Vec<Input> {
    let mut ended_away = Vec::new();
    for a in adopted {
        let (step, attempt) = (a.step, a.attempt);
        if let Some((result, outputs)) = a.result {
            ended_away.push(Input::Exited {
                step,
                attempt,
                result,
                outputs,
            });
            continue;
        }
        let Some(pgid) = a.pgid else { continue };
        running.insert(
            step,
            Running {
                pgid: Arc::new(std::sync::Mutex::new(Some(pgid))),
                exited: Arc::new(AtomicBool::new(false)),
            },
        );
        let tx = tx.clone();
        let files = StepFiles::new(&cx.run_dir, &cx.plan.steps[step].id, attempt);
        let mask = cx.mask.clone();
        tokio::spawn(async move {
            let (result, outputs) = await_adopted(pgid, &files, &mask).await;
            let _ = tx.send(Input::Exited {
                step,
                attempt,
                result,
                outputs,
            });
        });
    }
    ended_away
}

/// Runs the machine for real (or as a drill) until it is done. Adopted steps' outcomes are
/// awaited, never re-run. `interrupts` are the operator's signals ([`watch_signals`]).
pub async fn execute(
    mut cx: RunContext,
    mut machine: Machine,
    start_offset: Duration,
    adopted: Vec<Adopted>,
    mut interrupts: Interrupts,
) -> Result<Outcome, ExecError> {
    process::become_subreaper();
    machine.set_epoch(cx.epoch);
    let origin = Instant::now() - start_offset;
    let now = || Instant::now().saturating_duration_since(origin);
    let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
    let (log_tx, mut log_rx) = mpsc::unbounded_channel::<LogLine>();
    let mut running: HashMap<usize, Running> = HashMap::new();

    let ended_away = take_adopted(&cx, adopted, &tx, &mut running);

    let pending: PendingMap = Arc::default();
    let sup_dead = Arc::new(AtomicBool::new(false));
    let sup = start_supervisor(&cx, &pending, &sup_dead, &tx, &log_tx)?;

    let approvals_dir = cx.run_dir.join("approvals");
    let mut approval_poll = tokio::time::interval(Duration::from_millis(250));
    approval_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut screen = tokio::time::interval(Duration::from_secs(1));
    screen.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = StopState::default();
    let (answer_tx, mut answer_rx) = mpsc::unbounded_channel::<String>();
    let mut stdin_started = false;
    let mut asked: BTreeSet<usize> = BTreeSet::new();

    let mut inputs = ended_away;
    inputs.push(Input::Start);
    let mut effects = machine.handle_all(now(), inputs);
    // Answers from `runbook approve`, told what became of them once that is journaled.
    let mut answered: Option<Answered> = None;
    loop {
        let outcome = perform(
            &mut cx,
            &mut machine,
            effects,
            now(),
            &tx,
            &sup,
            &sup_dead,
            &pending,
            &mut running,
            &mut asked,
        )?;
        if let Some(answers) = answered.take() {
            write_approval_results(&approvals_dir, &answers);
        }
        if let Some(o) = outcome {
            // Answers dropped since the last look are answered too (the machine says they
            // came late): their senders must not wait on a run that is gone.
            let late = take_answers(&approvals_dir, &mut machine, &cx.signatures, now());
            let events: Vec<EventKind> = late
                .iter()
                .flat_map(|(_, acts)| acts)
                .filter_map(|a| match a {
                    Effect::Record(e) => Some(e.clone()),
                    _ => None,
                })
                .collect();
            if !events.is_empty() {
                cx.record_after_end(now(), events)?;
            }
            write_approval_results(&approvals_dir, &late);
            while let Ok(line) = log_rx.try_recv() {
                let id = cx.plan.steps[line.step].id.clone();
                cx.observers.log(&id, &line.text);
            }
            cx.observers.finish();
            sup.close().await;
            return Ok(o);
        }
        if cx.interactive && !asked.is_empty() && !stdin_started {
            stdin_started = true;
            spawn_stdin_reader(answer_tx.clone());
        }
        let wake = machine.next_wake().map(|w| origin + w);
        let input = tokio::select! {
            biased;
            Some(i) = rx.recv() => Some(i),
            Some(line) = log_rx.recv() => {
                let id = cx.plan.steps[line.step].id.clone();
                cx.observers.log(&id, &line.text);
                None
            }
            _ = sleep_until_opt(wake) => Some(Input::Tick),
            _ = approval_poll.tick() => {
                let answers = take_answers(&approvals_dir, &mut machine, &cx.signatures, now());
                if answers.is_empty() { None } else {
                    effects = answers.iter().flat_map(|(_, acts)| acts.clone()).collect();
                    answered = Some(answers);
                    continue;
                }
            }
            Some(line) = answer_rx.recv() => {
                terminal_answer(&line, &machine, &mut cx, now())?
            }
            _ = screen.tick() => {
                let t = now();
                let projected = machine.projected_finish(t);
                cx.observers.tick(t, projected);
                None
            }
            Some(i) = interrupts.recv() => match i {
                Interrupt::CtrlC => interrupt_input(&mut stop, cx.tty_signals, &running, &mut cx.observers),
                Interrupt::Terminate => interrupt_input(&mut stop, false, &running, &mut cx.observers),
                Interrupt::Hangup => {
                    tracing::warn!("SIGHUP: the terminal is gone; the run goes on");
                    None
                }
            },
        };
        effects = Vec::new();
        // A step's output lines are all sent before its exit is: show them first.
        while let Ok(line) = log_rx.try_recv() {
            let id = cx.plan.steps[line.step].id.clone();
            cx.observers.log(&id, &line.text);
        }
        if let Some(i) = input {
            tracing::trace!(input = ?i, "input");
            effects.extend(machine.handle(now(), i));
            // Batch whatever else is already here into the same journal write.
            while let Ok(i) = rx.try_recv() {
                effects.extend(machine.handle(now(), i));
            }
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Ctrl-C: on a terminal the first press asks (a stray key must not stop a recovery) and a
/// second within 5 seconds stops the run gracefully; off a terminal the first stops it. Once
/// stopping, another press kills every running step at once.
fn interrupt_input(
    stop: &mut StopState,
    ask_first: bool,
    running: &HashMap<usize, Running>,
    observers: &mut Observers,
) -> Option<Input> {
    let now = Instant::now();
    if stop.stopping {
        for r in running.values() {
            if let Some(pg) = r.pgid() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pg as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        observers.notice(&format!("\n  killed {} running step(s)", running.len()));
        return None;
    }
    let confirmed = stop
        .asked_at
        .is_some_and(|t| now.duration_since(t) < Duration::from_secs(5));
    if ask_first && !confirmed {
        stop.asked_at = Some(now);
        observers.notice(&format!(
            "\n  interrupt: press Ctrl-C again within 5 seconds to stop the run ({} running step(s) will be terminated; it can be resumed)",
            running.len()
        ));
        return None;
    }
    stop.stopping = true;
    Some(Input::Interrupt)
}

#[derive(Default)]
struct StopState {
    asked_at: Option<Instant>,
    stopping: bool,
}

fn spawn_stdin_reader(tx: mpsc::UnboundedSender<String>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line.trim().to_owned()).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// `y [comment]` / `n [comment]` typed at the terminal answers the oldest open gate; a pasted
/// token (`runbook approve … --print`) answers the gate it names. Either is checked as an
/// answer from `runbook approve` is: a refusal is journaled here, and said on the terminal.
fn terminal_answer(
    line: &str,
    machine: &Machine,
    cx: &mut RunContext,
    now: Duration,
) -> Result<Option<Input>, ExecError> {
    let admitted = if crate::signing::Signed::looks_like_token(line) {
        let signed = match crate::signing::Signed::from_token(line) {
            Ok(s) => s,
            Err(e) => {
                cx.observers.notice(&format!("  {e}"));
                return Ok(None);
            }
        };
        let st = &signed.statement;
        let approve = st.decision == crate::signing::Decision::Approve;
        cx.signatures.admit(
            st.step.clone(),
            st.by.clone(),
            approve,
            (st.comment.clone(), st.value.clone()),
            Some(&signed),
        )
    } else {
        let Some(&gate) = machine.open_gates().first() else {
            return Ok(None);
        };
        // An `input:` step asks for a value: the whole line is it (the machine checks it).
        if let crate::compile::StepKind::Approval(a) = &machine.plan().steps[gate].kind
            && a.input.is_some()
        {
            let step = machine.plan().steps[gate].id.clone();
            let value = Some(line.trim().to_owned());
            return match cx
                .signatures
                .admit(step, cx.operator.clone(), true, (None, value), None)
            {
                Ok(input) => Ok(Some(input)),
                Err(r) => {
                    cx.observers.notice(&format!("  refused: {}", r.reason));
                    cx.record_all(now, vec![EventKind::ApprovalRejected(r)])?;
                    Ok(None)
                }
            };
        }
        let (word, comment) = match line.split_once(char::is_whitespace) {
            Some((w, c)) => (w, Some(c.trim().to_owned()).filter(|c| !c.is_empty())),
            None => (line, None),
        };
        let approve = match word.to_ascii_lowercase().as_str() {
            "y" | "yes" => true,
            "n" | "no" => false,
            _ => {
                cx.observers
                    .notice("  answer `y` or `n` (optionally followed by a comment)");
                return Ok(None);
            }
        };
        let step = machine.plan().steps[gate].id.clone();
        // A `manual:` step: `y [note]` says it is done, every checklist item confirmed.
        let value = match &machine.plan().steps[gate].kind {
            crate::compile::StepKind::Approval(a) if approve => {
                a.manual.as_ref().map(|m| m.checklist.join("\n"))
            }
            _ => None,
        };
        cx.signatures
            .admit(step, cx.operator.clone(), approve, (comment, value), None)
    };
    match admitted {
        Ok(input) => Ok(Some(input)),
        Err(r) => {
            cx.observers.notice(&format!("  refused: {}", r.reason));
            cx.record_all(now, vec![EventKind::ApprovalRejected(r)])?;
            Ok(None)
        }
    }
}
