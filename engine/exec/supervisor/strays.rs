//! Finding what a step left running outside its process group but inside the run's session.

use std::collections::HashMap;

/// What step `step_id` left running outside its group `step_pgid` but inside the run's
/// session — `timeout cmd &` (timeout makes a group of its own), `setpgrp`, `setpgid(0, 0)` —
/// by pid. Such a process is a job of the step, and ends with it. One that called `setsid`
/// is in a session of its own: a daemon the step started on purpose (`pg_ctl start`,
/// `redis-server --daemonize yes`), and is left running.
///
/// A process is the step's when it is below us (a subreaper: what a step's shell leaves is
/// handed to us when the shell ends) and carries the step's `RUNBOOK_STEP`. Only our own
/// children that lead no step can be such orphans, so without one nothing is walked: a
/// stray whose parent still runs in the step's group is found once the group is ended.
pub(super) fn strays(step_id: &str, step_pgid: i32, leaders: &[i32]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let orphans = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .any(|p| !leaders.contains(&p));
    if !orphans {
        return Vec::new();
    }
    let (Ok(sid), pgid) = (nix::unistd::getsid(None), nix::unistd::getpgrp()) else {
        return Vec::new();
    };
    let (sid, own_pgid) = (sid.as_raw(), pgid.as_raw());
    // pid -> (ppid, pgid, session), for the living.
    let mut procs: HashMap<i32, (i32, i32, i32)> = HashMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for e in rd.filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().take(4).collect();
        let [state, ppid, pgrp, session] = f[..] else {
            continue;
        };
        if state == "Z" || state == "X" {
            continue;
        }
        let num = |x: &str| x.parse::<i32>().unwrap_or(0);
        procs.insert(pid, (num(ppid), num(pgrp), num(session)));
    }
    let below_us = |mut pid: i32| {
        for _ in 0..64 {
            match procs.get(&pid) {
                Some(&(ppid, _, _)) if ppid == me => return true,
                Some(&(ppid, _, _)) if ppid > 1 => pid = ppid,
                _ => return false,
            }
        }
        false
    };
    let tag = format!("RUNBOOK_STEP={step_id}");
    let mut found: Vec<i32> = procs
        .iter()
        .filter(|&(&pid, &(_, pgrp, session))| {
            session == sid && pgrp != step_pgid && pgrp != own_pgid && pid != me
        })
        .map(|(&pid, _)| pid)
        .filter(|&pid| below_us(pid))
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == tag.as_bytes()))
        })
        .collect();
    found.sort_unstable();
    found
}
