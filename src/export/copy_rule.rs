//! `drflow export --format cloudformation --on-copy-completed`: an EventBridge rule in the template that starts an
//! execution when AWS Backup reports a copy job COMPLETED into the workflow's DR vault (`Copy Job State Change`,
//! `detail.state` COMPLETED, `detail.destinationBackupVaultArn` the DR vault: region `dr`, input `dr_vault`; and
//! `detail.sourceBackupVaultArn` the primary vault when the workflow has a `backup_vault` input), for workflows that
//! follow a Backup plan's copy rule (dr-follow-plan).
//!
//! Where: AWS Backup emits a copy job's events in the region the job runs in, the source region (where
//! ListCopyJobs lists it), and an EventBridge rule targets a state machine of its own region only, so the state
//! machine must run in the primary region (`--state-machine-region primary`).
//!
//! What: each event starts an execution with the same input (`CopyCompletedInput`, default `{}`: the exported
//! defaults), which follows the whole plan: the workflow's `for_each` is over what its discovery finds, it has no
//! per-instance entry, and its checks debounce repeated executions (an up-to-date parameter is read, not written;
//! an older AMI never replaces a newer one).

use serde_json::{Value, json};

use super::{Export, ExportError};
use crate::plan::policy::pascal as camel;
use crate::workflow::Workflow;

/// Adds the rule, its parameter and its role to a template made by `cloudformation::template`.
pub fn add(template: &mut Value, wf: &Workflow, export: &Export) -> Result<(), ExportError> {
    let usage = |m: String| Err(ExportError::Usage(format!("--on-copy-completed: {m}")));
    let has_input = |n: &str| wf.inputs.iter().any(|i| i.name == n);
    let (Some(primary), Some(dr)) = (export.regions.get("primary"), export.regions.get("dr")) else {
        return usage("the workflow needs regions named `primary` (the copy jobs' source) and `dr`".into());
    };
    if !has_input("dr_vault") {
        return usage("the workflow needs a `dr_vault` input (the vault its plan's copy rule copies to)".into());
    }
    if *primary != export.home.1 {
        return usage(format!(
            "AWS Backup emits `Copy Job State Change` in the copy job's region, the source region `primary` \
             ({primary}), and a rule starts state machines of its own region only: export with \
             --state-machine-region primary (the state machine runs in {})",
            export.home.1
        ));
    }
    let parameters = template["Parameters"].as_object().cloned().unwrap_or_default();
    let param = |name: &str| -> Result<String, ExportError> {
        let key = format!("Input{}", camel(name));
        if parameters.contains_key(&key) {
            Ok(format!("${{{key}}}"))
        } else {
            Err(ExportError::Usage(format!(
                "--on-copy-completed: input `{name}` needs a value at export (-i {name}=...): the rule names the vault"
            )))
        }
    };
    let region = |code: &str, name: &str| {
        if code == export.home.1 {
            "${AWS::Region}".to_string()
        } else {
            format!("${{Region{}}}", camel(name))
        }
    };
    let vault = |region: String, vault: String| json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:backup:{region}:${{AWS::AccountId}}:backup-vault:{vault}")});
    let mut detail = json!({
        "state": ["COMPLETED"],
        "resourceType": ["EC2"],
        "destinationBackupVaultArn": [vault(region(dr, "dr"), param("dr_vault")?)],
    });
    if has_input("backup_vault") {
        detail["sourceBackupVaultArn"] = json!([vault(region(primary, "primary"), param("backup_vault")?)]);
    }
    template["Parameters"]["CopyCompletedInput"] = json!({
        "Type": "String", "Default": "{}",
        "Description": "The input (JSON: workflow inputs) of the executions a completed copy into the DR vault starts; {} for the exported defaults."});
    let resources = &mut template["Resources"];
    resources["CopyCompletedRole"] = json!({"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": "start", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "states:StartExecution", "Resource": {"Ref": "StateMachine"}}]}}]}});
    resources["CopyCompletedRule"] = json!({"Type": "AWS::Events::Rule", "Properties": {
        "Description": format!("drflow {}: an execution when AWS Backup completes a copy into the DR vault", wf.name),
        "State": "ENABLED",
        "EventPattern": {"source": ["aws.backup"], "detail-type": ["Copy Job State Change"], "detail": detail},
        "Targets": [{"Id": "StateMachine", "Arn": {"Ref": "StateMachine"},
                     "RoleArn": {"Fn::GetAtt": ["CopyCompletedRole", "Arn"]},
                     "Input": {"Ref": "CopyCompletedInput"}}]}});
    template["Outputs"]["CopyCompletedRule"] = json!({"Value": {"Ref": "CopyCompletedRule"}});
    Ok(())
}
