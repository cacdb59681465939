//! The environment's inventory compiled into what the executor takes: each host with the ssh
//! settings that apply to it (its own, else its nearest group's, else the `ssh` defaults), and
//! the groups a step's `on:` may name. Plain values, already checked by the loader
//! (`format::inventory`) before any can reach `ssh`, with the YAML positions dropped. The
//! executor then depends on the plan's types, never the format's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::diag::{Problem, Problems, SourceFile, suggestion};

use crate::format::groups::{self, Members};
use crate::format::inventory::{connect_timeout_secs, settings_of};
use crate::format::{EnvDoc, HostDoc, RunbookDoc, Sp, SshDoc};

/// One inventory host, as `ssh` is pointed at it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Host {
    /// The DNS name or address `ssh` connects to.
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// The private key file (`~/` allowed: it is expanded when the step runs).
    pub identity: Option<String>,
    /// A known_hosts file that pins the host's key.
    pub known_hosts: Option<String>,
    /// The host ssh goes through (`ssh -J`), `[user@]host[:port]`.
    pub jump: Option<String>,
    /// ssh's `ConnectTimeout`, in seconds.
    pub connect_timeout: Option<u64>,
}

/// The environment's hosts by inventory name, and its groups.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub hosts: BTreeMap<String, Host>,
    groups: Members,
}

impl Inventory {
    /// The hosts a step's `on:` stands for (hosts, groups, `all`): each once, in the order
    /// first reached. The error is the names that are neither a host nor a group.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<String>, Vec<String>> {
        let hosts: BTreeSet<String> = self.hosts.keys().cloned().collect();
        groups::expand(names, &self.groups, &hosts)
    }

    /// Every name an `on:` may give: hosts, groups and `all`.
    pub fn names(&self) -> Vec<&str> {
        self.hosts
            .keys()
            .chain(self.groups.keys())
            .map(String::as_str)
            .chain([groups::ALL])
            .collect()
    }
}

/// The environment's inventory, each host with the settings that apply to it.
pub fn inventory(env: &EnvDoc) -> Inventory {
    let members = groups::members(&env.groups);
    let hosts = env
        .inventory
        .iter()
        .map(|(name, h)| {
            // The loader refuses conflicting groups; were one let through, the host's own
            // settings are all it gets.
            let s = settings_of(name, h, env, &members).unwrap_or_else(|_| h.ssh());
            (name.clone(), host(h, &s))
        })
        .collect();
    Inventory {
        hosts,
        groups: members,
    }
}

fn host(h: &HostDoc, s: &SshDoc) -> Host {
    Host {
        host: h.host.value.clone(),
        user: s.user.as_ref().map(|u| u.value.clone()),
        port: s.port.as_ref().map(|p| p.value),
        identity: s.identity.as_ref().map(|i| i.value.clone()),
        known_hosts: s.known_hosts.as_ref().map(|k| k.value.clone()),
        jump: s.jump.as_ref().map(|j| j.value.clone()),
        connect_timeout: s
            .connect_timeout
            .as_ref()
            .and_then(|t| connect_timeout_secs(t).ok()),
    }
}

/// The names a runbook's steps give in `on:`, each with its step and place.
pub fn on_names(doc: &RunbookDoc) -> Vec<(&str, &Sp<String>)> {
    doc.steps
        .iter()
        .chain(&doc.finally)
        .flat_map(|s| s.on.iter().map(move |h| (s.id.value.as_str(), h)))
        .collect()
}

/// Each `on:` name of a runbook that environment `env_name` has no host or group for, at its
/// line; and each `on:` that stands for no host at all.
pub fn on_problems(
    doc: &RunbookDoc,
    file: &Arc<SourceFile>,
    inventory: &Inventory,
    env_name: &str,
) -> Problems {
    let mut out = Problems::default();
    let names = inventory.names();
    for (step, h) in on_names(doc) {
        match inventory.resolve(std::slice::from_ref(&h.value)) {
            Err(_) => out.push(
                Problem::error(format!(
                    "step `{step}` runs on `{}`, which is neither a host nor a group of environment `{env_name}`",
                    h.value
                ))
                .at(file, h.pos)
                .label("unknown")
                .maybe_help(suggestion(&h.value, names.iter().copied())),
            ),
            Ok(hosts) if hosts.is_empty() => out.push(
                Problem::error(format!(
                    "step `{step}` runs on `{}`, which is no host in environment `{env_name}`: it has no inventory",
                    h.value
                ))
                .at(file, h.pos)
                .label("no host"),
            ),
            Ok(_) => {}
        }
    }
    out
}
