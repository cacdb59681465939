//! `hosts:` of a step with `on:`: how many of its hosts run at once, and how many may fail
//! with the step still succeeding. Checked here, at the line of each value.

use crate::format::StepDoc;

use super::Compiler;

/// How many hosts run at once when a step's `hosts:` gives no `max_parallel`, like
/// Ansible's default forks: a fleet is never reached all at once.
pub const DEFAULT_MAX_PARALLEL: u32 = 50;

/// How a step with `on:` fans out over its hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fanout {
    /// At most this many hosts at once (1 or more).
    pub max_parallel: u32,
    /// How many hosts may fail with the step still succeeding.
    pub max_failures: Tolerance,
}

impl Default for Fanout {
    fn default() -> Self {
        Fanout {
            max_parallel: DEFAULT_MAX_PARALLEL,
            max_failures: Tolerance::Hosts(0),
        }
    }
}

/// `max_failures:` — a count of hosts, or a percentage of the step's hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tolerance {
    Hosts(u32),
    /// 0 to 100.
    Percent(u32),
}

impl Tolerance {
    /// How many of `hosts` hosts may fail: a percentage rounds down (10% of 15 hosts is 1).
    pub fn allowed(self, hosts: usize) -> usize {
        match self {
            Tolerance::Hosts(n) => n as usize,
            Tolerance::Percent(p) => hosts * p as usize / 100,
        }
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tolerance::Hosts(n) => write!(f, "{n}"),
            Tolerance::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Compiler<'_> {
    /// The step's `hosts:`, each value checked at its line; the defaults where it gives none.
    pub(super) fn fanout(&mut self, id: &str, s: &StepDoc) -> Fanout {
        let mut out = Fanout::default();
        let Some(h) = &s.hosts else {
            return out;
        };
        if s.on.is_empty() {
            self.err(h.pos, format!("step `{id}` has `hosts` but no `on`"))
                .label("no hosts")
                .help("`hosts:` says how a step fans out over the hosts of its `on:`; add `on: [host or group]`, or remove it");
        }
        if let Some(m) = &h.value.max_parallel {
            match m.value.0.parse::<u32>() {
                Ok(n) if n >= 1 => out.max_parallel = n,
                _ => {
                    self.err(
                        m.pos,
                        format!(
                            "`max_parallel` of step `{id}` is `{}`, not a number of hosts of 1 or more",
                            m.value.0
                        ),
                    )
                    .label("not 1 or more")
                    .help(format!(
                        "write how many hosts may run at once, 1 or more (default {DEFAULT_MAX_PARALLEL})"
                    ));
                }
            }
        }
        if let Some(m) = &h.value.max_failures {
            match tolerance(&m.value.0) {
                Ok(t) => out.max_failures = t,
                Err(why) => {
                    self.err(
                        m.pos,
                        format!("`max_failures` of step `{id}` is `{}`: {why}", m.value.0),
                    )
                    .label("not a tolerance")
                    .help("write how many hosts may fail, 0 or more (`2`), or a percentage of the hosts from 0% to 100% (`\"10%\"`)");
                }
            }
        }
        out
    }
}

/// `2` or `"10%"`.
fn tolerance(s: &str) -> Result<Tolerance, &'static str> {
    match s.strip_suffix('%') {
        Some(p) => match p.parse::<u32>() {
            Ok(p) if p <= 100 => Ok(Tolerance::Percent(p)),
            Ok(_) => Err("a percentage over 100%"),
            Err(_) => Err("not a whole percentage"),
        },
        None => s
            .parse::<u32>()
            .map(Tolerance::Hosts)
            .map_err(|_| "not a number of hosts of 0 or more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_parse_and_percentages_round_down() {
        assert_eq!(tolerance("2"), Ok(Tolerance::Hosts(2)));
        assert_eq!(tolerance("10%"), Ok(Tolerance::Percent(10)));
        assert!(tolerance("101%").is_err());
        assert!(tolerance("-1").is_err());
        assert!(tolerance("a%").is_err());
        assert_eq!(Tolerance::Percent(10).allowed(15), 1);
        assert_eq!(Tolerance::Percent(10).allowed(9), 0);
        assert_eq!(Tolerance::Percent(100).allowed(5), 5);
        assert_eq!(Tolerance::Hosts(2).allowed(1), 2);
    }
}
