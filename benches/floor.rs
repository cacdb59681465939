//! The floor under the executor benchmark: a "runbook engine" that does nothing but what
//! DESIGN.md requires of a run's durability, so that `benches/executor.sh` can say how much of
//! runbook's time against make is the journal's rule and how much is runbook's own work.
//!
//! For each step it appends the step's records to a journal file and, with `sync`, makes them
//! durable (`fdatasync`) before it spawns the step, as DESIGN.md requires of a `step_started`;
//! a finished step's record shares the batch of the next start, the most batching the rule
//! allows. No parsing, no scheduler, no logs, no hash, no second process: one thread, a spawn
//! and a `wait` a step.
//!
//!   chain: N steps one after the other (as `make -j1`)
//!   wide:  N independent steps two at a time, then a join (as `make -j2`)
//!
//! usage: floor wide|chain N sync|nosync sh|direct JOURNAL
//!   sh:     each step is `sh -c true`, as DESIGN.md runs a step's `run:`
//!   direct: each step is `true` exec'd straight from PATH, as make runs a recipe with no
//!           shell syntax in it
//!
//! Built by the benchmark with `rustc -O` (std only); not part of the crate.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::{Child, Command, Stdio};

unsafe extern "C" {
    fn wait(status: *mut i32) -> i32;
}

/// A journal record of about the size of runbook's (`step_started`, `step_finished`: 300 to
/// 400 bytes of JSON with its two hashes).
const RECORD: &[u8] = &[b'x'; 380];

struct Journal {
    file: File,
    sync: bool,
}

impl Journal {
    fn commit(&mut self, records: usize) {
        let batch = RECORD.repeat(records);
        self.file.write_all(&batch).expect("journal write");
        if self.sync {
            self.file.sync_data().expect("journal fdatasync");
        }
    }
}

fn spawn(shell: bool) -> Child {
    let mut cmd = if shell {
        let mut c = Command::new("sh");
        c.args(["-c", "true"]);
        c
    } else {
        Command::new("true")
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

/// Reaps whichever child ends first; its pid.
fn wait_any() -> u32 {
    let mut status = 0;
    // SAFETY: wait(2) with a valid pointer to an int.
    let pid = unsafe { wait(&mut status) };
    assert!(pid > 0 && status == 0, "wait: pid {pid}, status {status}");
    pid as u32
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: floor wide|chain N sync|nosync sh|direct JOURNAL";
    let [_, shape, n, sync, how, journal] = args.as_slice() else {
        panic!("{usage}")
    };
    let n: usize = n.parse().expect(usage);
    let slots = match shape.as_str() {
        "wide" => 2,
        "chain" => 1,
        _ => panic!("{usage}"),
    };
    let shell = how == "sh";
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)
        .expect("journal open");
    let mut journal = Journal {
        file,
        sync: sync == "sync",
    };

    let mut running: Vec<Child> = Vec::new();
    let first = slots.min(n);
    journal.commit(1 + first); // run_started and the first starts
    for _ in 0..first {
        running.push(spawn(shell));
    }
    let mut started = first;
    while !running.is_empty() {
        let pid = wait_any();
        let done = running
            .iter()
            .position(|c| c.id() == pid)
            .expect("our child");
        running.swap_remove(done);
        if started < n {
            journal.commit(2); // this step_finished and the next step_started
            running.push(spawn(shell));
            started += 1;
        } else {
            journal.commit(1);
        }
    }
    if shape == "wide" {
        journal.commit(1);
        spawn(shell);
        wait_any();
        journal.commit(1);
    }
    journal.commit(1); // run_finished
}
