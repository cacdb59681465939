//! The engine's side of the supervisor: starting its process and talking to it over pipes.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::protocol::{Event, Request, SECRET_NAMES};

/// The engine's side: the supervisor process, fed through a channel by a writer task, its
/// events read by a reader task.
pub struct Handle {
    pub requests: tokio::sync::mpsc::UnboundedSender<Request>,
    child: tokio::process::Child,
}

impl Handle {
    /// Closes the supervisor's stdin and gives it a moment to finish (it has no steps left).
    pub async fn close(mut self) {
        drop(self.requests);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
    }
}

/// Starts the supervisor for a run. `on_event` gets every event, on the reader task, and
/// `None` once if the supervisor goes away.
pub fn spawn(
    root: &Path,
    status_log: &Path,
    secret_names: &str,
    mut on_event: impl FnMut(Option<Event>) + Send + 'static,
) -> std::io::Result<Handle> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let exe = std::env::current_exe()?;
    let small = exe.with_file_name("runbook-step");
    let mut cmd = if small.is_file() {
        let mut c = tokio::process::Command::new(small);
        c.arg("--supervise");
        c
    } else {
        let mut c = tokio::process::Command::new(exe);
        c.arg("__supervise");
        c
    };
    cmd.arg(status_log)
        .current_dir(root)
        .env(SECRET_NAMES, secret_names)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own group: a Ctrl-C at the terminal is the engine's to handle, not its.
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Request>();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let Ok(mut line) = serde_json::to_vec(&req) else {
                continue;
            };
            line.push(b'\n');
            if stdin.write_all(&line).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Event>(&line) {
                Ok(ev) => on_event(Some(ev)),
                Err(e) => tracing::warn!("unreadable event from the step supervisor: {e}"),
            }
        }
        on_event(None);
    });
    Ok(Handle {
        requests: tx,
        child,
    })
}
