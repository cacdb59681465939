//! Notify commands: running one, logging it, and keeping why it failed for the journal.

use std::time::Duration;

use super::machine::NotifyFailure;
use super::mask::Masker;

/// The lines of a failed notify command's stderr that its `escalated` record keeps: enough to
/// see why nobody was paged, not the whole of a chatty tool's output.
pub(super) const NOTIFY_STDERR_LINES: usize = 5;

/// Runs a notify command, logging it to `logs/notify.log`; how it failed, if it did.
pub(super) async fn run_notify(
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
