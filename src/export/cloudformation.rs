//! `drflow export --format cloudformation`: a template deploying the exported state machine in the region the
//! stack is created in (the state machine's own region): the state machine (its definition with
//! DefinitionSubstitutions for the other regions and the workflow's string inputs), its execution role from the
//! same policy as `drflow policy` (plus logging, starting its own Map children, invoking the cross-region function),
//! a log group, the cross-region function and its role when a step needs it, and an optional EventBridge Scheduler
//! schedule that starts it. Steps in another account: see `accounts_template`.

use serde_json::{Map, Value, json};

use super::{CROSS_REGION_HANDLER, ExportError, Options, asl};
use crate::plan::{Body, Plan, PlannedStep};
use crate::workflow::{InputType, Workflow};

/// The account the policy is computed for, replaced by `${AWS::AccountId}` in the template.
const ACCOUNT: &str = "000000000000";

/// A name for CloudFormation: `dr` → `Dr`, `backup_vault` → `BackupVault` (as IAM statement ids are made).
use crate::plan::policy::pascal as camel;

/// Strings holding a placeholder become `Fn::Sub`s (their own `${` escaped first).
fn sub(v: Value, placeholders: &[(String, String)]) -> Value {
    match v {
        Value::String(s) => {
            let mut out = s.replace("${", "${!");
            let mut changed = false;
            for (from, to) in placeholders {
                if out.contains(from.as_str()) {
                    out = out.replace(from.as_str(), to);
                    changed = true;
                }
            }
            if changed {
                json!({"Fn::Sub": out})
            } else {
                Value::String(s)
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|v| sub(v, placeholders)).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, sub(v, placeholders))).collect()),
        other => other,
    }
}

/// A `drflow schedule` entry for the template's schedule: its EventBridge expression, time zone and input.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    pub timezone: String,
    pub input: Value,
}

pub fn template(
    wf: &Workflow,
    file: &str,
    inputs: &[(String, String)],
    regions: &[(String, String)],
    opts: &Options,
    schedule: Option<&Schedule>,
) -> Result<Value, ExportError> {
    // Approvals are asked on the template's own topic unless the export names one.
    let own_topic = opts.approval_topic.is_none();
    let opts = Options {
        function: Some("${CrossRegionFunctionArn}".into()),
        approval_topic: Some(
            opts.approval_topic
                .clone()
                .unwrap_or_else(|| "${ApprovalTopicArn}".into()),
        ),
        ..opts.clone()
    };
    let export = asl(wf, inputs, regions, &opts)?;
    let mut definition = export.definition.clone();
    let mut parameters = Map::new();
    let mut substitutions = Map::new();
    parameters.insert(
        "StateMachineName".into(),
        json!({"Type": "String", "Default": format!("drflow-{}", wf.name), "AllowedPattern": "[A-Za-z0-9_-]{1,80}",
               "Description": "Name of the state machine."}),
    );
    parameters.insert(
        "ScheduleTimezone".into(),
        json!({"Type": "String", "Default": schedule.map_or("UTC", |s| s.timezone.as_str()),
               "Description": "Time zone of ScheduleExpression (IANA name)."}),
    );
    parameters.insert(
        "ScheduleExpression".into(),
        json!({"Type": "String", "Default": schedule.map_or("", |s| s.expression.as_str()),
               "Description": "EventBridge Scheduler expression that starts an execution, e.g. cron(20 * * * ? *) (a `drflow schedule` entry's cron \"20 * * * *\"); empty: no schedule."}),
    );
    parameters.insert(
        "ScheduleInput".into(),
        json!({"Type": "String", "Default": schedule.map_or_else(|| "{}".to_string(), |s| s.input.to_string()),
               "Description": "The scheduled executions' input (JSON): workflow inputs."}),
    );
    // The workflow's string inputs (vaults, names, prefixes) as parameters of the stack.
    let bound = wf.bind_partial(inputs, regions)?;
    for i in wf.inputs.iter().filter(|i| i.ty == InputType::String) {
        let Some(Value::String(v)) = bound.inputs.get(&i.name) else {
            continue;
        };
        let key = format!("Input{}", camel(&i.name));
        let about = i.description.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
        let p = json!({"Type": "String", "Default": v, "Description": format!(
            "Workflow input `{}`{about} (the roles' policies name the value given at export: export again to change \
             a vault or a role)", i.name)});
        parameters.insert(key.clone(), p);
        definition["States"]["Start"]["Parameters"]["defaults"][&i.name] = json!(format!("${{{key}}}"));
        substitutions.insert(key.clone(), json!({"Ref": key}));
    }
    // Region codes: the state machine's own is the stack's region; the others are parameters.
    let mut text = serde_json::to_string_pretty(&definition).expect("JSON");
    let mut placeholders = vec![(format!(":{ACCOUNT}:"), ":${AWS::AccountId}:".to_string())];
    for (name, code) in &export.regions {
        let key = format!("Region{}", camel(name));
        let value = if *code == export.home.1 {
            json!({"Ref": "AWS::Region"})
        } else {
            parameters.insert(
                key.clone(),
                json!({"Type": "String", "Default": code, "AllowedPattern": "[a-z]{2}(-[a-z]+)+-[0-9]",
                       "Description": format!("Region `{name}` of the workflow.")}),
            );
            json!({"Ref": key})
        };
        for q in ['"', '\''] {
            text = text.replace(&format!("{q}{code}{q}"), &format!("{q}${{{key}}}{q}"));
        }
        substitutions.insert(key.clone(), value);
        let to = if *code == export.home.1 {
            "${AWS::Region}".to_string()
        } else {
            format!("${{{key}}}")
        };
        placeholders.push((format!(":{code}:"), format!(":{to}:")));
    }
    if export.approvals && own_topic {
        substitutions.insert("ApprovalTopicArn".into(), json!({"Ref": "ApprovalTopic"}));
    }
    if export.cross_region {
        substitutions.insert(
            "CrossRegionFunctionArn".into(),
            json!({"Fn::GetAtt": ["CrossRegionFunction", "Arn"]}),
        );
    }

    // The execution role: `drflow policy`'s statements (the account a placeholder), then what Step Functions needs.
    // Least privilege: the state machine's role for the steps it calls itself, the function's for the others.
    let plan = crate::plan::compute(wf, file, &bound.inputs, &bound.regions, inputs, Some(ACCOUNT));
    let home = export.home.1.clone();
    let document = |keep: &dyn Fn(&str, &str) -> bool| -> Result<Option<Value>, ExportError> {
        let policy = crate::plan::policy::build(&only(&plan, keep), Some(ACCOUNT)).map_err(ExportError::Usage)?;
        Ok((!policy.document.statement.is_empty())
            .then(|| sub(serde_json::to_value(&policy.document).expect("JSON"), &placeholders)))
    };
    // A region reached through a role: its calls are the role's (in its account), not the execution role's.
    let in_role = |name: &str| wf.roles.iter().any(|(n, _)| n == name);
    let own_calls = document(&|name, code| code == home && !in_role(name))?;
    let function_calls = document(&|name, code| code != home && !in_role(name))?;
    let machine_arn = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${StateMachineName}";
    let execution_arn = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${StateMachineName}/*";
    let mut own = vec![
        json!({"Sid": "Logging", "Effect": "Allow", "Resource": "*", "Action": [
            "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"]}),
        json!({"Sid": "MapChildren", "Effect": "Allow", "Action": ["states:StartExecution"],
               "Resource": {"Fn::Sub": machine_arn}}),
        json!({"Sid": "MapChildrenRuns", "Effect": "Allow", "Action": ["states:DescribeExecution", "states:StopExecution"],
               "Resource": {"Fn::Sub": execution_arn}}),
    ];
    let accounts = super::accounts_template::roles(wf, &plan, &export.roles, ACCOUNT)?;
    if let Some(statement) = &accounts.statement {
        own.push(statement.clone());
    }
    if export.cross_region {
        own.push(
            json!({"Sid": "CrossRegionCalls", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
                        "Resource": [{"Fn::GetAtt": ["CrossRegionFunction", "Arn"]}]}),
        );
    }
    if export.approvals {
        let topic = match opts.approval_topic.as_deref() {
            Some(t) if t.starts_with("arn:") => json!(t),
            Some(t) if !own_topic => {
                json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:{t}")})
            }
            _ => json!({"Ref": "ApprovalTopic"}),
        };
        own.push(json!({"Sid": "AskApprovals", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": [topic]}));
    }
    let mut resources = Map::new();
    let mut outputs = Map::new();
    let mut conditions = Map::new();
    if export.approvals && own_topic {
        parameters.insert(
            "ApprovalEmail".into(),
            json!({"Type": "String", "Default": "",
                   "Description": "An e-mail address subscribed to the approvals topic (confirm the subscription AWS mails); empty: subscribe yourself (e-mail, chat, a queue)."}),
        );
        conditions.insert(
            "HasApprovalEmail".into(),
            json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "ApprovalEmail"}, ""]}]}),
        );
        resources.insert(
            "ApprovalTopic".into(),
            json!({"Type": "AWS::SNS::Topic", "Properties": {
                "DisplayName": "drflow approvals"}}),
        );
        resources.insert(
            "ApprovalEmailSubscription".into(),
            json!({"Type": "AWS::SNS::Subscription", "Condition": "HasApprovalEmail", "Properties": {
                "TopicArn": {"Ref": "ApprovalTopic"}, "Protocol": "email", "Endpoint": {"Ref": "ApprovalEmail"}}}),
        );
        outputs.insert(
            "ApprovalTopicArn".into(),
            json!({"Description": "Approvals are asked here (each message says how to answer): subscribe the people who decide.",
                   "Value": {"Ref": "ApprovalTopic"}}),
        );
    }
    resources.insert(
        "LogGroup".into(),
        json!({"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": {"Fn::Sub": "/aws/vendedlogs/states/${StateMachineName}"}, "RetentionInDays": 90}}),
    );
    resources.insert(
        "StateMachineRole".into(),
        json!({"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "Policies": own_calls.iter()
            .map(|d| json!({"PolicyName": "drflow-workflow", "PolicyDocument": d}))
            .chain([json!({"PolicyName": "step-functions", "PolicyDocument": {"Version": "2012-10-17", "Statement": own}})])
            .collect::<Vec<_>>(),
        }}),
    );
    resources.insert(
        "StateMachine".into(),
        // A deploy step's template body (inside the definition) holds `${Param}` references of its own:
        // DefinitionSubstitutions leaves placeholders it has no key for as they are, which cfn-lint's E1029
        // ("embedded parameter outside of an Fn::Sub") does not know.
        json!({"Type": "AWS::StepFunctions::StateMachine",
               "Metadata": {"cfn-lint": {"config": {"ignore_checks": ["E1029"]}}},
               "Properties": {
            "StateMachineName": {"Ref": "StateMachineName"},
            "StateMachineType": "STANDARD",
            "DefinitionString": text,
            "DefinitionSubstitutions": substitutions,
            "RoleArn": {"Fn::GetAtt": ["StateMachineRole", "Arn"]},
            "LoggingConfiguration": {"Level": "ERROR", "IncludeExecutionData": false, "Destinations": [
                {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["LogGroup", "Arn"]}}}]},
        }}),
    );
    if export.cross_region {
        resources.insert(
            "CrossRegionFunctionRole".into(),
            json!({"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
                "ManagedPolicyArns": [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}],
                "Policies": function_calls.iter()
                    .map(|d| json!({"PolicyName": "drflow-workflow-other-regions", "PolicyDocument": d}))
                    .collect::<Vec<_>>()}}),
        );
        resources.insert(
            "CrossRegionFunction".into(),
            json!({"Type": "AWS::Lambda::Function", "Properties": {
                "Description": "drflow: calls an AWS API in another region for the state machine",
                "Runtime": "python3.12", "Handler": "index.handler", "Timeout": 60, "MemorySize": 128,
                "Role": {"Fn::GetAtt": ["CrossRegionFunctionRole", "Arn"]},
                "Code": {"ZipFile": CROSS_REGION_HANDLER}}}),
        );
    }
    resources.insert(
        "SchedulerRole".into(),
        json!({"Type": "AWS::IAM::Role", "Condition": "HasSchedule", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "start", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "states:StartExecution", "Resource": {"Ref": "StateMachine"}}]}}]}}),
    );
    resources.insert(
        "Schedule".into(),
        json!({"Type": "AWS::Scheduler::Schedule", "Condition": "HasSchedule", "Properties": {
            "ScheduleExpression": {"Ref": "ScheduleExpression"},
            "ScheduleExpressionTimezone": {"Ref": "ScheduleTimezone"},
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {"Arn": {"Ref": "StateMachine"}, "RoleArn": {"Fn::GetAtt": ["SchedulerRole", "Arn"]},
                       "Input": {"Ref": "ScheduleInput"}}}}),
    );
    conditions.insert(
        "HasSchedule".into(),
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "ScheduleExpression"}, ""]}]}),
    );
    outputs.insert("StateMachineArn".into(), json!({"Value": {"Ref": "StateMachine"}}));
    outputs.insert("LogGroup".into(), json!({"Value": {"Ref": "LogGroup"}}));
    let mut description = format!(
        "drflow workflow {} as an AWS Step Functions state machine (drflow export)",
        wf.name
    );
    if !export.required.is_empty() {
        description.push_str(&format!(
            "; each execution's input gives {}",
            export.required.join(", ")
        ));
    }
    let mut template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Parameters": parameters,
        "Conditions": conditions,
        "Resources": resources,
    });
    if let Some(metadata) = accounts.metadata {
        outputs.insert(
            "StateMachineRoleArn".into(),
            json!({"Description": "The execution role: each role of another account must trust it", "Value": {"Fn::GetAtt": ["StateMachineRole", "Arn"]}}),
        );
        for (key, value) in accounts.outputs {
            outputs.insert(key, value);
        }
        template["Metadata"] = json!({"drflow": metadata});
    }
    template["Outputs"] = Value::Object(outputs);
    Ok(template)
}

/// The plan with only the action steps whose region (name, code) `keep`s (the others marked skipped, so the policy leaves them out).
fn only(plan: &Plan, keep: &dyn Fn(&str, &str) -> bool) -> Plan {
    fn mark(s: &mut PlannedStep, keep: &dyn Fn(&str, &str) -> bool) {
        match &mut s.body {
            Body::Action(a) => {
                if s.skipped.is_none() && !a.region.as_ref().is_some_and(|r| keep(&r.name, &r.code)) {
                    s.skipped = Some("called by the other role".into());
                }
            }
            Body::Parallel { branches: c } | Body::Sequence { steps: c } => c.iter_mut().for_each(|c| mark(c, keep)),
        }
    }
    let mut p = plan.clone();
    for s in p.steps.iter_mut().chain(p.finally.iter_mut()) {
        mark(s, keep);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_placeholders() {
        assert_eq!(camel("backup_vault"), "BackupVault");
        assert_eq!(camel("dr"), "Dr");
        let v = sub(
            json!({"a": "arn:aws:ssm:us-east-1:000000000000:parameter/x", "b": "keep ${aws:username}", "c": 1}),
            &[(":000000000000:".into(), ":${AWS::AccountId}:".into())],
        );
        assert_eq!(
            v["a"],
            json!({"Fn::Sub": "arn:aws:ssm:us-east-1:${AWS::AccountId}:parameter/x"})
        );
        assert_eq!(v["b"], "keep ${aws:username}");
    }
}
