//! Checks an environment's inventory when it is loaded, before any value can reach `ssh`.
//!
//! Every inventory value ends up on an ssh command line and the inventory name in log file
//! names and output prefixes, so each is held to what it names: a host is a DNS name or an IP
//! address, a user a user name, a port a port, a path a path that ssh cannot take for an
//! option. Refusing here, with the file's line, means `runbook check` finds a hostile or
//! mistyped value too, and nothing is left to how the installed OpenSSH parses its arguments.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::types::{EnvDoc, HostDoc};
use crate::diag::{Problem, Problems, SourceFile};
use crate::span::Sp;

const HOST_HELP: &str =
    "a host is a DNS name or an IP address, e.g. `db1.example.com` or `10.1.2.3`";
const USER_HELP: &str = "a user name matches `[a-z_][a-z0-9_.-]*`, e.g. `dr`";

/// Every problem of the inventory of an environment file, at once.
pub fn check(doc: &EnvDoc, file: &Arc<SourceFile>) -> Result<(), Problems> {
    let mut out = Problems::default();
    // The typed document keeps names without their place; it is read again for them only
    // when one is wrong, which a valid file never pays for.
    let mut names: Option<BTreeMap<Sp<String>, IgnoredAny>> = None;
    for (name, host) in &doc.inventory {
        if !is_inventory_name(name) {
            let names = names.get_or_insert_with(|| name_positions(file));
            let pos = names
                .keys()
                .find(|k| k.value == *name)
                .map(|k| k.pos)
                .unwrap_or_default();
            out.push(
                Problem::error(format!(
                    "inventory name `{name}` may hold only letters, digits, `_`, `-` and `.`, and may not start with `-` or `.`"
                ))
                .at(file, pos)
                .label("not a safe name")
                .help("steps name it in `on:`, and it names log files and output prefixes: e.g. `db-eu-1`"),
            );
        }
        check_host(name, host, file, &mut out);
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

fn check_host(name: &str, h: &HostDoc, file: &Arc<SourceFile>, out: &mut Problems) {
    let host = &h.host;
    if !is_host_name(host) {
        let why = if host.starts_with('-') {
            "which ssh would read as an option"
        } else {
            "neither a DNS name nor an IP address"
        };
        out.push(
            Problem::error(format!("`host` of `{name}` is `{}`, {why}", host.value))
                .at(file, host.pos)
                .label("not a host name")
                .help(HOST_HELP),
        );
    }
    if let Some(user) = &h.user
        && !is_user_name(user)
    {
        let why = if user.starts_with('-') {
            "which ssh would read as an option"
        } else {
            "not a user name"
        };
        out.push(
            Problem::error(format!("`user` of `{name}` is `{}`, {why}", user.value))
                .at(file, user.pos)
                .label("not a user name")
                .help(USER_HELP),
        );
    }
    if let Some(port) = &h.port
        && port.value == 0
    {
        out.push(
            Problem::error(format!("`port` of `{name}` is 0, which is no port"))
                .at(file, port.pos)
                .label("not a port")
                .help("a port is 1 to 65535; leave `port` out for ssh's own (22)"),
        );
    }
    for (key, path) in [("identity", &h.identity), ("known_hosts", &h.known_hosts)] {
        if let Some(path) = path
            && let Some(why) = path_problem(key, path)
        {
            out.push(
                Problem::error(format!("`{key}` of `{name}` {why}"))
                    .at(file, path.pos)
                    .label("not a usable path")
                    .help(
                        "write the file's path on one line; one that starts with `-` can be written `./-name`",
                    ),
            );
        }
    }
}

/// What is wrong with a path given to ssh, if anything.
fn path_problem(key: &str, path: &str) -> Option<String> {
    if path.is_empty() {
        Some("is empty".into())
    } else if path.starts_with('-') {
        Some(format!("is `{path}`, which ssh would read as an option"))
    } else if path.chars().any(char::is_control) {
        Some(format!(
            "is `{}`, which holds a control character (a newline, NUL or tab)",
            path.escape_debug()
        ))
    } else if key == "known_hosts" && path.chars().any(char::is_whitespace) {
        // It reaches ssh as `-o UserKnownHostsFile=...`, a list of files split at spaces.
        Some(format!(
            "is `{path}`, which holds a space: ssh would read it as several files"
        ))
    } else {
        None
    }
}

/// The names steps give in `on:`; they also name log files and prefix output lines.
pub fn is_inventory_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A DNS name (labels of letters, digits, `-` and `_`, none starting or ending with `-`) or
/// an IP address.
pub fn is_host_name(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        })
}

/// `[a-z_][a-z0-9_.-]*`, the portable user names of POSIX and useradd.
pub fn is_user_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

/// The inventory's names with their places in the file.
fn name_positions(file: &Arc<SourceFile>) -> BTreeMap<Sp<String>, IgnoredAny> {
    #[derive(Deserialize)]
    struct Names {
        #[serde(default)]
        inventory: BTreeMap<Sp<String>, IgnoredAny>,
    }
    serde_saphyr::from_str::<Names>(file.text())
        .map(|n| n.inventory)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_dns_names_or_ip_addresses() {
        for ok in [
            "db1",
            "db-eu-1.example.com",
            "example.com.",
            "10.1.2.3",
            "::1",
            "fe80::1",
        ] {
            assert!(is_host_name(ok), "{ok}");
        }
        for bad in [
            "",
            "h3$(touch x)",
            "h3`id`",
            "-oProxyCommand=id",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "user@host",
            "host:22",
            "host\n",
        ] {
            assert!(!is_host_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn user_names_are_portable_user_names() {
        for ok in ["dr", "_svc", "a.b-c_1"] {
            assert!(is_user_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-oProxyCommand=id",
            "Root",
            "1dr",
            "dr$(id)",
            "a b",
            "a@b",
        ] {
            assert!(!is_user_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn inventory_names_are_safe_in_file_names_and_prefixes() {
        for ok in ["a", "db-eu-1", "db_1.eu", "1"] {
            assert!(is_inventory_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "a/b",
            "a b",
            "h3$(touch x)",
            "a`id`",
            "a\"b",
        ] {
            assert!(!is_inventory_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn paths_that_ssh_would_take_for_options_are_refused() {
        assert!(path_problem("identity", "-oProxyCommand=id").is_some());
        assert!(path_problem("identity", "key\n-oProxyCommand=id").is_some());
        assert!(path_problem("identity", "a\0b").is_some());
        assert!(path_problem("identity", "").is_some());
        assert!(path_problem("known_hosts", "a b").is_some());
        assert!(path_problem("identity", "~/.ssh/id ed25519").is_none());
        assert!(path_problem("known_hosts", "~/.ssh/known_hosts").is_none());
    }

    #[test]
    fn the_place_of_a_quoted_name_is_found() {
        let file = SourceFile::new(
            std::path::Path::new("e.yaml"),
            "e.yaml",
            "inventory:\n  \"a b\": { host: h }\n".into(),
        );
        let names = name_positions(&file);
        let (k, _) = names.iter().next().unwrap();
        assert_eq!((k.value.as_str(), k.pos.line, k.pos.column), ("a b", 2, 3));
    }
}
