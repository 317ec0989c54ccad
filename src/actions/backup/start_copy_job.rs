//! `backup.start_copy_job`: copy a recovery point to a vault in another region (called in the source region).

use async_trait::async_trait;

use crate::actions::effects::{Effects, ResourceKind, StepFacts};
use crate::actions::sfn::{Arg, Call, Form, Op, answer, fmt, input, lifecycle};
use crate::actions::values::{account_of, str_in};
use crate::actions::{Action, ActionError, Ctx, Resource, Values};
use crate::cloud::StartCopyJob as Request;
use crate::workflow::quota;
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionSpec, InputKind::*, Preflight, Role};

pub(crate) struct StartCopyJob;

static SPEC: ActionSpec = ActionSpec {
    name: "backup.start_copy_job",
    summary: "Copy a recovery point to a vault in another region (called in the source region).",
    inputs: &[
        req("recovery_point_arn", Str, "The recovery point to copy."),
        req("source_vault", Str, "Vault holding the recovery point."),
        req("destination_vault", Str, "Vault name in the destination region."),
        req("destination_region", Str, "Region code of the destination vault."),
        req("iam_role_arn", Str, "Role AWS Backup assumes."),
        super::LIFECYCLE_INPUTS[0],
        super::LIFECYCLE_INPUTS[1],
        opt(
            "size_bytes",
            Int,
            "The size of what is copied (`size_bytes` of the backup's wait): copies waiting for the destination's quota start largest first, so the longest do not come last.",
        ),
    ],
    outputs: &[out("job_id", "The copy job id.")],
    calls: &["backup:StartCopyJob"],
    extra_iam: &["iam:PassRole", "ec2:CopyImage", "ec2:CreateTags"],
    preflight: &[
        Preflight::Vault {
            input: "source_vault",
            region_input: None,
        },
        Preflight::Vault {
            input: "destination_vault",
            region_input: Some("destination_region"),
        },
    ],
    lifecycle: true,
    role: Some(Role::StartCopy),
    quotas: &[quota::BACKUP_COPIES],
    holds: Some("job_id"),
    quota_priority: Some("size_bytes"),
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for StartCopyJob {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        ctx.start_once("job_id", || start(ctx, inputs)).await
    }

    fn effects(&self, step: &StepFacts<'_>, _: &[Resource]) -> Effects {
        super::job_effects(step, ResourceKind::CopyJob)
    }

    /// StartCopyJob in the source region with the step's token; the destination vault's account is the role's.
    fn sfn(&self) -> Result<Form, &'static str> {
        let call = Call::new("start", "backup", "StartCopyJob")
            .with("RecoveryPointArn", input("recovery_point_arn"))
            .with("SourceBackupVaultName", input("source_vault"))
            .with(
                "DestinationBackupVaultArn",
                fmt(
                    "arn:aws:backup:{}:{}:backup-vault:{}",
                    vec![
                        input("destination_region"),
                        Arg::AccountOf("iam_role_arn"),
                        input("destination_vault"),
                    ],
                ),
            )
            .with("IamRoleArn", input("iam_role_arn"))
            .with("IdempotencyToken", Arg::Token)
            .with(lifecycle().0, lifecycle().1);
        Ok(Form {
            ops: vec![Op::Call(call)],
            outputs: vec![("job_id", answer("start", "CopyJobId"))],
        })
    }
}

async fn start(ctx: &Ctx<'_>, inputs: &Values) -> Result<String, ActionError> {
    let role = str_in(inputs, "iam_role_arn")?;
    let req = Request {
        recovery_point_arn: str_in(inputs, "recovery_point_arn")?.to_string(),
        source_vault: str_in(inputs, "source_vault")?.to_string(),
        destination_vault_arn: format!(
            "arn:aws:backup:{}:{}:backup-vault:{}",
            str_in(inputs, "destination_region")?,
            account_of(role)?,
            str_in(inputs, "destination_vault")?
        ),
        iam_role_arn: role.to_string(),
        idempotency_token: ctx.token.to_string(),
        lifecycle: super::lifecycle(inputs)?,
    };
    Ok(ctx.cloud.backup.start_copy_job(ctx.region, &req).await?)
}
