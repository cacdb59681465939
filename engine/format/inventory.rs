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

use super::groups;
use super::types::{EnvDoc, HostDoc, SshDoc};
use crate::diag::{Problem, Problems, SourceFile, suggestion};
use crate::span::Sp;

const HOST_HELP: &str =
    "a host is a DNS name or an IP address, e.g. `db1.example.com` or `10.1.2.3`";
const USER_HELP: &str = "a user name matches `[a-z_][a-z0-9_.-]*`, e.g. `dr`";

/// Every problem of the inventory of an environment file, at once: its hosts, the `ssh`
/// defaults, the groups (what they name, cycles, empty ones, a name that is both a host and a
/// group) and the settings each host ends up with.
pub fn check(doc: &EnvDoc, file: &Arc<SourceFile>) -> Result<(), Problems> {
    let mut out = Problems::default();
    // The typed document keeps names without their place; it is read again for them only
    // when one is wrong, which a valid file never pays for.
    let mut names: Option<BTreeMap<Sp<String>, IgnoredAny>> = None;
    let mut name_pos = |name: &str| {
        names
            .get_or_insert_with(|| name_positions(file))
            .keys()
            .find(|k| k.value == *name)
            .map(|k| k.pos)
            .unwrap_or_default()
    };
    for (name, host) in &doc.inventory {
        if !is_inventory_name(name) {
            out.push(
                Problem::error(format!(
                    "inventory name `{name}` may hold only letters, digits, `_`, `-` and `.`, and may not start with `-` or `.`"
                ))
                .at(file, name_pos(name))
                .label("not a safe name")
                .help("steps name it in `on:`, and it names log files and output prefixes: e.g. `db-eu-1`"),
            );
        }
        check_host(name, host, file, &mut out);
    }
    if let Some(defaults) = &doc.ssh {
        check_settings("the `ssh` defaults", defaults, file, &mut out);
    }
    check_groups(doc, file, &mut out);
    let members = groups::members(&doc.groups);
    // Settings are looked for only through groups without a cycle (a cycle is reported).
    if !out.has_errors() {
        for (name, host) in &doc.inventory {
            if let Err(c) = settings_of(name, host, doc, &members) {
                let [a, b] = &c.groups;
                out.push(
                    Problem::error(format!(
                        "host `{name}` is in groups `{a}` and `{b}`, which set its `{}` differently",
                        c.key
                    ))
                    .at(file, name_pos(name))
                    .label("two settings")
                    .help(format!(
                        "set `{}` on the host, or in one of the groups: the nearest group's setting applies, and these are as near",
                        c.key
                    )),
                );
            }
        }
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// The ssh settings a host ends up with: its own, else its nearest group's, else the defaults.
pub fn settings_of(
    name: &str,
    host: &HostDoc,
    doc: &EnvDoc,
    members: &groups::Members,
) -> Result<SshDoc, groups::Conflict> {
    let by_name: BTreeMap<&str, &SshDoc> = doc
        .groups
        .iter()
        .map(|(g, d)| (g.value.as_str(), &d.ssh))
        .collect();
    let levels: Vec<Vec<(&str, &SshDoc)>> = groups::ancestry(name, members)
        .iter()
        .map(|level| {
            level
                .iter()
                .filter_map(|g| by_name.get_key_value(g.as_str()).map(|(k, v)| (*k, *v)))
                .collect()
        })
        .collect();
    let defaults = doc.ssh.clone().unwrap_or_default();
    groups::settings(&host.ssh(), &levels, &defaults)
}

fn check_groups(doc: &EnvDoc, file: &Arc<SourceFile>, out: &mut Problems) {
    let known: Vec<&str> = doc
        .inventory
        .keys()
        .map(String::as_str)
        .chain(doc.groups.keys().map(|g| g.value.as_str()))
        .collect();
    for (g, group) in &doc.groups {
        if !is_inventory_name(g) {
            out.push(
                Problem::error(format!(
                    "group name `{}` may hold only letters, digits, `_`, `-` and `.`, and may not start with `-` or `.`",
                    g.value
                ))
                .at(file, g.pos)
                .label("not a safe name")
                .help("steps name it in `on:`: e.g. `app`"),
            );
        }
        if g.value == groups::ALL {
            out.push(
                Problem::error("`all` is a group already: every host of the inventory")
                    .at(file, g.pos)
                    .label("defined again")
                    .help("give this group another name"),
            );
        } else if doc.inventory.contains_key(&g.value) {
            out.push(
                Problem::error(format!(
                    "`{}` is both an inventory host and a group: `on: [{}]` could mean either",
                    g.value, g.value
                ))
                .at(file, g.pos)
                .label("also a host")
                .help("rename the group or the host"),
            );
        }
        if group.hosts.is_empty() {
            out.push(
                Problem::error(format!("group `{}` is empty", g.value))
                    .at(file, g.pos)
                    .label("no hosts")
                    .help("list its hosts or groups, or remove it: a step on it would run nowhere"),
            );
        }
        for m in &group.hosts {
            let is_group = doc.groups.keys().any(|k| k.value == m.value);
            if !doc.inventory.contains_key(&m.value) && !is_group && m.value != groups::ALL {
                out.push(
                    Problem::error(format!(
                        "group `{}` names `{}`, which is neither an inventory host nor a group",
                        g.value, m.value
                    ))
                    .at(file, m.pos)
                    .label("unknown")
                    .maybe_help(suggestion(&m.value, known.iter().copied())),
                );
            }
        }
        check_settings(&format!("group `{}`", g.value), &group.ssh, file, out);
    }
    if let Some(c) = groups::cycle(&groups::members(&doc.groups)) {
        let first = c.first().map(String::as_str).unwrap_or_default();
        let pos = doc
            .groups
            .keys()
            .find(|k| k.value == first)
            .map(|k| k.pos)
            .unwrap_or_default();
        let path: Vec<String> = c.iter().map(|g| format!("`{g}`")).collect();
        out.push(
            Problem::error(format!("groups form a cycle: {}", path.join(" → ")))
                .at(file, pos)
                .label("in a cycle")
                .help("a group may hold other groups, but not itself through them"),
        );
    }
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
    check_settings(&format!("`{name}`"), &h.ssh(), file, out);
}

/// The ssh settings of a host, a group or the defaults (`owner` names which).
fn check_settings(owner: &str, s: &SshDoc, file: &Arc<SourceFile>, out: &mut Problems) {
    if let Some(user) = &s.user
        && !is_user_name(user)
    {
        let why = if user.starts_with('-') {
            "which ssh would read as an option"
        } else {
            "not a user name"
        };
        out.push(
            Problem::error(format!("`user` of {owner} is `{}`, {why}", user.value))
                .at(file, user.pos)
                .label("not a user name")
                .help(USER_HELP),
        );
    }
    if let Some(port) = &s.port
        && port.value == 0
    {
        out.push(
            Problem::error(format!("`port` of {owner} is 0, which is no port"))
                .at(file, port.pos)
                .label("not a port")
                .help("a port is 1 to 65535; leave `port` out for ssh's own (22)"),
        );
    }
    for (key, path) in [("identity", &s.identity), ("known_hosts", &s.known_hosts)] {
        if let Some(path) = path
            && let Some(why) = path_problem(key, path)
        {
            out.push(
                Problem::error(format!("`{key}` of {owner} {why}"))
                    .at(file, path.pos)
                    .label("not a usable path")
                    .help(
                        "write the file's path on one line; one that starts with `-` can be written `./-name`",
                    ),
            );
        }
    }
    if let Some(jump) = &s.jump
        && let Some(why) = jump_problem(jump)
    {
        out.push(
            Problem::error(format!("`jump` of {owner} is `{}`, {why}", jump.value))
                .at(file, jump.pos)
                .label("not a jump host")
                .help("a jump host is `[user@]host[:port]`, e.g. `dr@bastion.example.com:2222`"),
        );
    }
    if let Some(t) = &s.connect_timeout
        && let Err(why) = connect_timeout_secs(t)
    {
        out.push(
            Problem::error(format!("`connect_timeout` of {owner} {why}"))
                .at(file, t.pos)
                .label("not a timeout")
                .help("a duration of a second or more, e.g. `5s`"),
        );
    }
}

/// What is wrong with a jump host, `[user@]host[:port]`, if anything.
fn jump_problem(jump: &str) -> Option<&'static str> {
    if jump.starts_with('-') {
        return Some("which ssh would read as an option");
    }
    let (user, rest) = match jump.rsplit_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, jump),
    };
    if user.is_some_and(|u| !is_user_name(u)) {
        return Some("whose user is not a user name");
    }
    if rest.parse::<IpAddr>().is_ok() {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    if !is_host_name(host) {
        return Some("whose host is neither a DNS name nor an IP address");
    }
    if port.is_some_and(|p| !p.parse::<u16>().is_ok_and(|p| p > 0)) {
        return Some("whose port is not 1 to 65535");
    }
    None
}

/// `connect_timeout` in whole seconds (ssh's `ConnectTimeout`), rounded up.
pub fn connect_timeout_secs(text: &str) -> Result<u64, String> {
    let d = crate::units::parse_duration(text).map_err(|e| format!("is {e}"))?;
    if d < std::time::Duration::from_secs(1) {
        return Err(format!("is `{text}`, less than a second"));
    }
    Ok(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// What may well fail at run time but is not wrong in itself: an identity file that is not
/// there (it may be on the machine the run starts from, not the one checking).
pub fn warnings(doc: &EnvDoc, file: &Arc<SourceFile>) -> Problems {
    let mut out = Problems::default();
    let mut owners: Vec<(String, &SshDoc)> = Vec::new();
    let hosts: Vec<(String, SshDoc)> = doc
        .inventory
        .iter()
        .map(|(n, h)| (format!("`{n}`"), h.ssh()))
        .collect();
    for (n, s) in &hosts {
        owners.push((n.clone(), s));
    }
    for (g, d) in &doc.groups {
        owners.push((format!("group `{}`", g.value), &d.ssh));
    }
    if let Some(d) = &doc.ssh {
        owners.push(("the `ssh` defaults".into(), d));
    }
    for (owner, s) in owners {
        if let Some(id) = &s.identity
            && path_problem("identity", id).is_none()
            && !expand_home(id).is_file()
        {
            out.push(
                Problem::warning(format!(
                    "`identity` of {owner} is `{}`, which is not a file here",
                    id.value
                ))
                .at(file, id.pos)
                .label("no such file")
                .help("ssh will fail to use it unless it is there when the step runs"),
            );
        }
    }
    out
}

fn expand_home(p: &str) -> std::path::PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => p.into(),
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
    fn jump_hosts_are_user_host_port_and_never_options() {
        for ok in [
            "bastion",
            "dr@bastion.example.com:2222",
            "10.0.0.1",
            "::1",
            "dr@10.0.0.1:22",
        ] {
            assert_eq!(jump_problem(ok), None, "{ok}");
        }
        for bad in [
            "-oProxyCommand=id",
            "Root@b",
            "b:0",
            "b:x",
            "b;id",
            "@b",
            "",
        ] {
            assert!(jump_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn connect_timeouts_are_whole_seconds_rounded_up() {
        assert_eq!(connect_timeout_secs("5s"), Ok(5));
        assert_eq!(connect_timeout_secs("1500ms"), Ok(2));
        assert_eq!(connect_timeout_secs("1m"), Ok(60));
        assert!(connect_timeout_secs("0s").is_err());
        assert!(connect_timeout_secs("soon").is_err());
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
