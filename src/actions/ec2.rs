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

pub static VERIFY_INSTANCE: ActionSpec = ActionSpec {
    name: "ec2.verify_instance",
    summary: "Wait until an instance is `running` from the expected AMI and passes its status checks; fail at once if it runs another AMI, is stopped or terminated, or a status check is `impaired`.",
    kind: ActionKind::Wait,
    inputs: &[
        req("instance_id", Str, "The instance, e.g. a DR stack's InstanceId output."),
        req("image_id", Str, "The AMI it must run (e.g. the DR AMI)."),
        opt(
            "require_status_checks",
            Bool,
            "Also wait until the system and instance status checks are `ok`. Default true.",
        ),
    ],
    outputs: &[
        out("instance_id", "The instance."),
        out("image_id", "The AMI it runs."),
        out("state", "running"),
        out("system_status", "ok, or not-checked without require_status_checks."),
        out("instance_status", "ok, or not-checked without require_status_checks."),
        out(
            "running_at",
            "Unix seconds when this step first saw the instance running.",
        ),
    ],
    calls: &["ec2:DescribeInstances", "ec2:DescribeInstanceStatus"],
    extra_iam: &[],
    mutates: false,
    needs_region: true,
    default_timeout_secs: 3600,
};

/// Instance states it does not come back from by itself.
const GONE_STATES: &[&str] = &["shutting-down", "terminated", "stopping", "stopped"];

pub(super) async fn poll_verify_instance(ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
    let id = str_in(inputs, "instance_id")?;
    let expected = str_in(inputs, "image_id")?;
    let checks = match inputs.get("require_status_checks") {
        None | Some(Value::Null) => true,
        Some(_) => bool_in(inputs, "require_status_checks"),
    };
    let found = ctx.cloud.ec2.describe_instances(ctx.region, &[id.to_string()]).await?;
    let Some(instance) = found.into_iter().find(|i| i.instance_id == id) else {
        return Err(ActionError::failed(
            "InvalidInstanceID.NotFound",
            format!("instance {id} does not exist in {}", ctx.region),
        ));
    };
    if instance.image_id != expected {
        return Err(ActionError::failed(
            "WrongImage",
            format!(
                "instance {id} in {} runs {}, not the expected AMI {expected}",
                ctx.region, instance.image_id
            ),
        ));
    }
    if GONE_STATES.contains(&instance.state.as_str()) {
        return Err(ActionError::failed(
            "InstanceNotRunning",
            format!("instance {id} in {} is {}", ctx.region, instance.state),
        ));
    }
    if instance.state != "running" {
        return Ok(Poll::Pending(instance.state));
    }
    let running_at = match ctx.recorder.recorded("running_at").and_then(|v| v.as_i64()) {
        Some(t) => t,
        None => {
            let t = wall_now_secs();
            ctx.recorder.record("running_at", &Value::from(t));
            t
        }
    };
    let (system, own) = if checks {
        let Some(status) = ctx.cloud.ec2.describe_instance_status(ctx.region, id).await? else {
            return Ok(Poll::Pending("running, status checks not reported yet".into()));
        };
        if status.system_status == "impaired" || status.instance_status == "impaired" {
            return Err(ActionError::failed(
                "StatusCheckImpaired",
                format!(
                    "instance {id} in {} fails its status checks: system {}, instance {}",
                    ctx.region, status.system_status, status.instance_status
                ),
            ));
        }
        if !status.checks_passed() {
            return Ok(Poll::Pending(format!(
                "running, status checks: system {}, instance {}",
                status.system_status, status.instance_status
            )));
        }
        (status.system_status, status.instance_status)
    } else {
        ("not-checked".to_string(), "not-checked".to_string())
    };
    Ok(Poll::Done(values([
        ("instance_id", Value::String(instance.instance_id)),
        ("image_id", Value::String(instance.image_id)),
        ("state", Value::String(instance.state)),
        ("system_status", Value::String(system)),
        ("instance_status", Value::String(own)),
        ("running_at", Value::from(running_at)),
    ])))
}

/// Unix seconds by the run's clock: wall time plus how far tokio's clock is ahead of the real one. Under
/// `--simulate` (a paused tokio clock) that is the simulated time the journal uses; otherwise just the wall time.
fn wall_now_secs() -> i64 {
    let now = std::time::SystemTime::now();
    let tokio_now = tokio::time::Instant::now().into_std();
    let std_now = std::time::Instant::now();
    let t = match tokio_now.checked_duration_since(std_now) {
        Some(ahead) => now + ahead,
        None => now - std_now.duration_since(tokio_now),
    };
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
