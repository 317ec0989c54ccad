//! The engine's one retry decision: after a failed attempt, retry after how long? The policy and its delay
//! arithmetic belong to the language (`workflow::RetryPolicy`); the executor does the sleeping.

use std::time::Duration;

use crate::workflow::{FailureClass, RetryPolicy};

/// The delay before the next attempt, or `None` when the step fails for good.
///
/// `in_a_row` counts this failure among the failures since the step last made progress: every failed attempt of a
/// call, but for a wait only the failed polls since its last good one (a poll that answers resets the budget, as
/// each poll of an ASL wait loop has its own retrier). `waits` says the step is a wait, whose timeout bounds the
/// whole wait: once it fired there is no time left to retry in.
pub(crate) fn retry_after(
    policy: &RetryPolicy,
    failure: &FailureClass,
    in_a_row: u32,
    waits: bool,
    sample: f64,
) -> Option<Duration> {
    if waits && failure.timed_out {
        return None;
    }
    if !policy.retries(failure) {
        return None;
    }
    policy.next_delay(in_a_row, sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled() -> FailureClass {
        FailureClass {
            throttling: true,
            transient: true,
            code: "ThrottlingException".into(),
            timed_out: false,
        }
    }

    #[test]
    fn counts_failures_in_a_row_against_max_attempts() {
        let p = RetryPolicy::default(); // 3 retries: 1 s, 2 s, 4 s
        let d: Vec<_> = (1..=4).map(|n| retry_after(&p, &throttled(), n, true, 0.5)).collect();
        assert_eq!(
            d,
            vec![
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                None
            ]
        );
    }

    #[test]
    fn a_spent_wait_is_not_retried_but_a_timed_out_call_may_be() {
        let timeout = FailureClass {
            throttling: false,
            transient: true,
            code: "States.Timeout".into(),
            timed_out: true,
        };
        let p = RetryPolicy {
            errors: vec![crate::workflow::ErrorMatch::Timeout],
            ..RetryPolicy::default()
        };
        assert_eq!(retry_after(&p, &timeout, 1, true, 0.5), None);
        assert_eq!(retry_after(&p, &timeout, 1, false, 0.5), Some(Duration::from_secs(1)));
        assert_eq!(
            retry_after(&p, &FailureClass::permanent("AccessDenied"), 1, false, 0.5),
            None
        );
    }
}
