//! Carrying out the machine's effects: the journal first (one fsync a batch), then spawns,
//! kills and notifications.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::journal::*;

use super::driver::{Pending, PendingMap, Running};
use super::machine::{Effect, ExitResult, Input, Machine, Outcome};
use super::notify::run_notify;
use super::process::StepFiles;
use super::remote::remote_command;
use super::{ExecError, RunContext, process, supervisor};

/// Carries out effects: records first (durable), then the rest. Returns the outcome when the
/// machine is done.
#[expect(
    clippy::too_many_lines,
    reason = "left by issue 15: perform carries out every kind of action; one function per action kind is the split"
)]
#[allow(clippy::too_many_arguments)]
pub(super) fn perform(
    cx: &mut RunContext,
    machine: &mut Machine,
    effects: Vec<Effect>,
    now: Duration,
    tx: &mpsc::UnboundedSender<Input>,
    sup: &supervisor::Handle,
    sup_dead: &AtomicBool,
    pending: &PendingMap,
    running: &mut HashMap<usize, Running>,
    asked: &mut BTreeSet<usize>,
) -> Result<Option<Outcome>, ExecError> {
    let mut queue = effects;
    loop {
        let events: Vec<EventKind> = queue
            .iter()
            .filter_map(|a| match a {
                Effect::Record(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        if !events.is_empty() {
            cx.record_all(now, events)?;
        }
        let mut more = Vec::new();
        let mut outcome = None;
        for a in queue {
            match a {
                Effect::Record(_) => {}
                Effect::Spawn {
                    step,
                    attempt,
                    command,
                    env,
                    hosts,
                } => {
                    let id = cx.plan.steps[step].id.clone();
                    let files = StepFiles::new(&cx.run_dir, &id, attempt);
                    let mut env = env;
                    env.push(("RUNBOOK_STEP".into(), id.clone()));
                    env.push(("RUNBOOK_MODE".into(), cx.mode.as_str().into()));
                    env.push((
                        "RUNBOOK_RUN_ID".into(),
                        cx.run_dir
                            .file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned(),
                    ));
                    let command = if hosts.is_empty() {
                        Ok(command)
                    } else {
                        remote_command(&command, &hosts, &cx.inventory, &env).map(|r| {
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
                                        reason: InterruptReason::SupervisorDied,
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
                Effect::Simulate {
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
                Effect::Kill { step } => {
                    if let Some(r) = running.get(&step) {
                        tracing::debug!(step = %cx.plan.steps[step].id, "terminating the process group");
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
                Effect::Notify {
                    channel,
                    reason,
                    command,
                    message,
                } => {
                    let tx = tx.clone();
                    let root = cx.plan.root.clone();
                    let log = cx.run_dir.join("logs").join("notify.log");
                    let mask = cx.mask.clone();
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
                Effect::Ask { step } => {
                    asked.insert(step);
                    if cx.interactive {
                        let s = &cx.plan.steps[step];
                        let run_id = cx
                            .run_dir
                            .file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned();
                        // The operator's name comes from `--as` or `$USER`: shown, not obeyed.
                        eprintln!(
                            "\n  approve `{}` as {}? type `y` or `n`, optionally followed by a comment, then Enter\n  (or from another terminal: runbook approve {run_id} {} --as NAME)\n",
                            s.id,
                            crate::ui::visible::visible(&cx.operator),
                            s.id
                        );
                    }
                }
                Effect::Done(o) => outcome = Some(o),
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
