//! `backup.wait_dr_copy`: the copy of a recovery point in the DR region's vault, made by someone else (a Backup
//! plan's copy rule): read-only. Copy jobs link SourceRecoveryPointArn → DestinationRecoveryPointArn (ListCopyJobs in
//! the source region); a copy's recovery point keeps its source's ResourceArn and CreationDate and records
//! SourceBackupVaultArn (ListRecoveryPointsByBackupVault in the DR region), which finds copies whose jobs AWS no
//! longer lists. A copy job still in progress is waited for; no copy, or only failed copies, end the wait with
//! `status: missing` or `failed` (and the copy job's status message), for the workflow to branch on.

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::sfn::{Arg, Call, Cond, Form, Newest, Op, answer, fmt, input, lit};
use crate::actions::values::{int_in, str_in, values};
use crate::actions::{Action, ActionError, Ctx, Poll, Values};
use crate::cloud::{CopyJob, JobState, RecoveryPoint, image_id_from_arn};
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionKind, ActionSpec, InputKind::*, Preflight};

pub(crate) struct WaitDrCopy;

static SPEC: ActionSpec = ActionSpec {
    name: "backup.wait_dr_copy",
    summary: "Find the copy of a recovery point in a vault of another region (made by a Backup plan's copy rule), \
              waiting while its copy job runs; `status` says copied, failed or missing. Read-only: starts nothing.",
    kind: ActionKind::Wait,
    inputs: &[
        req(
            "recovery_point_arn",
            Str,
            "The source recovery point (in the step's region).",
        ),
        req("resource_arn", Str, "The resource it is a backup of."),
        opt(
            "creation_date",
            Int,
            "The source point's CreationDate (Unix seconds): its copy keeps it, which finds a copy whose job AWS no longer lists. Without it, only copy jobs link the copy.",
        ),
        req("destination_vault", Str, "The vault in the DR region."),
        req("destination_region", Str, "The DR region code."),
    ],
    outputs: &[
        out(
            "status",
            "copied (a COMPLETED copy is in the vault), failed (its copy jobs failed) or missing (no copy job).",
        ),
        out("recovery_point_arn", "The DR recovery point (empty unless copied)."),
        out("image_id", "The DR AMI (empty unless copied)."),
        out("region", "The DR region."),
        out(
            "copy_job_id",
            "The copy job that made it (or failed), when AWS lists it.",
        ),
        out("message", "Why it is not copied: the copy job's status message."),
    ],
    calls: &["backup:ListCopyJobs", "backup:ListRecoveryPointsByBackupVault"],
    preflight: &[Preflight::Vault {
        input: "destination_vault",
        region_input: Some("destination_region"),
    }],
    default_timeout_secs: 3 * 3600,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for WaitDrCopy {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    /// The lineage by copy jobs alone (ListCopyJobs in the step's region, AWS filtering by source point, DR vault
    /// ARN and state, listed CREATED, RUNNING, COMPLETED in that order: no cross-region call): a COMPLETED job →
    /// `copied`; a CREATED or RUNNING one → polled on the
    /// step's poll policy within its timeout; else the newest failed job (FAILED, ABORTED, EXPIRED, PARTIAL) →
    /// `failed` with its status message; else `missing`. Unlike here, the DR vault is not read: a completed copy
    /// since deleted from it counts as copied, and a copy whose job AWS no longer lists (older than ListCopyJobs
    /// keeps) is missing; a plan followed hourly reads the jobs of its newest point, hours old.
    fn sfn(&self) -> Result<Form, &'static str> {
        let jobs = |id: &'static str, state: Option<&'static str>| {
            let call = Call::new(id, "backup", "ListCopyJobs")
                .with("BySourceRecoveryPointArn", input("recovery_point_arn"))
                .with("ByDestinationVaultArn", answer("vault", "v"))
                .with("MaxResults", lit(100));
            match state {
                Some(s) => call.with("ByState", lit(s)),
                None => call,
            }
        };
        let none = |id: &'static str| Cond::Empty(answer(id, "CopyJobs"));
        let not = |c: Cond| Cond::Not(Box::new(c));
        let copied = |path: &'static str| answer("completed", path);
        let failed = |path: &'static str| answer("failed", path);
        let region = || input("destination_region");
        let ended = |text: &'static str, message: Vec<Arg>| {
            let mut args = vec![failed("v.CopyJobId"), failed("v.State")];
            args.extend(message);
            vec![
                ("status", lit("failed")),
                ("recovery_point_arn", lit("")),
                ("image_id", lit("")),
                ("region", region()),
                ("copy_job_id", failed("v.CopyJobId")),
                ("message", fmt(text, args)),
            ]
        };
        let resource_field = |i: usize| Arg::Split(Box::new(input("resource_arn")), ":", i);
        Ok(Form {
            ops: vec![
                // The DR vault's ARN: partition and account of the resource's ARN.
                Op::Let(
                    "vault",
                    fmt(
                        "arn:{}:backup:{}:{}:backup-vault:{}",
                        vec![
                            resource_field(1),
                            region(),
                            resource_field(4),
                            input("destination_vault"),
                        ],
                    ),
                ),
                // In the order a job goes (CREATED, RUNNING, then COMPLETED): a job that moves on between two
                // listings is still seen by the later one, never missed (listed COMPLETED first, a job completing
                // before the RUNNING listing would be in none).
                Op::Poll {
                    call: jobs("created", Some("CREATED")),
                    then: vec![
                        Op::Call(jobs("running", Some("RUNNING"))),
                        Op::Call(jobs("completed", Some("COMPLETED"))),
                    ],
                    done: not(Cond::All(vec![
                        none("completed"),
                        not(Cond::All(vec![none("running"), none("created")])),
                    ])),
                },
                Op::Finish {
                    when: not(none("completed")),
                    outputs: vec![
                        ("status", lit("copied")),
                        ("recovery_point_arn", copied("CopyJobs[0].DestinationRecoveryPointArn")),
                        (
                            "image_id",
                            Arg::AfterLastSlash(Box::new(copied("CopyJobs[0].DestinationRecoveryPointArn"))),
                        ),
                        ("region", region()),
                        ("copy_job_id", copied("CopyJobs[0].CopyJobId")),
                        ("message", lit("")),
                    ],
                },
                Op::Newest(Box::new(Newest {
                    id: "failed",
                    call: jobs("jobs", None),
                    items: "CopyJobs",
                    keep: Cond::OneOf(failed("scan.item.State"), &["FAILED", "ABORTED", "EXPIRED", "PARTIAL"]),
                    by: "CreationDate",
                    pages: 1,
                })),
                Op::Finish {
                    when: Cond::Present(failed("v.StatusMessage")),
                    outputs: ended("copy job {} ended {}: {}", vec![failed("v.StatusMessage")]),
                },
                Op::Finish {
                    when: Cond::Present(failed("v")),
                    outputs: ended("copy job {} ended {}: AWS gave no status message", vec![]),
                },
            ],
            outputs: vec![
                ("status", lit("missing")),
                ("recovery_point_arn", lit("")),
                ("image_id", lit("")),
                ("region", region()),
                ("copy_job_id", lit("")),
                (
                    "message",
                    fmt(
                        "no copy job of this recovery point to vault {} in {}",
                        vec![input("destination_vault"), region()],
                    ),
                ),
            ],
        })
    }

    async fn poll(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
        let source = str_in(inputs, "recovery_point_arn")?;
        let resource = str_in(inputs, "resource_arn")?;
        let created = int_in(inputs, "creation_date")?;
        let to = Destination {
            region: str_in(inputs, "destination_region")?,
            vault: str_in(inputs, "destination_vault")?,
        };
        let jobs = ctx.cloud.backup.list_copy_jobs(ctx.region, source).await?;
        let points = ctx
            .cloud
            .backup
            .list_recovery_points(to.region, to.vault, resource, created)
            .await?;
        Ok(match lineage(&jobs, &points, created, &to) {
            Lineage::Copied { arn, job } => {
                let image = image_id_from_arn(&arn).unwrap_or_default().to_string();
                Poll::Done(outputs("copied", &arn, &image, to.region, job.as_deref(), ""))
            }
            Lineage::InProgress { job, state } => Poll::Pending(format!("copy job {job} {}", state.as_str())),
            Lineage::Failed { job, message } => Poll::Done(outputs("failed", "", "", to.region, Some(&job), &message)),
            Lineage::Missing(why) => Poll::Done(outputs("missing", "", "", to.region, None, &why)),
        })
    }
}

/// The DR vault, by region and name.
pub(crate) struct Destination<'a> {
    pub region: &'a str,
    pub vault: &'a str,
}

impl Destination<'_> {
    /// Whether a vault ARN (`arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME`) names this vault.
    fn is(&self, arn: &str) -> bool {
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        matches!(parts.as_slice(), [_, _, "backup", region, _, "backup-vault", name] if *region == self.region && *name == self.vault)
    }
}

/// Where the copy of one recovery point stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lineage {
    Copied { arn: String, job: Option<String> },
    InProgress { job: String, state: JobState },
    Failed { job: String, message: String },
    Missing(String),
}

/// The copy of a source point, from its copy jobs (oldest first) and the DR vault's points of the same resource: a
/// COMPLETED copy job whose point the vault still holds, or a COMPLETED point there that keeps the source's
/// CreationDate and names a source vault (a copy whose job AWS no longer lists); else a copy job in progress (wait);
/// else the last failed job; else missing.
pub(crate) fn lineage(
    jobs: &[CopyJob],
    points: &[RecoveryPoint],
    created: Option<i64>,
    to: &Destination<'_>,
) -> Lineage {
    let completed = |arn: &str| points.iter().any(|p| p.arn == arn && p.status == "COMPLETED");
    let ours: Vec<&CopyJob> = jobs
        .iter()
        .filter(|j| j.destination_vault_arn.as_deref().is_none_or(|v| to.is(v)))
        .collect();
    let done = ours
        .iter()
        .rev()
        .find_map(|j| match (&j.state, &j.destination_recovery_point_arn) {
            (JobState::Completed, Some(arn)) if completed(arn) => Some((arn.clone(), j.job_id.clone())),
            _ => None,
        });
    if let Some((arn, job)) = done {
        return Lineage::Copied { arn, job: Some(job) };
    }
    let kept = points.iter().rev().find(|p| {
        p.status == "COMPLETED" && p.source_vault_arn.is_some() && created.is_none_or(|c| p.creation_date == c)
    });
    if let Some(p) = kept
        && created.is_some()
    {
        return Lineage::Copied {
            arn: p.arn.clone(),
            job: None,
        };
    }
    if let Some(j) = ours
        .iter()
        .rev()
        .find(|j| !j.state.is_failure() && j.state != JobState::Completed)
    {
        return Lineage::InProgress {
            job: j.job_id.clone(),
            state: j.state,
        };
    }
    if let Some(j) = ours.iter().rev().find(|j| j.state.is_failure()) {
        let message = j
            .status_message
            .clone()
            .unwrap_or_else(|| "AWS gave no status message".into());
        return Lineage::Failed {
            job: j.job_id.clone(),
            message: format!("copy job {} ended {}: {message}", j.job_id, j.state.as_str()),
        };
    }
    if let Some(j) = ours.iter().rev().find(|j| j.state == JobState::Completed) {
        return Lineage::Missing(format!(
            "copy job {} COMPLETED, but vault {} in {} no longer holds its recovery point {}",
            j.job_id,
            to.vault,
            to.region,
            j.destination_recovery_point_arn.as_deref().unwrap_or("(none named)")
        ));
    }
    Lineage::Missing(format!(
        "no copy job of this recovery point to vault {} in {}, and no copy of it there",
        to.vault, to.region
    ))
}

fn outputs(status: &str, arn: &str, image: &str, region: &str, job: Option<&str>, message: &str) -> Values {
    values([
        ("status", Value::String(status.into())),
        ("recovery_point_arn", Value::String(arn.into())),
        ("image_id", Value::String(image.into())),
        ("region", Value::String(region.into())),
        ("copy_job_id", Value::String(job.unwrap_or_default().into())),
        ("message", Value::String(message.into())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DR: Destination<'static> = Destination {
        region: "us-west-2",
        vault: "Dr",
    };
    const SOURCE_VAULT: &str = "arn:aws:backup:us-east-1:123456789012:backup-vault:Default";

    fn job(id: &str, state: JobState, dest: Option<&str>, vault: &str) -> CopyJob {
        CopyJob {
            job_id: id.into(),
            state,
            status_message: state.is_failure().then(|| "Insufficient privileges".to_string()),
            destination_recovery_point_arn: dest.map(str::to_string),
            creation_date: Some(1),
            completion_date: None,
            backup_size_bytes: None,
            resource_arn: None,
            source_recovery_point_arn: None,
            destination_vault_arn: Some(format!("arn:aws:backup:{vault}")),
        }
    }

    fn point(arn: &str, status: &str, created: i64, copy: bool) -> RecoveryPoint {
        RecoveryPoint {
            arn: arn.into(),
            resource_arn: "arn:aws:ec2:us-east-1:123456789012:instance/i-0a".into(),
            status: status.into(),
            creation_date: created,
            source_vault_arn: copy.then(|| SOURCE_VAULT.to_string()),
            vault_name: "Dr".into(),
        }
    }

    const DR_VAULT: &str = "us-west-2:123456789012:backup-vault:Dr";
    const A: &str = "arn:aws:ec2:us-west-2::image/ami-0a";
    const B: &str = "arn:aws:ec2:us-west-2::image/ami-0b";

    #[test]
    fn a_completed_job_whose_point_the_vault_holds_is_the_copy() {
        let jobs = [
            job("1", JobState::Failed, None, DR_VAULT),
            job("2", JobState::Completed, Some(A), DR_VAULT),
        ];
        let points = [point(A, "COMPLETED", 100, true)];
        assert_eq!(
            lineage(&jobs, &points, Some(100), &DR),
            Lineage::Copied {
                arn: A.into(),
                job: Some("2".into())
            }
        );
    }

    #[test]
    fn copies_to_another_vault_or_region_do_not_count() {
        let jobs = [
            job(
                "1",
                JobState::Completed,
                Some(A),
                "eu-west-1:123456789012:backup-vault:Dr",
            ),
            job(
                "2",
                JobState::Completed,
                Some(B),
                "us-west-2:123456789012:backup-vault:Other",
            ),
        ];
        let points = [point(A, "COMPLETED", 100, true), point(B, "COMPLETED", 100, true)];
        // Not by their jobs: only by the point in our vault that keeps the source's CreationDate.
        assert_eq!(
            lineage(&jobs, &points[..0], Some(100), &DR),
            Lineage::Missing(
                "no copy job of this recovery point to vault Dr in us-west-2, and no copy of it there".into()
            )
        );
    }

    #[test]
    fn a_copy_whose_job_is_no_longer_listed_is_found_by_its_creation_date() {
        let points = [
            point(A, "COMPLETED", 90, true),
            point(B, "COMPLETED", 100, true),
            point("arn:aws:ec2:us-west-2::image/ami-0c", "COMPLETED", 100, false),
        ];
        assert_eq!(
            lineage(&[], &points, Some(100), &DR),
            Lineage::Copied {
                arn: B.into(),
                job: None
            }
        );
        // Another point's copy (another CreationDate) is not this one's.
        assert!(matches!(
            lineage(&[], &points[..1], Some(100), &DR),
            Lineage::Missing(_)
        ));
    }

    #[test]
    fn a_running_job_is_waited_for_then_failed_then_missing() {
        let running = [
            job("1", JobState::Failed, None, DR_VAULT),
            job("2", JobState::Running, Some(A), DR_VAULT),
        ];
        // Its point is CREATING meanwhile.
        let creating = [point(A, "CREATING", 100, true)];
        assert_eq!(
            lineage(&running, &creating, Some(100), &DR),
            Lineage::InProgress {
                job: "2".into(),
                state: JobState::Running
            }
        );
        let failed = [job("1", JobState::Failed, None, DR_VAULT)];
        match lineage(&failed, &[], Some(100), &DR) {
            Lineage::Failed { job, message } => {
                assert_eq!(job, "1");
                assert!(message.contains("FAILED: Insufficient privileges"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // A completed job whose point is gone from the vault.
        let gone = [job("3", JobState::Completed, Some(A), DR_VAULT)];
        match lineage(&gone, &[], Some(100), &DR) {
            Lineage::Missing(why) => assert!(why.contains("no longer holds"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
