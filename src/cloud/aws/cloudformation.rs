//! CloudFormation: describe, create, update and delete a stack; explain its latest failure; validate a template.

use async_trait::async_trait;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Capability, Parameter, StackEvent, Tag};

use super::Regional;
use super::errors::from_sdk;
use crate::cloud::{CloudError, CloudFormation, Stack, StackRequest};

pub(crate) struct AwsCloudFormation {
    clients: Regional<Client>,
}

impl AwsCloudFormation {
    pub(crate) fn new(clients: Regional<Client>) -> Self {
        AwsCloudFormation { clients }
    }
}

/// Stack-level statuses that begin an operation (events are listed newest first; the latest operation's events
/// are those before the first of these). Rollbacks and cleanups belong to the operation they follow.
const OPERATION_STARTS: &[&str] = &[
    "CREATE_IN_PROGRESS",
    "UPDATE_IN_PROGRESS",
    "DELETE_IN_PROGRESS",
    "IMPORT_IN_PROGRESS",
];
const STACK_TYPE: &str = "AWS::CloudFormation::Stack";
const CAPABILITIES: [Capability; 2] = [Capability::CapabilityIam, Capability::CapabilityNamedIam];

fn is_stack_level(e: &StackEvent) -> bool {
    e.resource_type() == Some(STACK_TYPE)
        && e.logical_resource_id().is_some()
        && e.logical_resource_id() == e.stack_name()
}

fn status(e: &StackEvent) -> &str {
    e.resource_status().map(|s| s.as_str()).unwrap_or_default()
}

fn starts_operation(e: &StackEvent) -> bool {
    is_stack_level(e) && OPERATION_STARTS.contains(&status(e))
}

/// From the latest operation's events (newest first): its first resource failure (`_FAILED`), as
/// `LogicalId: reason`. Later failures are usually consequences ("Resource creation cancelled"); a stack-level
/// failure ("The following resource(s) failed to create: ...") is the answer only when no resource failed.
fn failure_reason(latest_operation: &[StackEvent]) -> Option<String> {
    let failed = |e: &&StackEvent| status(e).ends_with("_FAILED");
    let describe = |e: &StackEvent| {
        format!(
            "{}: {}",
            e.logical_resource_id().unwrap_or("?"),
            e.resource_status_reason().unwrap_or("no reason given")
        )
    };
    let mut events = latest_operation.iter();
    events
        .clone()
        .rev()
        .filter(failed)
        .find(|e| !is_stack_level(e))
        .or_else(|| events.find(failed))
        .map(describe)
}

fn params(req: &StackRequest) -> Vec<Parameter> {
    req.parameters
        .iter()
        .map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build())
        .collect()
}

fn tags(req: &StackRequest) -> Vec<Tag> {
    req.tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn token(t: &str) -> Option<String> {
    (!t.is_empty()).then(|| t.to_string())
}

fn missing_stack_id(operation: &str, region: &str) -> CloudError {
    CloudError::new(
        "cloudformation",
        operation,
        region,
        "ResponseError",
        "the response has no StackId",
    )
    .with_kind(crate::cloud::ErrorKind::Other)
}

/// Sends a CreateStack or UpdateStack (`$builder`, the SDK's fluent builder of `$operation`) of `$req` to
/// `$region` and answers the stack id. The two operations take the same request, but their builders share no
/// trait: this is the one request chain for both.
macro_rules! send_stack_request {
    ($builder:expr, $operation:literal, $region:expr, $req:expr) => {{
        let (region, req): (&str, &StackRequest) = ($region, $req);
        let out = $builder
            .stack_name(&req.name)
            .template_body(&req.template_body)
            .set_parameters(Some(params(req)))
            .set_tags(Some(tags(req)))
            .set_capabilities(Some(CAPABILITIES.to_vec()))
            .set_client_request_token(token(&req.client_request_token))
            .send()
            .await
            .map_err(|e| from_sdk("cloudformation", $operation, region, e))?;
        out.stack_id()
            .map(str::to_string)
            .ok_or_else(|| missing_stack_id($operation, region))
    }};
}

#[async_trait]
impl CloudFormation for AwsCloudFormation {
    async fn describe_stack(&self, region: &str, name: &str) -> Result<Option<Stack>, CloudError> {
        let result = self.clients.get(region).describe_stacks().stack_name(name).send().await;
        let out = match result {
            Ok(out) => out,
            // "Stack with id NAME does not exist"
            Err(e) => {
                let e = from_sdk("cloudformation", "DescribeStacks", region, e);
                return if e.code == "ValidationError" && e.message.contains("does not exist") {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        let Some(s) = out.stacks().first() else { return Ok(None) };
        let status = s.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default();
        if status == "DELETE_COMPLETE" {
            return Ok(None);
        }
        Ok(Some(Stack {
            stack_id: s.stack_id().unwrap_or_default().to_string(),
            name: s.stack_name().unwrap_or(name).to_string(),
            status,
            status_reason: s.stack_status_reason().map(str::to_string),
            outputs: s
                .outputs()
                .iter()
                .filter_map(|o| {
                    Some((
                        o.output_key()?.to_string(),
                        o.output_value().unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
        }))
    }

    async fn create_stack(&self, region: &str, req: &StackRequest) -> Result<String, CloudError> {
        send_stack_request!(self.clients.get(region).create_stack(), "CreateStack", region, req)
    }

    async fn update_stack(&self, region: &str, req: &StackRequest) -> Result<String, CloudError> {
        send_stack_request!(self.clients.get(region).update_stack(), "UpdateStack", region, req)
    }

    async fn delete_stack(&self, region: &str, name: &str, client_request_token: &str) -> Result<(), CloudError> {
        self.clients
            .get(region)
            .delete_stack()
            .stack_name(name)
            .set_client_request_token(token(client_request_token))
            .send()
            .await
            .map_err(|e| from_sdk("cloudformation", "DeleteStack", region, e))?;
        Ok(())
    }

    async fn stack_failure_reason(&self, region: &str, name: &str) -> Result<Option<String>, CloudError> {
        let mut pages = self
            .clients
            .get(region)
            .describe_stack_events()
            .stack_name(name)
            .into_paginator()
            .items()
            .send();
        let mut latest = Vec::new();
        while let Some(event) = pages.next().await {
            let event = event.map_err(|e| from_sdk("cloudformation", "DescribeStackEvents", region, e))?;
            let start = starts_operation(&event);
            latest.push(event);
            if start {
                break;
            }
        }
        Ok(failure_reason(&latest))
    }

    async fn validate_template(&self, region: &str, template_body: &str) -> Result<(), CloudError> {
        self.clients
            .get(region)
            .validate_template()
            .template_body(template_body)
            .send()
            .await
            .map_err(|e| from_sdk("cloudformation", "ValidateTemplate", region, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::ResourceStatus;

    fn ev(logical: &str, kind: &str, status: &str, reason: Option<&str>) -> StackEvent {
        StackEvent::builder()
            .stack_name("dr")
            .logical_resource_id(logical)
            .resource_type(kind)
            .resource_status(ResourceStatus::from(status))
            .set_resource_status_reason(reason.map(str::to_string))
            .build()
    }

    #[test]
    fn finds_the_first_failure_of_the_latest_operation() {
        // Newest first, as DescribeStackEvents lists them.
        let events = [
            ev("dr", STACK_TYPE, "ROLLBACK_COMPLETE", None),
            ev("DrInstance", "AWS::EC2::Instance", "DELETE_COMPLETE", None),
            ev(
                "dr",
                STACK_TYPE,
                "ROLLBACK_IN_PROGRESS",
                Some("The following resource(s) failed to create: [DrInstance, Sg]."),
            ),
            ev(
                "Sg",
                "AWS::EC2::SecurityGroup",
                "CREATE_FAILED",
                Some("Resource creation cancelled"),
            ),
            ev(
                "DrInstance",
                "AWS::EC2::Instance",
                "CREATE_FAILED",
                Some("The image id '[ami-x]' does not exist"),
            ),
            ev("DrInstance", "AWS::EC2::Instance", "CREATE_IN_PROGRESS", None),
            ev("dr", STACK_TYPE, "CREATE_IN_PROGRESS", Some("User Initiated")),
        ];
        let latest: Vec<_> = {
            let end = events.iter().position(starts_operation).unwrap();
            events[..=end].to_vec()
        };
        assert_eq!(latest.len(), events.len());
        assert_eq!(
            failure_reason(&latest).as_deref(),
            Some("DrInstance: The image id '[ami-x]' does not exist")
        );

        let only_stack = vec![
            ev("dr", STACK_TYPE, "UPDATE_FAILED", Some("bad")),
            ev("dr", STACK_TYPE, "UPDATE_IN_PROGRESS", None),
        ];
        assert_eq!(failure_reason(&only_stack).as_deref(), Some("dr: bad"));
        let fine = vec![
            ev("dr", STACK_TYPE, "CREATE_COMPLETE", None),
            ev("dr", STACK_TYPE, "CREATE_IN_PROGRESS", None),
        ];
        assert_eq!(failure_reason(&fine), None);
    }
}
