//! `ec2.wait_image`: wait until an AMI is `available`.

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::values::{str_in, values};
use crate::actions::{Action, ActionError, Ctx, Poll, Values};
use crate::workflow::spec::{out, req};
use crate::workflow::{ActionKind, ActionSpec, InputKind::*, Role};

pub(crate) struct WaitImage;

static SPEC: ActionSpec = ActionSpec {
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
    role: Some(Role::WaitImage),
    default_timeout_secs: 3 * 3600,
    releases: Some("image_id"),
    ..ActionSpec::BASE
};

const FAILED_STATES: &[&str] = &["failed", "invalid", "deregistered", "error", "disabled"];

#[async_trait]
impl Action for WaitImage {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn poll(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
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
}
