//! The project's `runbooks/allowed_signers`: loading it for a run, whether the run requires
//! signed decisions, the key its seals are signed with, and `check`'s review of the file
//! against the people the runbooks name (docs/design.md, "Signed approvals").

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::Error;
use super::error::Said;
use crate::compile::Plan;
use crate::diag::{Problem, Problems, SourceFile};
use crate::format::EnvDoc;
use crate::journal::Mode;
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

/// The project's allowed signers, and whether this run requires signed decisions: a real run
/// of a project that has them, or any run whose environment says `signed_approvals: true`.
/// `--yes` cannot sign, so it is refused where signatures are required.
pub fn run_signers(
    plan: &Plan,
    mode: Mode,
    env: &EnvDoc,
    yes: bool,
) -> Result<(Option<crate::signing::AllowedSigners>, bool), Error> {
    let project = Project::at(plan.root.clone());
    let signers = load(&project).map_err(|p| Error::usage(Said::from(p)))?;
    let required = (mode == Mode::Real && signers.is_some()) || env.signed_approvals;
    if required && yes && plan.steps.iter().any(|s| s.is_gate()) {
        let why = if env.signed_approvals {
            "its environment says `signed_approvals: true`"
        } else {
            "the project has `runbooks/allowed_signers`"
        };
        return Err(Error::usage(Said::from(
            Problem::error(format!(
                "`--yes` cannot pass gates in this run: it requires signed approvals ({why})"
            ))
            .help("leave out `--yes`; each approver signs with `runbook approve RUN STEP --as NAME --key PATH`"),
        )));
    }
    Ok((signers, required))
}

/// The key a run signs its seals with: `--key`, which must exist (refused before anything is
/// written), else `signing::default_key()` when there is one. A dry-run signs only with an
/// explicit `--key`: nothing happened that needs a signature, and a default key with a
/// passphrase would only earn it a warning.
pub fn seal_key(
    explicit: Option<&std::path::Path>,
    mode: Mode,
    operator: &str,
    signers: Option<&crate::signing::AllowedSigners>,
) -> Result<Option<PathBuf>, Error> {
    let key = match explicit {
        Some(k) if !k.exists() => {
            return Err(Error::usage(Said::error(format!(
                "the signing key `{}` does not exist: give a private key, or a public key whose private half is in ssh-agent",
                crate::format::display_path(k)
            ))));
        }
        Some(k) => k.to_owned(),
        None if mode == Mode::DryRun => return Ok(None),
        None => match crate::signing::default_key() {
            Some(k) => k,
            None => return Ok(None),
        },
    };
    // `verify` holds the seal to the run's allowed_signers: a seal signed with a key that is
    // not the operator's there would make the run's own journal read BROKEN. Said now, before
    // anything runs, instead of at the end.
    let Some(signers) = signers else {
        return Ok(Some(key));
    };
    let Some(public) = public_half(&key) else {
        return Ok(Some(key));
    };
    let holders = signers.principals_of(public.key_data());
    if holders.contains(&operator) {
        return Ok(Some(key));
    }
    let whose = if holders.is_empty() {
        "which allowed_signers does not list".to_owned()
    } else {
        format!("which allowed_signers gives to {}", holders.join(", "))
    };
    let fp = crate::signing::fingerprint(public.key_data());
    if explicit.is_some() {
        return Err(Error::usage(
            Said::error(format!(
                "the signing key `{}` ({fp}) is not `{operator}`'s: a seal signed with it would not verify, {whose}",
                crate::format::display_path(&key)
            ))
            .help("run as the key's holder (`--as NAME`), or give your own key with `--key`"),
        ));
    }
    eprintln!(
        "note: the journal's seal will not be signed: the default key `{}` ({fp}) is not `{operator}`'s ({whose}); give yours with `--key`",
        crate::format::display_path(&key)
    );
    Ok(None)
}

/// The public key of a signing key: the file itself when it is a public key, else the `.pub`
/// beside it; `None` when neither reads (the key is then used unchecked, as before).
fn public_half(key: &std::path::Path) -> Option<ssh_key::PublicKey> {
    let pub_path = if key.extension().is_some_and(|e| e == "pub") {
        key.to_owned()
    } else {
        let mut p = key.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    };
    ssh_key::PublicKey::read_openssh_file(&pub_path).ok()
}
