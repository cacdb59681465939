//! Commands that need no shell: when a step's command is exec'd directly, and the `PWD` it is
//! given then.

use std::path::Path;

/// The words of a command that needs no shell, as make runs a recipe: plain words separated by
/// spaces, with none of the characters a shell would interpret, whose first word is no shell
/// builtin or reserved word, so that exec'ing the words does what `sh -c` would. Anything else
/// goes to `sh -c`, and so does a command whose program cannot be started directly.
pub(crate) fn simple_argv(command: &str) -> Option<Vec<String>> {
    const SPECIAL: &[char] = &[
        '$', '&', '|', ';', '<', '>', '(', ')', '`', '\\', '"', '\'', '*', '?', '[', ']', '#', '~',
        '=', '%', '{', '}', '!', '^', '\n', '\t', '\r',
    ];
    if command.trim().is_empty() || command.contains(SPECIAL) {
        return None;
    }
    let argv: Vec<String> = command
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    // `true` and `false` alone do the same as the builtins; with words after them, coreutils'
    // take `--help` and `--version`, which the shell's ignore.
    if argv.len() == 1 && matches!(argv[0].as_str(), "true" | "false") {
        return Some(argv);
    }
    (!SHELL_WORDS.contains(&argv[0].as_str())).then_some(argv)
}

/// The builtins and reserved words of `sh`: POSIX's, dash's and bash's (`/bin/sh` is either),
/// a program of the same name on PATH (`echo`, `printf`, `kill`, `pwd`, `test`) behaving
/// differently in places, or not existing at all (`command`, `type`, `:`).
const SHELL_WORDS: &[&str] = &[
    // POSIX special builtins
    ".",
    ":",
    "break",
    "continue",
    "eval",
    "exec",
    "exit",
    "export",
    "readonly",
    "return",
    "set",
    "shift",
    "times",
    "trap",
    "unset",
    // regular builtins of dash and POSIX
    "alias",
    "bg",
    "cd",
    "chdir",
    "command",
    "echo",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "jobs",
    "kill",
    "local",
    "printf",
    "pwd",
    "read",
    "test",
    "true",
    "type",
    "ulimit",
    "umask",
    "unalias",
    "wait",
    // bash's besides
    "bind",
    "builtin",
    "caller",
    "compgen",
    "complete",
    "compopt",
    "declare",
    "dirs",
    "disown",
    "enable",
    "help",
    "history",
    "let",
    "logout",
    "mapfile",
    "popd",
    "pushd",
    "readarray",
    "shopt",
    "source",
    "suspend",
    "typeset",
    // reserved words
    "case",
    "coproc",
    "do",
    "done",
    "elif",
    "else",
    "esac",
    "fi",
    "for",
    "function",
    "if",
    "in",
    "select",
    "then",
    "time",
    "until",
    "while",
];

/// `PWD` as `sh` sets it on starting in the working folder: the inherited value if it names
/// that folder (a path through a symlink stays as the operator typed it), else the folder.
pub(super) fn shell_pwd() -> Option<std::ffi::OsString> {
    use std::os::unix::fs::MetadataExt;
    let here = std::env::current_dir().ok()?;
    let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    match std::env::var_os("PWD") {
        Some(pwd) if Path::new(&pwd).is_absolute() && same(Path::new(&pwd), &here) => Some(pwd),
        _ => Some(here.into_os_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::simple_argv;

    fn words(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|w| (*w).to_owned()).collect())
    }

    #[test]
    fn plain_words_are_exec_d_directly() {
        assert_eq!(simple_argv("sleep 2"), words(&["sleep", "2"]));
        assert_eq!(
            simple_argv("  ./steps/x.sh  --a b "),
            words(&["./steps/x.sh", "--a", "b"])
        );
        assert_eq!(simple_argv("true"), words(&["true"]));
    }

    #[test]
    fn anything_a_shell_would_read_goes_to_sh() {
        for cmd in [
            "ls $HOME",
            "a && b",
            "a | b",
            "a; b",
            "a > f",
            "x=1 cmd",
            "cmd 'quoted word'",
            "ls *.log",
            "cmd # comment",
            "ls ~",
            "a\nb",
            "a\tb",
            "",
            "   ",
        ] {
            assert_eq!(simple_argv(cmd), None, "{cmd:?}");
        }
    }

    #[test]
    fn a_shell_word_first_goes_to_sh_even_when_plain() {
        // `echo -e`, `kill %1`, `exit 3`, `cd dir`: the builtin and the program differ or the
        // program does not exist; `true --help` prints help where the builtin does nothing.
        for cmd in [
            "echo hi",
            "exit 3",
            "cd dir",
            "export A",
            "true --help",
            "read x",
        ] {
            assert_eq!(simple_argv(cmd), None, "{cmd:?}");
        }
    }
}
