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
    let created = world.created_unix - p.age.as_secs() as i64;
    let image_id = world.ids.new_image_id();
    let short = world.ids.new_uuid()[..8].to_string();
    let mut image = ImageRec::fixed(
        &image_id,
        Some(format!("AwsBackup_{}_{short}", h.instance)),
        "available",
    );
    image.created_unix = Some(created);
    image
        .tags
        .insert("aws:backup:source-resource".into(), format!("{}:{short}", h.instance));
    let arn = format!("arn:aws:ec2:{}::image/{image_id}", h.region);
    let point = RecoveryPointRec {
        vault: h.vault.clone(),
        resource_arn: resource_arn.to_string(),
        created_unix: created,
        source_vault_arn: None,
        made_by: None,
    };
    let region = world.region_mut(&h.region);
    region.images.insert(image_id.clone(), image);
    region.recovery_points.insert(arn.clone(), h.vault.clone());
    region.recovery_point_info.insert(arn.clone(), point);
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
            rec.created_unix = Some(created + COPY_TOOK);
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
    dr.images.insert(dr_image, rec);
    dr.recovery_points.insert(dr_arn.clone(), h.dr_vault.clone());
    if failure.is_none() {
        let copy = RecoveryPointRec {
            vault: h.dr_vault.clone(),
            resource_arn: resource_arn.to_string(),
            created_unix: created,
            source_vault_arn: Some(vault_arn(&h.region, &h.vault)),
            made_by: Some((h.region.clone(), job_id)),
        };
        dr.recovery_point_info.insert(dr_arn, copy);
    }
}
