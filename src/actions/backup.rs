//! AWS Backup: start a backup job, start a copy job, and wait for either.

use serde_json::Value;

use super::spec::{InputKind::*, out, req};
use super::{ActionError, ActionKind, ActionSpec, Ctx, Poll, Values, account_of, str_in, values};
use crate::cloud::{JobState, StartBackupJob, StartCopyJob, image_id_from_arn, region_from_arn};

pub static START_BACKUP_JOB: ActionSpec = ActionSpec {
    name: "backup.start_backup_job",
    summary: "Start an AWS Backup job for an EC2 instance (idempotent per run and step).",
    kind: ActionKind::Call,
    inputs: &[
        req("instance_id", Str, "The EC2 instance to back up."),
        req("vault", Str, "Backup vault in the step's region."),
        req(
            "iam_role_arn",
            Str,
            "Role AWS Backup assumes; its account is the instance's account.",
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
    mutates: true,
    needs_region: true,
    default_timeout_secs: 120,
};

pub static WAIT_BACKUP_JOB: ActionSpec = ActionSpec {
    name: "backup.wait_backup_job",
    summary: "Wait until a backup job is COMPLETED; fail at once if it FAILED, ABORTED or EXPIRED.",
    kind: ActionKind::Wait,
    inputs: &[req("job_id", Str, "The backup job id.")],
    outputs: &[
        out("recovery_point_arn", "arn:aws:ec2:REGION::image/ami-..."),
        out("image_id", "The AMI of the recovery point."),
        out("state", "COMPLETED"),
    ],
    calls: &["backup:DescribeBackupJob"],
    extra_iam: &[],
    mutates: false,
    needs_region: true,
    default_timeout_secs: 6 * 3600,
};

pub static START_COPY_JOB: ActionSpec = ActionSpec {
    name: "backup.start_copy_job",
    summary: "Copy a recovery point to a vault in another region (called in the source region).",
    kind: ActionKind::Call,
    inputs: &[
        req("recovery_point_arn", Str, "The recovery point to copy."),
        req("source_vault", Str, "Vault holding the recovery point."),
        req("destination_vault", Str, "Vault name in the destination region."),
        req("destination_region", Str, "Region code of the destination vault."),
        req("iam_role_arn", Str, "Role AWS Backup assumes."),
    ],
    outputs: &[out("job_id", "The copy job id.")],
    calls: &["backup:StartCopyJob"],
    extra_iam: &["iam:PassRole", "ec2:CopyImage", "ec2:CreateTags"],
    mutates: true,
    needs_region: true,
    default_timeout_secs: 120,
};

pub static WAIT_COPY_JOB: ActionSpec = ActionSpec {
    name: "backup.wait_copy_job",
    summary: "Wait until a copy job is COMPLETED; fail at once if it FAILED.",
    kind: ActionKind::Wait,
    inputs: &[req("job_id", Str, "The copy job id.")],
    outputs: &[
        out("recovery_point_arn", "The destination recovery point."),
        out("image_id", "The AMI in the destination region."),
        out("region", "The destination region."),
        out("state", "COMPLETED"),
    ],
    calls: &["backup:DescribeCopyJob"],
    extra_iam: &[],
    mutates: false,
    needs_region: true,
    default_timeout_secs: 12 * 3600,
};

pub(super) async fn start_backup_job(ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
    if let Some(job_id) = ctx.recorded_str("job_id") {
        return Ok(values([("job_id", Value::String(job_id))]));
    }
    let instance = str_in(inputs, "instance_id")?;
    let role = str_in(inputs, "iam_role_arn")?;
    let req = StartBackupJob {
        vault: str_in(inputs, "vault")?.to_string(),
        resource_arn: format!("arn:aws:ec2:{}:{}:instance/{instance}", ctx.region, account_of(role)?),
        iam_role_arn: role.to_string(),
        idempotency_token: ctx.token.to_string(),
    };
    let job_id = ctx.cloud.backup.start_backup_job(ctx.region, &req).await?;
    ctx.recorder.record("job_id", &Value::String(job_id.clone()));
    Ok(values([("job_id", Value::String(job_id))]))
}

pub(super) async fn start_copy_job(ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
    if let Some(job_id) = ctx.recorded_str("job_id") {
        return Ok(values([("job_id", Value::String(job_id))]));
    }
    let role = str_in(inputs, "iam_role_arn")?;
    let req = StartCopyJob {
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
    };
    let job_id = ctx.cloud.backup.start_copy_job(ctx.region, &req).await?;
    ctx.recorder.record("job_id", &Value::String(job_id.clone()));
    Ok(values([("job_id", Value::String(job_id))]))
}

pub(super) async fn poll_backup_job(ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
    let job_id = str_in(inputs, "job_id")?;
    let job = ctx.cloud.backup.describe_backup_job(ctx.region, job_id).await?;
    if job.state.is_failure() {
        return Err(job_failed("backup", job_id, job.state, job.status_message.as_deref()));
    }
    match (job.state, job.recovery_point_arn) {
        (JobState::Completed, Some(arn)) => recovery_point_outputs(&arn, job.state, None),
        (state, _) => Ok(Poll::Pending(progress(state, job.percent_done.as_deref()))),
    }
}

pub(super) async fn poll_copy_job(ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
    let job_id = str_in(inputs, "job_id")?;
    let job = ctx.cloud.backup.describe_copy_job(ctx.region, job_id).await?;
    if job.state.is_failure() {
        return Err(job_failed("copy", job_id, job.state, job.status_message.as_deref()));
    }
    match (job.state, job.destination_recovery_point_arn) {
        (JobState::Completed, Some(arn)) => {
            let region = region_from_arn(&arn).unwrap_or_default().to_string();
            recovery_point_outputs(&arn, job.state, Some(region))
        }
        (state, _) => Ok(Poll::Pending(progress(state, None))),
    }
}

fn recovery_point_outputs(arn: &str, state: JobState, region: Option<String>) -> Result<Poll, ActionError> {
    let image = image_id_from_arn(arn).ok_or_else(|| {
        ActionError::failed(
            "UnexpectedRecoveryPoint",
            format!("recovery point `{arn}` is not an EC2 image"),
        )
    })?;
    let mut out = values([
        ("recovery_point_arn", Value::String(arn.to_string())),
        ("image_id", Value::String(image.to_string())),
        ("state", Value::String(state.as_str().to_string())),
    ]);
    if let Some(r) = region {
        out.insert("region".into(), Value::String(r));
    }
    Ok(Poll::Done(out))
}

fn progress(state: JobState, percent: Option<&str>) -> String {
    match percent {
        Some(p) if !p.is_empty() => format!("{} {p}%", state.as_str()),
        _ => state.as_str().to_string(),
    }
}

fn job_failed(kind: &str, job_id: &str, state: JobState, message: Option<&str>) -> ActionError {
    let code = format!(
        "{}Job{}",
        if kind == "backup" { "Backup" } else { "Copy" },
        titled(state.as_str())
    );
    ActionError::failed(
        &code,
        format!(
            "{kind} job {job_id} ended {}: {}",
            state.as_str(),
            message.unwrap_or("AWS gave no status message")
        ),
    )
}

fn titled(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut c = lower.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}
