//! Secret masking: every value of a variable listed in `secrets:` is replaced by `***` in
//! whatever the engine writes — journal, logs, terminal, JSON stream, reports. (Control
//! characters are made visible where text is shown to a person by `ui::visible`.)
//! docs/format.md ("Output and masking") says what is and is not masked; it and this file agree.

/// Replaces known secret values with `***`.
#[derive(Clone, Debug, Default)]
pub struct Masker {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<String>,
    /// The longest secret that can occur within one line of output, less one byte: how far
    /// past a cut in a long line must be in view to tell that no secret straddles it.
    lookahead: usize,
}

pub const MASK: &str = "***";

/// A line of a multi-line secret is masked on its own from this many bytes (after trimming).
pub const MIN_SECRET_LINE: usize = 8;

/// A secret (a whole value) is masked from this many bytes.
pub const MIN_SECRET: usize = 3;

impl Masker {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        // Very short values would mask ordinary text everywhere; a secret of one or two
        // characters is no secret, and is left alone.
        let mut secrets: Vec<String> = Vec::new();
        for v in values {
            // A key or a certificate spans lines, and output is masked a line at a time, so
            // each of its lines is a secret too: those of 8 bytes or more (shorter ones, `}` or
            // the end of a base64 block, would mask ordinary text and give little away).
            // Output lines end at `\r` as well as `\n`, so the lines of a secret do too.
            if v.contains(['\n', '\r']) {
                secrets.extend(
                    v.split(['\n', '\r'])
                        .map(str::trim)
                        .filter(|l| l.len() >= MIN_SECRET_LINE)
                        .map(str::to_owned),
                );
            }
            if v.len() >= MIN_SECRET {
                secrets.push(v);
            }
        }
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        secrets.dedup();
        let lookahead = secrets
            .iter()
            .filter(|s| !s.contains(['\n', '\r']))
            .map(|s| s.len() - 1)
            .max()
            .unwrap_or(0);
        Masker { secrets, lookahead }
    }

    /// The secret values of a plan, read from the process environment.
    pub fn from_env(names: &[String]) -> Self {
        Masker::new(names.iter().filter_map(|n| std::env::var(n).ok()))
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// How many bytes past a cut in a long line [`Masker::cut`] needs in view.
    pub fn lookahead(&self) -> usize {
        self.lookahead
    }

    /// Where to cut a line too long to keep whole, at `at` or before: at a character's start,
    /// and before any secret the cut would fall inside, so that each piece is masked on its
    /// own as the whole line would have been. `text` runs [`Masker::lookahead`] bytes past
    /// `at`, or is all there will be.
    pub fn cut(&self, text: &[u8], at: usize) -> usize {
        let mut cut = at.min(text.len());
        // Binary output has no characters to keep whole: only 3 bytes are looked back at.
        let floor = cut.saturating_sub(3).max(1);
        while cut > floor && text.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
            cut -= 1;
        }
        let wanted = cut;
        // A secret moves the cut back to its start, where another one may straddle it: again.
        // Only overlapping occurrences (`abab` in `ababab`) chain; a line that is nothing but
        // those from its start is cut where it was to be.
        loop {
            let mut moved = cut;
            for s in self.secrets.iter().map(String::as_bytes) {
                if s.contains(&b'\n') || s.contains(&b'\r') {
                    continue;
                }
                // Every occurrence in here starts before the cut and ends after it.
                let from = (cut + 1).saturating_sub(s.len());
                let to = (cut + s.len() - 1).min(text.len());
                if to > from
                    && let Some(p) = text[from..to].windows(s.len()).position(|w| w == s)
                {
                    moved = moved.min(from + p);
                }
            }
            if moved == cut {
                return cut;
            }
            if moved == 0 {
                return wanted;
            }
            cut = moved;
        }
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    /// Masks every string inside a JSON value.
    pub fn mask_json(&self, v: &mut serde_json::Value) {
        if self.secrets.is_empty() {
            return;
        }
        match v {
            serde_json::Value::String(s) => *s = self.mask(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.mask_json(x)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| self.mask_json(x)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let m = Masker::new([
            "hunter2".to_owned(),
            "hunter2-extra".to_owned(),
            "x".to_owned(),
        ]);
        assert_eq!(m.mask("a hunter2 b hunter2-extra x"), "a *** b *** x");
    }

    #[test]
    fn every_long_line_of_a_multi_line_secret_is_masked_on_its_own() {
        let key = "-----BEGIN KEY-----\r\nMIIEvQIBADANBgkq\n  CBKcwggSj\nZg==\n-----END KEY-----\n";
        let m = Masker::new([key.to_owned()]);
        assert_eq!(m.mask(key), "***");
        assert_eq!(m.mask("line MIIEvQIBADANBgkq"), "line ***");
        assert_eq!(m.mask("  CBKcwggSj"), "  ***");
        // Short lines would mask ordinary text: left alone.
        assert_eq!(m.mask("Zg=="), "Zg==");
    }

    #[test]
    fn a_cut_inside_a_secret_moves_to_its_start() {
        let m = Masker::new(["0123456789".to_owned()]);
        assert_eq!(m.lookahead(), 9);
        let text = b"abcde0123456789fghij";
        assert_eq!(m.cut(text, 8), 5);
        assert_eq!(
            m.cut(text, 5),
            5,
            "a cut at a secret's start splits nothing"
        );
        assert_eq!(m.cut(text, 15), 15, "nor one at its end");
        // No secret: where asked, but not inside a character.
        let text = "aé".repeat(10);
        assert_eq!(Masker::default().cut(text.as_bytes(), 2), 1);
    }
}
