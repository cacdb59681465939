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
    let mut ex = Effects {
        cx,
        machine,
        now,
        tx,
        sup,
        sup_dead,
        pending,
        running,
        asked,
    };
    let mut queue = effects;
    loop {
        // A loop over an output may have grown the plan: steps are looked up in the machine's.
        if !Arc::ptr_eq(&ex.cx.plan, &ex.machine.plan_arc()) {
            ex.cx.plan = ex.machine.plan_arc();
        }
        let events: Vec<EventKind> = queue
            .iter()
            .filter_map(|a| match a {
                Effect::Record(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        let mut more = Vec::new();
        if !events.is_empty() {
            let recs = ex.cx.record_all(now, events)?;
            // A gate's request hash is known once journaled: the machine pages with it. Only
            // where decisions are signed: elsewhere the machine hears nothing new.
            for r in recs.iter().filter(|_| ex.cx.signatures.required) {
                if let EventKind::ApprovalRequested(a) = &r.event
                    && let Some(step) = ex.cx.plan.step_index(&a.step)
                {
                    more.extend(ex.machine.handle(
                        now,
                        Input::Requested {
                            step,
                            hash: r.hash.clone(),
                        },
                    ));
                }
            }
        }
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
                } => more.extend(ex.spawn(step, attempt, command, env, hosts)),
                Effect::Simulate {
                    step,
                    attempt,
                    after,
                } => ex.simulate(step, attempt, after),
                Effect::Kill { step } => ex.kill(step),
                Effect::Notify {
                    channel,
                    reason,
                    command,
                    message,
                } => ex.notify(channel, reason, command, message),
                Effect::Ask { step } => ex.ask(step),
                Effect::Done(o) => outcome = Some(o),
            }
        }
        // Steps whose process ended are no longer ours to kill.
        ex.running
            .retain(|_, r| !r.exited.load(std::sync::atomic::Ordering::SeqCst));
        if more.is_empty() {
            return Ok(outcome);
        }
        queue = more;
    }
}

/// What carrying out one batch of effects borrows from the driver: one method per effect
/// that is more than a line.
struct Effects<'a> {
    cx: &'a mut RunContext,
    machine: &'a mut Machine,
    now: Duration,
    tx: &'a mpsc::UnboundedSender<Input>,
    sup: &'a supervisor::Handle,
    sup_dead: &'a AtomicBool,
    pending: &'a PendingMap,
    running: &'a mut HashMap<usize, Running>,
    asked: &'a mut BTreeSet<usize>,
}

impl Effects<'_> {
    /// Hands a step's attempt to the supervisor. What the machine must hear at once (the
    /// command could not be built, or no supervisor is there to start it) is returned.
    fn spawn(
        &mut self,
        step: usize,
        attempt: u32,
        command: String,
        env: Vec<(String, String)>,
        hosts: Vec<String>,
    ) -> Vec<Effect> {
        let cx = &*self.cx;
        let id = cx.plan.steps[step].id.clone();
        let files = StepFiles::new(&cx.run_dir, &id, attempt);
        let mut env = env;
        env.push(("RUNBOOK_STEP".into(), id.clone()));
        env.push(("RUNBOOK_MODE".into(), cx.mode.as_str().into()));
        env.push(("RUNBOOK_RUN_ID".into(), run_id(cx)));
        // The names of `on:` (hosts, groups, `all`) become the hosts they stand for: what ssh
        // reaches, and what the supervisor keeps a log of each.
        let mut hosts = hosts;
        let command = if hosts.is_empty() {
            Ok(command)
        } else {
            cx.inventory
                .resolve(&hosts)
                .map_err(|unknown| {
                    format!(
                        "not an inventory host or group of the environment: {}",
                        unknown.join(", ")
                    )
                })
                .and_then(|resolved| {
                    if resolved.is_empty() {
                        return Err("the step's `on:` stands for no host".to_owned());
                    }
                    // `run --max-parallel` bounds the hosts of a step too.
                    let mut fanout = cx.plan.steps[step].fanout;
                    if let Some(max) = self.machine.max_parallel() {
                        fanout.max_parallel = fanout
                            .max_parallel
                            .min(u32::try_from(max).unwrap_or(u32::MAX));
                    }
                    let r = remote_command(&command, &resolved, &cx.inventory.hosts, &env, fanout)?;
                    hosts = resolved;
                    Ok(r)
                })
                .map(|r| {
                    env.extend(r.vars);
                    r.script
                })
        };
        let command = match command {
            Ok(command) => command,
            Err(e) => {
                return self.machine.handle(
                    self.now,
                    Input::Exited {
                        step,
                        attempt,
                        result: ExitResult::Error(e),
                        outputs: BTreeMap::new(),
                    },
                );
            }
        };
        env.push((
            "RUNBOOK_OUTPUT".into(),
            files.output.to_string_lossy().into_owned(),
        ));
        let r = Running {
            pgid: Arc::default(),
            exited: Arc::new(AtomicBool::new(false)),
        };
        self.pending.lock().expect("pending lock").insert(
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
        self.running.insert(step, r);
        tracing::debug!(step = %id, attempt, "spawning");
        let sent = !self.sup_dead.load(std::sync::atomic::Ordering::SeqCst)
            && self
                .sup
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
        if sent {
            return Vec::new();
        }
        // Nobody to start it: it did not run, and the run stops.
        self.pending
            .lock()
            .expect("pending lock")
            .remove(&files.key);
        self.running.remove(&step);
        self.machine.handle(
            self.now,
            Input::Fault {
                reason: InterruptReason::SupervisorDied,
                lost: Vec::new(),
                not_started: vec![step],
            },
        )
    }

    /// Real-clock mocks (none today) and adopted simulations.
    fn simulate(&self, step: usize, attempt: u32, after: Duration) {
        let tx = self.tx.clone();
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

    fn kill(&self, step: usize) {
        let Some(r) = self.running.get(&step) else {
            return;
        };
        tracing::debug!(step = %self.cx.plan.steps[step].id, "terminating the process group");
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

    fn notify(&self, channel: String, reason: EscalationReason, command: String, message: String) {
        let tx = self.tx.clone();
        let root = self.cx.plan.root.clone();
        let log = self.cx.run_dir.join("logs").join("notify.log");
        let mask = self.cx.mask.clone();
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

    /// A gate opened: say how to answer it, on the terminal when there is one.
    fn ask(&mut self, step: usize) {
        self.asked.insert(step);
        let cx = &*self.cx;
        if cx.interactive {
            let s = &cx.plan.steps[step];
            // The operator's name comes from `--as` or `$USER`: shown, not obeyed.
            if let crate::compile::StepKind::Approval(a) = &s.kind
                && let Some(input) = &a.input
            {
                eprintln!(
                    "\n  answer `{}` as {}: type the value{}, then Enter\n  (or from another terminal: runbook answer {} {} VALUE --as NAME)\n",
                    s.id,
                    crate::ui::visible::visible(&cx.operator),
                    input
                        .pattern
                        .as_ref()
                        .map(|p| format!(" (matching `{p}`)"))
                        .unwrap_or_default(),
                    run_id(cx),
                    s.id
                );
                return;
            }
            eprintln!(
                "\n  approve `{}` as {}? type `y` or `n`, optionally followed by a comment, then Enter\n  (or from another terminal: runbook approve {} {} --as NAME)\n",
                s.id,
                crate::ui::visible::visible(&cx.operator),
                run_id(cx),
                s.id
            );
        }
    }
}

/// The run's id: its folder's name.
fn run_id(cx: &RunContext) -> String {
    cx.run_dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}
