//! Faults from the scenario: which of them hit a given call.
//!
//! Calls are counted per `service:Operation` (and per `service:Operation@region` for faults limited to a region)
//! in the world itself, so the counts survive in a persisted world: a fault that fired before a crash does not fire
//! again when the process resumes.

use std::time::Duration;

use super::scenario::Scenario;
use super::world::World;
use crate::cloud::CloudError;

/// What the faults (and the scenario's default latency) do to one call.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Simulated time to wait before answering.
    pub delay: Duration,
    /// Answer this instead of performing the call (the first matching `error` fault).
    pub error: Option<CloudError>,
    /// Perform the call, save the world, abort the process.
    pub crash: bool,
}

/// Counts the call and returns what the faults do to it.
pub(crate) fn plan(scenario: &Scenario, world: &mut World, service: &str, operation: &str, region: &str) -> Plan {
    let key = format!("{service}:{operation}");
    let n = world.count_call(key.clone());
    let n_region = world.count_call(format!("{key}@{region}"));
    let mut plan = Plan {
        delay: scenario.latency,
        ..Plan::default()
    };
    for fault in scenario.faults.iter().filter(|f| f.operation == key) {
        let n = match &fault.region {
            Some(r) if r != region => continue,
            Some(_) => n_region,
            None => n,
        };
        if n < fault.nth || n - fault.nth >= fault.count {
            continue;
        }
        if let Some(latency) = fault.latency {
            plan.delay += latency;
        }
        if let Some(e) = &fault.error
            && plan.error.is_none()
        {
            let message = e
                .message
                .clone()
                .unwrap_or_else(|| format!("{} (injected by the simulation scenario)", e.code));
            plan.error = Some(CloudError::new(service, operation, region, &e.code, message));
        }
        plan.crash |= fault.crash;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::sim::scenario::{Fault, FaultError};

    fn fault(nth: u64, count: u64, region: Option<&str>) -> Fault {
        Fault {
            operation: "ec2:DescribeImages".into(),
            region: region.map(str::to_string),
            nth,
            count,
            error: Some(FaultError {
                code: "InternalError".into(),
                message: None,
            }),
            latency: None,
            crash: false,
        }
    }

    #[test]
    fn fires_on_calls_nth_to_nth_plus_count() {
        let scenario = Scenario {
            faults: vec![fault(2, 2, None)],
            ..Scenario::default()
        };
        let mut world = World::build(&scenario);
        let hits: Vec<bool> = (0..5)
            .map(|_| {
                plan(&scenario, &mut world, "ec2", "DescribeImages", "us-east-1")
                    .error
                    .is_some()
            })
            .collect();
        assert_eq!(hits, [false, true, true, false, false]);
        // Other operations are not affected and do not advance the count.
        assert!(
            plan(&scenario, &mut world, "ec2", "CopyImage", "us-east-1")
                .error
                .is_none()
        );
    }

    #[test]
    fn region_faults_count_that_region_only() {
        let scenario = Scenario {
            faults: vec![fault(1, 1, Some("us-west-2"))],
            ..Scenario::default()
        };
        let mut world = World::build(&scenario);
        assert!(
            plan(&scenario, &mut world, "ec2", "DescribeImages", "us-east-1")
                .error
                .is_none()
        );
        let e = plan(&scenario, &mut world, "ec2", "DescribeImages", "us-west-2")
            .error
            .unwrap();
        assert_eq!((e.code.as_str(), e.region.as_str()), ("InternalError", "us-west-2"));
        assert!(e.kind.is_transient());
        assert!(
            plan(&scenario, &mut world, "ec2", "DescribeImages", "us-west-2")
                .error
                .is_none()
        );
    }
}
