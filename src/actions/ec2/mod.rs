//! EC2: wait for an AMI, create one from an instance, copy one across regions, verify a launched instance, prune
//! old AMIs.

mod copy_image;
mod create_image;
mod find_instances;
mod prune_images;
mod share_image;
mod unshare_image;
mod verify_instance;
mod wait_image;

pub(crate) use copy_image::CopyImage;
pub(crate) use create_image::CreateImage;
pub(crate) use find_instances::FindInstances;
pub(crate) use prune_images::PruneImages;
pub(crate) use share_image::ShareImage;
pub(crate) use unshare_image::UnshareImage;
pub(crate) use verify_instance::VerifyInstance;
pub(crate) use wait_image::WaitImage;

use super::effects::{Effects, ResourceKind, StepFacts};
use super::{ActionError, Ctx, Values, values};
use crate::cloud::policy_doc::{Verdict, verdict};

/// TagSpecifications of an AMI and its snapshots, both with the tags of input `input` (CreateImage, CopyImage).
fn image_tags(input: &'static str) -> super::sfn::Arg {
    use super::sfn::{Arg, lit, tags};
    Arg::List(vec![
        Arg::Map(vec![("ResourceType", lit("image")), ("Tags", tags(input))]),
        Arg::Map(vec![("ResourceType", lit("snapshot")), ("Tags", tags(input))]),
    ])
}

/// The inputs of `ec2.share_image` and `ec2.unshare_image`.
const SHARING_INPUTS: &[crate::workflow::InputSpec] = &[
    crate::workflow::spec::req(
        "image_id",
        crate::workflow::InputKind::Str,
        "The AMI, in the step's region and account.",
    ),
    crate::workflow::spec::req(
        "account_id",
        crate::workflow::InputKind::Str,
        "The other account, e.g. `${{ accounts.dr }}`.",
    ),
];

/// What EC2 needs of the KMS key that encrypts a copy (AWS's "Amazon EBS encryption" permissions).
const KEY_USE: &[&str] = &[
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// Before anything changes: the key exists in the step's region and account, is enabled and symmetric, and its key
/// policy lets the step's account (and so its role, through IAM) use it. A key policy drflow may not read is left
/// to the copy itself.
async fn usable_key(ctx: &Ctx<'_>, key: &str) -> Result<(), ActionError> {
    let whose = match &ctx.cloud.account {
        Some(a) => format!("{} (account {a})", ctx.region),
        None => ctx.region.to_string(),
    };
    let Some(k) = ctx.cloud.kms.describe_key(ctx.region, key).await? else {
        return Err(ActionError::failed(
            "KmsKeyNotFound",
            format!(
                "KMS key `{key}` does not exist in {whose}: a copy is encrypted with a key of its destination region; create one there or name another in `kms_key_id`"
            ),
        ));
    };
    if k.state != "Enabled" {
        return Err(ActionError::failed(
            "KmsKeyNotUsable",
            format!(
                "KMS key `{key}` in {whose} is {}: EC2 can encrypt with an enabled key only",
                k.state
            ),
        ));
    }
    // (An answer that leaves a field out is not held against the key.)
    let odd = |v: &str, want: &str| !v.is_empty() && v != want;
    if odd(&k.usage, "ENCRYPT_DECRYPT") || odd(&k.spec, "SYMMETRIC_DEFAULT") {
        return Err(ActionError::failed(
            "KmsKeyNotUsable",
            format!(
                "KMS key `{key}` in {whose} is {} {}: EBS encrypts with symmetric encryption keys only",
                k.spec, k.usage
            ),
        ));
    }
    let Some(account) = ctx
        .cloud
        .account
        .clone()
        .or_else(|| values::account_of(&k.arn).ok().map(str::to_string))
    else {
        return Ok(());
    };
    let policy = match ctx.cloud.kms.get_key_policy(ctx.region, &k.arn).await {
        Ok(p) => p,
        Err(e) if e.kind == crate::cloud::ErrorKind::AccessDenied => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // Who the step's credentials are: an assumed role's ARN names the role; else the account's root stands for
    // whoever the account's IAM policies let use the key.
    let principal = match ctx.cloud.sts.get_caller_identity(ctx.region).await {
        Ok(id) => match id.arn.split_once(":assumed-role/") {
            Some((_, rest)) => format!(
                "arn:aws:iam::{account}:role/{}",
                rest.split('/').next().unwrap_or_default()
            ),
            None => id.arn,
        },
        Err(_) => format!("arn:aws:iam::{account}:root"),
    };
    for action in KEY_USE {
        match verdict(&policy, &account, &principal, action) {
            Verdict::Allowed => {}
            Verdict::Denied => {
                return Err(ActionError::failed(
                    "KmsKeyNotUsable",
                    format!("the key policy of KMS key `{key}` in {whose} denies {action} to {principal}"),
                ));
            }
            Verdict::NotAllowed => {
                return Err(ActionError::failed(
                    "KmsKeyNotUsable",
                    format!(
                        "the key policy of KMS key `{key}` in {whose} does not allow {action} to {principal}: add a statement allowing {} to it (or to arn:aws:iam::{account}:root, so that IAM policies decide)",
                        KEY_USE.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A step's image and its snapshots shared with `account`, or no longer (`share: false`); an image gone already
/// has nothing left to unshare.
async fn share(ctx: &Ctx<'_>, inputs: &Values, share: bool) -> Result<Values, ActionError> {
    use serde_json::Value;
    let image_id = values::str_in(inputs, "image_id")?;
    let account = values::str_in(inputs, "account_id")?;
    if !crate::cloud::is_account_id(account) {
        return Err(ActionError::Input(format!(
            "`{account}` is not an AWS account id (12 digits)"
        )));
    }
    let images = ctx
        .cloud
        .ec2
        .describe_images(ctx.region, &[image_id.to_string()])
        .await?;
    let Some(image) = images.into_iter().next() else {
        if share {
            return Err(ActionError::failed(
                "InvalidAMIID.NotFound",
                format!("image {image_id} does not exist in {}", ctx.region),
            ));
        }
        return Ok(values::values([("snapshot_ids", Value::Array(Vec::new()))]));
    };
    ctx.cloud.ec2.share_image(ctx.region, image_id, account, share).await?;
    for snapshot in &image.snapshot_ids {
        ctx.cloud
            .ec2
            .share_snapshot(ctx.region, snapshot, account, share)
            .await?;
    }
    let ids = image.snapshot_ids.iter().cloned().map(Value::String).collect();
    Ok(values::values([("snapshot_ids", Value::Array(ids))]))
}

/// `share`'s Step Functions form: DescribeImages, ModifyImageAttribute (launch permission) and one
/// ModifySnapshotAttribute (create-volume permission) per EBS snapshot of the image's block devices; an image that
/// does not exist fails a share (InvalidAMIID.NotFound, as `share` does) and leaves an unshare nothing to do. Like
/// `share`, no KMS grant: the copy in the other account is re-encrypted with its own key, which its role uses.
fn sharing_form(share: bool) -> super::sfn::Form {
    use super::sfn::{Arg, Bound, Call, Cond, Form, Op, answer, fmt, input, lit};
    /// The most block devices of an image whose snapshots the form shares (AWS's block device mapping quota for an
    /// AMI is far above what an instance uses; a longer list fails the step, named).
    const SFN_MAX_DEVICES: usize = 16;
    let change = if share { "Add" } else { "Remove" };
    let images = Call::new("images", "ec2", "DescribeImages").with("ImageIds", Arg::List(vec![input("image_id")]));
    let gone = Cond::Empty(answer("images", "Images"));
    let mut ops = Vec::new();
    if share {
        ops.push(Op::Call(images));
        ops.push(Op::Fail {
            when: gone,
            error: lit("InvalidAMIID.NotFound"),
            cause: fmt("image {} does not exist in {}", vec![input("image_id"), Arg::Region]),
        });
    } else {
        // AWS answers InvalidAMIID.NotFound for an id it does not know: caught, the answer holds no Images.
        ops.push(Op::Call(images.absent(&["InvalidAMIID.NotFound"])));
        ops.push(Op::Finish {
            when: gone,
            outputs: vec![("snapshot_ids", lit(serde_json::json!([])))],
        });
    }
    ops.push(Op::Let("image", Arg::First(Box::new(answer("images", "Images")))));
    ops.push(Op::Call(
        Call::new("launch", "ec2", "ModifyImageAttribute")
            .with("ImageId", input("image_id"))
            .with(
                "LaunchPermission",
                Arg::Map(vec![(
                    change,
                    Arg::List(vec![Arg::Map(vec![("UserId", input("account_id"))])]),
                )]),
            ),
    ));
    let snapshot = || Arg::Item("device", "Ebs.SnapshotId");
    ops.push(Op::Loop {
        id: "device",
        items: answer("image", "v.BlockDeviceMappings"),
        bound: Bound {
            at_most: SFN_MAX_DEVICES,
            error: "TooManyDevices",
            cause: "the AMI has more block devices than the Step Functions form shares or unshares the snapshots of: \
                    use drflow run",
        },
        ops: vec![Op::If {
            when: Cond::Present(snapshot()),
            then: vec![Op::Call(
                Call::new("volumes", "ec2", "ModifySnapshotAttribute")
                    .with("SnapshotId", snapshot())
                    .with("Attribute", lit("createVolumePermission"))
                    .with("OperationType", lit(change.to_lowercase()))
                    .with("UserIds", Arg::List(vec![input("account_id")])),
            )],
        }],
    });
    Form {
        ops,
        outputs: vec![(
            "snapshot_ids",
            answer("image", "v.BlockDeviceMappings[*].Ebs.SnapshotId"),
        )],
    }
}

/// The AMI a create or copy step made (known once journaled, even if the step later failed).
fn image_effects(step: &StepFacts<'_>) -> Effects {
    let mut e = Effects::default();
    if let Some(id) = step.out_text("image_id") {
        e.created.push(step.resource(ResourceKind::Ami, id, None, None));
    }
    e
}
