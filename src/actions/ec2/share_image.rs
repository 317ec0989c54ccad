//! `ec2.share_image`: let another account copy an AMI: launch permission on the image and create-volume permission
//! on its snapshots (what a copy in that account needs). Undo it with `ec2.unshare_image` once the copy is made.

use async_trait::async_trait;

use crate::actions::{Action, ActionError, Ctx, Values};
use crate::workflow::ActionSpec;
use crate::workflow::spec::out;

pub(crate) struct ShareImage;

static SPEC: ActionSpec = ActionSpec {
    name: "ec2.share_image",
    summary: "Let another account copy an AMI: launch permission on it, create-volume permission on its snapshots.",
    inputs: super::SHARING_INPUTS,
    outputs: &[out("snapshot_ids", "The AMI's snapshots, shared too.")],
    calls: &[
        "ec2:DescribeImages",
        "ec2:ModifyImageAttribute",
        "ec2:ModifySnapshotAttribute",
    ],
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for ShareImage {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    fn sfn(&self) -> Result<crate::actions::sfn::Form, &'static str> {
        Ok(super::sharing_form(true))
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        super::share(ctx, inputs, true).await
    }
}
