//! Steps in another account: a region reached through a role (`regions: NAME: {region, role_arn}`) has its calls
//! made by Task states whose `Credentials` name the role. AWS documents it ("Accessing resources in other AWS
//! accounts in Step Functions"): Step Functions assumes the target role with the state machine's execution role for
//! the one task, so the execution role needs `sts:AssumeRole` on the role and the role's trust policy must allow the
//! execution role (the CloudFormation export grants the one and states the other); the role's own policies decide
//! what the call may do (`drflow policy`'s policy for the role). A Task's `Credentials` (API `TaskCredentials`) holds
//! a `RoleArn` and nothing else.
//!
//! Refused, each located at the step:
//! - a role with `external_id`: the Credentials field has no external id, so a trust policy requiring the
//!   workflow's would refuse every call (AWS's cross-account examples condition the trust on `sts:ExternalId` being
//!   the state machine's ARN, which Step Functions sets itself, not a value the workflow chooses);
//! - a region reached through a role that is not the state machine's own region. AWS: cross-region SDK integration
//!   and cross-region resource access are not available, so such a call would have to go through the cross-region
//!   function, which would then assume the role itself. Refused instead of that, by choice: the role would have to
//!   trust the function's role as well as the execution role (a second principal that can act in the DR account),
//!   and the function would hold the role's credentials for calls the state machine makes; while the state machine
//!   that runs the DR account's steps belongs in the DR region anyway (the default, `dr`): it keeps working when the
//!   primary region does not, and its primary-region calls, in the caller's own account, go through the function
//!   with no role at all.

use crate::workflow::RegionRole;

/// The role a step's calls in region `name` (code `code`) assume, or why the export cannot make them.
pub(crate) fn route(name: &str, code: &str, role: &RegionRole, home: &str) -> Result<String, String> {
    if role.external_id.is_some() {
        return Err(format!(
            "its region `{name}` is reached through role {} with an `external_id`: a Step Functions Task's \
             Credentials give a role ARN only (no external id), so a trust policy that requires this one would \
             refuse every call; drop `external_id` (trust the state machine's execution role instead) or run it with \
             `drflow run`",
            role.role_arn
        ));
    }
    if code != home {
        return Err(format!(
            "its region `{name}` ({code}) is reached through role {} (account {}), and the state machine runs in \
             {home}: Step Functions assumes a role for a Task in its own region only (no cross-region access), and \
             the cross-region function is not given the role; run the state machine in that region \
             (--state-machine-region {name})",
            role.role_arn, role.account
        ));
    }
    Ok(role.role_arn.clone())
}
