//! AWS's limits on concurrent work, which drflow keeps without configuration: an action declares the quotas its job
//! counts against; a workflow may lower (or, where AWS allows, raise) them with `quotas: {NAME: N}`.

/// A limit on how many jobs may run at once, per key (a resource, a destination region).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// As `quotas:` names it.
    pub name: &'static str,
    /// What is counted, per what: for messages and plans.
    pub what: &'static str,
    /// What the count is kept per.
    pub per: QuotaKey,
    /// AWS's default.
    pub limit: u32,
    /// Whether AWS raises it on request (Service Quotas); a workflow may not go above one that it does not.
    pub adjustable: bool,
}

/// What a quota's count is kept per: the value of one of the step's inputs, or the step's region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKey {
    Input(&'static str),
    StepRegion,
}

/// AWS Backup runs one backup job per resource at a time (more queue); not adjustable.
pub const BACKUP_JOBS_PER_RESOURCE: Quota = Quota {
    name: "backup_jobs_per_resource",
    what: "AWS Backup jobs per resource",
    per: QuotaKey::Input("instance_id"),
    limit: 1,
    adjustable: false,
};

/// AWS Backup: concurrent copy jobs per account going to one destination region.
pub const BACKUP_COPIES: Quota = Quota {
    name: "backup_copies",
    what: "AWS Backup copy jobs into one destination region",
    per: QuotaKey::Input("destination_region"),
    limit: 100,
    adjustable: true,
};

/// EC2 CopyImage: concurrent AMI copies per destination region (called in the destination region).
pub const IMAGE_COPIES: Quota = Quota {
    name: "image_copies",
    what: "EC2 AMI copies into one destination region",
    per: QuotaKey::StepRegion,
    limit: 300,
    adjustable: true,
};

/// EBS: concurrent snapshot copies per destination region, not adjustable. An AMI copy copies its snapshots: drflow
/// counts one per AMI (its root volume), so AMIs with more volumes should lower this.
pub const SNAPSHOT_COPIES: Quota = Quota {
    name: "snapshot_copies",
    what: "EBS snapshot copies into one destination region",
    per: QuotaKey::StepRegion,
    limit: 20,
    adjustable: false,
};

/// Every quota an action may declare, for validating `quotas:`.
pub const ALL: &[Quota] = &[BACKUP_JOBS_PER_RESOURCE, BACKUP_COPIES, IMAGE_COPIES, SNAPSHOT_COPIES];

pub fn find(name: &str) -> Option<&'static Quota> {
    ALL.iter().find(|q| q.name == name)
}

/// A workflow's quotas: AWS's defaults, with its overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quotas {
    pub overrides: Vec<(String, u32)>,
}

impl Quotas {
    pub fn limit(&self, q: &Quota) -> u32 {
        self.overrides
            .iter()
            .find(|(n, _)| n == q.name)
            .map_or(q.limit, |(_, v)| *v)
    }
}
