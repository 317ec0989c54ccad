//! The list of actions: the one place a new action is added.

use std::sync::OnceLock;

use super::Action;
use super::{backup, cloudformation, core, ec2, sns, ssm};
use crate::workflow::{ActionSpec, Catalog};

/// Every action, in documentation order.
static ALL: &[&dyn Action] = &[
    &backup::StartBackupJob,
    &backup::WaitBackupJob,
    &backup::StartCopyJob,
    &backup::WaitCopyJob,
    &ec2::WaitImage,
    &ec2::CreateImage,
    &ec2::CopyImage,
    &ec2::VerifyInstance,
    &ec2::FindInstances,
    &backup::PlanResources,
    &ssm::PutParameter,
    &ssm::GetParameter,
    &cloudformation::DeployStack,
    &cloudformation::DeleteStack,
    &sns::Publish,
    &core::Echo,
    &core::Fail,
    &backup::LatestRecoveryPoint,
    &backup::WaitDrCopy,
    &core::Approve,
    &ssm::ImageFreshness,
    &ec2::PruneImages,
    &ec2::ShareImage,
    &ec2::UnshareImage,
];

pub fn all() -> &'static [&'static dyn Action] {
    ALL
}

/// The declarations, for validating workflows.
pub fn catalog() -> Catalog {
    static SPECS: OnceLock<Vec<&'static ActionSpec>> = OnceLock::new();
    Catalog(SPECS.get_or_init(|| ALL.iter().map(|a| a.spec()).collect()).as_slice())
}

/// The action a validated step's declaration belongs to.
pub fn of(spec: &ActionSpec) -> &'static dyn Action {
    *ALL.iter()
        .find(|a| a.spec().name == spec.name)
        .expect("a validated workflow names only actions of the catalog")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_call_is_a_known_operation() {
        for (i, a) in ALL.iter().enumerate() {
            let spec = a.spec();
            assert!(
                !ALL[i + 1..].iter().any(|b| b.spec().name == spec.name),
                "{} twice",
                spec.name
            );
            for call in spec.calls.iter().chain(spec.gate_calls) {
                assert!(
                    crate::cloud::operations::find(call).is_some(),
                    "{}: `{call}` is not in cloud::operations",
                    spec.name
                );
            }
        }
        assert!(catalog().find("backup.start_backup_job").is_some());
        assert!(of(catalog().find("ssm.put_parameter").unwrap()).mutates());
        assert!(!of(catalog().find("ec2.wait_image").unwrap()).mutates());
    }
}
