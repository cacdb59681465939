//! Compiling an approval gate: its prompt, approvers (roles or people of a role), `min`,
//! timeout and the roles paged after a wait.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::suggestion;
use crate::format::ApprovalDoc;
use crate::template::{Quoting, Scope};

use super::{Approval, Compiler};

impl Compiler<'_> {
    pub(super) fn approval(
        &mut self,
        id: &str,
        a: &ApprovalDoc,
        scope: &Scope,
    ) -> Option<Approval> {
        self.check_template(&a.prompt, Quoting::Plain, scope, "prompt");
        if a.approvers.is_empty() {
            self.err(a.prompt.pos, format!("approval `{id}` names no approvers"))
                .help("list roles (from `roles:`) or people under `approvers`");
        }
        // An approver nobody can answer as (a typo'd role) leaves the gate unopenable: the
        // run would wait there until its timeout. Only a role, or a person who holds one,
        // can ever approve.
        let roles = &self.doc.roles;
        for x in &a.approvers {
            let known = roles.contains_key(&x.value)
                || roles.values().flatten().any(|p| p.value == x.value);
            if !known {
                let candidates: BTreeSet<&str> = roles
                    .keys()
                    .map(String::as_str)
                    .chain(roles.values().flatten().map(|p| p.value.as_str()))
                    .collect();
                let help = suggestion(&x.value, candidates.iter().copied()).unwrap_or_else(|| {
                    if roles.is_empty() {
                        "declare it under `roles:` (`roles: { NAME: [person, ...] }`)".into()
                    } else {
                        format!(
                            "name a role ({}) or a person of one, or add it under `roles:`",
                            roles
                                .keys()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                });
                self.err(
                    x.pos,
                    format!(
                        "approval `{id}` names approver `{}`, which is neither a role nor a person of a role",
                        x.value
                    ),
                )
                .label("no such role or person")
                .help(help);
            }
        }
        let min = a.min.as_ref().map(|m| m.value).unwrap_or(1);
        if let Some(m) = &a.min {
            if m.value == 0 {
                self.err(m.pos, format!("approval `{id}` needs `min` of at least 1"))
                    .help("a gate that needs nobody is not a gate; remove the step instead");
            }
            // When every approver is a role, the people who could approve are known.
            let roles = &self.doc.roles;
            if a.approvers.iter().all(|x| roles.contains_key(&x.value)) {
                let people: BTreeSet<&str> = a
                    .approvers
                    .iter()
                    .flat_map(|r| roles[&r.value].iter().map(|n| n.value.as_str()))
                    .collect();
                if (people.len() as u32) < m.value {
                    self.err(
                        m.pos,
                        format!(
                            "approval `{id}` needs {} approvers but its roles hold {} people",
                            m.value,
                            people.len()
                        ),
                    )
                    .help("add people to the roles, name more approvers, or lower `min`");
                }
            }
        }
        let timeout = self.opt_duration(
            &format!("approval `timeout` of step `{id}`"),
            a.timeout.as_ref(),
        );
        let mut page_after = BTreeMap::new();
        for (role, after) in &a.page_after {
            let what = format!("`page_after.{role}` of step `{id}`");
            if let Some(d) = self.duration(&what, after) {
                page_after.insert(role.clone(), d);
            }
            // Paging is by notify channel: a name that is not one of this gate's approvers,
            // or not a channel, would page nobody.
            if !a.approvers.iter().any(|x| &x.value == role) {
                let help = suggestion(role, a.approvers.iter().map(|x| x.value.as_str()))
                    .unwrap_or_else(|| {
                        format!(
                            "`page_after` names approvers of this gate: {}",
                            a.approvers
                                .iter()
                                .map(|x| x.value.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                self.err(
                    after.pos,
                    format!("{what} names `{role}`, which is not an approver of the gate"),
                )
                .label("not an approver")
                .help(help);
            } else if !self.doc.notify.contains_key(role) {
                self.err(
                    after.pos,
                    format!("{what} names `{role}`, which is not a notify channel"),
                )
                .label("no such channel")
                .help(format!(
                    "nobody would be paged: declare `{role}` under `notify:`, or remove it from `page_after`"
                ));
            }
        }
        Some(Approval {
            prompt: a.prompt.value.clone(),
            approvers: a.approvers.iter().map(|x| x.value.clone()).collect(),
            min,
            timeout,
            page_after,
            input: None,
            manual: None,
        })
    }
}
