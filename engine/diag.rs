//! Problems found in a runbook, a library step or an environment file: each names its file,
//! line and column, and says what would fix it. The CLI renders them with miette.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};

use crate::span::Pos;

/// A loaded source file, shared by every problem that points into it.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub named: NamedSource<String>,
}

impl SourceFile {
    pub fn new(path: &Path, display: &str, text: String) -> Arc<Self> {
        Arc::new(SourceFile {
            path: path.to_owned(),
            named: NamedSource::new(display, text),
        })
    }

    pub fn text(&self) -> &str {
        self.named.inner()
    }

    pub fn display_name(&self) -> &str {
        self.named.name()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

/// One problem: an error or a warning, with where it is and what would fix it.
#[derive(Clone, Debug)]
pub struct Problem {
    pub level: Level,
    pub message: String,
    pub file: Option<Arc<SourceFile>>,
    pub pos: Option<Pos>,
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Problem {
    pub fn error(message: impl Into<String>) -> Self {
        Problem {
            level: Level::Error,
            message: one_line(message.into()),
            file: None,
            pos: None,
            label: None,
            help: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Problem {
            level: Level::Warning,
            ..Problem::error(message)
        }
    }

    pub fn at(mut self, file: &Arc<SourceFile>, pos: Pos) -> Self {
        self.file = Some(file.clone());
        if pos.is_known() {
            self.pos = Some(pos);
        }
        self
    }

    pub fn in_file(mut self, file: &Arc<SourceFile>) -> Self {
        self.file = Some(file.clone());
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }

    /// `file:line:column`, for plain one-line output (and for tests that grep).
    pub fn location(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        Some(match self.pos {
            Some(p) => format!("{}:{}:{}", file.display_name(), p.line, p.column),
            None => file.display_name().to_owned(),
        })
    }

    fn span(&self) -> Option<(usize, usize)> {
        let pos = self.pos?;
        let text = self.file.as_ref()?.text();
        // A position may come from a search or another crate's offsets: a span that starts
        // or ends inside a multi-byte character would panic here or in miette's renderer.
        let start = text.floor_char_boundary(pos.offset.min(text.len()));
        // A zero-length span still gets a caret; keep it inside the text and on one line.
        let rest = text.get(start..)?;
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let len = pos.len.min(line_end).max(usize::from(line_end > 0));
        let len = rest.ceil_char_boundary(len);
        Some((start, len))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn severity(&self) -> Option<Severity> {
        Some(match self.level {
            Level::Error => Severity::Error,
            Level::Warning => Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.span()?;
        self.file.as_ref().map(|f| &f.named as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (start, len) = self.span()?;
        Some(Box::new(std::iter::once(LabeledSpan::new(
            self.label.clone().or_else(|| Some("here".into())),
            start,
            len,
        ))))
    }
}

/// A message is one line, even when it quotes a multi-line value from the file.
fn one_line(message: String) -> String {
    if message.contains(['\n', '\r']) {
        message.replace('\n', "\\n").replace('\r', "\\r")
    } else {
        message
    }
}

/// All the problems of one check, errors and warnings, in the order found.
#[derive(Debug, Default, Clone)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, p: Problem) {
        self.0.push(p);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Problem::is_error)
    }
    pub fn errors(&self) -> usize {
        self.0.iter().filter(|p| p.is_error()).count()
    }
    pub fn warnings(&self) -> usize {
        self.0.len() - self.errors()
    }
    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Problem> for Problems {
    fn from(p: Problem) -> Self {
        Problems(vec![p])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p.location() {
                Some(loc) => writeln!(f, "{loc}: {}", p.message)?,
                None => writeln!(f, "{}", p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// The closest candidate to a misspelled word, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" or nothing.
pub fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Edits between two words, a swap of two neighbouring letters counting as one (`stpo` is one
/// typo away from `stop`): the optimal string alignment distance.
#[expect(
    clippy::indexing_slicing,
    reason = "i < a.len() and j < b.len(), and the three rows are b.len() + 1 long, so every index (j + 1 at most) is in range"
)]
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        for j in 0..b.len() {
            let cost = usize::from(a[i] != b[j]);
            let mut d = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(before[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let ids = ["pick-backup", "restore", "stop-writes"];
        assert_eq!(did_you_mean("pick-bakup", ids), Some("pick-backup"));
        assert_eq!(did_you_mean("restor", ids), Some("restore"));
        assert_eq!(did_you_mean("monitor", ids), None);
        assert_eq!(did_you_mean("stpo-writes", ids), Some("stop-writes"));
        assert_eq!(edit_distance("stpo", "stop"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
