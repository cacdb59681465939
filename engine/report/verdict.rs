//! The RTO verdict: where a run stands against its target, decided once and said in the same
//! words by every report, `status` and the end of `run`.

use std::time::Duration;

/// Where a run stands against its RTO. Decided from the run's status and elapsed time alone:
/// the `rto_met` of journals written before it was so says "met" of failed runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtoVerdict {
    /// Recovered (succeeded) within the target. For a drill, `elapsed_ms` is what a real run
    /// projects (`projected`): the drill's own clock runs at drill speed.
    /// With `rto_ends_at`, `elapsed_ms` is the recovery time (that step's finish) and
    /// `observation_ms` the observation after it, reported apart.
    Met {
        elapsed_ms: u64,
        target_ms: u64,
        projected: bool,
        observation_ms: Option<u64>,
    },
    /// Recovered, after the target (a drill: a real run would be).
    Missed {
        elapsed_ms: u64,
        target_ms: u64,
        projected: bool,
        observation_ms: Option<u64>,
    },
    /// Failed or denied: no recovery, so no RTO met, however early it ended. `restored_ms`:
    /// the `rto_ends_at` step had succeeded then, and the failure came in the observation —
    /// service was restored and did not hold.
    NotRecovered {
        failed_at: Option<String>,
        elapsed_ms: u64,
        restored_ms: Option<u64>,
    },
    /// Running or stopped: the clock runs on, unless `restored_ms` says the `rto_ends_at` step
    /// has succeeded (the clock stopped there; the observation is under way).
    Open {
        elapsed_ms: u64,
        target_ms: u64,
        restored_ms: Option<u64>,
    },
}

impl RtoVerdict {
    /// The JSON report's `rto_met`: `None` while the run can still recover.
    pub fn met(&self) -> Option<bool> {
        match self {
            RtoVerdict::Met { .. } => Some(true),
            RtoVerdict::Missed { .. } | RtoVerdict::NotRecovered { .. } => Some(false),
            RtoVerdict::Open { .. } => None,
        }
    }

    /// One line, the same in every report.
    pub fn sentence(&self) -> String {
        let d = |ms: u64| crate::units::fmt_duration(Duration::from_millis(ms));
        let observation = match self {
            RtoVerdict::Met {
                observation_ms: Some(o),
                ..
            }
            | RtoVerdict::Missed {
                observation_ms: Some(o),
                ..
            } => format!(" · observation {} after", d(*o)),
            _ => String::new(),
        };
        self.sentence_alone(&d) + &observation
    }

    fn sentence_alone(&self, d: &dyn Fn(u64) -> String) -> String {
        match self {
            RtoVerdict::Met {
                elapsed_ms,
                target_ms,
                projected: false,
                ..
            } => format!(
                "RTO met: recovered in {} of a {} target",
                d(*elapsed_ms),
                d(*target_ms)
            ),
            RtoVerdict::Met {
                elapsed_ms,
                target_ms,
                projected: true,
                ..
            } => format!(
                "RTO met: a real run projects {} of a {} target (judged on the projection: a drill runs at drill speed)",
                d(*elapsed_ms),
                d(*target_ms)
            ),
            RtoVerdict::Missed {
                elapsed_ms,
                target_ms,
                projected: false,
                ..
            } => format!(
                "RTO MISSED: recovered in {} against a {} target",
                d(*elapsed_ms),
                d(*target_ms)
            ),
            RtoVerdict::Missed {
                elapsed_ms,
                target_ms,
                projected: true,
                ..
            } => format!(
                "RTO MISSED: a real run projects {} against a {} target (judged on the projection: a drill runs at drill speed)",
                d(*elapsed_ms),
                d(*target_ms)
            ),
            // Service came back and did not hold: the run did not recover.
            RtoVerdict::NotRecovered {
                failed_at,
                elapsed_ms,
                restored_ms: Some(restored),
            } => format!(
                "RTO not met: recovery failed during observation{} after {}, after service was restored in {}: it did not hold",
                failed_at
                    .as_ref()
                    .map(|s| format!(" at {s}"))
                    .unwrap_or_default(),
                d(*elapsed_ms),
                d(*restored)
            ),
            RtoVerdict::NotRecovered {
                failed_at: Some(step),
                elapsed_ms,
                restored_ms: None,
            } => format!(
                "RTO not met: recovery failed at {step} after {}",
                d(*elapsed_ms)
            ),
            RtoVerdict::NotRecovered {
                failed_at: None,
                elapsed_ms,
                restored_ms: None,
            } => format!("RTO not met: recovery failed after {}", d(*elapsed_ms)),
            RtoVerdict::Open {
                elapsed_ms,
                target_ms,
                restored_ms: Some(restored),
            } => format!(
                "RTO clock stopped at {} of {}: service restored, observation under way for {} (not judged until the run ends)",
                d(*restored),
                d(*target_ms),
                d(elapsed_ms.saturating_sub(*restored))
            ),
            RtoVerdict::Open {
                elapsed_ms,
                target_ms,
                restored_ms: None,
            } => format!(
                "RTO clock at {} of {}, not recovered",
                d(*elapsed_ms),
                d(*target_ms)
            ),
        }
    }
}
