//! drflow's `retry` as ASL retriers, and AWS error codes as the names Step Functions reports them by.
//!
//! AWS SDK integrations report an error as `Service.ErrorName`, both in PascalCase, the name always ending in
//! `Exception` even when the service's code does not (AWS's "Learning to use AWS service SDK integrations"):
//! `Backup.ThrottlingException`, `Ssm.ParameterNotFoundException`. An error the service's model does not declare
//! comes as the service's generic exception (`Ec2.Ec2Exception` for EC2's `RequestLimitExceeded`, as reported in
//! github.com/CloudSnorkel/cdk-github-runners/issues/946), so retriers of throttling also name it — it matches the
//! service's other undeclared errors too (a validation error of EC2 is retried as throttling is).
//! The cross-region function raises an error named by AWS's bare code (`ThrottlingException`).

use serde_json::{Value, json};

use crate::workflow::{ErrorMatch, Jitter, RetryPolicy};

/// How a call is made: an SDK integration in the state machine's region, or the cross-region function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Sdk,
    Function,
}

/// The service's name in SDK integration errors.
pub(crate) fn service_prefix(service: &str) -> &'static str {
    match service {
        "backup" => "Backup",
        "ec2" => "Ec2",
        "ssm" => "Ssm",
        "cloudformation" => "CloudFormation",
        "sns" => "Sns",
        "sts" => "Sts",
        _ => "Unknown",
    }
}

/// The error codes each service's API model declares (botocore's service models, the shapes marked as
/// exceptions), for the codes drflow's forms and retriers name. Others come as the service's generic exception.
fn declared(service: &str, code: &str) -> bool {
    let list: &[&str] = match service {
        "backup" => &[
            "AlreadyExistsException",
            "ConflictException",
            "DependencyFailureException",
            "InvalidParameterValueException",
            "InvalidRequestException",
            "InvalidResourceStateException",
            "LimitExceededException",
            "MissingParameterValueException",
            "ResourceNotFoundException",
            "ServiceUnavailableException",
        ],
        "ssm" => &[
            "ParameterNotFound",
            "TooManyUpdates",
            "ThrottlingException",
            "InternalServerError",
            "ParameterMaxVersionLimitExceeded",
            "ParameterAlreadyExists",
            "HierarchyLevelLimitExceededException",
        ],
        "cloudformation" => &[
            "AlreadyExistsException",
            "InsufficientCapabilitiesException",
            "LimitExceededException",
            "TokenAlreadyExistsException",
            "StackNotFoundException",
        ],
        "sns" => &[
            "NotFound",
            "Throttled",
            "InvalidParameter",
            "AuthorizationError",
            "InternalError",
        ],
        // EC2's model declares no error shapes: every EC2 error is `Ec2.Ec2Exception`.
        _ => &[],
    };
    list.contains(&code)
}

/// An AWS error code as the call reports it: `Service.CodeException` when the service's model declares it,
/// else the service's generic exception.
pub(crate) fn error_name(service: &str, code: &str, via: Via) -> String {
    match via {
        Via::Function => code.to_string(),
        Via::Sdk => {
            let p = service_prefix(service);
            if !declared(service, code) {
                format!("{p}.{p}Exception")
            } else if code.ends_with("Exception") {
                format!("{p}.{code}")
            } else {
                format!("{p}.{code}Exception")
            }
        }
    }
}

/// The documented rule's name of a code (`Service.CodeException`), and what `error_name` gives when they differ.
fn both(service: &str, code: &str, via: Via) -> Vec<String> {
    let named = error_name(service, code, via);
    if via == Via::Function {
        return vec![named];
    }
    let p = service_prefix(service);
    let rule = if code.ends_with("Exception") {
        format!("{p}.{code}")
    } else {
        format!("{p}.{code}Exception")
    };
    if rule == named { vec![named] } else { vec![rule, named] }
}

/// The codes of throttling, per service (what the SDKs count as throttling, as each service spells it).
fn throttling_codes(service: &str) -> &'static [&'static str] {
    match service {
        "ec2" => &["RequestLimitExceeded"],
        "cloudformation" => &["Throttling"],
        "sns" => &["Throttled", "ThrottlingException"],
        _ => &["ThrottlingException"],
    }
}

/// 5xx codes.
const SERVER_CODES: &[&str] = &["ServiceUnavailableException", "InternalFailure", "InternalServerError"];

/// What Lambda itself may answer transiently (AWS's recommended retrier for Lambda tasks).
const LAMBDA_TRANSIENT: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
];

/// The error names one `errors` entry matches for a call of `service` made `via`; `own` are the errors the
/// step's form raises itself (its Fail states), matched by their code.
pub(crate) fn names(m: &ErrorMatch, service: &str, via: Via, own: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let generic = |out: &mut Vec<String>| {
        if via == Via::Sdk {
            let p = service_prefix(service);
            out.push(format!("{p}.{p}Exception"));
        } else {
            out.extend(LAMBDA_TRANSIENT.iter().map(|s| s.to_string()));
        }
    };
    match m {
        ErrorMatch::All => out.push("States.ALL".into()),
        ErrorMatch::Timeout => out.push("States.Timeout".into()),
        // Both the documented rule's name and the generic one an undeclared code comes as (AWS does not document
        // which: `Backup.ThrottlingException` is unconfirmed, `Backup.BackupException` what the SDK names it).
        ErrorMatch::Throttling => {
            out.extend(throttling_codes(service).iter().flat_map(|c| both(service, c, via)));
            generic(&mut out);
        }
        ErrorMatch::Transient => {
            out.extend(throttling_codes(service).iter().flat_map(|c| both(service, c, via)));
            out.extend(SERVER_CODES.iter().flat_map(|c| both(service, c, via)));
            generic(&mut out);
        }
        ErrorMatch::Code(c) if own.contains(c) => out.push(c.clone()),
        ErrorMatch::Code(c) => out.push(error_name(service, c, via)),
    }
    out
}

/// The retrier of a step's policy for a call (`None` when it retries nothing); `own` as in `names`.
pub(crate) fn retrier(p: &RetryPolicy, service: &str, via: Via, own: &[String]) -> Option<Value> {
    if p.max_attempts == 0 {
        return None;
    }
    let mut errors: Vec<String> = Vec::new();
    for m in &p.errors {
        for n in names(m, service, via, own) {
            if !errors.contains(&n) {
                errors.push(n);
            }
        }
    }
    // States.ALL must stand alone.
    if errors.iter().any(|e| e == "States.ALL") {
        errors = vec!["States.ALL".into()];
    }
    Some(fields(p, errors))
}

/// A retrier of the step's own errors only (Fail states of its form, its wait's timeout), for the Parallel state
/// that wraps it: `None` when the policy retries none of them.
pub(crate) fn own_retrier(p: &RetryPolicy, own: &[String], waits: bool) -> Option<Value> {
    if p.max_attempts == 0 {
        return None;
    }
    let mut errors = Vec::new();
    for m in &p.errors {
        match m {
            ErrorMatch::All => errors = vec!["States.ALL".to_string()],
            ErrorMatch::Timeout if waits => errors.push("States.Timeout".into()),
            ErrorMatch::Code(c) if own.contains(c) => errors.push(c.clone()),
            _ => {}
        }
        if errors.first().is_some_and(|e| e == "States.ALL") {
            break;
        }
    }
    (!errors.is_empty()).then(|| fields(p, errors))
}

fn fields(p: &RetryPolicy, errors: Vec<String>) -> Value {
    let mut r = json!({
        "ErrorEquals": errors,
        // ASL takes whole seconds, at least 1.
        "IntervalSeconds": p.interval.as_secs_f64().ceil().max(1.0) as u64,
        "MaxAttempts": p.max_attempts,
        "BackoffRate": p.backoff_rate,
    });
    if let Some(d) = p.max_delay {
        r["MaxDelaySeconds"] = json!(d.as_secs_f64().ceil().max(1.0) as u64);
    }
    if p.jitter == Jitter::Full {
        r["JitterStrategy"] = json!("FULL");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sdk_names_follow_awss_rule_and_the_function_uses_bare_codes() {
        assert_eq!(
            error_name("ssm", "ParameterNotFound", Via::Sdk),
            "Ssm.ParameterNotFoundException"
        );
        assert_eq!(error_name("ec2", "RequestLimitExceeded", Via::Sdk), "Ec2.Ec2Exception");
        assert_eq!(
            error_name("backup", "ThrottlingException", Via::Sdk),
            "Backup.BackupException"
        );
        assert_eq!(
            error_name("backup", "ResourceNotFoundException", Via::Sdk),
            "Backup.ResourceNotFoundException"
        );
        assert_eq!(
            error_name("ssm", "ParameterNotFound", Via::Function),
            "ParameterNotFound"
        );
    }

    #[test]
    fn a_policy_becomes_a_retrier_with_every_field() {
        let p = RetryPolicy {
            max_attempts: 10,
            interval: Duration::from_millis(1500),
            backoff_rate: 2.0,
            max_delay: Some(Duration::from_secs(60)),
            jitter: Jitter::Full,
            errors: vec![ErrorMatch::Transient, ErrorMatch::Code("TooManyUpdates".into())],
        };
        let r = retrier(&p, "ssm", Via::Sdk, &[]).unwrap();
        assert_eq!(r["IntervalSeconds"], 2);
        assert_eq!(r["MaxAttempts"], 10);
        assert_eq!(r["MaxDelaySeconds"], 60);
        assert_eq!(r["JitterStrategy"], "FULL");
        let errors: Vec<&str> = r["ErrorEquals"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(errors.contains(&"Ssm.ThrottlingException"), "{errors:?}");
        assert!(errors.contains(&"Ssm.SsmException"), "{errors:?}");
        assert!(errors.contains(&"Ssm.TooManyUpdatesException"), "{errors:?}");
        let none = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(retrier(&none, "ssm", Via::Sdk, &[]), None);
    }

    #[test]
    fn own_errors_are_retried_by_the_wrapping_parallel_only() {
        let p = RetryPolicy {
            errors: vec![ErrorMatch::Transient, ErrorMatch::Code("NotVerified".into())],
            ..RetryPolicy::default()
        };
        let own = vec!["NotVerified".to_string()];
        assert_eq!(
            own_retrier(&p, &own, false).unwrap()["ErrorEquals"],
            json!(["NotVerified"])
        );
        assert_eq!(own_retrier(&RetryPolicy::default(), &own, false), None);
    }
}
