//! `ec2.create_image`: create an AMI from an instance. CreateImage takes no client token: the step names the image
//! and tags it with its token, so a retried or resumed step finds its own image instead of making a second one.

use crate::actions::sfn::{Call, Form, Op, answer, if_given, input};
use async_trait::async_trait;

use crate::actions::effects::{Effects, StepFacts};
use crate::actions::values::{bool_in, map_in, str_in};
use crate::actions::{Action, ActionError, Ctx, Resource, Values};
use crate::cloud::CreateImage as Request;
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionSpec, InputKind::*, Preflight, Role};

pub(crate) struct CreateImage;

static SPEC: ActionSpec = ActionSpec {
    name: "ec2.create_image",
    summary: "Create an AMI from an instance (guarded by the journal: CreateImage takes no client token).",
    inputs: &[
        req("instance_id", Str, "The instance."),
        req("name", Str, "AMI name (unique per account and region)."),
        opt(
            "no_reboot",
            Bool,
            "Do not reboot the instance (crash-consistent image). Default false.",
        ),
        opt("tags", Map, "Tags for the AMI and its snapshots."),
    ],
    outputs: &[out("image_id", "The new AMI id (pending).")],
    calls: &["ec2:CreateImage", "ec2:DescribeImages"],
    extra_iam: &["ec2:CreateTags"],
    preflight: &[Preflight::Instance { input: "instance_id" }],
    role: Some(Role::CreateImage),
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for CreateImage {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        ctx.start_once("image_id", || create(ctx, inputs)).await
    }

    fn effects(&self, step: &StepFacts<'_>, _: &[Resource]) -> Effects {
        super::image_effects(step)
    }

    /// CreateImage takes no client token: a retried or redriven state finds the image its earlier attempt made by
    /// name (`InvalidAMIName.Duplicate`) only with `drflow run`'s journal; here a duplicate name fails the step.
    fn sfn(&self) -> Result<Form, &'static str> {
        let call = Call::new("create", "ec2", "CreateImage")
            .with("InstanceId", input("instance_id"))
            .with("Name", input("name"))
            .with("NoReboot", if_given("no_reboot", input("no_reboot")))
            .with("TagSpecifications", super::image_tags("tags"));
        Ok(Form {
            ops: vec![Op::Call(call)],
            outputs: vec![("image_id", answer("create", "ImageId"))],
        })
    }
}

async fn create(ctx: &Ctx<'_>, inputs: &Values) -> Result<String, ActionError> {
    let mut tags = map_in(inputs, "tags");
    tags.insert("drflow:token".into(), ctx.token.to_string());
    let req = Request {
        instance_id: str_in(inputs, "instance_id")?.to_string(),
        name: str_in(inputs, "name")?.to_string(),
        no_reboot: bool_in(inputs, "no_reboot"),
        tags,
    };
    match ctx.cloud.ec2.create_image(ctx.region, &req).await {
        Ok(id) => Ok(id),
        // An earlier attempt (or a process that died before journaling it) created it: the name is taken by an
        // image carrying this step's token.
        Err(e) if e.code == "InvalidAMIName.Duplicate" => {
            match ctx.cloud.ec2.find_image_by_name(ctx.region, &req.name).await? {
                Some(img) if img.tags.get("drflow:token").map(String::as_str) == Some(ctx.token) => Ok(img.image_id),
                _ => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}
