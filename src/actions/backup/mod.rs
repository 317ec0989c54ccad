//! AWS Backup: start a backup job, start a copy job, and wait for either.

mod latest_recovery_point;
mod plan_resources;
mod plan_resources_form;
mod start_backup_job;
mod start_copy_job;
mod wait_backup_job;
mod wait_copy_job;
mod wait_dr_copy;

pub(crate) use latest_recovery_point::LatestRecoveryPoint;
pub(crate) use plan_resources::{CALLS as PLAN_CALLS, PlanResources, plan_instances};
pub(crate) use start_backup_job::StartBackupJob;
pub(crate) use start_copy_job::StartCopyJob;
pub(crate) use wait_backup_job::WaitBackupJob;
pub(crate) use wait_copy_job::WaitCopyJob;
pub(crate) use wait_dr_copy::WaitDrCopy;

use serde_json::Value;

use super::effects::{Effects, ResourceKind, StepFacts};
use super::values::values;
use super::{ActionError, Poll};
use crate::cloud::{JobState, image_id_from_arn};

/// The inputs of a recovery point's lifecycle, shared by both start actions.
const LIFECYCLE_INPUTS: [crate::workflow::InputSpec; 2] = [
    crate::workflow::spec::opt(
        "delete_after_days",
        crate::workflow::InputKind::Int,
        "Days after which AWS Backup deletes the recovery point (its AMI and snapshots). Default: kept until deleted.",
    ),
    crate::workflow::spec::opt(
        "move_to_cold_storage_after_days",
        crate::workflow::InputKind::Int,
        "Days before moving to cold storage (ignored by AWS for EC2; deletion must come 90 days later).",
    ),
];

/// The step's lifecycle, checked as AWS Backup checks it (values from `${{ }}` are known only now).
fn lifecycle(inputs: &super::Values) -> Result<Option<crate::cloud::Lifecycle>, ActionError> {
    use super::values::int_in;
    let l = crate::cloud::Lifecycle {
        move_to_cold_storage_after_days: int_in(inputs, "move_to_cold_storage_after_days")?,
        delete_after_days: int_in(inputs, "delete_after_days")?,
    };
    if let Some(d) = [l.move_to_cold_storage_after_days, l.delete_after_days]
        .into_iter()
        .flatten()
        .find(|d| *d < 1)
    {
        return Err(ActionError::Input(format!(
            "a lifecycle counts whole days from 1, not {d}"
        )));
    }
    if let (Some(cold), Some(delete)) = (l.move_to_cold_storage_after_days, l.delete_after_days)
        && delete < cold + 90
    {
        return Err(ActionError::Input(format!(
            "delete_after_days ({delete}) must be at least 90 days after move_to_cold_storage_after_days ({cold})"
        )));
    }
    Ok((l != crate::cloud::Lifecycle::default()).then_some(l))
}

/// A started job, from the step's `job_id`.
fn job_effects(step: &StepFacts<'_>, kind: ResourceKind) -> Effects {
    let mut e = Effects::default();
    if let Some(id) = step.out_text("job_id") {
        e.created.push(step.resource(kind, id, None, None));
    }
    e
}

/// The AMI of a completed job's recovery point.
fn recovery_point_effects(step: &StepFacts<'_>) -> Effects {
    let mut e = Effects::default();
    if step.succeeded
        && let Some(id) = step.out_text("image_id")
    {
        let detail = step
            .out_text("recovery_point_arn")
            .map(|a| format!("recovery point {a}"));
        e.created
            .push(step.resource(ResourceKind::Ami, id, step.out_text("region"), detail));
    }
    e
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

/// The Step Functions checks of a job's wait: one failure per terminal failure state, with the job's status message
/// when AWS gives one (the answer of call `id`; a copy job's fields are under `CopyJob`).
fn job_failures(id: &'static str, kind: &'static str, states: &[&'static str]) -> Vec<super::sfn::Op> {
    use super::sfn::{Cond, Op, answer, fmt, lit};
    let (state, message, job): (&'static str, &'static str, &'static str) = if kind == "backup" {
        ("State", "StatusMessage", "BackupJobId")
    } else {
        ("CopyJob.State", "CopyJob.StatusMessage", "CopyJob.CopyJobId")
    };
    let mut ops = Vec::new();
    for s in states {
        let error: &'static str = match (kind, *s) {
            ("backup", "FAILED") => "BackupJobFailed",
            ("backup", "ABORTED") => "BackupJobAborted",
            ("backup", "EXPIRED") => "BackupJobExpired",
            ("copy", "PARTIAL") => "CopyJobPartial",
            _ => "CopyJobFailed",
        };
        let (with_message, without): (&'static str, &'static str) = if kind == "backup" {
            (
                "backup job {} ended {}: {}",
                "backup job {} ended {}: AWS gave no status message",
            )
        } else {
            (
                "copy job {} ended {}: {}",
                "copy job {} ended {}: AWS gave no status message",
            )
        };
        ops.push(Op::Fail {
            when: Cond::All(vec![Cond::Is(answer(id, state), s), Cond::Present(answer(id, message))]),
            error: lit(error),
            cause: fmt(
                with_message,
                vec![answer(id, job), answer(id, state), answer(id, message)],
            ),
        });
        ops.push(Op::Fail {
            when: Cond::Is(answer(id, state), s),
            error: lit(error),
            cause: fmt(without, vec![answer(id, job), answer(id, state)]),
        });
    }
    ops
}
