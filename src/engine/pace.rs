//! When a wait polls next: the poll policy, or sooner when the evidence says when the job will be done — its
//! progress (a backup job's PercentDone and its observed rate), or, for a job that reports none (a copy), how long
//! work of its size took before (`forecast`).

use std::time::Duration;

/// What a poll told about how far the job is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Evidence {
    Nothing,
    /// Percent done.
    Percent(f64),
    /// The job should take about `total_ms` from `since_ms` (run clock), give or take `spread` (a fraction).
    Expected {
        since_ms: i64,
        total_ms: i64,
        spread: f64,
    },
    /// A job that tells no progress and of whose kind none has finished yet: nothing says when it ends.
    Unforeseen,
}

/// Times polls from evidence: a job is polled again when it should be done (never later than the poll policy's
/// delay, never sooner than `MIN_POLL`), then densely while it should be finishing, so completion is noticed soon
/// after it happens while long jobs cost few calls.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// The first progress seen in this attempt: (run clock ms, percent).
    first: Option<(i64, f64)>,
}

/// The least time between two polls paced by evidence.
pub(crate) const MIN_POLL: Duration = Duration::from_secs(5);

/// The longest gap between polls of a job nothing tells the end of: 25 s keeps a 10-minute copy within 5%, with
/// room for a batched poll's gathering second and a wait for a rate-limiter token.
const UNFORESEEN_POLL: Duration = Duration::from_secs(25);

/// Polls while a job should be finishing come this often, as a fraction of its expected duration: the most it is
/// noticed late.
const DENSE: f64 = 0.03;

impl Pace {
    pub(crate) fn next(&mut self, now_ms: i64, evidence: Evidence, policy: Duration) -> Duration {
        match evidence {
            Evidence::Nothing => policy,
            // Until the first job of its kind ends (and tells how long they take), poll it at least this often.
            Evidence::Unforeseen => policy.min(UNFORESEEN_POLL),
            Evidence::Percent(p) => self.by_progress(now_ms, p, policy),
            Evidence::Expected {
                since_ms,
                total_ms,
                spread,
            } => by_expectation(now_ms - since_ms, total_ms, spread, policy),
        }
    }

    fn by_progress(&mut self, now_ms: i64, p: f64, policy: Duration) -> Duration {
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

/// `elapsed` into a job expected to take `total` ± `spread`: the policy until the earliest it may end, then polls
/// `DENSE` apart until the latest it should have ended (and a while after: the expectation may be wrong), then the
/// policy again.
fn by_expectation(elapsed: i64, total: i64, spread: f64, policy: Duration) -> Duration {
    let total = total.max(1) as f64;
    let earliest = (total * (1.0 - spread)) as i64;
    let latest = (total * (1.0 + 2.0 * spread)) as i64 + policy.as_millis() as i64;
    if elapsed < earliest {
        let until = Duration::from_millis((earliest - elapsed) as u64);
        return policy.min(until.max(MIN_POLL));
    }
    if elapsed < latest {
        let dense = Duration::from_millis((total * DENSE) as u64);
        return policy.min(dense.max(MIN_POLL));
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_polls_at_the_expected_completion_within_the_policy() {
        let mut pace = Pace::default();
        let policy = Duration::from_secs(120);
        // Without progress, the policy decides.
        assert_eq!(pace.next(0, Evidence::Nothing, policy), policy);
        // The first sample only starts the measure.
        assert_eq!(pace.next(30_000, Evidence::Percent(10.0), policy), policy);
        // 10% more in 30 s: 60% left is 180 s away, more than the policy allows.
        assert_eq!(pace.next(60_000, Evidence::Percent(20.0), policy), policy);
        // 90% at 270 s: 10% left at 1% per 3 s is 30 s (+1 s).
        assert_eq!(
            pace.next(270_000, Evidence::Percent(90.0), policy),
            Duration::from_secs(31)
        );
        // Never sooner than MIN_POLL.
        assert_eq!(pace.next(297_000, Evidence::Percent(99.9), policy), MIN_POLL);
        // A job with no evidence at all yet: at most 25 s apart.
        assert_eq!(pace.next(0, Evidence::Unforeseen, policy), Duration::from_secs(25));
        assert_eq!(
            pace.next(0, Evidence::Unforeseen, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn an_expected_duration_saves_polls_early_and_polls_densely_near_the_end() {
        let mut pace = Pace::default();
        let policy = Duration::from_secs(120);
        // A job expected to take 1000 s ± 10%, started at 50 s on the run clock.
        let next = |pace: &mut Pace, now_s: i64| {
            let e = Evidence::Expected {
                since_ms: 50_000,
                total_ms: 1_000_000,
                spread: 0.1,
            };
            pace.next(now_s * 1000, e, policy)
        };
        // Far from the end: the policy.
        assert_eq!(next(&mut pace, 60), policy);
        // Close to the earliest end (900 s in): wake up then.
        assert_eq!(next(&mut pace, 50 + 860), Duration::from_secs(40));
        // From then on, every 3% of the job (30 s).
        assert_eq!(next(&mut pace, 50 + 900), Duration::from_secs(30));
        assert_eq!(next(&mut pace, 50 + 1150), Duration::from_secs(30));
        // Long past the latest end (1200 s + a policy interval): the expectation was wrong; the policy again.
        assert_eq!(next(&mut pace, 50 + 1400), policy);
        // A short job: never sooner than MIN_POLL.
        let short = Evidence::Expected {
            since_ms: 0,
            total_ms: 60_000,
            spread: 0.1,
        };
        assert_eq!(pace.next(58_000, short, policy), MIN_POLL);
    }
}
