//! AWS Backup: vaults, backup jobs (which make an AMI of an instance) and copy jobs (which make the DR AMI).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::ids::{ACCOUNT, looks_like_region};
use super::records::{ImageRec, JobRec, RecoveryPointRec};
use super::scenario::{Durations, JobKind};
use super::world::Region;
use super::{Ctx, Sim};
use crate::cloud::{
    Backup, BackupJob, CloudError, CopyJob, JobState, Lifecycle, RecoveryPoint, StartBackupJob, StartCopyJob, Vault,
    image_id_from_arn,
};

/// The two kinds of job: starting, keeping and describing them is shared (`start_job`, `describe_job`); only
/// what this tells apart differs.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Backup,
    Copy,
}

impl Kind {
    /// As in messages.
    fn name(self) -> &'static str {
        match self {
            Kind::Backup => "Backup",
            Kind::Copy => "Copy",
        }
    }

    /// As the scenario's `fail_jobs` names it.
    fn fail_as(self) -> JobKind {
        match self {
            Kind::Backup => JobKind::Backup,
            Kind::Copy => JobKind::Copy,
        }
    }

    /// The jobs of this kind started in a region.
    fn jobs(self, region: &mut Region) -> &mut super::tracked::Tracked<JobRec> {
        match self {
            Kind::Backup => &mut region.backup_jobs,
            Kind::Copy => &mut region.copy_jobs,
        }
    }

    /// How long a job stays CREATED, then RUNNING.
    fn durations(self, d: &Durations) -> (Duration, Duration) {
        match self {
            Kind::Backup => (d.backup_created, d.backup_running),
            Kind::Copy => (d.copy_created, d.copy_running),
        }
    }
}

/// What a job works on: the instance (its size sets the job's duration) and the region its recovery point goes to.
struct JobOf<'a> {
    instance: &'a str,
    size_gib: u64,
    image_region: String,
    vault: String,
    /// A copy: its source's CreationDate and vault ARN (a copy's recovery point keeps the first, names the second).
    copy_of: Option<(i64, String)>,
}

/// Starts a job of `kind` in the call's region and returns its id. It runs for its kind's duration scaled by the
/// instance's size (and the scenario's spread), once AWS's limits let it: a backup waits for the instance's
/// previous backup job, a copy for a free slot of copies into its destination region (both stay CREATED
/// meanwhile). The AMI it makes (`pending` until the job ends, `failed` if the scenario fails the job) and the
/// recovery point naming it go to the vault in the image region; `image` gives, from the first eight characters of
/// the job id, the AMI's name and the source it is tagged with (`aws:backup:source-resource`).
fn start_job(ctx: &mut Ctx<'_>, kind: Kind, of: JobOf<'_>, image: impl FnOnce(&str) -> (String, String)) -> String {
    let now = ctx.now;
    let default_failure = format!(
        "The {} job failed (injected by the simulation scenario)",
        kind.fail_as().as_str()
    );
    let failure = ctx.world.job_failure(ctx.scenario, kind.fail_as(), &default_failure);
    let id = ctx.world.ids.new_uuid();
    let d = &ctx.scenario.durations;
    let (created, running) = kind.durations(d);
    let running = d.scaled(running, of.size_gib, &id);
    let mut running_at = now + created;
    match kind {
        Kind::Backup => {
            let busy = ctx.here().backup_busy_until.entry(of.instance.to_string()).or_default();
            running_at = running_at.max(*busy);
            *busy = running_at + running;
        }
        Kind::Copy => {
            let limit = ctx.scenario.quotas.backup_copies.max(1);
            let slots = &mut ctx.world.region_mut(&of.image_region).copy_slots;
            if slots.len() < limit {
                slots.push(running_at + running);
            } else {
                let (i, free_at) = slots
                    .iter()
                    .copied()
                    .enumerate()
                    .min_by_key(|(_, t)| *t)
                    .expect("a slot");
                running_at = running_at.max(free_at);
                slots[i] = running_at + running;
            }
        }
    }
    let done_at = running_at + running;
    let image_id = ctx.world.ids.new_image_id();
    let arn = image_arn(&of.image_region, &image_id);
    let (name, source) = image(&id[..8]);
    let mut rec = ImageRec::pending(&image_id, &name, now, done_at, failure.clone());
    rec.tags.insert("aws:backup:source-resource".into(), source);
    let resource_arn = if of.instance.is_empty() {
        String::new()
    } else {
        format!("arn:aws:ec2:{}:{ACCOUNT}:instance/{}", ctx.region, of.instance)
    };
    let (created_rel, source_vault_arn) = match of.copy_of {
        Some((created, vault)) => (created, Some(vault)),
        None => (now.as_secs() as i64, None),
    };
    let point = RecoveryPointRec {
        vault: of.vault.clone(),
        resource_arn: resource_arn.clone(),
        created_rel,
        source_vault_arn,
        made_by: Some((ctx.region.clone(), id.clone())),
    };
    let region = ctx.world.region_mut(&of.image_region);
    region.images.insert(image_id, rec);
    region.recovery_points.insert(arn.clone(), of.vault);
    region.recovery_point_info.insert(arn.clone(), point);
    let job = JobRec {
        id: id.clone(),
        created_at: now,
        running_at,
        done_at,
        failure,
        recovery_point_arn: arn,
        lifecycle: None,
        backup_options: Default::default(),
        size_bytes: of.size_gib << 30,
        resource_arn,
        source_recovery_point_arn: String::new(),
        destination_vault_arn: String::new(),
    };
    kind.jobs(ctx.here()).insert(id.clone(), job);
    id
}

/// AWS Backup's rules for a `Lifecycle`: whole days from 1, and deletion at least 90 days after a move to cold
/// storage.
fn check_lifecycle(ctx: &Ctx<'_>, l: &Lifecycle) -> Result<(), CloudError> {
    for (name, v) in [
        ("MoveToColdStorageAfterDays", l.move_to_cold_storage_after_days),
        ("DeleteAfterDays", l.delete_after_days),
    ] {
        if let Some(d) = v
            && d < 1
        {
            return Err(ctx.err(
                "InvalidParameterValueException",
                format!("Lifecycle {name} must be at least 1, not {d}"),
            ));
        }
    }
    if let (Some(cold), Some(delete)) = (l.move_to_cold_storage_after_days, l.delete_after_days)
        && delete < cold + 90
    {
        return Err(ctx.err(
            "InvalidParameterValueException",
            format!(
                "Invalid lifecycle: DeleteAfterDays ({delete}) must be at least 90 days more than MoveToColdStorageAfterDays ({cold})"
            ),
        ));
    }
    Ok(())
}

/// `BackupOptions` AWS accepts for EC2: `WindowsVSS` = `enabled` | `disabled`.
fn check_backup_options(ctx: &Ctx<'_>, options: &BTreeMap<String, String>) -> Result<(), CloudError> {
    for (k, v) in options {
        if k != "WindowsVSS" || !matches!(v.as_str(), "enabled" | "disabled") {
            return Err(ctx.err(
                "InvalidParameterValueException",
                format!("Invalid BackupOptions {k}={v}: EC2 takes WindowsVSS = enabled or disabled"),
            ));
        }
    }
    Ok(())
}

/// A job of `kind` started in the call's region, as DescribeBackupJob describes it.
fn describe_job(ctx: &mut Ctx<'_>, kind: Kind, job_id: &str) -> Result<BackupJob, CloudError> {
    let now = ctx.now;
    let Some(job) = kind.jobs(ctx.here()).get(job_id).cloned() else {
        return Err(ctx.err(
            "ResourceNotFoundException",
            format!("{} job {job_id} not found in {}", kind.name(), ctx.region),
        ));
    };
    let state = job.state(now);
    Ok(BackupJob {
        job_id: job.id.clone(),
        state,
        status_message: (state == JobState::Failed).then(|| job.failure.clone()).flatten(),
        recovery_point_arn: job.recovery_point(now),
        percent_done: Some(job.percent_done(now)),
        creation_date: Some(ctx.wall(job.created_at)),
        completion_date: (now >= job.done_at).then(|| ctx.wall(job.done_at)),
        backup_size_bytes: Some(job.size_bytes),
    })
}

/// Page size of ListBackupJobs (AWS's MaxResults at most).
const LIST_PAGE: usize = 1000;

/// The ids of the jobs of `kind` created at or after `created_after` (Unix seconds), oldest first, a page of
/// `LIST_PAGE` from `next_token` (the index of the page's first job), and the next page's token.
fn page_since(
    ctx: &mut Ctx<'_>,
    kind: Kind,
    created_after: i64,
    next_token: Option<&str>,
) -> Result<(Vec<String>, Option<String>), CloudError> {
    let start = match next_token {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ctx.err("InvalidParameterValueException", format!("Invalid NextToken {t:?}")))?,
    };
    let created_unix = ctx.world.created_unix;
    let mut ids: Vec<(std::time::Duration, String)> = kind
        .jobs(ctx.here())
        .values()
        .filter(|j| super::clock::wall(created_unix, j.created_at) >= created_after)
        .map(|j| (j.created_at, j.id.clone()))
        .collect();
    ids.sort();
    let next = (start + LIST_PAGE < ids.len()).then(|| (start + LIST_PAGE).to_string());
    let page = ids.into_iter().skip(start).take(LIST_PAGE).map(|(_, id)| id).collect();
    Ok((page, next))
}

/// ListBackupJobs ByCreatedAfter: a page of the backup jobs, as DescribeBackupJob describes them.
fn list_backup_jobs(
    ctx: &mut Ctx<'_>,
    created_after: i64,
    next_token: Option<&str>,
) -> Result<(Vec<BackupJob>, Option<String>), CloudError> {
    let (page, next) = page_since(ctx, Kind::Backup, created_after, next_token)?;
    let jobs = page
        .iter()
        .map(|id| describe_job(ctx, Kind::Backup, id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((jobs, next))
}

pub(crate) fn vault_arn(region: &str, name: &str) -> String {
    format!("arn:aws:backup:{region}:{ACCOUNT}:backup-vault:{name}")
}

fn image_arn(region: &str, image_id: &str) -> String {
    format!("arn:aws:ec2:{region}::image/{image_id}")
}

fn check_role(ctx: &Ctx<'_>, arn: &str) -> Result<(), CloudError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" && parts[2] == "iam" && parts[5].starts_with("role/") {
        return Ok(());
    }
    Err(ctx.err(
        "InvalidParameterValueException",
        format!("Invalid IAM role ARN: {arn:?}"),
    ))
}

fn check_vault(ctx: &mut Ctx<'_>, name: &str) -> Result<(), CloudError> {
    if ctx.here().vaults.contains(name) {
        return Ok(());
    }
    let region = ctx.region.clone();
    Err(ctx.err(
        "ResourceNotFoundException",
        format!("Backup vault {name} does not exist in {region}"),
    ))
}

fn describe_backup_vault(ctx: &mut Ctx<'_>, name: &str) -> Result<Vault, CloudError> {
    check_vault(ctx, name)?;
    Ok(Vault {
        name: name.to_string(),
        arn: vault_arn(&ctx.region, name),
    })
}

/// Validates and starts a backup job (its idempotency token is the caller's: `Ctx::idempotent`).
fn start_backup_job(ctx: &mut Ctx<'_>, req: &StartBackupJob) -> Result<String, CloudError> {
    check_role(ctx, &req.iam_role_arn)?;
    check_vault(ctx, &req.vault)?;
    if let Some(l) = &req.lifecycle {
        check_lifecycle(ctx, l)?;
    }
    check_backup_options(ctx, &req.backup_options)?;
    // arn:aws:ec2:REGION:ACCOUNT:instance/i-...
    let parts: Vec<&str> = req.resource_arn.splitn(6, ':').collect();
    let instance_id = match parts.as_slice() {
        ["arn", _, "ec2", _, _, resource] => resource.strip_prefix("instance/"),
        _ => None,
    };
    let Some(instance_id) = instance_id.filter(|id| id.starts_with("i-")) else {
        let message = format!(
            "Invalid resource ARN {:?}: expected arn:aws:ec2:REGION:ACCOUNT:instance/i-...",
            req.resource_arn
        );
        return Err(ctx.err("InvalidParameterValueException", message));
    };
    if parts[3] != ctx.region || parts[4] != ACCOUNT {
        let message = format!(
            "Resource ARN {} names region {:?} and account {:?}, but the request was sent to {} in account {ACCOUNT}",
            req.resource_arn, parts[3], parts[4], ctx.region
        );
        return Err(ctx.err("InvalidParameterValueException", message));
    }
    let now = ctx.now;
    let exists = ctx
        .here()
        .instances
        .get(instance_id)
        .is_some_and(|i| i.state(now) != "terminated");
    if !exists {
        let message = format!(
            "Resource {} not found: instance {instance_id} does not exist in {}",
            req.resource_arn, ctx.region
        );
        return Err(ctx.err("ResourceNotFoundException", message));
    }
    // The AMI and its recovery point stay in the instance's region, in the job's vault.
    let size_gib = ctx.here().instances[instance_id].size_gib;
    let of = JobOf {
        instance: instance_id,
        size_gib,
        image_region: ctx.region.clone(),
        vault: req.vault.clone(),
        copy_of: None,
    };
    let id = start_job(ctx, Kind::Backup, of, |short| {
        (
            format!("AwsBackup_{instance_id}_{short}"),
            format!("{instance_id}:{short}"),
        )
    });
    if let Some(job) = Kind::Backup.jobs(ctx.here()).get_mut(&id) {
        job.lifecycle = req.lifecycle;
        job.backup_options = req.backup_options.clone();
    }
    Ok(id)
}

/// Validates and starts a copy job (its idempotency token is the caller's: `Ctx::idempotent`).
fn start_copy_job(ctx: &mut Ctx<'_>, req: &StartCopyJob) -> Result<String, CloudError> {
    check_role(ctx, &req.iam_role_arn)?;
    check_vault(ctx, &req.source_vault)?;
    if let Some(l) = &req.lifecycle {
        check_lifecycle(ctx, l)?;
    }
    let now = ctx.now;
    // The recovery point must be in the source vault, and complete.
    let in_vault = ctx.here().recovery_points.get(&req.recovery_point_arn) == Some(&req.source_vault);
    if !in_vault {
        let message = format!(
            "Recovery point {} not found in backup vault {}",
            req.recovery_point_arn, req.source_vault
        );
        return Err(ctx.err("ResourceNotFoundException", message));
    }
    let source_image = image_id_from_arn(&req.recovery_point_arn)
        .unwrap_or_default()
        .to_string();
    let source_state = ctx.here().images.get(&source_image).map(|i| i.state(now).to_string());
    if source_state.as_deref() != Some("available") {
        let message = format!(
            "Recovery point {} is not available for copy (its AMI is {})",
            req.recovery_point_arn,
            source_state.as_deref().unwrap_or("gone")
        );
        return Err(ctx.err("InvalidRequestException", message));
    }
    // arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME
    let parts: Vec<&str> = req.destination_vault_arn.splitn(7, ':').collect();
    let (dest_region, dest_vault) = match parts.as_slice() {
        // Another account's vault is one of the same simulated world (its role's client sees it as its own).
        ["arn", _, "backup", region, account, "backup-vault", name]
            if looks_like_region(region) && !name.is_empty() && crate::cloud::is_account_id(account) =>
        {
            (region.to_string(), name.to_string())
        }
        _ => {
            let message = format!(
                "Invalid destination backup vault ARN {:?}: expected arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME",
                req.destination_vault_arn
            );
            return Err(ctx.err("InvalidParameterValueException", message));
        }
    };
    if !ctx.world.region_mut(&dest_region).vaults.contains(&dest_vault) {
        let message = format!("Destination backup vault {dest_vault} does not exist in {dest_region}");
        return Err(ctx.err("ResourceNotFoundException", message));
    }
    // The job is kept in the source region; the DR AMI and its recovery point go to the destination vault. It copies
    // the backup of an instance (`aws:backup:source-resource` = INSTANCE:JOB), as big as the instance.
    let instance = ctx.here().images[&source_image]
        .tags
        .get("aws:backup:source-resource")
        .and_then(|s| s.split(':').next())
        .unwrap_or_default()
        .to_string();
    let size_gib = ctx
        .here()
        .instances
        .get(&instance)
        .map_or(super::records::DEFAULT_SIZE_GIB, |i| i.size_gib);
    let source_created = ctx
        .here()
        .recovery_point_info
        .get(&req.recovery_point_arn)
        .map(|p| p.created_rel);
    let source_created = source_created.unwrap_or(now.as_secs() as i64);
    let of = JobOf {
        instance: &instance,
        size_gib,
        image_region: dest_region,
        vault: dest_vault,
        copy_of: Some((source_created, vault_arn(&ctx.region, &req.source_vault))),
    };
    let id = start_job(ctx, Kind::Copy, of, |short| {
        (
            format!("AwsBackup_copy_{source_image}_{short}"),
            req.recovery_point_arn.clone(),
        )
    });
    if let Some(job) = Kind::Copy.jobs(ctx.here()).get_mut(&id) {
        job.lifecycle = req.lifecycle;
        job.source_recovery_point_arn = req.recovery_point_arn.clone();
        job.destination_vault_arn = req.destination_vault_arn.clone();
    }
    Ok(id)
}

/// A copy job is described as a backup job is, less its progress; its recovery point is the DR AMI.
fn describe_copy_job(ctx: &mut Ctx<'_>, job_id: &str) -> Result<CopyJob, CloudError> {
    let job = describe_job(ctx, Kind::Copy, job_id)?;
    let rec = &Kind::Copy.jobs(ctx.here())[job_id];
    let text = |s: &String| Some(s.clone()).filter(|a| !a.is_empty());
    let (resource_arn, source, destination) = (
        text(&rec.resource_arn),
        text(&rec.source_recovery_point_arn),
        text(&rec.destination_vault_arn),
    );
    Ok(CopyJob {
        resource_arn,
        source_recovery_point_arn: source,
        destination_vault_arn: destination,
        job_id: job.job_id,
        state: job.state,
        status_message: job.status_message,
        destination_recovery_point_arn: job.recovery_point_arn,
        creation_date: job.creation_date,
        completion_date: job.completion_date,
        backup_size_bytes: job.backup_size_bytes,
    })
}

/// The status of a recovery point: its job's (CREATING while it runs), COMPLETED for a seeded one; `None` when
/// its job failed (AWS keeps no point of a failed job).
fn point_status(world: &mut super::world::World, now: Duration, point: &RecoveryPointRec) -> Option<&'static str> {
    let Some((region, job_id)) = &point.made_by else {
        return Some("COMPLETED");
    };
    let copy = point.source_vault_arn.is_some();
    let r = world.region_mut(region);
    let job = if copy {
        r.copy_jobs.get(job_id)
    } else {
        r.backup_jobs.get(job_id)
    }?;
    match job.state(now) {
        JobState::Completed => Some("COMPLETED"),
        JobState::Created | JobState::Pending | JobState::Running => Some("CREATING"),
        _ => None,
    }
}

/// ListRecoveryPointsByBackupVault with ByResourceArn (and ByCreatedAfter): every page at once, oldest first.
fn list_recovery_points(
    ctx: &mut Ctx<'_>,
    vault: &str,
    resource_arn: &str,
    created_after: Option<i64>,
) -> Result<Vec<RecoveryPoint>, CloudError> {
    check_vault(ctx, vault)?;
    let now = ctx.now;
    let world_unix = ctx.world.created_unix;
    let points: Vec<(String, RecoveryPointRec)> = ctx
        .here()
        .recovery_point_info
        .iter()
        .filter(|(_, p)| p.vault == vault && p.resource_arn == resource_arn)
        .filter(|(_, p)| created_after.is_none_or(|after| world_unix + p.created_rel >= after))
        .map(|(arn, p)| (arn.clone(), p.clone()))
        .collect();
    let mut out = Vec::new();
    for (arn, p) in points {
        let Some(status) = point_status(ctx.world, now, &p) else {
            continue;
        };
        out.push(RecoveryPoint {
            arn,
            resource_arn: p.resource_arn,
            status: status.to_string(),
            creation_date: world_unix + p.created_rel,
            source_vault_arn: p.source_vault_arn,
            vault_name: vault.to_string(),
        });
    }
    out.sort_by(|a, b| (a.creation_date, &a.arn).cmp(&(b.creation_date, &b.arn)));
    Ok(out)
}

/// ListCopyJobs BySourceRecoveryPointArn, in the call's (source) region: every page at once, oldest first.
fn list_copy_jobs(ctx: &mut Ctx<'_>, source: &str) -> Result<Vec<CopyJob>, CloudError> {
    let mut ids: Vec<(Duration, String)> = ctx
        .here()
        .copy_jobs
        .values()
        .filter(|j| j.source_recovery_point_arn == source)
        .map(|j| (j.created_at, j.id.clone()))
        .collect();
    ids.sort();
    ids.iter().map(|(_, id)| describe_copy_job(ctx, id)).collect()
}

/// ListCopyJobs ByCreatedAfter: a page of the copy jobs, as DescribeCopyJob describes them.
fn list_copy_jobs_since(
    ctx: &mut Ctx<'_>,
    created_after: i64,
    next_token: Option<&str>,
) -> Result<(Vec<CopyJob>, Option<String>), CloudError> {
    let (page, next) = page_since(ctx, Kind::Copy, created_after, next_token)?;
    let jobs = page
        .iter()
        .map(|id| describe_copy_job(ctx, id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((jobs, next))
}

#[async_trait]
impl Backup for Sim {
    async fn start_backup_job(&self, region: &str, req: &StartBackupJob) -> Result<String, CloudError> {
        self.call("backup", "StartBackupJob", region, |ctx| {
            ctx.idempotent(&req.idempotency_token, |ctx| start_backup_job(ctx, req))
        })
        .await
    }

    async fn describe_backup_job(&self, region: &str, job_id: &str) -> Result<BackupJob, CloudError> {
        self.call("backup", "DescribeBackupJob", region, |ctx| {
            describe_job(ctx, Kind::Backup, job_id)
        })
        .await
    }

    async fn list_backup_jobs(
        &self,
        region: &str,
        created_after: i64,
        next_token: Option<&str>,
    ) -> Result<(Vec<BackupJob>, Option<String>), CloudError> {
        self.call("backup", "ListBackupJobs", region, |ctx| {
            list_backup_jobs(ctx, created_after, next_token)
        })
        .await
    }

    async fn start_copy_job(&self, region: &str, req: &StartCopyJob) -> Result<String, CloudError> {
        self.call("backup", "StartCopyJob", region, |ctx| {
            ctx.idempotent(&req.idempotency_token, |ctx| start_copy_job(ctx, req))
        })
        .await
    }

    async fn describe_copy_job(&self, region: &str, job_id: &str) -> Result<CopyJob, CloudError> {
        self.call("backup", "DescribeCopyJob", region, |ctx| {
            describe_copy_job(ctx, job_id)
        })
        .await
    }

    async fn get_backup_vault_access_policy(&self, region: &str, vault: &str) -> Result<Option<String>, CloudError> {
        self.call("backup", "GetBackupVaultAccessPolicy", region, |ctx| {
            if !ctx.here().vaults.contains(vault) {
                return Err(ctx.err(
                    "ResourceNotFoundException",
                    format!("Backup vault {vault} does not exist"),
                ));
            }
            // Every simulated vault accepts copies from any account.
            Ok(Some(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"backup:CopyIntoBackupVault","Resource":"*"}]}"#
                    .to_string(),
            ))
        })
        .await
    }

    async fn describe_global_settings(&self, region: &str) -> Result<BTreeMap<String, String>, CloudError> {
        self.call("backup", "DescribeGlobalSettings", region, |_| {
            Ok(BTreeMap::from([(
                "isCrossAccountBackupEnabled".to_string(),
                "true".to_string(),
            )]))
        })
        .await
    }

    async fn describe_backup_vault(&self, region: &str, name: &str) -> Result<Vault, CloudError> {
        self.call("backup", "DescribeBackupVault", region, |ctx| {
            describe_backup_vault(ctx, name)
        })
        .await
    }

    async fn list_backup_selections(
        &self,
        region: &str,
        plan_id: &str,
    ) -> Result<Vec<crate::cloud::SelectionRef>, CloudError> {
        self.call("backup", "ListBackupSelections", region, |ctx| {
            super::backup_plans::list(&ctx.scenario.backup_plans, &ctx.region, plan_id)
                .map_err(|m| ctx.err("ResourceNotFoundException", m))
        })
        .await
    }

    async fn get_backup_selection(
        &self,
        region: &str,
        plan: &str,
        id: &str,
    ) -> Result<crate::cloud::BackupSelection, CloudError> {
        self.call("backup", "GetBackupSelection", region, |ctx| {
            super::backup_plans::get(&ctx.scenario.backup_plans, &ctx.region, plan, id)
                .map_err(|m| ctx.err("ResourceNotFoundException", m))
        })
        .await
    }

    async fn list_recovery_points(
        &self,
        region: &str,
        vault: &str,
        resource_arn: &str,
        created_after: Option<i64>,
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        self.call("backup", "ListRecoveryPointsByBackupVault", region, |ctx| {
            list_recovery_points(ctx, vault, resource_arn, created_after)
        })
        .await
    }

    async fn list_copy_jobs(&self, region: &str, source_recovery_point_arn: &str) -> Result<Vec<CopyJob>, CloudError> {
        self.call("backup", "ListCopyJobs", region, |ctx| {
            list_copy_jobs(ctx, source_recovery_point_arn)
        })
        .await
    }

    async fn list_copy_jobs_since(
        &self,
        region: &str,
        created_after: i64,
        next_token: Option<&str>,
    ) -> Result<(Vec<CopyJob>, Option<String>), CloudError> {
        self.call("backup", "ListCopyJobs", region, |ctx| {
            list_copy_jobs_since(ctx, created_after, next_token)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::sim::testutil::*;
    use crate::cloud::sim::{FailJob, Scenario, VaultSpec};
    use crate::cloud::{Cloud, region_from_arn};
    use std::time::Duration;

    fn copy_req(rp: &str, token: &str) -> StartCopyJob {
        StartCopyJob {
            recovery_point_arn: rp.into(),
            source_vault: "Default".into(),
            destination_vault_arn: vault_arn(WEST, "Dr"),
            iam_role_arn: role(),
            idempotency_token: token.into(),
            lifecycle: None,
        }
    }

    /// The recovery point of a backup job started in us-east-1 (it has one from RUNNING on).
    async fn recovery_point(cloud: &Cloud, job_id: &str) -> String {
        let job = cloud.backup.describe_backup_job(EAST, job_id).await.unwrap();
        job.recovery_point_arn.unwrap()
    }

    /// The error StartCopyJob in us-east-1 answers for this recovery point.
    async fn copy_error(cloud: &Cloud, rp: &str, token: &str) -> CloudError {
        cloud
            .backup
            .start_copy_job(EAST, &copy_req(rp, token))
            .await
            .unwrap_err()
    }

    async fn image_state(cloud: &Cloud, region: &str, arn: &str) -> Option<String> {
        let id = image_id_from_arn(arn).unwrap().to_string();
        cloud
            .ec2
            .describe_images(region, &[id])
            .await
            .unwrap()
            .first()
            .map(|i| i.state.clone())
    }

    fn with_dr_vault(mut s: Scenario) -> Sim {
        s.vaults.push(VaultSpec {
            name: "Dr".into(),
            region: WEST.into(),
        });
        Sim::new(s)
    }

    #[tokio::test(start_paused = true)]
    async fn one_backup_job_per_resource_runs_the_next_waits_created() {
        let cloud = sim().cloud();
        let first = cloud.backup.start_backup_job(EAST, &backup_req("tok-1")).await.unwrap();
        let second = cloud.backup.start_backup_job(EAST, &backup_req("tok-2")).await.unwrap();
        sleep(5 * 60).await;
        let state = |id: String| {
            let cloud = cloud.clone();
            async move { cloud.backup.describe_backup_job(EAST, &id).await.unwrap() }
        };
        assert_eq!(state(first.clone()).await.state, JobState::Running);
        let queued = state(second.clone()).await;
        assert_eq!(
            (queued.state, queued.percent_done.as_deref()),
            (JobState::Created, Some("0.0"))
        );
        // The first ends at 490 s; the second runs its 480 s after it.
        sleep(4 * 60).await;
        assert_eq!(state(first).await.state, JobState::Completed);
        assert_eq!(state(second.clone()).await.state, JobState::Running);
        sleep(8 * 60).await;
        let done = state(second).await;
        assert_eq!(done.state, JobState::Completed);
        assert_eq!(done.completion_date, Some(done.creation_date.unwrap() + 490 + 480));
    }

    #[tokio::test(start_paused = true)]
    async fn copies_beyond_the_destination_quota_queue_and_durations_follow_size() {
        let yaml =
            "quotas: {backup_copies: 1}\ninstances:\n  - {id: i-0000000000000000b, region: us-east-1, size_gib: 16}\n";
        let sim = with_dr_vault(Scenario::from_yaml_str(yaml, None).unwrap());
        let cloud = sim.cloud();
        let big = StartBackupJob {
            resource_arn: instance_arn(EAST).replace("i-0123456789abcdef0", "i-0000000000000000b"),
            ..backup_req("tok-big")
        };
        let small_job = cloud.backup.start_backup_job(EAST, &backup_req("tok-1")).await.unwrap();
        let big_job = cloud.backup.start_backup_job(EAST, &big).await.unwrap();
        sleep(490).await;
        let small = cloud.backup.describe_backup_job(EAST, &small_job).await.unwrap();
        let large = cloud.backup.describe_backup_job(EAST, &big_job).await.unwrap();
        assert_eq!(small.state, JobState::Completed);
        // Twice the size: twice the time, and twice the bytes.
        assert_eq!(
            (large.state, large.percent_done.as_deref()),
            (JobState::Running, Some("50.0"))
        );
        assert_eq!(large.backup_size_bytes, Some(2 * small.backup_size_bytes.unwrap()));
        sleep(480).await;
        let rp_small = recovery_point(&cloud, &small_job).await;
        let rp_big = recovery_point(&cloud, &big_job).await;
        // One copy into us-west-2 at a time: the second stays CREATED until the first ends.
        let c1 = cloud
            .backup
            .start_copy_job(EAST, &copy_req(&rp_big, "c1"))
            .await
            .unwrap();
        let c2 = cloud
            .backup
            .start_copy_job(EAST, &copy_req(&rp_small, "c2"))
            .await
            .unwrap();
        sleep(60).await;
        let copy = |id: String| {
            let cloud = cloud.clone();
            async move { cloud.backup.describe_copy_job(EAST, &id).await.unwrap() }
        };
        assert_eq!(copy(c1.clone()).await.state, JobState::Running);
        assert_eq!(copy(c2.clone()).await.state, JobState::Created);
        // The big copy: 10 s + 24 min; then the small one: 12 min.
        sleep(24 * 60 - 50).await;
        let first = copy(c1).await;
        assert_eq!(first.state, JobState::Completed);
        assert_eq!(first.backup_size_bytes, large.backup_size_bytes);
        assert_eq!(copy(c2.clone()).await.state, JobState::Running);
        sleep(12 * 60).await;
        assert_eq!(copy(c2).await.state, JobState::Completed);
    }

    #[test]
    fn spread_draws_a_factor_per_job_within_bounds() {
        let base = Duration::from_secs(1000);
        let d = Durations {
            spread: 0.2,
            ..Durations::default()
        };
        let all: Vec<Duration> = (0..200).map(|i| d.scaled(base, 8, &format!("job-{i}"))).collect();
        assert!(all.iter().all(|d| (800..=1200).contains(&d.as_secs())), "{all:?}");
        assert!(all.iter().any(|d| d.as_secs() < 850) && all.iter().any(|d| d.as_secs() > 1150));
        assert_eq!(d.scaled(base, 8, "job-1"), all[1], "the same id, the same factor");
        let exact = Durations::default();
        assert_eq!(exact.scaled(base, 24, "x"), Duration::from_secs(3000));
    }

    #[tokio::test(start_paused = true)]
    async fn backup_job_lifecycle_and_its_ami() {
        let cloud = sim().cloud();
        let id = cloud.backup.start_backup_job(EAST, &backup_req("tok-1")).await.unwrap();
        let job = cloud.backup.describe_backup_job(EAST, &id).await.unwrap();
        assert_eq!(job.state, JobState::Created);
        assert_eq!(job.recovery_point_arn, None);
        assert!(job.creation_date.is_some() && job.completion_date.is_none());

        sleep(10).await;
        let job = cloud.backup.describe_backup_job(EAST, &id).await.unwrap();
        assert_eq!(job.state, JobState::Running);
        let rp = job.recovery_point_arn.expect("recovery point from RUNNING");
        assert!(rp.starts_with("arn:aws:ec2:us-east-1::image/ami-"), "{rp}");
        assert_eq!(image_id_from_arn(&rp).unwrap().len(), 21);
        assert_eq!(image_state(&cloud, EAST, &rp).await.as_deref(), Some("pending"));

        sleep(4 * 60).await;
        let job = cloud.backup.describe_backup_job(EAST, &id).await.unwrap();
        assert_eq!(
            (job.state, job.percent_done.as_deref()),
            (JobState::Running, Some("50.0"))
        );

        sleep(4 * 60).await;
        let job = cloud.backup.describe_backup_job(EAST, &id).await.unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert_eq!(job.completion_date, Some(job.creation_date.unwrap() + 490));
        assert_eq!(image_state(&cloud, EAST, &rp).await.as_deref(), Some("available"));
        // Jobs are regional.
        assert_eq!(
            cloud.backup.describe_backup_job(WEST, &id).await.unwrap_err().code,
            "ResourceNotFoundException"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn same_idempotency_token_same_job() {
        let sim = sim();
        let cloud = sim.cloud();
        let a = cloud.backup.start_backup_job(EAST, &backup_req("tok-1")).await.unwrap();
        sleep(60).await;
        let b = cloud.backup.start_backup_job(EAST, &backup_req("tok-1")).await.unwrap();
        let c = cloud.backup.start_backup_job(EAST, &backup_req("tok-2")).await.unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let state = sim.lock();
        assert_eq!(state.world.regions[EAST].backup_jobs.len(), 2);
        // One AMI per job, plus the base AMI.
        assert_eq!(state.world.regions[EAST].images.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn start_backup_job_validates_vault_resource_and_role() {
        let backup = sim().cloud().backup;
        let mut req = backup_req("t");
        req.vault = "Nope".into();
        assert_eq!(
            backup.start_backup_job(EAST, &req).await.unwrap_err().code,
            "ResourceNotFoundException"
        );
        let mut req = backup_req("t");
        req.resource_arn = "i-0123456789abcdef0".into();
        let e = backup.start_backup_job(EAST, &req).await.unwrap_err();
        assert_eq!(e.code, "InvalidParameterValueException");
        let mut req = backup_req("t");
        req.resource_arn = instance_arn(WEST);
        let e = backup.start_backup_job(EAST, &req).await.unwrap_err();
        assert!(e.message.contains("us-west-2"), "{}", e.message);
        let mut req = backup_req("t");
        req.resource_arn = req.resource_arn.replace("i-0123456789abcdef0", "i-0aaaaaaaaaaaaaaaa");
        let e = backup.start_backup_job(EAST, &req).await.unwrap_err();
        assert_eq!(e.code, "ResourceNotFoundException");
        assert!(e.message.contains("i-0aaaaaaaaaaaaaaaa"), "{}", e.message);
        let mut req = backup_req("t");
        req.iam_role_arn = "BackupRole".into();
        assert_eq!(
            backup.start_backup_job(EAST, &req).await.unwrap_err().code,
            "InvalidParameterValueException"
        );
        let vault = backup.describe_backup_vault(WEST, "Default").await.unwrap();
        assert_eq!(vault.arn, "arn:aws:backup:us-west-2:123456789012:backup-vault:Default");
        assert_eq!(
            backup.describe_backup_vault(WEST, "Dr").await.unwrap_err().code,
            "ResourceNotFoundException"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn copy_job_creates_the_dr_ami() {
        let cloud = with_dr_vault(Scenario::default()).cloud();
        let id = cloud.backup.start_backup_job(EAST, &backup_req("b")).await.unwrap();
        sleep(10).await;
        let rp = recovery_point(&cloud, &id).await;
        // Not before the backup completed.
        let e = copy_error(&cloud, &rp, "c").await;
        assert_eq!(e.code, "InvalidRequestException");
        sleep(8 * 60).await;

        let copy = cloud.backup.start_copy_job(EAST, &copy_req(&rp, "c")).await.unwrap();
        assert_eq!(
            cloud.backup.start_copy_job(EAST, &copy_req(&rp, "c")).await.unwrap(),
            copy
        );
        let job = cloud.backup.describe_copy_job(EAST, &copy).await.unwrap();
        assert_eq!(
            (job.state, job.destination_recovery_point_arn.as_deref()),
            (JobState::Created, None)
        );
        sleep(10).await;
        let job = cloud.backup.describe_copy_job(EAST, &copy).await.unwrap();
        assert_eq!(job.state, JobState::Running);
        let dr = job.destination_recovery_point_arn.unwrap();
        assert_eq!(region_from_arn(&dr), Some(WEST));
        assert_ne!(image_id_from_arn(&dr), image_id_from_arn(&rp));
        assert_eq!(image_state(&cloud, WEST, &dr).await.as_deref(), Some("pending"));
        sleep(12 * 60).await;
        let job = cloud.backup.describe_copy_job(EAST, &copy).await.unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert_eq!(image_state(&cloud, WEST, &dr).await.as_deref(), Some("available"));
        // Copy jobs are described in the source region.
        assert!(cloud.backup.describe_copy_job(WEST, &copy).await.is_err());

        // A vault that does not exist in the destination region.
        let mut req = copy_req(&rp, "c2");
        req.destination_vault_arn = vault_arn("eu-west-1", "Dr");
        assert_eq!(
            cloud.backup.start_copy_job(EAST, &req).await.unwrap_err().code,
            "ResourceNotFoundException"
        );
        // A recovery point that is not in the source vault.
        let other = "arn:aws:ec2:us-east-1::image/ami-0ffffffffffffffff";
        let e = copy_error(&cloud, other, "c3").await;
        assert_eq!(e.code, "ResourceNotFoundException");
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_leave_recovery_points_and_copy_lineage_to_list() {
        let cloud = with_dr_vault(Scenario::default()).cloud();
        let arn = instance_arn(EAST);
        let id = cloud.backup.start_backup_job(EAST, &backup_req("b")).await.unwrap();
        sleep(10).await;
        let listed = cloud
            .backup
            .list_recovery_points(EAST, "Default", &arn, None)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].status, "CREATING", "while its job runs");
        sleep(8 * 60).await;
        let rp = recovery_point(&cloud, &id).await;
        let source = cloud
            .backup
            .list_recovery_points(EAST, "Default", &arn, None)
            .await
            .unwrap();
        assert_eq!(
            (source[0].arn.as_str(), source[0].status.as_str()),
            (rp.as_str(), "COMPLETED")
        );
        assert!(cloud.backup.list_copy_jobs(EAST, &rp).await.unwrap().is_empty());

        let copy = cloud.backup.start_copy_job(EAST, &copy_req(&rp, "c")).await.unwrap();
        sleep(13 * 60).await;
        let jobs = cloud.backup.list_copy_jobs(EAST, &rp).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            (jobs[0].job_id.as_str(), jobs[0].state),
            (copy.as_str(), JobState::Completed)
        );
        assert_eq!(jobs[0].source_recovery_point_arn.as_deref(), Some(rp.as_str()));
        assert_eq!(jobs[0].destination_vault_arn, Some(vault_arn(WEST, "Dr")));
        // The copy keeps its source's ResourceArn and CreationDate and names the source vault.
        let dr = cloud.backup.list_recovery_points(WEST, "Dr", &arn, None).await.unwrap();
        assert_eq!(dr.len(), 1);
        assert_eq!(
            Some(dr[0].arn.as_str()),
            jobs[0].destination_recovery_point_arn.as_deref()
        );
        assert_eq!(dr[0].creation_date, source[0].creation_date);
        assert_eq!(dr[0].source_vault_arn, Some(vault_arn(EAST, "Default")));
        // Copy jobs are listed in the source region only; vaults are checked.
        assert!(cloud.backup.list_copy_jobs(WEST, &rp).await.unwrap().is_empty());
        let e = cloud
            .backup
            .list_recovery_points(WEST, "Nope", &arn, None)
            .await
            .unwrap_err();
        assert_eq!(e.code, "ResourceNotFoundException");
    }

    /// (performed, response lost) of each call of `operation`.
    fn outcomes(sim: &Sim, operation: &str) -> Vec<(bool, bool)> {
        sim.calls()
            .into_iter()
            .filter(|c| c.operation == operation)
            .map(|c| (c.performed, c.response_lost))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn lost_start_responses_retried_with_the_same_token_return_the_first_job() {
        // The first StartBackupJob and the first StartCopyJob (counted per operation) lose their response.
        let lossy = Scenario::from_yaml_str("faults: [{operation: 'backup:Start*', lose_response: true}]", None);
        let sim = with_dr_vault(lossy.unwrap());
        let cloud = sim.cloud();
        let e = cloud
            .backup
            .start_backup_job(EAST, &backup_req("b1"))
            .await
            .unwrap_err();
        assert_eq!(e.code, "InternalError");
        assert!(e.kind.is_transient());
        let after_lost = sim.lock().world.regions[EAST].clone();
        assert_eq!(after_lost.backup_jobs.len(), 1, "the lost call started the job");
        sleep(5).await;
        let id = cloud.backup.start_backup_job(EAST, &backup_req("b1")).await.unwrap();
        {
            let state = sim.lock();
            let east = &state.world.regions[EAST];
            // The retry answered the first job and created nothing: one job (started at the lost call), one AMI.
            assert_eq!(east.backup_jobs, after_lost.backup_jobs);
            assert_eq!(east.images, after_lost.images);
            assert_eq!(east.backup_jobs[&id].created_at, Duration::ZERO);
            assert_eq!(state.world.started["backup"], 1);
        }
        assert_eq!(outcomes(&sim, "StartBackupJob"), [(true, true), (true, false)]);

        sleep(10 * 60).await;
        let rp = recovery_point(&cloud, &id).await;
        let e = copy_error(&cloud, &rp, "c1").await;
        assert_eq!(e.code, "InternalError");
        let west_images = sim.lock().world.regions[WEST].images.len();
        sleep(5).await;
        let copy = cloud.backup.start_copy_job(EAST, &copy_req(&rp, "c1")).await.unwrap();
        {
            let state = sim.lock();
            let east = &state.world.regions[EAST];
            assert_eq!(east.copy_jobs.len(), 1);
            assert_eq!(east.copy_jobs[&copy].created_at, Duration::from_secs(10 * 60 + 5));
            // One DR AMI (plus the base AMI), made by the lost call.
            assert_eq!(state.world.regions[WEST].images.len(), west_images);
            assert_eq!(west_images, 2);
            assert_eq!(state.world.started["copy"], 1);
        }
        assert_eq!(outcomes(&sim, "StartCopyJob"), [(true, true), (true, false)]);
        sleep(12 * 60 + 10).await;
        let job = cloud.backup.describe_copy_job(EAST, &copy).await.unwrap();
        assert_eq!(job.state, JobState::Completed);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_jobs_carry_their_message() {
        let sim = with_dr_vault(Scenario {
            fail_jobs: vec![
                FailJob {
                    kind: JobKind::Backup,
                    nth: 2,
                    message: Some("Snapshot quota exceeded".into()),
                },
                FailJob {
                    kind: JobKind::Copy,
                    nth: 1,
                    message: None,
                },
            ],
            ..Scenario::default()
        });
        let cloud = sim.cloud();
        let first = cloud.backup.start_backup_job(EAST, &backup_req("1")).await.unwrap();
        let second = cloud.backup.start_backup_job(EAST, &backup_req("2")).await.unwrap();
        // One backup job per resource: the second runs after the first.
        sleep(17 * 60).await;
        let ok = cloud.backup.describe_backup_job(EAST, &first).await.unwrap();
        assert_eq!((ok.state, ok.status_message), (JobState::Completed, None));
        let bad = cloud.backup.describe_backup_job(EAST, &second).await.unwrap();
        assert_eq!(bad.state, JobState::Failed);
        assert!(bad.state.is_failure());
        assert_eq!(bad.status_message.as_deref(), Some("Snapshot quota exceeded"));
        assert_eq!(
            image_state(&cloud, EAST, &bad.recovery_point_arn.unwrap())
                .await
                .as_deref(),
            Some("failed")
        );

        let copy = cloud
            .backup
            .start_copy_job(EAST, &copy_req(&ok.recovery_point_arn.unwrap(), "c"))
            .await
            .unwrap();
        sleep(15 * 60).await;
        let job = cloud.backup.describe_copy_job(EAST, &copy).await.unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert!(job.status_message.unwrap().contains("failed"));
        assert_eq!(
            image_state(&cloud, WEST, &job.destination_recovery_point_arn.unwrap())
                .await
                .as_deref(),
            Some("failed")
        );
    }
}
