//! The narrow surface drflow needs from AWS: only the operations the actions use, in drflow's own types.
//!
//! Two backends implement it: `sim` (an in-process simulated AWS) and `aws` (the SDK). Actions never see SDK types.
//! Every call names its region; a backend keeps one client per region.

pub mod aws;
mod backup_plan;
mod batch;
mod batch_jobs;
mod error;
pub mod freshness;
mod limited;
pub mod limiter;
pub mod operations;
pub mod policy_doc;
pub mod sim;
mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

pub use backup_plan::*;
pub use error::{CloudError, ErrorKind};
pub use types::*;

/// AWS Backup: jobs are started in the source region and polled with Describe*; there are no waiters.
#[async_trait]
pub trait Backup: Send + Sync {
    /// Returns the backup job id. For EC2 the response carries no recovery point: read it from `describe_backup_job`.
    async fn start_backup_job(&self, region: &str, req: &StartBackupJob) -> Result<String, CloudError>;
    async fn describe_backup_job(&self, region: &str, job_id: &str) -> Result<BackupJob, CloudError>;
    /// One page (up to 1,000) of the backup jobs created at or after `created_after` (Unix seconds) in the region
    /// (ListBackupJobs ByCreatedAfter), and the token of the next page. Its jobs carry what DescribeBackupJob tells
    /// a wait: state, progress, recovery point, size.
    async fn list_backup_jobs(
        &self,
        region: &str,
        created_after: i64,
        next_token: Option<&str>,
    ) -> Result<(Vec<BackupJob>, Option<String>), CloudError>;
    /// Called in the source region; returns the copy job id.
    async fn start_copy_job(&self, region: &str, req: &StartCopyJob) -> Result<String, CloudError>;
    async fn describe_copy_job(&self, region: &str, job_id: &str) -> Result<CopyJob, CloudError>;
    async fn describe_backup_vault(&self, region: &str, name: &str) -> Result<Vault, CloudError>;
    /// A backup plan's selections, all pages (ListBackupSelections); a plan that does not exist is an error
    /// (ResourceNotFoundException).
    async fn list_backup_selections(&self, region: &str, plan_id: &str) -> Result<Vec<SelectionRef>, CloudError>;
    /// One selection of a plan: its resources, exclusions and tag conditions (GetBackupSelection).
    async fn get_backup_selection(
        &self,
        region: &str,
        plan_id: &str,
        selection_id: &str,
    ) -> Result<BackupSelection, CloudError>;
    /// The recovery points of one resource in a vault, created at or after `created_after` (Unix seconds) when
    /// given: ListRecoveryPointsByBackupVault with ByResourceArn (and ByCreatedAfter), all pages, oldest first
    /// (AWS documents no order: sorted here by CreationDate).
    async fn list_recovery_points(
        &self,
        region: &str,
        vault: &str,
        resource_arn: &str,
        created_after: Option<i64>,
    ) -> Result<Vec<RecoveryPoint>, CloudError>;
    /// The copy jobs of one recovery point (ListCopyJobs BySourceRecoveryPointArn), called in the source region, all
    /// pages, oldest first.
    async fn list_copy_jobs(&self, region: &str, source_recovery_point_arn: &str) -> Result<Vec<CopyJob>, CloudError>;
    /// One page (up to 1,000) of the copy jobs created at or after `created_after` (Unix seconds) in the (source)
    /// region (ListCopyJobs ByCreatedAfter), and the token of the next page: what batched copy-job polls read.
    async fn list_copy_jobs_since(
        &self,
        region: &str,
        created_after: i64,
        next_token: Option<&str>,
    ) -> Result<(Vec<CopyJob>, Option<String>), CloudError>;
    /// A vault's access policy document (GetBackupVaultAccessPolicy); `None` when it has none.
    async fn get_backup_vault_access_policy(&self, region: &str, vault: &str) -> Result<Option<String>, CloudError>;
    /// The account's (organization's) AWS Backup settings, e.g. `isCrossAccountBackupEnabled` (DescribeGlobalSettings).
    async fn describe_global_settings(&self, region: &str) -> Result<BTreeMap<String, String>, CloudError>;
}

#[async_trait]
pub trait Ec2: Send + Sync {
    /// Images that do not exist are left out of the answer (AWS fails the whole call with InvalidAMIID.NotFound
    /// for an unknown well-formed id; a malformed id stays an error, InvalidAMIID.Malformed).
    async fn describe_images(&self, region: &str, image_ids: &[String]) -> Result<Vec<Image>, CloudError>;
    async fn describe_instances(&self, region: &str, instance_ids: &[String]) -> Result<Vec<Instance>, CloudError>;
    /// The instances (not terminated or shutting down) that carry every one of `tags`, all pages.
    async fn find_instances(
        &self,
        region: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError>;
    /// Status checks of one instance; `None` when AWS reports none (e.g. not running).
    async fn describe_instance_status(
        &self,
        region: &str,
        instance_id: &str,
    ) -> Result<Option<InstanceStatus>, CloudError>;
    /// The account's own image with this name (AMI names are unique per account and region).
    async fn find_image_by_name(&self, region: &str, name: &str) -> Result<Option<Image>, CloudError>;
    /// No client token exists for CreateImage: callers guard it with the journal and a tag.
    async fn create_image(&self, region: &str, req: &CreateImage) -> Result<String, CloudError>;
    /// Called in the destination region.
    async fn copy_image(&self, region: &str, req: &CopyImage) -> Result<String, CloudError>;
    /// The account's own images (DescribeImages, Owners=self) that carry every one of `tags`, all pages.
    async fn find_images(
        &self,
        region: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Image>, CloudError>;
    /// Deregisters an image; with `delete_snapshots` (DeregisterImage DeleteAssociatedSnapshots) also deletes its
    /// snapshots that no other AMI uses, and returns each of its snapshots with AWS's return code (`success`,
    /// `skipped`: another AMI uses it, `missing-permissions`, `client-error`, `internal-error`). An image already
    /// deregistered is an error (InvalidAMIID.NotFound or InvalidAMIID.Unavailable).
    async fn deregister_image(
        &self,
        region: &str,
        image_id: &str,
        delete_snapshots: bool,
    ) -> Result<Vec<(String, String)>, CloudError>;
    /// Deletes one EBS snapshot (InvalidSnapshot.NotFound when it is gone, InvalidSnapshot.InUse while an AMI
    /// uses it).
    async fn delete_snapshot(&self, region: &str, snapshot_id: &str) -> Result<(), CloudError>;
    /// Lets another account launch (and so copy) an image, or stops letting it (ModifyImageAttribute
    /// LaunchPermission Add/Remove UserId).
    async fn share_image(&self, region: &str, image_id: &str, account: &str, share: bool) -> Result<(), CloudError>;
    /// Lets another account create volumes from (and so copy) a snapshot, or stops letting it
    /// (ModifySnapshotAttribute createVolumePermission add/remove).
    async fn share_snapshot(
        &self,
        region: &str,
        snapshot_id: &str,
        account: &str,
        share: bool,
    ) -> Result<(), CloudError>;
}

#[async_trait]
pub trait Ssm: Send + Sync {
    async fn get_parameter(&self, region: &str, name: &str) -> Result<Option<Parameter>, CloudError>;
    /// Returns the version AWS reports. With `aws:ec2:image` the value is validated asynchronously:
    /// a success here does not mean it was stored — read it back.
    async fn put_parameter(&self, region: &str, req: &PutParameter) -> Result<i64, CloudError>;
    /// The versions SSM keeps of a parameter (at most 100), oldest first, all pages (GetParameterHistory); a
    /// parameter that does not exist has none.
    async fn parameter_history(&self, region: &str, name: &str) -> Result<Vec<ParameterVersion>, CloudError>;
}

#[async_trait]
pub trait CloudFormation: Send + Sync {
    /// `None` when no live stack has that name (a deleted stack is not found by name).
    async fn describe_stack(&self, region: &str, name: &str) -> Result<Option<Stack>, CloudError>;
    async fn create_stack(&self, region: &str, req: &StackRequest) -> Result<String, CloudError>;
    /// Fails with a ValidationError "No updates are to be performed." when nothing changes.
    async fn update_stack(&self, region: &str, req: &StackRequest) -> Result<String, CloudError>;
    async fn delete_stack(&self, region: &str, name: &str, client_request_token: &str) -> Result<(), CloudError>;
    /// The reason of the first resource that failed in the latest operation, if any.
    async fn stack_failure_reason(&self, region: &str, name: &str) -> Result<Option<String>, CloudError>;
    async fn validate_template(&self, region: &str, template_body: &str) -> Result<(), CloudError>;
}

/// SNS: notifications.
#[async_trait]
pub trait Sns: Send + Sync {
    /// Returns the message id.
    async fn publish(&self, region: &str, req: &Publish) -> Result<String, CloudError>;
    /// Whether the topic exists (GetTopicAttributes; NotFound is `false`).
    async fn topic_exists(&self, region: &str, topic_arn: &str) -> Result<bool, CloudError>;
}

#[async_trait]
pub trait Sts: Send + Sync {
    async fn get_caller_identity(&self, region: &str) -> Result<CallerIdentity, CloudError>;
    /// A client whose calls use `role`'s credentials (STS AssumeRole in `region`, asked at once, so that a role
    /// the caller may not assume fails here), renewed before they expire. Its `account` is the role's.
    async fn assume_role(&self, region: &str, role: &AssumeRole) -> Result<Cloud, CloudError>;
}

/// KMS, read-only: whether a key that encrypts DR copies exists and may be used.
#[async_trait]
pub trait Kms: Send + Sync {
    /// `None` when no such key is visible (NotFoundException).
    async fn describe_key(&self, region: &str, key_id: &str) -> Result<Option<KmsKey>, CloudError>;
    /// The key's policy document (GetKeyPolicy, policy `default`).
    async fn get_key_policy(&self, region: &str, key_id: &str) -> Result<String, CloudError>;
}

/// One backend: a handle per service.
#[derive(Clone)]
pub struct Cloud {
    pub backend: &'static str,
    pub backup: Arc<dyn Backup>,
    pub ec2: Arc<dyn Ec2>,
    pub ssm: Arc<dyn Ssm>,
    pub cloudformation: Arc<dyn CloudFormation>,
    pub sns: Arc<dyn Sns>,
    pub sts: Arc<dyn Sts>,
    pub kms: Arc<dyn Kms>,
    /// The run's rate limiter, once [`Cloud::limited`] put one in front of the services.
    pub limiter: Option<Arc<limiter::Limiter>>,
    /// The account these credentials act in, when known before any call (a role's, from its ARN): errors name it.
    pub account: Option<String>,
    /// The clients of regions whose calls assume a role (another account), by region name; empty on those
    /// clients themselves.
    pub roles: Arc<Vec<(String, Cloud)>>,
}

impl Cloud {
    /// The same backend with every call going through one shared [`limiter::Limiter`] (already limited: unchanged).
    /// Each role's client gets a limiter of its own: AWS's rate limits are per account.
    pub fn limited(self) -> Cloud {
        if self.limiter.is_some() {
            return self;
        }
        let limiter = Arc::new(limiter::Limiter::new());
        let roles: Vec<(String, Cloud)> = self
            .roles
            .iter()
            .map(|(name, c)| (name.clone(), c.clone().limited()))
            .collect();
        let through = Arc::new(limited::Limited::new(self.clone(), limiter.clone()));
        Cloud {
            backend: self.backend,
            backup: through.clone(),
            ec2: through.clone(),
            ssm: through.clone(),
            cloudformation: through.clone(),
            sns: through.clone(),
            sts: through.clone(),
            kms: through,
            limiter: Some(limiter),
            account: self.account,
            roles: Arc::new(roles),
        }
    }

    /// The client whose credentials the calls of region `name` use: its role's, else the caller's own.
    pub fn for_region(&self, name: &str) -> &Cloud {
        self.roles.iter().find(|(n, _)| n == name).map_or(self, |(_, c)| c)
    }

    /// This client with the clients of the regions that assume a role.
    pub fn with_roles(mut self, roles: Vec<(String, Cloud)>) -> Cloud {
        self.roles = Arc::new(roles);
        self
    }

    /// Every set of credentials of the run: the caller's own (`None`), then each role's region name.
    pub fn all(&self) -> Vec<(Option<&str>, &Cloud)> {
        let mut out: Vec<(Option<&str>, &Cloud)> = vec![(None, self)];
        out.extend(self.roles.iter().map(|(n, c)| (Some(n.as_str()), c)));
        out
    }
}
