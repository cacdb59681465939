//! The project's `runbooks/allowed_signers`: loading it for a run, and `check`'s review of it
//! against the people the runbooks name (docs/design.md, "Signed approvals").

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::compile::Plan;
use crate::diag::{Problem, Problems, SourceFile};
use crate::project::Project;
use crate::signing::AllowedSigners;
use crate::span::Pos;

/// Where a project keeps its signers: beside the runbooks, reviewed and versioned with them.
pub fn path(project: &Project) -> PathBuf {
    project.runbooks_dir().join("allowed_signers")
}

/// The project's allowed signers: `Ok(None)` when it has no such file; every unreadable line
/// as a problem at its line.
pub fn load(project: &Project) -> Result<Option<AllowedSigners>, Problems> {
    let path = path(project);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            let mut all = Problems::default();
            all.push(Problem::error(format!(
                "cannot read `{}`: {e}",
                crate::format::display_path(&path)
            )));
            return Err(all);
        }
    };
    let file = SourceFile::new(&path, &crate::format::display_path(&path), text.clone());
    AllowedSigners::parse(&text).map(Some).map_err(|errs| {
        let mut all = Problems::default();
        for e in errs {
            all.push(
                Problem::error(format!("allowed_signers: {}", e.message))
                    .at(&file, line_pos(&file, e.line))
                    .help(
                        "each line is `NAME[,NAME…] [namespaces=\"runbook-approval\"] ssh-ed25519 AAAA…` (the public key as in `~/.ssh/id_ed25519.pub`)",
                    ),
            );
        }
        all
    })
}

/// `check`: the file parses (`load`), no key is given to two people (one person could then
/// pass a two-person gate alone), and every person of every role has a key.
pub fn review(project: &Project, plans: &[Plan]) -> Problems {
    let signers = match load(project) {
        Ok(Some(s)) => s,
        Ok(None) => return Problems::default(),
        Err(p) => return p,
    };
    let path = path(project);
    let file = SourceFile::new(
        &path,
        &crate::format::display_path(&path),
        signers.text.clone(),
    );
    let mut all = Problems::default();
    for (key, names, lines) in signers.shared_keys() {
        let at = lines.first().copied().unwrap_or(1);
        all.push(
            Problem::error(format!(
                "allowed_signers gives one key ({key}) to {}",
                names.join(", ")
            ))
            .at(&file, line_pos(&file, at))
            .help(
                "each person signs with their own key: a shared key lets one person approve as two",
            ),
        );
    }
    for (person, wheres) in people(plans) {
        if !signers.has_principal(&person) {
            all.push(
                Problem::warning(format!(
                    "`{person}` ({}) has no key in allowed_signers: their approvals will be refused where signatures are required",
                    wheres.join("; ")
                ))
                .in_file(&file)
                .help(format!("add a line `{person} namespaces=\"runbook-approval\" ssh-ed25519 AAAA…` with their public key")),
            );
        }
    }
    all
}

/// Every person of every role of these plans (roles exist to approve), with the roles that
/// name them: `role \`cto\` in 6 runbooks`.
fn people(plans: &[Plan]) -> BTreeMap<String, Vec<String>> {
    let mut named: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for plan in plans {
        for (role, people) in &plan.roles {
            for p in people {
                named
                    .entry(p)
                    .or_default()
                    .entry(role)
                    .or_default()
                    .insert(&plan.scenario);
            }
        }
    }
    named
        .into_iter()
        .map(|(person, roles)| {
            let wheres = roles
                .into_iter()
                .map(|(role, scenarios)| match scenarios.len() {
                    1 | 2 => format!(
                        "role `{role}` in {}",
                        scenarios.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                    n => format!("role `{role}` in {n} runbooks"),
                })
                .collect();
            (person.to_owned(), wheres)
        })
        .collect()
}

/// The position of a 1-based line's start.
fn line_pos(file: &Arc<SourceFile>, line: usize) -> Pos {
    let offset: usize = file
        .text()
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let len = file
        .text()
        .get(offset..)
        .and_then(|rest| rest.lines().next())
        .map_or(0, str::len);
    Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: 1,
        offset,
        len,
    }
}
