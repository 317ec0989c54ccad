//! A Backup plan's past, seeded into a new world: the recovery points an hourly plan with a copy rule made before
//! the world was created (AMIs in the primary region, their copies in the DR region), with the copy jobs that made
//! them: completed, failed (with a status message), still running (completing later, as AWS's do), or none.

use std::time::Duration;

use serde::Deserialize;

use super::backup::vault_arn;
use super::ids::ACCOUNT;
use super::records::{ImageRec, JobRec, RecoveryPointRec};
use super::scenario::{Scenario, duration};
use super::world::World;

/// One instance's history in a plan (scenario `plan_history:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySpec {
    pub instance: String,
    /// Where the plan backs up (the instance's region).
    pub region: String,
    #[serde(default = "default_vault")]
    pub vault: String,
    /// Where its copy rule copies to.
    pub dr_region: String,
    #[serde(default = "default_vault")]
    pub dr_vault: String,
    /// The recovery points, in any order.
    pub points: Vec<PointSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointSpec {
    /// How long before the world's creation the backup was made (`3h`, `1d`).
    #[serde(deserialize_with = "duration::de")]
    pub age: Duration,
    #[serde(default)]
    pub copy: CopyOutcome,
    /// The failed copy job's status message.
    #[serde(default)]
    pub message: Option<String>,
    /// A running copy completes this long after the world's creation (default 10m).
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub completes_after: Option<Duration>,
    /// What the architecture drflow replaces did with it: a Lambda per region published its AMI (and its copy's,
    /// once completed) in this SSM parameter (`aws:ec2:image`; a new version over an earlier point's).
    #[serde(default)]
    pub published_as: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyOutcome {
    #[default]
    Completed,
    Failed,
    Running,
    None,
}

fn default_vault() -> String {
    super::ids::DEFAULT_VAULT.to_string()
}

/// How long a seeded copy took (its DR AMI's creation date is this after its source's).
const COPY_TOOK: i64 = 20 * 60;

impl HistorySpec {
    pub(crate) fn validate(&self, at: &str) -> Result<(), String> {
        if !self.instance.starts_with("i-") {
            return Err(format!("{at}: instance `{}` must start with `i-`", self.instance));
        }
        if self.region == self.dr_region {
            return Err(format!("{at}: region and dr_region are both {}", self.region));
        }
        for (i, p) in self.points.iter().enumerate() {
            if p.message.is_some() && p.copy != CopyOutcome::Failed {
                return Err(format!("{at}.points[{i}]: `message` is for `copy: failed`"));
            }
            if p.completes_after.is_some() && p.copy != CopyOutcome::Running {
                return Err(format!("{at}.points[{i}]: `completes_after` is for `copy: running`"));
            }
        }
        Ok(())
    }
}

/// Adds the scenario's plan history to a new world.
pub(crate) fn seed(world: &mut World, scenario: &Scenario) {
    for h in &scenario.plan_history {
        world.region_mut(&h.region).vaults.insert(h.vault.clone());
        world.region_mut(&h.dr_region).vaults.insert(h.dr_vault.clone());
        let resource_arn = format!("arn:aws:ec2:{}:{ACCOUNT}:instance/{}", h.region, h.instance);
        let mut points: Vec<&PointSpec> = h.points.iter().collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.age));
        for p in points {
            seed_point(world, h, &resource_arn, p);
        }
    }
}

fn seed_point(world: &mut World, h: &HistorySpec, resource_arn: &str, p: &PointSpec) {
    let created = -(p.age.as_secs() as i64);
    let image_id = world.ids.new_image_id();
    let short = world.ids.new_uuid()[..8].to_string();
    let mut image = ImageRec::fixed(
        &image_id,
        Some(format!("AwsBackup_{}_{short}", h.instance)),
        "available",
    );
    image.created_rel = Some(created);
    image
        .tags
        .insert("aws:backup:source-resource".into(), format!("{}:{short}", h.instance));
    let arn = format!("arn:aws:ec2:{}::image/{image_id}", h.region);
    let point = RecoveryPointRec {
        vault: h.vault.clone(),
        resource_arn: resource_arn.to_string(),
        created_rel: created,
        source_vault_arn: None,
        made_by: None,
    };
    let region = world.region_mut(&h.region);
    region.images.insert(image_id.clone(), image);
    region.recovery_points.insert(arn.clone(), h.vault.clone());
    region.recovery_point_info.insert(arn.clone(), point);
    if let Some(name) = &p.published_as {
        publish(region, name, &image_id);
    }
    if p.copy == CopyOutcome::None {
        return;
    }

    // The copy job (kept in the source region) and the DR AMI it makes.
    let job_id = world.ids.new_uuid();
    let dr_image = world.ids.new_image_id();
    let dr_arn = format!("arn:aws:ec2:{}::image/{dr_image}", h.dr_region);
    let name = format!("AwsBackup_copy_{image_id}_{}", &job_id[..8]);
    let (done_at, failure, mut rec) = match p.copy {
        CopyOutcome::Running => {
            let done = p.completes_after.unwrap_or(Duration::from_secs(600));
            (
                done,
                None,
                ImageRec::pending(&dr_image, &name, Duration::ZERO, done, None),
            )
        }
        CopyOutcome::Failed => {
            let message = p
                .message
                .clone()
                .unwrap_or_else(|| "The copy job failed (seeded plan history)".into());
            let rec = ImageRec::pending(&dr_image, &name, Duration::ZERO, Duration::ZERO, Some(message.clone()));
            (Duration::ZERO, Some(message), rec)
        }
        _ => {
            let mut rec = ImageRec::fixed(&dr_image, Some(name.clone()), "available");
            rec.created_rel = Some(created + COPY_TOOK);
            (Duration::ZERO, None, rec)
        }
    };
    rec.tags.insert("aws:backup:source-resource".into(), arn.clone());
    let job = JobRec {
        id: job_id.clone(),
        created_at: Duration::ZERO,
        running_at: Duration::ZERO,
        done_at,
        failure: failure.clone(),
        recovery_point_arn: dr_arn.clone(),
        lifecycle: None,
        backup_options: Default::default(),
        size_bytes: super::records::DEFAULT_SIZE_GIB << 30,
        resource_arn: resource_arn.to_string(),
        source_recovery_point_arn: arn,
        destination_vault_arn: vault_arn(&h.dr_region, &h.dr_vault),
    };
    world.region_mut(&h.region).copy_jobs.insert(job_id.clone(), job);
    let dr = world.region_mut(&h.dr_region);
    dr.images.insert(dr_image.clone(), rec);
    dr.recovery_points.insert(dr_arn.clone(), h.dr_vault.clone());
    if p.copy == CopyOutcome::Completed
        && let Some(name) = &p.published_as
    {
        publish(dr, name, &dr_image);
    }
    if failure.is_none() {
        let copy = RecoveryPointRec {
            vault: h.dr_vault.clone(),
            resource_arn: resource_arn.to_string(),
            created_rel: created,
            source_vault_arn: Some(vault_arn(&h.region, &h.vault)),
            made_by: Some((h.region.clone(), job_id)),
        };
        dr.recovery_point_info.insert(dr_arn, copy);
    }
}

/// Writes `value` to parameter `name` (a new version over an existing one), as the replaced Lambda did.
fn publish(region: &mut super::world::Region, name: &str, value: &str) {
    match region.parameters.get_mut(name) {
        Some(p) => {
            let version = p.latest().version + 1;
            p.versions.push(super::records::VersionRec {
                version,
                value: value.to_string(),
                modified_at: Duration::ZERO,
                labels: Vec::new(),
            });
        }
        None => {
            let rec = super::records::ParamRec::new("aws:ec2:image", value, Duration::ZERO);
            region.parameters.insert(name.to_string(), rec);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cloud::sim::testutil::*;
    use crate::cloud::sim::{Scenario, Sim};
    use crate::cloud::{JobState, image_id_from_arn};

    const HISTORY: &str = r#"
plan_history:
  - instance: i-0123456789abcdef0
    region: us-east-1
    dr_region: us-west-2
    dr_vault: Dr
    points:
      - {age: 1h, copy: running, completes_after: 12m}
      - {age: 3h, published_as: /drflow/i-0123456789abcdef0/ami}
      - {age: 2h, copy: failed, message: "Insufficient privileges to perform this action."}
      - {age: 4h, copy: none}
"#;

    #[tokio::test(start_paused = true)]
    async fn a_seeded_history_lists_past_points_their_copies_and_copy_jobs() {
        let sim = Sim::new(Scenario::from_yaml_str(HISTORY, None).unwrap());
        let created = sim.lock().world.created_unix;
        let cloud = sim.cloud();
        let arn = instance_arn(EAST);
        let points = cloud
            .backup
            .list_recovery_points(EAST, "Default", &arn, None)
            .await
            .unwrap();
        // Oldest first, in the past, all COMPLETED in the primary vault.
        let ages: Vec<i64> = points.iter().map(|p| (created - p.creation_date) / 3600).collect();
        assert_eq!(ages, [4, 3, 2, 1]);
        assert!(
            points
                .iter()
                .all(|p| p.status == "COMPLETED" && p.source_vault_arn.is_none())
        );
        let after = cloud
            .backup
            .list_recovery_points(EAST, "Default", &arn, Some(created - 2 * 3600))
            .await
            .unwrap();
        assert_eq!(after.len(), 2, "ByCreatedAfter");
        assert!(
            cloud
                .backup
                .list_recovery_points(
                    EAST,
                    "Default",
                    "arn:aws:ec2:us-east-1:123456789012:instance/i-0other",
                    None
                )
                .await
                .unwrap()
                .is_empty()
        );

        // The primary AMIs exist, available, with their past creation dates.
        let ids: Vec<String> = points
            .iter()
            .map(|p| image_id_from_arn(&p.arn).unwrap().to_string())
            .collect();
        let images = cloud.ec2.describe_images(EAST, &ids).await.unwrap();
        assert_eq!(images.len(), 4);
        for (p, i) in points.iter().zip(&ids) {
            let image = images.iter().find(|x| &x.image_id == i).unwrap();
            assert_eq!(
                (image.state.as_str(), image.creation_date),
                ("available", Some(p.creation_date))
            );
        }

        // One copy job per point but the 4h one: COMPLETED (3h), FAILED with its message (2h), RUNNING (1h).
        let jobs = |rp: String| {
            let cloud = cloud.clone();
            async move { cloud.backup.list_copy_jobs(EAST, &rp).await.unwrap() }
        };
        assert!(jobs(points[0].arn.clone()).await.is_empty());
        let done = jobs(points[1].arn.clone()).await;
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].state, JobState::Completed);
        assert_eq!(
            done[0].destination_vault_arn.as_deref(),
            Some("arn:aws:backup:us-west-2:123456789012:backup-vault:Dr")
        );
        assert_eq!(
            done[0].source_recovery_point_arn.as_deref(),
            Some(points[1].arn.as_str())
        );
        let failed = jobs(points[2].arn.clone()).await;
        assert_eq!(
            (failed[0].state, failed[0].status_message.as_deref()),
            (
                JobState::Failed,
                Some("Insufficient privileges to perform this action.")
            )
        );
        let running = jobs(points[3].arn.clone()).await;
        assert_eq!(running[0].state, JobState::Running);

        // The DR vault: the completed copy (keeping its source's CreationDate, naming the source vault) and the
        // running one (CREATING); nothing of the failed copy.
        let dr = cloud.backup.list_recovery_points(WEST, "Dr", &arn, None).await.unwrap();
        let seen: Vec<(&str, i64)> = dr.iter().map(|p| (p.status.as_str(), p.creation_date)).collect();
        assert_eq!(
            seen,
            [
                ("COMPLETED", points[1].creation_date),
                ("CREATING", points[3].creation_date)
            ]
        );
        assert_eq!(
            dr[0].source_vault_arn.as_deref(),
            Some("arn:aws:backup:us-east-1:123456789012:backup-vault:Default")
        );
        assert_eq!(
            done[0].destination_recovery_point_arn.as_deref(),
            Some(dr[0].arn.as_str())
        );

        // The Lambda published the 3h point and its copy.
        let name = "/drflow/i-0123456789abcdef0/ami";
        let east = cloud.ssm.get_parameter(EAST, name).await.unwrap().unwrap();
        assert_eq!(east.value, ids[1]);
        let west = cloud.ssm.get_parameter(WEST, name).await.unwrap().unwrap();
        assert_eq!(Some(west.value.as_str()), image_id_from_arn(&dr[0].arn));

        // The running copy completes 12 minutes after the world was made, without anyone asking.
        let dr_ami = image_id_from_arn(running[0].destination_recovery_point_arn.as_deref().unwrap())
            .unwrap()
            .to_string();
        let state = |cloud: crate::cloud::Cloud, id: String| async move {
            cloud.ec2.describe_images(WEST, &[id]).await.unwrap()[0].state.clone()
        };
        assert_eq!(state(cloud.clone(), dr_ami.clone()).await, "pending");
        sleep(12 * 60).await;
        assert_eq!(jobs(points[3].arn.clone()).await[0].state, JobState::Completed);
        assert_eq!(state(cloud.clone(), dr_ami).await, "available");
        let dr = cloud.backup.list_recovery_points(WEST, "Dr", &arn, None).await.unwrap();
        assert!(dr.iter().all(|p| p.status == "COMPLETED"), "{dr:?}");
    }

    #[test]
    fn a_history_is_checked() {
        let bad = |yaml: &str| Scenario::from_yaml_str(yaml, None).unwrap_err().to_string();
        let e = bad("plan_history: [{instance: i-0a, region: us-east-1, dr_region: us-east-1, points: []}]");
        assert!(e.contains("region and dr_region are both us-east-1"), "{e}");
        let e = bad(
            "plan_history: [{instance: i-0a, region: us-east-1, dr_region: us-west-2, points: [{age: 1h, message: x}]}]",
        );
        assert!(
            e.contains("plan_history[0].points[0]: `message` is for `copy: failed`"),
            "{e}"
        );
        let e = bad("plan_history: [{instance: i-0a, region: us-east-1, dr_region: uswest2, points: []}]");
        assert!(e.contains("uswest2"), "{e}");
    }
}
