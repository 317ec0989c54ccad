//! AWS Backup: start and describe backup and copy jobs, describe a vault.

use async_trait::async_trait;
use aws_sdk_backup::Client;

use super::errors::from_sdk;
use super::{Regional, unix};
use crate::cloud::{
    Backup, BackupJob, BackupSelection, CloudError, Conditions, CopyJob, JobState, RecoveryPoint, SelectionRef,
    StartBackupJob, StartCopyJob, TagCondition, Vault,
};

pub(crate) struct AwsBackup {
    clients: Regional<Client>,
}

impl AwsBackup {
    pub(crate) fn new(clients: Regional<Client>) -> Self {
        AwsBackup { clients }
    }
}

/// A job state string. A state this build does not know (AWS added one) is taken as still running, not as a
/// failure: the wait step keeps polling until the job reaches a known state or the step times out, rather than
/// abandoning a job that may well complete. The raw state is kept in the status message.
fn job_state(raw: Option<&str>, message: Option<&str>) -> (JobState, Option<String>) {
    match raw.and_then(JobState::parse) {
        Some(state) => (state, message.map(str::to_string)),
        None => {
            let raw = raw.unwrap_or("(none)");
            let note = format!("unrecognised job state {raw}, treated as RUNNING");
            (
                JobState::Running,
                Some(message.map_or(note.clone(), |m| format!("{m} ({note})"))),
            )
        }
    }
}

/// An answer that lacks a field AWS always sends.
fn missing(operation: &str, region: &str, field: &str) -> CloudError {
    CloudError::new(
        "backup",
        operation,
        region,
        "ResponseError",
        format!("the response has no {field}"),
    )
    .with_kind(crate::cloud::ErrorKind::Transient)
}

#[async_trait]
impl Backup for AwsBackup {
    async fn start_backup_job(&self, region: &str, req: &StartBackupJob) -> Result<String, CloudError> {
        const OP: &str = "StartBackupJob";
        let out = self
            .clients
            .get(region)
            .start_backup_job()
            .backup_vault_name(&req.vault)
            .resource_arn(&req.resource_arn)
            .iam_role_arn(&req.iam_role_arn)
            .idempotency_token(&req.idempotency_token)
            .set_lifecycle(req.lifecycle.map(lifecycle))
            .set_backup_options(
                (!req.backup_options.is_empty())
                    .then(|| req.backup_options.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            )
            .send()
            .await
            .map_err(|e| from_sdk("backup", OP, region, e))?;
        out.backup_job_id()
            .map(str::to_string)
            .ok_or_else(|| missing(OP, region, "BackupJobId"))
    }

    async fn describe_backup_job(&self, region: &str, job_id: &str) -> Result<BackupJob, CloudError> {
        let out = self
            .clients
            .get(region)
            .describe_backup_job()
            .backup_job_id(job_id)
            .send()
            .await
            .map_err(|e| from_sdk("backup", "DescribeBackupJob", region, e))?;
        let (state, status_message) = job_state(out.state().map(|s| s.as_str()), out.status_message());
        Ok(BackupJob {
            job_id: out.backup_job_id().unwrap_or(job_id).to_string(),
            state,
            status_message,
            recovery_point_arn: out.recovery_point_arn().filter(|a| !a.is_empty()).map(str::to_string),
            percent_done: out.percent_done().map(str::to_string),
            creation_date: out.creation_date().map(unix),
            completion_date: out.completion_date().map(unix),
            backup_size_bytes: out.backup_size_in_bytes().and_then(|b| u64::try_from(b).ok()),
        })
    }

    async fn list_backup_jobs(
        &self,
        region: &str,
        created_after: i64,
        next_token: Option<&str>,
    ) -> Result<(Vec<BackupJob>, Option<String>), CloudError> {
        let out = self
            .clients
            .get(region)
            .list_backup_jobs()
            .by_created_after(aws_sdk_backup::primitives::DateTime::from_secs(created_after))
            .max_results(1000)
            .set_next_token(next_token.map(str::to_string))
            .send()
            .await
            .map_err(|e| from_sdk("backup", "ListBackupJobs", region, e))?;
        let jobs = out
            .backup_jobs()
            .iter()
            .filter_map(|j| {
                let (state, status_message) = job_state(j.state().map(|s| s.as_str()), j.status_message());
                Some(BackupJob {
                    job_id: j.backup_job_id()?.to_string(),
                    state,
                    status_message,
                    recovery_point_arn: j.recovery_point_arn().filter(|a| !a.is_empty()).map(str::to_string),
                    percent_done: j.percent_done().map(str::to_string),
                    creation_date: j.creation_date().map(unix),
                    completion_date: j.completion_date().map(unix),
                    backup_size_bytes: j.backup_size_in_bytes().and_then(|b| u64::try_from(b).ok()),
                })
            })
            .collect();
        Ok((jobs, out.next_token().map(str::to_string)))
    }

    async fn start_copy_job(&self, region: &str, req: &StartCopyJob) -> Result<String, CloudError> {
        const OP: &str = "StartCopyJob";
        let out = self
            .clients
            .get(region)
            .start_copy_job()
            .recovery_point_arn(&req.recovery_point_arn)
            .source_backup_vault_name(&req.source_vault)
            .destination_backup_vault_arn(&req.destination_vault_arn)
            .iam_role_arn(&req.iam_role_arn)
            .idempotency_token(&req.idempotency_token)
            .set_lifecycle(req.lifecycle.map(lifecycle))
            .send()
            .await
            .map_err(|e| from_sdk("backup", OP, region, e))?;
        out.copy_job_id()
            .map(str::to_string)
            .ok_or_else(|| missing(OP, region, "CopyJobId"))
    }

    async fn describe_copy_job(&self, region: &str, job_id: &str) -> Result<CopyJob, CloudError> {
        const OP: &str = "DescribeCopyJob";
        let out = self
            .clients
            .get(region)
            .describe_copy_job()
            .copy_job_id(job_id)
            .send()
            .await
            .map_err(|e| from_sdk("backup", OP, region, e))?;
        let job = out.copy_job().ok_or_else(|| missing(OP, region, "CopyJob"))?;
        Ok(copy_job(job, job_id))
    }

    async fn describe_backup_vault(&self, region: &str, name: &str) -> Result<Vault, CloudError> {
        const OP: &str = "DescribeBackupVault";
        let out = self
            .clients
            .get(region)
            .describe_backup_vault()
            .backup_vault_name(name)
            .send()
            .await
            .map_err(|e| from_sdk("backup", OP, region, e))?;
        Ok(Vault {
            name: out.backup_vault_name().unwrap_or(name).to_string(),
            arn: out
                .backup_vault_arn()
                .map(str::to_string)
                .ok_or_else(|| missing(OP, region, "BackupVaultArn"))?,
        })
    }

    async fn list_backup_selections(&self, region: &str, plan_id: &str) -> Result<Vec<SelectionRef>, CloudError> {
        const OP: &str = "ListBackupSelections";
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .clients
                .get(region)
                .list_backup_selections()
                .backup_plan_id(plan_id)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| from_sdk("backup", OP, region, e))?;
            for s in out.backup_selections_list() {
                found.push(SelectionRef {
                    selection_id: s
                        .selection_id()
                        .map(str::to_string)
                        .ok_or_else(|| missing(OP, region, "SelectionId"))?,
                    name: s.selection_name().unwrap_or_default().to_string(),
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }

    async fn get_backup_selection(
        &self,
        region: &str,
        plan_id: &str,
        selection_id: &str,
    ) -> Result<BackupSelection, CloudError> {
        const OP: &str = "GetBackupSelection";
        let out = self
            .clients
            .get(region)
            .get_backup_selection()
            .backup_plan_id(plan_id)
            .selection_id(selection_id)
            .send()
            .await
            .map_err(|e| from_sdk("backup", OP, region, e))?;
        let s = out
            .backup_selection()
            .ok_or_else(|| missing(OP, region, "BackupSelection"))?;
        Ok(selection(out.selection_id().unwrap_or(selection_id), s))
    }

    async fn list_recovery_points(
        &self,
        region: &str,
        vault: &str,
        resource_arn: &str,
        created_after: Option<i64>,
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        const OP: &str = "ListRecoveryPointsByBackupVault";
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .clients
                .get(region)
                .list_recovery_points_by_backup_vault()
                .backup_vault_name(vault)
                .by_resource_arn(resource_arn)
                .set_by_created_after(created_after.map(aws_sdk_backup::primitives::DateTime::from_secs))
                .max_results(1000)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| from_sdk("backup", OP, region, e))?;
            for p in out.recovery_points() {
                let Some(arn) = p.recovery_point_arn().filter(|a| !a.is_empty()) else {
                    continue;
                };
                found.push(RecoveryPoint {
                    arn: arn.to_string(),
                    resource_arn: p.resource_arn().unwrap_or(resource_arn).to_string(),
                    status: p.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    creation_date: p
                        .creation_date()
                        .map(unix)
                        .ok_or_else(|| missing(OP, region, "CreationDate"))?,
                    source_vault_arn: p
                        .source_backup_vault_arn()
                        .filter(|a| !a.is_empty())
                        .map(str::to_string),
                    vault_name: p.backup_vault_name().unwrap_or(vault).to_string(),
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        found.sort_by(|a, b| (a.creation_date, &a.arn).cmp(&(b.creation_date, &b.arn)));
        Ok(found)
    }

    async fn list_copy_jobs(&self, region: &str, source_recovery_point_arn: &str) -> Result<Vec<CopyJob>, CloudError> {
        const OP: &str = "ListCopyJobs";
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .clients
                .get(region)
                .list_copy_jobs()
                .by_source_recovery_point_arn(source_recovery_point_arn)
                .max_results(1000)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| from_sdk("backup", OP, region, e))?;
            for j in out.copy_jobs() {
                if let Some(id) = j.copy_job_id() {
                    found.push(copy_job(j, id));
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        found.sort_by(|a, b| (a.creation_date, &a.job_id).cmp(&(b.creation_date, &b.job_id)));
        Ok(found)
    }

    async fn list_copy_jobs_since(
        &self,
        region: &str,
        created_after: i64,
        next_token: Option<&str>,
    ) -> Result<(Vec<CopyJob>, Option<String>), CloudError> {
        let out = self
            .clients
            .get(region)
            .list_copy_jobs()
            .by_created_after(aws_sdk_backup::primitives::DateTime::from_secs(created_after))
            .max_results(1000)
            .set_next_token(next_token.map(str::to_string))
            .send()
            .await
            .map_err(|e| from_sdk("backup", "ListCopyJobs", region, e))?;
        let jobs = out
            .copy_jobs()
            .iter()
            .filter_map(|j| Some(copy_job(j, j.copy_job_id()?)))
            .collect();
        Ok((jobs, out.next_token().filter(|t| !t.is_empty()).map(str::to_string)))
    }

    async fn get_backup_vault_access_policy(&self, region: &str, vault: &str) -> Result<Option<String>, CloudError> {
        let result = self
            .clients
            .get(region)
            .get_backup_vault_access_policy()
            .backup_vault_name(vault)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.policy().map(str::to_string)),
            Err(e) => {
                let e = from_sdk("backup", "GetBackupVaultAccessPolicy", region, e);
                // A vault without a policy answers ResourceNotFoundException too; DescribeBackupVault tells the two
                // apart (a preflight checks the vault itself).
                if e.code == "ResourceNotFoundException" {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn describe_global_settings(
        &self,
        region: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, CloudError> {
        let out = self
            .clients
            .get(region)
            .describe_global_settings()
            .send()
            .await
            .map_err(|e| from_sdk("backup", "DescribeGlobalSettings", region, e))?;
        Ok(out
            .global_settings()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }
}

/// drflow's copy job of the SDK's.
fn copy_job(job: &aws_sdk_backup::types::CopyJob, job_id: &str) -> CopyJob {
    let text = |s: Option<&str>| s.filter(|a| !a.is_empty()).map(str::to_string);
    let (state, status_message) = job_state(job.state().map(|s| s.as_str()), job.status_message());
    CopyJob {
        job_id: job.copy_job_id().unwrap_or(job_id).to_string(),
        state,
        status_message,
        destination_recovery_point_arn: text(job.destination_recovery_point_arn()),
        creation_date: job.creation_date().map(unix),
        completion_date: job.completion_date().map(unix),
        backup_size_bytes: job.backup_size_in_bytes().and_then(|b| u64::try_from(b).ok()),
        resource_arn: text(job.resource_arn()),
        source_recovery_point_arn: text(job.source_recovery_point_arn()),
        destination_vault_arn: text(job.destination_backup_vault_arn()),
    }
}

/// drflow's selection of the SDK's.
fn selection(selection_id: &str, s: &aws_sdk_backup::types::BackupSelection) -> BackupSelection {
    let params = |list: &[aws_sdk_backup::types::ConditionParameter]| -> Vec<TagCondition> {
        list.iter()
            .map(|c| TagCondition {
                key: c.condition_key().unwrap_or_default().to_string(),
                value: c.condition_value().unwrap_or_default().to_string(),
            })
            .collect()
    };
    BackupSelection {
        selection_id: selection_id.to_string(),
        name: s.selection_name().to_string(),
        resources: s.resources().to_vec(),
        not_resources: s.not_resources().to_vec(),
        // ListOfTags has one condition type, STRINGEQUALS.
        list_of_tags: s
            .list_of_tags()
            .iter()
            .map(|c| TagCondition {
                key: c.condition_key().to_string(),
                value: c.condition_value().to_string(),
            })
            .collect(),
        conditions: s.conditions().map_or_else(Conditions::default, |c| Conditions {
            string_equals: params(c.string_equals()),
            string_not_equals: params(c.string_not_equals()),
            string_like: params(c.string_like()),
            string_not_like: params(c.string_not_like()),
        }),
    }
}

/// The SDK's `Lifecycle` of drflow's.
fn lifecycle(l: crate::cloud::Lifecycle) -> aws_sdk_backup::types::Lifecycle {
    aws_sdk_backup::types::Lifecycle::builder()
        .set_move_to_cold_storage_after_days(l.move_to_cold_storage_after_days)
        .set_delete_after_days(l.delete_after_days)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_job_states_are_taken_as_running() {
        assert_eq!(job_state(Some("COMPLETED"), None), (JobState::Completed, None));
        assert_eq!(
            job_state(Some("FAILED"), Some("boom")),
            (JobState::Failed, Some("boom".into()))
        );
        let (state, msg) = job_state(Some("VALIDATING"), None);
        assert_eq!(state, JobState::Running);
        assert_eq!(
            msg.as_deref(),
            Some("unrecognised job state VALIDATING, treated as RUNNING")
        );
    }
}
