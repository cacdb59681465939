//! Runs the real `runbook` binary, as a user would, for every integration test (`crate::support`).
//!
//! A [`Project`] is a temporary project folder: the test writes runbooks and scripts into it
//! (or copies the repository's `runbooks/` and `steps/`), runs commands in it to completion or
//! starts them in the background, and reads what they left: journals, events, step logs,
//! reports. Every invocation runs with no standard input, `NO_COLOR=1`, `USER=tester`, its own
//! state folder (`<project>/.runbook`) and a deadline past which it is killed and the test
//! fails. For one-shot commands, [`runbook`] builds a project and runs one command in it, its
//! output redacted (the temporary folder's path as `[TMP]`) for snapshots.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_runbook");

/// The longest an invocation may take, by default, before the test gives up on it.
pub const HANG: Duration = Duration::from_secs(60);

/// The repository root: the shipped runbooks and step library live under it.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies a folder recursively, keeping file modes (step scripts stay executable).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Is a process with this pid running? A zombie is not: it has ended, and only waits for
/// whoever adopted it to collect its status.
pub fn pid_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

/// Polls until `cond` holds, or fails the test after [`HANG`].
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < HANG, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A step of a JSON report, by id.
#[track_caller]
pub fn report_step<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .expect("the report's steps")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {report}"))
}

/// The headless Chromium the suite installs (`RUNBOOK_TEST_CHROMIUM`, else Debian's); a test
/// that needs it fails without it.
pub fn chromium() -> String {
    std::env::var("RUNBOOK_TEST_CHROMIUM")
        .ok()
        .or_else(|| {
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
                .iter()
                .find(|p| Path::new(p).exists())
                .map(|s| s.to_string())
        })
        .expect(
            "chromium is needed for this test: tests/suite.sh installs it (apt-get install chromium)",
        )
}

/// Renders an HTML file in headless Chromium (1100x900, a profile of its own in `dir`) and
/// returns the screenshot's path, which must exist.
#[track_caller]
pub fn chromium_screenshot(html: &Path, dir: &Path) -> PathBuf {
    let png = dir.join("r.png");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1100,900",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .output()
        .expect("start chromium");
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    png
}

/// The events of a journal of this type.
pub fn events_of<'a>(journal: &'a [Value], ty: &str) -> Vec<&'a Value> {
    journal.iter().filter(|e| e["type"] == ty).collect()
}

/// A throwaway project folder and its state (`.runbook/`).
pub struct Project {
    pub dir: TempDir,
    /// The scenario [`Project::run_scenario`] runs.
    scenario: String,
    /// How long one invocation may take.
    deadline: Duration,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    /// An empty project.
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("a temporary folder"),
            scenario: String::new(),
            deadline: HANG,
        }
    }

    /// A project with `runbooks/<scenario>.yaml` holding `yaml`, the scenario
    /// [`Project::run_scenario`] runs.
    pub fn with_runbook(scenario: &str, yaml: &str) -> Self {
        let mut p = Project::new();
        p.scenario = scenario.to_owned();
        p.write(&format!("runbooks/{scenario}.yaml"), yaml);
        p
    }

    /// Adds a copy of the repository's step library (`steps/`).
    pub fn with_repo_steps(self) -> Self {
        copy_dir(&repo_root().join("steps"), &self.path().join("steps"));
        self
    }

    /// Adds a copy of the repository's runbooks and environments (`runbooks/`).
    pub fn with_repo_runbooks(self) -> Self {
        copy_dir(&repo_root().join("runbooks"), &self.path().join("runbooks"));
        self
    }

    /// Lets each invocation take this long before the test gives up on it.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (parent folders created).
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// Writes an executable script.
    pub fn script(&self, rel: &str, text: &str) -> &Self {
        use std::os::unix::fs::PermissionsExt;
        self.write(rel, text);
        std::fs::set_permissions(
            self.path().join(rel),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("make a script executable");
        self
    }

    /// A new ed25519 key pair made by `ssh-keygen` at `keys/<name>` (and `keys/<name>.pub`),
    /// no passphrase, comment `<name>`: the private key's path.
    pub fn keygen(&self, name: &str) -> PathBuf {
        let key = self.path().join("keys").join(name);
        std::fs::create_dir_all(key.parent().unwrap()).unwrap();
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .status()
            .expect("ssh-keygen runs (openssh-client is installed by tests/suite.sh)");
        assert!(ok.success(), "ssh-keygen made no key for {name}");
        key
    }

    /// Writes `runbooks/allowed_signers`, one line per (person, key made by
    /// [`Project::keygen`]), with `namespaces="runbook-approval"`.
    pub fn allow_signers(&self, people: &[(&str, &Path)]) -> &Self {
        let mut text = String::from("# who may sign approvals\n");
        for (name, key) in people {
            let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
            text.push_str(&format!(
                "{name} namespaces=\"runbook-approval\" {}",
                public.trim()
            ));
            text.push('\n');
        }
        self.write("runbooks/allowed_signers", &text)
    }

    /// A file of the project; empty when it is missing.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }

    /// `runbook ARGS` in the project, output captured, not started yet.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("RUNBOOK_STATE_DIR", self.path().join(".runbook"))
            .env("USER", "tester")
            // A real run signs its seal with `~/.ssh/id_ed25519` when there is one: the tester's
            // own key must not sign, or change what runs print (a test gives `--key`).
            .env("HOME", self.path())
            .env_remove("RUNBOOK_SIGNING_KEY")
            .env_remove("RUST_LOG")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("FORCE_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `runbook ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_with(self.cmd(args))
    }

    /// Runs a command made by [`Project::cmd`] (and adjusted) to the end.
    pub fn run_with(&self, cmd: Command) -> Out {
        self.spawn_with(cmd).finish()
    }

    /// `runbook run <scenario> ARGS`, for a project made by [`Project::with_runbook`].
    pub fn run_scenario(&self, extra: &[&str]) -> Out {
        let mut args = vec!["run", self.scenario.as_str()];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Starts `runbook ARGS` in the background.
    pub fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_with(self.cmd(args))
    }

    /// Starts a command made by [`Project::cmd`] (and adjusted) in the background.
    pub fn spawn_with(&self, mut cmd: Command) -> Running {
        let what = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let started = Instant::now();
        let mut child = cmd.spawn().expect("start runbook");
        let stdout = pump(child.stdout.take().map(|s| Box::new(s) as _));
        let stderr = pump(child.stderr.take().map(|s| Box::new(s) as _));
        Running {
            child: Some(child),
            stdout: Some(stdout),
            stderr: Some(stderr),
            started,
            deadline: self.deadline,
            what,
            state: self.path().join(".runbook"),
        }
    }

    /// The runs in the state folder, oldest first (run ids sort by time).
    pub fn run_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path().join(".runbook/runs"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The newest run of a scenario.
    pub fn last_run_of(&self, scenario: &str) -> Option<String> {
        self.run_ids()
            .into_iter()
            .rev()
            .find(|id| id.ends_with(&format!("-{scenario}")))
    }

    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.path().join(".runbook/runs").join(run)
    }

    /// The journal of a run as text; empty when there is none (yet).
    pub fn journal(&self, run: &str) -> String {
        std::fs::read_to_string(self.run_dir(run).join("journal.jsonl")).unwrap_or_default()
    }

    /// The events of a run's journal read so far (a line being written is skipped).
    pub fn events(&self, run: &str) -> Vec<Value> {
        self.journal(run)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn events_of(&self, run: &str, ty: &str) -> Vec<Value> {
        self.events(run)
            .into_iter()
            .filter(|e| e["type"] == ty)
            .collect()
    }

    /// The journal of a finished run, every line of which must be JSON.
    #[track_caller]
    pub fn journal_events(&self, run: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.run_dir(run).join("journal.jsonl"))
            .expect("the run's journal");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a journal line is JSON"))
            .collect()
    }

    /// The outputs a step of a run wrote (`key=value` lines), from the journal.
    #[track_caller]
    pub fn outputs(&self, run: &str, step: &str) -> Value {
        self.events(run)
            .into_iter()
            .find(|e| e["type"] == "step_output" && e["data"]["step"] == step)
            .map(|e| e["data"]["outputs"].clone())
            .unwrap_or_else(|| panic!("run {run} journaled no outputs for `{step}`"))
    }

    /// The log of a step of a run; empty when there is none.
    pub fn log(&self, run: &str, step: &str) -> String {
        std::fs::read_to_string(self.run_dir(run).join("logs").join(format!("{step}.log")))
            .unwrap_or_default()
    }

    /// Waits (up to 20 s) until the journal of the newest run has an event of this type for
    /// this step (any step when `step` is empty); returns that run.
    #[track_caller]
    pub fn wait_for(&self, ty: &str, step: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(run) = self.run_ids().last() {
                let hit = self
                    .events_of(run, ty)
                    .iter()
                    .any(|e| step.is_empty() || e["data"]["step"] == step);
                if hit {
                    return run.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no `{ty}` for `{step}` within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `runbook report RUN --format json`, which must succeed.
    #[track_caller]
    pub fn report_json(&self, run: &str) -> Value {
        let out = self.run(&["report", run, "--format", "json"]);
        out.code(0);
        serde_json::from_str(&out.stdout).expect("the JSON report parses")
    }

    /// `runbook report --last --format json`, which must succeed.
    #[track_caller]
    pub fn last_report_json(&self) -> Value {
        let out = self.run(&["report", "--last", "--format", "json"]);
        out.code(0);
        serde_json::from_str(&out.stdout).expect("the JSON report parses")
    }

    /// Reads a pid a step wrote into the project folder.
    #[track_caller]
    pub fn pid_file(&self, rel: &str) -> i32 {
        let s = std::fs::read_to_string(self.path().join(rel))
            .unwrap_or_else(|e| panic!("the step should have written {rel}: {e}"));
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{rel} holds a pid, not {s:?}"))
    }

    /// The process group the step supervisor recorded for `<step>.<attempt>` of a run.
    #[track_caller]
    pub fn step_pid(&self, run: &str, key: &str) -> i32 {
        self.read(&format!(".runbook/runs/{run}/steps.status"))
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{key} pid "))
                    .map(|n| n.trim().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no pid recorded for {key}"))
    }

    /// SIGKILL to the step supervisor of a run (found by its status log on its command
    /// line); how many there were.
    pub fn kill_supervisor_of(&self, run: &str) -> usize {
        let needle = self
            .run_dir(run)
            .join("steps.status")
            .to_string_lossy()
            .into_owned();
        let pids: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                (cmdline.contains("supervise") && cmdline.contains(&needle)).then_some(pid)
            })
            .collect();
        for &pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        pids.len()
    }

    /// The path of the project folder replaced by `[TMP]`.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&*self.path().to_string_lossy(), "[TMP]")
    }
}

/// Reads a pipe to its end on a thread of its own, so a chatty child never blocks on it.
fn pump(r: Option<Box<dyn Read + Send>>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// A `runbook` running in the background; killed if the test ends before it is waited for.
pub struct Running {
    child: Option<Child>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
    deadline: Duration,
    what: String,
    /// The project's state folder: where the steps a killed engine left running are found.
    state: PathBuf,
}

impl Running {
    pub fn id(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Has it ended (without collecting its output)?
    pub fn has_ended(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_some()
    }

    /// Sends `sig` to the runbook process (not to its steps).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.id() as i32), sig)
            .expect("send a signal to runbook");
    }

    /// SIGINT, as a Ctrl-C would send it.
    pub fn interrupt(&self) {
        self.signal(nix::sys::signal::Signal::SIGINT);
    }

    /// Ctrl-C, and the run stops resumable: exit 3, within 20 s.
    #[track_caller]
    pub fn interrupt_and_stop(self) -> Out {
        self.interrupt();
        let out = self.finish_within(Duration::from_secs(20));
        out.code(3);
        out
    }

    /// SIGKILL, then collects its exit status.
    pub fn kill(&mut self) -> std::io::Result<()> {
        let child = self.child.as_mut().unwrap();
        child.kill()?;
        let _ = child.wait();
        Ok(())
    }

    /// Waits for it to end, within the project's deadline.
    #[track_caller]
    pub fn finish(self) -> Out {
        let within = self.deadline;
        self.finish_within(within)
    }

    /// Waits for it to end; kills it and fails the test if it outlives `within`.
    #[track_caller]
    pub fn finish_within(mut self, within: Duration) -> Out {
        let deadline = Instant::now() + within;
        let mut child = self.child.take().unwrap();
        let status: ExitStatus = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                kill_leftovers(&self.state);
                panic!(
                    "`{}` did not finish within {within:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.what,
                    collect(self.stdout.take().unwrap()),
                    collect(self.stderr.take().unwrap())
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        Out {
            code: status.code(),
            stdout: self.stdout.take().unwrap().join().unwrap(),
            stderr: self.stderr.take().unwrap().join().unwrap(),
            elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
            kill_leftovers(&self.state);
        }
    }
}

/// Steps outlive a killed engine (their supervisor sees them through, for `resume`): a test
/// that kills one ends them too, by the process groups in the runs' status logs, so that
/// nothing outlives the test and no pipe of the test's stays open.
fn kill_leftovers(state: &Path) {
    let Ok(runs) = std::fs::read_dir(state.join("runs")) else {
        return;
    };
    for run in runs.flatten() {
        let status = std::fs::read_to_string(run.path().join("steps.status")).unwrap_or_default();
        for line in status.lines() {
            if let [_, "pid", pid] = line.split(' ').collect::<Vec<_>>()[..]
                && let Ok(pid) = pid.parse::<i32>()
            {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// A reader's text, or a note that its pipe stayed open (a process of the run outlived it).
fn collect(reader: JoinHandle<String>) -> String {
    let until = Instant::now() + Duration::from_secs(5);
    while !reader.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    if reader.is_finished() {
        reader.join().unwrap_or_default()
    } else {
        "<still open 5 s after the kill: a process of the run outlived it>".into()
    }
}

/// What one finished invocation did.
#[derive(Debug)]
pub struct Out {
    /// The exit code; none when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// From start to end.
    pub elapsed: Duration,
}

impl Out {
    /// Asserts the exit code, showing the whole output when it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts stderr holds this text.
    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    /// (exit code, -1 when a signal ended it; stdout; stderr).
    pub fn parts(self) -> (i32, String, String) {
        (self.code.unwrap_or(-1), self.stdout, self.stderr)
    }

    /// The id of the run this `runbook run` started, from its `run ... started` line.
    #[track_caller]
    pub fn id(&self) -> String {
        self.stderr
            .lines()
            .find_map(|l| {
                let rest = &l[l.find(" run ")? + 5..];
                let (id, tail) = rest.split_once(' ')?;
                tail.starts_with("started").then(|| id.to_owned())
            })
            .unwrap_or_else(|| panic!("no `run ... started` line in:\n{}", self.stderr))
    }
}

/// One invocation in a fresh project: `runbook(&["check"]).file("runbooks/x.yaml", "...").run()`.
pub struct Runbook {
    args: Vec<String>,
    files: Vec<(String, String, bool)>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
}

/// Starts an invocation of the binary with these arguments.
pub fn runbook(args: &[&str]) -> Runbook {
    Runbook {
        args: args.iter().map(|a| a.to_string()).collect(),
        files: Vec::new(),
        env: Vec::new(),
        cwd: None,
    }
}

impl Runbook {
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Writes a file (parents created) into the project before the run.
    pub fn file(mut self, path: &str, contents: &str) -> Self {
        self.files
            .push((path.to_owned(), contents.to_owned(), false));
        self
    }

    /// Writes an executable script into the project before the run.
    pub fn script(mut self, path: &str, contents: &str) -> Self {
        self.files
            .push((path.to_owned(), contents.to_owned(), true));
        self
    }

    /// Sets a variable for the run. No test uses it today; with one test binary, dead code in
    /// the harness is reported, and this part of the builder stays for the next test.
    #[allow(dead_code)]
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs in this folder instead of the project (its state still goes to the project).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Runs to the end; the output names the project folder `[TMP]`.
    pub fn run(self) -> Out {
        let p = Project::new();
        for (path, contents, executable) in &self.files {
            if *executable {
                p.script(path, contents);
            } else {
                p.write(path, contents);
            }
        }
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut cmd = p.cmd(&args);
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = p.run_with(cmd);
        Out {
            stdout: p.redact(&out.stdout),
            stderr: p.redact(&out.stderr),
            ..out
        }
    }
}

/// A sandbox of the project's own (`examples/sandbox/up.sh` run in the project), for tests
/// that change what the suite's shared sandbox must keep: a failover promotes its replica, a
/// point-in-time recovery replaces its primary. Started in a few seconds (fresh ports, a new
/// PostgreSQL pair, Redis, the health endpoint); stopped, and its files removed, on drop.
pub struct Sandbox {
    root: PathBuf,
    /// What up.sh exports (PG*, REDIS*, APP_HEALTH_URL, SANDBOX_DIR, ...).
    pub env: Vec<(String, String)>,
}

impl Project {
    /// Copies `examples/` into the project (with `runbooks/` and `steps/`, if not there yet)
    /// and starts its own sandbox. Panics, with up.sh's words, when it cannot start: a test
    /// that needs PostgreSQL fails loudly without it.
    pub fn own_sandbox(&self) -> Sandbox {
        for d in ["examples", "runbooks", "steps"] {
            if !self.path().join(d).exists() {
                copy_dir(&repo_root().join(d), &self.path().join(d));
            }
        }
        let out = Command::new("bash")
            .arg("-c")
            .arg("set -e; eval \"$(examples/sandbox/up.sh)\"; env -0")
            .current_dir(self.path())
            .stdin(Stdio::null())
            .output()
            .expect("bash runs examples/sandbox/up.sh");
        // Made before anything is checked: its drop stops whatever up.sh did start.
        let mut sb = Sandbox {
            root: self.path().to_owned(),
            env: Vec::new(),
        };
        assert!(
            out.status.success(),
            "the project's sandbox did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keep = |k: &str| {
            k.starts_with("PG")
                || k.starts_with("REDIS")
                || ["SANDBOX_DIR", "APP_HEALTH_URL", "RUNBOOK_BACKUP_DIR"].contains(&k)
        };
        let env: Vec<(String, String)> = out
            .stdout
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok()?.split_once('='))
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert!(
            ["PGPORT", "PG_REPLICA_PORT", "PGSERVICEFILE"]
                .iter()
                .all(|k| out_has(&env, k)),
            "up.sh started no PostgreSQL pair (is PostgreSQL installed? tests/suite.sh installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sb.env = env;
        sb
    }

    /// `runbook ARGS` against the project's own sandbox.
    pub fn cmd_in(&self, sandbox: &Sandbox, args: &[&str]) -> Command {
        let mut c = self.cmd(args);
        sandbox.apply(&mut c);
        c
    }
}

fn out_has(env: &[(String, String)], key: &str) -> bool {
    env.iter().any(|(k, v)| k == key && !v.is_empty())
}

impl Sandbox {
    /// Gives a command this sandbox's environment (and none of the suite's shared one).
    pub fn apply(&self, cmd: &mut Command) {
        for (k, _) in std::env::vars() {
            if k.starts_with("PG") || k.starts_with("REDIS") || k == "APP_HEALTH_URL" {
                cmd.env_remove(&k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }

    /// A value up.sh exported.
    pub fn var(&self, key: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// psql with one statement (no .psqlrc, errors stop it), through a libpq connection
    /// string such as `service=omni` or `port=5433`: the first value out, or psql's error.
    pub fn psql(&self, conn: &str, sql: &str) -> Result<String, String> {
        let mut c = Command::new("psql");
        c.args([
            "-w",
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conn,
            "-c",
            sql,
        ])
        .current_dir(&self.root)
        .stdin(Stdio::null());
        self.apply(&mut c);
        let out = c.output().expect("psql runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// A shell command in the project with this sandbox's environment; its exit status and
    /// output (stdout then stderr).
    pub fn sh(&self, script: &str) -> (bool, String) {
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(script)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        self.apply(&mut c);
        let out = c.output().expect("bash runs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("examples/sandbox/down.sh")
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
