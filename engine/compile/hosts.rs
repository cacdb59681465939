//! The environment's inventory compiled into the hosts the executor takes: plain values,
//! already checked by the loader (`format::inventory`) before any can reach `ssh`, with the
//! YAML positions dropped. The executor then depends on the plan's types, never the format's.

use std::collections::BTreeMap;

use crate::format::{EnvDoc, HostDoc};

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
}

/// The environment's hosts by inventory name (what a step's `on:` names).
pub fn hosts(env: &EnvDoc) -> BTreeMap<String, Host> {
    env.inventory
        .iter()
        .map(|(name, h)| (name.clone(), host(h)))
        .collect()
}

fn host(h: &HostDoc) -> Host {
    Host {
        host: h.host.value.clone(),
        user: h.user.as_ref().map(|u| u.value.clone()),
        port: h.port.as_ref().map(|p| p.value),
        identity: h.identity.as_ref().map(|i| i.value.clone()),
        known_hosts: h.known_hosts.as_ref().map(|k| k.value.clone()),
    }
}
