//! `ec2.unshare_image`: stop sharing an AMI and its snapshots with another account (after its copy there is made,
//! or failed): what `ec2.share_image` granted, removed. An AMI gone already has nothing to unshare.

use async_trait::async_trait;

use crate::actions::{Action, ActionError, Ctx, Values};
use crate::workflow::ActionSpec;
use crate::workflow::spec::out;

pub(crate) struct UnshareImage;

static SPEC: ActionSpec = ActionSpec {
    name: "ec2.unshare_image",
    summary: "Stop sharing an AMI and its snapshots with another account.",
    inputs: super::SHARING_INPUTS,
    outputs: &[out("snapshot_ids", "The AMI's snapshots, no longer shared.")],
    calls: &[
        "ec2:DescribeImages",
        "ec2:ModifyImageAttribute",
        "ec2:ModifySnapshotAttribute",
    ],
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for UnshareImage {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    fn sfn(&self) -> Result<crate::actions::sfn::Form, &'static str> {
        Ok(super::sharing_form(false))
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        super::share(ctx, inputs, false).await
    }
}
