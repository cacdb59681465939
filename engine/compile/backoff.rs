//! `backoff:`, the wait between a step's attempts: fixed (`5s`) or growing
//! (`{ initial: 5s, factor: 2, max: 1m }`), checked here and computed by [`Backoff::before`].

use std::time::Duration;

use crate::format::{BackoffDoc, Sp};

use super::Compiler;

/// The wait before each retry: min(initial × factor^(n-1), max) before retry n. A fixed
/// backoff has factor 1 and max = initial.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: f64,
    pub max: Duration,
}

impl Backoff {
    pub fn fixed(wait: Duration) -> Self {
        Backoff {
            initial: wait,
            factor: 1.0,
            max: wait,
        }
    }

    /// The wait before retry `n` (1 for the first retry, after attempt 1 failed).
    pub fn before(&self, n: u32) -> Duration {
        let exp = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = self.initial.as_secs_f64() * self.factor.powi(exp);
        if !grown.is_finite() || grown >= self.max.as_secs_f64() {
            self.max
        } else {
            // Whole milliseconds, as the journal counts them.
            Duration::from_millis((grown * 1000.0).round() as u64).min(self.max)
        }
    }
}

impl Compiler<'_> {
    /// A step's `backoff` (or its library step's); 5 s fixed by default. A growing one must
    /// grow (`factor` ≥ 1) towards a cap no smaller than where it starts (`max` ≥ `initial`).
    pub(super) fn backoff(&mut self, id: &str, sp: Option<&Sp<BackoffDoc>>) -> Backoff {
        let default = Backoff::fixed(Duration::from_secs(5));
        let Some(sp) = sp else {
            return default;
        };
        let what = format!("`backoff` of step `{id}`");
        match &sp.value {
            BackoffDoc::Fixed(text) => self
                .duration(&what, &Sp::new(text.clone(), sp.pos))
                .map(Backoff::fixed)
                .unwrap_or(default),
            BackoffDoc::Growing {
                initial,
                factor,
                max,
            } => {
                let first = self.duration(&format!("`backoff.initial` of step `{id}`"), initial);
                let cap = self.duration(&format!("`backoff.max` of step `{id}`"), max);
                if !(factor.value >= 1.0 && factor.value.is_finite()) {
                    self.err(
                        factor.pos,
                        format!(
                            "`backoff.factor` of step `{id}` is {}: it must be at least 1",
                            factor.value
                        ),
                    )
                    .label("below 1")
                    .help("a factor of 1 waits `initial` every time; 2 doubles the wait at each retry");
                }
                if let (Some(first), Some(cap)) = (first, cap)
                    && cap < first
                {
                    self.err(
                        max.pos,
                        format!(
                            "`backoff.max` of step `{id}` is {}, shorter than its `initial` of {}",
                            max.value, initial.value
                        ),
                    )
                    .label("below `initial`")
                    .help("`max` caps the growing wait: give it at least the `initial` wait");
                }
                Backoff {
                    initial: first.unwrap_or(default.initial),
                    factor: factor.value.max(1.0),
                    max: cap.unwrap_or(default.max).max(first.unwrap_or_default()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            initial: Duration::from_secs(5),
            factor: 2.0,
            max: Duration::from_secs(60),
        };
        let waits: Vec<u64> = (1..=6).map(|n| b.before(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
    }

    #[test]
    fn a_fixed_backoff_waits_the_same_every_time() {
        let b = Backoff::fixed(Duration::from_secs(7));
        assert_eq!(b.before(1), Duration::from_secs(7));
        assert_eq!(b.before(30), Duration::from_secs(7));
    }
}
