//! `backup.start_backup_job`: start an AWS Backup job for an EC2 instance.

use async_trait::async_trait;

use crate::actions::effects::{Effects, ResourceKind, StepFacts};
use crate::actions::sfn::{Arg, Call, Form, Op, answer, fmt, if_given, input, lifecycle};
use crate::actions::values::{account_of, str_in};
use crate::actions::{Action, ActionError, Ctx, Resource, Values};
use crate::cloud::StartBackupJob as Request;
use crate::workflow::quota;
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionSpec, InputKind::*, Preflight};

pub(crate) struct StartBackupJob;

static SPEC: ActionSpec = ActionSpec {
    name: "backup.start_backup_job",
    summary: "Start an AWS Backup job for an EC2 instance (idempotent per run and step).",
    inputs: &[
        req("instance_id", Str, "The EC2 instance to back up."),
        req("vault", Str, "Backup vault in the step's region."),
        req(
            "iam_role_arn",
            Str,
            "Role AWS Backup assumes; its account is the instance's account.",
        ),
        super::LIFECYCLE_INPUTS[0],
        super::LIFECYCLE_INPUTS[1],
        opt(
            "backup_options",
            Map,
            "AWS Backup BackupOptions, e.g. {WindowsVSS: enabled} for an application-consistent Windows backup.",
        ),
    ],
    outputs: &[out("job_id", "The backup job id.")],
    calls: &["backup:StartBackupJob"],
    extra_iam: &[
        "iam:PassRole",
        "ec2:CreateImage",
        "ec2:CreateTags",
        "ec2:DescribeInstances",
    ],
    preflight: &[
        Preflight::Instance { input: "instance_id" },
        Preflight::Vault {
            input: "vault",
            region_input: None,
        },
    ],
    lifecycle: true,
    quotas: &[quota::BACKUP_JOBS_PER_RESOURCE],
    holds: Some("job_id"),
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for StartBackupJob {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        ctx.start_once("job_id", || start(ctx, inputs)).await
    }

    fn effects(&self, step: &StepFacts<'_>, _: &[Resource]) -> Effects {
        super::job_effects(step, ResourceKind::BackupJob)
    }

    /// StartBackupJob with the step's token (a redrive re-attaches to the job); the instance ARN's account is the
    /// role's, as in `call`.
    fn sfn(&self) -> Result<Form, &'static str> {
        let call = Call::new("start", "backup", "StartBackupJob")
            .with("BackupVaultName", input("vault"))
            .with(
                "ResourceArn",
                fmt(
                    "arn:aws:ec2:{}:{}:instance/{}",
                    vec![Arg::Region, Arg::AccountOf("iam_role_arn"), input("instance_id")],
                ),
            )
            .with("IamRoleArn", input("iam_role_arn"))
            .with("IdempotencyToken", Arg::Token)
            .with(lifecycle().0, lifecycle().1)
            .with("BackupOptions", if_given("backup_options", input("backup_options")));
        Ok(Form {
            ops: vec![Op::Call(call)],
            outputs: vec![("job_id", answer("start", "BackupJobId"))],
        })
    }
}

async fn start(ctx: &Ctx<'_>, inputs: &Values) -> Result<String, ActionError> {
    let instance = str_in(inputs, "instance_id")?;
    let role = str_in(inputs, "iam_role_arn")?;
    let req = Request {
        vault: str_in(inputs, "vault")?.to_string(),
        resource_arn: format!("arn:aws:ec2:{}:{}:instance/{instance}", ctx.region, account_of(role)?),
        iam_role_arn: role.to_string(),
        idempotency_token: ctx.token.to_string(),
        lifecycle: super::lifecycle(inputs)?,
        backup_options: backup_options(inputs)?,
    };
    Ok(ctx.cloud.backup.start_backup_job(ctx.region, &req).await?)
}

/// `BackupOptions` AWS accepts for EC2: `WindowsVSS` = `enabled` | `disabled`.
fn backup_options(inputs: &Values) -> Result<std::collections::BTreeMap<String, String>, ActionError> {
    let options = crate::actions::values::map_in(inputs, "backup_options");
    for (k, v) in &options {
        if k != "WindowsVSS" || !matches!(v.as_str(), "enabled" | "disabled") {
            return Err(ActionError::Input(format!(
                "backup_options {k}: {v} is not an option AWS Backup takes for EC2 (WindowsVSS: enabled or disabled)"
            )));
        }
    }
    Ok(options)
}
