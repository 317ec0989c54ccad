//! Faults from the scenario: which of them hit a given call, and what they do to it.
//!
//! Calls are counted per actual `service:Operation` (and per `service:Operation@region` for faults limited to a
//! region) in the world itself, whatever glob a fault matches them with, so the counts survive in a persisted
//! world: a fault that fired before a crash does not fire again when the process resumes. Faults with a
//! `probability` draw from the world's generator, which a persisted world keeps as well.

use std::time::Duration;

use super::rng::Rng;
use super::scenario::{Fault, LOST_RESPONSE_CODE, Scenario};
use super::world::World;
use crate::cloud::CloudError;

/// What the faults (and the scenario's default latency) do to one call.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Simulated time to wait before answering.
    pub delay: Duration,
    /// The answer a fault imposes: the first hitting fault (in scenario order) with an `error` or `lose_response`.
    pub answer: Option<Injected>,
    /// Perform the call, save the world, abort the process.
    pub crash: bool,
}

#[derive(Debug)]
pub(crate) enum Injected {
    /// Answer this error instead of performing the call.
    Refuse(CloudError),
    /// Perform the call, then answer this error instead of its answer (the response was lost).
    LoseResponse(CloudError),
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
    for fault in scenario.faults.iter().filter(|f| f.matches(&key)) {
        let n = match &fault.region {
            Some(r) if r != region => continue,
            Some(_) => n_region,
            None => n,
        };
        if !fault.in_window(n) {
            continue;
        }
        if let Some(p) = fault.probability {
            // One draw per fault and call in its window, hit or not, so the sequence depends only on the calls.
            let rng = world.rng.get_or_insert_with(|| Rng::seeded(scenario.seed));
            if !rng.chance(p) {
                continue;
            }
        }
        if let Some(latency) = fault.latency {
            plan.delay += latency;
        }
        if plan.answer.is_none() {
            if fault.lose_response {
                plan.answer = Some(Injected::LoseResponse(error(fault, service, operation, region)));
            } else if fault.error.is_some() {
                plan.answer = Some(Injected::Refuse(error(fault, service, operation, region)));
            }
        }
        plan.crash |= fault.crash;
    }
    plan
}

/// The error a fault answers: its own, or (for a lost response that names none) `InternalError`.
fn error(fault: &Fault, service: &str, operation: &str, region: &str) -> CloudError {
    let (code, message) = match &fault.error {
        Some(e) => (e.code.as_str(), e.message.clone()),
        None => (LOST_RESPONSE_CODE, None),
    };
    let message = message.unwrap_or_else(|| {
        if fault.lose_response {
            format!("{code} (injected by the simulation scenario: the call was carried out, its response lost)")
        } else {
            format!("{code} (injected by the simulation scenario)")
        }
    });
    CloudError::new(service, operation, region, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(yaml: &str) -> Scenario {
        Scenario::from_yaml_str(yaml, None).unwrap()
    }

    /// Whether each call (`service:Operation`, in us-east-1) gets an answer from a fault.
    fn hits(scenario: &Scenario, world: &mut World, calls: &[&str]) -> Vec<bool> {
        calls
            .iter()
            .map(|call| {
                let (service, operation) = call.split_once(':').unwrap();
                plan(scenario, world, service, operation, "us-east-1").answer.is_some()
            })
            .collect()
    }

    #[test]
    fn fires_on_calls_nth_to_nth_plus_count() {
        let scenario = scenario("faults: [{operation: 'ec2:DescribeImages', nth: 2, count: 2, error: {code: X}}]");
        let mut world = World::build(&scenario);
        let images = ["ec2:DescribeImages"; 5];
        assert_eq!(hits(&scenario, &mut world, &images), [false, true, true, false, false]);
        // Other operations are not affected and do not advance the count.
        assert_eq!(hits(&scenario, &mut world, &["ec2:CopyImage"]), [false]);
        // Omitted count: one call.
        let scenario = self::scenario("faults: [{operation: 'ec2:DescribeImages', nth: 2, error: {code: X}}]");
        let mut world = World::build(&scenario);
        assert_eq!(hits(&scenario, &mut world, &images), [false, true, false, false, false]);
    }

    #[test]
    fn count_zero_means_every_call_from_nth_on() {
        let scenario = scenario("faults: [{operation: 'ssm:GetParameter', nth: 3, count: 0, error: {code: X}}]");
        let mut world = World::build(&scenario);
        let calls = ["ssm:GetParameter"; 6];
        assert_eq!(
            hits(&scenario, &mut world, &calls),
            [false, false, true, true, true, true]
        );
    }

    #[test]
    fn region_faults_count_that_region_only() {
        let scenario =
            scenario("faults: [{operation: 'ec2:DescribeImages', region: us-west-2, error: {code: InternalError}}]");
        let mut world = World::build(&scenario);
        assert!(
            plan(&scenario, &mut world, "ec2", "DescribeImages", "us-east-1")
                .answer
                .is_none()
        );
        let Some(Injected::Refuse(e)) = plan(&scenario, &mut world, "ec2", "DescribeImages", "us-west-2").answer else {
            panic!("the first call in us-west-2 is refused")
        };
        assert_eq!((e.code.as_str(), e.region.as_str()), ("InternalError", "us-west-2"));
        assert!(e.kind.is_transient());
        assert!(
            plan(&scenario, &mut world, "ec2", "DescribeImages", "us-west-2")
                .answer
                .is_none()
        );
    }

    #[test]
    fn globs_match_operations_and_count_per_actual_operation() {
        let scenario = scenario("faults: [{operation: '*', nth: 2, error: {code: X}}]");
        let mut world = World::build(&scenario);
        let calls = [
            "ec2:DescribeImages",
            "ec2:CopyImage",
            "ec2:DescribeImages", // the second DescribeImages
            "sts:GetCallerIdentity",
            "ec2:CopyImage", // the second CopyImage
            "ec2:DescribeImages",
        ];
        assert_eq!(
            hits(&scenario, &mut world, &calls),
            [false, false, true, false, true, false]
        );
        assert_eq!(world.call_counts["ec2:DescribeImages"], 3);
        assert!(!world.call_counts.contains_key("*"));

        let scenario = self::scenario(
            "faults:\n  - {operation: 'backup:Start*', count: 0, error: {code: X}}\n  - {operation: '*:Delete*', count: 0, error: {code: Y}}",
        );
        let mut world = World::build(&scenario);
        let calls = [
            "backup:StartBackupJob",
            "backup:StartCopyJob",
            "backup:DescribeBackupJob",
            "cloudformation:DeleteStack",
            "cloudformation:DescribeStacks",
            "ec2:CopyImage",
        ];
        assert_eq!(
            hits(&scenario, &mut world, &calls),
            [true, true, false, true, false, false]
        );
    }

    #[test]
    fn glob_matching() {
        use crate::cloud::sim::scenario::glob_match;
        for (pattern, text) in [
            ("*", "ec2:CopyImage"),
            ("ec2:*", "ec2:CopyImage"),
            ("*:Start*", "backup:StartCopyJob"),
            ("*Job", "backup:StartCopyJob"),
            ("cloudformation:*Stack", "cloudformation:DeleteStack"),
            ("*a*a*", "banana"),
            ("ec2:CopyImage", "ec2:CopyImage"),
            ("**", ""),
        ] {
            assert!(glob_match(pattern, text), "{pattern} {text}");
        }
        for (pattern, text) in [
            ("Start*", "backup:StartCopyJob"),
            ("cloudformation:*Stack", "cloudformation:DescribeStacks"),
            ("ec2:CopyImage", "ec2:CopyImages"),
            ("*a*a*a*a*", "banana"),
            ("ec2:copyimage", "ec2:CopyImage"),
            ("x", ""),
        ] {
            assert!(!glob_match(pattern, text), "{pattern} {text}");
        }
    }

    #[test]
    fn probability_hits_that_share_of_calls_from_a_seeded_sequence() {
        let yaml = "faults: [{operation: '*', probability: 0.3, error: {code: ThrottlingException}}]";
        let calls = ["ssm:GetParameter"; 2000];
        let pattern = |yaml: &str| {
            let scenario = scenario(yaml);
            let mut world = World::build(&scenario);
            hits(&scenario, &mut world, &calls)
        };
        let a = pattern(yaml);
        let share = a.iter().filter(|h| **h).count();
        assert!((520..680).contains(&share), "{share} of 2000");
        // Deterministic: the same seed (here the default) gives the same calls; another seed others.
        assert_eq!(
            pattern(&format!("seed: {}\n{yaml}", crate::cloud::sim::scenario::DEFAULT_SEED)),
            a
        );
        assert_ne!(pattern(&format!("seed: 42\n{yaml}")), a);
        // `count` bounds the window of calls that may be hit, `nth` where it starts.
        let windowed = pattern("faults: [{operation: '*', nth: 11, count: 20, probability: 1, error: {code: X}}]");
        assert_eq!(windowed.iter().position(|h| *h), Some(10));
        assert_eq!(windowed.iter().filter(|h| **h).count(), 20);
    }

    #[test]
    fn the_first_hitting_fault_decides_the_answer() {
        let lose_first = scenario(
            "faults:\n  - {operation: 'ssm:PutParameter', lose_response: true}\n  - {operation: 'ssm:*', error: {code: ThrottlingException}}\n  - {operation: '*', latency: 2s}\n  - {operation: 'ssm:Put*', latency: 3s}",
        );
        let mut world = World::build(&lose_first);
        let plan1 = plan(&lose_first, &mut world, "ssm", "PutParameter", "us-east-1");
        assert_eq!(plan1.delay, Duration::from_secs(5));
        let Some(Injected::LoseResponse(e)) = plan1.answer else {
            panic!("the response is lost: {:?}", plan1.answer)
        };
        // The default error of a lost response: InternalError, transient.
        assert_eq!(e.code, "InternalError");
        assert!(e.kind.is_transient() && e.message.contains("carried out"), "{e:?}");

        let error_first = scenario(
            "faults:\n  - {operation: 'ssm:*', error: {code: ThrottlingException}}\n  - {operation: 'ssm:PutParameter', count: 0, lose_response: true, error: {code: RequestTimeout, message: gone}}",
        );
        let mut world = World::build(&error_first);
        let answer = plan(&error_first, &mut world, "ssm", "PutParameter", "us-east-1").answer;
        assert!(matches!(answer, Some(Injected::Refuse(e)) if e.code == "ThrottlingException"));
        // Once the error fault is spent, the lost response answers its own error.
        let answer = plan(&error_first, &mut world, "ssm", "PutParameter", "us-east-1").answer;
        assert!(
            matches!(&answer, Some(Injected::LoseResponse(e)) if (e.code.as_str(), e.message.as_str()) == ("RequestTimeout", "gone")),
            "{answer:?}"
        );
    }
}
