//! `backup.wait_backup_job`: wait until a backup job is COMPLETED.

use async_trait::async_trait;

use crate::actions::effects::{Effects, StepFacts};
use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, input};
use crate::actions::values::str_in;
use crate::actions::{Action, ActionError, Ctx, Poll, Resource, Values};
use crate::cloud::JobState;
use crate::workflow::spec::{out, req};
use crate::workflow::{ActionKind, ActionSpec, InputKind::*, Role};

pub(crate) struct WaitBackupJob;

static SPEC: ActionSpec = ActionSpec {
    name: "backup.wait_backup_job",
    summary: "Wait until a backup job is COMPLETED; fail at once if it FAILED, ABORTED or EXPIRED.",
    kind: ActionKind::Wait,
    inputs: &[req("job_id", Str, "The backup job id.")],
    outputs: &[
        out("recovery_point_arn", "arn:aws:ec2:REGION::image/ami-..."),
        out("image_id", "The AMI of the recovery point."),
        out("state", "COMPLETED"),
        out(
            "size_bytes",
            "BackupSizeInBytes (0 if AWS did not tell): what a copy of it will move.",
        ),
    ],
    // Many waits at once are answered by one ListBackupJobs (cloud::batch_jobs).
    calls: &["backup:DescribeBackupJob", "backup:ListBackupJobs"],
    role: Some(Role::BackupImage),
    default_timeout_secs: 6 * 3600,
    releases: Some("job_id"),
    paces: true,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for WaitBackupJob {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn poll(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
        let job_id = str_in(inputs, "job_id")?;
        let job = ctx.cloud.backup.describe_backup_job(ctx.region, job_id).await?;
        if job.state.is_failure() {
            return Err(super::job_failed(
                "backup",
                job_id,
                job.state,
                job.status_message.as_deref(),
            ));
        }
        match (job.state, job.recovery_point_arn) {
            (JobState::Completed, Some(arn)) => {
                let mut done = super::recovery_point_outputs(&arn, job.state, None)?;
                if let Poll::Done(out) = &mut done {
                    out.insert("size_bytes".into(), job.backup_size_bytes.unwrap_or(0).into());
                }
                Ok(done)
            }
            (state, _) => {
                let status = super::progress(state, job.percent_done.as_deref());
                let percent = job.percent_done.as_deref().and_then(|p| p.trim().parse::<f64>().ok());
                Ok(match percent {
                    Some(p) if state == JobState::Running => Poll::Progress(status, p),
                    _ => Poll::Pending(status),
                })
            }
        }
    }

    fn effects(&self, step: &StepFacts<'_>, _: &[Resource]) -> Effects {
        super::recovery_point_effects(step)
    }

    /// DescribeBackupJob until COMPLETED; FAILED, ABORTED or EXPIRED end it with AWS's status message.
    fn sfn(&self) -> Result<Form, &'static str> {
        let call = Call::new("job", "backup", "DescribeBackupJob").with("BackupJobId", input("job_id"));
        Ok(Form {
            ops: vec![Op::Poll {
                call,
                then: super::job_failures("job", "backup", &["FAILED", "ABORTED", "EXPIRED"]),
                done: Cond::All(vec![
                    Cond::Is(answer("job", "State"), "COMPLETED"),
                    Cond::Present(answer("job", "RecoveryPointArn")),
                ]),
            }],
            outputs: vec![
                ("recovery_point_arn", answer("job", "RecoveryPointArn")),
                (
                    "image_id",
                    Arg::AfterLastSlash(Box::new(answer("job", "RecoveryPointArn"))),
                ),
                ("state", answer("job", "State")),
            ],
        })
    }
}
