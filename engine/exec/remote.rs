//! The ssh wrapper of `on:` steps: the local script that runs a step's command on inventory
//! hosts, its values carried in variables and the environment over stdin, never argv.

use std::collections::BTreeMap;

use crate::compile::{Fanout, Host};

use super::process;

/// ssh's `ConnectTimeout` (seconds) for a host whose settings give none.
pub const DEFAULT_CONNECT_TIMEOUT: u64 = 10;

/// Wraps a command to run on inventory hosts over ssh (batch mode), at most `fanout.max_parallel`
/// hosts at once, each line of output prefixed with its host; the step fails when more hosts
/// failed than `fanout.max_failures` allows.
///
/// The bound is a pool of slots: a FIFO holding one line per slot, which the script reads a
/// line from before it starts a host and writes back when that host has ended.
///
/// Each host's outcome is said in the step's log (`host NAME failed with exit N`, then one
/// `hosts: ...` line), and written to the step's outputs: `hosts_succeeded` and
/// `hosts_failed`, the inventory names, comma-separated.
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
pub(super) fn remote_command(
    command: &str,
    hosts: &[String],
    inventory: &BTreeMap<String, Host>,
    env: &[(String, String)],
    fanout: Fanout,
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
    // Never more slots than hosts: the pool is written into a pipe's buffer at once.
    let slots = (fanout.max_parallel as usize).clamp(1, hosts.len().max(1));
    vars.push(("RUNBOOK_SSH_SLOTS".to_owned(), slots.to_string()));
    vars.push((
        "RUNBOOK_SSH_MAX_FAILURES".to_owned(),
        fanout.max_failures.allowed(hosts.len()).to_string(),
    ));
    vars.push((
        "RUNBOOK_SSH_TOLERANCE".to_owned(),
        fanout.max_failures.to_string(),
    ));
    script.push_str(
        "echo .); pids=''; \
         t=\"$RUNBOOK_OUTPUT.slots\"; rm -f \"$t\"; mkfifo -m 600 \"$t\" && exec 4<>\"$t\" || exit 1; rm -f \"$t\"; \
         i=0; while [ \"$i\" -lt \"$RUNBOOK_SSH_SLOTS\" ]; do echo; i=$((i + 1)); done >&4; ",
    );
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
        let mut ssh = String::from("ssh -o BatchMode=yes");
        ssh.push_str(&format!(" -o \"ConnectTimeout=${}\"", var("TIMEOUT")));
        vars.push((
            var("TIMEOUT"),
            host.connect_timeout
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
                .to_string(),
        ));
        if let Some(j) = &host.jump {
            ssh.push_str(&format!(" -J \"${}\"", var("JUMP")));
            vars.push((var("JUMP"), j.clone()));
        }
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
            "read -r _ <&4; ( f=\"$RUNBOOK_OUTPUT.stdin{k}\"; rm -f \"$f\"; mkfifo -m 600 \"$f\" && exec 3<>\"$f\"; rm -f \"$f\"; \
             printf '%s\\n' \"$blk\" >&3 & b=$!; \
             {{ {ssh} 2>&1 <&3 4>&-; echo \"$?\" > \"$RUNBOOK_OUTPUT.host{k}\"; }} | awk '{{ print \"[\" ENVIRON[\"{name}\"] \"] \" $0; fflush() }}'; \
             kill \"$b\" 2>/dev/null; echo >&4 ) & pids=\"$pids $!\"; ",
            name = var("NAME"),
        ));
    }
    script.push_str(
        "for p in $pids; do wait \"$p\"; done; exec 4>&-; ok=''; failed=''; nok=0; nfailed=0; ",
    );
    for k in 0..hosts.len() {
        script.push_str(&format!(
            "s=$(cat \"$RUNBOOK_OUTPUT.host{k}\" 2>/dev/null || echo 255); rm -f \"$RUNBOOK_OUTPUT.host{k}\"; \
             if [ \"$s\" = 0 ]; then ok=\"$ok${{ok:+,}}$RUNBOOK_SSH_{k}_NAME\"; nok=$((nok + 1)); \
             else printf 'host %s failed with exit %s\\n' \"$RUNBOOK_SSH_{k}_NAME\" \"$s\" >&2; \
             failed=\"$failed${{failed:+,}}$RUNBOOK_SSH_{k}_NAME\"; nfailed=$((nfailed + 1)); fi; "
        ));
    }
    script.push_str(
        "printf 'hosts_succeeded=%s\\nhosts_failed=%s\\n' \"$ok\" \"$failed\" >> \"$RUNBOOK_OUTPUT\"; \
         printf 'hosts: %s succeeded, %s failed%s; ' \"$nok\" \"$nfailed\" \"${failed:+ ($failed)}\" >&2; \
         if [ \"$nfailed\" -gt \"$RUNBOOK_SSH_MAX_FAILURES\" ]; then \
         printf 'more than max_failures %s: the step fails\\n' \"$RUNBOOK_SSH_TOLERANCE\" >&2; exit 1; fi; \
         printf 'within max_failures %s: the step succeeds\\n' \"$RUNBOOK_SSH_TOLERANCE\" >&2; exit 0",
    );
    Ok(RemoteCommand { script, vars })
}

/// The local script of an `on:` step, and the variables it reads its values from.
pub(super) struct RemoteCommand {
    pub(super) script: String,
    pub(super) vars: Vec<(String, String)>,
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
            jump: Some("jump-value".into()),
            connect_timeout: Some(7),
        };
        let inventory = BTreeMap::from([("name-value".to_owned(), host)]);
        let env = [("S".to_owned(), "secret-value\nit's $HOME".to_owned())];
        let r = remote_command(
            "echo hi",
            &["name-value".into()],
            &inventory,
            &env,
            Fanout::default(),
        )
        .unwrap();
        for value in [
            "db-host-value",
            "user_value",
            "2222",
            "identity-value",
            "known-hosts-value",
            "jump-value",
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
