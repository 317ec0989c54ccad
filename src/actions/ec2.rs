//! EC2 images: wait for an AMI, create one from an instance, copy one across regions.

use serde_json::Value;

use super::spec::{InputKind::*, opt, out, req};
use super::{ActionError, ActionKind, ActionSpec, Ctx, Poll, Values, bool_in, map_in, str_in, values};
use crate::cloud::{CopyImage, CreateImage};

pub static WAIT_IMAGE: ActionSpec = ActionSpec {
    name: "ec2.wait_image",
    summary: "Wait until an AMI is `available`; fail at once if it is failed, invalid, deregistered or gone.",
    kind: ActionKind::Wait,
    inputs: &[req("image_id", Str, "The AMI id.")],
    outputs: &[
        out("image_id", "The AMI id."),
        out("state", "available"),
        out("creation_date", "Unix seconds, when AWS reports it."),
    ],
    calls: &["ec2:DescribeImages"],
    extra_iam: &[],
    mutates: false,
    needs_region: true,
    default_timeout_secs: 3 * 3600,
};

pub static CREATE_IMAGE: ActionSpec = ActionSpec {
    name: "ec2.create_image",
    summary: "Create an AMI from an instance (guarded by the journal: CreateImage takes no client token).",
    kind: ActionKind::Call,
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
    mutates: true,
    needs_region: true,
    default_timeout_secs: 120,
};

pub static COPY_IMAGE: ActionSpec = ActionSpec {
    name: "ec2.copy_image",
    summary: "Copy an AMI into the step's region (CopyImage is called in the destination region).",
    kind: ActionKind::Call,
    inputs: &[
        req("source_region", Str, "Region code of the source AMI."),
        req("source_image_id", Str, "The source AMI id."),
        req("name", Str, "Name of the copy."),
    ],
    outputs: &[out("image_id", "The AMI id in this region (pending).")],
    calls: &["ec2:CopyImage"],
    extra_iam: &["ec2:CreateTags"],
    mutates: true,
    needs_region: true,
    default_timeout_secs: 120,
};

const FAILED_STATES: &[&str] = &["failed", "invalid", "deregistered", "error", "disabled"];

pub(super) async fn poll_image(ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
    let id = str_in(inputs, "image_id")?;
    let images = ctx.cloud.ec2.describe_images(ctx.region, &[id.to_string()]).await?;
    let Some(image) = images.into_iter().find(|i| i.image_id == id) else {
        return Err(ActionError::failed(
            "InvalidAMIID.NotFound",
            format!("AMI {id} does not exist in {}", ctx.region),
        ));
    };
    if FAILED_STATES.contains(&image.state.as_str()) {
        return Err(ActionError::failed(
            "ImageFailed",
            format!(
                "AMI {id} in {} is {}: {}",
                ctx.region,
                image.state,
                image.state_reason.as_deref().unwrap_or("AWS gave no reason")
            ),
        ));
    }
    if image.state != "available" {
        return Ok(Poll::Pending(image.state));
    }
    Ok(Poll::Done(values([
        ("image_id", Value::String(image.image_id)),
        ("state", Value::String(image.state)),
        ("creation_date", image.creation_date.map_or(Value::Null, Value::from)),
    ])))
}

pub(super) async fn create_image(ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
    if let Some(id) = ctx.recorded_str("image_id") {
        return Ok(values([("image_id", Value::String(id))]));
    }
    let mut tags = map_in(inputs, "tags");
    tags.insert("drflow:token".into(), ctx.token.to_string());
    let req = CreateImage {
        instance_id: str_in(inputs, "instance_id")?.to_string(),
        name: str_in(inputs, "name")?.to_string(),
        no_reboot: bool_in(inputs, "no_reboot"),
        tags,
    };
    let id = match ctx.cloud.ec2.create_image(ctx.region, &req).await {
        Ok(id) => id,
        // An earlier attempt (or a process that died before journaling it) created it: the name is taken by an
        // image carrying this step's token.
        Err(e) if e.code == "InvalidAMIName.Duplicate" => {
            match ctx.cloud.ec2.find_image_by_name(ctx.region, &req.name).await? {
                Some(img) if img.tags.get("drflow:token").map(String::as_str) == Some(ctx.token) => img.image_id,
                _ => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    ctx.recorder.record("image_id", &Value::String(id.clone()));
    Ok(values([("image_id", Value::String(id))]))
}

pub(super) async fn copy_image(ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
    if let Some(id) = ctx.recorded_str("image_id") {
        return Ok(values([("image_id", Value::String(id))]));
    }
    let req = CopyImage {
        source_region: str_in(inputs, "source_region")?.to_string(),
        source_image_id: str_in(inputs, "source_image_id")?.to_string(),
        name: str_in(inputs, "name")?.to_string(),
        client_token: ctx.token.to_string(),
    };
    let id = ctx.cloud.ec2.copy_image(ctx.region, &req).await?;
    ctx.recorder.record("image_id", &Value::String(id.clone()));
    Ok(values([("image_id", Value::String(id))]))
}
