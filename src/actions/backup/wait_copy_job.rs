//! `backup.wait_copy_job`: wait until a copy job is COMPLETED.

use async_trait::async_trait;

use crate::actions::effects::{Effects, StepFacts};
use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, input};
use crate::actions::values::str_in;
use crate::actions::{Action, ActionError, Ctx, Poll, Resource, Values};
use crate::cloud::{JobState, region_from_arn};
use crate::workflow::spec::{out, req};
use crate::workflow::{ActionKind, ActionSpec, InputKind::*, Role};

pub(crate) struct WaitCopyJob;

static SPEC: ActionSpec = ActionSpec {
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
    calls: &["backup:DescribeCopyJob", "backup:ListCopyJobs"],
    role: Some(Role::WaitCopy),
    default_timeout_secs: 12 * 3600,
    releases: Some("job_id"),
    paces: true,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for WaitCopyJob {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn poll(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
        let job_id = str_in(inputs, "job_id")?;
        let job = ctx.cloud.backup.describe_copy_job(ctx.region, job_id).await?;
        if job.state.is_failure() {
            return Err(super::job_failed(
                "copy",
                job_id,
                job.state,
                job.status_message.as_deref(),
            ));
        }
        match (job.state, job.destination_recovery_point_arn) {
            (JobState::Completed, Some(arn)) => {
                let region = region_from_arn(&arn).unwrap_or_default().to_string();
                super::recovery_point_outputs(&arn, job.state, Some(region))
            }
            (state, _) => {
                let status = super::progress(state, None);
                Ok(match job.backup_size_bytes.filter(|b| *b > 0) {
                    Some(bytes) => Poll::Sized {
                        status,
                        bytes,
                        resource: job.resource_arn,
                    },
                    None => Poll::Pending(status),
                })
            }
        }
    }

    fn effects(&self, step: &StepFacts<'_>, _: &[Resource]) -> Effects {
        super::recovery_point_effects(step)
    }

    /// DescribeCopyJob until COMPLETED; FAILED or PARTIAL end it with AWS's status message.
    fn sfn(&self) -> Result<Form, &'static str> {
        let call = Call::new("job", "backup", "DescribeCopyJob").with("CopyJobId", input("job_id"));
        let arn = || answer("job", "CopyJob.DestinationRecoveryPointArn");
        Ok(Form {
            ops: vec![Op::Poll {
                call,
                then: super::job_failures("job", "copy", &["FAILED", "PARTIAL"]),
                done: Cond::All(vec![
                    Cond::Is(answer("job", "CopyJob.State"), "COMPLETED"),
                    Cond::Present(arn()),
                ]),
            }],
            outputs: vec![
                ("recovery_point_arn", arn()),
                ("image_id", Arg::AfterLastSlash(Box::new(arn()))),
                ("region", Arg::Split(Box::new(arn()), ":", 3)),
                ("state", answer("job", "CopyJob.State")),
            ],
        })
    }
}
