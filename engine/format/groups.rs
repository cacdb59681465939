//! Host groups of an environment file: their shape as written (`app: [app-1, app-2]`, or
//! `app: { hosts: [...], user: deploy }` with ssh settings), and the two algorithms over them
//! that the loader (to check) and the compiler (to resolve a step's `on:`) share: expanding
//! names into hosts, and finding the ssh settings that apply to a host.
//!
//! Kept to plain names and values so that both layers call the same implementation: the
//! loader reports what it finds at the file's lines, the compiler only resolves.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::types::SshDoc;
use crate::span::Sp;

/// The implicit group of every inventory host.
pub const ALL: &str = "all";

/// A group: its members (hosts or other groups), and the ssh settings its hosts take.
#[derive(Debug, Clone, Default)]
pub struct GroupDoc {
    pub hosts: Vec<Sp<String>>,
    pub ssh: SshDoc,
}

/// A group written as a mapping.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupMap {
    hosts: Vec<Sp<String>>,
    #[serde(default)]
    user: Option<Sp<String>>,
    #[serde(default)]
    port: Option<Sp<u16>>,
    #[serde(default)]
    identity: Option<Sp<String>>,
    #[serde(default)]
    known_hosts: Option<Sp<String>>,
    #[serde(default)]
    jump: Option<Sp<String>>,
    #[serde(default)]
    connect_timeout: Option<Sp<String>>,
}

impl<'de> Deserialize<'de> for GroupDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GroupDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a list of hosts and groups, or a mapping with `hosts:` and ssh settings",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GroupDoc, A::Error> {
                let mut hosts = Vec::new();
                while let Some(h) = seq.next_element::<Sp<String>>()? {
                    hosts.push(h);
                }
                Ok(GroupDoc {
                    hosts,
                    ssh: SshDoc::default(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<GroupDoc, A::Error> {
                let m = GroupMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(GroupDoc {
                    hosts: m.hosts,
                    ssh: SshDoc {
                        user: m.user,
                        port: m.port,
                        identity: m.identity,
                        known_hosts: m.known_hosts,
                        jump: m.jump,
                        connect_timeout: m.connect_timeout,
                    },
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for GroupDoc {
    fn schema_name() -> Cow<'static, str> {
        "Group".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let ssh = g.subschema_for::<SshDoc>();
        json_schema!({
            "anyOf": [
                { "type": "array", "items": { "type": "string" }, "description": "hosts and groups" },
                {
                    "allOf": [ssh],
                    "type": "object",
                    "required": ["hosts"],
                    "properties": { "hosts": { "type": "array", "items": { "type": "string" } } }
                }
            ]
        })
    }
}

/// Groups by name, their members by name: what the algorithms below read.
pub type Members = BTreeMap<String, Vec<String>>;

/// The groups' members as plain names.
pub fn members(groups: &BTreeMap<Sp<String>, GroupDoc>) -> Members {
    groups
        .iter()
        .map(|(name, g)| {
            (
                name.value.clone(),
                g.hosts.iter().map(|h| h.value.clone()).collect(),
            )
        })
        .collect()
}

/// The hosts that `names` (hosts, groups, `all`) stand for: each once, in the order they are
/// first reached (a group's members in the order written, `all` in the inventory's order).
/// The names that are neither a host nor a group are the error. A cycle of groups (which the
/// loader refuses) is walked once, never forever.
pub fn expand(
    names: &[String],
    groups: &Members,
    hosts: &BTreeSet<String>,
) -> Result<Vec<String>, Vec<String>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut unknown = Vec::new();
    let mut entered = BTreeSet::new();
    for name in names {
        walk(
            name,
            groups,
            hosts,
            &mut entered,
            &mut seen,
            &mut out,
            &mut unknown,
        );
    }
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(unknown)
    }
}

fn walk<'a>(
    name: &'a str,
    groups: &'a Members,
    hosts: &BTreeSet<String>,
    entered: &mut BTreeSet<&'a str>,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<String>,
    unknown: &mut Vec<String>,
) {
    if hosts.contains(name) {
        if seen.insert(name.to_owned()) {
            out.push(name.to_owned());
        }
    } else if let Some(members) = groups.get(name) {
        if entered.insert(name) {
            for m in members {
                walk(m, groups, hosts, entered, seen, out, unknown);
            }
        }
    } else if name == ALL {
        for h in hosts {
            if seen.insert(h.clone()) {
                out.push(h.clone());
            }
        }
    } else if !unknown.iter().any(|u| u == name) {
        unknown.push(name.to_owned());
    }
}

/// A cycle of groups, named in order from the first group (by name) on it back to itself:
/// `["a", "b", "a"]`.
pub fn cycle(groups: &Members) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        g: &str,
        groups: &Members,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(g) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|p| p == g).unwrap_or(0);
                let mut c: Vec<String> = path.get(from..).unwrap_or_default().to_vec();
                c.push(g.to_owned());
                return Some(c);
            }
            None => {}
        }
        marks.insert(g.to_owned(), Mark::Open);
        path.push(g.to_owned());
        for m in groups.get(g).into_iter().flatten() {
            if groups.contains_key(m)
                && let Some(c) = visit(m, groups, marks, path)
            {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(g.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for g in groups.keys() {
        if let Some(c) = visit(g, groups, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// The groups that hold `host`, nearest first: those that list it, then those that list
/// them, and so on; each group once, at its nearest distance.
pub fn ancestry(host: &str, groups: &Members) -> Vec<Vec<String>> {
    let mut levels: Vec<Vec<String>> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut current: Vec<String> = vec![host.to_owned()];
    loop {
        let next: Vec<String> = groups
            .iter()
            .filter(|(g, members)| {
                !seen.contains(*g) && members.iter().any(|m| current.contains(m))
            })
            .map(|(g, _)| g.clone())
            .collect();
        if next.is_empty() {
            return levels;
        }
        seen.extend(next.iter().cloned());
        levels.push(next.clone());
        current = next;
    }
}

/// Two groups at the same distance from a host that set one of its settings differently.
#[derive(Debug, PartialEq)]
pub struct Conflict {
    pub key: &'static str,
    pub groups: [String; 2],
}

/// A host's ssh settings: its own, else the nearest group's that sets each, else the
/// defaults'. Two groups equally near that disagree are a [`Conflict`].
pub fn settings(
    own: &SshDoc,
    levels: &[Vec<(&str, &SshDoc)>],
    defaults: &SshDoc,
) -> Result<SshDoc, Conflict> {
    Ok(SshDoc {
        user: pick("user", own, levels, defaults, |s| &s.user)?,
        port: pick("port", own, levels, defaults, |s| &s.port)?,
        identity: pick("identity", own, levels, defaults, |s| &s.identity)?,
        known_hosts: pick("known_hosts", own, levels, defaults, |s| &s.known_hosts)?,
        jump: pick("jump", own, levels, defaults, |s| &s.jump)?,
        connect_timeout: pick("connect_timeout", own, levels, defaults, |s| {
            &s.connect_timeout
        })?,
    })
}

fn pick<T: PartialEq + Clone>(
    key: &'static str,
    own: &SshDoc,
    levels: &[Vec<(&str, &SshDoc)>],
    defaults: &SshDoc,
    get: impl Fn(&SshDoc) -> &Option<Sp<T>>,
) -> Result<Option<Sp<T>>, Conflict> {
    if let Some(v) = get(own) {
        return Ok(Some(v.clone()));
    }
    for level in levels {
        let mut found: Option<(&str, &Sp<T>)> = None;
        for (g, s) in level {
            if let Some(v) = get(s) {
                match found {
                    Some((first, w)) if w.value != v.value => {
                        return Err(Conflict {
                            key,
                            groups: [first.to_owned(), (*g).to_owned()],
                        });
                    }
                    Some(_) => {}
                    None => found = Some((g, v)),
                }
            }
        }
        if let Some((_, v)) = found {
            return Ok(Some(v.clone()));
        }
    }
    Ok(get(defaults).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Pos;

    fn groups(spec: &[(&str, &[&str])]) -> Members {
        spec.iter()
            .map(|(g, m)| ((*g).to_owned(), m.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    fn hosts(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_group_of_groups_expands_in_written_order_each_host_once() {
        let g = groups(&[
            ("web", &["web-2", "web-1"]),
            ("app", &["web", "api-1", "web-1"]),
            ("prod", &["db-1", "app"]),
        ]);
        let h = hosts(&["api-1", "db-1", "web-1", "web-2", "spare"]);
        assert_eq!(
            expand(&names(&["prod"]), &g, &h).unwrap(),
            ["db-1", "web-2", "web-1", "api-1"]
        );
        assert_eq!(
            expand(&names(&["web-1", "app", "db-1", "web"]), &g, &h).unwrap(),
            ["web-1", "web-2", "api-1", "db-1"]
        );
    }

    #[test]
    fn all_is_every_host_in_the_inventorys_order() {
        let h = hosts(&["b", "a", "c"]);
        assert_eq!(
            expand(&names(&["c", "all"]), &Members::new(), &h).unwrap(),
            ["c", "a", "b"]
        );
    }

    #[test]
    fn unknown_names_are_all_returned_once() {
        let g = groups(&[("app", &["a"])]);
        let h = hosts(&["a"]);
        assert_eq!(
            expand(&names(&["ap", "app", "b", "ap"]), &g, &h).unwrap_err(),
            ["ap", "b"]
        );
    }

    #[test]
    fn a_cycle_is_named_and_expanding_one_ends() {
        let g = groups(&[("a", &["h1", "b"]), ("b", &["c"]), ("c", &["a", "h2"])]);
        assert_eq!(cycle(&g).unwrap(), ["a", "b", "c", "a"]);
        let self_loop = groups(&[("x", &["x"])]);
        assert_eq!(cycle(&self_loop).unwrap(), ["x", "x"]);
        assert_eq!(
            expand(&names(&["b"]), &g, &hosts(&["h1", "h2"])).unwrap(),
            ["h1", "h2"]
        );
        let dag = groups(&[("a", &["b", "c"]), ("b", &["c"]), ("c", &["h"])]);
        assert_eq!(cycle(&dag), None);
    }

    fn user(u: &str) -> SshDoc {
        SshDoc {
            user: Some(Sp::new(u.to_owned(), Pos::default())),
            ..SshDoc::default()
        }
    }

    #[test]
    fn the_host_wins_over_the_nearest_group_which_wins_over_the_defaults() {
        let g = groups(&[("web", &["h"]), ("prod", &["web", "db"])]);
        assert_eq!(
            ancestry("h", &g),
            [vec!["web".to_owned()], vec!["prod".to_owned()]]
        );
        let (web, prod, defaults) = (user("web"), user("prod"), user("dflt"));
        let levels = [vec![("web", &web)], vec![("prod", &prod)]];
        let s = settings(&user("own"), &levels, &defaults).unwrap();
        assert_eq!(s.user.unwrap().value, "own");
        let s = settings(&SshDoc::default(), &levels, &defaults).unwrap();
        assert_eq!(s.user.unwrap().value, "web");
        let none = SshDoc::default();
        let only_prod = [vec![("web", &none)], vec![("prod", &prod)]];
        let s = settings(&SshDoc::default(), &only_prod, &defaults).unwrap();
        assert_eq!(s.user.unwrap().value, "prod");
        let s = settings(&SshDoc::default(), &[], &defaults).unwrap();
        assert_eq!(s.user.unwrap().value, "dflt");
    }

    #[test]
    fn two_groups_equally_near_that_disagree_are_a_conflict() {
        let (a, b, same) = (user("x"), user("y"), user("x"));
        let e = settings(
            &SshDoc::default(),
            &[vec![("a", &a), ("b", &b)]],
            &SshDoc::default(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            Conflict {
                key: "user",
                groups: ["a".into(), "b".into()]
            }
        );
        let s = settings(
            &SshDoc::default(),
            &[vec![("a", &a), ("c", &same)]],
            &SshDoc::default(),
        )
        .unwrap();
        assert_eq!(s.user.unwrap().value, "x");
    }
}
