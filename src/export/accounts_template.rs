//! The CloudFormation export's part for steps in another account (`accounts`): the execution role may assume
//! exactly the roles its Task states name (`sts:AssumeRole` on those ARNs), and the template says what each role,
//! which lives in its own account and so is not made by this stack, must hold: Metadata `drflow.roles` gives its
//! permissions (`drflow policy`'s policy for that role, the same least privilege) and its trust policy; an output
//! `Role<REGION>Trust` gives that trust policy with the execution role's ARN filled in, to apply to the role once
//! the stack exists (IAM checks that a trusted principal exists).

use serde_json::{Value, json};

use super::ExportError;
use crate::plan::Plan;
use crate::plan::policy::pascal;
use crate::workflow::Workflow;

/// What the template adds for the roles.
pub(crate) struct Accounts {
    /// The execution role's statement allowing it to assume the roles.
    pub statement: Option<Value>,
    pub metadata: Option<Value>,
    pub outputs: Vec<(String, Value)>,
}

const EXECUTION_ROLE: &str = "STATE_MACHINE_ROLE_ARN";

/// The roles `used` (ARNs) of the workflow: `account` is the placeholder of the caller's account.
pub(crate) fn roles(wf: &Workflow, plan: &Plan, used: &[String], account: &str) -> Result<Accounts, ExportError> {
    if used.is_empty() {
        return Ok(Accounts {
            statement: None,
            metadata: None,
            outputs: Vec::new(),
        });
    }
    let policies = crate::plan::policy::build_accounts(plan, Some(account), &wf.roles).map_err(ExportError::Usage)?;
    let mut listed = Vec::new();
    let mut outputs = Vec::new();
    for p in &policies {
        let Some(role) = p.role_arn.as_ref().filter(|r| used.contains(r)) else {
            continue;
        };
        let trust = json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "DrflowStateMachineAssumesThisRole", "Effect": "Allow",
            "Principal": {"AWS": EXECUTION_ROLE}, "Action": "sts:AssumeRole"}]});
        listed.push(json!({
            "RoleArn": role,
            "Account": p.account,
            "Regions": p.regions,
            "Policy": serde_json::to_value(&p.policy.document).expect("JSON"),
            "Trust": trust,
        }));
        let text = serde_json::to_string(&trust)
            .expect("JSON")
            .replace(EXECUTION_ROLE, "${StateMachineRole.Arn}");
        outputs.push((
            format!("Role{}Trust", pascal(&p.regions.join("_"))),
            json!({"Description": format!(
                "The trust policy role {role} (account {}) must have: it allows this state machine's execution role \
                 to assume it; its permissions are in the template's Metadata drflow.roles (drflow policy's)",
                p.account.as_deref().unwrap_or("?")),
                   "Value": {"Fn::Sub": text}}),
        ));
    }
    Ok(Accounts {
        statement: Some(
            json!({"Sid": "CrossAccountTasks", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": used}),
        ),
        metadata: Some(json!({"roles": listed, "about": format!(
            "Steps in another account call as these roles (the Task states' Credentials). Each role needs Policy \
             (its permissions) and Trust, with {EXECUTION_ROLE} the ARN of this stack's StateMachineRole (output \
             StateMachineRoleArn; the outputs Role*Trust give it filled in)")})),
        outputs,
    })
}
