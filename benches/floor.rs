//! The floor under the executor benchmark: a "runbook engine" that does nothing but what
//! the journal requires of a run's durability (engine/journal/mod.rs), so that `benches/executor.sh` can say how much of
//! runbook's time against make is the journal's rule and how much is runbook's own work.
//!
//! For each step it appends the step's records to a journal file and, with `sync`, makes them
//! durable (`fdatasync`) before it spawns the step, as the journal requires of a `step_started`;
//! a finished step's record shares the batch of the next start, the most batching the rule
//! allows. No parsing, no scheduler, no logs, no hash, no second process: a spawn and a wait a
//! step.
//!
//!   chain: N steps one after the other (as `make -j1`)
//!   wide:  N independent steps two at a time, then a join (as `make -j2`), each slot its own
//!          thread so that the fdatasyncs of the two slots overlap
//!
//! usage: floor wide|chain N sync|nosync sh|direct JOURNAL
//!   sh:     each step is `sh -c true`, as the engine runs a step's `run:` (docs/format.md)
//!   direct: each step is `true` exec'd straight from PATH, as make runs a recipe with no
//!           shell syntax in it
//!
//! Built by the benchmark with `rustc -O` (std only); not part of the crate.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A journal record of about the size of runbook's (`step_started`, `step_finished`: 300 to
/// 400 bytes of JSON with its two hashes).
const RECORD: &[u8] = &[b'x'; 380];

struct Journal {
    file: File,
    sync: bool,
    /// One batch is appended at a time; the fdatasyncs may overlap.
    append: Mutex<()>,
}

impl Journal {
    fn commit(&self, records: usize) {
        let batch = RECORD.repeat(records);
        {
            let _one_at_a_time = self.append.lock().expect("journal lock");
            (&self.file).write_all(&batch).expect("journal write");
        }
        if self.sync {
            self.file.sync_data().expect("journal fdatasync");
        }
    }
}

/// Runs one step to its end.
fn run(shell: bool) {
    let mut cmd = if shell {
        let mut c = Command::new("sh");
        c.args(["-c", "true"]);
        c
    } else {
        Command::new("true")
    };
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "the step failed: {status}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: floor wide|chain N sync|nosync sh|direct JOURNAL";
    let [_, shape, n, sync, how, journal] = args.as_slice() else {
        panic!("{usage}")
    };
    let n: usize = n.parse().expect(usage);
    let shell = how == "sh";
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)
        .expect("journal open");
    let journal = Arc::new(Journal {
        file,
        sync: sync == "sync",
        append: Mutex::new(()),
    });
    journal.commit(1); // run_started
    match shape.as_str() {
        "chain" => {
            // A step's start shares a batch with the end of the one before.
            for _ in 0..n {
                journal.commit(2);
                run(shell);
            }
        }
        "wide" => {
            // Two slots, each its own thread, so that one slot's fdatasync overlaps the other
            // slot's step and fdatasync: lower than one thread doing both in turn (measured).
            let next = Arc::new(AtomicUsize::new(0));
            let slots: Vec<_> = (0..2)
                .map(|_| {
                    let (journal, next) = (journal.clone(), next.clone());
                    std::thread::spawn(move || {
                        while next.fetch_add(1, Ordering::SeqCst) < n {
                            journal.commit(2);
                            run(shell);
                        }
                    })
                })
                .collect();
            for slot in slots {
                slot.join().expect("slot");
            }
            journal.commit(2); // the join
            run(shell);
        }
        _ => panic!("{usage}"),
    }
    journal.commit(2); // the last step_finished, run_finished
}
