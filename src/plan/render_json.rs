//! The plan as a stable JSON document, `drflow plan --output json`.
//!
//! # Schema, format `drflow-plan/1`
//!
//! Durations are integers in milliseconds (fields ending in `_ms`). Objects keep the field order below; maps
//! of inputs keep the workflow's order. New fields may be added; a field is never removed or changed in
//! meaning without a new `format`.
//!
//! ```text
//! Plan {
//!   format: "drflow-plan/1"
//!   workflow: string                      the workflow's name
//!   file: string                          the workflow file as given
//!   inputs: {NAME: any}                   every input after defaults
//!   regions: {NAME: string}               region codes after --region overrides
//!   steps: [Step]                         in execution order
//!   finally: [Step]
//!   max_duration_ms: int | null           upper bound of the run: sum of the steps' max_duration_ms; null:
//!                                         unbounded (a for_each whose items are known only at run time)
//!   max_api_calls: int | null             upper bound of its AWS API calls (null as max_duration_ms)
//!   max_api_calls_by_operation: {"service:Operation": int | null}
//!   checks: null | Checks                 only with --check
//! }
//! Step {
//!   id: string
//!   name: string | null
//!   when: null | {condition: string, decision: "run" | "skip" | "run_time", reason: string}
//!   skipped: string | null                why the step will not run (its `when`, or its group's)
//!   on_failure: {route: "abort"} | {route: "continue"} | {route: "goto", step: string}
//!   type: "action" | "parallel" | "sequence"
//!   -- type "action":
//!   action: string                        e.g. "backup.start_backup_job"
//!   kind: "call" | "wait"
//!   mutates: bool                         whether the action changes anything in the account
//!   region: null | {name: string, code: string}
//!   calls: [string]                       AWS API calls it may make, "service:Operation"
//!   inputs: {NAME: Value}                 the step's `with:`, resolved as far as possible
//!   retry: {max_attempts: int, attempts: int, errors: [string], interval_ms: int, backoff_rate: number,
//!           max_delay_ms: int | null, jitter: "none" | "full", max_total_delay_ms: int}
//!   timeout_ms: int                       a call's per attempt; a wait's for the whole wait
//!   poll: null | {interval_ms: int, backoff_rate: number, max_interval_ms: int}     waits only
//!   expires: string                       (absent unless the step makes a recovery point) when it expires
//!   preview: string                       (absent unless the action can tell it read-only, e.g.
//!                                         ec2.prune_images) what the step would change: what `plan --check`
//!                                         found, else "... known after discovery"
//!   bound: {attempts: int, polls: int | null, poll_gap_ms: int | null, paced: bool}
//!                                         what the bounds count: a call's (max_attempts + 1) × operations
//!                                         attempts (1 without retries); a wait's max_attempts + 1 attempts, its
//!                                         polls at most, the shortest gap between polls assumed (the poll
//!                                         interval; 5 s when `paced` by the job's progress or size)
//! for_each group (type "sequence" with): for_each: {items: Value, max_concurrency: int, count: int | null,
//!     tolerated_failures: int | null, tolerated_failure_percentage: number | null,
//!     discovered_by: [string]             discovery steps `plan --check` ran to learn the items
//!     quotas: [{name: string, what: string, limit: int, aws_default: int, per: string, key: string,
//!               binds: bool, steps: [string]}]      AWS quotas its jobs count against (limit: after the
//!                                         workflow's `quotas:`); binds: the items share the key
//!     concurrency: int                    items at once: min(max_concurrency, limits of quotas that bind)
//!     waves: int | null                   ceil(count / concurrency); null while the count is unknown
//!     max_item_duration_ms: int | null, max_item_api_calls: int | null,
//!     max_item_api_calls_by_operation: {"service:Operation": int | null}}       one item's bounds
//!   -- type "parallel":
//!   branches: [Step]
//!   -- type "sequence":
//!   steps: [Step]
//!   --
//!   max_duration_ms: int | null           call: bound.attempts × timeout_ms + its retry delays (runs of at
//!                                         most max_attempts failures in a row); wait: timeout_ms +
//!                                         max_total_delay_ms + bound.attempts × min(30 s, timeout_ms); parallel:
//!                                         the longest branch; sequence: the sum; for_each: waves ×
//!                                         max_item_duration_ms; 0 when skipped; null: unbounded (items unknown)
//!   max_api_calls: int | null             call: bound.attempts × len(calls); wait: bound.polls × len(calls);
//!                                         parallel and sequence: the sum; for_each: count × one item's
//! }
//! Value =                                 exactly one of:
//!   {value: any}                          known now (from inputs, regions or literals)
//!   {known_after: [string], expression: string}
//!                                         known at run time, after these steps ([] = when the run starts);
//!                                         expression is the value as written, with ${{ }}
//!   {map: {KEY: Value}}                   a map with some entries known only at run time
//!   {list: [Value]}                       a list with some items known only at run time
//! Checks {
//!   backend: "aws" | "sim"
//!   failed: int                           how many results are "failed"
//!   account: string                       (when the caller identity check found it) the caller's account
//!   results: [{check: "caller_identity" | "instance" | "backup_vault" | "ssm_parameter" | "template" | "stack"
//!              | "sns_topic" | "discovery" | "preview",
//!              subject: string, region: string | null, status: "ok" | "note" | "failed" | "skipped",
//!              reason: string, steps: [string]}]
//! }
//! ```

use super::model::Plan;

/// The plan as pretty-printed JSON, ending with a newline.
pub fn render(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).expect("a plan is JSON");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::*;
    use serde_json::{Value, json};
    use std::time::Duration;

    #[test]
    fn values_and_steps_have_the_documented_shape() {
        let step = PlannedStep {
            id: "a".into(),
            name: None,
            when: None,
            skipped: None,
            on_failure: Route::Goto { step: "z".into() },
            body: Body::Parallel { branches: vec![] },
            for_each: None,
            max_duration: Some(Duration::from_millis(1500)),
            max_api_calls: None,
            operations: vec![],
        };
        let plan = Plan {
            format: FORMAT,
            workflow: "w".into(),
            file: "w.yaml".into(),
            inputs: vec![("b".into(), json!(1)), ("a".into(), json!("x"))],
            defaulted: vec![],
            missing: vec![],
            regions: vec![],
            roles: vec![],
            steps: vec![step],
            finally: vec![],
            max_duration: Some(Duration::from_millis(1500)),
            max_api_calls: None,
            max_api_calls_by_operation: vec![("ec2:DescribeImages".into(), None)],
            checks: None,
        };
        let v: Value = serde_json::from_str(&render(&plan)).unwrap();
        assert_eq!(v["format"], "drflow-plan/1");
        assert_eq!(v["steps"][0]["type"], "parallel");
        assert_eq!(v["steps"][0]["on_failure"], json!({"route": "goto", "step": "z"}));
        assert_eq!(v["steps"][0]["max_duration_ms"], 1500);
        assert_eq!(v["steps"][0]["max_api_calls"], Value::Null, "unbounded");
        assert_eq!(v["max_api_calls_by_operation"], json!({"ec2:DescribeImages": null}));
        assert_eq!(v["checks"], Value::Null);
        let text = render(&plan);
        assert!(
            text.find("\"b\"").unwrap() < text.find("\"a\"").unwrap(),
            "input order kept"
        );
        let values = vec![
            ("k".to_string(), Planned::Known(json!("v"))),
            (
                "u".to_string(),
                Planned::Unknown(Unknown {
                    after: vec!["s".into()],
                    expression: "${{ steps.s.outputs.x }}".into(),
                    pattern: "*".into(),
                }),
            ),
        ];
        assert_eq!(
            serde_json::to_value(Planned::Map(values)).unwrap(),
            json!({"map": {"k": {"value": "v"}, "u": {"known_after": ["s"], "expression": "${{ steps.s.outputs.x }}"}}})
        );
    }
}
