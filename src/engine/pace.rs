//! When a wait polls next: the poll policy, or sooner when the job's progress says when it will be done.

use std::time::Duration;

/// Times polls from evidence: a job that reports how far it is done is polled again when the observed rate says it
/// will be done (never later than the poll policy's delay, never sooner than `MIN_POLL`), so completion is noticed
/// soon after it happens while long jobs cost few calls.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// The first progress seen in this attempt: (run clock ms, percent).
    first: Option<(i64, f64)>,
}

/// The least time between two polls paced by progress.
pub(crate) const MIN_POLL: Duration = Duration::from_secs(5);

impl Pace {
    pub(crate) fn next(&mut self, now_ms: i64, percent: Option<f64>, policy: Duration) -> Duration {
        let Some(p) = percent else { return policy };
        let Some((t0, p0)) = self.first else {
            self.first = Some((now_ms, p));
            return policy;
        };
        let rate = (p - p0) / (now_ms - t0).max(1) as f64; // percent per ms
        if rate <= 0.0 {
            return policy;
        }
        let eta = Duration::from_millis(((100.0 - p).max(0.0) / rate) as u64) + Duration::from_secs(1);
        policy.min(eta.max(MIN_POLL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_polls_at_the_expected_completion_within_the_policy() {
        let mut pace = Pace::default();
        let policy = Duration::from_secs(120);
        // Without progress, the policy decides.
        assert_eq!(pace.next(0, None, policy), policy);
        // The first sample only starts the measure.
        assert_eq!(pace.next(30_000, Some(10.0), policy), policy);
        // 10% more in 30 s: 60% left is 180 s away, more than the policy allows.
        assert_eq!(pace.next(60_000, Some(20.0), policy), policy);
        // 90% at 270 s: 10% left at 1% per 3 s is 30 s (+1 s).
        assert_eq!(pace.next(270_000, Some(90.0), policy), Duration::from_secs(31));
        // Never sooner than MIN_POLL.
        assert_eq!(pace.next(297_000, Some(99.9), policy), MIN_POLL);
    }
}
