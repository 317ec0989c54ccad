//! CloudFormation: stacks whose `AWS::EC2::Instance` resources launch simulated instances from an AMI that must be
//! available in the stack's region. Other resource types are accepted and given a made-up physical id.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::ids::{ACCOUNT, is_ami_id};
use super::records::{Failure, InstanceRec, OpKind, Physical, StackOp, StackRec, TERMINATION};
use super::template::{self, Env, INSTANCE, Template};
use super::{Ctx, Sim};
use crate::cloud::{CloudError, CloudFormation, Stack, StackRequest};

/// The outcome of deploying a template: what the stack becomes.
struct Deployed {
    resources: BTreeMap<String, Physical>,
    outputs: BTreeMap<String, String>,
    launches: Vec<InstanceRec>,
}

fn check_stack_name(ctx: &Ctx<'_>, name: &str) -> Result<(), CloudError> {
    let ok = (1..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        return Ok(());
    }
    Err(ctx.err(
        "ValidationError",
        format!(
            "1 validation error detected: Value '{name}' at 'stackName' failed to satisfy constraint: Member must \
             satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"
        ),
    ))
}

fn check_token(ctx: &Ctx<'_>, token: &str) -> Result<(), CloudError> {
    let ok = token.is_empty()
        || (token.len() <= 128
            && token.starts_with(|c: char| c.is_ascii_alphanumeric())
            && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if ok {
        return Ok(());
    }
    Err(ctx.err(
        "ValidationError",
        format!(
            "1 validation error detected: Value '{token}' at 'clientRequestToken' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z0-9][-a-zA-Z0-9]*"
        ),
    ))
}

/// The index of the live stack with that name (or, for a stack id, of that stack even if deleted).
fn find(ctx: &mut Ctx<'_>, name: &str, include_deleted: bool) -> Option<usize> {
    let now = ctx.now;
    ctx.here().stacks.iter().rposition(|s| {
        if name.starts_with("arn:aws:cloudformation:") {
            s.id == name && (include_deleted || s.is_live(now))
        } else {
            s.name == name && s.is_live(now)
        }
    })
}

/// Parses the template and resolves its parameters, as CreateStack/UpdateStack do before answering.
fn prepare(ctx: &mut Ctx<'_>, req: &StackRequest) -> Result<(Template, BTreeMap<String, String>), CloudError> {
    let parsed = template::parse(&req.template_body).map_err(|m| ctx.err("ValidationError", m))?;
    let params = template::resolve_parameters(&parsed, &req.parameters, &ctx.here().parameters);
    let params = params.map_err(|m| ctx.err("ValidationError", m))?;
    Ok((parsed, params))
}

/// What `req`'s template expressions refer to while it is deployed as `stack_id` in `region`: its resolved
/// parameters and the resources deployed so far.
fn template_env<'a>(
    req: &'a StackRequest,
    stack_id: &'a str,
    region: &'a str,
    params: &'a BTreeMap<String, String>,
    resources: &'a BTreeMap<String, Physical>,
) -> Env<'a> {
    Env {
        params,
        resources,
        region,
        stack_name: &req.name,
        stack_id,
    }
}

/// Deploys `req`'s template on top of `existing` resources: the failure is what the stack rolls back with.
fn deploy(
    ctx: &mut Ctx<'_>,
    req: &StackRequest,
    stack_id: &str,
    existing: &BTreeMap<String, Physical>,
    done: Duration,
    verb: &str,
) -> Result<Deployed, Failure> {
    let stack_level = |reason: String| Failure {
        status_reason: reason.clone(),
        resource_reason: reason,
    };
    let resource_level = |logical_id: &str, reason: String| Failure {
        status_reason: format!(
            "The following resource(s) failed to {verb}: [{logical_id}]. Rollback requested by user."
        ),
        resource_reason: reason,
    };
    let now = ctx.now;
    let body = template::resolve_dynamic(&req.template_body, &ctx.here().parameters).map_err(stack_level)?;
    let parsed = template::parse(&body).map_err(stack_level)?;
    let params = template::resolve_parameters(&parsed, &req.parameters, &ctx.here().parameters).map_err(stack_level)?;
    let region = ctx.region.clone();

    let mut resources = BTreeMap::new();
    for r in parsed.resources.iter().filter(|r| r.kind != INSTANCE) {
        let kept = existing.get(&r.logical_id).filter(|p| p.kind == r.kind).cloned();
        let physical = match kept {
            Some(p) => p,
            None => {
                let id = format!("{}-{}-{}", req.name, r.logical_id, ctx.world.ids.new_suffix());
                Physical {
                    id,
                    kind: r.kind.clone(),
                    image_id: None,
                }
            }
        };
        resources.insert(r.logical_id.clone(), physical);
    }
    let mut launches = Vec::new();
    for r in parsed.resources.iter().filter(|r| r.kind == INSTANCE) {
        let env = template_env(req, stack_id, &region, &params, &resources);
        let image = match r.properties.get("ImageId") {
            Some(v) => env
                .eval(v)
                .and_then(|text| template::resolve_dynamic(&text, &ctx.here().parameters))
                .map_err(|m| resource_level(&r.logical_id, m))?,
            None => {
                return Err(resource_level(
                    &r.logical_id,
                    "Property ImageId cannot be empty.".into(),
                ));
            }
        };
        let mut tags = req.tags.clone();
        if let Some(serde_yaml::Value::Sequence(list)) = r.properties.get("Tags") {
            for tag in list {
                let (Some(k), Some(v)) = (tag.get("Key"), tag.get("Value")) else {
                    continue;
                };
                let k = env.eval(k).map_err(|m| resource_level(&r.logical_id, m))?;
                let v = env.eval(v).map_err(|m| resource_level(&r.logical_id, m))?;
                tags.insert(k, v);
            }
        }
        if !is_ami_id(&image) {
            let reason = format!("Invalid id: \"{image}\" (expecting \"ami-...\")");
            return Err(resource_level(&r.logical_id, reason));
        }
        match ctx.here().images.get(&image).map(|i| i.state(now).to_string()) {
            None => {
                return Err(resource_level(
                    &r.logical_id,
                    format!("The image id '[{image}]' does not exist"),
                ));
            }
            Some(state) if state != "available" => {
                let reason = format!("The image id '[{image}]' is not available (state: {state})");
                return Err(resource_level(&r.logical_id, reason));
            }
            Some(_) => {}
        }
        let kept = existing
            .get(&r.logical_id)
            .filter(|p| p.kind == INSTANCE && p.image_id.as_deref() == Some(image.as_str()))
            .cloned();
        let physical = match kept {
            Some(p) => p,
            None => {
                let id = ctx.world.ids.new_instance_id();
                let mut instance = InstanceRec::running(&id, &image, done);
                instance.impaired = ctx.world.launch_impairment(ctx.scenario);
                tags.insert("aws:cloudformation:stack-name".into(), req.name.clone());
                tags.insert("aws:cloudformation:stack-id".into(), stack_id.to_string());
                tags.insert("aws:cloudformation:logical-id".into(), r.logical_id.clone());
                instance.tags = tags;
                launches.push(instance);
                Physical {
                    id,
                    kind: INSTANCE.into(),
                    image_id: Some(image),
                }
            }
        };
        resources.insert(r.logical_id.clone(), physical);
    }
    let env = template_env(req, stack_id, &region, &params, &resources);
    let outputs = parsed
        .outputs
        .iter()
        .map(|(name, v)| {
            (
                name.clone(),
                env.eval(v)
                    .unwrap_or_else(|m| format!("<unsupported by the simulator: {m}>")),
            )
        })
        .collect();
    Ok(Deployed {
        resources,
        outputs,
        launches,
    })
}

fn create_stack(ctx: &mut Ctx<'_>, req: &StackRequest) -> Result<String, CloudError> {
    check_stack_name(ctx, &req.name)?;
    check_token(ctx, &req.client_request_token)?;
    if let Some(i) = find(ctx, &req.name, false) {
        let stack = &ctx.here().stacks[i];
        if !req.client_request_token.is_empty() && stack.tokens.contains(&req.client_request_token) {
            return Ok(stack.id.clone());
        }
        return Err(ctx.err("AlreadyExistsException", format!("Stack [{}] already exists", req.name)));
    }
    let (_, effective) = prepare(ctx, req)?;
    let now = ctx.now;
    let id = format!(
        "arn:aws:cloudformation:{}:{ACCOUNT}:stack/{}/{}",
        ctx.region,
        req.name,
        ctx.world.ids.new_uuid()
    );
    let done = now + ctx.scenario.durations.stack;
    let outcome = deploy(ctx, req, &id, &BTreeMap::new(), done, "create");
    let (resources, outputs, failure) = match outcome {
        Ok(d) => {
            let region = ctx.here();
            for instance in d.launches {
                region.instances.insert(instance.id.clone(), instance);
            }
            (d.resources, d.outputs, None)
        }
        Err(f) => (BTreeMap::new(), BTreeMap::new(), Some(f)),
    };
    let stack = StackRec {
        id: id.clone(),
        name: req.name.clone(),
        template: req.template_body.clone(),
        parameters: req.parameters.clone(),
        effective,
        tags: req.tags.clone(),
        resources,
        outputs,
        previous_outputs: BTreeMap::new(),
        op: StackOp {
            kind: OpKind::Create,
            started: now,
            done,
            failure,
        },
        tokens: [req.client_request_token.clone()]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect(),
    };
    ctx.here().stacks.push(stack);
    Ok(id)
}

fn update_stack(ctx: &mut Ctx<'_>, req: &StackRequest) -> Result<String, CloudError> {
    check_stack_name(ctx, &req.name)?;
    check_token(ctx, &req.client_request_token)?;
    let now = ctx.now;
    let Some(i) = find(ctx, &req.name, false) else {
        return Err(ctx.err("ValidationError", format!("Stack [{}] does not exist", req.name)));
    };
    let stack = ctx.here().stacks[i].clone();
    if !req.client_request_token.is_empty() && stack.tokens.contains(&req.client_request_token) {
        return Ok(stack.id);
    }
    let status = stack.status(now);
    if !matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "UPDATE_ROLLBACK_COMPLETE"
    ) {
        let message = format!("Stack:{} is in {status} state and can not be updated.", stack.id);
        return Err(ctx.err("ValidationError", message));
    }
    let (_, effective) = prepare(ctx, req)?;
    // Dynamic references are compared as written: a new value behind `{{resolve:ssm:NAME}}` alone is no update.
    if req.template_body == stack.template
        && req.parameters == stack.parameters
        && effective == stack.effective
        && req.tags == stack.tags
    {
        return Err(ctx.err("ValidationError", "No updates are to be performed."));
    }
    let done = now + ctx.scenario.durations.stack;
    let outcome = deploy(ctx, req, &stack.id, &stack.resources, done, "update");
    let region = ctx.here();
    let rec = &mut region.stacks[i];
    match outcome {
        Ok(d) => {
            let kept: Vec<&str> = d.resources.values().map(|p| p.id.as_str()).collect();
            let replaced: Vec<String> = rec
                .resources
                .values()
                .filter(|p| p.kind == INSTANCE && !kept.contains(&p.id.as_str()))
                .map(|p| p.id.clone())
                .collect();
            rec.template = req.template_body.clone();
            rec.parameters = req.parameters.clone();
            rec.effective = effective;
            rec.tags = req.tags.clone();
            rec.previous_outputs = std::mem::replace(&mut rec.outputs, d.outputs);
            rec.resources = d.resources;
            rec.op = StackOp {
                kind: OpKind::Update,
                started: now,
                done,
                failure: None,
            };
            for id in replaced {
                if let Some(instance) = region.instances.get_mut(&id) {
                    instance.terminate(done, done + TERMINATION);
                }
            }
            for instance in d.launches {
                region.instances.insert(instance.id.clone(), instance);
            }
        }
        Err(f) => {
            rec.op = StackOp {
                kind: OpKind::Update,
                started: now,
                done,
                failure: Some(f),
            }
        }
    }
    let rec = &mut region.stacks[i];
    if !req.client_request_token.is_empty() {
        rec.tokens.push(req.client_request_token.clone());
    }
    Ok(rec.id.clone())
}

fn delete_stack(ctx: &mut Ctx<'_>, name: &str, token: &str) -> Result<(), CloudError> {
    check_token(ctx, token)?;
    let now = ctx.now;
    // Deleting a stack that does not exist succeeds.
    let Some(i) = find(ctx, name, false) else { return Ok(()) };
    let done = now + ctx.scenario.durations.stack_delete;
    let region = ctx.here();
    let rec = &mut region.stacks[i];
    if (!token.is_empty() && rec.tokens.iter().any(|t| t == token)) || rec.op.kind == OpKind::Delete {
        return Ok(());
    }
    rec.op = StackOp {
        kind: OpKind::Delete,
        started: now,
        done,
        failure: None,
    };
    if !token.is_empty() {
        rec.tokens.push(token.to_string());
    }
    let instances: Vec<String> = rec
        .resources
        .values()
        .filter(|p| p.kind == INSTANCE)
        .map(|p| p.id.clone())
        .collect();
    for id in instances {
        if let Some(instance) = region.instances.get_mut(&id) {
            instance.terminate(now, done);
        }
    }
    Ok(())
}

fn describe_stack(ctx: &mut Ctx<'_>, name: &str) -> Result<Option<Stack>, CloudError> {
    let now = ctx.now;
    let Some(i) = find(ctx, name, true) else {
        return Ok(None);
    };
    let rec = &ctx.here().stacks[i];
    Ok(Some(Stack {
        stack_id: rec.id.clone(),
        name: rec.name.clone(),
        status: rec.status(now).to_string(),
        status_reason: rec.failure(now).map(|f| f.status_reason.clone()),
        outputs: rec.visible_outputs(now).clone(),
    }))
}

fn stack_failure_reason(ctx: &mut Ctx<'_>, name: &str) -> Result<Option<String>, CloudError> {
    let now = ctx.now;
    let Some(i) = find(ctx, name, true) else {
        return Err(ctx.err("ValidationError", format!("Stack [{name}] does not exist")));
    };
    Ok(ctx.here().stacks[i].failure(now).map(|f| f.resource_reason.clone()))
}

#[async_trait]
impl CloudFormation for Sim {
    async fn describe_stack(&self, region: &str, name: &str) -> Result<Option<Stack>, CloudError> {
        self.call("cloudformation", "DescribeStacks", region, |ctx| {
            describe_stack(ctx, name)
        })
        .await
    }

    async fn create_stack(&self, region: &str, req: &StackRequest) -> Result<String, CloudError> {
        self.call("cloudformation", "CreateStack", region, |ctx| create_stack(ctx, req))
            .await
    }

    async fn update_stack(&self, region: &str, req: &StackRequest) -> Result<String, CloudError> {
        self.call("cloudformation", "UpdateStack", region, |ctx| update_stack(ctx, req))
            .await
    }

    async fn delete_stack(&self, region: &str, name: &str, client_request_token: &str) -> Result<(), CloudError> {
        self.call("cloudformation", "DeleteStack", region, |ctx| {
            delete_stack(ctx, name, client_request_token)
        })
        .await
    }

    async fn stack_failure_reason(&self, region: &str, name: &str) -> Result<Option<String>, CloudError> {
        self.call("cloudformation", "DescribeStackEvents", region, |ctx| {
            stack_failure_reason(ctx, name)
        })
        .await
    }

    async fn validate_template(&self, region: &str, template_body: &str) -> Result<(), CloudError> {
        self.call("cloudformation", "ValidateTemplate", region, |ctx| {
            template::parse(template_body)
                .map(|_| ())
                .map_err(|m| ctx.err("ValidationError", m))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::sim::ids::base_image_id;
    use crate::cloud::sim::testutil::*;
    use crate::cloud::{Cloud, CreateImage, PutParameter};

    const DYNAMIC: &str = r#"
Resources:
  Web:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: "{{resolve:ssm:/dr/web/ami}}"
      InstanceType: t3.micro
      Tags: [{Key: Name, Value: !Sub "${AWS::StackName}-web"}]
Outputs:
  InstanceId: {Value: !Ref Web}
  ImageId: {Value: !GetAtt Web.ImageId}
  Role: {Value: dr}
"#;

    const SSM_PARAMETER: &str = r#"
Parameters:
  Ami: {Type: "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", Default: /dr/web/ami}
Resources:
  Web: {Type: AWS::EC2::Instance, Properties: {ImageId: !Ref Ami}}
Outputs:
  InstanceId: {Value: {Ref: Web}}
"#;

    fn stack(template: &str, token: &str) -> StackRequest {
        StackRequest {
            name: "dr-web".into(),
            template_body: template.into(),
            parameters: BTreeMap::new(),
            tags: BTreeMap::from([("drflow:workflow".into(), "rehearsal".into())]),
            client_request_token: token.into(),
        }
    }

    async fn publish(cloud: &Cloud, region: &str, ami: &str) {
        let req = PutParameter {
            name: "/dr/web/ami".into(),
            value: ami.into(),
            data_type: "aws:ec2:image".into(),
            description: None,
            overwrite: true,
            tags: BTreeMap::new(),
        };
        cloud.ssm.put_parameter(region, &req).await.unwrap();
    }

    async fn status(cloud: &Cloud) -> Option<Stack> {
        cloud.cloudformation.describe_stack(WEST, "dr-web").await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn stack_resolves_the_ssm_reference_and_runs_that_ami() {
        let cloud = sim().cloud();
        let ami = base_image_id(WEST);
        publish(&cloud, WEST, &ami).await;
        let cfn = &cloud.cloudformation;
        cfn.validate_template(WEST, DYNAMIC).await.unwrap();
        let id = cfn.create_stack(WEST, &stack(DYNAMIC, "create-1")).await.unwrap();
        assert!(
            id.starts_with("arn:aws:cloudformation:us-west-2:123456789012:stack/dr-web/"),
            "{id}"
        );
        // Retry with the same token: same stack, no second operation.
        assert_eq!(cfn.create_stack(WEST, &stack(DYNAMIC, "create-1")).await.unwrap(), id);
        let e = cfn.create_stack(WEST, &stack(DYNAMIC, "create-2")).await.unwrap_err();
        assert_eq!(e.code, "AlreadyExistsException");

        let s = status(&cloud).await.unwrap();
        assert_eq!(s.status, "CREATE_IN_PROGRESS");
        assert!(s.is_in_progress() && s.outputs.is_empty());
        sleep(120).await;
        let s = status(&cloud).await.unwrap();
        assert_eq!(s.status, "CREATE_COMPLETE");
        assert!(!s.is_failed());
        assert_eq!(s.outputs["ImageId"], ami);
        assert_eq!(s.outputs["Role"], "dr");
        let instance = &cloud
            .ec2
            .describe_instances(WEST, &[s.outputs["InstanceId"].clone()])
            .await
            .unwrap()[0];
        assert_eq!(
            (instance.state.as_str(), instance.image_id.as_str()),
            ("running", ami.as_str())
        );
        assert_eq!(instance.tags["aws:cloudformation:stack-name"], "dr-web");
        assert_eq!(instance.tags["Name"], "dr-web-web");
        assert_eq!(instance.tags["drflow:workflow"], "rehearsal");
        assert_eq!(cfn.stack_failure_reason(WEST, "dr-web").await.unwrap(), None);
        // Describe by stack id works too.
        assert_eq!(cfn.describe_stack(WEST, &id).await.unwrap().unwrap().name, "dr-web");
    }

    #[tokio::test(start_paused = true)]
    async fn stack_rolls_back_for_a_missing_ami() {
        let cloud = sim().cloud();
        // The parameter names an AMI of another region: a text parameter stores it anyway.
        let req = PutParameter {
            name: "/dr/web/ami".into(),
            value: "ami-0ffffffffffffffff".into(),
            data_type: "text".into(),
            description: None,
            overwrite: false,
            tags: BTreeMap::new(),
        };
        cloud.ssm.put_parameter(WEST, &req).await.unwrap();
        let cfn = &cloud.cloudformation;
        cfn.create_stack(WEST, &stack(DYNAMIC, "c1")).await.unwrap();
        assert_eq!(cfn.stack_failure_reason(WEST, "dr-web").await.unwrap(), None);
        sleep(60).await;
        assert_eq!(status(&cloud).await.unwrap().status, "ROLLBACK_IN_PROGRESS");
        sleep(60).await;
        let s = status(&cloud).await.unwrap();
        assert_eq!(s.status, "ROLLBACK_COMPLETE");
        assert!(s.is_failed());
        assert_eq!(
            s.status_reason.as_deref(),
            Some("The following resource(s) failed to create: [Web]. Rollback requested by user.")
        );
        let reason = cfn.stack_failure_reason(WEST, "dr-web").await.unwrap();
        assert_eq!(
            reason.as_deref(),
            Some("The image id '[ami-0ffffffffffffffff]' does not exist")
        );
        // Only the default instance exists.
        assert_eq!(cloud.ec2.describe_instances(WEST, &[]).await.unwrap().len(), 1);
        // A ROLLBACK_COMPLETE stack cannot be updated, only deleted.
        let e = cfn.update_stack(WEST, &stack(SSM_PARAMETER, "u1")).await.unwrap_err();
        assert!(
            e.message.contains("ROLLBACK_COMPLETE state and can not be updated"),
            "{}",
            e.message
        );
        assert_eq!(
            cfn.create_stack(WEST, &stack(DYNAMIC, "c2")).await.unwrap_err().code,
            "AlreadyExistsException"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn missing_dynamic_reference_rolls_back_naming_the_parameter() {
        let cloud = sim().cloud();
        cloud
            .cloudformation
            .create_stack(WEST, &stack(DYNAMIC, "c1"))
            .await
            .unwrap();
        sleep(120).await;
        let s = status(&cloud).await.unwrap();
        assert_eq!(s.status, "ROLLBACK_COMPLETE");
        assert!(s.status_reason.unwrap().contains("[/dr/web/ami]"));
        // A missing SSM parameter type is refused at once.
        let mut req = stack(SSM_PARAMETER, "c2");
        req.name = "other".into();
        let e = cloud.cloudformation.create_stack(WEST, &req).await.unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("ValidationError", "Parameters: [/dr/web/ami] cannot be found.")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn update_replaces_the_instance_or_reports_no_updates() {
        let cloud = sim().cloud();
        let cfn = &cloud.cloudformation;
        let base = base_image_id(WEST);
        publish(&cloud, WEST, &base).await;
        cfn.create_stack(WEST, &stack(SSM_PARAMETER, "c1")).await.unwrap();
        // Not while in progress.
        let e = cfn.update_stack(WEST, &stack(SSM_PARAMETER, "u0")).await.unwrap_err();
        assert!(e.message.contains("CREATE_IN_PROGRESS"), "{}", e.message);
        sleep(120).await;
        let first = status(&cloud).await.unwrap().outputs["InstanceId"].clone();

        let e = cfn.update_stack(WEST, &stack(SSM_PARAMETER, "u1")).await.unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("ValidationError", "No updates are to be performed.")
        );
        assert_eq!(e.kind, crate::cloud::ErrorKind::Validation);

        // A new AMI behind the SSM parameter type is an update.
        let create = CreateImage {
            instance_id: first.clone(),
            name: "web-next".into(),
            no_reboot: true,
            tags: BTreeMap::new(),
        };
        let next = cloud.ec2.create_image(WEST, &create).await.unwrap();
        sleep(300).await;
        publish(&cloud, WEST, &next).await;
        let id = cfn.update_stack(WEST, &stack(SSM_PARAMETER, "u2")).await.unwrap();
        assert_eq!(cfn.update_stack(WEST, &stack(SSM_PARAMETER, "u2")).await.unwrap(), id);
        let s = status(&cloud).await.unwrap();
        assert_eq!(s.status, "UPDATE_IN_PROGRESS");
        assert_eq!(s.outputs["InstanceId"], first, "old outputs while in progress");
        sleep(120).await;
        let s = status(&cloud).await.unwrap();
        assert_eq!(s.status, "UPDATE_COMPLETE");
        let second = s.outputs["InstanceId"].clone();
        assert_ne!(second, first);
        let found = cloud.ec2.describe_instances(WEST, &[first, second]).await.unwrap();
        assert_eq!(
            (found[0].state.as_str(), found[1].state.as_str()),
            ("shutting-down", "running")
        );
        assert_eq!(found[1].image_id, next);

        // An update to a missing AMI rolls back and keeps the running instance.
        let mut req = stack(SSM_PARAMETER, "u3");
        req.template_body = DYNAMIC.replace("{{resolve:ssm:/dr/web/ami}}", "ami-0ffffffffffffffff");
        cfn.update_stack(WEST, &req).await.unwrap();
        sleep(120).await;
        let s = status(&cloud).await.unwrap();
        assert_eq!(s.status, "UPDATE_ROLLBACK_COMPLETE");
        assert!(s.is_failed());
        assert_eq!(s.outputs["InstanceId"], found[1].instance_id);
        let reason = cfn.stack_failure_reason(WEST, "dr-web").await.unwrap().unwrap();
        assert!(reason.contains("ami-0ffffffffffffffff"), "{reason}");
        // The stack can be updated again after an update rollback.
        let mut req = stack(SSM_PARAMETER, "u4");
        req.tags.insert("extra".into(), "tag".into());
        cfn.update_stack(WEST, &req).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn delete_terminates_instances_then_the_stack_is_gone() {
        let cloud = sim().cloud();
        let cfn = &cloud.cloudformation;
        publish(&cloud, WEST, &base_image_id(WEST)).await;
        let id = cfn.create_stack(WEST, &stack(DYNAMIC, "c1")).await.unwrap();
        sleep(120).await;
        let instance = status(&cloud).await.unwrap().outputs["InstanceId"].clone();
        cfn.delete_stack(WEST, "dr-web", "d1").await.unwrap();
        cfn.delete_stack(WEST, "dr-web", "d1").await.unwrap();
        assert_eq!(status(&cloud).await.unwrap().status, "DELETE_IN_PROGRESS");
        let state = |cloud: Cloud, id: String| async move {
            cloud.ec2.describe_instances(WEST, &[id]).await.unwrap()[0]
                .state
                .clone()
        };
        assert_eq!(state(cloud.clone(), instance.clone()).await, "shutting-down");
        sleep(60).await;
        assert_eq!(status(&cloud).await, None);
        assert_eq!(state(cloud.clone(), instance).await, "terminated");
        assert_eq!(
            cfn.describe_stack(WEST, &id).await.unwrap().unwrap().status,
            "DELETE_COMPLETE"
        );
        // Deleting what is gone succeeds; the name can be used again.
        cfn.delete_stack(WEST, "dr-web", "d2").await.unwrap();
        let again = cfn.create_stack(WEST, &stack(DYNAMIC, "c1")).await.unwrap();
        assert_ne!(again, id);
        let e = cfn.stack_failure_reason(WEST, "nope").await.unwrap_err();
        assert_eq!(e.code, "ValidationError");
    }

    #[tokio::test(start_paused = true)]
    async fn lost_stack_responses_retried_with_the_same_token_repeat_no_operation() {
        // The glob matches CreateStack, UpdateStack and DeleteStack; each loses the response of its first call.
        let yaml = "faults: [{operation: 'cloudformation:*Stack', lose_response: true}]";
        let sim = Sim::new(crate::cloud::sim::Scenario::from_yaml_str(yaml, None).unwrap());
        let cloud = sim.cloud();
        let cfn = &cloud.cloudformation;
        publish(&cloud, WEST, &base_image_id(WEST)).await;
        let stack_rec = || sim.lock().world.regions[WEST].stacks.clone();
        let instances = || sim.lock().world.regions[WEST].instances.len();

        let e = cfn.create_stack(WEST, &stack(SSM_PARAMETER, "c1")).await.unwrap_err();
        assert_eq!(e.code, "InternalError");
        assert!(e.kind.is_transient());
        let created = stack_rec();
        assert_eq!(
            (created.len(), instances()),
            (1, 2),
            "the lost call created the stack and its instance"
        );
        sleep(5).await;
        let id = cfn.create_stack(WEST, &stack(SSM_PARAMETER, "c1")).await.unwrap();
        assert_eq!(stack_rec(), created, "the retry is no second operation");
        assert_eq!((id.as_str(), instances()), (created[0].id.as_str(), 2));
        sleep(120).await;
        assert_eq!(status(&cloud).await.unwrap().status, "CREATE_COMPLETE");

        let mut update = stack(SSM_PARAMETER, "u1");
        update.tags.insert("team".into(), "dr".into());
        assert_eq!(cfn.update_stack(WEST, &update).await.unwrap_err().code, "InternalError");
        let updated = stack_rec();
        assert_eq!(updated[0].op.kind, OpKind::Update);
        sleep(5).await;
        // Still UPDATE_IN_PROGRESS: the token answers before the state is checked.
        assert_eq!(cfn.update_stack(WEST, &update).await.unwrap(), id);
        assert_eq!(stack_rec(), updated);
        sleep(120).await;
        assert_eq!(status(&cloud).await.unwrap().status, "UPDATE_COMPLETE");

        assert_eq!(
            cfn.delete_stack(WEST, "dr-web", "d1").await.unwrap_err().code,
            "InternalError"
        );
        let deleting = stack_rec();
        assert_eq!(deleting[0].op.kind, OpKind::Delete);
        sleep(5).await;
        cfn.delete_stack(WEST, "dr-web", "d1").await.unwrap();
        assert_eq!(stack_rec(), deleting);
        assert_eq!(deleting[0].tokens, ["c1", "u1", "d1"]);
        sleep(60).await;
        assert_eq!(status(&cloud).await, None);
        let log: Vec<_> = sim
            .calls()
            .into_iter()
            .filter(|c| c.mutating && c.service == "cloudformation")
            .map(|c| (c.operation, c.response_lost))
            .collect();
        let expected = [
            "CreateStack",
            "CreateStack",
            "UpdateStack",
            "UpdateStack",
            "DeleteStack",
            "DeleteStack",
        ];
        assert_eq!(log.iter().map(|(op, _)| op.as_str()).collect::<Vec<_>>(), expected);
        assert!(
            log.iter().enumerate().all(|(i, (_, lost))| *lost == (i % 2 == 0)),
            "{log:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn validates_templates_names_and_tokens() {
        let cfn = sim().cloud().cloudformation;
        let e = cfn.validate_template(EAST, "Description: nothing").await.unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.kind),
            ("ValidationError", crate::cloud::ErrorKind::Validation)
        );
        assert!(
            cfn.validate_template(EAST, "Resources: {")
                .await
                .unwrap_err()
                .message
                .contains("not well-formed")
        );
        assert!(cfn.validate_template(EAST, "[1, 2]").await.is_err());
        let mut req = stack(DYNAMIC, "has_underscore");
        assert_eq!(cfn.create_stack(EAST, &req).await.unwrap_err().code, "ValidationError");
        req.client_request_token = "ok-1".into();
        req.name = "1bad".into();
        assert_eq!(cfn.create_stack(EAST, &req).await.unwrap_err().code, "ValidationError");
        req.name = "good".into();
        req.parameters.insert("Nope".into(), "x".into());
        let e = cfn.create_stack(EAST, &req).await.unwrap_err();
        assert!(e.message.contains("do not exist in the template"), "{}", e.message);
        assert_eq!(cfn.describe_stack(EAST, "good").await.unwrap(), None);
    }
}
