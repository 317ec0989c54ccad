//! Computes a plan from a validated workflow, its inputs and its regions. Pure: no AWS call, no backend.
//!
//! Values that depend only on inputs and regions are evaluated now; anything that references a step (or the run
//! id) is left as "known after STEP". A `when` that depends only on inputs and regions is decided now.

use std::time::Duration;

use serde_json::{Map, Value};

use super::bounds;
use super::model::*;
use crate::workflow::expr::{Expr, Piece, Template, expr_text, template_text, to_text};
use crate::workflow::{
    ActionKind, ActionStep, ErrorMatch, Jitter, OnFailure, Ref, Scope, Step, StepKind, ValueTemplate, Workflow,
};

/// What the plan knows before the run: inputs (some may be missing, for `drflow policy`), region codes, and the
/// caller's account once preflight (or `drflow policy --account`) told it.
pub struct Known<'a> {
    pub inputs: &'a Map<String, Value>,
    pub regions: &'a Map<String, Value>,
    pub account: Option<&'a str>,
    /// Outputs of read-only steps `plan --check` ran (discovery), by step id.
    pub outputs: Option<&'a Map<String, Value>>,
}

impl Known<'_> {
    pub(super) fn output(&self, step: &str) -> Option<&Value> {
        self.outputs.and_then(|o| o.get(step))
    }
}

impl Scope for Known<'_> {
    fn value(&self, r: &Ref) -> Result<Value, String> {
        match r {
            Ref::Input(name) => self
                .inputs
                .get(name)
                .cloned()
                .ok_or_else(|| format!("input `{name}` is not given")),
            Ref::Region(name) => self
                .regions
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no region `{name}`")),
            Ref::Account { fixed: Some(a), .. } => Ok(Value::String(a.clone())),
            Ref::AccountId | Ref::Account { fixed: None, .. } => self
                .account
                .map(|a| Value::String(a.to_string()))
                .ok_or_else(|| format!("`{}` is known after preflight", r.dotted())),
            Ref::StepOutput { step, output, path } if self.output(step).is_some() => {
                let mut v = self
                    .output(step)
                    .and_then(|o| o.get(output))
                    .ok_or_else(|| format!("step `{step}` has no output `{output}`"))?;
                for key in path {
                    v = v.get(key).ok_or_else(|| format!("`{}` has no `{key}`", r.dotted()))?;
                }
                Ok(v.clone())
            }
            _ => Err(format!("`{}` is known only at run time", r.dotted())),
        }
    }
}

impl Known<'_> {
    /// `None` when every reference is known now; otherwise the steps they wait for (`preflight` for the account).
    fn pending(&self, refs: &[&Ref]) -> Option<Vec<String>> {
        let mut after: Vec<String> = Vec::new();
        let mut unknown = false;
        for r in refs {
            let waits_for = match r {
                Ref::Input(name) => {
                    unknown |= !self.inputs.contains_key(name);
                    None
                }
                Ref::Region(_) => None,
                Ref::Account { fixed: Some(_), .. } => None,
                Ref::AccountId | Ref::Account { .. } if self.account.is_some() => None,
                Ref::AccountId | Ref::Account { .. } => Some("preflight"),
                // `item`: each item of a `for_each` has its own value.
                Ref::RunId | Ref::RunStatus | Ref::RunError | Ref::RunWorkflow | Ref::Item => {
                    unknown = true;
                    None
                }
                Ref::StepOutput { step, .. } if self.output(step).is_some() => None,
                other => other.step(),
            };
            if let Some(id) = waits_for {
                unknown = true;
                if !after.iter().any(|a| a == id) {
                    after.push(id.to_string());
                }
            }
        }
        unknown.then_some(after)
    }
}

/// Computes the plan. `file` is the workflow path as the user gave it; `given` the `--input` pairs (to tell
/// given values from defaults); `account` the caller's account, if known.
pub fn compute(
    wf: &Workflow,
    file: &str,
    inputs: &Map<String, Value>,
    regions: &Map<String, Value>,
    given: &[(String, String)],
    account: Option<&str>,
) -> Plan {
    let known = Known {
        inputs,
        regions,
        account,
        outputs: None,
    };
    compute_known(wf, file, &known, given)
}

/// The same, with what `plan --check` learnt (the account, the outputs of discovery steps).
pub fn compute_known(wf: &Workflow, file: &str, known: &Known, given: &[(String, String)]) -> Plan {
    assemble(wf, file, known, given, &wf.steps)
}

/// The plan of the rest of a run: the top-level steps after step `after` (an approval step, say), then `finally`,
/// with what the run knows so far (its inputs, regions, account, and the outputs of the steps that ran). Its bounds
/// are those of the rest only.
pub fn compute_rest(wf: &Workflow, file: &str, known: &Known, after: &str) -> Plan {
    let from = wf.steps.iter().position(|s| s.id == after).map_or(0, |i| i + 1);
    let given: Vec<(String, String)> = known
        .inputs
        .iter()
        .map(|(k, v)| (k.clone(), crate::workflow::expr::to_text(v)))
        .collect();
    assemble(wf, file, known, &given, &wf.steps[from..])
}

fn assemble(wf: &Workflow, file: &str, known: &Known, given: &[(String, String)], main: &[Step]) -> Plan {
    let (inputs, regions) = (known.inputs, known.regions);
    let steps: Vec<PlannedStep> = main.iter().map(|s| step(known, wf, s, None)).collect();
    let finally: Vec<PlannedStep> = wf.finally.iter().map(|s| step(known, wf, s, None)).collect();
    let all = || steps.iter().chain(&finally);
    let max_duration = sum_opt(all().map(|s| s.max_duration));
    let max_api_calls = sum_opt(all().map(|s| s.max_api_calls));
    let mut max_api_calls_by_operation = Vec::new();
    for s in all() {
        add_operations(&mut max_api_calls_by_operation, &s.operations, Some(1));
    }
    Plan {
        format: FORMAT,
        workflow: wf.name.clone(),
        file: file.to_string(),
        inputs: wf
            .inputs
            .iter()
            .filter_map(|d| inputs.get(&d.name).map(|v| (d.name.clone(), v.clone())))
            .collect(),
        defaulted: wf
            .inputs
            .iter()
            .filter(|d| inputs.contains_key(&d.name) && !given.iter().any(|(n, _)| *n == d.name))
            .map(|d| d.name.clone())
            .collect(),
        missing: wf
            .inputs
            .iter()
            .filter(|d| !inputs.contains_key(&d.name))
            .map(|d| d.name.clone())
            .collect(),
        regions: wf
            .regions
            .iter()
            .map(|(name, _)| {
                let code = regions.get(name).and_then(Value::as_str).unwrap_or_default();
                (name.clone(), code.to_string())
            })
            .collect(),
        roles: wf.roles.iter().map(|(n, r)| (n.clone(), r.role_arn.clone())).collect(),
        steps,
        finally,
        max_duration,
        max_api_calls,
        max_api_calls_by_operation,
        checks: None,
    }
}

/// The sum, or `None` (unbounded) when one is.
fn sum_opt<T: std::iter::Sum<T>>(items: impl Iterator<Item = Option<T>>) -> Option<T> {
    items.sum()
}

/// Adds `times` × each of `from` into `into`, keeping first-seen order; `None` (unbounded) wins.
fn add_operations(into: &mut Vec<(String, Option<u64>)>, from: &[(String, Option<u64>)], times: Option<u64>) {
    for (op, n) in from {
        let n = n.zip(times).map(|(n, t)| n * t);
        match into.iter_mut().find(|(o, _)| o == op) {
            Some((_, total)) => *total = total.zip(n).map(|(a, b)| a + b),
            None => into.push((op.clone(), n)),
        }
    }
}

/// `parent_skipped`: the id of an enclosing group that will not run.
fn step(known: &Known, wf: &Workflow, s: &Step, parent_skipped: Option<&str>) -> PlannedStep {
    let when = s.when.as_ref().map(|cond| decide(known, cond, s.when_text.as_deref()));
    let skipped = match (parent_skipped, &when) {
        (Some(parent), _) => Some(format!("its group `{parent}` is skipped")),
        (None, Some(w)) if w.decision == Decision::Skip => Some(w.reason.clone()),
        _ => None,
    };
    let skip_children = skipped.as_ref().map(|_| parent_skipped.unwrap_or(&s.id));
    let mut for_each = None;
    let mut operations = Vec::new();
    let (body, worst, calls) = match &s.kind {
        StepKind::Action(a) => {
            let plan = action(known, a);
            let (worst, per_operation) = match plan.bound.polls {
                // A wait's timeout bounds the whole wait, retries included; a call's bounds each attempt.
                Some(polls) => (bounds::wait_duration(a.timeout, &a.retry), polls),
                None => (
                    bounds::call_duration(a.timeout, &a.retry, a.action.calls.len()),
                    u64::from(plan.bound.attempts),
                ),
            };
            operations = plan
                .calls
                .iter()
                .map(|c| (c.to_string(), Some(per_operation)))
                .collect();
            // A poll answered by a batched list makes that request instead of its describe, not besides it.
            let instead = plan
                .calls
                .iter()
                .filter(|c| plan.bound.polls.is_some() && crate::cloud::operations::POLL_LISTS.contains(c))
                .count();
            let calls = per_operation * (plan.calls.len() - instead) as u64;
            (Body::Action(Box::new(plan)), Some(worst), Some(calls))
        }
        StepKind::Parallel(children) => {
            let branches: Vec<PlannedStep> = children.iter().map(|c| step(known, wf, c, skip_children)).collect();
            // Branches run at once: the longest one; their calls add up.
            let worst = branches.iter().map(|b| b.max_duration).collect::<Option<Vec<_>>>();
            let worst = worst.map(|w| w.into_iter().max().unwrap_or_default());
            for b in &branches {
                add_operations(&mut operations, &b.operations, Some(1));
            }
            let calls = sum_opt(branches.iter().map(|b| b.max_api_calls));
            (Body::Parallel { branches }, worst, calls)
        }
        StepKind::Sequence(children) => {
            let steps: Vec<PlannedStep> = children.iter().map(|c| step(known, wf, c, skip_children)).collect();
            for c in &steps {
                add_operations(&mut operations, &c.operations, Some(1));
            }
            let worst = sum_opt(steps.iter().map(|c| c.max_duration));
            let calls = sum_opt(steps.iter().map(|c| c.max_api_calls));
            (Body::Sequence { steps }, worst, calls)
        }
        // One item's steps, once per wave of items that run at once; unbounded while the count is not known.
        StepKind::ForEach(fe) => {
            let steps: Vec<PlannedStep> = fe.steps.iter().map(|c| step(known, wf, c, skip_children)).collect();
            let per_item = sum_opt(steps.iter().map(|c| c.max_duration));
            let item_calls = sum_opt(steps.iter().map(|c| c.max_api_calls));
            let mut item_operations = Vec::new();
            for c in &steps {
                add_operations(&mut item_operations, &c.operations, Some(1));
            }
            let items = value(known, &fe.items);
            let count = match &items {
                Planned::Known(Value::Array(a)) => Some(a.len()),
                _ => None,
            };
            let quotas = super::quotas::of_fleet(known, wf, &fe.steps);
            let concurrency = quotas
                .iter()
                .filter(|q| q.binds)
                .map(|q| q.limit as usize)
                .fold(fe.max_concurrency, usize::min)
                .max(1);
            let waves = count.map(|n| bounds::waves(n as u64, concurrency as u64));
            let worst = per_item.zip(waves).map(|(d, w)| d * w as u32);
            let n = count.map(|n| n as u64);
            add_operations(&mut operations, &item_operations, n);
            let calls = item_calls.zip(n).map(|(c, n)| c * n);
            let learned: Vec<String> = fe
                .items
                .references()
                .iter()
                .filter_map(|r| match r {
                    Ref::StepOutput { step, .. } if known.output(step).is_some() => Some(step.clone()),
                    _ => None,
                })
                .collect();
            for_each = Some(ForEachPlan {
                items,
                max_concurrency: fe.max_concurrency,
                count,
                tolerated_failures: fe.tolerated_failures,
                tolerated_failure_percentage: fe.tolerated_failure_percentage,
                discovered_by: learned,
                quotas,
                concurrency,
                waves,
                max_item_duration: per_item,
                max_item_api_calls: item_calls,
                max_item_api_calls_by_operation: item_operations,
            });
            (Body::Sequence { steps }, worst, calls)
        }
    };
    let runs = skipped.is_none();
    PlannedStep {
        id: s.id.clone(),
        name: s.name.clone(),
        when,
        max_duration: if runs { worst } else { Some(Duration::ZERO) },
        max_api_calls: if runs { calls } else { Some(0) },
        operations: if runs { operations } else { Vec::new() },
        skipped,
        on_failure: match &s.on_failure {
            OnFailure::Abort => Route::Abort,
            OnFailure::Continue => Route::Continue,
            OnFailure::Goto(t) => Route::Goto { step: t.clone() },
        },
        body,
        for_each,
    }
}

fn decide(known: &Known, cond: &Expr, text: Option<&str>) -> When {
    let condition = text
        .map(str::to_string)
        .unwrap_or_else(|| format!("${{{{ {} }}}}", expr_text(cond)));
    if let Some(after) = known.pending(&cond.references()) {
        let why = if after.is_empty() {
            String::new()
        } else {
            format!(" ({})", known_after_text(&after))
        };
        return When {
            reason: format!("decided at run time: {condition}{why}"),
            condition,
            decision: Decision::RunTime,
        };
    }
    match cond.test(known) {
        Ok(true) => When {
            reason: format!("`when: {condition}` is true"),
            condition,
            decision: Decision::Run,
        },
        Ok(false) => When {
            reason: format!("`when: {condition}` is false"),
            condition,
            decision: Decision::Skip,
        },
        // The run would fail the step on this condition; show it rather than guess.
        Err(e) => When {
            reason: format!("decided at run time: {condition} (cannot be evaluated now: {e})"),
            condition,
            decision: Decision::RunTime,
        },
    }
}

fn action(known: &Known, a: &ActionStep) -> ActionPlan {
    let spec = a.action;
    let retry = &a.retry;
    ActionPlan {
        action: spec.name,
        kind: match spec.kind {
            ActionKind::Call => "call",
            ActionKind::Wait => "wait",
        },
        mutates: crate::actions::of(spec).mutates(),
        region: a.region.as_ref().map(|name| RegionRef {
            name: name.clone(),
            code: known
                .regions
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_string(),
        }),
        calls: spec.calls.to_vec(),
        inputs: a.with.iter().map(|(k, v)| (k.clone(), value(known, v))).collect(),
        retry: RetryBudget {
            max_attempts: retry.max_attempts,
            attempts: retry.max_attempts + 1,
            errors: retry.errors.iter().map(ErrorMatch::as_string).collect(),
            interval: retry.interval,
            backoff_rate: retry.backoff_rate,
            max_delay: retry.max_delay,
            jitter: match retry.jitter {
                Jitter::None => "none",
                Jitter::Full => "full",
            },
            max_total_delay: retry.max_total_delay(),
        },
        timeout: a.timeout,
        expires: spec.lifecycle.then(|| expiry(known, a)),
        preview: crate::actions::of(spec)
            .previews()
            .map(|what| format!("{what}: known after discovery (`drflow plan --check` lists them)")),
        poll: (spec.kind == ActionKind::Wait).then_some(PollPlan {
            interval: a.poll.interval,
            backoff_rate: a.poll.backoff_rate,
            max_interval: a.poll.max_interval,
        }),
        bound: match spec.kind {
            ActionKind::Call => ActionBound {
                attempts: bounds::call_attempts(retry, spec.calls.len()),
                polls: None,
                poll_gap: None,
                paced: false,
            },
            ActionKind::Wait => {
                let attempts = bounds::wait_attempts(retry);
                let gap = bounds::poll_gap(&a.poll, spec.paces);
                ActionBound {
                    attempts,
                    polls: Some(bounds::wait_polls(
                        bounds::wait_duration(a.timeout, retry),
                        gap,
                        attempts,
                    )),
                    poll_gap: Some(gap),
                    paced: spec.paces,
                }
            }
        },
    }
}

/// When the recovery point a step makes expires, as far as the plan knows its lifecycle.
fn expiry(known: &Known, a: &ActionStep) -> String {
    let Some((_, v)) = a.with.iter().find(|(k, _)| k == "delete_after_days") else {
        return "never: no lifecycle, AWS keeps it until someone deletes it".into();
    };
    match value(known, v) {
        Planned::Known(v) => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(days) => format!("{days} days after it is made (AWS Backup deletes it then)"),
            None => format!("`delete_after_days` is not a number of days: {v}"),
        },
        Planned::Unknown(u) => format!("delete_after_days is {}", known_after_text(&u.after)),
        other => format!("delete_after_days = {other:?}"),
    }
}

/// Resolves a `with:` value as far as inputs and regions allow.
pub fn value(known: &Known, v: &ValueTemplate) -> Planned {
    match v {
        ValueTemplate::Literal(v) => Planned::Known(v.clone()),
        ValueTemplate::Template(t) => template(known, t),
        ValueTemplate::List(items) => {
            let items: Vec<Planned> = items.iter().map(|i| value(known, i)).collect();
            if items.iter().all(|i| matches!(i, Planned::Known(_))) {
                Planned::Known(Value::Array(items.into_iter().map(into_known).collect()))
            } else {
                Planned::List(items)
            }
        }
        ValueTemplate::Map(entries) => {
            let entries: Vec<(String, Planned)> = entries.iter().map(|(k, v)| (k.clone(), value(known, v))).collect();
            if entries.iter().all(|(_, v)| matches!(v, Planned::Known(_))) {
                Planned::Known(Value::Object(
                    entries.into_iter().map(|(k, v)| (k, into_known(v))).collect(),
                ))
            } else {
                Planned::Map(entries)
            }
        }
    }
}

fn into_known(p: Planned) -> Value {
    match p {
        Planned::Known(v) => v,
        _ => Value::Null,
    }
}

fn template(known: &Known, t: &Template) -> Planned {
    let Some(after) = known.pending(&t.references()) else {
        return match t.eval(known) {
            Ok(v) => Planned::Known(v),
            Err(e) => Planned::Unknown(Unknown {
                after: Vec::new(),
                expression: template_text(t),
                pattern: format!("* ({e})"),
            }),
        };
    };
    let pattern = t
        .pieces
        .iter()
        .map(|p| match p {
            Piece::Text(s) => s.clone(),
            Piece::Expr(e) => match known.pending(&e.references()) {
                None => e.eval(known).map(|v| to_text(&v)).unwrap_or_else(|_| "*".into()),
                Some(_) => "*".into(),
            },
        })
        .collect();
    Planned::Unknown(Unknown {
        after,
        expression: template_text(t),
        pattern,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{Source, parse};
    use serde_json::json;

    fn wf(yaml: &str) -> Workflow {
        parse(
            Source::new(std::path::Path::new("t.yaml"), yaml.to_string()),
            crate::actions::catalog(),
        )
        .expect("valid")
    }

    const YAML: &str = r#"
version: 1
name: t
inputs:
  flag: {type: bool, default: false}
  name: {type: string}
regions: {a: us-east-1, b: us-west-2}
defaults:
  retry: {max_attempts: 2, interval: 1s, backoff_rate: 2.0}
steps:
  - id: one
    action: ssm.get_parameter
    region: a
    timeout: 10s
    with: {name: "/x/${{ inputs.name }}"}
  - id: group
    parallel:
      - id: left
        action: ssm.get_parameter
        region: a
        timeout: 1m
        with: {name: "/p/${{ steps.one.outputs.value }}/q"}
      - id: right
        action: drflow.echo
        timeout: 5s
        with: {value: {k: "${{ regions.b }}", v: "${{ steps.one.outputs.version }}"}}
  - id: maybe
    when: ${{ inputs.flag }}
    action: drflow.echo
    timeout: 1h
  - id: later
    when: ${{ steps.one.status == 'succeeded' && inputs.flag == false }}
    action: drflow.echo
    timeout: 1s
"#;

    fn plan(inputs: Map<String, Value>) -> Plan {
        let w = wf(YAML);
        let regions = w.bind_partial(&[], &[]).unwrap().regions;
        compute(&w, "t.yaml", &inputs, &regions, &[], None)
    }

    #[test]
    fn resolves_what_inputs_and_regions_decide() {
        let p = plan(json!({"flag": false, "name": "n"}).as_object().unwrap().clone());
        let one = p.steps[0].action().unwrap();
        assert_eq!(one.input("name"), Some(&Planned::Known(json!("/x/n"))));
        let Body::Parallel { branches } = &p.steps[1].body else {
            panic!()
        };
        let left = branches[0].action().unwrap().input("name").unwrap();
        let Planned::Unknown(u) = left else { panic!("{left:?}") };
        assert_eq!(u.after, ["one"]);
        assert_eq!(u.expression, "/p/${{ steps.one.outputs.value }}/q");
        assert_eq!(u.pattern, "/p/*/q");
        let right = branches[1].action().unwrap().input("value").unwrap();
        assert!(
            matches!(right, Planned::Map(e) if e[0] == ("k".to_string(), Planned::Known(json!("us-west-2")))),
            "{right:?}"
        );
        assert_eq!(p.steps[2].when.as_ref().unwrap().decision, Decision::Skip);
        assert_eq!(
            p.steps[2].skipped.as_deref(),
            Some("`when: ${{ inputs.flag }}` is false")
        );
        let later = p.steps[3].when.as_ref().unwrap();
        assert_eq!(later.decision, Decision::RunTime);
        assert!(later.reason.starts_with("decided at run time: "), "{}", later.reason);
    }

    #[test]
    fn bounds_the_duration() {
        let p = plan(json!({"flag": false, "name": "n"}).as_object().unwrap().clone());
        // 3 attempts × timeout + 1 s + 2 s of retry delays.
        assert_eq!(p.steps[0].max_duration, Some(Duration::from_secs(33)));
        // parallel: the longer branch, 3 × 1 m + 3 s.
        assert_eq!(p.steps[1].max_duration, Some(Duration::from_secs(183)));
        assert_eq!(p.steps[2].max_duration, Some(Duration::ZERO), "skipped");
        assert_eq!(p.steps[3].max_duration, Some(Duration::from_secs(6)));
        assert_eq!(p.max_duration, Some(Duration::from_secs(33 + 183 + 6)));
        let with_flag = plan(json!({"flag": true, "name": "n"}).as_object().unwrap().clone());
        assert_eq!(with_flag.steps[2].max_duration, Some(Duration::from_secs(3 * 3600 + 3)));
    }

    #[test]
    fn counts_api_calls_per_step_and_per_operation() {
        let p = plan(json!({"flag": false, "name": "n"}).as_object().unwrap().clone());
        // ssm.get_parameter: 3 attempts of one operation; echo calls nothing.
        assert_eq!(p.steps[0].max_api_calls, Some(3));
        assert_eq!(p.steps[1].max_api_calls, Some(3), "the branches add up");
        assert_eq!(p.steps[2].max_api_calls, Some(0), "skipped");
        assert_eq!(p.max_api_calls, Some(6));
        assert_eq!(
            p.max_api_calls_by_operation,
            [("ssm:GetParameter".to_string(), Some(6))]
        );
    }

    const FLEET: &str = r#"
version: 1
name: f
inputs:
  ids: {type: list, default: [a, b, c, d, e]}
regions: {p: us-east-1, d: us-west-2}
quotas: {backup_copies: 2}
defaults:
  retry: {max_attempts: 1, interval: 1s}
steps:
  - id: find
    action: ec2.find_instances
    region: p
    timeout: 10s
    with: {tag_key: k}
  - id: known
    for_each: ${{ inputs.ids }}
    max_concurrency: 4
    steps:
      - id: copy
        action: backup.start_copy_job
        region: p
        timeout: 10s
        with:
          recovery_point_arn: arn:aws:ec2:us-east-1::image/ami-${{ item }}
          source_vault: Default
          destination_vault: Default
          destination_region: ${{ regions.d }}
          iam_role_arn: arn:aws:iam::123456789012:role/r
      - id: wait
        action: backup.wait_copy_job
        region: p
        timeout: 1m
        poll: {interval: 30s}
        with: {job_id: "${{ steps.copy.outputs.job_id }}"}
  - id: found
    for_each: ${{ steps.find.outputs.instance_ids }}
    steps:
      - id: backup
        action: backup.start_backup_job
        region: p
        timeout: 10s
        with: {instance_id: "${{ item }}", vault: Default, iam_role_arn: "arn:aws:iam::123456789012:role/r"}
"#;

    fn fleet(outputs: Option<&Map<String, Value>>) -> Plan {
        let w = wf(FLEET);
        let b = w.bind_partial(&[], &[]).unwrap();
        let known = Known {
            inputs: &b.inputs,
            regions: &b.regions,
            account: None,
            outputs,
        };
        compute_known(&w, "f.yaml", &known, &[])
    }

    #[test]
    fn bounds_a_fleet_by_waves_of_what_quotas_allow_at_once() {
        let p = fleet(None);
        let known = &p.steps[1];
        let fe = known.for_each.as_ref().unwrap();
        assert_eq!(fe.count, Some(5));
        // The copies all go to us-west-2: `quotas: {backup_copies: 2}` binds below max_concurrency 4.
        let q = &fe.quotas[0];
        assert_eq!(
            (q.name, q.limit, q.aws_default, q.binds),
            ("backup_copies", 2, 100, true)
        );
        assert_eq!((q.per.as_str(), q.key.as_str()), ("destination_region", "us-west-2"));
        assert_eq!(q.steps, ["copy"]);
        assert_eq!(fe.concurrency, 2);
        assert_eq!(fe.waves, Some(3));
        // One item: the copy (2 attempts × 10 s + 1 s) and its wait (1 m + 1 s + 2 last looks × 30 s).
        let item = Duration::from_secs(21 + 60 + 1 + 60);
        assert_eq!(fe.max_item_duration, Some(item));
        assert_eq!(known.max_duration, Some(item * 3));
        // Calls: 2 StartCopyJob; the wait paces by size (5 s): 121 s / 5 s = 24 polls + 2 attempts, each a
        // DescribeCopyJob or (batched) a ListCopyJobs.
        assert_eq!(
            fe.max_item_api_calls_by_operation,
            [
                ("backup:StartCopyJob".to_string(), Some(2)),
                ("backup:DescribeCopyJob".to_string(), Some(26)),
                ("backup:ListCopyJobs".to_string(), Some(26))
            ]
        );
        assert_eq!(known.max_api_calls, Some(5 * 28), "every item counts");
        // Items known only after `find`: unbounded, one item's bound still shown.
        let found = &p.steps[2];
        let fe = found.for_each.as_ref().unwrap();
        assert_eq!((fe.count, fe.waves), (None, None));
        assert_eq!(found.max_duration, None);
        assert_eq!(found.max_api_calls, None);
        assert_eq!(fe.max_item_duration, Some(Duration::from_secs(21)));
        // The per-resource quota is each item's own: it does not bind.
        assert_eq!(fe.quotas[0].key, "${{ item }}");
        assert!(!fe.quotas[0].binds);
        assert_eq!(fe.concurrency, 10);
        assert_eq!(p.max_duration, None);
        assert_eq!(p.max_api_calls, None);
        let by_op: Vec<(&str, Option<u64>)> = p
            .max_api_calls_by_operation
            .iter()
            .map(|(o, n)| (o.as_str(), *n))
            .collect();
        assert!(by_op.contains(&("backup:StartCopyJob", Some(10))), "{by_op:?}");
        assert!(by_op.contains(&("backup:StartBackupJob", None)), "{by_op:?}");
    }

    #[test]
    fn discovered_items_bound_the_fleet() {
        let outputs = json!({"find": {"instance_ids": ["i-1", "i-2", "i-3"], "count": 3}});
        let p = fleet(outputs.as_object());
        let found = &p.steps[2];
        let fe = found.for_each.as_ref().unwrap();
        assert_eq!(fe.items, Planned::Known(json!(["i-1", "i-2", "i-3"])));
        assert_eq!(fe.discovered_by, ["find"]);
        assert_eq!((fe.count, fe.waves), (Some(3), Some(1)));
        assert_eq!(found.max_duration, Some(Duration::from_secs(21)));
        assert_eq!(found.max_api_calls, Some(3 * 2));
        assert!(p.max_duration.is_some());
        assert!(p.max_api_calls.is_some());
    }

    #[test]
    fn missing_inputs_become_wildcards() {
        let p = plan(json!({"flag": false}).as_object().unwrap().clone());
        assert_eq!(p.missing, ["name"]);
        assert_eq!(p.steps[0].action().unwrap().input("name").unwrap().pattern(), "/x/*");
    }

    #[test]
    fn prints_expressions_back() {
        for text in [
            "!(inputs.a == 'x') || steps.b.status != \"it's\" && true",
            "(inputs.a || inputs.b) && !(inputs.c && inputs.d)",
            "!!inputs.a || inputs.b || inputs.c == 3",
        ] {
            let e = Expr::parse(text, 0).unwrap();
            assert_eq!(expr_text(&e), text);
            assert_eq!(Expr::parse(&expr_text(&e), 0).unwrap(), e, "round trip");
        }
    }
}
