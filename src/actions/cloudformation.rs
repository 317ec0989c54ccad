//! CloudFormation: create or update a stack and wait for it; delete a stack and wait until it is gone.

use serde_json::Value;

use super::spec::{InputKind::*, opt, out, req};
use super::{ActionError, ActionKind, ActionSpec, Ctx, Poll, Values, map_in, str_in, values};
use crate::cloud::StackRequest;

pub static DEPLOY_STACK: ActionSpec = ActionSpec {
    name: "cloudformation.deploy_stack",
    summary: "Create the stack, or update it if it exists (no changes is success); wait for a terminal state and report the failing resource on rollback.",
    kind: ActionKind::Wait,
    inputs: &[
        req("stack_name", Str, "Stack name."),
        req("template", Str, "Template file, relative to the workflow file."),
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
    mutates: true,
    needs_region: true,
    default_timeout_secs: 3600,
};

pub static DELETE_STACK: ActionSpec = ActionSpec {
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
    mutates: true,
    needs_region: true,
    default_timeout_secs: 3600,
};

pub(super) async fn begin_deploy(ctx: &Ctx<'_>, inputs: &Values) -> Result<(), ActionError> {
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
    let existing = ctx.cloud.cloudformation.describe_stack(ctx.region, name).await?;
    let operation = match existing {
        None => {
            ctx.cloud.cloudformation.create_stack(ctx.region, &req).await?;
            "create"
        }
        Some(s) if s.status == "ROLLBACK_COMPLETE" || s.status == "ROLLBACK_FAILED" => {
            return Err(ActionError::failed(
                "StackNotUpdatable",
                format!(
                    "stack {name} in {} is {} and cannot be updated: delete it first",
                    ctx.region, s.status
                ),
            ));
        }
        Some(s) if s.is_in_progress() => {
            return Err(ActionError::failed(
                "StackBusy",
                format!(
                    "stack {name} in {} is {}: another operation is running",
                    ctx.region, s.status
                ),
            ));
        }
        Some(_) => match ctx.cloud.cloudformation.update_stack(ctx.region, &req).await {
            Ok(_) => "update",
            Err(e) if e.message.contains("No updates are to be performed") => "none",
            Err(e) => return Err(e.into()),
        },
    };
    ctx.recorder.record("operation", &Value::String(operation.into()));
    Ok(())
}

pub(super) async fn poll_deploy(ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
    let name = str_in(inputs, "stack_name")?;
    let Some(stack) = ctx.cloud.cloudformation.describe_stack(ctx.region, name).await? else {
        return Err(ActionError::failed(
            "StackNotFound",
            format!("stack {name} disappeared from {}", ctx.region),
        ));
    };
    if stack.is_in_progress() {
        return Ok(Poll::Pending(stack.status));
    }
    if stack.is_failed() {
        let reason = ctx.cloud.cloudformation.stack_failure_reason(ctx.region, name).await?;
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

pub(super) async fn begin_delete(ctx: &Ctx<'_>, inputs: &Values) -> Result<(), ActionError> {
    if ctx.recorded_str("deleting").is_some() {
        return Ok(());
    }
    let name = str_in(inputs, "stack_name")?;
    let existing = ctx.cloud.cloudformation.describe_stack(ctx.region, name).await?;
    let deleting = existing.is_some();
    if deleting {
        ctx.cloud
            .cloudformation
            .delete_stack(ctx.region, name, ctx.token)
            .await?;
    }
    ctx.recorder.record("deleting", &Value::Bool(deleting));
    Ok(())
}

pub(super) async fn poll_delete(ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
    let name = str_in(inputs, "stack_name")?;
    let deleted = ctx
        .recorder
        .recorded("deleting")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    match ctx.cloud.cloudformation.describe_stack(ctx.region, name).await? {
        None => Ok(Poll::Done(values([("deleted", Value::Bool(deleted))]))),
        Some(s) if s.status == "DELETE_FAILED" => {
            let reason = ctx.cloud.cloudformation.stack_failure_reason(ctx.region, name).await?;
            Err(ActionError::failed(
                "StackDeleteFailed",
                format!(
                    "stack {name} in {} could not be deleted: {}; what it holds is still there",
                    ctx.region,
                    reason.or(s.status_reason).unwrap_or_else(|| "no reason given".into())
                ),
            ))
        }
        Some(s) if s.is_in_progress() => Ok(Poll::Pending(s.status)),
        // Settled but still there: the delete has not shown yet.
        Some(s) => Ok(Poll::Pending(s.status)),
    }
}
