//! The least-privilege IAM policy a run needs (`drflow policy`).
//!
//! Actions come from each step's action declaration (`calls` and `extra_iam`), for every step that will or may run,
//! `finally` included. Resources are scoped to the ARNs known from the inputs and regions wherever the IAM action
//! supports resource-level permissions; a value known only at run time (or an input not given) becomes `*` in that
//! part of the ARN. Actions that only work on `*` (Describe* of jobs, instances and images) get `*`. Actions with
//! the same resources and condition share one statement, named by its services and resource type.

use serde::Serialize;

use super::model::{ActionPlan, Plan, Planned};
use crate::actions;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    #[serde(rename = "Version")]
    pub version: &'static str,
    #[serde(rename = "Statement")]
    pub statement: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    #[serde(rename = "Sid")]
    pub sid: String,
    #[serde(rename = "Effect")]
    pub effect: &'static str,
    #[serde(rename = "Principal", skip_serializing_if = "Option::is_none")]
    pub principal: Option<serde_json::Value>,
    #[serde(rename = "Action")]
    pub action: Vec<String>,
    #[serde(rename = "Resource", skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<String>,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    pub condition: Option<serde_json::Value>,
}

/// The policy, and what the operator should know about how it was made (printed to stderr).
#[derive(Debug)]
pub struct Policy {
    pub document: Document,
    pub notes: Vec<String>,
}

impl Policy {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.document).expect("a policy is JSON");
        s.push('\n');
        s
    }
}

/// A condition on one action: `StringEquals: {key: value}`.
type Condition = Option<(&'static str, String)>;

/// Builds the policy for a plan. `account` is `--account`; the role ARN input's account wins when present (and
/// must agree with `--account` if both are given).
pub fn build(plan: &Plan, account: Option<&str>) -> Result<Policy, String> {
    let account = account_id(plan, account)?;
    build_for(plan, account, &|_| true, &[])
}

/// One account's (or role's) share of a run's permissions.
#[derive(Debug)]
pub struct AccountPolicy {
    /// `None` for the caller's own credentials, else the role a region assumes.
    pub role_arn: Option<String>,
    /// The account, when known.
    pub account: Option<String>,
    /// The region names whose calls use these credentials.
    pub regions: Vec<String>,
    pub policy: Policy,
    /// For a role: who may assume it (the caller's account, with the external id when one is set).
    pub trust: Option<Document>,
}

/// The policies of a run that acts in several accounts: the caller's (its regions' steps, and sts:AssumeRole on each
/// role), then each role's (its region's steps) with the trust policy the role needs.
pub fn build_accounts(
    plan: &Plan,
    account: Option<&str>,
    wf_roles: &[(String, crate::workflow::RegionRole)],
) -> Result<Vec<AccountPolicy>, String> {
    let caller = account_id(plan, account)?;
    let in_role = |name: &str| wf_roles.iter().any(|(n, _)| n == name);
    let roles: Vec<String> = wf_roles.iter().map(|(_, r)| r.role_arn.clone()).collect();
    let assume: Vec<(&str, Vec<String>)> = vec![("sts:AssumeRole", roles)];
    let mut out = vec![AccountPolicy {
        role_arn: None,
        account: caller.clone().ok(),
        regions: plan
            .regions
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| !in_role(n))
            .collect(),
        policy: build_for(plan, caller.clone(), &|r| r.is_none_or(|r| !in_role(r)), &assume)?,
        trust: None,
    }];
    for (name, role) in wf_roles {
        // A copy into this account's vault is checked before the run with this role: it reads the vault's policy.
        let vaults: Vec<String> = plan
            .active_actions()
            .into_iter()
            .filter(|(_, a)| a.input("destination_account").and_then(Planned::known_str) == Some(role.account.as_str()))
            .map(|(_, a)| {
                let input = |n: &str| a.input(n).map(Planned::pattern).unwrap_or_else(|| "*".into());
                format!(
                    "arn:aws:backup:{}:{}:backup-vault:{}",
                    input("destination_region"),
                    role.account,
                    input("destination_vault")
                )
            })
            .collect();
        let reads: Vec<(&str, Vec<String>)> = if vaults.is_empty() {
            vec![]
        } else {
            vec![("backup:GetBackupVaultAccessPolicy", vaults)]
        };
        let policy = build_for(plan, Ok(role.account.clone()), &|r| r == Some(name.as_str()), &reads)?;
        let principal = match &caller {
            Ok(a) => format!("arn:aws:iam::{a}:root"),
            Err(_) => "arn:aws:iam::CALLER_ACCOUNT_ID:root".to_string(),
        };
        let condition = role
            .external_id
            .as_ref()
            .map(|id| serde_json::json!({"StringEquals": {"sts:ExternalId": id}}));
        out.push(AccountPolicy {
            role_arn: Some(role.role_arn.clone()),
            account: Some(role.account.clone()),
            regions: vec![name.clone()],
            policy,
            trust: Some(Document {
                version: "2012-10-17",
                statement: vec![Statement {
                    sid: "DrflowAssumesThisRole".into(),
                    effect: "Allow",
                    principal: Some(serde_json::json!({"AWS": principal})),
                    action: vec!["sts:AssumeRole".into()],
                    resource: Vec::new(),
                    condition,
                }],
            }),
        });
    }
    Ok(out)
}

/// The policy for the steps whose region name `mine` accepts (`None`: a step that calls no region), plus the
/// `extra` grants (IAM action, resources).
fn build_for(
    plan: &Plan,
    account: Result<String, String>,
    mine: &dyn Fn(Option<&str>) -> bool,
    extra: &[(&str, Vec<String>)],
) -> Result<Policy, String> {
    let mut notes = Vec::new();
    for m in &plan.missing {
        notes.push(format!("input `{m}` is not given: the ARNs that depend on it use `*`"));
    }
    for s in plan.all_steps() {
        if let (Some(reason), Some(_)) = (&s.skipped, s.action()) {
            notes.push(format!("step `{}` is left out: {reason}", s.id));
        }
    }
    // (IAM action, condition) → resources, in the order first needed.
    let mut grants: Vec<((String, Condition), Vec<String>)> = Vec::new();
    for (action, resources) in extra {
        grants.push(((action.to_string(), None), resources.clone()));
    }
    for (_, a) in plan.active_actions() {
        if !mine(a.region.as_ref().map(|r| r.name.as_str())) {
            continue;
        }
        let spec = actions::catalog()
            .find(a.action)
            .ok_or_else(|| format!("unknown action `{}`", a.action))?;
        for iam in spec.calls.iter().chain(spec.extra_iam).chain(spec.gate_calls) {
            let (resources, condition) = resources_for(iam, a, &account)?;
            // A grant on nothing (e.g. a notification whose topic is not given: the step cannot run) is left out.
            if resources.is_empty() {
                continue;
            }
            let key = (iam.to_string(), condition);
            let slot = match grants.iter().position(|(k, _)| *k == key) {
                Some(i) => &mut grants[i].1,
                None => {
                    grants.push((key, Vec::new()));
                    &mut grants.last_mut().expect("just pushed").1
                }
            };
            for r in resources {
                if !slot.contains(&r) {
                    slot.push(r);
                }
            }
        }
    }
    // Actions with the same resources and condition share a statement.
    let mut groups: Vec<(Vec<String>, Condition, Vec<String>)> = Vec::new();
    for ((action, condition), mut resources) in grants {
        resources.sort();
        if resources.iter().any(|r| r == "*") {
            resources = vec!["*".to_string()];
        }
        match groups.iter_mut().find(|(r, c, _)| *r == resources && *c == condition) {
            Some(g) => g.2.push(action),
            None => groups.push((resources, condition, vec![action])),
        }
    }
    let mut statement: Vec<Statement> = Vec::new();
    for (resources, condition, mut actions) in groups {
        actions.sort();
        actions.dedup();
        let mut sid = sid(&actions, &resources);
        let base = sid.clone();
        let mut n = 2;
        while statement.iter().any(|s| s.sid == sid) {
            sid = format!("{base}{n}");
            n += 1;
        }
        statement.push(Statement {
            sid,
            effect: "Allow",
            principal: None,
            action: actions,
            resource: resources,
            condition: condition.map(|(key, value)| serde_json::json!({"StringEquals": {key: value}})),
        });
    }
    Ok(Policy {
        document: Document {
            version: "2012-10-17",
            statement,
        },
        notes,
    })
}

/// The account of the role ARN input, else `--account`; `*`-free: an error when neither is known.
fn account_id(plan: &Plan, given: Option<&str>) -> Result<Result<String, String>, String> {
    if let Some(a) = given
        && !crate::cloud::is_account_id(a)
    {
        return Err(format!("--account {a}: an account id is 12 digits"));
    }
    let from_role = plan
        .active_actions()
        .into_iter()
        .flat_map(|(_, a)| a.inputs.iter())
        .filter(|(k, _)| k.ends_with("role_arn"))
        .find_map(|(k, v)| v.known_str().and_then(super::checks::account_of).map(|acct| (k, acct)));
    match (from_role, given) {
        (Some((input, acct)), Some(g)) if acct != g => Err(format!(
            "--account {g} differs from the account of input `{input}` ({acct})"
        )),
        (Some((_, acct)), _) => Ok(Ok(acct)),
        (None, Some(g)) => Ok(Ok(g.to_string())),
        (None, None) => Ok(Err(
            "the policy needs the account id: pass --account ID (no role ARN input tells it)".to_string(),
        )),
    }
}

/// Resources (and a condition) for one IAM action of one step.
fn resources_for(
    iam: &str,
    a: &ActionPlan,
    account: &Result<String, String>,
) -> Result<(Vec<String>, Condition), String> {
    let region = a.region_code().unwrap_or("*").to_string();
    let input = |name: &str| a.input(name).map(Planned::pattern).unwrap_or_else(|| "*".into());
    let acct = || account.clone();
    let ec2 = |r: &str, kind: &str| -> Result<String, String> { Ok(format!("arn:aws:ec2:{r}:{}:{kind}", acct()?)) };
    let images = |regions: &[String]| -> Vec<String> {
        regions
            .iter()
            .flat_map(|r| {
                [
                    format!("arn:aws:ec2:{r}::image/*"),
                    format!("arn:aws:ec2:{r}::snapshot/*"),
                ]
            })
            .collect()
    };
    let parameter = |r: &str, name: &str| -> Result<String, String> {
        Ok(format!(
            "arn:aws:ssm:{r}:{}:parameter/{}",
            acct()?,
            name.strip_prefix('/').unwrap_or(name)
        ))
    };
    // Regions whose images the step creates or copies: its own, and a source or destination region.
    let mut image_regions = vec![region.clone()];
    for other in ["source_region", "destination_region"] {
        if a.input(other).is_some() {
            let r = input(other);
            if !image_regions.contains(&r) {
                image_regions.push(r);
            }
        }
    }
    let service = a.action.split('.').next().unwrap_or_default();
    let none: Condition = None;
    Ok(match iam {
        "backup:StartBackupJob" | "backup:DescribeBackupVault" => (
            vec![format!(
                "arn:aws:backup:{region}:{}:backup-vault:{}",
                acct()?,
                input("vault")
            )],
            none,
        ),
        // A vault's recovery points (IAM resource type backupVault): the step's `vault`, or its DR vault.
        "backup:ListRecoveryPointsByBackupVault" => {
            let (r, vault) = match a.input("destination_vault") {
                Some(_) => (input("destination_region"), input("destination_vault")),
                None => (region.clone(), input("vault")),
            };
            (
                vec![format!("arn:aws:backup:{r}:{}:backup-vault:{vault}", acct()?)],
                none,
            )
        }
        // For EC2 the recovery point is the AMI: `arn:aws:ec2:REGION::image/ami-...`.
        "backup:StartCopyJob" => (
            vec![
                format!("arn:aws:backup:{region}:{}:recovery-point:*", acct()?),
                format!("arn:aws:ec2:{region}::image/*"),
            ],
            none,
        ),
        // A plan's selections (IAM resource type backupPlan); a step given no plan reads none.
        "backup:ListBackupSelections" | "backup:GetBackupSelection" => match a.input("backup_plan_id") {
            Some(p) if !p.pattern().is_empty() => (
                vec![format!(
                    "arn:aws:backup:{region}:{}:backup-plan:{}",
                    acct()?,
                    p.pattern()
                )],
                none,
            ),
            _ => (vec![], none),
        },
        // "No permissions are required to perform this operation" (STS API reference).
        "sts:GetCallerIdentity" => (vec![], none),
        "iam:PassRole" => {
            let role = a
                .inputs
                .iter()
                .find(|(k, _)| k.ends_with("role_arn"))
                .map(|(_, v)| v.pattern())
                .filter(|p| p.starts_with("arn:"));
            let role = match role {
                Some(r) => r,
                None => format!("arn:aws:iam::{}:role/*", acct()?),
            };
            (
                vec![role],
                Some(("iam:PassedToService", format!("{service}.amazonaws.com"))),
            )
        }
        "ec2:CreateImage" => {
            let mut r = vec![ec2(&region, &format!("instance/{}", input("instance_id")))?];
            r.extend(images(std::slice::from_ref(&region)));
            (r, none)
        }
        "ec2:CopyImage" => (images(&image_regions), none),
        // Sharing an image and its snapshots with another account (ModifyImageAttribute, ModifySnapshotAttribute).
        "ec2:ModifyImageAttribute" | "ec2:ModifySnapshotAttribute" => (images(std::slice::from_ref(&region)), none),
        // A copy encrypted with a key of its region and account: only a step given a key needs any KMS permission
        // (IAM names keys by id: an alias gives `key/*`).
        s if s.starts_with("kms:") => match a.input("kms_key_id") {
            Some(k) => {
                let key = k.pattern();
                let key = match key.strip_prefix("arn:") {
                    Some(_) if key.contains(":key/") => key,
                    _ if !key.is_empty() && !key.contains('/') && !key.contains(':') => {
                        format!("arn:aws:kms:{region}:{}:key/{key}", acct()?)
                    }
                    _ => format!("arn:aws:kms:{region}:{}:key/*", acct()?),
                };
                (vec![key], none)
            }
            None => (vec![], none),
        },
        // Checks before a copy into another account's vault: that vault's policy is read with the DR account's
        // credentials; the organization's settings are read by the caller.
        "backup:GetBackupVaultAccessPolicy" => (vec![], none),
        "backup:DescribeGlobalSettings" => match a.input("destination_account") {
            Some(_) => (vec!["*".to_string()], none),
            None => (vec![], none),
        },
        "sns:Publish" | "sns:GetTopicAttributes" => {
            let topic = input("topic_arn");
            (if topic.is_empty() { vec![] } else { vec![topic] }, none)
        }
        "ec2:CreateTags" if service == "cloudformation" => {
            (vec![ec2(&region, "instance/*")?, ec2(&region, "volume/*")?], none)
        }
        "ec2:CreateTags" => (images(&image_regions), none),
        "ec2:RunInstances" => {
            let mut r = vec![format!("arn:aws:ec2:{region}::image/*")];
            for kind in [
                "instance",
                "network-interface",
                "security-group",
                "subnet",
                "volume",
                "key-pair",
            ] {
                r.push(ec2(&region, &format!("{kind}/*"))?);
            }
            (r, none)
        }
        "ec2:TerminateInstances" => (vec![ec2(&region, "instance/*")?], none),
        // CloudFormation resolves `{{resolve:ssm:NAME}}` with the caller's permissions: the parameters the
        // stack is given by name (values that are parameter paths), else any parameter of the region.
        "ssm:GetParameters" if service == "cloudformation" => {
            let mut names: Vec<String> = match a.input("parameters") {
                Some(Planned::Known(serde_json::Value::Object(m))) => m
                    .values()
                    .filter_map(|v| v.as_str())
                    .filter(|s| s.starts_with('/'))
                    .map(str::to_string)
                    .collect(),
                Some(Planned::Map(entries)) => entries
                    .iter()
                    .map(|(_, v)| v.pattern())
                    .filter(|s| s.starts_with('/'))
                    .collect(),
                _ => Vec::new(),
            };
            if names.is_empty() {
                names.push("*".into());
            }
            (
                names.iter().map(|n| parameter(&region, n)).collect::<Result<_, _>>()?,
                none,
            )
        }
        s if s.starts_with("ssm:") && a.input("name").is_some() => (vec![parameter(&region, &input("name"))?], none),
        // `ec2.prune_images` reads the parameters it must not prune the AMI of: those of its list, none without.
        "ssm:GetParameter" if service == "ec2" => {
            let names: Vec<String> = match a.input("parameters") {
                Some(Planned::Known(serde_json::Value::Array(items))) => {
                    items.iter().map(|v| v.as_str().unwrap_or("*").to_string()).collect()
                }
                Some(Planned::List(items)) => items.iter().map(Planned::pattern).collect(),
                Some(other) => vec![other.pattern()],
                None => Vec::new(),
            };
            (
                names.iter().map(|n| parameter(&region, n)).collect::<Result<_, _>>()?,
                none,
            )
        }
        // Deregistering an AMI (and deleting its snapshots with it) acts on the region's images and snapshots.
        "ec2:DeregisterImage" => (images(std::slice::from_ref(&region)), none),
        "ec2:DeleteSnapshot" => (vec![format!("arn:aws:ec2:{region}::snapshot/*")], none),
        "cloudformation:ValidateTemplate" => (vec!["*".into()], none),
        s if s.starts_with("cloudformation:") => (
            vec![format!(
                "arn:aws:cloudformation:{region}:{}:stack/{}/*",
                acct()?,
                input("stack_name")
            )],
            none,
        ),
        // Describe* of jobs, instances and images: no resource-level permissions.
        _ => (vec!["*".into()], none),
    })
}

/// One action: its name (`IamPassRole`); several: their services and resource type (`SsmOnParameter`,
/// `BackupEc2OnAnyResource`).
fn sid(actions: &[String], resources: &[String]) -> String {
    if let [one] = actions {
        return pascal(one);
    }
    let mut services: Vec<String> = Vec::new();
    for a in actions {
        let s = pascal(a.split(':').next().unwrap_or_default());
        if !services.contains(&s) {
            services.push(s);
        }
    }
    let kind = match resources.first().map(String::as_str) {
        None | Some("*") => "AnyResource".to_string(),
        Some(arn) => {
            let rest = arn.splitn(6, ':').nth(5).unwrap_or_default();
            pascal(rest.split(['/', ':']).next().unwrap_or_default())
        }
    };
    format!("{}On{kind}", services.concat())
}

/// `backup_vault` → `BackupVault`.
pub(crate) fn pascal(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{Source, parse};
    use serde_json::json;

    const YAML: &str = r#"
version: 1
name: t
inputs:
  instance_id: {type: string}
  role: {type: string, default: "arn:aws:iam::123456789012:role/service-role/Backup"}
regions: {a: us-east-1, b: us-west-2}
steps:
  - id: backup
    action: backup.start_backup_job
    region: a
    with: {instance_id: "${{ inputs.instance_id }}", vault: Main, iam_role_arn: "${{ inputs.role }}"}
  - id: wait
    action: backup.wait_backup_job
    region: a
    with: {job_id: "${{ steps.backup.outputs.job_id }}"}
  - id: put
    action: ssm.put_parameter
    region: b
    with: {name: "/dr/${{ inputs.instance_id }}/ami", value: "${{ steps.wait.outputs.image_id }}"}
"#;

    fn plan(inputs: serde_json::Value) -> Plan {
        let wf = parse(
            Source::new(std::path::Path::new("t.yaml"), YAML.to_string()),
            crate::actions::catalog(),
        )
        .expect("valid");
        let regions = wf.bind_partial(&[], &[]).unwrap().regions;
        crate::plan::compute(&wf, "t.yaml", inputs.as_object().unwrap(), &regions, &[], None)
    }

    fn statement<'a>(p: &'a Policy, action: &str) -> &'a Statement {
        p.document
            .statement
            .iter()
            .find(|s| s.action.iter().any(|a| a == action))
            .unwrap_or_else(|| panic!("no {action} in {p:#?}"))
    }

    #[test]
    fn scopes_resources_to_the_known_arns() {
        let p = build(
            &plan(json!({"instance_id": "i-0abc", "role": "arn:aws:iam::123456789012:role/service-role/Backup"})),
            None,
        )
        .unwrap();
        assert_eq!(
            statement(&p, "backup:StartBackupJob").resource,
            ["arn:aws:backup:us-east-1:123456789012:backup-vault:Main"]
        );
        let pass = statement(&p, "iam:PassRole");
        assert_eq!(pass.resource, ["arn:aws:iam::123456789012:role/service-role/Backup"]);
        assert_eq!(
            pass.condition,
            Some(json!({"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}}))
        );
        let put = statement(&p, "ssm:PutParameter");
        assert_eq!(
            put.resource,
            ["arn:aws:ssm:us-west-2:123456789012:parameter/dr/i-0abc/ami"]
        );
        assert_eq!(
            put.action,
            [
                "ssm:AddTagsToResource",
                "ssm:GetParameter",
                "ssm:GetParameterHistory",
                "ssm:PutParameter"
            ]
        );
        assert_eq!(put.sid, "SsmOnParameter");
        assert_eq!(pass.sid, "IamPassRole");
        let describe = statement(&p, "backup:DescribeBackupJob");
        assert_eq!(describe.resource, ["*"]);
        assert!(describe.action.contains(&"ec2:DescribeImages".to_string()));
        assert_eq!(
            statement(&p, "ec2:CreateImage").resource,
            [
                "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
                "arn:aws:ec2:us-east-1::image/*",
                "arn:aws:ec2:us-east-1::snapshot/*"
            ]
        );
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn missing_inputs_become_wildcards_and_accounts_must_agree() {
        let p = build(
            &plan(json!({"role": "arn:aws:iam::123456789012:role/service-role/Backup"})),
            None,
        )
        .unwrap();
        assert_eq!(
            statement(&p, "ssm:PutParameter").resource,
            ["arn:aws:ssm:us-west-2:123456789012:parameter/dr/*/ami"]
        );
        assert!(p.notes[0].contains("`instance_id` is not given"), "{:?}", p.notes);
        let e = build(
            &plan(json!({"role": "arn:aws:iam::123456789012:role/service-role/Backup"})),
            Some("210987654321"),
        )
        .unwrap_err();
        assert!(e.contains("differs"), "{e}");
        assert!(
            build(&plan(json!({"role": "not-an-arn"})), None)
                .unwrap_err()
                .contains("--account")
        );
        let p = build(&plan(json!({"role": "not-an-arn"})), Some("210987654321")).unwrap();
        assert_eq!(
            statement(&p, "backup:StartBackupJob").resource,
            ["arn:aws:backup:us-east-1:210987654321:backup-vault:Main"]
        );
    }
}
