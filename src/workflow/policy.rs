//! Retry and polling policies of the language, and their delays: pure functions of the policy and the attempt
//! number. The engine decides when to retry and does the sleeping.
//!
//! Retries follow Amazon States Language retriers: `max_attempts` retries after the first attempt,
//! delay before retry n = `interval × backoff_rate^(n-1)`, capped at `max_delay`, and with `jitter: full`
//! a uniformly random delay between 0 and that value. The `backoff` crate does the arithmetic.

use std::time::Duration;

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    None,
    Full,
}

/// Which failures a retrier retries (ASL `ErrorEquals`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorMatch {
    /// Throttling, 5xx, timeouts and connection errors of AWS calls.
    Transient,
    Throttling,
    /// The step's own timeout (ASL `States.Timeout`).
    Timeout,
    /// Everything (ASL `States.ALL`).
    All,
    /// One AWS error code, e.g. `ConcurrentModificationException`.
    Code(String),
}

impl ErrorMatch {
    pub fn parse(s: &str) -> Result<ErrorMatch, String> {
        Ok(match s {
            "transient" => ErrorMatch::Transient,
            "throttling" => ErrorMatch::Throttling,
            "timeout" => ErrorMatch::Timeout,
            "all" => ErrorMatch::All,
            code if code.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') =>
            {
                ErrorMatch::Code(code.to_string())
            }
            other => {
                return Err(format!(
                    "`{other}` is not an error class: use transient, throttling, timeout, all, or an AWS error code"
                ));
            }
        })
    }

    pub fn as_string(&self) -> String {
        match self {
            ErrorMatch::Transient => "transient".into(),
            ErrorMatch::Throttling => "throttling".into(),
            ErrorMatch::Timeout => "timeout".into(),
            ErrorMatch::All => "all".into(),
            ErrorMatch::Code(c) => c.clone(),
        }
    }
}

/// What a retrier's `errors` are matched against: the class of one failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureClass {
    /// AWS rate limiting.
    pub throttling: bool,
    /// Worth retrying: throttling, 5xx, timeouts of a call, dropped connections, a write that did not stick.
    pub transient: bool,
    /// The AWS error code (or drflow's own, e.g. `States.Timeout`).
    pub code: String,
    /// The step's own timeout fired.
    pub timed_out: bool,
}

impl FailureClass {
    /// A failure that is never retried by `transient`.
    pub fn permanent(code: impl Into<String>) -> FailureClass {
        FailureClass {
            throttling: false,
            transient: false,
            code: code.into(),
            timed_out: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_attempts: u32,
    pub interval: Duration,
    pub backoff_rate: f64,
    pub max_delay: Option<Duration>,
    pub jitter: Jitter,
    pub errors: Vec<ErrorMatch>,
}

impl Default for RetryPolicy {
    /// ASL's defaults (3 retries, 1 s, ×2), retrying transient errors only.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            interval: Duration::from_secs(1),
            backoff_rate: 2.0,
            max_delay: None,
            jitter: Jitter::None,
            errors: vec![ErrorMatch::Transient],
        }
    }
}

impl RetryPolicy {
    pub fn retries(&self, f: &FailureClass) -> bool {
        self.errors.iter().any(|m| match m {
            ErrorMatch::All => true,
            ErrorMatch::Transient => f.transient && !f.timed_out,
            ErrorMatch::Throttling => f.throttling,
            ErrorMatch::Timeout => f.timed_out,
            ErrorMatch::Code(c) => *c == f.code,
        })
    }

    /// The delay before retry number `retry` (1 = the first retry), or `None` when retries are used up.
    /// `sample` is a number in [0, 1) used for full jitter; passing it in keeps this function pure.
    pub fn next_delay(&self, retry: u32, sample: f64) -> Option<Duration> {
        if retry == 0 || retry > self.max_attempts {
            return None;
        }
        let base = exponential(self.interval, self.backoff_rate, self.max_delay, retry);
        Some(match self.jitter {
            Jitter::None => base,
            Jitter::Full => Duration::from_millis((base.as_millis() as f64 * sample.clamp(0.0, 1.0)) as u64),
        })
    }

    /// The longest the retries of one step can wait in total (for plans).
    pub fn max_total_delay(&self) -> Duration {
        (1..=self.max_attempts).filter_map(|n| self.next_delay(n, 1.0)).sum()
    }
}

/// Polling of wait actions: delay before poll n+1 = `interval × backoff_rate^(n-1)`, capped at `max_interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct PollPolicy {
    pub interval: Duration,
    pub backoff_rate: f64,
    pub max_interval: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            interval: Duration::from_secs(15),
            backoff_rate: 1.5,
            max_interval: Duration::from_secs(120),
        }
    }
}

impl PollPolicy {
    /// The wait after poll number `poll` (1-based) that found the resource not ready yet.
    pub fn delay(&self, poll: u32) -> Duration {
        exponential(self.interval, self.backoff_rate, Some(self.max_interval), poll.max(1))
    }
}

/// `interval × rate^(n-1)`, capped, computed by `backoff::ExponentialBackoff` without randomisation or
/// an elapsed-time limit, rounded to the millisecond (the crate adds up to a nanosecond of noise).
fn exponential(interval: Duration, rate: f64, cap: Option<Duration>, n: u32) -> Duration {
    let cap = cap.unwrap_or(Duration::from_secs(365 * 86_400));
    let mut b = ExponentialBackoff {
        current_interval: interval.min(cap),
        initial_interval: interval.min(cap),
        randomization_factor: 0.0,
        multiplier: rate,
        max_interval: cap,
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    };
    let mut d = Duration::ZERO;
    for _ in 0..n {
        d = b.next_backoff().unwrap_or(cap);
    }
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> Vec<Option<Duration>> {
        v.iter().map(|s| Some(Duration::from_secs(*s))).collect()
    }

    fn delays(p: &RetryPolicy, n: u32) -> Vec<Option<Duration>> {
        (1..=n).map(|r| p.next_delay(r, 0.5)).collect()
    }

    #[test]
    fn asl_documentation_example() {
        // ASL docs: IntervalSeconds 3, MaxAttempts 2, BackoffRate 1.5 → retries after 3 s and 4.5 s.
        let p = RetryPolicy {
            max_attempts: 2,
            interval: Duration::from_secs(3),
            backoff_rate: 1.5,
            ..RetryPolicy::default()
        };
        assert_eq!(
            delays(&p, 3),
            vec![Some(Duration::from_secs(3)), Some(Duration::from_millis(4500)), None]
        );
    }

    #[test]
    fn asl_defaults_are_1_2_4() {
        assert_eq!(
            delays(&RetryPolicy::default(), 4),
            [secs(&[1, 2, 4]), vec![None]].concat()
        );
    }

    #[test]
    fn max_delay_caps_each_delay() {
        // interval 2 s, rate 3, MaxDelaySeconds 10: 2, 6, 18→10, 54→10.
        let p = RetryPolicy {
            max_attempts: 4,
            interval: Duration::from_secs(2),
            backoff_rate: 3.0,
            max_delay: Some(Duration::from_secs(10)),
            ..RetryPolicy::default()
        };
        assert_eq!(delays(&p, 4), secs(&[2, 6, 10, 10]));
    }

    #[test]
    fn full_jitter_scales_by_the_sample() {
        let p = RetryPolicy {
            max_attempts: 3,
            interval: Duration::from_secs(4),
            jitter: Jitter::Full,
            ..RetryPolicy::default()
        };
        assert_eq!(p.next_delay(2, 0.25), Some(Duration::from_secs(2))); // 8 s × 0.25
        assert_eq!(p.next_delay(1, 0.0), Some(Duration::ZERO));
    }

    #[test]
    fn zero_max_attempts_never_retries() {
        let p = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(p.next_delay(1, 0.5), None);
        assert_eq!(p.max_total_delay(), Duration::ZERO);
    }

    #[test]
    fn default_retries_transient_errors_only() {
        let p = RetryPolicy::default();
        let f = |kind: &str, code: &str, timed_out| FailureClass {
            throttling: kind == "throttling",
            transient: kind == "throttling" || kind == "transient",
            code: code.into(),
            timed_out,
        };
        assert!(p.retries(&f("throttling", "ThrottlingException", false)));
        assert!(p.retries(&f("transient", "InternalError", false)));
        assert!(!p.retries(&f("access_denied", "AccessDeniedException", false)));
        assert!(!p.retries(&f("validation", "ValidationException", false)));
        assert!(!p.retries(&f("transient", "States.Timeout", true)));
        let codes = RetryPolicy {
            errors: vec![ErrorMatch::Code("ConflictException".into()), ErrorMatch::Timeout],
            ..RetryPolicy::default()
        };
        assert!(codes.retries(&f("other", "ConflictException", false)));
        assert!(codes.retries(&f("transient", "States.Timeout", true)));
        assert!(!codes.retries(&f("throttling", "Throttling", false)));
    }

    #[test]
    fn polling_grows_to_its_cap() {
        let p = PollPolicy::default(); // 15 s × 1.5, cap 2 min
        let d: Vec<u64> = (1..=7).map(|n| p.delay(n).as_millis() as u64).collect();
        assert_eq!(d, vec![15_000, 22_500, 33_750, 50_625, 75_937, 113_906, 120_000]);
    }

    #[test]
    fn parses_error_classes() {
        assert_eq!(ErrorMatch::parse("transient"), Ok(ErrorMatch::Transient));
        assert_eq!(
            ErrorMatch::parse("TooManyUpdates"),
            Ok(ErrorMatch::Code("TooManyUpdates".into()))
        );
        assert!(ErrorMatch::parse("sometimes").is_err());
    }
}
