//! `drflow.approve`: a person approves the rest of the run (or rejects it) after seeing its plan.
//!
//! On a terminal it asks y/N; without one the run stops, journaled as waiting for approval, until `drflow approve
//! RUN_ID` or `drflow reject RUN_ID --reason ...` continues it from any shell; `--auto-approve` approves at once.
//! The decision (who: OS user and AWS caller identity; when; how; the plan shown) is journaled before the step goes
//! on, so a resumed run never asks twice. A rejection fails the step (code `Rejected`, never retried): `on_failure`
//! and `finally` apply as for any failure.

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::approval::{Decision, os_user};
use crate::actions::values::{opt_str, values};
use crate::actions::{Action, ActionError, Ctx, Values};
use crate::workflow::spec::{opt, out};
use crate::workflow::{ActionSpec, InputKind::*};

pub(crate) struct Approve;

static SPEC: ActionSpec = ActionSpec {
    name: "drflow.approve",
    summary: "Ask a person to approve the rest of the run, showing its plan (y/N on a terminal; otherwise the run \
              waits for `drflow approve RUN_ID` or `drflow reject RUN_ID`).",
    inputs: &[opt(
        "message",
        Str,
        "The question to ask (default: approve the rest of this run?).",
    )],
    outputs: &[
        out("approved", "true (a rejection fails the step)."),
        out(
            "how",
            "terminal, command (drflow approve) or auto (--auto-approve); task-token on Step Functions.",
        ),
        out("approved_by", "OS user and AWS caller ARN of who approved."),
        out("aws_arn", "AWS caller ARN of who approved."),
        out("decided_at", "When, RFC 3339."),
        out("reason", "The reason given, if any."),
    ],
    calls: &["sts:GetCallerIdentity"],
    // A person may take their time on a terminal; a run without one does not wait in this step at all.
    default_timeout_secs: 24 * 3600,
    ..ActionSpec::BASE
};

/// The question asked when the step gives none.
pub(crate) const DEFAULT_MESSAGE: &str = "Approve the rest of this run?";

#[async_trait]
impl Action for Approve {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    /// On Step Functions: the question published to the approvals topic with the execution's callback token and
    /// the commands that answer it (`.waitForTaskToken`); the execution waits up to the step's timeout
    /// (`States.Timeout`). `send-task-failure --error Rejected` fails the step with `Rejected` (never retried), as a
    /// rejection does here; an output with `"approved": false` is a rejection too. Who and when come from the
    /// output when it gives them (`approved_by`, `aws_arn`, `decided_at`, `reason`), else: unnamed, and the time
    /// the answer arrived.
    fn sfn(&self) -> Result<crate::actions::sfn::Form, &'static str> {
        use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, fmt, input, lit};
        let decision = |field: &'static str| answer("decision", field);
        let from_output = |id: &'static str, field: &'static str, otherwise: Arg| {
            vec![
                Op::Let(id, otherwise),
                Op::If {
                    when: Cond::Present(decision(field)),
                    then: vec![Op::Let(id, decision(field))],
                },
            ]
        };
        let token = || Arg::Context("Task.Token");
        // The state machine's region, where the token is answered: the execution ARN's fourth field.
        let region = || Arg::Split(Box::new(Arg::Context("Execution.Id")), ":", 3);
        let question = Arg::Choose("message", Box::new(input("message")), Box::new(lit(DEFAULT_MESSAGE)));
        let ask = Call::new("decision", "sns", "Publish")
            .with("TopicArn", Arg::ApprovalTopic)
            .with("Subject", fmt("drflow: approve {}?", vec![Arg::Run("workflow")]))
            // A JSON object (Step Functions' SNS integration sends it as its text): the question, and the commands
            // that answer it with this execution's token.
            .with(
                "Message",
                Arg::Map(vec![
                    ("question", question),
                    ("workflow", Arg::Run("workflow")),
                    ("execution", Arg::Context("Execution.Id")),
                    ("task_token", token()),
                    (
                        "approve",
                        fmt(
                            "aws stepfunctions send-task-success --region {} --task-token {} --task-output {}",
                            vec![region(), token(), answer("quoted", "v.output")],
                        ),
                    ),
                    (
                        "reject",
                        fmt(
                            "aws stepfunctions send-task-failure --region {} --task-token {} --error Rejected --cause {}",
                            vec![region(), token(), answer("quoted", "v.cause")],
                        ),
                    ),
                ]),
            );
        let mut ops = vec![
            // The commands' quoted arguments, kept as data: a quote in an intrinsic function's string is escaped,
            // which not every ASL engine reads (moto's does not).
            Op::Let(
                "quoted",
                lit(serde_json::json!({
                    "output": "'{\"approved\":true,\"approved_by\":\"YOUR NAME\"}'",
                    "cause": "'REASON'",
                })),
            ),
            Op::Callback(ask),
            // Nested: a Choice rule reading a field that is not there fails the execution.
            Op::If {
                when: Cond::Present(decision("approved")),
                then: vec![Op::Fail {
                    when: Cond::Not(Box::new(Cond::True(decision("approved")))),
                    error: lit("Rejected"),
                    cause: lit("rejected: the answer's output says \"approved\": false"),
                }],
            },
        ];
        ops.extend(from_output(
            "who",
            "approved_by",
            lit("unnamed (the answer gave no approved_by; CloudTrail's SendTaskSuccess names the caller)"),
        ));
        ops.extend(from_output("arn", "aws_arn", lit(Value::Null)));
        ops.extend(from_output("at", "decided_at", Arg::Context("State.EnteredTime")));
        ops.extend(from_output("reason", "reason", lit(Value::Null)));
        Ok(Form {
            ops,
            outputs: vec![
                ("approved", lit(true)),
                ("how", lit("task-token")),
                ("approved_by", answer("who", "v")),
                ("aws_arn", answer("arn", "v")),
                ("decided_at", answer("at", "v")),
                ("reason", answer("reason", "v")),
            ],
        })
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let message = opt_str(inputs, "message").unwrap_or(DEFAULT_MESSAGE);
        let decision = match ctx.approvals.journaled() {
            Some(d) => d,
            None => {
                // Who this process is, before anyone is asked: a broken login fails here, not after a "y".
                let region = if ctx.region.is_empty() { "us-east-1" } else { ctx.region };
                let identity = ctx.cloud.sts.get_caller_identity(region).await?;
                let plan = ctx.approvals.plan();
                let Some(answer) = ctx.approvals.ask(message, &plan) else {
                    ctx.approvals.wait(message, &plan);
                    return Err(ActionError::AwaitingApproval);
                };
                let decision = Decision {
                    approved: answer.approved,
                    how: answer.how,
                    reason: answer.reason,
                    os_user: os_user(),
                    aws_arn: identity.arn,
                    aws_account: identity.account,
                    decided_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                    plan,
                };
                ctx.approvals.decided(&decision);
                decision
            }
        };
        let how = serde_json::to_value(decision.how).unwrap_or(Value::Null);
        if !decision.approved {
            return Err(ActionError::failed(
                "Rejected",
                format!(
                    "rejected by {} at {}: {}",
                    decision.who(),
                    decision.decided_at,
                    decision.reason.as_deref().unwrap_or("no reason given")
                ),
            ));
        }
        Ok(values([
            ("approved", Value::Bool(true)),
            ("how", how),
            ("approved_by", Value::String(decision.who())),
            ("aws_arn", Value::String(decision.aws_arn.clone())),
            ("decided_at", Value::String(decision.decided_at.clone())),
            ("reason", decision.reason.clone().map_or(Value::Null, Value::String)),
        ]))
    }
}
