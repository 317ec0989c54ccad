//! EC2: images and instances.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::ids::{base_image_id, is_ami_id, is_instance_id, looks_like_region, snapshot_id_of};
use super::records::{ImageRec, InstanceRec, SnapshotRec};
use super::scenario::JobKind;
use super::{Ctx, Sim};
use crate::cloud::{CloudError, CopyImage, CreateImage, Ec2, Image, Instance, InstanceStatus};

/// AMI names: 3–128 letters, digits, `()[] ./-'@_`.
fn check_image_name(ctx: &Ctx<'_>, name: &str) -> Result<(), CloudError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c);
    if (3..=128).contains(&name.len()) && name.chars().all(ok_char) {
        return Ok(());
    }
    Err(ctx.err(
        "InvalidAMIName.Malformed",
        format!(
            "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', \
             '-', '/', '_', '[', ']', '@', ''', and spaces: {name:?}"
        ),
    ))
}

fn image_view(rec: &ImageRec, now: Duration, created_unix: i64) -> Image {
    let state = rec.state(now).to_string();
    Image {
        image_id: rec.id.clone(),
        state_reason: if state == "failed" { rec.reason.clone() } else { None },
        state,
        name: rec.name.clone(),
        creation_date: Some(
            rec.created_rel
                .map(|rel| created_unix + rel)
                .unwrap_or_else(|| super::clock::wall(created_unix, rec.created_at)),
        ),
        tags: rec.tags.clone(),
        snapshot_ids: rec.snapshots.clone(),
    }
}

fn describe_images(ctx: &mut Ctx<'_>, ids: &[String]) -> Result<Vec<Image>, CloudError> {
    if let Some(bad) = ids.iter().find(|id| !is_ami_id(id)) {
        return Err(ctx.err(
            "InvalidAMIID.Malformed",
            format!("Invalid id: \"{bad}\" (expecting \"ami-...\")"),
        ));
    }
    let (now, created_unix) = (ctx.now, ctx.world.created_unix);
    let region = ctx.here();
    let mut seen = std::collections::BTreeSet::new();
    let recs: Vec<&ImageRec> = if ids.is_empty() {
        region.images.values().collect()
    } else {
        ids.iter()
            .filter(|id| seen.insert(id.as_str()))
            .filter_map(|id| region.images.get(id))
            .collect()
    };
    Ok(recs.into_iter().map(|rec| image_view(rec, now, created_unix)).collect())
}

fn describe_instances(ctx: &mut Ctx<'_>, ids: &[String]) -> Result<Vec<Instance>, CloudError> {
    if let Some(bad) = ids.iter().find(|id| !is_instance_id(id)) {
        return Err(ctx.err("InvalidInstanceID.Malformed", format!("Invalid id: \"{bad}\"")));
    }
    let now = ctx.now;
    let region = ctx.here();
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !region.instances.contains_key(*id))
        .map(|s| s.as_str())
        .collect();
    if !missing.is_empty() {
        let message = match missing.as_slice() {
            [one] => format!("The instance ID '{one}' does not exist"),
            many => format!("The instance IDs '{}' do not exist", many.join(", ")),
        };
        return Err(ctx.err("InvalidInstanceID.NotFound", message));
    }
    let view = |rec: &InstanceRec| Instance {
        instance_id: rec.id.clone(),
        image_id: rec.image_id.clone(),
        state: rec.state(now).to_string(),
        tags: rec.tags.clone(),
    };
    let mut seen = std::collections::BTreeSet::new();
    Ok(if ids.is_empty() {
        region.instances.values().map(view).collect()
    } else {
        ids.iter()
            .filter(|id| seen.insert(id.as_str()))
            .map(|id| view(&region.instances[id]))
            .collect()
    })
}

/// How long a launched instance reports `initializing` status checks before `ok`.
const STATUS_CHECKS: Duration = Duration::from_secs(120);

fn describe_instance_status(ctx: &mut Ctx<'_>, id: &str) -> Result<Option<InstanceStatus>, CloudError> {
    let found = describe_instances(ctx, &[id.to_string()])?;
    let now = ctx.now;
    let Some(rec) = ctx.here().instances.get(id) else {
        return Ok(None);
    };
    let state = found[0].state.clone();
    if state != "running" {
        return Ok(None);
    }
    let check = if now >= rec.launched_at + STATUS_CHECKS {
        "ok"
    } else {
        "initializing"
    };
    let status = |which: &str| match rec.impaired.as_deref() {
        Some(bad) if bad == which && check == "ok" => "impaired".to_string(),
        _ => check.to_string(),
    };
    Ok(Some(InstanceStatus {
        instance_id: id.to_string(),
        state,
        system_status: status("system"),
        instance_status: status("instance"),
    }))
}

/// Adds an AMI to the call's region and returns its id: `pending` for `pending_for`, then `available`, or
/// `failed` (with the scenario's message, else `failure`) when the scenario's `fail_jobs` fails this image.
fn add_image(
    ctx: &mut Ctx<'_>,
    name: &str,
    tags: BTreeMap<String, String>,
    pending_for: Duration,
    failure: &str,
) -> String {
    let failure = ctx.world.job_failure(ctx.scenario, JobKind::Image, failure);
    let id = ctx.world.ids.new_image_id();
    let mut rec = ImageRec::pending(&id, name, ctx.now, ctx.now + pending_for, failure);
    let snapshot = snapshot_id_of(&id);
    rec.snapshots = vec![snapshot.clone()];
    let snap = SnapshotRec {
        image_id: id.clone(),
        tags: tags.clone(),
    };
    rec.tags = tags;
    let region = ctx.here();
    region.snapshots.insert(snapshot, snap);
    region.images.insert(id.clone(), rec);
    id
}

fn create_image(ctx: &mut Ctx<'_>, req: &CreateImage) -> Result<String, CloudError> {
    check_image_name(ctx, &req.name)?;
    check_tags(ctx, &req.tags)?;
    let now = ctx.now;
    let region = ctx.here();
    let Some(instance) = region.instances.get(&req.instance_id) else {
        return Err(ctx.err(
            "InvalidInstanceID.NotFound",
            format!("The instance ID '{}' does not exist", req.instance_id),
        ));
    };
    let state = instance.state(now).to_string();
    if !matches!(state.as_str(), "running" | "stopped") {
        return Err(ctx.err(
            "IncorrectInstanceState",
            format!(
                "The instance '{}' is not in a state from which it can be imaged ({state}).",
                req.instance_id
            ),
        ));
    }
    if let Some(other) = region
        .images
        .values()
        .find(|i| i.name.as_deref() == Some(req.name.as_str()))
    {
        let message = format!("AMI name {} is already in use by AMI {}", req.name, other.id);
        return Err(ctx.err("InvalidAMIName.Duplicate", message));
    }
    let pending_for = ctx.scenario.durations.image;
    let failure = "Image creation failed (injected by the simulation scenario)";
    Ok(add_image(ctx, &req.name, req.tags.clone(), pending_for, failure))
}

/// Validates and starts an image copy (its client token is the caller's: `Ctx::idempotent`).
fn copy_image(ctx: &mut Ctx<'_>, req: &CopyImage) -> Result<String, CloudError> {
    check_image_name(ctx, &req.name)?;
    check_tags(ctx, &req.tags)?;
    if !looks_like_region(&req.source_region) {
        return Err(ctx.err(
            "InvalidParameterValue",
            format!("Invalid source region: {}", req.source_region),
        ));
    }
    if !is_ami_id(&req.source_image_id) {
        let message = format!("Invalid id: \"{}\" (expecting \"ami-...\")", req.source_image_id);
        return Err(ctx.err("InvalidAMIID.Malformed", message));
    }
    let now = ctx.now;
    let source = ctx
        .world
        .region_mut(&req.source_region)
        .images
        .get(&req.source_image_id);
    let problem = match source.map(|i| i.state(now)) {
        None => Some(format!(
            "The source image {} does not exist in {}",
            req.source_image_id, req.source_region
        )),
        Some("available") => None,
        Some(state) => Some(format!(
            "The source image {} in {} is not available (state: {state})",
            req.source_image_id, req.source_region
        )),
    };
    if let Some(message) = problem {
        return Err(ctx.err("InvalidRequest", message));
    }
    // EC2 refuses a copy beyond its limits on copies in progress into this region (AMIs, and snapshots: one each).
    let q = ctx.scenario.quotas;
    let limit = q.image_copies.min(q.snapshot_copies).max(1);
    let region = ctx.region.clone();
    let copies = &mut ctx.here().image_copies;
    copies.retain(|end| *end > now);
    if copies.len() >= limit {
        let message =
            format!("You have reached the maximum number of concurrent AMI or snapshot copies ({limit}) into {region}");
        return Err(ctx.err("ResourceLimitExceeded", message));
    }
    let d = &ctx.scenario.durations;
    let pending_for = d.scaled(d.copy_image, d.reference_gib, &req.name);
    ctx.here().image_copies.push(now + pending_for);
    let failure = "Image copy failed (injected by the simulation scenario)";
    Ok(add_image(ctx, &req.name, req.tags.clone(), pending_for, failure))
}

/// Tag keys starting with `aws:` are AWS's own.
fn check_tags(ctx: &Ctx<'_>, tags: &BTreeMap<String, String>) -> Result<(), CloudError> {
    match tags.keys().find(|k| k.to_ascii_lowercase().starts_with("aws:")) {
        Some(key) => Err(ctx.err(
            "InvalidParameterValue",
            format!("Tag key {key:?} is invalid: keys starting with 'aws:' are reserved for internal use"),
        )),
        None => Ok(()),
    }
}

/// The account's own images carrying every one of `tags` (the base AMIs are Amazon's: never listed).
fn find_images(ctx: &mut Ctx<'_>, tags: &BTreeMap<String, String>) -> Vec<Image> {
    let (now, created_unix) = (ctx.now, ctx.world.created_unix);
    let base = base_image_id(&ctx.region);
    ctx.here()
        .images
        .values()
        .filter(|rec| rec.id != base)
        .filter(|rec| tags.iter().all(|(k, v)| rec.tags.get(k) == Some(v)))
        .map(|rec| image_view(rec, now, created_unix))
        .collect()
}

/// DeregisterImage: the image is gone at once; with `delete_snapshots`, so are its snapshots no other AMI uses
/// (`skipped` otherwise).
fn deregister_image(
    ctx: &mut Ctx<'_>,
    image_id: &str,
    delete_snapshots: bool,
) -> Result<Vec<(String, String)>, CloudError> {
    if !is_ami_id(image_id) {
        let message = format!("Invalid id: \"{image_id}\" (expecting \"ami-...\")");
        return Err(ctx.err("InvalidAMIID.Malformed", message));
    }
    if image_id == base_image_id(&ctx.region) {
        let message = format!("You do not have permission to deregister {image_id}: it is not owned by this account");
        return Err(ctx.err("AuthFailure", message));
    }
    let region = ctx.here();
    let Some(rec) = region.images.remove(image_id) else {
        let message = format!("The image id '[{image_id}]' does not exist");
        return Err(ctx.err("InvalidAMIID.NotFound", message));
    };
    if !delete_snapshots {
        return Ok(Vec::new());
    }
    let mut results = Vec::new();
    for snap in rec.snapshots {
        let shared = region.images.values().any(|other| other.snapshots.contains(&snap));
        if shared {
            results.push((snap, "skipped".to_string()));
        } else {
            region.snapshots.remove(&snap);
            results.push((snap, "success".to_string()));
        }
    }
    Ok(results)
}

fn delete_snapshot(ctx: &mut Ctx<'_>, snapshot_id: &str) -> Result<(), CloudError> {
    let region = ctx.here();
    if !region.snapshots.contains_key(snapshot_id) {
        let message = format!("The snapshot '{snapshot_id}' does not exist.");
        return Err(ctx.err("InvalidSnapshot.NotFound", message));
    }
    if let Some(user) = region
        .images
        .values()
        .find(|i| i.snapshots.iter().any(|s| s == snapshot_id))
    {
        let message = format!("The snapshot {snapshot_id} is currently in use by {}", user.id);
        return Err(ctx.err("InvalidSnapshot.InUse", message));
    }
    ctx.here().snapshots.remove(snapshot_id);
    Ok(())
}

#[async_trait]
impl Ec2 for Sim {
    async fn describe_images(&self, region: &str, image_ids: &[String]) -> Result<Vec<Image>, CloudError> {
        self.call("ec2", "DescribeImages", region, |ctx| describe_images(ctx, image_ids))
            .await
    }

    async fn find_image_by_name(&self, region: &str, name: &str) -> Result<Option<Image>, CloudError> {
        self.call("ec2", "DescribeImages", region, |ctx| {
            Ok(describe_images(ctx, &[])?
                .into_iter()
                .find(|i| i.name.as_deref() == Some(name)))
        })
        .await
    }

    async fn describe_instances(&self, region: &str, instance_ids: &[String]) -> Result<Vec<Instance>, CloudError> {
        self.call("ec2", "DescribeInstances", region, |ctx| {
            describe_instances(ctx, instance_ids)
        })
        .await
    }

    async fn find_instances(
        &self,
        region: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError> {
        self.call("ec2", "DescribeInstances", region, |ctx| {
            let now = ctx.now;
            Ok(ctx
                .here()
                .instances
                .values()
                .filter(|i| !matches!(i.state(now), "terminated" | "shutting-down"))
                .filter(|i| tags.iter().all(|(k, v)| i.tags.get(k) == Some(v)))
                .map(|rec| Instance {
                    instance_id: rec.id.clone(),
                    image_id: rec.image_id.clone(),
                    state: rec.state(now).to_string(),
                    tags: rec.tags.clone(),
                })
                .collect())
        })
        .await
    }

    async fn describe_instance_status(
        &self,
        region: &str,
        instance_id: &str,
    ) -> Result<Option<InstanceStatus>, CloudError> {
        self.call("ec2", "DescribeInstanceStatus", region, |ctx| {
            describe_instance_status(ctx, instance_id)
        })
        .await
    }

    async fn create_image(&self, region: &str, req: &CreateImage) -> Result<String, CloudError> {
        self.call("ec2", "CreateImage", region, |ctx| create_image(ctx, req))
            .await
    }

    async fn copy_image(&self, region: &str, req: &CopyImage) -> Result<String, CloudError> {
        self.call("ec2", "CopyImage", region, |ctx| {
            ctx.idempotent(&req.client_token, |ctx| copy_image(ctx, req))
        })
        .await
    }

    async fn find_images(&self, region: &str, tags: &BTreeMap<String, String>) -> Result<Vec<Image>, CloudError> {
        self.call("ec2", "DescribeImages", region, |ctx| Ok(find_images(ctx, tags)))
            .await
    }

    async fn deregister_image(
        &self,
        region: &str,
        image_id: &str,
        delete_snapshots: bool,
    ) -> Result<Vec<(String, String)>, CloudError> {
        self.call("ec2", "DeregisterImage", region, |ctx| {
            deregister_image(ctx, image_id, delete_snapshots)
        })
        .await
    }

    async fn delete_snapshot(&self, region: &str, snapshot_id: &str) -> Result<(), CloudError> {
        self.call("ec2", "DeleteSnapshot", region, |ctx| delete_snapshot(ctx, snapshot_id))
            .await
    }

    async fn share_image(&self, region: &str, image_id: &str, account: &str, _share: bool) -> Result<(), CloudError> {
        // One simulated account holds every region's resources: sharing only checks what it names.
        self.call("ec2", "ModifyImageAttribute", region, |ctx| {
            check_account(ctx, account)?;
            if !ctx.here().images.contains_key(image_id) {
                return Err(ctx.err(
                    "InvalidAMIID.NotFound",
                    format!("The image id '[{image_id}]' does not exist"),
                ));
            }
            Ok(())
        })
        .await
    }

    async fn share_snapshot(
        &self,
        region: &str,
        snapshot_id: &str,
        account: &str,
        _share: bool,
    ) -> Result<(), CloudError> {
        self.call("ec2", "ModifySnapshotAttribute", region, |ctx| {
            check_account(ctx, account)?;
            if !ctx.here().snapshots.contains_key(snapshot_id) {
                return Err(ctx.err(
                    "InvalidSnapshot.NotFound",
                    format!("The snapshot '{snapshot_id}' does not exist."),
                ));
            }
            Ok(())
        })
        .await
    }
}

fn check_account(ctx: &Ctx<'_>, account: &str) -> Result<(), CloudError> {
    if crate::cloud::is_account_id(account) {
        Ok(())
    } else {
        Err(ctx.err("InvalidParameterValue", format!("Invalid user id: {account}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::sim::ids::{DEFAULT_INSTANCE, base_image_id};
    use crate::cloud::sim::testutil::*;
    use crate::cloud::sim::{FailJob, Scenario};
    use std::collections::BTreeMap;

    fn create(name: &str) -> CreateImage {
        CreateImage {
            instance_id: DEFAULT_INSTANCE.into(),
            name: name.into(),
            no_reboot: true,
            tags: BTreeMap::from([("drflow:run".into(), "r1".into())]),
        }
    }

    fn copy(source: &str, token: &str) -> CopyImage {
        CopyImage {
            source_region: EAST.into(),
            source_image_id: source.into(),
            name: "dr copy".into(),
            client_token: token.into(),
            tags: BTreeMap::new(),
            encrypted: false,
            kms_key_id: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn describe_images_leaves_unknown_out_and_refuses_malformed() {
        let ec2 = sim().cloud().ec2;
        let base = base_image_id(EAST);
        let images = ec2
            .describe_images(EAST, &[base.clone(), "ami-0ffffffffffffffff".into(), base.clone()])
            .await;
        let images = images.unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(
            (images[0].image_id.as_str(), images[0].state.as_str()),
            (base.as_str(), "available")
        );
        let e = ec2.describe_images(EAST, &["i-0123".into()]).await.unwrap_err();
        assert_eq!(e.code, "InvalidAMIID.Malformed");
        assert_eq!(e.kind, crate::cloud::ErrorKind::Validation);
    }

    #[tokio::test(start_paused = true)]
    async fn describe_instances_reports_unknown_ids() {
        let ec2 = sim().cloud().ec2;
        let found = ec2.describe_instances(WEST, &[DEFAULT_INSTANCE.into()]).await.unwrap();
        assert_eq!(found[0].state, "running");
        assert_eq!(found[0].image_id, base_image_id(WEST));
        let e = ec2
            .describe_instances(WEST, &["i-0aaaaaaaaaaaaaaaa".into()])
            .await
            .unwrap_err();
        assert_eq!(e.code, "InvalidInstanceID.NotFound");
        assert_eq!(e.kind, crate::cloud::ErrorKind::NotFound);
        assert!(e.message.contains("i-0aaaaaaaaaaaaaaaa"));
    }

    #[tokio::test(start_paused = true)]
    async fn create_image_is_pending_then_available() {
        let ec2 = sim().cloud().ec2;
        let id = ec2
            .create_image(EAST, &create("drflow-web-2025-01-01T0000"))
            .await
            .unwrap();
        let img = &ec2.describe_images(EAST, std::slice::from_ref(&id)).await.unwrap()[0];
        assert_eq!(img.state, "pending");
        assert_eq!(img.tags["drflow:run"], "r1");
        sleep(5 * 60).await;
        assert_eq!(ec2.describe_images(EAST, &[id]).await.unwrap()[0].state, "available");
        // CreateImage has no token: the same name is refused.
        let e = ec2
            .create_image(EAST, &create("drflow-web-2025-01-01T0000"))
            .await
            .unwrap_err();
        assert_eq!(e.code, "InvalidAMIName.Duplicate");
        // Colons are not allowed in AMI names.
        let e = ec2.create_image(EAST, &create("web 12:00")).await.unwrap_err();
        assert_eq!(e.code, "InvalidAMIName.Malformed");
        let mut unknown = create("other");
        unknown.instance_id = "i-0aaaaaaaaaaaaaaaa".into();
        assert_eq!(
            ec2.create_image(EAST, &unknown).await.unwrap_err().code,
            "InvalidInstanceID.NotFound"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lost_copy_image_response_retried_with_the_same_token_returns_the_first_image() {
        let yaml = "faults: [{operation: 'ec2:CopyImage', lose_response: true, error: {code: RequestTimeout}}]";
        let sim = Sim::new(Scenario::from_yaml_str(yaml, None).unwrap());
        let ec2 = sim.cloud().ec2;
        let base = base_image_id(EAST);
        let e = ec2.copy_image(WEST, &copy(&base, "t1")).await.unwrap_err();
        assert_eq!(e.code, "RequestTimeout");
        assert!(e.kind.is_transient());
        let after_lost = sim.lock().world.regions[WEST].images.clone();
        assert_eq!(after_lost.len(), 2, "the lost call made the copy (plus the base AMI)");
        sleep(5).await;
        let id = ec2.copy_image(WEST, &copy(&base, "t1")).await.unwrap();
        {
            let state = sim.lock();
            // The retry answered the first copy and made no other image.
            assert_eq!(state.world.regions[WEST].images, after_lost);
            assert_eq!(after_lost[&id].created_at, Duration::ZERO);
            assert_eq!(state.world.started["image"], 1);
        }
        let log: Vec<_> = sim
            .calls()
            .into_iter()
            .map(|c| (c.performed, c.response_lost))
            .collect();
        assert_eq!(log, [(true, true), (true, false)]);
        // Another token is another copy.
        assert_ne!(ec2.copy_image(WEST, &copy(&base, "t2")).await.unwrap(), id);
        sleep(10 * 60).await;
        assert_eq!(ec2.describe_images(WEST, &[id]).await.unwrap()[0].state, "available");
    }

    #[tokio::test(start_paused = true)]
    async fn copy_image_beyond_the_copies_in_progress_is_refused_until_one_ends() {
        let sim = Sim::new(Scenario::from_yaml_str("quotas: {snapshot_copies: 2}", None).unwrap());
        let ec2 = sim.cloud().ec2;
        let base = base_image_id(EAST);
        let copy_named = |n: &str| CopyImage {
            name: format!("copy-{n}"),
            ..copy(&base, n)
        };
        ec2.copy_image(WEST, &copy_named("a")).await.unwrap();
        ec2.copy_image(WEST, &copy_named("b")).await.unwrap();
        let e = ec2.copy_image(WEST, &copy_named("c")).await.unwrap_err();
        assert_eq!(e.code, "ResourceLimitExceeded");
        assert!(e.message.contains("(2) into us-west-2"), "{}", e.message);
        // Another destination region has its own.
        ec2.copy_image("eu-west-1", &copy_named("d")).await.unwrap();
        sleep(10 * 60).await;
        ec2.copy_image(WEST, &copy_named("c")).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn copy_image_needs_an_available_source_and_honours_the_token() {
        let sim = Sim::new(Scenario {
            fail_jobs: vec![FailJob {
                kind: JobKind::Image,
                nth: 3,
                message: Some("disk error".into()),
            }],
            ..Scenario::default()
        });
        let ec2 = sim.cloud().ec2;
        let pending = ec2.create_image(EAST, &create("source")).await.unwrap();
        let e = ec2.copy_image(WEST, &copy(&pending, "t1")).await.unwrap_err();
        assert_eq!(e.code, "InvalidRequest");
        assert!(e.message.contains("pending"), "{}", e.message);
        let e = ec2
            .copy_image(WEST, &copy("ami-0eeeeeeeeeeeeeeee", "t1"))
            .await
            .unwrap_err();
        assert!(e.message.contains("does not exist"), "{}", e.message);

        let base = base_image_id(EAST);
        let id = ec2.copy_image(WEST, &copy(&base, "t1")).await.unwrap();
        assert_eq!(ec2.copy_image(WEST, &copy(&base, "t1")).await.unwrap(), id);
        assert_eq!(
            ec2.describe_images(WEST, std::slice::from_ref(&id)).await.unwrap()[0].state,
            "pending"
        );
        assert!(
            ec2.describe_images(EAST, std::slice::from_ref(&id))
                .await
                .unwrap()
                .is_empty()
        );
        sleep(10 * 60).await;
        assert_eq!(
            ec2.describe_images(WEST, std::slice::from_ref(&id)).await.unwrap()[0].state,
            "available"
        );

        // The third image (a second copy, new token) fails.
        let failed = ec2.copy_image(WEST, &copy(&base, "t2")).await.unwrap();
        assert_ne!(failed, id);
        sleep(10 * 60).await;
        let img = &ec2.describe_images(WEST, &[failed]).await.unwrap()[0];
        assert_eq!(
            (img.state.as_str(), img.state_reason.as_deref()),
            ("failed", Some("disk error"))
        );
    }
}
