//! `ec2.copy_image`: copy an AMI into the step's region (CopyImage is called in the destination region, with the
//! step's token as its ClientToken).

use crate::actions::sfn::{Arg, Call, Form, Op, answer, input, lit, tags};
use async_trait::async_trait;

use crate::actions::effects::{Effects, StepFacts};
use crate::actions::values::{map_in, str_in};
use crate::actions::{Action, ActionError, Ctx, Resource, Values};
use crate::cloud::CopyImage as Request;
use crate::workflow::quota;
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionSpec, InputKind::*, Role};

pub(crate) struct CopyImage;

static SPEC: ActionSpec = ActionSpec {
    name: "ec2.copy_image",
    summary: "Copy an AMI into the step's region (CopyImage is called in the destination region).",
    inputs: &[
        req("source_region", Str, "Region code of the source AMI."),
        req("source_image_id", Str, "The source AMI id."),
        req("name", Str, "Name of the copy."),
        opt(
            "tags",
            Map,
            "Tags for the copy and its snapshots (a copy carries none of its source's).",
        ),
    ],
    outputs: &[out("image_id", "The AMI id in this region (pending).")],
    calls: &["ec2:CopyImage"],
    extra_iam: &["ec2:CreateTags"],
    role: Some(Role::CopyImage),
    quotas: &[quota::IMAGE_COPIES, quota::SNAPSHOT_COPIES],
    holds: Some("image_id"),
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for CopyImage {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        ctx.start_once("image_id", || copy(ctx, inputs)).await
    }

    fn effects(&self, step: &StepFacts<'_>, _: &[Resource]) -> Effects {
        super::image_effects(step)
    }

    /// CopyImage in the destination region with the step's token as ClientToken (a retry or redrive finds the
    /// same copy).
    fn sfn(&self) -> Result<Form, &'static str> {
        let call = Call::new("copy", "ec2", "CopyImage")
            .with("SourceRegion", input("source_region"))
            .with("SourceImageId", input("source_image_id"))
            .with("Name", input("name"))
            .with("ClientToken", Arg::Token)
            .with(
                "TagSpecifications",
                Arg::List(vec![
                    Arg::Map(vec![("ResourceType", lit("image")), ("Tags", tags("tags"))]),
                    Arg::Map(vec![("ResourceType", lit("snapshot")), ("Tags", tags("tags"))]),
                ]),
            );
        Ok(Form {
            ops: vec![Op::Call(call)],
            outputs: vec![("image_id", answer("copy", "ImageId"))],
        })
    }
}

async fn copy(ctx: &Ctx<'_>, inputs: &Values) -> Result<String, ActionError> {
    let req = Request {
        source_region: str_in(inputs, "source_region")?.to_string(),
        source_image_id: str_in(inputs, "source_image_id")?.to_string(),
        name: str_in(inputs, "name")?.to_string(),
        client_token: ctx.token.to_string(),
        tags: map_in(inputs, "tags"),
    };
    Ok(ctx.cloud.ec2.copy_image(ctx.region, &req).await?)
}
