//! `ec2.copy_image`: copy an AMI into the step's region (CopyImage is called in the destination region, with the
//! step's token as its ClientToken).

use crate::actions::sfn::{Arg, Call, Form, Op, answer, if_given, input, lit};
use async_trait::async_trait;

use crate::actions::effects::{Effects, StepFacts};
use crate::actions::values::{bool_in, map_in, opt_str, str_in};
use crate::actions::{Action, ActionError, Ctx, Resource, Values};
use crate::cloud::{Cloud, CopyImage as Request};
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
        opt(
            "encrypted",
            Bool,
            "Encrypt the copy's snapshots (also when the source is not encrypted), with `kms_key_id` or the account's default EBS key.",
        ),
        opt(
            "kms_key_id",
            Str,
            "A KMS key of the step's region and account (id, ARN, or alias/NAME) for the copy; implies `encrypted`. Checked before the run changes anything.",
        ),
    ],
    outputs: &[out("image_id", "The AMI id in this region (pending).")],
    calls: &["ec2:CopyImage"],
    gate_calls: &["kms:DescribeKey", "kms:GetKeyPolicy", "sts:GetCallerIdentity"],
    extra_iam: &[
        "ec2:CreateTags",
        "kms:CreateGrant",
        "kms:Decrypt",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
    ],
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
                "Encrypted",
                Arg::Choose(
                    "kms_key_id",
                    Box::new(lit(true)),
                    Box::new(if_given("encrypted", input("encrypted"))),
                ),
            )
            .with("KmsKeyId", if_given("kms_key_id", input("kms_key_id")))
            .with("TagSpecifications", super::image_tags("tags"));
        Ok(Form {
            ops: vec![Op::Call(call)],
            outputs: vec![("image_id", answer("copy", "ImageId"))],
        })
    }

    fn has_gate(&self, known: &Values) -> bool {
        opt_str(known, "kms_key_id").is_some()
    }

    async fn gate(&self, ctx: &Ctx<'_>, _run: &Cloud, known: &Values) -> Result<(), ActionError> {
        match opt_str(known, "kms_key_id") {
            Some(key) => super::usable_key(ctx, key).await,
            None => Ok(()),
        }
    }
}

async fn copy(ctx: &Ctx<'_>, inputs: &Values) -> Result<String, ActionError> {
    let req = Request {
        source_region: str_in(inputs, "source_region")?.to_string(),
        source_image_id: str_in(inputs, "source_image_id")?.to_string(),
        name: str_in(inputs, "name")?.to_string(),
        client_token: ctx.token.to_string(),
        tags: map_in(inputs, "tags"),
        encrypted: bool_in(inputs, "encrypted") || opt_str(inputs, "kms_key_id").is_some(),
        kms_key_id: opt_str(inputs, "kms_key_id").map(str::to_string),
    };
    Ok(ctx.cloud.ec2.copy_image(ctx.region, &req).await?)
}
