//! `cloudformation.delete_stack`: delete a stack and wait until it is gone (a missing stack is success).

use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, fmt, input, lit};
use async_trait::async_trait;
use serde_json::Value;

use crate::actions::effects::{Effects, ResourceKind, StepFacts};
use crate::actions::values::{str_in, values};
use crate::actions::{Action, ActionError, Ctx, Poll, Resource, Values};
use crate::workflow::spec::{out, req};
use crate::workflow::{ActionKind, ActionSpec, InputKind::*, Preflight, Role, Writes, Written};

pub(crate) struct DeleteStack;

static SPEC: ActionSpec = ActionSpec {
    name: "cloudformation.delete_stack",
    summary: "Delete a stack and wait until it is gone (a missing stack is success).",
    kind: ActionKind::Wait,
    inputs: &[req("stack_name", Str, "Stack name.")],
    outputs: &[out("deleted", "Whether there was a stack to delete.")],
    calls: &[
        "cloudformation:DescribeStacks",
        "cloudformation:DeleteStack",
        "cloudformation:DescribeStackEvents",
    ],
    extra_iam: &["ec2:TerminateInstances", "ec2:DescribeInstances"],
    preflight: &[Preflight::Stack {
        input: "stack_name",
        deploy: false,
    }],
    writes: Some(Writes {
        input: "stack_name",
        what: Written::Stack,
    }),
    advisory: false,
    lifecycle: false,
    role: Some(Role::Teardown),
    default_timeout_secs: 3600,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for DeleteStack {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    /// DescribeStacks (a missing stack is success, `deleted` false), DeleteStack with the step's token, then
    /// DescribeStacks until the stack is gone (or DELETE_COMPLETE); DELETE_FAILED fails it with AWS's reason.
    fn sfn(&self) -> Result<Form, &'static str> {
        let describe = |id: &'static str| {
            Call::new(id, "cloudformation", "DescribeStacks")
                .with("StackName", input("stack_name"))
                .absent(&["ValidationError"])
        };
        let status = || answer("stack", "v.StackStatus");
        let failed = |with_reason: bool| Op::Fail {
            when: if with_reason {
                Cond::All(vec![
                    Cond::Is(status(), "DELETE_FAILED"),
                    Cond::Present(answer("stack", "v.StackStatusReason")),
                ])
            } else {
                Cond::Is(status(), "DELETE_FAILED")
            },
            error: lit("StackDeleteFailed"),
            cause: if with_reason {
                fmt(
                    "stack {} in {} could not be deleted: {}; what it holds is still there",
                    vec![input("stack_name"), Arg::Region, answer("stack", "v.StackStatusReason")],
                )
            } else {
                fmt(
                    "stack {} in {} could not be deleted: no reason given; what it holds is still there",
                    vec![input("stack_name"), Arg::Region],
                )
            },
        };
        let present = || Cond::Not(Box::new(Cond::Absent("stacks")));
        Ok(Form {
            ops: vec![
                Op::Call(describe("found")),
                Op::Finish {
                    when: Cond::Absent("found"),
                    outputs: vec![("deleted", lit(false))],
                },
                Op::Call(
                    Call::new("delete", "cloudformation", "DeleteStack")
                        .with("StackName", input("stack_name"))
                        .with("ClientRequestToken", Arg::Token),
                ),
                Op::Poll {
                    call: describe("stacks"),
                    then: vec![
                        Op::Let("gone", lit(true)),
                        Op::If {
                            when: present(),
                            then: vec![
                                Op::Let("stack", Arg::First(Box::new(answer("stacks", "Stacks")))),
                                failed(true),
                                failed(false),
                                Op::If {
                                    when: Cond::Not(Box::new(Cond::Is(status(), "DELETE_COMPLETE"))),
                                    then: vec![Op::Let("gone", lit(false))],
                                },
                            ],
                        },
                    ],
                    done: Cond::True(answer("gone", "v")),
                },
            ],
            outputs: vec![("deleted", lit(true))],
        })
    }

    async fn begin(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<(), ActionError> {
        if ctx.recorded_str("deleting").is_some() {
            return Ok(());
        }
        let name = str_in(inputs, "stack_name")?;
        let cf = &ctx.cloud.cloudformation;
        let existing = cf.describe_stack(ctx.region, name).await?;
        let deleting = existing.is_some();
        if deleting {
            cf.delete_stack(ctx.region, name, ctx.token).await?;
        }
        ctx.recorder.record("deleting", &Value::Bool(deleting)).await;
        Ok(())
    }

    async fn poll(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
        let name = str_in(inputs, "stack_name")?;
        let deleted = ctx
            .recorder
            .recorded("deleting")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let cf = &ctx.cloud.cloudformation;
        match cf.describe_stack(ctx.region, name).await? {
            None => Ok(Poll::Done(values([("deleted", Value::Bool(deleted))]))),
            Some(s) if s.status == "DELETE_FAILED" => {
                let reason = cf.stack_failure_reason(ctx.region, name).await?;
                Err(ActionError::failed(
                    "StackDeleteFailed",
                    format!(
                        "stack {name} in {} could not be deleted: {}; what it holds is still there",
                        ctx.region,
                        reason.or(s.status_reason).unwrap_or_else(|| "no reason given".into())
                    ),
                ))
            }
            // In progress, or settled but still there: the delete has not shown yet.
            Some(s) => Ok(Poll::Pending(s.status)),
        }
    }

    /// The stack, and the instances earlier steps saw it launch.
    fn effects(&self, step: &StepFacts<'_>, created: &[Resource]) -> Effects {
        let mut e = Effects::default();
        if !step.succeeded || step.out("deleted") != Some(&Value::Bool(true)) {
            return e;
        }
        let Some(name) = step.input_text("stack_name") else {
            return e;
        };
        e.deleted
            .push(step.resource(ResourceKind::Stack, name.clone(), None, None));
        let region = step.region.map(str::to_string);
        let suffix = super::in_stack("", &name);
        for c in created.iter().filter(|c| {
            c.kind == ResourceKind::Instance
                && c.region == region
                && c.detail.as_deref().is_some_and(|d| d.ends_with(&suffix))
        }) {
            let detail = Some(format!("terminated with stack {name}"));
            e.deleted
                .push(step.resource(ResourceKind::Instance, c.id.clone(), None, detail));
        }
        e
    }
}
