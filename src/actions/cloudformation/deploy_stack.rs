//! `cloudformation.deploy_stack`: create the stack, or update it if it exists, and wait for a terminal state.
//!
//! Each operation is journaled as intended before it is requested and sent with the step's ClientRequestToken:
//! when AWS carried out a request whose answer was lost, the retry sends the same request with the same token and
//! AWS answers the first one instead of starting a second operation.

use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, fmt, input, lit, tags};
use async_trait::async_trait;
use serde_json::Value;

use crate::actions::effects::{Effects, ResourceKind, StepFacts};
use crate::actions::values::{map_in, str_in, values};
use crate::actions::{Action, ActionError, Ctx, Poll, Resource, Values};
use crate::cloud::StackRequest;
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionKind, ActionSpec, InputKind::*, Preflight, Role, Writes, Written};

pub(crate) struct DeployStack;

static SPEC: ActionSpec = ActionSpec {
    name: "cloudformation.deploy_stack",
    summary: "Create the stack, or update it if it exists (no changes is success); wait for a terminal state and report the failing resource on rollback.",
    kind: ActionKind::Wait,
    inputs: &[
        req("stack_name", Str, "Stack name."),
        req("template", Template, "Template file, relative to the workflow file."),
        opt("parameters", Map, "Stack parameters."),
        opt("tags", Map, "Stack tags."),
    ],
    outputs: &[
        out("stack_id", "The stack id."),
        out("status", "CREATE_COMPLETE or UPDATE_COMPLETE."),
        out("outputs", "The stack's outputs, a map."),
        out("operation", "create, update or none."),
    ],
    calls: &[
        "cloudformation:DescribeStacks",
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:DescribeStackEvents",
    ],
    extra_iam: &[
        "ssm:GetParameters",
        "ec2:RunInstances",
        "ec2:DescribeInstances",
        "ec2:CreateTags",
    ],
    preflight: &[
        Preflight::Template { input: "template" },
        Preflight::Stack {
            input: "stack_name",
            deploy: true,
        },
    ],
    writes: Some(Writes {
        input: "stack_name",
        what: Written::Stack,
    }),
    advisory: false,
    lifecycle: false,
    role: Some(Role::Launch),
    default_timeout_secs: 3600,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for DeployStack {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn begin(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<(), ActionError> {
        if ctx.recorded_str("operation").is_some() {
            return Ok(());
        }
        let name = str_in(inputs, "stack_name")?;
        let path = ctx.base_dir.join(str_in(inputs, "template")?);
        let body = std::fs::read_to_string(&path)
            .map_err(|e| ActionError::Input(format!("cannot read template {}: {e}", path.display())))?;
        let req = StackRequest {
            name: name.to_string(),
            template_body: body,
            parameters: map_in(inputs, "parameters"),
            tags: map_in(inputs, "tags"),
            client_request_token: ctx.token.to_string(),
        };
        let cf = &ctx.cloud.cloudformation;
        let intent = ctx.recorded_str("intent");
        // A create an earlier attempt requested may have been carried out with its answer lost: the same request
        // with the same token either answers the first one or performs it now (no need to look first).
        if intent.as_deref() == Some("create") {
            cf.create_stack(ctx.region, &req).await?;
            ctx.recorder.record("operation", &Value::String("create".into())).await;
            return Ok(());
        }
        let existing = cf.describe_stack(ctx.region, name).await?;
        let operation = match (existing, intent.as_deref()) {
            (None, _) => {
                ctx.recorder.record("intent", &Value::String("create".into())).await;
                cf.create_stack(ctx.region, &req).await?;
                "create"
            }
            (Some(s), None) if s.status == "ROLLBACK_COMPLETE" || s.status == "ROLLBACK_FAILED" => {
                return Err(ActionError::failed(
                    "StackNotUpdatable",
                    format!(
                        "stack {name} in {} is {} and cannot be updated: delete it first",
                        ctx.region, s.status
                    ),
                ));
            }
            (Some(s), None) if s.is_in_progress() => {
                return Err(ActionError::failed(
                    "StackBusy",
                    format!(
                        "stack {name} in {} is {}: another operation is running",
                        ctx.region, s.status
                    ),
                ));
            }
            (Some(_), _) => {
                ctx.recorder.record("intent", &Value::String("update".into())).await;
                match cf.update_stack(ctx.region, &req).await {
                    Ok(_) => "update",
                    Err(e) if e.message.contains("No updates are to be performed") => "none",
                    Err(e) => return Err(e.into()),
                }
            }
        };
        ctx.recorder.record("operation", &Value::String(operation.into())).await;
        Ok(())
    }

    async fn poll(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
        let name = str_in(inputs, "stack_name")?;
        let cf = &ctx.cloud.cloudformation;
        let Some(stack) = cf.describe_stack(ctx.region, name).await? else {
            return Err(ActionError::failed(
                "StackNotFound",
                format!("stack {name} disappeared from {}", ctx.region),
            ));
        };
        if stack.is_in_progress() {
            return Ok(Poll::Pending(stack.status));
        }
        if stack.is_failed() {
            let reason = cf.stack_failure_reason(ctx.region, name).await?;
            let reason = reason
                .or(stack.status_reason)
                .unwrap_or_else(|| "no reason given".into());
            return Err(ActionError::failed(
                "StackFailed",
                format!("stack {name} in {} ended {}: {reason}", ctx.region, stack.status),
            ));
        }
        let outputs: serde_json::Map<String, Value> =
            stack.outputs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        Ok(Poll::Done(values([
            ("stack_id", Value::String(stack.stack_id)),
            ("status", Value::String(stack.status)),
            ("outputs", Value::Object(outputs)),
            (
                "operation",
                Value::String(ctx.recorded_str("operation").unwrap_or_else(|| "none".into())),
            ),
        ])))
    }

    /// DescribeStacks, then CreateStack (with the step's token) or UpdateStack ("No updates are to be performed"
    /// is success), then DescribeStacks until a terminal state. The template is read at export time. The stack's
    /// `outputs` map holds the keys the workflow reads (AWS answers a list of pairs: each key is picked out of it).
    fn sfn(&self) -> Result<Form, &'static str> {
        let stack = |id: &'static str| {
            Call::new(id, "cloudformation", "DescribeStacks")
                .with("StackName", input("stack_name"))
                .absent(&["ValidationError"])
        };
        let write = |id: &'static str, action: &'static str| {
            Call::new(id, "cloudformation", action)
                .with("StackName", input("stack_name"))
                .with("TemplateBody", Arg::File("template"))
                .with("Parameters", Arg::Pairs("parameters", "ParameterKey", "ParameterValue"))
                .with("Tags", tags("tags"))
                .with("ClientRequestToken", Arg::Token)
        };
        let status = |id: &'static str| answer(id, "v.StackStatus");
        let exists = || Cond::Not(Box::new(Cond::Absent("found")));
        let no_updates = Cond::Matches(Arg::Caught("update", "Cause"), "*No updates are to be performed*");
        let ops = vec![
            Op::Call(stack("found")),
            Op::If {
                when: Cond::Absent("found"),
                then: vec![
                    Op::Call(write("create", "CreateStack")),
                    Op::Let("operation", lit("create")),
                ],
            },
            Op::If {
                when: exists(),
                then: vec![
                    Op::Let("current", Arg::First(Box::new(answer("found", "Stacks")))),
                    Op::Fail {
                        when: Cond::OneOf(status("current"), &["ROLLBACK_COMPLETE", "ROLLBACK_FAILED"]),
                        error: lit("StackNotUpdatable"),
                        cause: fmt(
                            "stack {} in {} is {} and cannot be updated: delete it first",
                            vec![input("stack_name"), Arg::Region, status("current")],
                        ),
                    },
                    Op::Fail {
                        when: Cond::OneOf(status("current"), IN_PROGRESS),
                        error: lit("StackBusy"),
                        cause: fmt(
                            "stack {} in {} is {}: another operation is running",
                            vec![input("stack_name"), Arg::Region, status("current")],
                        ),
                    },
                    Op::Call(write("update", "UpdateStack").absent(&["ValidationError"])),
                    // Nested: the error's Cause is there only when the update failed.
                    Op::If {
                        when: Cond::Absent("update"),
                        then: vec![Op::Fail {
                            when: Cond::Not(Box::new(no_updates)),
                            error: Arg::Caught("update", "Error"),
                            cause: Arg::Caught("update", "Cause"),
                        }],
                    },
                    Op::If {
                        when: Cond::Absent("update"),
                        then: vec![Op::Let("operation", lit("none"))],
                    },
                    Op::If {
                        when: Cond::Not(Box::new(Cond::Absent("update"))),
                        then: vec![Op::Let("operation", lit("update"))],
                    },
                ],
            },
            Op::Poll {
                call: Call::new("stacks", "cloudformation", "DescribeStacks").with("StackName", input("stack_name")),
                then: vec![
                    Op::Let("stack", Arg::First(Box::new(answer("stacks", "Stacks")))),
                    Op::Fail {
                        when: Cond::All(vec![
                            Cond::OneOf(status("stack"), FAILED),
                            Cond::Present(answer("stack", "v.StackStatusReason")),
                        ]),
                        error: lit("StackFailed"),
                        cause: fmt(
                            "stack {} in {} ended {}: {}",
                            vec![
                                input("stack_name"),
                                Arg::Region,
                                status("stack"),
                                answer("stack", "v.StackStatusReason"),
                            ],
                        ),
                    },
                    Op::Fail {
                        when: Cond::OneOf(status("stack"), FAILED),
                        error: lit("StackFailed"),
                        cause: fmt(
                            "stack {} in {} ended {}: no reason given",
                            vec![input("stack_name"), Arg::Region, status("stack")],
                        ),
                    },
                ],
                done: Cond::Not(Box::new(Cond::OneOf(status("stack"), IN_PROGRESS))),
            },
        ];
        Ok(Form {
            ops,
            outputs: vec![
                ("stack_id", answer("stack", "v.StackId")),
                ("status", status("stack")),
                ("operation", answer("operation", "v")),
                (
                    "outputs",
                    Arg::Keyed(Box::new(answer("stack", "v.Outputs")), "OutputKey", "OutputValue"),
                ),
            ],
        })
    }

    /// The stack it created or updated, and the instances among its outputs.
    fn effects(&self, step: &StepFacts<'_>, _: &[Resource]) -> Effects {
        let mut e = Effects::default();
        let operation = step.out_text("operation");
        let Some(name) = step.input_text("stack_name") else {
            return e;
        };
        let verb = match operation.as_deref() {
            Some("create") => "created",
            Some("update") => "updated",
            _ => return e,
        };
        let detail = match (step.succeeded, step.out_text("stack_id")) {
            (true, Some(id)) => format!("{verb}; {id}"),
            (true, None) => verb.to_string(),
            (false, _) => format!("{verb}; the deploy step {}, so its resources are unknown", step.status),
        };
        e.created
            .push(step.resource(ResourceKind::Stack, name.clone(), None, Some(detail)));
        if let Some(Value::Object(o)) = step.out("outputs") {
            for (k, v) in o {
                if let Some(id) = v.as_str().filter(|id| id.starts_with("i-")) {
                    let detail = Some(super::in_stack(k, &name));
                    e.created
                        .push(step.resource(ResourceKind::Instance, id.to_string(), None, detail));
                }
            }
        }
        e
    }
}

/// Stack states of an operation still running.
const IN_PROGRESS: &[&str] = &[
    "CREATE_IN_PROGRESS",
    "ROLLBACK_IN_PROGRESS",
    "DELETE_IN_PROGRESS",
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    "REVIEW_IN_PROGRESS",
    "IMPORT_IN_PROGRESS",
    "IMPORT_ROLLBACK_IN_PROGRESS",
];

/// Stack states a deploy ends in when it failed.
const FAILED: &[&str] = &[
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "DELETE_FAILED",
    "DELETE_COMPLETE",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
    "IMPORT_ROLLBACK_FAILED",
];
