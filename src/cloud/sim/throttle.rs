//! Token buckets per (region, operation), on simulated time, like EC2's documented rate limiting.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::scenario::Scenario;
use crate::cloud::CloudError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Duration,
}

/// (capacity, refill per second): generous enough that a normal pipeline never throttles.
fn limits(scenario: &Scenario, key: &str, mutating: bool) -> (f64, f64) {
    match scenario.throttling.iter().rev().find(|t| t.operation == key) {
        Some(t) => (t.capacity, t.refill_per_second),
        None if mutating => (20.0, 5.0),
        None => (100.0, 20.0),
    }
}

/// The code and message each service throttles with.
pub(crate) fn throttling_error(service: &str, operation: &str, region: &str) -> CloudError {
    let (code, message) = match service {
        "ec2" => ("RequestLimitExceeded", "Request limit exceeded."),
        "cloudformation" => ("Throttling", "Rate exceeded"),
        _ => ("ThrottlingException", "Rate exceeded"),
    };
    CloudError::new(service, operation, region, code, message)
}

/// Takes one token from the call's bucket, or answers the throttling error when the bucket is empty.
pub(crate) fn take(
    scenario: &Scenario,
    buckets: &mut std::collections::BTreeMap<String, Bucket>,
    (service, operation, region): (&str, &str, &str),
    mutating: bool,
    now: Duration,
) -> Result<(), CloudError> {
    let key = format!("{service}:{operation}");
    let (capacity, refill) = limits(scenario, &key, mutating);
    let bucket = buckets.entry(format!("{region}|{key}")).or_insert(Bucket {
        tokens: capacity,
        at: now,
    });
    let refilled = bucket.tokens + now.saturating_sub(bucket.at).as_secs_f64() * refill;
    bucket.tokens = refilled.min(capacity);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        Ok(())
    } else {
        Err(throttling_error(service, operation, region))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cloud::sim::scenario::Throttle;

    #[test]
    fn empties_and_refills() {
        let scenario = Scenario {
            throttling: vec![Throttle {
                operation: "ec2:DescribeImages".into(),
                capacity: 2.0,
                refill_per_second: 0.5,
            }],
            ..Scenario::default()
        };
        let mut buckets = BTreeMap::new();
        let call = ("ec2", "DescribeImages", "us-east-1");
        let t0 = Duration::from_secs(5);
        assert!(take(&scenario, &mut buckets, call, false, t0).is_ok());
        assert!(take(&scenario, &mut buckets, call, false, t0).is_ok());
        let err = take(&scenario, &mut buckets, call, false, t0).unwrap_err();
        assert_eq!(err.code, "RequestLimitExceeded");
        assert!(err.kind.is_transient());
        // Another region has its own bucket.
        assert!(
            take(
                &scenario,
                &mut buckets,
                ("ec2", "DescribeImages", "us-west-2"),
                false,
                t0
            )
            .is_ok()
        );
        // One token after two seconds.
        assert!(take(&scenario, &mut buckets, call, false, t0 + Duration::from_secs(2)).is_ok());
        assert!(take(&scenario, &mut buckets, call, false, t0 + Duration::from_secs(2)).is_err());
    }

    #[test]
    fn defaults_never_bite_a_normal_pipeline() {
        let scenario = Scenario::default();
        let mut buckets = BTreeMap::new();
        for i in 0..1000 {
            // A poll every 100 ms for 100 s.
            let now = Duration::from_millis(100 * i);
            take(
                &scenario,
                &mut buckets,
                ("backup", "DescribeBackupJob", "us-east-1"),
                false,
                now,
            )
            .unwrap();
        }
        for _ in 0..20 {
            take(
                &scenario,
                &mut buckets,
                ("ssm", "PutParameter", "us-east-1"),
                true,
                Duration::ZERO,
            )
            .unwrap();
        }
        let err = take(
            &scenario,
            &mut buckets,
            ("ssm", "PutParameter", "us-east-1"),
            true,
            Duration::ZERO,
        );
        assert_eq!(err.unwrap_err().code, "ThrottlingException");
    }
}
