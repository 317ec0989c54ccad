//! `sns.publish`: send a notification to an SNS topic, e.g. in `finally` when the run failed. A notification is
//! advisory: its failure is journaled and reported, but it never fails the run nor hides the run's own result.

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::values::{opt_str, str_in, values};
use crate::actions::{Action, ActionError, Ctx, Values};
use crate::cloud::{Publish as Request, arn_region};
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionSpec, InputKind::*, Preflight};

pub(crate) struct Publish;

static SPEC: ActionSpec = ActionSpec {
    name: "sns.publish",
    summary: "Publish a notification to an SNS topic (by default a summary of the run so far: workflow, status, the failed step and its AWS error, the report's path). Its failure never fails the run.",
    inputs: &[
        req(
            "topic_arn",
            Str,
            "The topic, arn:aws:sns:REGION:ACCOUNT:NAME (published in its region).",
        ),
        opt(
            "subject",
            Str,
            "Subject (at most 100 characters). Default: drflow WORKFLOW RUN_ID STATUS.",
        ),
        opt("message", Str, "The message. Default: a summary of the run so far."),
    ],
    outputs: &[out("message_id", "The SNS message id.")],
    calls: &["sns:Publish"],
    preflight: &[Preflight::Topic { input: "topic_arn" }],
    advisory: true,
    default_timeout_secs: 60,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for Publish {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    fn sfn(&self) -> Result<crate::actions::sfn::Form, &'static str> {
        Err(
            "it publishes in the topic ARN's region, known only at run time, and its default message is drflow's run summary; not mapped yet",
        )
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let topic = str_in(inputs, "topic_arn")?;
        let region = arn_region(topic).unwrap_or(ctx.region);
        let run = ctx.run;
        let status = if run.failure.is_some() { "FAILED" } else { "ok so far" };
        let subject = opt_str(inputs, "subject")
            .map(str::to_string)
            .unwrap_or_else(|| format!("drflow {} {} {status}", run.workflow, run.run_id));
        let message = match opt_str(inputs, "message") {
            Some(m) => m.to_string(),
            None => run.summary(),
        };
        let req = Request {
            topic_arn: topic.to_string(),
            subject: Some(subject.chars().take(100).collect()),
            message,
        };
        let id = ctx.cloud.sns.publish(region, &req).await?;
        Ok(values([("message_id", Value::String(id))]))
    }
}
