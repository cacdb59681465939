//! SSH signatures on decisions and seals: who approved is proven by a key, not by a name typed
//! on the command line. A leaf: it knows the allowed-signers file, the statements that are
//! signed, the tokens that carry them between machines, signing (by `ssh-keygen -Y sign`, which
//! reaches ssh-agent and hardware keys as the user has set them up) and checking (in process,
//! with the RustCrypto `ssh-key` crate, so a verdict never depends on what a PATH holds).
//! docs/design.md, "Signed approvals", says where each piece is used.

mod allowed;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64ct::{Base64UrlUnpadded, Encoding as _};
use serde::{Deserialize, Serialize};
use ssh_key::public::KeyData;
use ssh_key::{HashAlg, PublicKey, SshSig};

/// The SSHSIG namespace of every signature `runbook` makes or accepts: a signature made for git
/// or for a file (`-n git`, `-n file`) can never pass as an approval.
pub const NAMESPACE: &str = "runbook-approval";

/// A token starts so: a pasted line is told from a plain "y" at a prompt, and a token of a
/// later format from this one.
const TOKEN_PREFIX: &str = "rb1.";

pub use allowed::{AllowedSigners, LineError, Signer};

/// A key's fingerprint as `ssh-keygen -l` prints it: `SHA256:…`.
pub fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// What a person decides at a gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Deny,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        })
    }
}

/// What an approver signs. `request` is the hash of the gate's `approval_requested` journal
/// record: a signature cannot be replayed on another run, another gate, or a later request of
/// the same gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub run: String,
    pub step: String,
    pub decision: Decision,
    pub by: String,
    #[serde(default)]
    pub comment: Option<String>,
    /// RFC 3339, UTC, whole seconds.
    pub at: String,
    pub request: String,
    /// An `input:` step's answer: the value given, signed with the decision (`approve`). Last
    /// and absent for approvals, so that an approval's signed bytes are as they always were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Statement {
    /// The exact bytes signed: a fixed preamble, then the fields as one line of JSON in a fixed
    /// order (JSON escapes newlines, so no field can forge another's line).
    pub fn canonical(&self) -> Vec<u8> {
        let body = serde_json::to_string(self).unwrap_or_default();
        format!("runbook approval v1\n{body}\n").into_bytes()
    }

    /// Is this the statement for the answer `expected` describes? The first field that differs,
    /// if any. The engine asks before it counts an answer, and `verify` asks again of every
    /// signed record: one list of what must match, so the two cannot drift apart.
    pub fn mismatch(&self, expected: &Expected<'_>) -> Result<(), Mismatch> {
        let differs = |signed: &str, want: &str| {
            (signed != want).then(|| (signed.to_owned(), want.to_owned()))
        };
        if let Some((signed, want)) = differs(&self.run, expected.run) {
            return Err(Mismatch::Run { signed, want });
        }
        if let Some((signed, want)) = differs(&self.step, expected.step) {
            return Err(Mismatch::Step { signed, want });
        }
        if self.decision != expected.decision {
            return Err(Mismatch::Decision {
                signed: self.decision,
                want: expected.decision,
            });
        }
        if let Some((signed, want)) = differs(&self.by, expected.by) {
            return Err(Mismatch::By { signed, want });
        }
        if self.value.as_deref() != expected.value {
            return Err(Mismatch::Value {
                signed: self.value.clone(),
                want: expected.value.map(str::to_owned),
            });
        }
        let Some(request) = expected.request else {
            return Err(Mismatch::NoRequest {
                step: expected.step.to_owned(),
            });
        };
        if let Some((signed, want)) = differs(&self.request, request) {
            return Err(Mismatch::Request {
                step: expected.step.to_owned(),
                signed,
                want,
            });
        }
        Ok(())
    }
}

/// The answer a statement must be signed for: this run, this gate and its latest request
/// (`None` when the gate has not asked), this decision by this person.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub run: &'a str,
    pub step: &'a str,
    pub decision: Decision,
    pub by: &'a str,
    pub request: Option<&'a str>,
    /// An input's value; `None` for an approval or a denial.
    pub value: Option<&'a str>,
}

/// The first field of a signed statement that is not the answer's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the statement was signed for run `{signed}`, not this run `{want}`")]
    Run { signed: String, want: String },
    #[error("the statement was signed for step `{signed}`, not `{want}`")]
    Step { signed: String, want: String },
    #[error("the statement was signed to {signed}, not to {want}")]
    Decision { signed: Decision, want: Decision },
    #[error("the statement was signed as `{signed}`, not as `{want}`")]
    By { signed: String, want: String },
    #[error("gate `{step}` has not asked in this run")]
    NoRequest { step: String },
    #[error(
        "the statement was signed {}, not {}",
        with_value(signed),
        with_value(want)
    )]
    Value {
        signed: Option<String>,
        want: Option<String>,
    },
    #[error(
        "the statement was signed for request {signed} of `{step}`, not its latest request {want} (signed for another gate or an earlier opening)"
    )]
    Request {
        step: String,
        signed: String,
        want: String,
    },
}

/// An input's value in [`Mismatch::Value`]'s words.
fn with_value(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("with the value `{v}`"),
        None => "without a value (an approval)".to_owned(),
    }
}

/// What a run's operator signs when the journal is sealed: its last hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealStatement {
    pub run: String,
    pub by: String,
    /// The `hash` of the last record before the seal.
    pub head: String,
}

impl SealStatement {
    /// The exact bytes signed; the preamble differs from an approval's, so neither passes as
    /// the other.
    pub fn canonical(&self) -> Vec<u8> {
        let body = serde_json::to_string(self).unwrap_or_default();
        format!("runbook seal v1\n{body}\n").into_bytes()
    }
}

/// A signed statement, as it travels: in the approvals folder, in a token, in the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    #[serde(flatten)]
    pub statement: Statement,
    /// The armored SSHSIG (`-----BEGIN SSH SIGNATURE-----…`).
    pub signature: String,
}

impl Signed {
    /// One line of printable ASCII, for chat, a ticket or a phone.
    pub fn to_token(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!(
            "{TOKEN_PREFIX}{}",
            Base64UrlUnpadded::encode_string(json.as_bytes())
        )
    }

    /// Reads a token; surrounding whitespace (a pasted newline) is ignored.
    pub fn from_token(token: &str) -> Result<Self, String> {
        let t = token.trim();
        let body = t.strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
            "not a runbook approval token (it starts with `rb1.`; copy the whole line)".to_string()
        })?;
        let bytes = Base64UrlUnpadded::decode_vec(body)
            .map_err(|_| "the token is damaged (not base64url): copy the whole line".to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("the token is damaged: {e}"))
    }

    /// Is `line` a token (as opposed to a plain answer at a prompt)?
    pub fn looks_like_token(line: &str) -> bool {
        line.trim().starts_with(TOKEN_PREFIX)
    }
}

/// A signature that verified: whose key it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub fingerprint: String,
}

/// Why a signature does not count. Each says exactly why, naming the key by its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the signature is not an SSH signature: {0}")]
    Malformed(String),
    #[error("the signature was made for `{0}`, not `{NAMESPACE}` (sign with `-n {NAMESPACE}`)")]
    Namespace(String),
    #[error("signed by {0}, which allowed_signers does not list")]
    UnknownKey(String),
    #[error("signed by {key}, which allowed_signers gives to {holders}, not {claimed}")]
    NotTheirs {
        key: String,
        holders: String,
        claimed: String,
    },
    #[error("the signature by {0} does not match the statement (altered, or made for another)")]
    BadSignature(String),
}

/// Checks that `signature` is a good signature of `message` by a key that `signers` gives to
/// `claimed`.
pub fn verify(
    signers: &AllowedSigners,
    message: &[u8],
    signature: &str,
    claimed: &str,
) -> Result<Verified, Refusal> {
    let sig = SshSig::from_pem(signature.trim().as_bytes())
        .map_err(|e| Refusal::Malformed(e.to_string()))?;
    if sig.namespace() != NAMESPACE {
        return Err(Refusal::Namespace(sig.namespace().to_string()));
    }
    let key = sig.public_key();
    let fp = fingerprint(key);
    let holders = signers.principals_of(key);
    if holders.is_empty() {
        return Err(Refusal::UnknownKey(fp));
    }
    if !holders.contains(&claimed) {
        return Err(Refusal::NotTheirs {
            key: fp,
            holders: holders.join(", "),
            claimed: claimed.to_string(),
        });
    }
    let public = PublicKey::new(key.clone(), "");
    public
        .verify(NAMESPACE, message, &sig)
        .map_err(|_| Refusal::BadSignature(fp.clone()))?;
    Ok(Verified { fingerprint: fp })
}

/// Checks a signed approval against the allowed signers: the key is the claimed person's.
pub fn verify_statement(signers: &AllowedSigners, signed: &Signed) -> Result<Verified, Refusal> {
    verify(
        signers,
        &signed.statement.canonical(),
        &signed.signature,
        &signed.statement.by,
    )
}

/// The key to sign with when none is given: `$RUNBOOK_SIGNING_KEY`, then `~/.ssh/id_ed25519`.
pub fn default_key() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("RUNBOOK_SIGNING_KEY").filter(|k| !k.is_empty()) {
        return Some(PathBuf::from(k));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    let k = PathBuf::from(home).join(".ssh").join("id_ed25519");
    k.exists().then_some(k)
}

/// Signs `message` with `key` (a private key file, or a public key whose private half is in
/// ssh-agent) by `ssh-keygen -Y sign`: the armored signature. ssh-keygen asks for a passphrase
/// or a touch of a hardware key on the terminal, as it does for git.
pub fn sign(key: &Path, message: &[u8]) -> Result<String, String> {
    use std::io::Write as _;
    if !key.exists() {
        return Err(format!(
            "the signing key `{}` does not exist: give one with `--key PATH` or `RUNBOOK_SIGNING_KEY`",
            key.display()
        ));
    }
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `ssh-keygen` to sign (is OpenSSH installed?): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(message)
            .map_err(|e| format!("cannot hand the statement to `ssh-keygen`: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`ssh-keygen` failed: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !stdout.contains("BEGIN SSH SIGNATURE") {
        // Without a terminal, ssh-keygen prints its passphrase prompt, reads nothing and calls
        // that an incorrect passphrase: say what would work instead.
        return Err(sign_failed(
            key,
            &String::from_utf8_lossy(&out.stderr),
            "a key with a passphrase is asked for on a terminal: run this in one, or `ssh-add` the key and give `--key KEY.pub`",
        ));
    }
    Ok(stdout.trim_end().to_string())
}

/// Why `ssh-keygen -Y sign` made no signature, from what it wrote to stderr, without its
/// chatter; `passphrase_hint` is added when it asked for a passphrase nobody could type.
fn sign_failed(key: &Path, stderr: &str, passphrase_hint: &str) -> String {
    let asked = stderr.contains("passphrase");
    let err: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("Signing data on standard input"))
        .map(|l| l.trim_start_matches("Enter passphrase: "))
        .collect();
    format!(
        "`ssh-keygen -Y sign` with `{}` failed: {}{}",
        key.display(),
        err.join("; ").trim(),
        if asked {
            format!(" ({passphrase_hint})")
        } else {
            String::new()
        }
    )
}

/// Checks that `signature` is a good signature of `message` by the key it carries, whoever
/// holds it: for a journal whose run kept no allowed_signers, where only the key can be named.
/// Returns the key, so a caller with allowed signers can say whose it is.
pub fn verify_by_own_key(message: &[u8], signature: &str) -> Result<(Verified, KeyData), Refusal> {
    let sig = SshSig::from_pem(signature.trim().as_bytes())
        .map_err(|e| Refusal::Malformed(e.to_string()))?;
    if sig.namespace() != NAMESPACE {
        return Err(Refusal::Namespace(sig.namespace().to_string()));
    }
    let key = sig.public_key().clone();
    let fp = fingerprint(&key);
    PublicKey::new(key.clone(), "")
        .verify(NAMESPACE, message, &sig)
        .map_err(|_| Refusal::BadSignature(fp.clone()))?;
    Ok((Verified { fingerprint: fp }, key))
}

/// How long an unattended signature may take before ssh-keygen is killed: an agent answers at
/// once; anything slower is waiting for a person who is not there.
pub const UNATTENDED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Signs as [`sign`] does, but never asks anyone: ssh-keygen runs in a session of its own (no
/// controlling terminal to ask a passphrase on), with no askpass program, and is killed after
/// `timeout`. For the seal at a run's end, where a prompt would hang the run on its last
/// record. A key in ssh-agent still works (`SSH_AUTH_SOCK` is kept).
pub fn sign_unattended(
    key: &Path,
    message: &[u8],
    timeout: std::time::Duration,
) -> Result<String, String> {
    use std::io::{Read as _, Write as _};
    use std::os::unix::process::CommandExt as _;
    if !key.exists() {
        return Err(format!(
            "the signing key `{}` does not exist: give one with `--key PATH` or `RUNBOOK_SIGNING_KEY`",
            key.display()
        ));
    }
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .env("SSH_ASKPASS_REQUIRE", "never")
        .env_remove("SSH_ASKPASS")
        .env_remove("DISPLAY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the child only calls setsid(2), which is
    // async-signal-safe and touches no memory of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `ssh-keygen` to sign (is OpenSSH installed?): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A failed write shows as ssh-keygen's own failure below.
        let _ = stdin.write_all(message);
    }
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`ssh-keygen -Y sign` with `{}` did not answer within {} s (a key with a passphrase, or a hardware key waiting for a touch: add it to ssh-agent)",
                    key.display(),
                    timeout.as_secs()
                ));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`ssh-keygen` failed: {e}"));
            }
        }
    };
    // A signature and ssh-keygen's few lines of complaint fit in a pipe: read after it ended.
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    if !status.success() || !stdout.contains("BEGIN SSH SIGNATURE") {
        // With no terminal, ssh-keygen's passphrase prompt lands on stderr: it is no news.
        return Err(sign_failed(
            key,
            &stderr,
            "a key with a passphrase signs unattended only from ssh-agent: `ssh-add` it",
        ));
    }
    Ok(stdout.trim_end().to_string())
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "in a test, an index out of range is a failure"
)]
mod tests;
