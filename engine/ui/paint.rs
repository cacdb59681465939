//! Colour on a terminal: the one place that writes ANSI escapes, so that `NO_COLOR`, a pipe
//! and the reports (which never paint) all go through the same switch.

/// `s` in the SGR colour `code` (`"31"` red, `"32"` green, `"31;1"` bold red …) when
/// `color`, else `s` as it is.
pub fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_without_colour_leaves_the_text_as_it_is() {
        assert_eq!(paint(false, "31", "failed"), "failed");
        assert_eq!(paint(true, "31", "failed"), "\x1b[31mfailed\x1b[0m");
    }
}
