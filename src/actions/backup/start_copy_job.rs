//! `backup.start_copy_job`: copy a recovery point to a vault in another region (called in the source region).

use async_trait::async_trait;

use crate::actions::effects::{Effects, ResourceKind, StepFacts};
use crate::actions::sfn::{Arg, Call, Form, Op, answer, fmt, input, lifecycle};
use crate::actions::values::{account_of, opt_str, str_in};
use crate::actions::{Action, ActionError, Ctx, Resource, Values};
use crate::cloud::policy_doc::{Verdict, verdict};
use crate::cloud::{Cloud, StartCopyJob as Request};
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
        opt(
            "destination_account",
            Str,
            "Account of the destination vault (default: the role's): another account's, e.g. `${{ accounts.dr }}`, for a copy across accounts. Its vault's access policy must allow backup:CopyIntoBackupVault to this account; checked before the run changes anything.",
        ),
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
    gate_calls: &["backup:GetBackupVaultAccessPolicy", "backup:DescribeGlobalSettings"],
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

    /// StartCopyJob in the source region with the step's token; the destination vault's account is
    /// `destination_account`, else the role's.
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
                        Arg::Choose(
                            "destination_account",
                            Box::new(input("destination_account")),
                            Box::new(Arg::AccountOf("iam_role_arn")),
                        ),
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

    fn has_gate(&self, known: &Values) -> bool {
        opt_str(known, "destination_account").is_some()
    }

    async fn gate(&self, ctx: &Ctx<'_>, run: &Cloud, known: &Values) -> Result<(), ActionError> {
        let (Some(role), Some(dest)) = (opt_str(known, "iam_role_arn"), opt_str(known, "destination_account")) else {
            return Ok(());
        };
        let source = account_of(role)?;
        if source == dest {
            return Ok(());
        }
        cross_account(ctx, run, known, source, dest).await
    }
}

/// A copy into another account's vault: AWS Backup's cross-account backup must be on (an organization setting,
/// read where the caller may read it) and the destination vault's access policy must let the source account copy
/// into it (read with the destination account's credentials, when the run has them).
async fn cross_account(
    ctx: &Ctx<'_>,
    run: &Cloud,
    known: &Values,
    source: &str,
    dest: &str,
) -> Result<(), ActionError> {
    match ctx.cloud.backup.describe_global_settings(ctx.region).await {
        Ok(settings)
            if settings
                .get("isCrossAccountBackupEnabled")
                .is_some_and(|v| v == "false") =>
        {
            return Err(ActionError::failed(
                "CrossAccountBackupDisabled",
                format!(
                    "AWS Backup's cross-account backup is off for account {source}: turn it on in the organization's management account (aws backup update-global-settings --global-settings isCrossAccountBackupEnabled=true)"
                ),
            ));
        }
        // Only an organization's management account may read them: then the copy itself will tell.
        Ok(_) | Err(_) => {}
    }
    let (Some(vault), Some(region)) = (
        opt_str(known, "destination_vault"),
        opt_str(known, "destination_region"),
    ) else {
        return Ok(());
    };
    let Some((_, there)) = run.all().into_iter().find(|(_, c)| c.account.as_deref() == Some(dest)) else {
        return Ok(());
    };
    let statement = format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{source}:root"}},"Action":"backup:CopyIntoBackupVault","Resource":"*"}}"#
    );
    let policy = match there.backup.get_backup_vault_access_policy(region, vault).await {
        Ok(p) => p,
        // Not allowed to look: the copy job will tell.
        Err(e) if e.kind == crate::cloud::ErrorKind::AccessDenied => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    match policy {
        None => Err(ActionError::failed(
            "VaultPolicyMissing",
            format!(
                "backup vault `{vault}` in {region} (account {dest}) has no access policy: AWS Backup refuses copies into it from account {source}; add one with the statement {statement}"
            ),
        )),
        Some(policy) => match verdict(
            &policy,
            source,
            &format!("arn:aws:iam::{source}:root"),
            "backup:CopyIntoBackupVault",
        ) {
            Verdict::Allowed => Ok(()),
            _ => Err(ActionError::failed(
                "VaultPolicyMissing",
                format!(
                    "the access policy of backup vault `{vault}` in {region} (account {dest}) does not allow backup:CopyIntoBackupVault to account {source}: add the statement {statement}"
                ),
            )),
        },
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
            opt_str(inputs, "destination_account").map_or_else(|| account_of(role), Ok)?,
            str_in(inputs, "destination_vault")?
        ),
        iam_role_arn: role.to_string(),
        idempotency_token: ctx.token.to_string(),
        lifecycle: super::lifecycle(inputs)?,
    };
    Ok(ctx.cloud.backup.start_copy_job(ctx.region, &req).await?)
}
