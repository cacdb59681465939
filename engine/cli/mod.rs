//! The command line: clap commands, and the only place that prints or picks exit codes. Each
//! command parses its arguments, calls its use case in [`crate::app`], prints what it returns,
//! and ends in a code or a [`CliError`], rendered once, in [`main`].

mod check;
mod plan_view;
mod resume;
mod run;
mod runs;
mod status;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::Error;
use crate::app::error::{Said, Saying};
pub use crate::app::runs::ReportFormat;

use crate::diag::Problems;

/// Exit codes: what each command means by each is the table in docs/design.md ("Exit codes").
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const STOPPED: u8 = 3;
    pub const RTO_MISSED: u8 = 4;
}

#[derive(Parser, Debug)]
#[command(
    name = "runbook",
    version,
    about = "Disaster-recovery runbooks: compile, run, drill and report",
    long_about = "Disaster-recovery runbooks: compile a scenario into a DAG of steps, run it against \
                  its RTO with approval gates, drill it safely, and report from a tamper-evident journal."
)]
pub struct Cli {
    /// Where runs are kept (default: .runbook under the current directory).
    #[arg(
        long,
        global = true,
        env = "RUNBOOK_STATE_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scenarios: title, RTO target, steps, critical path, fits or over.
    List,
    /// Validate runbooks and library steps (default: all of them).
    Check {
        /// Runbook, library step or environment files, or folders of them.
        paths: Vec<PathBuf>,
        /// A critical path longer than the RTO is an error, not a warning.
        #[arg(long)]
        strict: bool,
        /// Check every step's `on:` against this environment's hosts and groups.
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
    },
    /// Show a scenario's plan: stages, budgets, the critical path and the RTO verdict.
    Plan {
        /// A scenario name (runbooks/<name>.yaml) or a path to a runbook file.
        scenario: String,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Monte Carlo: run N simulations of the scenario's duration (text or json).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        simulate: Option<u64>,
        /// Seed for --simulate (the same seed gives the same answer).
        #[arg(long, value_name = "S", default_value_t = 1)]
        seed: u64,
        /// Show what each step does in a drill (with --env: in that environment).
        #[arg(long, conflicts_with = "simulate")]
        drill: bool,
        /// An environment: a name under runbooks/env/ or a path to a file.
        #[arg(long, value_name = "ENV", requires = "drill")]
        env: Option<String>,
    },
    /// Run a scenario: for real, as a drill (--drill) or on a virtual clock (--dry-run).
    Run(run::RunArgs),
    /// Live state: without RUN the recent runs; with RUN its steps, open gates and clocks.
    Status {
        /// A run id (or a unique part of one, or `last`: the newest run that is not a dry-run).
        run: Option<String>,
        /// `last` may be a dry-run.
        #[arg(long)]
        dry_run: bool,
        /// One run as JSON: its state and open gates, each with its request hash.
        #[arg(long, requires = "run")]
        json: bool,
    },
    /// Approve a waiting gate of a live run, from any terminal.
    Approve(AnswerArgs),
    /// Deny a waiting gate of a live run: the run fails.
    Deny(AnswerArgs),
    /// Give the value an `input:` step of a live run waits for (checked against its pattern).
    Answer {
        #[command(flatten)]
        args: AnswerArgs,
        /// The value (after RUN and STEP).
        #[arg(required_unless_present = "token")]
        value: Option<String>,
    },
    /// Say a `manual:` step of a live run is done: every checklist item confirmed.
    Done {
        #[command(flatten)]
        args: AnswerArgs,
        /// What was done, for the journal and the reports.
        #[arg(long, value_name = "TEXT", conflicts_with = "comment")]
        note: Option<String>,
        /// Confirm every item of the checklist.
        #[arg(long, conflicts_with = "confirm")]
        all: bool,
        /// Confirm this checklist item (its text); give it once per item.
        #[arg(long, value_name = "ITEM")]
        confirm: Vec<String>,
    },
    /// Continue a run after a crash, Ctrl-C or a gate timeout.
    Resume(resume::ResumeArgs),
    /// Check a run's journal: its hash chain, line by line.
    Verify {
        /// A run id (or a unique part of one, or `last`).
        run: String,
    },
    /// A run's report, made from its journal.
    Report {
        /// A run id (or a unique part of one).
        run: Option<String>,
        /// The most recent run that is not a dry-run.
        #[arg(long, conflicts_with = "run")]
        last: bool,
        /// `--last` (or `last`) may be a dry-run.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Across runs: success rate, RTO achieved, MTTR, last drill, step timings against budgets.
    History {
        #[arg(long, value_name = "S")]
        scenario: Option<String>,
        #[arg(long, value_enum, default_value_t = HistoryFormat::Md)]
        format: HistoryFormat,
    },
    /// An evidence bundle for auditors: journal, runbook as it ran, logs, reports, verification.
    Export {
        /// A run id (or a unique part of one, or `last`).
        run: String,
        #[arg(short = 'o', long = "output", value_name = "FILE.tar.gz")]
        output: PathBuf,
    },
    /// The JSON Schema of the runbook format, for editors.
    Schema,
}

#[derive(clap::Args, Debug)]
pub struct AnswerArgs {
    /// A run id (or a unique part of one, or `last`).
    #[arg(required_unless_present = "token")]
    pub run: Option<String>,
    /// The gate's step id.
    #[arg(required_unless_present = "token")]
    pub step: Option<String>,
    /// Who answers; default: $USER. Checked against the gate's approvers.
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Sign with this key: a private key file, or a public key whose private half is in
    /// ssh-agent; default: $RUNBOOK_SIGNING_KEY, then ~/.ssh/id_ed25519.
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Sign, print the token (one line) and write nothing: for an approver on another machine.
    #[arg(long)]
    pub print: bool,
    /// The gate's request hash (`runbook status`, the gate's page), on a machine without the
    /// run's state folder.
    #[arg(long, value_name = "HASH")]
    pub request: Option<String>,
    /// Submit a signed answer printed with `--print` (it names its run, step and decision).
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["run", "step", "as_name", "comment", "key", "print", "request"])]
    pub token: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Md,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Dot,
    Mermaid,
}

/// What a command could not do: the exit code, and what the operator is told, rendered once
/// on stderr where [`main`] returns.
#[derive(Debug, thiserror::Error)]
#[error("{problem}")]
pub struct CliError {
    pub code: u8,
    pub problem: Said,
}

impl CliError {
    pub fn usage(problem: impl Into<Said>) -> Self {
        CliError {
            code: exit::USAGE,
            problem: problem.into(),
        }
    }
    pub fn failed(problem: impl Into<Said>) -> Self {
        CliError {
            code: exit::FAILED,
            problem: problem.into(),
        }
    }
    pub fn stopped(problem: impl Into<Said>) -> Self {
        CliError {
            code: exit::STOPPED,
            problem: problem.into(),
        }
    }

    /// Diagnostics with miette, plain lines as `error: …` and `help: …`.
    fn render(&self) {
        for s in &self.problem.0 {
            match s {
                Saying::Problems(p) => report_problems(p),
                Saying::Error(m) => eprintln!("error: {m}"),
                Saying::Help(h) => eprintln!("help: {h}"),
            }
        }
    }
}

/// The one place a use case's error becomes an exit code.
impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        match e {
            Error::Usage(s) => CliError::usage(s),
            Error::Failed(s) => CliError::failed(s),
            Error::Stopped(s) => CliError::stopped(s),
        }
    }
}

impl From<crate::diag::Problem> for CliError {
    fn from(p: crate::diag::Problem) -> Self {
        CliError::usage(p)
    }
}

/// How to print: colour and unicode only on a terminal, and never under NO_COLOR.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
    pub unicode: bool,
}

impl Style {
    pub fn stderr() -> Self {
        let tty = std::io::stderr().is_terminal();
        Style {
            color: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            unicode: tty,
        }
    }
}

pub fn main() -> ExitCode {
    // The step supervisor, when `runbook-step` is not installed beside us: hidden, and parsed
    // by hand.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "__supervise") && args.len() == 3 {
        let code = crate::exec::supervisor::main(std::path::Path::new(&args[2]));
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    // `RUNBOOK_STATE_DIR=` (set, empty) means unset, as it does to a shell user; clap would
    // take it as `--state-dir` given no value.
    if std::env::var_os("RUNBOOK_STATE_DIR").is_some_and(|v| v.is_empty()) {
        // SAFETY: no other thread is running yet.
        unsafe { std::env::remove_var("RUNBOOK_STATE_DIR") };
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing();
    // Commands that print a result die quietly when their reader goes (`| head`). A run must
    // not: its steps would be orphaned; its writes to a closed pipe fail and are ignored.
    if !matches!(cli.command, Command::Run(_) | Command::Resume { .. }) {
        // SAFETY: setting a default disposition before any thread is started.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    let result = match cli.command {
        Command::List => check::list(cli.state_dir),
        Command::Check { paths, strict, env } => check::check(&paths, strict, env.as_deref()),
        Command::Plan {
            scenario,
            format,
            simulate,
            seed,
            drill,
            env,
        } => match simulate {
            Some(n) => plan_view::simulate(&scenario, format, n as usize, seed, cli.state_dir),
            None => plan_view::plan(&scenario, format, drill, env.as_deref()),
        },
        Command::Run(args) => run::run(args, cli.state_dir),
        Command::Status { run, dry_run, json } => {
            status::status(run.as_deref(), dry_run, json, cli.state_dir)
        }
        Command::Approve(a) => runs::answer(a, true, cli.state_dir),
        Command::Answer { value, args } => runs::give(args, (true, value), cli.state_dir),
        Command::Done {
            args,
            note,
            all,
            confirm,
        } => runs::done(args, note, (all, confirm), cli.state_dir),
        Command::Deny(a) => runs::answer(a, false, cli.state_dir),
        Command::Resume(args) => resume::resume(&args, cli.state_dir),
        Command::Verify { run } => runs::verify(&run, cli.state_dir),
        Command::Report {
            run,
            last,
            dry_run,
            format,
            output,
        } => runs::report(run.as_deref(), last, dry_run, format, output, cli.state_dir),
        Command::History { scenario, format } => {
            runs::history(scenario.as_deref(), format, cli.state_dir)
        }
        Command::Export { run, output } => runs::export(&run, &output, cli.state_dir),
        Command::Schema => {
            println!("{}", crate::schema::runbook_schema_json());
            Ok(exit::OK)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            e.render();
            ExitCode::from(e.code)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::from_default_env())
            .with_ansi(Style::stderr().color)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Renders problems to stderr with miette: file, line, column, the source line, a caret, help.
pub fn report_problems(problems: &Problems) {
    let style = Style::stderr();
    let theme = match (style.unicode, style.color) {
        (true, true) => miette::GraphicalTheme::unicode(),
        (true, false) => miette::GraphicalTheme::unicode_nocolor(),
        (false, _) => miette::GraphicalTheme::none(),
    };
    // Ids hold hyphens: wrap only at spaces, so `plan-migration-back` stays whole.
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false)
        .with_break_words(false)
        .with_word_splitter(textwrap::WordSplitter::NoHyphenation);
    let mut out = String::new();
    for p in &problems.0 {
        // miette shows `[file:line:col]` only with a span; name the file in the message
        // otherwise.
        let named;
        let p = match (&p.pos, &p.file) {
            (None, Some(f)) => {
                let mut q = p.clone();
                q.message = format!("{}: {}", f.display_name(), p.message);
                named = q;
                &named
            }
            _ => p,
        };
        let mut s = String::new();
        if handler.render_report(&mut s, p).is_err() {
            s = format!("{p}\n");
        }
        out.push_str(&s);
        out.push('\n');
    }
    eprint!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_use_case_error_exits_with_its_code() {
        let code = |e: Error| CliError::from(e).code;
        assert_eq!(code(Error::usage(Said::error("u"))), exit::USAGE);
        assert_eq!(code(Error::failed(Said::error("f"))), exit::FAILED);
        assert_eq!(code(Error::stopped(Said::error("s"))), exit::STOPPED);
    }

    #[test]
    fn what_is_said_keeps_its_order_and_its_words() {
        let said = Said::error("step `a` was interrupted")
            .help("`runbook resume r --yes`")
            .and_error("step `b` ended unseen");
        assert_eq!(
            CliError::failed(said).to_string(),
            "error: step `a` was interrupted\nhelp: `runbook resume r --yes`\nerror: step `b` ended unseen\n"
        );
    }
}
