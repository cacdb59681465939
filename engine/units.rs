//! Durations and estimates as runbooks write them (`90s`, `15m`, `1h30m`, `5m..15m..60m`).

use std::fmt;
use std::time::Duration;

/// Why a duration a runbook wrote is refused. Callers choose their label and help by the
/// variant, never by the message's words; the messages are the ones users have always seen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurationError {
    #[error("an empty duration")]
    Empty,
    #[error("`{text}` is not a duration ({reason})")]
    NotADuration {
        text: String,
        reason: humantime::DurationError,
    },
    /// Past [`MAX_DURATION`], sums of budgets and the clock's arithmetic could overflow; and
    /// no budget, timeout or RTO of a recovery is longer.
    #[error("`{text}` is longer than a year (366d), the longest duration a runbook may give")]
    TooLong { text: String },
}

/// Why an estimate (`min..likely..max`) a runbook wrote is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EstimateError {
    /// One of its bounds is not a duration.
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("`{text}` is not `min..likely..max` or `min..max`")]
    Shape { text: String },
    #[error("`{text}` is out of order: it must be min <= likely <= max")]
    OutOfOrder { text: String },
}

/// Parses a humantime duration; the error says what a good one looks like.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    let d = humantime::parse_duration(t).map_err(|reason| DurationError::NotADuration {
        text: t.to_owned(),
        reason,
    })?;
    if d > MAX_DURATION {
        return Err(DurationError::TooLong { text: t.to_owned() });
    }
    Ok(d)
}

/// The longest duration a runbook may give: 366 days.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// `2h30m`, `15m`, `90s` → `1m30s`, `450ms`: short, and parseable back.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 10_000 && !ms.is_multiple_of(1000) {
        // Short durations keep a decimal: `1.2s` is not `1s` when the budget is `1s`.
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// Seconds as a float, for JSON.
pub fn secs(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

/// `min..likely..max` for simulation and dry-runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    pub min: Duration,
    pub likely: Duration,
    pub max: Duration,
}

impl Estimate {
    /// A plain budget, as a narrow range around itself (±10%).
    pub fn around(budget: Duration) -> Self {
        Estimate {
            min: budget.mul_f64(0.9),
            likely: budget,
            max: budget.mul_f64(1.1),
        }
    }

    /// Parses `min..likely..max` or `min..max` (likely then lies halfway).
    pub fn parse(text: &str) -> Result<Self, EstimateError> {
        let parts: Vec<&str> = text.split("..").collect();
        let parsed: Result<Vec<Duration>, DurationError> =
            parts.iter().map(|p| parse_duration(p)).collect();
        let d = parsed?;
        let e = match d.as_slice() {
            [min, max] => Estimate {
                min: *min,
                likely: (*min + *max) / 2,
                max: *max,
            },
            [min, likely, max] => Estimate {
                min: *min,
                likely: *likely,
                max: *max,
            },
            _ => {
                return Err(EstimateError::Shape {
                    text: text.to_owned(),
                });
            }
        };
        if !(e.min <= e.likely && e.likely <= e.max) {
            return Err(EstimateError::OutOfOrder {
                text: text.to_owned(),
            });
        }
        Ok(e)
    }
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}..{}..{}",
            fmt_duration(self.min),
            fmt_duration(self.likely),
            fmt_duration(self.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for s in ["90s", "15m", "1h30m", "2h30m", "4h"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&fmt_duration(d)).unwrap(), d, "{s}");
        }
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m30s");
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_duration_past_a_year_is_refused_not_overflowed() {
        assert_eq!(parse_duration("366d").unwrap(), MAX_DURATION);
        for t in ["367d", "18446744073709551615s", "300000000000y"] {
            let e = parse_duration(t).unwrap_err();
            assert!(
                matches!(
                    e,
                    DurationError::TooLong { .. } | DurationError::NotADuration { .. }
                ),
                "{t}: {e}"
            );
        }
        assert!(Estimate::parse("300000000000y..400000000000y").is_err());
    }

    #[test]
    fn estimates_parse_with_and_without_likely() {
        let e = Estimate::parse("5m..60m").unwrap();
        assert_eq!(e.likely, Duration::from_secs(1950));
        let e = Estimate::parse("2m..5m..10m").unwrap();
        assert_eq!(e.likely, Duration::from_secs(300));
        assert!(matches!(
            Estimate::parse("10m..5m"),
            Err(EstimateError::OutOfOrder { .. })
        ));
        assert!(Estimate::parse("5m").is_err());
    }

    /// The compiler told a too-long duration from a malformed one by searching the message
    /// for "longer than a year": rewording it would have silently changed the label and help.
    #[test]
    fn a_too_long_duration_is_its_own_kind_with_the_words_users_saw() {
        let e = parse_duration("367d").unwrap_err();
        assert_eq!(
            e,
            DurationError::TooLong {
                text: "367d".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "`367d` is longer than a year (366d), the longest duration a runbook may give"
        );
        let e = parse_duration("soon").unwrap_err();
        assert!(matches!(e, DurationError::NotADuration { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("`soon` is not a duration ("),
            "{e}"
        );
        assert_eq!(parse_duration("  ").unwrap_err(), DurationError::Empty);
        assert_eq!(DurationError::Empty.to_string(), "an empty duration");
        assert_eq!(
            Estimate::parse("5m").unwrap_err().to_string(),
            "`5m` is not `min..likely..max` or `min..max`"
        );
        assert_eq!(
            Estimate::parse("1m..367d").unwrap_err(),
            EstimateError::Duration(DurationError::TooLong {
                text: "367d".into()
            })
        );
    }
}
