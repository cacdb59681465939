//! What of a step's output may be shown to a person: control characters written out, wherever
//! text reaches a terminal or a report (the observers, `status`, Markdown, HTML and JUnit).
//! Presentation, not masking (that is `exec::mask`): the journal keeps the bytes as they were.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Text as a terminal or a report may show it: control characters but `\n` and `\t` written
/// out (`\x1b`), so that what a step printed cannot move the cursor, erase lines or recolour
/// them on the operator's screen — nor in a prompt they answer. Most text has none, and is
/// returned as it is.
pub fn visible(text: &str) -> Cow<'_, str> {
    // C1 controls are U+0080..U+009F, encoded 0xC2 0x80..0x9F: 0xC2 is a cheap first sign.
    let suspect = |b: &u8| (*b < 0x20 && *b != b'\n' && *b != b'\t') || *b == 0x7F || *b == 0xC2;
    if !text.as_bytes().iter().any(suspect) {
        return Cow::Borrowed(text);
    }
    let hidden = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.contains(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hidden(c) {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_made_visible_but_newlines_and_tabs() {
        assert_eq!(visible("a\tb\nc"), "a\tb\nc");
        assert_eq!(
            visible("\x1b[2Kok\r\x07\x7f\u{9b}é"),
            "\\x1b[2Kok\\x0d\\x07\\x7f\\x9bé"
        );
        assert!(matches!(visible("plain © text"), Cow::Borrowed(_)));
    }
}
