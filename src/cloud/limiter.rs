//! One client-side rate limiter for a run, shared by every step, branch and fleet item: a token bucket per region
//! and API, started from the rates AWS documents where it documents them, and adaptive the way the SDKs' adaptive
//! retry mode is: a throttling answer cuts the bucket's rate (multiplicative decrease), and the rate then grows back
//! linearly with time (additive increase), reaching the rate it was cut from after six seconds without throttling,
//! and at most the starting rate. Calls wait for a token instead of being throttled, and
//! the limiter counts, per operation, the calls, the throttling answers and the time spent waiting for tokens.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

tokio::task_local! {
    /// How long the calls of the current step attempt have waited for tokens: the engine does not count it against
    /// the attempt's timeout (a fleet's thousandth start may queue for minutes behind the others).
    pub static TOKEN_WAIT: std::sync::Arc<TokenWait>;
}

/// Time spent waiting for tokens, including a wait still under way.
#[derive(Debug, Default)]
pub struct TokenWait {
    done: std::sync::Mutex<(Duration, Option<Instant>)>,
}

impl TokenWait {
    pub fn total(&self) -> Duration {
        let (done, since) = *self.done.lock().unwrap_or_else(|e| e.into_inner());
        done + since.map_or(Duration::ZERO, |s| s.elapsed())
    }

    fn begin(&self, at: Instant) {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).1.get_or_insert(at);
    }

    fn end(&self) {
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(since) = d.1.take() {
            d.0 += since.elapsed();
        }
    }
}

/// What a throttling answer leaves of the rate (the SDKs' adaptive mode uses 0.7).
const DECREASE: f64 = 0.7;
/// A rate never drops below one call per second: lower, a queue of fleet items would wait minutes per call (and
/// sporadic throttling that no rate avoids would starve the run).
const MIN_RATE: f64 = 1.0;
/// How many recent answers tell sporadic throttling from a rate that is too high.
const WINDOW: u8 = 10;
/// Growth per second without throttling, as a share of the rate before the last cut.
const GROWTH: f64 = 0.05;

/// (burst, calls per second) a bucket starts from.
///
/// EC2 publishes its request token buckets per API category: non-mutating 100 / 20 per second, mutating 200 / 5
/// per second. AWS Backup, CloudFormation and SNS publish no request rates for these APIs and SSM's are per-account
/// throughput settings: those start from a conservative 10 / 10 per second (reads) and 5 / 5 per second (writes),
/// and adapt.
pub(crate) fn starting_rate(service: &str, mutates: bool) -> (f64, f64) {
    match (service, mutates) {
        ("ec2", false) => (100.0, 20.0),
        ("ec2", true) => (200.0, 5.0),
        (_, false) => (10.0, 10.0),
        (_, true) => (5.0, 5.0),
    }
}

#[derive(Debug)]
struct Bucket {
    burst: f64,
    rate: f64,
    max_rate: f64,
    /// The rate before the last throttling answer cut it: what the rate grows back towards, and how fast.
    before_cut: f64,
    /// When the rate was last cut: a throttling answer to a call sent before then does not cut it again.
    cut_at: Option<Instant>,
    /// The last `seen` (at most `WINDOW`) answers, newest in the lowest bit, 1 for a throttling answer.
    history: u16,
    seen: u8,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new((burst, rate): (f64, f64), now: Instant) -> Bucket {
        Bucket {
            burst,
            rate,
            max_rate: rate,
            before_cut: rate,
            cut_at: None,
            history: 0,
            seen: 0,
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.rate = (self.rate + elapsed * GROWTH * self.before_cut).min(self.max_rate);
        self.burst = self.burst.max(self.rate);
        self.at = now;
    }

    /// Takes one token, or says how long until there is one (at today's rate: a cut in the meantime makes it
    /// longer, and the caller asks again).
    /// Remembers an answer in the window of the last ten.
    fn record(&mut self, throttled: bool) {
        self.history = ((self.history << 1) | u16::from(throttled)) & ((1 << WINDOW) - 1);
        self.seen = (self.seen + 1).min(WINDOW);
    }

    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    fn throttled(&mut self, sent: Instant, now: Instant) {
        self.refill(now);
        self.record(true);
        // AWS throttles now and then at any rate, and slowing down would not avoid that: only when at least half
        // of the last answers (two at least) were throttling answers is the rate too high.
        let throttled = self.history.count_ones();
        if throttled < 2 || 2 * throttled < u32::from(self.seen) || self.cut_at.is_some_and(|at| sent <= at) {
            return;
        }
        self.cut_at = Some(now);
        self.before_cut = self.rate;
        self.rate = (self.rate * DECREASE).max(MIN_RATE);
        // No burst above one second's worth of calls at the new rate, and none saved up right now.
        self.burst = self.rate.max(1.0);
        self.tokens = self.tokens.min(0.0);
    }
}

/// Per operation (`service:Name`): what the limiter saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStats {
    pub calls: u64,
    /// Answers that were throttling errors.
    pub throttled: u64,
    /// Time the calls spent waiting for a token, in milliseconds.
    pub waited_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<(String, String), Bucket>,
    /// Callers of a bucket queue here, first come first served: only the head waits for a token.
    queues: HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>,
    stats: BTreeMap<String, CallStats>,
}

/// The run's limiter. Keys are (region, `service:Name`): AWS throttles per account, region and API.
#[derive(Debug, Default)]
pub struct Limiter {
    state: Mutex<State>,
}

impl Limiter {
    pub fn new() -> Limiter {
        Limiter::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a token of `service:operation` in `region`; returns how long it waited (also added to `TOKEN_WAIT`,
    /// if the caller set it).
    pub async fn acquire(&self, region: &str, service: &str, operation: &str) -> Duration {
        let started = Instant::now();
        let _ = TOKEN_WAIT.try_with(|w| w.begin(started));
        let key = (region.to_string(), format!("{service}:{operation}"));
        let queue = {
            let mut state = self.lock();
            let mutates = super::operations::mutates_call(service, operation);
            state
                .buckets
                .entry(key.clone())
                .or_insert_with(|| Bucket::new(starting_rate(service, mutates), started));
            state.queues.entry(key.clone()).or_default().clone()
        };
        let _turn = queue.lock().await;
        loop {
            let next = self.lock().buckets.get_mut(&key).map(|b| b.take(Instant::now()));
            match next {
                Some(Err(wait)) => tokio::time::sleep(wait).await,
                _ => break,
            }
        }
        let waited = started.elapsed();
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        let _ = TOKEN_WAIT.try_with(|w| w.end());
        let mut state = self.lock();
        let stats = state.stats.entry(key.1).or_default();
        stats.calls += 1;
        stats.waited_ms += ms;
        waited
    }

    /// Tells the limiter how the call sent at `sent` went: throttling answers to half of the recent calls slow the
    /// bucket down (once for all the calls sent before it slowed down).
    fn answered(&self, region: &str, (service, operation): (&str, &str), sent: Instant, throttled: bool) {
        let key = format!("{service}:{operation}");
        let now = Instant::now();
        let mut state = self.lock();
        if !throttled {
            if let Some(bucket) = state.buckets.get_mut(&(region.to_string(), key)) {
                bucket.record(false);
            }
            return;
        }
        state.stats.entry(key.clone()).or_default().throttled += 1;
        if let Some(bucket) = state.buckets.get_mut(&(region.to_string(), key)) {
            bucket.throttled(sent, now);
        }
    }

    /// Sends a call that has its token (`answer`, not yet awaited) and tells the limiter how it was answered.
    pub async fn send<T>(
        &self,
        region: &str,
        operation: (&str, &str),
        answer: impl std::future::Future<Output = Result<T, super::CloudError>>,
    ) -> Result<T, super::CloudError> {
        let sent = Instant::now();
        let answer = answer.await;
        let throttled = matches!(&answer, Err(e) if e.kind == super::ErrorKind::Throttling);
        self.answered(region, operation, sent, throttled);
        answer
    }

    /// What each operation saw so far.
    pub fn stats(&self) -> BTreeMap<String, CallStats> {
        self.lock().stats.clone()
    }

    /// The current rate of a bucket, in calls per second.
    #[cfg(test)]
    fn rate(&self, region: &str, service: &str, operation: &str) -> Option<f64> {
        self.lock()
            .buckets
            .get(&(region.to_string(), format!("{service}:{operation}")))
            .map(|b| b.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_calls_are_paced_at_the_rate() {
        let l = Limiter::new();
        // SNS Publish starts at 5 per second with a burst of 5.
        for _ in 0..5 {
            assert_eq!(l.acquire("r", "sns", "Publish").await, Duration::ZERO);
        }
        let start = Instant::now();
        for _ in 0..10 {
            l.acquire("r", "sns", "Publish").await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!((took - 2.0).abs() < 0.01, "10 calls at 5/s took {took} s");
        assert_eq!(l.stats()["sns:Publish"].calls, 15);
        assert!(l.stats()["sns:Publish"].waited_ms >= 1_900);
    }

    #[tokio::test(start_paused = true)]
    async fn sustained_throttling_cuts_the_rate_and_time_restores_it() {
        let l = Limiter::new();
        let op = ("ec2", "DescribeImages");
        let rate = || l.rate("r", "ec2", "DescribeImages").unwrap();
        l.acquire("r", "ec2", "DescribeImages").await;
        let sent = Instant::now();
        // Sporadic throttles between good answers change nothing.
        for _ in 0..3 {
            l.answered("r", op, sent, false);
            l.answered("r", op, sent, false);
            l.answered("r", op, sent, true);
        }
        assert_eq!(rate(), 20.0);
        // Half of the last ten cuts; answers to calls sent before the cut do not cut again.
        l.answered("r", op, sent, true);
        assert_eq!(rate(), 20.0, "4 of 10");
        l.answered("r", op, sent, true);
        assert_eq!(rate(), 14.0);
        l.answered("r", op, sent, true);
        assert_eq!(rate(), 14.0);
        // A throttled call sent after the cut does.
        tokio::time::sleep(Duration::from_secs(1)).await;
        l.answered("r", op, Instant::now(), true);
        assert!((rate() - 10.5).abs() < 1e-9, "{}", rate());
        l.answered("r", op, Instant::now(), false);
        assert!((rate() - 10.5).abs() < 1e-9, "an answer alone does not speed up");
        // Grows by 5% of 15/s per second: back to 15/s after 6 s, to the starting 20/s after about 13 s.
        tokio::time::sleep(Duration::from_secs(6)).await;
        l.acquire("r", "ec2", "DescribeImages").await;
        assert!((rate() - 15.0).abs() < 1e-6, "{}", rate());
        tokio::time::sleep(Duration::from_secs(60)).await;
        l.acquire("r", "ec2", "DescribeImages").await;
        assert_eq!(rate(), 20.0);
        assert_eq!(l.stats()["ec2:DescribeImages"].throttled, 7);
        // Buckets are per region and API.
        assert_eq!(l.rate("other", "ec2", "DescribeImages"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn after_throttling_no_burst_is_left() {
        let l = Limiter::new();
        l.acquire("r", "backup", "DescribeBackupJob").await;
        l.answered("r", ("backup", "DescribeBackupJob"), Instant::now(), true);
        l.answered("r", ("backup", "DescribeBackupJob"), Instant::now(), true);
        // Rate 7/s, no token saved: the next call waits about 1/7 s.
        let waited = l.acquire("r", "backup", "DescribeBackupJob").await;
        assert!(
            waited >= Duration::from_millis(140) && waited <= Duration::from_millis(145),
            "{waited:?}"
        );
    }
}
