//! The records a world is made of: the call log and every resource the services keep, with the rules that derive
//! their state at a simulated instant. Plain data: the world owns them, the services read and change them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cloud::JobState;

/// One call received by the simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// IAM prefix: `backup`, `ec2`, `ssm`, `cloudformation`.
    pub service: String,
    /// API name, e.g. `StartBackupJob`.
    pub operation: String,
    pub region: String,
    /// Simulated time at which the call arrived (since the world was created).
    pub at: Duration,
    /// Whether the operation changes anything, as the one table of operations (`crate::cloud::operations`) says.
    pub mutating: bool,
    /// The error code it was answered with, if any.
    pub error: Option<String>,
    /// The simulated service carried the call out (its answer may still be an error, or lost). False when an
    /// injected error, throttling or an unknown region answered it first, and in calls saved before this existed.
    #[serde(default)]
    pub performed: bool,
    /// A `lose_response` fault replaced the answer of the performed call with `error`: the call took effect,
    /// the caller was not told.
    #[serde(default)]
    pub response_lost: bool,
}

// ---- AWS Backup

/// A backup or copy job: CREATED until `running_at`, RUNNING until `done_at`, then COMPLETED or FAILED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobRec {
    pub id: String,
    pub created_at: Duration,
    pub running_at: Duration,
    pub done_at: Duration,
    /// The status message of a job that fails.
    pub failure: Option<String>,
    /// Backup: the AMI of the instance (source region). Copy: the DR AMI (destination region).
    pub recovery_point_arn: String,
    /// The recovery point's lifecycle, as the start call gave it.
    #[serde(default)]
    pub lifecycle: Option<crate::cloud::Lifecycle>,
    /// `BackupOptions` of a backup job.
    #[serde(default)]
    pub backup_options: std::collections::BTreeMap<String, String>,
    /// BackupSizeInBytes: the instance's volumes.
    #[serde(default)]
    pub size_bytes: u64,
    /// ResourceArn: the instance backed up (or whose backup is copied).
    #[serde(default)]
    pub resource_arn: String,
    /// Copy jobs: the recovery point copied (SourceRecoveryPointArn).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_recovery_point_arn: String,
    /// Copy jobs: DestinationBackupVaultArn.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub destination_vault_arn: String,
}

impl JobRec {
    pub(crate) fn state(&self, now: Duration) -> JobState {
        if now < self.running_at {
            JobState::Created
        } else if now < self.done_at {
            JobState::Running
        } else if self.failure.is_some() {
            JobState::Failed
        } else {
            JobState::Completed
        }
    }

    pub(crate) fn percent_done(&self, now: Duration) -> String {
        let total = self.done_at.saturating_sub(self.running_at).as_secs_f64();
        let done = now.saturating_sub(self.running_at).as_secs_f64();
        let pct = if total == 0.0 {
            100.0
        } else {
            (100.0 * done / total).min(100.0)
        };
        format!("{pct:.1}")
    }

    /// The recovery point, from RUNNING on.
    pub(crate) fn recovery_point(&self, now: Duration) -> Option<String> {
        (now >= self.running_at).then(|| self.recovery_point_arn.clone())
    }
}

/// A recovery point in a vault of this region (keyed by its ARN): what ListRecoveryPointsByBackupVault lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecoveryPointRec {
    pub vault: String,
    /// The instance it is a backup of (a copy keeps its source's).
    pub resource_arn: String,
    /// CreationDate, in seconds since the world was created (negative: before; a copy keeps its source's). Kept
    /// relative, like every other time of the world: the world's Unix time is anchored anew when it is loaded.
    pub created_rel: i64,
    /// A copy's SourceBackupVaultArn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_vault_arn: Option<String>,
    /// The job that makes it: (region it was started in, job id); its state gives the point's status. `None`: a
    /// point that is COMPLETED from the start (a seeded plan history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_by: Option<(String, String)>,
}

// ---- EC2

/// An instance's volumes when the scenario does not say: an 8 GiB root volume.
pub(crate) const DEFAULT_SIZE_GIB: u64 = 8;

fn default_size_gib() -> u64 {
    DEFAULT_SIZE_GIB
}

/// Instances take this long to shut down when terminated outside a stack deletion.
pub(crate) const TERMINATION: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ImageRec {
    pub id: String,
    pub name: Option<String>,
    pub created_at: Duration,
    /// `pending` before this instant.
    pub ready_at: Duration,
    /// The state from `ready_at` on: `available` or `failed`.
    pub outcome: String,
    /// Explains a failed image.
    pub reason: Option<String>,
    /// A state that never changes (scenario images).
    pub fixed: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// When it was made, in seconds since the world was created, when that is before the world was (a seeded
    /// plan history: negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_rel: Option<i64>,
    /// Its EBS snapshots (`Region::snapshots`).
    #[serde(default)]
    pub snapshots: Vec<String>,
}

impl ImageRec {
    /// An image that is `pending` from `now` until `ready_at`, then `available` (or `failed` with `failure`).
    pub(crate) fn pending(id: &str, name: &str, now: Duration, ready_at: Duration, failure: Option<String>) -> Self {
        ImageRec {
            id: id.to_string(),
            name: Some(name.to_string()),
            created_at: now,
            ready_at,
            outcome: if failure.is_some() { "failed" } else { "available" }.to_string(),
            reason: failure,
            fixed: None,
            tags: BTreeMap::new(),
            created_rel: None,
            snapshots: Vec::new(),
        }
    }

    pub(crate) fn fixed(id: &str, name: Option<String>, state: &str) -> Self {
        ImageRec {
            id: id.to_string(),
            name,
            created_at: Duration::ZERO,
            ready_at: Duration::ZERO,
            outcome: state.to_string(),
            reason: None,
            fixed: Some(state.to_string()),
            tags: BTreeMap::new(),
            created_rel: None,
            snapshots: Vec::new(),
        }
    }

    /// The base AMI of a default region.
    pub(crate) fn base(id: &str) -> Self {
        ImageRec::fixed(
            id,
            Some("al2023-ami-2023.6.20250101.0-kernel-6.1-x86_64".into()),
            "available",
        )
    }

    pub(crate) fn state(&self, now: Duration) -> &str {
        match &self.fixed {
            Some(state) => state,
            None if now < self.ready_at => "pending",
            None => &self.outcome,
        }
    }

    pub(crate) fn is_available(&self, now: Duration) -> bool {
        self.state(now) == "available"
    }
}

/// An EBS snapshot (of an AMI's volume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SnapshotRec {
    /// The AMI it was made for.
    pub image_id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InstanceRec {
    /// The size of its volumes: backup and copy jobs of it take time in proportion (`Durations::reference_gib`).
    #[serde(default = "default_size_gib")]
    pub size_gib: u64,
    pub id: String,
    pub image_id: String,
    pub tags: BTreeMap<String, String>,
    /// `pending` before this instant, then `running`.
    pub launched_at: Duration,
    /// `shutting-down` from the first instant, `terminated` from the second.
    pub terminating: Option<(Duration, Duration)>,
    /// A state that never changes, unless terminated (scenario instances).
    pub fixed: Option<String>,
    /// The status check (`instance` or `system`) that ends `impaired` (scenario `impair_instances`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impaired: Option<String>,
}

impl InstanceRec {
    pub(crate) fn running(id: &str, image_id: &str, launched_at: Duration) -> Self {
        InstanceRec {
            id: id.to_string(),
            image_id: image_id.to_string(),
            tags: BTreeMap::new(),
            launched_at,
            terminating: None,
            fixed: None,
            impaired: None,
            size_gib: DEFAULT_SIZE_GIB,
        }
    }

    /// The default world's instance: running, tagged `drflow:protect` = `true` (what `dr-fleet.yaml` looks for).
    pub(crate) fn protected(id: &str, image_id: &str) -> Self {
        let mut rec = InstanceRec::running(id, image_id, Duration::ZERO);
        rec.tags.insert("drflow:protect".into(), "true".into());
        rec
    }

    pub(crate) fn state(&self, now: Duration) -> &str {
        match (self.terminating, &self.fixed) {
            (Some((_, end)), _) if now >= end => "terminated",
            (Some((start, _)), _) if now >= start => "shutting-down",
            (_, Some(state)) => state,
            _ if now < self.launched_at => "pending",
            _ => "running",
        }
    }

    /// Starts terminating at `from` (if not already), terminated at `until`.
    pub(crate) fn terminate(&mut self, from: Duration, until: Duration) {
        if self.terminating.is_none() {
            self.terminating = Some((from, until));
        }
    }
}

// ---- SSM Parameter Store

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ParamRec {
    pub data_type: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Oldest first; never empty.
    pub versions: Vec<VersionRec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct VersionRec {
    pub version: i64,
    pub value: String,
    pub modified_at: Duration,
    /// Labels attached to this version (LabelParameterVersion; scenario `labels`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

impl ParamRec {
    pub(crate) fn new(data_type: &str, value: &str, at: Duration) -> ParamRec {
        ParamRec {
            data_type: data_type.to_string(),
            description: None,
            tags: BTreeMap::new(),
            versions: vec![VersionRec {
                version: 1,
                value: value.to_string(),
                modified_at: at,
                labels: Vec::new(),
            }],
        }
    }

    pub(crate) fn latest(&self) -> &VersionRec {
        self.versions.last().expect("a parameter has at least one version")
    }

    /// `name` or `name:VERSION` (as in GetParameter and `{{resolve:ssm:...}}`): the version asked for.
    pub(crate) fn version(&self, version: Option<i64>) -> Option<&VersionRec> {
        match version {
            None => self.versions.last(),
            Some(v) => self.versions.iter().find(|r| r.version == v),
        }
    }
}

/// Splits `NAME:VERSION` (a numeric selector) from a plain name.
pub(crate) fn split_selector(name: &str) -> (&str, Option<i64>) {
    match name.rsplit_once(':') {
        Some((base, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => (base, v.parse().ok()),
        _ => (name, None),
    }
}

// ---- CloudFormation

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum OpKind {
    Create,
    Update,
    Delete,
}

/// The latest operation on a stack: in progress from `started` to `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StackOp {
    pub kind: OpKind,
    pub started: Duration,
    pub done: Duration,
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Failure {
    /// The stack's status reason ("The following resource(s) failed to create: [Web]. ...").
    pub status_reason: String,
    /// The reason of the resource that failed ("The image id '[ami-...]' does not exist").
    pub resource_reason: String,
}

impl StackOp {
    /// A failing operation fails halfway, then rolls back.
    pub(crate) fn failed_at(&self) -> Duration {
        self.started + (self.done - self.started) / 2
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StackRec {
    pub id: String,
    pub name: String,
    /// The template, parameters and tags of the last successful create or update.
    pub template: String,
    pub parameters: BTreeMap<String, String>,
    /// Every template parameter's value, SSM parameter types resolved.
    pub effective: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub resources: BTreeMap<String, Physical>,
    pub outputs: BTreeMap<String, String>,
    /// Shown while an update is in progress.
    pub previous_outputs: BTreeMap<String, String>,
    pub op: StackOp,
    /// Client request tokens of every operation so far.
    pub tokens: Vec<String>,
}

impl StackRec {
    pub(crate) fn is_live(&self, now: Duration) -> bool {
        !(self.op.kind == OpKind::Delete && now >= self.op.done)
    }

    pub(crate) fn status(&self, now: Duration) -> &'static str {
        let op = &self.op;
        let (running, rolling_back, rolled_back, complete) = match op.kind {
            OpKind::Create => (
                "CREATE_IN_PROGRESS",
                "ROLLBACK_IN_PROGRESS",
                "ROLLBACK_COMPLETE",
                "CREATE_COMPLETE",
            ),
            OpKind::Update => (
                "UPDATE_IN_PROGRESS",
                "UPDATE_ROLLBACK_IN_PROGRESS",
                "UPDATE_ROLLBACK_COMPLETE",
                "UPDATE_COMPLETE",
            ),
            OpKind::Delete => (
                "DELETE_IN_PROGRESS",
                "DELETE_FAILED",
                "DELETE_FAILED",
                "DELETE_COMPLETE",
            ),
        };
        match &op.failure {
            Some(_) if now >= op.done => rolled_back,
            Some(_) if now >= op.failed_at() => rolling_back,
            _ if now < op.done => running,
            _ => complete,
        }
    }

    pub(crate) fn failure(&self, now: Duration) -> Option<&Failure> {
        self.op.failure.as_ref().filter(|_| now >= self.op.failed_at())
    }

    pub(crate) fn visible_outputs(&self, now: Duration) -> &BTreeMap<String, String> {
        match self.op.kind {
            OpKind::Create | OpKind::Update if self.op.failure.is_none() && now < self.op.done => {
                &self.previous_outputs
            }
            _ => &self.outputs,
        }
    }
}

/// A created resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Physical {
    pub id: String,
    pub kind: String,
    /// For instances.
    pub image_id: Option<String>,
}

/// A message published to a simulated SNS topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRec {
    pub id: String,
    pub subject: Option<String>,
    pub message: String,
    /// Simulated time it was published.
    pub at: Duration,
}
