//! `drflow plan --check` runs the discovery steps a `for_each` takes its items from (`ec2.find_instances`,
//! `backup.plan_resources`), so that the plan lists the fleet's items and bounds the run by their count. A step is
//! run only when it is a call whose every operation is read-only (`Action::mutates`, from `cloud::operations`),
//! outside any `for_each`, not skipped, with a `when` decided now, and with every input known before the run; each
//! step runs once, cut at its timeout, and is retried twice on throttling and other transient errors.

use std::path::Path;

use serde_json::{Map, Value};

use super::model::*;
use crate::actions::{self, RunInfo, detached};
use crate::cloud::Cloud;

/// What discovery found: one check per discovery step, and the outputs of those that ran, by step id; one check
/// per step whose action previews what it would change (`Action::preview`), and those previews, by step id.
#[derive(Debug, Default)]
pub struct Discovered {
    pub checks: Vec<Check>,
    pub outputs: Map<String, Value>,
    pub previews: std::collections::BTreeMap<String, String>,
}

/// Runs the read-only steps the plan's `for_each` items are known after.
pub async fn run(plan: &Plan, base_dir: &Path, cloud: &Cloud) -> Discovered {
    let mut found = Discovered::default();
    for (id, fleets) in wanted(plan) {
        let Some(s) = outside_fleets(plan).into_iter().find(|s| s.id == id) else {
            continue;
        };
        let region = s.action().and_then(ActionPlan::region_code).map(str::to_string);
        let (status, reason) = match runnable(s) {
            Err(why) => (CheckStatus::Skipped, why),
            Ok((a, inputs)) => match call(a, &inputs, region.as_deref().unwrap_or_default(), base_dir, cloud).await {
                Ok(outputs) => {
                    let reason = describe(&outputs);
                    found.outputs.insert(id.clone(), Value::Object(outputs));
                    (CheckStatus::Ok, reason)
                }
                Err(e) => (CheckStatus::Failed, e),
            },
        };
        found.checks.push(Check {
            check: CheckKind::Discovery,
            subject: id,
            region,
            status,
            reason,
            steps: fleets,
        });
    }
    for s in outside_fleets(plan) {
        let Some(a) = s.action() else { continue };
        let Some(spec) = actions::catalog().find(a.action) else {
            continue;
        };
        if actions::of(spec).previews().is_none() {
            continue;
        }
        let region = a.region_code().map(str::to_string);
        let (status, reason) = match known_inputs(s, a) {
            Err(why) => (CheckStatus::Skipped, why),
            Ok(inputs) => match preview(a, &inputs, region.as_deref().unwrap_or_default(), base_dir, cloud).await {
                Ok(text) => {
                    found.previews.insert(s.id.clone(), text.clone());
                    (CheckStatus::Ok, text)
                }
                Err(e) => (CheckStatus::Failed, e),
            },
        };
        found.checks.push(Check {
            check: CheckKind::Preview,
            subject: s.id.clone(),
            region,
            status,
            reason,
            steps: vec![s.id.clone()],
        });
    }
    found
}

/// What a step that changes things would change, told by its action's read-only `preview`, retried like a call.
async fn preview(
    a: &ActionPlan,
    inputs: &Map<String, Value>,
    region: &str,
    base_dir: &Path,
    cloud: &Cloud,
) -> Result<String, String> {
    let spec = actions::catalog()
        .find(a.action)
        .ok_or_else(|| format!("no action `{}`", a.action))?;
    let action = actions::of(spec);
    let run = RunInfo::default();
    let ctx = detached::ctx(cloud, region, "drflow-plan-check", base_dir, &run);
    detached::retried(a.timeout, || async { action.preview(&ctx, inputs).await.transpose() })
        .await?
        .ok_or_else(|| format!("`{}` cannot tell what it would change", a.action))
}

/// The steps `for_each` items wait for, in order, each with the fleets that wait for it.
fn wanted(plan: &Plan) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for s in plan.all_steps() {
        let Some(Planned::Unknown(u)) = s.for_each.as_ref().map(|fe| &fe.items) else {
            continue;
        };
        for after in u.after.iter().filter(|a| *a != "preflight") {
            match out.iter_mut().find(|(id, _)| id == after) {
                Some((_, fleets)) => fleets.push(s.id.clone()),
                None => out.push((after.clone(), vec![s.id.clone()])),
            }
        }
    }
    out
}

/// Steps that run once per run: not inside a `for_each`.
fn outside_fleets(plan: &Plan) -> Vec<&PlannedStep> {
    fn walk<'a>(list: &'a [PlannedStep], out: &mut Vec<&'a PlannedStep>) {
        for s in list {
            if s.for_each.is_some() {
                continue;
            }
            out.push(s);
            match &s.body {
                Body::Parallel { branches: c } | Body::Sequence { steps: c } => walk(c, out),
                Body::Action(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&plan.steps, &mut out);
    walk(&plan.finally, &mut out);
    out
}

/// The step's action and inputs, when `plan --check` may run it; else why not.
fn runnable(s: &PlannedStep) -> Result<(&ActionPlan, Map<String, Value>), String> {
    if let Some(reason) = &s.skipped {
        return Err(format!("step `{}` is skipped: {reason}", s.id));
    }
    if let Some(w) = s.when.as_ref().filter(|w| w.decision == Decision::RunTime) {
        return Err(format!("step `{}` runs or not at run time: {}", s.id, w.reason));
    }
    let Some(a) = s.action() else {
        return Err(format!("`{}` is not an action step", s.id));
    };
    if a.kind != "call" || a.mutates {
        return Err(format!(
            "step `{}` ({}) is not a read-only call: only the run makes it",
            s.id, a.action
        ));
    }
    Ok((a, known_inputs(s, a)?))
}

/// The step's inputs, when all are known before the run and it is not skipped; else why not.
fn known_inputs(s: &PlannedStep, a: &ActionPlan) -> Result<Map<String, Value>, String> {
    if let Some(reason) = &s.skipped {
        return Err(format!("step `{}` is skipped: {reason}", s.id));
    }
    if let Some(w) = s.when.as_ref().filter(|w| w.decision == Decision::RunTime) {
        return Err(format!("step `{}` runs or not at run time: {}", s.id, w.reason));
    }
    let mut inputs = Map::new();
    for (name, v) in &a.inputs {
        match v {
            Planned::Known(v) => {
                inputs.insert(name.clone(), v.clone());
            }
            other => {
                let why = other.unknown_reason().unwrap_or_default();
                return Err(format!("input `{name}` of step `{}` is {why}", s.id));
            }
        }
    }
    Ok(inputs)
}

/// One run of the step, as the engine would call it, retried on transient failures.
async fn call(
    a: &ActionPlan,
    inputs: &Map<String, Value>,
    region: &str,
    base_dir: &Path,
    cloud: &Cloud,
) -> Result<Map<String, Value>, String> {
    let spec = actions::catalog()
        .find(a.action)
        .ok_or_else(|| format!("no action `{}`", a.action))?;
    let action = actions::of(spec);
    // Guarded again here: only what changes nothing runs before the run.
    if action.mutates() {
        return Err(format!("`{}` changes things: only the run calls it", a.action));
    }
    let run = RunInfo::default();
    let ctx = detached::ctx(cloud, region, "drflow-plan-check", base_dir, &run);
    detached::retried(a.timeout, || action.call(&ctx, inputs)).await
}

/// "instance_ids: 3 (i-1, i-2, i-3)": the lists among the outputs, keys capped; else the outputs.
fn describe(outputs: &Map<String, Value>) -> String {
    let lists: Vec<String> = outputs
        .iter()
        .filter_map(|(name, v)| {
            let items = v.as_array()?;
            let keys: Vec<String> = items.iter().map(crate::workflow::expr::to_text).collect();
            Some(format!(
                "{name}: {} ({})",
                items.len(),
                super::render_text::capped(&keys, super::render_text::KEYS_SHOWN)
            ))
        })
        .collect();
    if lists.is_empty() {
        Value::Object(outputs.clone()).to_string()
    } else {
        lists.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::sim::{Scenario, Sim};
    use crate::workflow::{Source, parse};

    const YAML: &str = r#"
version: 1
name: t
regions: {a: us-east-1}
steps:
  - id: find
    action: ec2.find_instances
    region: a
    with: {tag_key: team, tag_value: web}
  - id: again
    action: ec2.find_instances
    region: a
    with: {instance_ids: "${{ steps.find.outputs.instance_ids }}"}
  - id: backup
    action: backup.start_backup_job
    region: a
    with: {instance_id: i-0aaaaaaaaaaaaaaa1, vault: Default, iam_role_arn: "arn:aws:iam::123456789012:role/r"}
  - id: fleet
    for_each: ${{ steps.find.outputs.instance_ids }}
    steps:
      - {id: hello, action: drflow.echo, with: {value: "${{ item }}"}}
  - id: second
    for_each: ${{ steps.again.outputs.instance_ids }}
    steps:
      - {id: hi, action: drflow.echo, with: {value: "${{ item }}"}}
"#;

    fn plan() -> Plan {
        let wf = parse(
            Source::new(Path::new("t.yaml"), YAML.to_string()),
            crate::actions::catalog(),
        )
        .expect("valid");
        let b = wf.bind_partial(&[], &[]).unwrap();
        crate::plan::compute(&wf, "t.yaml", &b.inputs, &b.regions, &[], None)
    }

    #[tokio::test(start_paused = true)]
    async fn runs_the_read_only_steps_fleets_wait_for_and_nothing_else() {
        let mut y = String::from("default_world: false\nregions: [us-east-1]\ninstances:\n");
        for i in 1..=12 {
            y.push_str(&format!(
                "  - {{id: i-0aaaaaaaaaaaaa{i:03}, region: us-east-1, tags: {{team: web}}}}\n"
            ));
        }
        y.push_str("  - {id: i-0bbbbbbbbbbbbbbb1, region: us-east-1, tags: {team: db}}\n");
        let sim = Sim::new(Scenario::from_yaml_str(&y, None).unwrap());
        let found = run(&plan(), Path::new("."), &sim.cloud()).await;
        let seen: Vec<(&str, CheckStatus, &[String])> = found
            .checks
            .iter()
            .map(|c| (c.subject.as_str(), c.status, c.steps.as_slice()))
            .collect();
        assert_eq!(
            seen,
            [
                ("find", CheckStatus::Ok, &["fleet".to_string()][..]),
                ("again", CheckStatus::Skipped, &["second".to_string()][..]),
            ],
            "{found:#?}"
        );
        let ids = found.outputs["find"]["instance_ids"].as_array().unwrap();
        assert_eq!(ids.len(), 12, "the web instances only");
        let reason = &found.checks[0].reason;
        assert!(
            reason.starts_with("instance_ids: 12 (i-0aaaaaaaaaaaaa001, "),
            "{reason}"
        );
        assert!(reason.ends_with("i-0aaaaaaaaaaaaa010 and 2 more)"), "{reason}");
        assert!(
            found.checks[1].reason.contains("is known after find"),
            "{}",
            found.checks[1].reason
        );
        assert!(!found.outputs.contains_key("backup"));
        assert!(!sim.calls().is_empty());
        assert!(sim.calls().iter().all(|c| !c.mutating), "{:?}", sim.calls());
        // With what discovery found, the fleet's items are known.
        let b = Map::new();
        let regions = serde_json::json!({"a": "us-east-1"});
        let wf = parse(
            Source::new(Path::new("t.yaml"), YAML.to_string()),
            crate::actions::catalog(),
        )
        .unwrap();
        let known = crate::plan::Known {
            inputs: &b,
            regions: regions.as_object().unwrap(),
            account: None,
            outputs: Some(&found.outputs),
        };
        let p = crate::plan::compute_known(&wf, "t.yaml", &known, &[]);
        let fe = p.steps[3].for_each.as_ref().unwrap();
        assert_eq!(
            (fe.count, fe.discovered_by.as_slice()),
            (Some(12), &["find".to_string()][..])
        );
    }

    #[test]
    fn never_runs_a_step_that_changes_things() {
        let p = plan();
        let backup = p.steps.iter().find(|s| s.id == "backup").unwrap();
        let why = runnable(backup).unwrap_err();
        assert!(why.contains("is not a read-only call"), "{why}");
        assert!(runnable(&p.steps[0]).is_ok());
    }
}
