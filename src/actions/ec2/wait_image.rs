//! `ec2.wait_image`: wait until an AMI is `available`.

use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, fmt, input, lit};
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

    /// DescribeImages until `available`; an AMI that is gone or in a failed state ends it with AWS's reason.
    /// `creation_date` is AWS's ISO-8601 time here (Unix seconds in `drflow run`).
    fn sfn(&self) -> Result<Form, &'static str> {
        let call = Call::new("images", "ec2", "DescribeImages").with("ImageIds", Arg::List(vec![input("image_id")]));
        let state = || answer("image", "v.State");
        let then = vec![
            Op::Fail {
                when: Cond::Empty(answer("images", "Images")),
                error: lit("InvalidAMIID.NotFound"),
                cause: fmt("AMI {} does not exist in {}", vec![input("image_id"), Arg::Region]),
            },
            Op::Let("image", Arg::First(Box::new(answer("images", "Images")))),
            Op::Fail {
                when: Cond::All(vec![
                    Cond::OneOf(state(), FAILED_STATES),
                    Cond::Present(answer("image", "v.StateReason.Message")),
                ]),
                error: lit("ImageFailed"),
                cause: fmt(
                    "AMI {} in {} is {}: {}",
                    vec![
                        input("image_id"),
                        Arg::Region,
                        state(),
                        answer("image", "v.StateReason.Message"),
                    ],
                ),
            },
            Op::Fail {
                when: Cond::OneOf(state(), FAILED_STATES),
                error: lit("ImageFailed"),
                cause: fmt(
                    "AMI {} in {} is {}: AWS gave no reason",
                    vec![input("image_id"), Arg::Region, state()],
                ),
            },
        ];
        Ok(Form {
            ops: vec![Op::Poll {
                call,
                then,
                done: Cond::Is(state(), "available"),
            }],
            outputs: vec![
                ("image_id", answer("image", "v.ImageId")),
                ("state", state()),
                ("creation_date", answer("image", "v.CreationDate")),
            ],
        })
    }
}
