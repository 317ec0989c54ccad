//! The run's accounts: the caller's own credentials, and for each region with a `role_arn` the role's, assumed before
//! the first step (a role the caller may not assume stops the run before anything changes). The role session is
//! named after the run (`drflow-RUN_ID`), so CloudTrail ties every call to its run; resuming a run assumes the roles
//! again under the same name.

use serde_json::{Map, Value};

use super::{SessionError, retried};
use crate::cloud::{AssumeRole, Cloud};
use crate::workflow::Workflow;

/// `base` with a client for each region that assumes a role, and the caller's account in `base.account` when the
/// run acts in more than one account (errors and checks name it). A role that cannot be assumed stops it.
pub async fn attach(
    wf: &Workflow,
    regions: &Map<String, Value>,
    run_id: &str,
    base: Cloud,
) -> Result<Cloud, SessionError> {
    let (cloud, mut failed) = attach_each(wf, regions, run_id, base).await?;
    match failed.drain(..).next() {
        Some((_, why)) => Err(SessionError::Environment(why)),
        None => Ok(cloud),
    }
}

/// Like [`attach`], but a role that cannot be assumed is left out and reported (region name, why): what
/// `plan --check` shows.
pub async fn attach_each(
    wf: &Workflow,
    regions: &Map<String, Value>,
    run_id: &str,
    mut base: Cloud,
) -> Result<(Cloud, Vec<(String, String)>), SessionError> {
    if wf.roles.is_empty() {
        return Ok((base, Vec::new()));
    }
    let mut roles = Vec::new();
    let mut failed = Vec::new();
    for (name, role) in &wf.roles {
        let code = regions
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let req = AssumeRole {
            role_arn: role.role_arn.clone(),
            account: role.account.clone(),
            external_id: role.external_id.clone(),
            session_name: role.session(run_id),
            duration_secs: role.duration.as_secs() as u32,
        };
        match retried(|| base.sts.assume_role(&code, &req)).await {
            Ok(cloud) => roles.push((name.clone(), cloud)),
            Err(e) => failed.push((
                name.clone(),
                format!(
                    "region `{name}` ({code}) cannot act as {}: {e}; the role's trust policy must allow this caller{} \
                     (`drflow policy` prints the trust policy it needs)",
                    role.role_arn,
                    if role.external_id.is_some() {
                        " with this external id"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }
    let first = regions
        .values()
        .find_map(Value::as_str)
        .unwrap_or("us-east-1")
        .to_string();
    let me = retried(|| base.sts.get_caller_identity(&first))
        .await
        .map_err(|e| SessionError::Environment(format!("cannot tell which AWS account this is: {e}")))?;
    base.account = Some(me.account);
    Ok((base.with_roles(roles), failed))
}
