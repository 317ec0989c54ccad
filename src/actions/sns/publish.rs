//! `sns.publish`: send a notification to an SNS topic, e.g. in `finally` when the run failed. A notification is
//! advisory: its failure is journaled and reported, but it never fails the run nor hides the run's own result.

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, fmt, input, lit};
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

    /// Publish in the step's region, after checking that the topic is there (drflow publishes in the ARN's region;
    /// an SDK integration can only call its own): another region fails the step, named. The default subject and
    /// message say the workflow, the execution, its status and error (drflow's run summary is not available).
    fn sfn(&self) -> Result<Form, &'static str> {
        let run = |f: &'static str| Arg::Run(f);
        Ok(Form {
            ops: vec![
                Op::Let("topic_region", Arg::Split(Box::new(input("topic_arn")), ":", 3)),
                Op::Fail {
                    when: Cond::Not(Box::new(Cond::Same(answer("topic_region", "v"), Arg::Region))),
                    error: lit("TopicInAnotherRegion"),
                    cause: fmt(
                        "topic {} is in {}, and this step publishes in {}: give the step the topic's region",
                        vec![input("topic_arn"), answer("topic_region", "v"), Arg::Region],
                    ),
                },
                Op::Call(
                    Call::new("sent", "sns", "Publish")
                        .with("TopicArn", input("topic_arn"))
                        .with(
                            "Subject",
                            Arg::Choose(
                                "subject",
                                Box::new(input("subject")),
                                Box::new(fmt("drflow {} {} {}", vec![run("workflow"), run("id"), run("status")])),
                            ),
                        )
                        .with(
                            "Message",
                            Arg::Choose(
                                "message",
                                Box::new(input("message")),
                                Box::new(fmt(
                                    "drflow workflow {}, execution {}: {}. {}",
                                    vec![run("workflow"), run("id"), run("status"), run("error")],
                                )),
                            ),
                        ),
                ),
            ],
            outputs: vec![("message_id", answer("sent", "MessageId"))],
        })
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
