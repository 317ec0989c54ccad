//! Upper bounds of a step's duration and of its AWS API calls, from its timeout, retry and poll policies: pure
//! functions of the policies, the same rules the engine keeps (`engine/executor.rs`, `engine/pace.rs`).
//!
//! - A **call** makes up to `max_attempts + 1` attempts per AWS operation it declares (the engine counts failures in
//!   a row per operation, and bounds a step at `(max_attempts + 1) × operations` failed attempts in all; with
//!   `max_attempts: 0`, one attempt). Each attempt is cut at the step's `timeout`. Between attempts: the retry delays,
//!   each at most `interval × backoff_rate^(n-1)` capped at `max_delay`, `n` counting failures in a row (at most
//!   `max_attempts` of them).
//! - A **wait**'s `timeout` counts from its first start, retries included; an attempt that starts after it is spent
//!   still gets a last look of 30 s (or the timeout, if shorter), and a transient failure before it may be retried:
//!   `timeout + retry delays + attempts × last look`, for one run of failures in a row (the engine resets a wait's
//!   count of failures at each poll that answers).
//! - **Polls**: at most one per attempt plus one per shortest gap between polls over the wait's bound. The gap is
//!   the poll policy's first interval (it only grows), or 5 s for a wait whose action paces polls by its job's
//!   progress or size (`ActionSpec::paces`).
//! - **API calls**: one request per declared operation per attempt (a call) or per poll (a wait), except that a
//!   poll answered by a batched list (`cloud::operations::POLL_LISTS`) makes it instead of its describe; a paginated
//!   list counts one per page, so discovery of a big fleet may make more.

use std::time::Duration;

use crate::workflow::{PollPolicy, RetryPolicy};

/// Attempts a call step may make: `(max_attempts + 1) × operations`, or 1 when it does not retry.
pub fn call_attempts(retry: &RetryPolicy, operations: usize) -> u32 {
    if retry.max_attempts == 0 {
        return 1;
    }
    (retry.max_attempts + 1).saturating_mul(operations.max(1) as u32)
}

/// The longest total of the delays before `retries` retries, when failures in a row number at most
/// `max_attempts`: as many full runs of `max_attempts` as fit, then the rest (delays grow along a run).
pub fn retry_delays(retry: &RetryPolicy, retries: u32) -> Duration {
    let per_run = retry.max_attempts;
    if per_run == 0 || retries == 0 {
        return Duration::ZERO;
    }
    let run = |n: u32| -> Duration { (1..=n).filter_map(|k| retry.next_delay(k, 1.0)).sum() };
    run(per_run) * (retries / per_run) + run(retries % per_run)
}

/// A call step's worst case: every attempt runs to its timeout, and every retry waits its longest delay.
pub fn call_duration(timeout: Duration, retry: &RetryPolicy, operations: usize) -> Duration {
    let attempts = call_attempts(retry, operations);
    timeout * attempts + retry_delays(retry, attempts - 1)
}

/// Attempts of a wait counted in its bound: one run of failures in a row, `max_attempts + 1`.
pub fn wait_attempts(retry: &RetryPolicy) -> u32 {
    retry.max_attempts + 1
}

/// A wait's worst case: its timeout, its retry delays, and a last look per attempt.
pub fn wait_duration(timeout: Duration, retry: &RetryPolicy) -> Duration {
    let last_look = crate::engine::LAST_LOOK.min(timeout);
    timeout + retry.max_total_delay() + last_look * wait_attempts(retry)
}

/// The shortest time between two polls of one attempt.
pub fn poll_gap(poll: &PollPolicy, paces: bool) -> Duration {
    let policy = poll.interval.min(poll.max_interval);
    if paces {
        policy.min(crate::engine::MIN_POLL)
    } else {
        policy
    }
}

/// Polls of a wait over `duration`, `gap` apart, in `attempts` attempts (each polls once at its start).
pub fn wait_polls(duration: Duration, gap: Duration, attempts: u32) -> u64 {
    let gap = gap.as_millis().max(1);
    (duration.as_millis() / gap) as u64 + u64::from(attempts)
}

/// How many waves of `concurrency` items `count` items take.
pub fn waves(count: u64, concurrency: u64) -> u64 {
    count.div_ceil(concurrency.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::Jitter;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// dr-fleet's defaults: 10 retries, 2 s × 2, at most 1 min each, full jitter.
    fn fleet_retry() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            interval: secs(2),
            backoff_rate: 2.0,
            max_delay: Some(secs(60)),
            jitter: Jitter::Full,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn a_call_of_one_operation_retries_max_attempts_times() {
        let r = fleet_retry();
        assert_eq!(call_attempts(&r, 1), 11);
        // 2 + 4 + 8 + 16 + 32 s, then 5 × 60 s (capped).
        assert_eq!(retry_delays(&r, 10), secs(62 + 300));
        assert_eq!(retry_delays(&r, 10), r.max_total_delay());
        assert_eq!(call_duration(secs(120), &r, 1), secs(11 * 120 + 362));
    }

    #[test]
    fn a_call_of_several_operations_gets_a_budget_per_operation() {
        let r = fleet_retry();
        // 4 operations: 44 attempts, 43 retries = 4 full runs of 10 (4 × 362 s) and a run of 3 (2 + 4 + 8 s).
        assert_eq!(call_attempts(&r, 4), 44);
        assert_eq!(retry_delays(&r, 43), secs(4 * 362 + 14));
        assert_eq!(call_duration(secs(120), &r, 4), secs(44 * 120 + 4 * 362 + 14));
        // No retries: one attempt, whatever the operations.
        let none = RetryPolicy {
            max_attempts: 0,
            ..fleet_retry()
        };
        assert_eq!(call_attempts(&none, 4), 1);
        assert_eq!(call_duration(secs(120), &none, 4), secs(120));
        // An action with no AWS call counts as one operation.
        assert_eq!(call_attempts(&RetryPolicy::default(), 0), 4);
    }

    #[test]
    fn a_wait_is_its_timeout_plus_retry_delays_and_last_looks() {
        let r = fleet_retry();
        assert_eq!(wait_attempts(&r), 11);
        assert_eq!(wait_duration(secs(4 * 3600), &r), secs(4 * 3600 + 362 + 11 * 30));
        // A timeout shorter than the last look bounds each look.
        let short = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(wait_duration(secs(10), &short), secs(10 + 1 + 2 * 10));
    }

    #[test]
    fn polls_come_at_most_every_first_interval_or_every_5s_when_paced() {
        let p = PollPolicy {
            interval: secs(30),
            backoff_rate: 1.5,
            max_interval: secs(120),
        };
        assert_eq!(poll_gap(&p, false), secs(30));
        assert_eq!(poll_gap(&p, true), secs(5));
        let tight = PollPolicy {
            interval: secs(30),
            backoff_rate: 1.0,
            max_interval: secs(10),
        };
        assert_eq!(
            poll_gap(&tight, false),
            secs(10),
            "the cap applies to the first interval too"
        );
        let fast = PollPolicy { interval: secs(2), ..p };
        assert_eq!(
            poll_gap(&fast, true),
            secs(2),
            "pacing never polls more often than the policy"
        );
        // 1 h at 15 s: 240 gaps, plus one poll at the start of each of 11 attempts.
        assert_eq!(wait_polls(secs(3600), secs(15), 11), 251);
    }

    #[test]
    fn waves_round_up() {
        assert_eq!(waves(25, 10), 3);
        assert_eq!(waves(20, 10), 2);
        assert_eq!(waves(0, 10), 0);
        assert_eq!(waves(3, 0), 3, "a concurrency of 0 counts as 1");
    }
}
