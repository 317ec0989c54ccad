//! The backend seen through the run's [`Limiter`]: every call waits for its token first and reports how it was
//! answered. Each method names the one AWS operation it makes; DescribeImages calls of the same moment are batched,
//! and so are DescribeBackupJob calls (as one ListBackupJobs) and DescribeCopyJob calls (as one ListCopyJobs).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use super::batch::ImageBatches;
use super::batch_jobs::{BackupJobs, CopyJobs, JobBatches};
use super::limiter::Limiter;
use super::*;

pub(crate) struct Limited {
    inner: Cloud,
    limiter: Arc<Limiter>,
    images: Arc<ImageBatches>,
    backup_jobs: Arc<JobBatches<BackupJobs>>,
    copy_jobs: Arc<JobBatches<CopyJobs>>,
}

impl Limited {
    pub(crate) fn new(inner: Cloud, limiter: Arc<Limiter>) -> Limited {
        Limited {
            inner,
            limiter,
            images: Arc::default(),
            backup_jobs: Arc::default(),
            copy_jobs: Arc::default(),
        }
    }

    async fn call<T>(
        &self,
        region: &str,
        (service, operation): (&str, &str),
        answer: impl Future<Output = Result<T, CloudError>>,
    ) -> Result<T, CloudError> {
        self.limiter.acquire(region, service, operation).await;
        self.limiter.send(region, (service, operation), answer).await
    }
}

#[async_trait]
impl Backup for Limited {
    async fn start_backup_job(&self, region: &str, req: &StartBackupJob) -> Result<String, CloudError> {
        let b = &self.inner.backup;
        self.call(region, ("backup", "StartBackupJob"), b.start_backup_job(region, req))
            .await
    }
    async fn describe_backup_job(&self, region: &str, job_id: &str) -> Result<BackupJob, CloudError> {
        let b = &self.inner.backup;
        self.backup_jobs.describe(b, &self.limiter, region, job_id).await
    }
    async fn list_backup_jobs(
        &self,
        region: &str,
        created_after: i64,
        next_token: Option<&str>,
    ) -> Result<(Vec<BackupJob>, Option<String>), CloudError> {
        let b = &self.inner.backup;
        self.call(
            region,
            ("backup", "ListBackupJobs"),
            b.list_backup_jobs(region, created_after, next_token),
        )
        .await
    }
    async fn start_copy_job(&self, region: &str, req: &StartCopyJob) -> Result<String, CloudError> {
        let b = &self.inner.backup;
        self.call(region, ("backup", "StartCopyJob"), b.start_copy_job(region, req))
            .await
    }
    async fn describe_copy_job(&self, region: &str, job_id: &str) -> Result<CopyJob, CloudError> {
        let b = &self.inner.backup;
        self.copy_jobs.describe(b, &self.limiter, region, job_id).await
    }
    async fn describe_backup_vault(&self, region: &str, name: &str) -> Result<Vault, CloudError> {
        let b = &self.inner.backup;
        self.call(
            region,
            ("backup", "DescribeBackupVault"),
            b.describe_backup_vault(region, name),
        )
        .await
    }
    async fn list_backup_selections(&self, region: &str, plan_id: &str) -> Result<Vec<SelectionRef>, CloudError> {
        let b = &self.inner.backup;
        let answer = b.list_backup_selections(region, plan_id);
        self.call(region, ("backup", "ListBackupSelections"), answer).await
    }
    async fn get_backup_selection(
        &self,
        region: &str,
        plan_id: &str,
        selection_id: &str,
    ) -> Result<BackupSelection, CloudError> {
        let b = &self.inner.backup;
        let answer = b.get_backup_selection(region, plan_id, selection_id);
        self.call(region, ("backup", "GetBackupSelection"), answer).await
    }
    /// One token per call, not per page (the pages of one listing come one after the other).
    async fn list_recovery_points(
        &self,
        region: &str,
        vault: &str,
        resource_arn: &str,
        created_after: Option<i64>,
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        let b = &self.inner.backup;
        let answer = b.list_recovery_points(region, vault, resource_arn, created_after);
        self.call(region, ("backup", "ListRecoveryPointsByBackupVault"), answer)
            .await
    }
    async fn list_copy_jobs(&self, region: &str, source_recovery_point_arn: &str) -> Result<Vec<CopyJob>, CloudError> {
        let b = &self.inner.backup;
        let answer = b.list_copy_jobs(region, source_recovery_point_arn);
        self.call(region, ("backup", "ListCopyJobs"), answer).await
    }
    async fn list_copy_jobs_since(
        &self,
        region: &str,
        created_after: i64,
        next_token: Option<&str>,
    ) -> Result<(Vec<CopyJob>, Option<String>), CloudError> {
        let b = &self.inner.backup;
        let answer = b.list_copy_jobs_since(region, created_after, next_token);
        self.call(region, ("backup", "ListCopyJobs"), answer).await
    }
    async fn get_backup_vault_access_policy(&self, region: &str, vault: &str) -> Result<Option<String>, CloudError> {
        let b = &self.inner.backup;
        let answer = b.get_backup_vault_access_policy(region, vault);
        self.call(region, ("backup", "GetBackupVaultAccessPolicy"), answer)
            .await
    }
    async fn describe_global_settings(&self, region: &str) -> Result<BTreeMap<String, String>, CloudError> {
        let b = &self.inner.backup;
        let answer = b.describe_global_settings(region);
        self.call(region, ("backup", "DescribeGlobalSettings"), answer).await
    }
}

#[async_trait]
impl Ec2 for Limited {
    /// Batched with the other DescribeImages calls of the moment in the same region.
    async fn describe_images(&self, region: &str, image_ids: &[String]) -> Result<Vec<Image>, CloudError> {
        let (ec2, limiter) = (&self.inner.ec2, &self.limiter);
        self.images.describe(ec2, limiter, region, image_ids).await
    }
    async fn describe_instances(&self, region: &str, instance_ids: &[String]) -> Result<Vec<Instance>, CloudError> {
        let e = &self.inner.ec2;
        self.call(
            region,
            ("ec2", "DescribeInstances"),
            e.describe_instances(region, instance_ids),
        )
        .await
    }
    async fn find_instances(&self, region: &str, tags: &BTreeMap<String, String>) -> Result<Vec<Instance>, CloudError> {
        let e = &self.inner.ec2;
        self.call(region, ("ec2", "DescribeInstances"), e.find_instances(region, tags))
            .await
    }
    async fn describe_instance_status(
        &self,
        region: &str,
        instance_id: &str,
    ) -> Result<Option<InstanceStatus>, CloudError> {
        let e = &self.inner.ec2;
        self.call(
            region,
            ("ec2", "DescribeInstanceStatus"),
            e.describe_instance_status(region, instance_id),
        )
        .await
    }
    async fn find_image_by_name(&self, region: &str, name: &str) -> Result<Option<Image>, CloudError> {
        let e = &self.inner.ec2;
        self.call(region, ("ec2", "DescribeImages"), e.find_image_by_name(region, name))
            .await
    }
    async fn create_image(&self, region: &str, req: &CreateImage) -> Result<String, CloudError> {
        let e = &self.inner.ec2;
        self.call(region, ("ec2", "CreateImage"), e.create_image(region, req))
            .await
    }
    async fn copy_image(&self, region: &str, req: &CopyImage) -> Result<String, CloudError> {
        let e = &self.inner.ec2;
        self.call(region, ("ec2", "CopyImage"), e.copy_image(region, req)).await
    }
    async fn find_images(&self, region: &str, tags: &BTreeMap<String, String>) -> Result<Vec<Image>, CloudError> {
        let e = &self.inner.ec2;
        self.call(region, ("ec2", "DescribeImages"), e.find_images(region, tags))
            .await
    }
    async fn deregister_image(
        &self,
        region: &str,
        image_id: &str,
        delete_snapshots: bool,
    ) -> Result<Vec<(String, String)>, CloudError> {
        let e = &self.inner.ec2;
        let answer = e.deregister_image(region, image_id, delete_snapshots);
        self.call(region, ("ec2", "DeregisterImage"), answer).await
    }
    async fn delete_snapshot(&self, region: &str, snapshot_id: &str) -> Result<(), CloudError> {
        let e = &self.inner.ec2;
        self.call(
            region,
            ("ec2", "DeleteSnapshot"),
            e.delete_snapshot(region, snapshot_id),
        )
        .await
    }
    async fn share_image(&self, region: &str, image_id: &str, account: &str, share: bool) -> Result<(), CloudError> {
        let answer = self.inner.ec2.share_image(region, image_id, account, share);
        self.call(region, ("ec2", "ModifyImageAttribute"), answer).await
    }
    async fn share_snapshot(
        &self,
        region: &str,
        snapshot_id: &str,
        account: &str,
        share: bool,
    ) -> Result<(), CloudError> {
        let answer = self.inner.ec2.share_snapshot(region, snapshot_id, account, share);
        self.call(region, ("ec2", "ModifySnapshotAttribute"), answer).await
    }
}

#[async_trait]
impl Ssm for Limited {
    async fn get_parameter(&self, region: &str, name: &str) -> Result<Option<Parameter>, CloudError> {
        let s = &self.inner.ssm;
        self.call(region, ("ssm", "GetParameter"), s.get_parameter(region, name))
            .await
    }
    async fn put_parameter(&self, region: &str, req: &PutParameter) -> Result<i64, CloudError> {
        let s = &self.inner.ssm;
        self.call(region, ("ssm", "PutParameter"), s.put_parameter(region, req))
            .await
    }
    async fn parameter_history(&self, region: &str, name: &str) -> Result<Vec<ParameterVersion>, CloudError> {
        let s = &self.inner.ssm;
        let answer = s.parameter_history(region, name);
        self.call(region, ("ssm", "GetParameterHistory"), answer).await
    }
}

#[async_trait]
impl CloudFormation for Limited {
    async fn describe_stack(&self, region: &str, name: &str) -> Result<Option<Stack>, CloudError> {
        let c = &self.inner.cloudformation;
        self.call(
            region,
            ("cloudformation", "DescribeStacks"),
            c.describe_stack(region, name),
        )
        .await
    }
    async fn create_stack(&self, region: &str, req: &StackRequest) -> Result<String, CloudError> {
        let c = &self.inner.cloudformation;
        self.call(region, ("cloudformation", "CreateStack"), c.create_stack(region, req))
            .await
    }
    async fn update_stack(&self, region: &str, req: &StackRequest) -> Result<String, CloudError> {
        let c = &self.inner.cloudformation;
        self.call(region, ("cloudformation", "UpdateStack"), c.update_stack(region, req))
            .await
    }
    async fn delete_stack(&self, region: &str, name: &str, client_request_token: &str) -> Result<(), CloudError> {
        let c = &self.inner.cloudformation;
        let answer = c.delete_stack(region, name, client_request_token);
        self.call(region, ("cloudformation", "DeleteStack"), answer).await
    }
    async fn stack_failure_reason(&self, region: &str, name: &str) -> Result<Option<String>, CloudError> {
        let c = &self.inner.cloudformation;
        let answer = c.stack_failure_reason(region, name);
        self.call(region, ("cloudformation", "DescribeStackEvents"), answer)
            .await
    }
    async fn validate_template(&self, region: &str, template_body: &str) -> Result<(), CloudError> {
        let c = &self.inner.cloudformation;
        let answer = c.validate_template(region, template_body);
        self.call(region, ("cloudformation", "ValidateTemplate"), answer).await
    }
}

#[async_trait]
impl Sns for Limited {
    async fn publish(&self, region: &str, req: &Publish) -> Result<String, CloudError> {
        let s = &self.inner.sns;
        self.call(region, ("sns", "Publish"), s.publish(region, req)).await
    }
    async fn topic_exists(&self, region: &str, topic_arn: &str) -> Result<bool, CloudError> {
        let s = &self.inner.sns;
        self.call(region, ("sns", "GetTopicAttributes"), s.topic_exists(region, topic_arn))
            .await
    }
}

#[async_trait]
impl Sts for Limited {
    async fn get_caller_identity(&self, region: &str) -> Result<CallerIdentity, CloudError> {
        let s = &self.inner.sts;
        self.call(region, ("sts", "GetCallerIdentity"), s.get_caller_identity(region))
            .await
    }
    async fn assume_role(&self, region: &str, role: &AssumeRole) -> Result<Cloud, CloudError> {
        let answer = self.inner.sts.assume_role(region, role);
        self.call(region, ("sts", "AssumeRole"), answer).await
    }
}

#[async_trait]
impl Kms for Limited {
    async fn describe_key(&self, region: &str, key_id: &str) -> Result<Option<KmsKey>, CloudError> {
        let answer = self.inner.kms.describe_key(region, key_id);
        self.call(region, ("kms", "DescribeKey"), answer).await
    }
    async fn get_key_policy(&self, region: &str, key_id: &str) -> Result<String, CloudError> {
        let answer = self.inner.kms.get_key_policy(region, key_id);
        self.call(region, ("kms", "GetKeyPolicy"), answer).await
    }
}
