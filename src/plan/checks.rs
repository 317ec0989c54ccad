//! Preflight checks (`drflow plan --check`): read-only calls against the target account that tell, before a run,
//! whether it can work. Each action declares the checks its steps need (`ActionSpec::preflight`); this module makes
//! them:
//!
//! | check | declared as | call |
//! |---|---|---|
//! | caller identity | (any step that calls AWS) | sts:GetCallerIdentity |
//! | instance | `Preflight::Instance` | ec2:DescribeInstances in the step's region: exists, not terminated |
//! | backup vault | `Preflight::Vault` (step's region, or the region an input names) | backup:DescribeBackupVault |
//! | SSM parameter | `Preflight::Parameter` | ssm:GetParameter, ec2:DescribeImages for the age of its AMI, and at 100 versions ssm:GetParameterHistory (a label on the oldest stops writes) |
//! | template | `Preflight::Template` (relative to the workflow file) | cloudformation:ValidateTemplate |
//! | stack | `Preflight::Stack` | cloudformation:DescribeStacks |
//! | SNS topic | `Preflight::Topic` (in the region of its ARN) | sns:GetTopicAttributes |
//! | discovery step | (a `for_each`'s items known after a read-only call step: `discover`) | the step's own |
//!
//! Only Describe/Get/Validate calls are made. A check whose subject is known only at run time, or whose step
//! is skipped, is reported as skipped with the reason. A missing parameter is a note, not a failure.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::model::*;
use crate::cloud::{Cloud, CloudError, ErrorKind};
use crate::workflow::{Preflight, format_duration};

/// What one check looks at.
#[derive(Debug, Clone, PartialEq)]
enum Probe {
    Identity {
        role_account: Option<String>,
    },
    /// Who a region's role makes the calls: `None` when it could not be assumed (the reason is the check's).
    RoleIdentity {
        region: String,
        error: Option<String>,
    },
    Instance {
        id: String,
    },
    Vault {
        name: String,
    },
    Parameter {
        name: String,
    },
    Template {
        file: String,
    },
    Stack {
        name: String,
        deploy: bool,
    },
    Topic {
        arn: String,
    },
}

#[derive(Debug)]
struct Pending {
    kind: CheckKind,
    subject: String,
    region: Option<String>,
    steps: Vec<String>,
    /// What to look at, or why it cannot be looked at before the run.
    probe: Result<Probe, String>,
}

/// Runs every check the plan calls for against `cloud` (read-only calls only). `unassumed` are the regions whose
/// role could not be assumed, and why.
pub async fn run(plan: &Plan, base_dir: &Path, cloud: &Cloud, unassumed: &[(String, String)]) -> Checks {
    let mut results = Vec::new();
    let mut account = None;
    let mut pending = derive(plan);
    // One more identity per role: every account the run acts in.
    for (name, arn) in &plan.roles {
        let error = unassumed.iter().find(|(n, _)| n == name).map(|(_, e)| e.clone());
        pending.insert(
            1.min(pending.len()),
            Pending {
                kind: CheckKind::CallerIdentity,
                subject: arn.clone(),
                region: plan.region_code(name).map(str::to_string),
                steps: Vec::new(),
                probe: Ok(Probe::RoleIdentity {
                    region: name.clone(),
                    error,
                }),
            },
        );
    }
    for p in pending {
        let (status, reason) = match &p.probe {
            Err(why) => (CheckStatus::Skipped, why.clone()),
            Ok(Probe::Identity { role_account }) => {
                let region = p.region.as_deref().unwrap_or_default();
                let (status, reason, acct) = identity(cloud, region, role_account.as_deref()).await;
                account = acct;
                (status, reason)
            }
            Ok(Probe::RoleIdentity { error: Some(e), .. }) => (CheckStatus::Failed, e.clone()),
            Ok(Probe::RoleIdentity {
                region: name,
                error: None,
            }) => {
                let region = p.region.as_deref().unwrap_or_default();
                let (status, reason, _) = identity(cloud.for_region(name), region, None).await;
                (status, reason)
            }
            Ok(probe) => {
                let region = p.region.as_deref().unwrap_or_default();
                perform(cloud, region, probe, base_dir).await
            }
        };
        results.push(Check {
            check: p.kind,
            subject: p.subject,
            region: p.region,
            status,
            reason,
            steps: p.steps,
        });
    }
    results.extend(gates(plan, base_dir, cloud).await);
    Checks {
        backend: cloud.backend,
        account,
        failed: results.iter().filter(|c| c.status == CheckStatus::Failed).count(),
        results,
    }
}

/// What each step that checks something before a run (`Action::gate`) finds now, with the inputs known before the
/// run; a step that will be skipped needs nothing.
async fn gates(plan: &Plan, base_dir: &Path, cloud: &Cloud) -> Vec<Check> {
    let mut out = Vec::new();
    for s in plan.all_steps() {
        let Some(a) = s.action() else { continue };
        let (Some(region), Some(spec)) = (&a.region, crate::actions::catalog().find(a.action)) else {
            continue;
        };
        let action = crate::actions::of(spec);
        let known: crate::actions::Values = a
            .inputs
            .iter()
            .filter_map(|(k, v)| match v {
                Planned::Known(v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect();
        if !action.has_gate(&known) || s.skipped.is_some() {
            continue;
        }
        // A region whose role could not be assumed: its identity check says why; nothing else can be looked at.
        let unassumed =
            plan.roles.iter().any(|(n, _)| *n == region.name) && !cloud.roles.iter().any(|(n, _)| *n == region.name);
        if unassumed {
            out.push(Check {
                check: CheckKind::BeforeRun,
                subject: s.id.clone(),
                region: Some(region.code.clone()),
                status: CheckStatus::Skipped,
                reason: format!("the role of region `{}` could not be assumed", region.name),
                steps: vec![s.id.clone()],
            });
            continue;
        }
        let gate = crate::actions::detached::gate(action, cloud, &region.name, &region.code, base_dir, &known);
        let (status, reason) = match gate.await {
            Ok(()) => (CheckStatus::Ok, "passed".to_string()),
            Err(e) => (CheckStatus::Failed, e.to_string()),
        };
        out.push(Check {
            check: CheckKind::BeforeRun,
            subject: s.id.clone(),
            region: Some(region.code.clone()),
            status,
            reason,
            steps: vec![s.id.clone()],
        });
    }
    out
}

/// The checks the plan calls for, in step order, merged when two steps need the same one.
fn derive(plan: &Plan) -> Vec<Pending> {
    let mut out: Vec<Pending> = Vec::new();
    let all = plan.all_steps();
    let first_region = all
        .iter()
        .filter_map(|s| s.action().and_then(ActionPlan::region_code))
        .next()
        .map(str::to_string);
    if let Some(region) = first_region {
        let role_account = all
            .iter()
            .filter_map(|s| s.action())
            .flat_map(|a| a.inputs.iter())
            .filter(|(k, _)| k.ends_with("role_arn"))
            .find_map(|(_, v)| v.known_str().and_then(account_of));
        out.push(Pending {
            kind: CheckKind::CallerIdentity,
            subject: String::new(),
            region: Some(region),
            steps: Vec::new(),
            probe: Ok(Probe::Identity { role_account }),
        });
    }
    for s in all {
        let Some(a) = s.action() else { continue };
        let Some(region) = a.region_code() else { continue };
        let mut add = |kind: CheckKind, input: &str, region: Option<String>, make: &dyn Fn(String) -> Probe| {
            let Some(v) = a.input(input) else { return };
            let (subject, mut probe) = match v.known_str() {
                Some("") => (
                    String::new(),
                    Err(format!("`{input}` of step `{}` is empty: nothing to check", s.id)),
                ),
                Some(text) => (text.to_string(), Ok(make(text.to_string()))),
                None => (
                    v.pattern(),
                    Err(format!(
                        "`{input}` of step `{}` is {}",
                        s.id,
                        v.unknown_reason().unwrap_or_else(|| "not a string".into())
                    )),
                ),
            };
            let region = match region {
                Some(r) => Some(r),
                None => {
                    probe = probe.and(Err(format!(
                        "the region of `{input}` of step `{}` is not known yet",
                        s.id
                    )));
                    None
                }
            };
            if let Some(reason) = &s.skipped {
                probe = Err(format!("step `{}` is skipped: {reason}", s.id));
            }
            merge(&mut out, kind, subject, region, &s.id, probe);
        };
        let here = || Some(region.to_string());
        // What to check is the action's own declaration.
        let Some(spec) = crate::actions::catalog().find(a.action) else {
            continue;
        };
        for check in spec.preflight {
            match *check {
                Preflight::Instance { input } => add(CheckKind::Instance, input, here(), &|id| Probe::Instance { id }),
                Preflight::Vault {
                    input,
                    region_input: None,
                } => add(CheckKind::BackupVault, input, here(), &|name| Probe::Vault { name }),
                Preflight::Vault {
                    input,
                    region_input: Some(region_input),
                } => {
                    let there = a.input(region_input).and_then(Planned::known_str).map(str::to_string);
                    add(CheckKind::BackupVault, input, there, &|name| Probe::Vault { name });
                }
                Preflight::Parameter { input } => add(CheckKind::SsmParameter, input, here(), &|name| {
                    Probe::Parameter { name }
                }),
                Preflight::Template { input } => {
                    add(CheckKind::Template, input, here(), &|file| Probe::Template { file })
                }
                Preflight::Stack { input, deploy } => {
                    add(CheckKind::Stack, input, here(), &|name| Probe::Stack { name, deploy })
                }
                Preflight::Topic { input } => {
                    // A topic lives in the region its ARN names.
                    let there = a
                        .input(input)
                        .and_then(Planned::known_str)
                        .and_then(crate::cloud::arn_region)
                        .map(str::to_string)
                        .or_else(here);
                    add(CheckKind::SnsTopic, input, there, &|arn| Probe::Topic { arn })
                }
            }
        }
    }
    out
}

fn merge(
    out: &mut Vec<Pending>,
    kind: CheckKind,
    subject: String,
    region: Option<String>,
    step: &str,
    probe: Result<Probe, String>,
) {
    if let Some(p) = out
        .iter_mut()
        .find(|p| p.kind == kind && p.subject == subject && p.region == region)
    {
        p.steps.push(step.to_string());
        // A step that runs wins over one that is skipped; the first known probe wins.
        if p.probe.is_err() && probe.is_ok() {
            p.probe = probe;
        }
        return;
    }
    out.push(Pending {
        kind,
        subject,
        region,
        steps: vec![step.to_string()],
        probe,
    });
}

async fn perform(cloud: &Cloud, region: &str, probe: &Probe, base_dir: &Path) -> (CheckStatus, String) {
    use CheckStatus::Failed;
    match probe {
        Probe::Identity { role_account } => {
            let (status, reason, _) = identity(cloud, region, role_account.as_deref()).await;
            (status, reason)
        }
        Probe::RoleIdentity { .. } => unreachable!("role identities are checked in `run`"),
        Probe::Instance { id } => match cloud.ec2.describe_instances(region, std::slice::from_ref(id)).await {
            Ok(found) => match found.iter().find(|i| i.instance_id == *id) {
                None => (Failed, format!("no instance {id} in {region}")),
                Some(i) if i.state == "terminated" || i.state == "shutting-down" => {
                    (Failed, format!("the instance is {}: it cannot be backed up", i.state))
                }
                Some(i) => (CheckStatus::Ok, format!("exists, {}", i.state)),
            },
            Err(e) if is_not_found(&e) => (Failed, format!("no instance {id} in {region} ({})", e.code)),
            Err(e) => (Failed, failure(&e)),
        },
        Probe::Vault { name } => match cloud.backup.describe_backup_vault(region, name).await {
            Ok(v) => (CheckStatus::Ok, format!("exists ({})", v.arn)),
            Err(e) if is_not_found(&e) => (
                Failed,
                format!("no backup vault `{name}` in {region}: create it, or pass another vault name"),
            ),
            Err(e) => (Failed, failure(&e)),
        },
        Probe::Parameter { name } => parameter(cloud, region, name).await,
        Probe::Template { file } => {
            let path = base_dir.join(file);
            let body = match std::fs::read_to_string(&path) {
                Ok(b) => b,
                Err(e) => return (Failed, format!("cannot read {}: {e}", path.display())),
            };
            match cloud.cloudformation.validate_template(region, &body).await {
                Ok(()) => (CheckStatus::Ok, format!("{} is valid", path.display())),
                Err(e) => (Failed, format!("{} is not valid: {}", path.display(), e.message)),
            }
        }
        Probe::Topic { arn } => match cloud.sns.topic_exists(region, arn).await {
            Ok(true) => (CheckStatus::Ok, "exists".into()),
            Ok(false) => (Failed, format!("no SNS topic {arn}: create it, or pass another topic")),
            Err(e) => (Failed, failure(&e)),
        },
        Probe::Stack { name, deploy } => match cloud.cloudformation.describe_stack(region, name).await {
            Ok(None) if *deploy => (CheckStatus::Ok, "none: the run creates it".into()),
            Ok(None) => (CheckStatus::Ok, "none: there is nothing to delete".into()),
            Ok(Some(s)) if *deploy && (s.status == "ROLLBACK_COMPLETE" || s.status == "ROLLBACK_FAILED") => {
                (Failed, format!("{}: it cannot be updated; delete it first", s.status))
            }
            Ok(Some(s)) if s.is_in_progress() => (Failed, format!("{}: another operation is running", s.status)),
            Ok(Some(s)) if *deploy => (CheckStatus::Ok, format!("{}: the run updates it", s.status)),
            Ok(Some(s)) => (CheckStatus::Ok, format!("{}: the run deletes it", s.status)),
            Err(e) => (Failed, failure(&e)),
        },
    }
}

/// Who the caller is (and its account, for `account.id`); a note when the role the run passes is elsewhere.
async fn identity(cloud: &Cloud, region: &str, role_account: Option<&str>) -> (CheckStatus, String, Option<String>) {
    match cloud.sts.get_caller_identity(region).await {
        Ok(id) => {
            let (status, reason) = match role_account {
                Some(acct) if acct != id.account => (
                    CheckStatus::Note,
                    format!(
                        "{} in account {}, but the role the run passes is in account {acct}",
                        id.arn, id.account
                    ),
                ),
                _ => (CheckStatus::Ok, format!("{} (account {})", id.arn, id.account)),
            };
            (status, reason, Some(id.account))
        }
        Err(e) => (CheckStatus::Failed, failure(&e), None),
    }
}

/// The parameter's current value and, for an AMI, how old that AMI is.
async fn parameter(cloud: &Cloud, region: &str, name: &str) -> (CheckStatus, String) {
    let p = match cloud.ssm.get_parameter(region, name).await {
        Ok(Some(p)) => p,
        Ok(None) => return (CheckStatus::Note, "does not exist yet: the run creates it".into()),
        Err(e) => return (CheckStatus::Failed, failure(&e)),
    };
    let mut reason = format!("{} (version {}", p.value, p.version);
    if let Some(t) = p.last_modified {
        reason.push_str(&format!(", written {} ago", age(t)));
    }
    reason.push(')');
    // SSM keeps 100 versions; a label on the oldest makes the run's write fail (versions are numbered one by one:
    // fewer than 100 means fewer versions kept).
    if p.version >= 100 {
        match cloud.ssm.parameter_history(region, name).await {
            Ok(versions) => {
                if let (true, Some(oldest)) = (versions.len() >= 100, versions.first())
                    && !oldest.labels.is_empty()
                {
                    let version = oldest.version.to_string();
                    let labels = oldest.labels.join(" ");
                    let way_out = crate::actions::version_limit_way_out(name, region, &version, &labels);
                    return (
                        CheckStatus::Failed,
                        format!(
                            "{reason}; it has the 100 versions SSM keeps and the oldest (version {version}) carries \
                             the label {labels}: SSM would refuse the run's write (ParameterMaxVersionLimitExceeded). \
                             {way_out}"
                        ),
                    );
                }
            }
            Err(e) => return (CheckStatus::Failed, format!("{reason}; {}", failure(&e))),
        }
    }
    if !p.value.starts_with("ami-") {
        return (CheckStatus::Ok, reason);
    }
    match cloud.ec2.describe_images(region, std::slice::from_ref(&p.value)).await {
        Ok(images) => match images.iter().find(|i| i.image_id == p.value) {
            Some(i) => {
                let created = i
                    .creation_date
                    .map(|t| format!(", created {} ago", age(t)))
                    .unwrap_or_default();
                (CheckStatus::Ok, format!("{reason}; the AMI is {}{created}", i.state))
            }
            None => (
                CheckStatus::Note,
                format!("{reason}; that AMI no longer exists in {region}"),
            ),
        },
        Err(e) => (CheckStatus::Failed, format!("{reason}; {}", failure(&e))),
    }
}

fn is_not_found(e: &CloudError) -> bool {
    e.kind == ErrorKind::NotFound
}

fn failure(e: &CloudError) -> String {
    e.to_string()
}

/// How long ago a Unix time was, to the minute.
fn age(unix: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let secs = (now - unix).max(0) as u64;
    let rounded = if secs >= 3600 { secs - secs % 60 } else { secs };
    format_duration(Duration::from_secs(rounded))
}

/// The account id of an ARN such as a role's (`arn:aws:iam::123456789012:role/x`).
pub fn account_of(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(4)
        .filter(|a| crate::cloud::is_account_id(a))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::sim::{Scenario, Sim};
    use crate::workflow::{Source, parse};

    fn plan_for(yaml: &str, inputs: serde_json::Value) -> Plan {
        let wf = parse(
            Source::new(Path::new("t.yaml"), yaml.to_string()),
            crate::actions::catalog(),
        )
        .expect("valid");
        let regions = wf.bind_partial(&[], &[]).unwrap().regions;
        crate::plan::compute(&wf, "t.yaml", inputs.as_object().unwrap(), &regions, &[], None)
    }

    const YAML: &str = r#"
version: 1
name: t
inputs:
  deploy: {type: bool, default: false}
regions: {a: us-east-1, b: us-west-2}
steps:
  - id: backup
    action: backup.start_backup_job
    region: a
    with: {instance_id: i-0123456789abcdef0, vault: Default, iam_role_arn: "arn:aws:iam::123456789012:role/r"}
  - id: wait
    action: backup.wait_backup_job
    region: a
    with: {job_id: "${{ steps.backup.outputs.job_id }}"}
  - id: copy
    action: backup.start_copy_job
    region: a
    with:
      recovery_point_arn: "${{ steps.wait.outputs.recovery_point_arn }}"
      source_vault: Default
      destination_vault: Dr
      destination_region: ${{ regions.b }}
      iam_role_arn: "arn:aws:iam::123456789012:role/r"
  - id: read
    action: ssm.get_parameter
    region: b
    with: {name: "/p/${{ steps.copy.outputs.job_id }}"}
  - id: put
    action: ssm.put_parameter
    region: b
    with: {name: /dr/web/ami, value: "${{ steps.wait.outputs.image_id }}"}
  - id: stack
    when: ${{ inputs.deploy }}
    action: cloudformation.delete_stack
    region: b
    with: {stack_name: web}
"#;

    #[test]
    fn derives_checks_by_action_and_input_names() {
        let p = plan_for(YAML, serde_json::json!({"deploy": false}));
        let checks = derive(&p);
        let seen: Vec<(CheckKind, &str, Option<&str>, bool)> = checks
            .iter()
            .map(|c| (c.kind, c.subject.as_str(), c.region.as_deref(), c.probe.is_ok()))
            .collect();
        assert_eq!(
            seen,
            [
                (CheckKind::CallerIdentity, "", Some("us-east-1"), true),
                (CheckKind::Instance, "i-0123456789abcdef0", Some("us-east-1"), true),
                (CheckKind::BackupVault, "Default", Some("us-east-1"), true),
                (CheckKind::BackupVault, "Dr", Some("us-west-2"), true),
                (CheckKind::SsmParameter, "/p/*", Some("us-west-2"), false),
                (CheckKind::SsmParameter, "/dr/web/ami", Some("us-west-2"), true),
                (CheckKind::Stack, "web", Some("us-west-2"), false),
            ]
        );
        assert_eq!(checks[2].steps, ["backup", "copy"], "merged");
        assert!(checks[4].probe.as_ref().unwrap_err().contains("known after copy"));
        assert!(checks[6].probe.as_ref().unwrap_err().contains("is skipped"));
    }

    #[tokio::test(start_paused = true)]
    async fn reports_each_check_against_the_simulator() {
        let scenario = Scenario::from_yaml_str(
            "regions: [us-east-1, us-west-2]\nparameters:\n  - {name: /dr/web/ami, region: us-west-2, value: ami-0ccccccccccccccc1}\nimages:\n  - {id: ami-0ccccccccccccccc1, region: us-west-2}\n",
            None,
        )
        .unwrap();
        let sim = Sim::new(scenario);
        let p = plan_for(YAML, serde_json::json!({"deploy": true}));
        let checks = run(&p, Path::new("."), &sim.cloud(), &[]).await;
        let status: Vec<(CheckKind, CheckStatus)> = checks.results.iter().map(|c| (c.check, c.status)).collect();
        assert_eq!(
            status,
            [
                (CheckKind::CallerIdentity, CheckStatus::Ok),
                (CheckKind::Instance, CheckStatus::Ok),
                (CheckKind::BackupVault, CheckStatus::Ok),
                (CheckKind::BackupVault, CheckStatus::Failed),
                (CheckKind::SsmParameter, CheckStatus::Skipped),
                (CheckKind::SsmParameter, CheckStatus::Ok),
                (CheckKind::Stack, CheckStatus::Ok),
            ],
            "{checks:#?}"
        );
        assert_eq!(checks.failed, 1);
        assert!(checks.results[3].reason.contains("no backup vault `Dr` in us-west-2"));
        assert!(
            checks.results[5].reason.contains("the AMI is available, created"),
            "{:?}",
            checks.results[5]
        );
        assert!(sim.calls().iter().all(|c| !c.mutating), "{:?}", sim.calls());
    }
}
