//! Secret masking: every value of a variable listed in `secrets:` is replaced by `***` in
//! whatever the engine writes — journal, logs, terminal, JSON stream, reports.

/// Replaces known secret values with `***`.
#[derive(Clone, Debug, Default)]
pub struct Masker {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<String>,
}

pub const MASK: &str = "***";

impl Masker {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        // Very short values would mask ordinary text everywhere; a secret of one or two
        // characters is no secret, and is left alone.
        let mut secrets: Vec<String> = Vec::new();
        for v in values {
            // A key or a certificate spans lines, and output is masked a line at a time, so
            // each of its lines is a secret too: those of 8 characters or more (shorter ones,
            // `}` or the end of a base64 block, would mask ordinary text and give little away).
            if v.contains('\n') {
                secrets.extend(
                    v.lines()
                        .map(str::trim)
                        .filter(|l| l.len() >= 8)
                        .map(str::to_owned),
                );
            }
            if v.len() >= 3 {
                secrets.push(v);
            }
        }
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        secrets.dedup();
        Masker { secrets }
    }

    /// The secret values of a plan, read from the process environment.
    pub fn from_env(names: &[String]) -> Self {
        Masker::new(names.iter().filter_map(|n| std::env::var(n).ok()))
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
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
}
