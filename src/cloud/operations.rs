//! The one table of AWS operations drflow calls: their IAM names and whether they change anything. Actions declare
//! the operations they call by these names; the simulator's call log, the plan (`read-only` or not) and the IAM
//! policy all read this table, never an operation name's prefix.

/// One AWS API operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The IAM service prefix, e.g. `backup`.
    pub service: &'static str,
    /// The API name, e.g. `StartBackupJob`.
    pub name: &'static str,
    /// Whether it changes anything in the account.
    pub mutates: bool,
}

const fn op(service: &'static str, name: &'static str, mutates: bool) -> Operation {
    Operation { service, name, mutates }
}

pub const OPERATIONS: &[Operation] = &[
    op("backup", "StartBackupJob", true),
    op("backup", "DescribeBackupJob", false),
    op("backup", "ListBackupJobs", false),
    op("backup", "StartCopyJob", true),
    op("backup", "DescribeCopyJob", false),
    op("backup", "DescribeBackupVault", false),
    op("backup", "ListBackupSelections", false),
    op("backup", "GetBackupSelection", false),
    op("ec2", "DescribeImages", false),
    op("ec2", "DescribeInstances", false),
    op("ec2", "DescribeInstanceStatus", false),
    op("ec2", "CreateImage", true),
    op("ec2", "CopyImage", true),
    op("ssm", "GetParameter", false),
    op("ssm", "PutParameter", true),
    op("cloudformation", "DescribeStacks", false),
    op("cloudformation", "DescribeStackEvents", false),
    op("cloudformation", "CreateStack", true),
    op("cloudformation", "UpdateStack", true),
    op("cloudformation", "DeleteStack", true),
    op("cloudformation", "ValidateTemplate", false),
    op("sns", "Publish", true),
    op("sns", "GetTopicAttributes", false),
    op("sts", "GetCallerIdentity", false),
    op("backup", "ListRecoveryPointsByBackupVault", false),
    op("backup", "ListCopyJobs", false),
    op("ec2", "DeregisterImage", true),
    op("ec2", "DeleteSnapshot", true),
    op("ssm", "GetParameterHistory", false),
    op("ec2", "ModifyImageAttribute", true),
    op("ec2", "ModifySnapshotAttribute", true),
    op("kms", "DescribeKey", false),
    op("kms", "GetKeyPolicy", false),
    op("backup", "GetBackupVaultAccessPolicy", false),
    op("backup", "DescribeGlobalSettings", false),
    op("sts", "AssumeRole", false),
];

/// Lists that answer a wait's polls in place of its describe (one list for the polls of many jobs): a poll makes
/// one or the other, never both.
pub const POLL_LISTS: &[&str] = &["backup:ListBackupJobs", "backup:ListCopyJobs"];

/// The operation named `service:Name`.
pub fn find(full: &str) -> Option<&'static Operation> {
    let (service, name) = full.split_once(':')?;
    OPERATIONS.iter().find(|o| o.service == service && o.name == name)
}

/// Whether `service:Name` changes anything; an operation missing from the table counts as changing things.
pub fn mutates(full: &str) -> bool {
    find(full).is_none_or(|o| o.mutates)
}

/// The same, by service and API name (as a backend sees a call).
pub fn mutates_call(service: &str, name: &str) -> bool {
    OPERATIONS
        .iter()
        .find(|o| o.service == service && o.name == name)
        .is_none_or(|o| o.mutates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_operation() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            assert!(
                !OPERATIONS[i + 1..]
                    .iter()
                    .any(|b| b.service == a.service && b.name == a.name),
                "{}:{} twice",
                a.service,
                a.name
            );
        }
        assert!(mutates("backup:StartCopyJob") && !mutates("cloudformation:ValidateTemplate"));
        assert!(
            mutates("ec2:TerminateInstances"),
            "unknown operations count as changing things"
        );
        assert!(!mutates_call("ec2", "DescribeImages"));
    }
}
