//! The allowed-signers file (`runbooks/allowed_signers`): OpenSSH's format, read strictly,
//! every bad line reported with its number, and the questions asked of it (whose key is this,
//! does this person have one, is a key given to two people).

use ssh_key::public::KeyData;
use std::path::Path;

use ssh_key::PublicKey;

use super::{NAMESPACE, fingerprint};

/// `runbooks/allowed_signers`: who holds which key, in OpenSSH's allowed-signers format (the
/// one git uses for signed commits).
#[derive(Clone, Debug)]
pub struct AllowedSigners {
    pub entries: Vec<Signer>,
    /// The file's text as read: a run journals its sha256 and keeps a copy, so `verify` checks
    /// signatures years later against the keys as they were.
    pub text: String,
}

/// One line of the allowed-signers file.
#[derive(Clone, Debug)]
pub struct Signer {
    /// 1-based.
    pub line: usize,
    pub principals: Vec<String>,
    /// `namespaces="…"`: the namespaces the key may sign in; `None` is any.
    pub namespaces: Option<Vec<String>>,
    pub key: PublicKey,
}

impl Signer {
    fn allows(&self, namespace: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|n| n.iter().any(|n| n == namespace))
    }
}

/// A line of the allowed-signers file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl AllowedSigners {
    /// Parses the file's text. Every bad line is reported, not just the first.
    pub fn parse(text: &str) -> Result<Self, Vec<LineError>> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            match parse_line(line, trimmed) {
                Ok(signer) => entries.push(signer),
                Err(message) => errors.push(LineError { line, message }),
            }
        }
        if errors.is_empty() {
            Ok(Self {
                entries,
                text: text.to_string(),
            })
        } else {
            Err(errors)
        }
    }

    /// Reads and parses `path`; `Ok(None)` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<Self>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map(Some).map_err(|errs| {
                errs.iter()
                    .map(|e| format!("{}:{}", path.display(), e))
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read `{}`: {e}", path.display())),
        }
    }

    /// The principals whose lines carry `key` for our namespace, in file order.
    pub fn principals_of(&self, key: &KeyData) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.entries {
            if s.key.key_data() == key && s.allows(NAMESPACE) {
                for p in &s.principals {
                    if !out.contains(&p.as_str()) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    /// Does anyone hold a key under this name?
    pub fn has_principal(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|s| s.allows(NAMESPACE) && s.principals.iter().any(|p| p == name))
    }

    /// Keys given to two or more people, with the lines that list them: one key held by two
    /// names would let one person pass a two-person gate alone.
    pub fn shared_keys(&self) -> Vec<(String, Vec<String>, Vec<usize>)> {
        let mut seen: Vec<(&KeyData, Vec<String>, Vec<usize>)> = Vec::new();
        for s in &self.entries {
            let at = match seen.iter().position(|(k, _, _)| *k == s.key.key_data()) {
                Some(at) => at,
                None => {
                    seen.push((s.key.key_data(), Vec::new(), Vec::new()));
                    seen.len() - 1
                }
            };
            if let Some((_, names, lines)) = seen.get_mut(at) {
                for p in &s.principals {
                    if !names.contains(p) {
                        names.push(p.clone());
                    }
                }
                lines.push(s.line);
            }
        }
        seen.into_iter()
            .filter(|(_, names, _)| names.len() > 1)
            .map(|(k, names, lines)| (fingerprint(k), names, lines))
            .collect()
    }

    /// The sha256 of the file's text, as `run_started` journals it.
    pub fn sha256(&self) -> String {
        crate::digest::sha256_hex(self.text.as_bytes())
    }
}

/// `principal[,principal…] [options] keytype base64 [comment]`.
fn parse_line(number: usize, line: &str) -> Result<Signer, String> {
    let (principals, rest) = line
        .split_once(char::is_whitespace)
        .ok_or("expected `NAME[,NAME…] [namespaces=\"runbook-approval\"] ssh-ed25519 AAAA…`")?;
    let principals: Vec<String> = principals.split(',').map(str::to_string).collect();
    if principals.iter().any(String::is_empty) {
        return Err("an empty name in the principals list".into());
    }
    // OpenSSH reads a principal as a pattern (`*`, `?`, `!`): `*` there is anyone. Names here
    // are matched exactly, so a pattern would silently mean someone else than it does to
    // ssh-keygen and git; it is refused rather than given either meaning.
    if let Some(p) = principals.iter().find(|p| p.contains(['*', '?', '!'])) {
        return Err(format!(
            "`{p}` is a pattern, and runbook matches names exactly: list each person by name, one key each"
        ));
    }
    let mut rest = rest.trim_start();
    let mut namespaces = None;
    // Options come before the key type; a key type never contains `=`.
    let first_word = rest.split(char::is_whitespace).next().unwrap_or_default();
    if !first_word.starts_with("ssh-")
        && !first_word.starts_with("ecdsa-")
        && !first_word.starts_with("sk-")
    {
        let (options, after) = split_options(rest)?;
        for (name, value) in options {
            match name.to_ascii_lowercase().as_str() {
                "namespaces" => {
                    let v = value
                        .ok_or("`namespaces` needs a value: namespaces=\"runbook-approval\"")?;
                    namespaces = Some(v.split(',').map(str::to_string).collect());
                }
                "cert-authority" => {
                    return Err(
                        "`cert-authority` lines are not supported: list each person's own key"
                            .into(),
                    );
                }
                "valid-after" | "valid-before" => {
                    return Err(format!(
                        "`{name}` is not supported: remove it, and remove a key that is no longer valid"
                    ));
                }
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        rest = after.trim_start();
    }
    let key = PublicKey::from_openssh(rest)
        .map_err(|e| format!("not a public key (`ssh-ed25519 AAAA…` expected): {e}"))?;
    if !checkable(key.key_data()) {
        return Err(format!(
            "`{}` keys cannot be checked by runbook: use an ed25519 or ecdsa key (`ssh-keygen -t ed25519`, or `-t ed25519-sk` for a hardware key)",
            key.algorithm()
        ));
    }
    Ok(Signer {
        line: number,
        principals,
        namespaces,
        key,
    })
}

/// Key types whose signatures `verify` can check (the `ssh-key` features this crate builds
/// with): any other would have every approval refused as "does not match", which it is not.
fn checkable(key: &KeyData) -> bool {
    matches!(
        key,
        KeyData::Ed25519(_)
            | KeyData::Ecdsa(_)
            | KeyData::SkEd25519(_)
            | KeyData::SkEcdsaSha2NistP256(_)
    )
}

type Options<'a> = Vec<(&'a str, Option<String>)>;

/// `name[="value"][,name…]` up to the first unquoted whitespace.
fn split_options(s: &str) -> Result<(Options<'_>, &str), String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let end = rest
            .find(|c: char| c == '=' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(end);
        if name.is_empty() {
            return Err("an empty option".into());
        }
        rest = after;
        let mut value = None;
        if let Some(after_eq) = rest.strip_prefix('=') {
            let Some(quoted) = after_eq.strip_prefix('"') else {
                return Err(format!("the value of `{name}` must be in double quotes"));
            };
            let close = quoted
                .find('"')
                .ok_or_else(|| format!("the value of `{name}` has no closing quote"))?;
            let (v, after_v) = quoted.split_at(close);
            value = Some(v.to_string());
            rest = after_v.strip_prefix('"').unwrap_or(after_v);
        }
        out.push((name, value));
        match rest.strip_prefix(',') {
            Some(more) => rest = more,
            None => break,
        }
    }
    if !rest.starts_with(char::is_whitespace) {
        return Err("expected a key after the options".into());
    }
    Ok((out, rest))
}
