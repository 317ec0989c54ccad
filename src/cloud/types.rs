//! Plain data exchanged with the backends. Times are Unix seconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartBackupJob {
    pub vault: String,
    /// `arn:aws:ec2:REGION:ACCOUNT:instance/i-...`
    pub resource_arn: String,
    pub iam_role_arn: String,
    pub idempotency_token: String,
    /// When the recovery point expires (AWS Backup `Lifecycle`); `None` keeps it until deleted.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// AWS Backup `BackupOptions`, e.g. `WindowsVSS: enabled`.
    #[serde(default)]
    pub backup_options: std::collections::BTreeMap<String, String>,
}

/// An AWS Backup `Lifecycle`: days after creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub move_to_cold_storage_after_days: Option<i64>,
    pub delete_after_days: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartCopyJob {
    pub recovery_point_arn: String,
    pub source_vault: String,
    pub destination_vault_arn: String,
    pub iam_role_arn: String,
    pub idempotency_token: String,
    /// When the copy (the DR recovery point) expires.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
}

/// Backup job states, as AWS names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Created,
    Pending,
    Running,
    Aborting,
    Aborted,
    Completed,
    Failed,
    Expired,
    Partial,
}

impl JobState {
    pub fn parse(s: &str) -> Option<JobState> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Created => "CREATED",
            JobState::Pending => "PENDING",
            JobState::Running => "RUNNING",
            JobState::Aborting => "ABORTING",
            JobState::Aborted => "ABORTED",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Expired => "EXPIRED",
            JobState::Partial => "PARTIAL",
        }
    }

    /// A state the job never leaves, other than success.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            JobState::Aborted | JobState::Failed | JobState::Expired | JobState::Partial
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupJob {
    pub job_id: String,
    pub state: JobState,
    pub status_message: Option<String>,
    /// Present from RUNNING on at the earliest, from COMPLETED at the latest.
    pub recovery_point_arn: Option<String>,
    pub percent_done: Option<String>,
    pub creation_date: Option<i64>,
    pub completion_date: Option<i64>,
    /// BackupSizeInBytes, when AWS has told it.
    #[serde(default)]
    pub backup_size_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyJob {
    pub job_id: String,
    pub state: JobState,
    pub status_message: Option<String>,
    pub destination_recovery_point_arn: Option<String>,
    pub creation_date: Option<i64>,
    pub completion_date: Option<i64>,
    /// BackupSizeInBytes: the size of what is copied (copy jobs report no progress).
    #[serde(default)]
    pub backup_size_bytes: Option<u64>,
    /// ResourceArn: the resource the copied recovery point is a backup of.
    #[serde(default)]
    pub resource_arn: Option<String>,
    /// SourceRecoveryPointArn: what is copied.
    #[serde(default)]
    pub source_recovery_point_arn: Option<String>,
    /// DestinationBackupVaultArn: where the copy goes.
    #[serde(default)]
    pub destination_vault_arn: Option<String>,
}

/// A recovery point in a vault, as ListRecoveryPointsByBackupVault describes it. A copy keeps its source's
/// `resource_arn` and `creation_date` and names the vault it came from (`source_vault_arn`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    pub arn: String,
    pub resource_arn: String,
    /// COMPLETED, PARTIAL, DELETING, EXPIRED, CREATING, AVAILABLE, STOPPED... as AWS sends it.
    pub status: String,
    /// Unix seconds.
    pub creation_date: i64,
    /// SourceBackupVaultArn: set on copies.
    pub source_vault_arn: Option<String>,
    pub vault_name: String,
}

/// The newest COMPLETED point (latest CreationDate; AWS documents no order), ties broken by ARN.
pub fn newest_completed(points: &[RecoveryPoint]) -> Option<&RecoveryPoint> {
    points
        .iter()
        .filter(|p| p.status == "COMPLETED")
        .max_by(|a, b| (a.creation_date, &a.arn).cmp(&(b.creation_date, &b.arn)))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vault {
    pub name: String,
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub image_id: String,
    /// pending, available, invalid, deregistered, transient, failed, error, disabled
    pub state: String,
    pub state_reason: Option<String>,
    pub name: Option<String>,
    pub creation_date: Option<i64>,
    pub tags: BTreeMap<String, String>,
    /// The EBS snapshots of its block device mappings.
    #[serde(default)]
    pub snapshot_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub instance_id: String,
    pub image_id: String,
    /// pending, running, shutting-down, terminated, stopping, stopped
    pub state: String,
    pub tags: BTreeMap<String, String>,
}

/// EC2 status checks of a running instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub instance_id: String,
    pub state: String,
    /// ok, impaired, initializing, insufficient-data, not-applicable
    pub system_status: String,
    pub instance_status: String,
}

impl InstanceStatus {
    pub fn checks_passed(&self) -> bool {
        self.system_status == "ok" && self.instance_status == "ok"
    }
}

/// Whether `s` is an AWS account id: 12 digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// STS AssumeRole: the role a region's calls use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssumeRole {
    pub role_arn: String,
    /// The role's account (from its ARN): the account the client's calls act in.
    pub account: String,
    pub external_id: Option<String>,
    /// The role session's name: CloudTrail records it with every call made with these credentials.
    pub session_name: String,
    /// How long one set of credentials lasts (DurationSeconds).
    pub duration_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateImage {
    pub instance_id: String,
    pub name: String,
    pub no_reboot: bool,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyImage {
    pub source_region: String,
    pub source_image_id: String,
    pub name: String,
    pub client_token: String,
    /// Tags for the copy and its snapshots (CopyImage TagSpecifications): a copy carries no tag of its source.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Encrypt the copy's snapshots (CopyImage `Encrypted`), with `kms_key_id` or else the account's default EBS key.
    #[serde(default)]
    pub encrypted: bool,
    /// A KMS key of the destination region (id, ARN or alias ARN): CopyImage `KmsKeyId`.
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

/// A KMS key, as DescribeKey tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmsKey {
    pub key_id: String,
    pub arn: String,
    /// Enabled, Disabled, PendingDeletion, PendingImport, Unavailable, ...
    pub state: String,
    /// ENCRYPT_DECRYPT, SIGN_VERIFY, ...
    pub usage: String,
    /// SYMMETRIC_DEFAULT, RSA_2048, ...
    pub spec: String,
    /// AWS (an AWS managed key such as aws/ebs, which no other account may use) or CUSTOMER.
    pub manager: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub value: String,
    pub version: i64,
    pub data_type: String,
    pub last_modified: Option<i64>,
}

/// One version of a parameter in its history (GetParameterHistory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterVersion {
    pub version: i64,
    /// Labels on it (LabelParameterVersion): a label on the oldest of 100 versions stops every write.
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutParameter {
    pub name: String,
    pub value: String,
    /// `text` or `aws:ec2:image`.
    pub data_type: String,
    pub description: Option<String>,
    pub overwrite: bool,
    /// Only applied when the parameter is created (AWS refuses tags together with Overwrite).
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackRequest {
    pub name: String,
    pub template_body: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub client_request_token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    pub stack_id: String,
    pub name: String,
    /// CREATE_IN_PROGRESS, CREATE_COMPLETE, ROLLBACK_COMPLETE, UPDATE_COMPLETE, DELETE_COMPLETE, ...
    pub status: String,
    pub status_reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
}

impl Stack {
    pub fn is_in_progress(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS")
    }

    /// A settled state in which the last operation did not do what was asked.
    pub fn is_failed(&self) -> bool {
        !self.is_in_progress() && (self.status.contains("ROLLBACK") || self.status.ends_with("_FAILED"))
    }
}

/// The AMI id at the end of an EC2 recovery point ARN (`arn:aws:ec2:REGION::image/ami-...`).
pub fn image_id_from_arn(arn: &str) -> Option<&str> {
    let id = arn.rsplit('/').next()?;
    id.starts_with("ami-").then_some(id)
}

/// The region field of an ARN.
pub fn region_from_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ami_from_recovery_point_arn() {
        assert_eq!(
            image_id_from_arn("arn:aws:ec2:us-west-2::image/ami-0abc"),
            Some("ami-0abc")
        );
        assert_eq!(image_id_from_arn("arn:aws:backup:us-west-2:1:recovery-point:x"), None);
        assert_eq!(
            region_from_arn("arn:aws:ec2:us-west-2::image/ami-0abc"),
            Some("us-west-2")
        );
    }

    #[test]
    fn job_states_round_trip() {
        assert_eq!(JobState::parse("COMPLETED"), Some(JobState::Completed));
        assert_eq!(JobState::parse("nope"), None);
        assert!(JobState::Expired.is_failure() && !JobState::Running.is_failure());
    }
}

/// An SNS message to a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    pub topic_arn: String,
    /// At most 100 characters (SNS: the e-mail subject).
    pub subject: Option<String>,
    pub message: String,
}

/// The region of an ARN such as an SNS topic's (`arn:aws:sns:REGION:ACCOUNT:NAME`).
pub fn arn_region(arn: &str) -> Option<&str> {
    region_from_arn(arn)
}
