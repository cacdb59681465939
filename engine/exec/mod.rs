//! The executor: the async shell around [`machine::Machine`]. It turns processes ending,
//! timers, approvals dropped into the run's folder, terminal answers and signals into
//! [`Input`]s, and carries out the machine's [`Action`]s: journal first (one fsync a batch,
//! before any process it announces is spawned or any dependent starts), then spawns, kills
//! and notifications.
//!
//! Dry-runs do not use this shell at all: [`dry_run`] drives the same machine on a virtual
//! clock in a plain loop, so a four-hour scenario rehearses in milliseconds.
//!
//! What runs on which task or thread, and the order of durability it keeps: docs/design.md
//! ("What runs async, and why", "Invariants").

mod fallback;
pub mod machine;
pub mod mask;
pub mod process;
pub mod supervisor;

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::compile::{Host, Plan};
use crate::journal::*;
use crate::ui::observer::Observers;
pub use machine::{Action, Config, ExitResult, Input, Machine, NotifyFailure, Outcome};
use mask::Masker;
use process::{LogLine, StepFiles};

/// Everything a run needs besides the machine.
pub struct Shell {
    pub plan: Arc<Plan>,
    pub run_dir: PathBuf,
    pub journal: Journal,
    pub mask: Arc<Masker>,
    pub observers: Observers,
    pub operator: String,
    pub mode: Mode,
    /// Wall-clock time of elapsed zero (the original start, on a resume).
    pub epoch: DateTime<Utc>,
    pub inventory: BTreeMap<String, Host>,
    /// Ask at gates on this terminal.
    pub interactive: bool,
    pub tty_signals: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The journal could not be written (a full disk, an I/O error): the run stops, and a
    /// resume continues it once the cause is gone.
    #[error("cannot write the journal `{0}`: {1}")]
    Journal(PathBuf, std::io::Error),
    /// The journal is no longer the file the run has been writing: the run stops, and its
    /// evidence is in doubt.
    #[error("the journal `{0}` was {1} while the run was writing it")]
    JournalChanged(PathBuf, String),
    #[error("{0}")]
    Other(String),
}

impl Shell {
    /// Journals a batch of records with one fsync, then shows them.
    pub fn record_all(
        &mut self,
        now: Duration,
        events: Vec<EventKind>,
    ) -> Result<Vec<Record>, ExecError> {
        let ends = events
            .iter()
            .any(|e| matches!(e, EventKind::RunFinished(_) | EventKind::RunInterrupted(_)));
        self.record_batch(now, events, ends)
    }

    /// Journals what comes after the run's end (answers that arrived late) and seals the
    /// journal again: a journal that was sealed ends sealed (docs/design.md, the journal).
    pub fn record_after_end(
        &mut self,
        now: Duration,
        events: Vec<EventKind>,
    ) -> Result<Vec<Record>, ExecError> {
        self.record_batch(now, events, true)
    }

    fn record_batch(
        &mut self,
        now: Duration,
        events: Vec<EventKind>,
        seal: bool,
    ) -> Result<Vec<Record>, ExecError> {
        let at = self.epoch + chrono::Duration::from_std(now).unwrap_or_default();
        let at = if self.mode == Mode::DryRun {
            at
        } else {
            Utc::now().max(at)
        };
        let mut recs: Vec<Record> = events
            .into_iter()
            .map(|e| self.journal.append(at, now, e))
            .collect();
        // Every way a run ends closes its chain with a seal, in the same durable batch.
        if seal {
            recs.push(self.journal.seal(at, now));
        }
        self.journal.sync().map_err(|e| match e {
            WriteError::Io(e) => ExecError::Journal(self.journal.path().to_owned(), e),
            WriteError::Changed(why) => {
                ExecError::JournalChanged(self.journal.path().to_owned(), why)
            }
        })?;
        for r in &recs {
            self.observers.record(r);
        }
        Ok(recs)
    }
}

/// Requests from `runbook approve`, each by its id with the actions it alone led to.
type Answered = Vec<(String, Vec<Action>)>;

/// A step's process, as the shell tracks it: its process group, once the supervisor has
/// reported it (an adopted step's is known from the start).
struct Running {
    pgid: Arc<std::sync::Mutex<Option<u32>>>,
    exited: Arc<AtomicBool>,
}

impl Running {
    fn pgid(&self) -> Option<u32> {
        *self.pgid.lock().expect("pgid lock")
    }
}

/// A step the supervisor runs for us, until it reports the end.
struct Pending {
    step: usize,
    attempt: u32,
    output: PathBuf,
    log: PathBuf,
    pgid: Arc<std::sync::Mutex<Option<u32>>>,
    exited: Arc<AtomicBool>,
    /// Read ends of its stdout and stderr, held for the day its supervisor dies.
    pipes: Vec<std::fs::File>,
}

type PendingMap = Arc<std::sync::Mutex<HashMap<String, Pending>>>;

/// Starts the run's step supervisor; its events become inputs and log lines.
fn start_supervisor(
    shell: &Shell,
    pending: &PendingMap,
    sup_dead: &Arc<AtomicBool>,
    tx: &mpsc::UnboundedSender<Input>,
    log_tx: &mpsc::UnboundedSender<LogLine>,
) -> Result<supervisor::Handle, ExecError> {
    let (pending, tx, log_tx, mask) = (
        pending.clone(),
        tx.clone(),
        log_tx.clone(),
        shell.mask.clone(),
    );
    let status_log = shell.run_dir.join("steps.status");
    let sup_dead = sup_dead.clone();
    supervisor::spawn(
        &shell.plan.root,
        &shell.run_dir.join("steps.status"),
        &shell.plan.secrets.join(","),
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
                    reason: "supervisor_died".into(),
                    lost,
                    not_started: Vec::new(),
                });
            }
        },
    )
    .map_err(|e| ExecError::Other(format!("cannot start the step supervisor: {e}")))
}

/// A step of a dead executor taken over by a resume: its process group still runs (`pgid`),
/// or it already ended and its supervisor left the `result`.
pub struct Adopted {
    pub step: usize,
    pub attempt: u32,
    pub pgid: Option<u32>,
    pub result: Option<(ExitResult, BTreeMap<String, String>)>,
}

/// The executor's runtime: one thread. The loop's work per event is small and mostly waits
/// on the journal's fsync; a second thread would only add wake-ups between threads to every
/// hand-over from the supervisor's pipe to the loop.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs the machine for real (or as a drill) until it is done. Adopted steps' outcomes are
/// awaited, never re-run.
pub async fn execute(
    mut shell: Shell,
    mut machine: Machine,
    start_offset: Duration,
    adopted: Vec<Adopted>,
) -> Result<Outcome, ExecError> {
    process::become_subreaper();
    machine.set_epoch(shell.epoch);
    let origin = Instant::now() - start_offset;
    let now = || Instant::now().saturating_duration_since(origin);
    let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
    let (log_tx, mut log_rx) = mpsc::unbounded_channel::<LogLine>();
    let mut running: HashMap<usize, Running> = HashMap::new();

    for a in adopted {
        let (step, attempt) = (a.step, a.attempt);
        if let Some((result, outputs)) = a.result {
            let _ = tx.send(Input::Exited {
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
        let files = StepFiles::new(&shell.run_dir, &shell.plan.steps[step].id, attempt);
        let mask = shell.mask.clone();
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

    let pending: PendingMap = Arc::default();
    let sup_dead = Arc::new(AtomicBool::new(false));
    let sup = start_supervisor(&shell, &pending, &sup_dead, &tx, &log_tx)?;

    let approvals_dir = shell.run_dir.join("approvals");
    let mut approval_poll = tokio::time::interval(Duration::from_millis(250));
    approval_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut screen = tokio::time::interval(Duration::from_secs(1));
    screen.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| ExecError::Other(format!("cannot watch for Ctrl-C: {e}")))?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| ExecError::Other(format!("cannot watch for SIGTERM: {e}")))?;
    // The terminal going away (a dropped ssh session) must not end a recovery half-way: the
    // run goes on without it, and `runbook status` and `runbook approve` reach it from a new one.
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| ExecError::Other(format!("cannot watch for SIGHUP: {e}")))?;
    let mut stop = StopState::default();
    let (answer_tx, mut answer_rx) = mpsc::unbounded_channel::<String>();
    let mut stdin_started = false;
    let mut asked: BTreeSet<usize> = BTreeSet::new();

    let mut actions = machine.handle(now(), Input::Start);
    // Answers from `runbook approve`, told what became of them once that is journaled.
    let mut answered: Option<Answered> = None;
    loop {
        let outcome = perform(
            &mut shell,
            &mut machine,
            actions,
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
            let late = take_answers(&approvals_dir, &mut machine, now());
            let events: Vec<EventKind> = late
                .iter()
                .flat_map(|(_, acts)| acts)
                .filter_map(|a| match a {
                    Action::Record(e) => Some(e.clone()),
                    _ => None,
                })
                .collect();
            if !events.is_empty() {
                shell.record_after_end(now(), events)?;
            }
            write_approval_results(&approvals_dir, &late);
            while let Ok(line) = log_rx.try_recv() {
                let id = shell.plan.steps[line.step].id.clone();
                shell.observers.log(&id, &line.text);
            }
            shell.observers.finish();
            sup.close().await;
            return Ok(o);
        }
        if shell.interactive && !asked.is_empty() && !stdin_started {
            stdin_started = true;
            spawn_stdin_reader(answer_tx.clone());
        }
        let wake = machine.next_wake().map(|w| origin + w);
        let input = tokio::select! {
            biased;
            Some(i) = rx.recv() => Some(i),
            Some(line) = log_rx.recv() => {
                let id = shell.plan.steps[line.step].id.clone();
                shell.observers.log(&id, &line.text);
                None
            }
            _ = sleep_until_opt(wake) => Some(Input::Tick),
            _ = approval_poll.tick() => {
                let answers = take_answers(&approvals_dir, &mut machine, now());
                if answers.is_empty() { None } else {
                    actions = answers.iter().flat_map(|(_, acts)| acts.clone()).collect();
                    answered = Some(answers);
                    continue;
                }
            }
            Some(line) = answer_rx.recv() => {
                terminal_answer(&line, &machine, &mut shell)
            }
            _ = screen.tick() => {
                let t = now();
                let projected = machine.projected_finish(t);
                shell.observers.tick(t, projected);
                None
            }
            _ = sigint.recv() => interrupt_input(&mut stop, shell.tty_signals, &running, &mut shell.observers),
            _ = sigterm.recv() => interrupt_input(&mut stop, false, &running, &mut shell.observers),
            _ = sighup.recv() => {
                tracing::warn!("SIGHUP: the terminal is gone; the run goes on");
                None
            }
        };
        actions = Vec::new();
        // A step's output lines are all sent before its exit is: show them first.
        while let Ok(line) = log_rx.try_recv() {
            let id = shell.plan.steps[line.step].id.clone();
            shell.observers.log(&id, &line.text);
        }
        if let Some(i) = input {
            tracing::trace!(input = ?i, "input");
            actions.extend(machine.handle(now(), i));
            // Batch whatever else is already here into the same journal write.
            while let Ok(i) = rx.try_recv() {
                actions.extend(machine.handle(now(), i));
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

/// Carries out actions: records first (durable), then the rest. Returns the outcome when the
/// machine is done.
#[expect(
    clippy::too_many_lines,
    reason = "left by issue 15: perform carries out every kind of action; one function per action kind is the split"
)]
#[allow(clippy::too_many_arguments)]
fn perform(
    shell: &mut Shell,
    machine: &mut Machine,
    actions: Vec<Action>,
    now: Duration,
    tx: &mpsc::UnboundedSender<Input>,
    sup: &supervisor::Handle,
    sup_dead: &AtomicBool,
    pending: &PendingMap,
    running: &mut HashMap<usize, Running>,
    asked: &mut BTreeSet<usize>,
) -> Result<Option<Outcome>, ExecError> {
    let mut queue = actions;
    loop {
        let events: Vec<EventKind> = queue
            .iter()
            .filter_map(|a| match a {
                Action::Record(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        if !events.is_empty() {
            shell.record_all(now, events)?;
        }
        let mut more = Vec::new();
        let mut outcome = None;
        for a in queue {
            match a {
                Action::Record(_) => {}
                Action::Spawn {
                    step,
                    attempt,
                    command,
                    env,
                    hosts,
                } => {
                    let id = shell.plan.steps[step].id.clone();
                    let files = StepFiles::new(&shell.run_dir, &id, attempt);
                    let mut env = env;
                    env.push(("RUNBOOK_STEP".into(), id.clone()));
                    env.push(("RUNBOOK_MODE".into(), shell.mode.as_str().into()));
                    env.push((
                        "RUNBOOK_RUN_ID".into(),
                        shell
                            .run_dir
                            .file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned(),
                    ));
                    let command = if hosts.is_empty() {
                        Ok(command)
                    } else {
                        remote_command(&command, &hosts, &shell.inventory, &env).map(|r| {
                            env.extend(r.vars);
                            r.script
                        })
                    };
                    match command {
                        Ok(command) => {
                            env.push((
                                "RUNBOOK_OUTPUT".into(),
                                files.output.to_string_lossy().into_owned(),
                            ));
                            let r = Running {
                                pgid: Arc::default(),
                                exited: Arc::new(AtomicBool::new(false)),
                            };
                            pending.lock().expect("pending lock").insert(
                                files.key.clone(),
                                Pending {
                                    step,
                                    attempt,
                                    output: files.output.clone(),
                                    log: files.log.clone(),
                                    pgid: r.pgid.clone(),
                                    exited: r.exited.clone(),
                                    pipes: Vec::new(),
                                },
                            );
                            running.insert(step, r);
                            tracing::debug!(step = %id, attempt, "spawning");
                            let sent = !sup_dead.load(std::sync::atomic::Ordering::SeqCst)
                                && sup
                                    .requests
                                    .send(supervisor::Request {
                                        key: files.key.clone(),
                                        step,
                                        command,
                                        log: files.log.clone(),
                                        env,
                                        hosts,
                                    })
                                    .is_ok();
                            if !sent {
                                // Nobody to start it: it did not run, and the run stops.
                                pending.lock().expect("pending lock").remove(&files.key);
                                running.remove(&step);
                                more.extend(machine.handle(
                                    now,
                                    Input::Fault {
                                        reason: "supervisor_died".into(),
                                        lost: Vec::new(),
                                        not_started: vec![step],
                                    },
                                ));
                            }
                        }
                        Err(e) => {
                            more.extend(machine.handle(
                                now,
                                Input::Exited {
                                    step,
                                    attempt,
                                    result: ExitResult::Error(e),
                                    outputs: BTreeMap::new(),
                                },
                            ));
                        }
                    }
                }
                Action::Simulate {
                    step,
                    attempt,
                    after,
                } => {
                    // Real-clock mocks (none today) and adopted simulations.
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = tx.send(Input::Exited {
                            step,
                            attempt,
                            result: ExitResult::Code(0),
                            outputs: BTreeMap::new(),
                        });
                    });
                }
                Action::Kill { step } => {
                    if let Some(r) = running.get(&step) {
                        tracing::debug!(step = %shell.plan.steps[step].id, "terminating the process group");
                        let (pgid, exited) = (r.pgid.clone(), r.exited.clone());
                        tokio::spawn(async move {
                            // The supervisor reports the group right after it starts it.
                            for _ in 0..200 {
                                let known = *pgid.lock().expect("pgid lock");
                                if let Some(pg) = known {
                                    process::terminate(pg, process::GRACE, exited).await;
                                    return;
                                }
                                if exited.load(std::sync::atomic::Ordering::SeqCst) {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        });
                    }
                }
                Action::Notify {
                    channel,
                    reason,
                    command,
                    message,
                } => {
                    let tx = tx.clone();
                    let root = shell.plan.root.clone();
                    let log = shell.run_dir.join("logs").join("notify.log");
                    let mask = shell.mask.clone();
                    tokio::spawn(async move {
                        let failed = run_notify(&command, &root, &log, &mask).await.err();
                        let _ = tx.send(Input::Notified {
                            channel,
                            reason,
                            message,
                            failed,
                        });
                    });
                }
                Action::Ask { step } => {
                    asked.insert(step);
                    if shell.interactive {
                        let s = &shell.plan.steps[step];
                        let run_id = shell
                            .run_dir
                            .file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned();
                        // The operator's name comes from `--as` or `$USER`: shown, not obeyed.
                        eprintln!(
                            "\n  approve `{}` as {}? type `y` or `n`, optionally followed by a comment, then Enter\n  (or from another terminal: runbook approve {run_id} {} --as NAME)\n",
                            s.id,
                            crate::ui::visible::visible(&shell.operator),
                            s.id
                        );
                    }
                }
                Action::Done(o) => outcome = Some(o),
            }
        }
        // Steps whose process ended are no longer ours to kill.
        running.retain(|_, r| !r.exited.load(std::sync::atomic::Ordering::SeqCst));
        if more.is_empty() {
            return Ok(outcome);
        }
        queue = more;
    }
}

/// Wraps a command to run on inventory hosts over ssh (batch mode), all hosts in parallel,
/// each line of output prefixed with its host; the step fails if any host fails.
///
/// Nothing from the inventory or the step's environment is spelled into the script: the
/// script names variables, and their values come with `env` (returned beside it, added to
/// the step's own), so a value is never read as shell text. Each value reaches ssh as one
/// argument, the destination after `--`.
///
/// The step's environment goes to the remote side over ssh's standard input, never on a
/// command line (where `ps` on both machines shows it): the script encodes its own variables
/// at run time, one `NAME BASE64` line each, then `.`; the remote wrapper reads those lines
/// and exports them before it starts the command.
///
/// Killing the local process group ends the ssh clients, and with them the remote commands:
/// sshd does not signal the processes of a session without a terminal when its client goes,
/// so each remote command runs beside a watcher of the session's stdin, which ssh holds open
/// (a FIFO of the host's own, which only the environment is written to) for as long as it
/// lives; when the connection closes, the watcher terminates the remote process group
/// (SIGTERM, then SIGKILL after the same grace as a local step).
fn remote_command(
    command: &str,
    hosts: &[String],
    inventory: &BTreeMap<String, Host>,
    env: &[(String, String)],
) -> Result<RemoteCommand, String> {
    let grace = process::GRACE.as_secs();
    // `read` takes the block a byte at a time, so the watcher is left the rest of stdin.
    let remote = format!(
        "while :; do read -r runbook_k runbook_v || exit 255; [ \"$runbook_k\" = . ] && break; \
         runbook_v=$(printf '%s' \"$runbook_v\" | base64 -d && echo .) || \
         {{ echo \"runbook: cannot decode the step's environment on this host: is base64 installed?\" >&2; exit 255; }}; \
         export \"$runbook_k=${{runbook_v%.}}\"; done; unset runbook_k runbook_v; \
         exec 3<&0; \
         ( trap '' TERM; while read -r _; do :; done; kill -TERM 0; sleep {grace}; kill -KILL 0 ) <&3 >/dev/null 2>&1 & w=$!; \
         (\n{command}\n) </dev/null 3<&- & c=$!; exec 3<&-; \
         wait \"$c\"; s=$?; kill -KILL \"$w\" 2>/dev/null; exit \"$s\""
    );
    let mut vars = vec![("RUNBOOK_SSH_REMOTE".to_owned(), remote)];
    let mut script = String::from(
        "command -v base64 >/dev/null 2>&1 || { echo \"runbook: base64 is not installed: it carries the step's environment to the hosts\" >&2; exit 127; }; blk=$(",
    );
    for (name, _) in env {
        if !is_shell_name(name) {
            return Err(format!(
                "`{name}` cannot be sent to the hosts: it is not an environment variable name"
            ));
        }
        // `printf` is a builtin: the value is on no process's command line here either.
        script.push_str(&format!(
            "printf '{name} '; printf '%s' \"${name}\" | base64 | tr -d '\\n'; echo; "
        ));
    }
    script.push_str("echo .); pids=''; ");
    for (k, h) in hosts.iter().enumerate() {
        let Some(host) = inventory.get(h) else {
            let known: Vec<&str> = inventory.keys().map(String::as_str).collect();
            return Err(format!(
                "host `{h}` is not in the environment's inventory ({})",
                if known.is_empty() {
                    "which is empty: pass --env".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        };
        let var = |what: &str| format!("RUNBOOK_SSH_{k}_{what}");
        let mut ssh = String::from("ssh -o BatchMode=yes -o ConnectTimeout=10");
        if let Some(p) = &host.port {
            ssh.push_str(&format!(" -p \"${}\"", var("PORT")));
            vars.push((var("PORT"), p.to_string()));
        }
        if let Some(i) = &host.identity {
            ssh.push_str(&format!(
                " -i \"${}\" -o IdentitiesOnly=yes",
                var("IDENTITY")
            ));
            vars.push((var("IDENTITY"), shellexpand_home(i)));
        }
        if let Some(kh) = &host.known_hosts {
            ssh.push_str(&format!(
                " -o \"UserKnownHostsFile=${}\"",
                var("KNOWN_HOSTS")
            ));
            vars.push((var("KNOWN_HOSTS"), shellexpand_home(kh)));
        }
        ssh.push_str(&format!(" -- \"${}\" \"$RUNBOOK_SSH_REMOTE\"", var("DEST")));
        vars.push((
            var("DEST"),
            match &host.user {
                Some(u) => format!("{u}@{}", host.host),
                None => host.host.clone(),
            },
        ));
        vars.push((var("NAME"), h.clone()));
        // The FIFO is the host's own: the environment written into it is for this ssh alone.
        // A writer in the background, ended when ssh is: an environment larger than the
        // pipe's buffer waits for ssh to read it, and is never read if ssh cannot connect.
        script.push_str(&format!(
            "( f=\"$RUNBOOK_OUTPUT.stdin{k}\"; rm -f \"$f\"; mkfifo -m 600 \"$f\" && exec 3<>\"$f\"; rm -f \"$f\"; \
             printf '%s\\n' \"$blk\" >&3 & b=$!; \
             {{ {ssh} 2>&1 <&3; echo \"$?\" > \"$RUNBOOK_OUTPUT.host{k}\"; }} | awk '{{ print \"[\" ENVIRON[\"{name}\"] \"] \" $0; fflush() }}'; \
             kill \"$b\" 2>/dev/null ) & pids=\"$pids $!\"; ",
            name = var("NAME"),
        ));
    }
    script.push_str("for p in $pids; do wait \"$p\"; done; fail=0; ");
    for k in 0..hosts.len() {
        script.push_str(&format!(
            "s=$(cat \"$RUNBOOK_OUTPUT.host{k}\" 2>/dev/null || echo 255); rm -f \"$RUNBOOK_OUTPUT.host{k}\"; \
             [ \"$s\" = 0 ] || {{ printf 'host %s failed with exit %s\\n' \"$RUNBOOK_SSH_{k}_NAME\" \"$s\" >&2; fail=1; }}; "
        ));
    }
    script.push_str("exit $fail");
    Ok(RemoteCommand { script, vars })
}

/// The local script of an `on:` step, and the variables it reads its values from.
struct RemoteCommand {
    script: String,
    vars: Vec<(String, String)>,
}

/// A name the shell can expand as `$NAME`.
fn is_shell_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn shellexpand_home(p: &str) -> String {
    match (p.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => p.to_owned(),
    }
}

/// The lines of a failed notify command's stderr that its `escalated` record keeps: enough to
/// see why nobody was paged, not the whole of a chatty tool's output.
const NOTIFY_STDERR_LINES: usize = 5;

/// Runs a notify command, logging it to `logs/notify.log`; how it failed, if it did.
async fn run_notify(
    command: &str,
    root: &std::path::Path,
    log: &std::path::Path,
    mask: &Masker,
) -> Result<(), NotifyFailure> {
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(root)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let shown = mask.mask(command);
    let (outcome, text) = match result {
        Ok(Ok(o)) => {
            use std::os::unix::process::ExitStatusExt;
            let stderr = mask.mask(&String::from_utf8_lossy(&o.stderr));
            // How it ended in words, not Rust's `Some(1)`: the log is read by people.
            let how = match (o.status.code(), o.status.signal()) {
                (Some(c), _) => format!("exit {c}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                (None, None) => "ended without an exit code".to_owned(),
            };
            let mut text = format!(
                "$ {shown}\n{}{stderr}",
                mask.mask(&String::from_utf8_lossy(&o.stdout)),
            );
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&how);
            text.push('\n');
            let outcome = if o.status.success() {
                Ok(())
            } else {
                let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                let tail = lines[lines.len().saturating_sub(NOTIFY_STDERR_LINES)..].join("\n");
                Err(NotifyFailure {
                    error: how,
                    exit_code: o.status.code(),
                    stderr_tail: (!tail.is_empty()).then_some(tail),
                })
            };
            (outcome, text)
        }
        Ok(Err(e)) => {
            let error = format!("cannot run: {e}");
            let text = format!("$ {shown}\n{error}\n");
            (
                Err(NotifyFailure {
                    error,
                    ..Default::default()
                }),
                text,
            )
        }
        Err(_) => {
            let error = "timed out after 30s".to_owned();
            let text = format!("$ {shown}\n{error}\n");
            (
                Err(NotifyFailure {
                    error,
                    ..Default::default()
                }),
                text,
            )
        }
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        use std::io::Write;
        let _ = f.write_all(text.as_bytes());
    }
    outcome
}

/// Waits for an adopted process group to end, then reads the status its supervisor wrote.
async fn await_adopted(
    pgid: u32,
    files: &StepFiles,
    mask: &Masker,
) -> (ExitResult, BTreeMap<String, String>) {
    while files.recorded().1.is_none() && process::group_alive(pgid) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A live supervisor records the end the moment it reaps the step: give it that moment.
    for _ in 0..10 {
        if files.recorded().1.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    process::end_foreign_group(pgid).await;
    adopted_result(files, mask)
}

/// The outcome of a step whose executor died, from what its supervisor recorded.
pub fn adopted_result(files: &StepFiles, mask: &Masker) -> (ExitResult, BTreeMap<String, String>) {
    let result = match files.recorded().1 {
        Some(c) => ExitResult::Code(c),
        // Its supervisor died before it ended: it may have done all, some or none of its work.
        None => ExitResult::Unknown(
            "its process ended while no supervisor watched it: how it ended is not known".into(),
        ),
    };
    let (outputs, _) = process::take_outputs(&files.output, &files.log, mask);
    (result, outputs)
}

/// An approval dropped by `runbook approve`/`deny`: `approvals/<id>.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ApprovalRequest {
    pub step: String,
    pub by: String,
    pub approve: bool,
    pub comment: Option<String>,
}

fn read_approval_requests(dir: &std::path::Path) -> Vec<(String, Input)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let id = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let _ = std::fs::rename(&f, f.with_extension("taken"));
        match serde_json::from_str::<ApprovalRequest>(&text) {
            Ok(r) => out.push((
                id,
                Input::Answer {
                    step: r.step,
                    by: r.by,
                    approve: r.approve,
                    comment: r.comment,
                },
            )),
            Err(e) => {
                let _ = std::fs::write(
                    f.with_extension("result"),
                    format!("rejected: unreadable request: {e}\n"),
                );
            }
        }
    }
    out
}

/// Hands each request from `runbook approve` to the machine, one at a time and in the order
/// they were dropped, keeping what each led to: two answers to one gate in the same batch
/// each learn their own fate.
fn take_answers(dir: &std::path::Path, machine: &mut Machine, now: Duration) -> Answered {
    read_approval_requests(dir)
        .into_iter()
        .map(|(req, input)| (req, machine.handle(now, input)))
        .collect()
}

/// Tells each `runbook approve` caller what became of its request, from its own actions.
fn write_approval_results(dir: &std::path::Path, answers: &[(String, Vec<Action>)]) {
    for (id, acts) in answers {
        let verdict = acts
            .iter()
            .find_map(|a| match a {
                Action::Record(EventKind::ApprovalRejected(r)) => {
                    Some(format!("rejected: {}", r.reason))
                }
                Action::Record(EventKind::ApprovalLate(l)) => {
                    Some(format!("rejected: {}", l.reason))
                }
                Action::Record(EventKind::ApprovalGranted(g)) => {
                    Some(format!("granted: approved by {}", g.by.join(", ")))
                }
                Action::Record(EventKind::ApprovalReceived(g)) => Some(format!(
                    "recorded: approval by {} counted; more approvers needed",
                    g.by
                )),
                Action::Record(EventKind::ApprovalDenied(g)) => {
                    Some(format!("denied: by {}", g.by))
                }
                _ => None,
            })
            .unwrap_or_else(|| "rejected: the run did not take it".into());
        let path = dir.join(format!("{id}.result"));
        let tmp = dir.join(format!("{id}.result.tmp"));
        if std::fs::write(&tmp, format!("{verdict}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
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

/// `y [comment]` / `n [comment]` typed at the terminal answers the oldest open gate.
fn terminal_answer(line: &str, machine: &Machine, shell: &mut Shell) -> Option<Input> {
    let gate = *machine.open_gates().first()?;
    let (word, comment) = match line.split_once(char::is_whitespace) {
        Some((w, c)) => (w, Some(c.trim().to_owned()).filter(|c| !c.is_empty())),
        None => (line, None),
    };
    let approve = match word.to_ascii_lowercase().as_str() {
        "y" | "yes" => true,
        "n" | "no" => false,
        _ => {
            shell
                .observers
                .notice("  answer `y` or `n` (optionally followed by a comment)");
            return None;
        }
    };
    Some(Input::Answer {
        step: machine.plan().steps[gate].id.clone(),
        by: shell.operator.clone(),
        approve,
        comment,
    })
}

/// Drives the machine on a virtual clock: nothing executes, nothing is sent. Simulated
/// steps end after their duration; timers fire at their exact instants.
pub fn dry_run(shell: &mut Shell, machine: &mut Machine) -> Result<Outcome, ExecError> {
    use std::cmp::Reverse;
    let mut queue: BinaryHeap<Reverse<(Duration, u64, usize, u32)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut now = Duration::ZERO;
    let mut actions = machine.handle(now, Input::Start);
    loop {
        let mut events = Vec::new();
        let mut follow = Vec::new();
        let mut outcome = None;
        for a in actions {
            match a {
                Action::Record(e) => events.push(e),
                Action::Simulate {
                    step,
                    attempt,
                    after,
                } => {
                    seq += 1;
                    queue.push(Reverse((now + after, seq, step, attempt)));
                }
                Action::Notify {
                    channel,
                    reason,
                    message,
                    ..
                } => follow.push(Input::Notified {
                    channel,
                    reason,
                    message: format!("{message} (dry-run: not sent)"),
                    failed: None,
                }),
                Action::Done(o) => outcome = Some(o),
                Action::Spawn { step, attempt, .. } => {
                    // Cannot happen in a dry-run; treat as simulated rather than run anything.
                    seq += 1;
                    queue.push(Reverse((now, seq, step, attempt)));
                }
                Action::Kill { .. } | Action::Ask { .. } => {}
            }
        }
        if !events.is_empty() {
            shell.record_all(now, events)?;
        }
        if let Some(o) = outcome {
            shell.observers.finish();
            return Ok(o);
        }
        actions = Vec::new();
        for i in follow {
            actions.extend(machine.handle(now, i));
        }
        if !actions.is_empty() {
            continue;
        }
        let next_sim = queue.peek().map(|Reverse((t, ..))| *t);
        let next_wake = machine.next_wake();
        let next = match (next_sim, next_wake) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => {
                return Err(ExecError::Other(
                    "the dry-run stalled: no step can start and nothing is pending".into(),
                ));
            }
        };
        now = now.max(next);
        if next_sim == Some(next) {
            let Reverse((_, _, step, attempt)) = queue.pop().expect("peeked");
            actions = machine.handle(
                now,
                Input::Exited {
                    step,
                    attempt,
                    result: ExitResult::Code(0),
                    outputs: BTreeMap::new(),
                },
            );
        } else {
            actions = machine.handle(now, Input::Tick);
        }
    }
}

#[cfg(test)]
mod remote_command_tests {
    use super::*;

    /// Regression: the step's environment was spelled into the script (`export S='...'`),
    /// and so into the command lines of its shells and of ssh.
    #[test]
    fn no_value_of_the_inventory_or_the_environment_is_in_the_script() {
        let host = Host {
            host: "db-host-value.example".into(),
            user: Some("user_value".into()),
            port: Some(2222),
            identity: Some("/keys/identity-value".into()),
            known_hosts: Some("/keys/known-hosts-value".into()),
        };
        let inventory = BTreeMap::from([("name-value".to_owned(), host)]);
        let env = [("S".to_owned(), "secret-value\nit's $HOME".to_owned())];
        let r = remote_command("echo hi", &["name-value".into()], &inventory, &env).unwrap();
        for value in [
            "db-host-value",
            "user_value",
            "2222",
            "identity-value",
            "known-hosts-value",
            "name-value",
            "secret-value",
        ] {
            assert!(!r.script.contains(value), "`{value}` in {}", r.script);
        }
        let var = |name: &str| {
            r.vars
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            var("RUNBOOK_SSH_0_DEST"),
            Some("user_value@db-host-value.example")
        );
        assert_eq!(var("RUNBOOK_SSH_0_NAME"), Some("name-value"));
        assert!(r.vars.iter().all(|(_, v)| !v.contains("secret-value")));
    }
}
