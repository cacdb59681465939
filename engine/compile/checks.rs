//! The checks on names and templates: step ids, variable and environment names, and where in
//! the file a template's problem is.

use std::sync::Arc;

use crate::diag::{Problem, SourceFile};
use crate::format::{Pos, Sp};
use crate::template::{self, Quoting, Scope};

use super::Compiler;

impl Compiler<'_> {
    pub(super) fn check_template(
        &mut self,
        sp: &Sp<String>,
        q: Quoting,
        scope: &Scope,
        what: &str,
    ) {
        let errs = template::check(&sp.value, q, scope);
        let file = self.file.clone();
        self.template_errors(&file, sp, errs, what);
    }

    pub(super) fn template_errors(
        &mut self,
        file: &Arc<SourceFile>,
        sp: &Sp<String>,
        errs: Vec<template::TemplateError>,
        what: &str,
    ) {
        for e in errs {
            let pos = template_pos(file, sp, e.range.clone());
            self.problems.push(
                Problem::error(format!("{what}: {}", e.message))
                    .at(file, pos)
                    .label("here")
                    .maybe_help(e.help),
            );
        }
    }
}

/// The position of a byte range inside a template, in the file. Quoted and block scalars
/// start after their quote or indicator line; where the text cannot be found, the whole
/// scalar is pointed at.
///
/// Every offset here comes from elsewhere (the YAML parser, minijinja, a search) and may fall
/// inside a multi-byte character of the file or of the template, so the text is only ever
/// read through `get`, which answers `None` where slicing would panic.
pub(super) fn template_pos(
    file: &SourceFile,
    sp: &Sp<String>,
    range: Option<std::ops::Range<usize>>,
) -> Pos {
    let text = file.text();
    let start = sp.pos.offset.min(text.len());
    let Some(after) = text.get(start..) else {
        return sp.pos;
    };
    let src = &sp.value;
    let first_line = src.lines().next().unwrap_or("");
    let base = if after.starts_with(src.as_str()) {
        Some(start)
    } else if after.get(1..).is_some_and(|a| a.starts_with(src.as_str())) {
        Some(start + 1)
    } else if !first_line.is_empty() {
        // Search only near the scalar: within its own extent.
        let window_end = text
            .floor_char_boundary((start + sp.pos.len.max(first_line.len()) + 2).min(text.len()));
        text.get(start..window_end)
            .and_then(|w| w.find(first_line))
            .map(|i| start + i)
    } else {
        None
    };
    // A scalar folded over lines is found nowhere whole, but it starts where the parser says
    // (or after its quote) and the part before the range may still sit there verbatim.
    let verbatim = |base: usize, end: usize| {
        src.get(..end)
            .is_some_and(|s| text.get(base..base + end) == Some(s))
    };
    let base = base.or_else(|| {
        let end = range.as_ref()?.end;
        [start, start + 1].into_iter().find(|&b| verbatim(b, end))
    });
    match (base, range) {
        (Some(base), Some(r))
            if src
                .get(..r.end)
                .and_then(|s| s.get(r.start..))
                .is_some_and(|s| !s.contains('\n') || r.start == r.end) =>
        {
            // Only exact when the template before the range sits verbatim in the file.
            let offset = base + r.start;
            if verbatim(base, r.end)
                && let Some(before) = text.get(..offset)
            {
                let line = before.matches('\n').count() as u32 + 1;
                let col = before.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
                return Pos {
                    line,
                    column: col,
                    offset,
                    len: r.len(),
                };
            }
            sp.pos
        }
        _ => sp.pos,
    }
}

pub(super) fn is_step_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn is_env_name(s: &str) -> bool {
    is_identifier(s)
}
