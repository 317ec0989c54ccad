//! The exporter's table tests: every action has a Step Functions form or a documented refusal, and every control
//! construct of the language has a mapping or a located refusal.

use serde_json::{Value, json};

use super::{ExportError, Options, asl};
use crate::workflow::{Source, Workflow, parse};

fn wf(yaml: &str) -> Workflow {
    parse(Source::new("test.yaml", yaml), crate::actions::catalog()).unwrap_or_else(|p| panic!("{p:?}"))
}

fn export(yaml: &str) -> Result<Value, ExportError> {
    asl(&wf(yaml), &[], &[], &Options::default()).map(|e| e.definition)
}

/// Every state of the definition, nested ones included, by name.
fn states(def: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    fn walk(states: &Value, out: &mut Vec<(String, Value)>) {
        for (k, v) in states.as_object().into_iter().flatten() {
            out.push((k.clone(), v.clone()));
            for b in v["Branches"].as_array().into_iter().flatten() {
                walk(&b["States"], out);
            }
            walk(&v["ItemProcessor"]["States"], out);
        }
    }
    walk(&def["States"], &mut out);
    out
}

/// The state of that name, or the first whose name starts with it followed by ` #` (numbered states).
fn state(def: &Value, name: &str) -> Value {
    let numbered = format!("{} #", name.split(" #").next().unwrap_or(name));
    let all = states(def);
    all.iter()
        .find(|(k, _)| k == name)
        .or_else(|| all.iter().find(|(k, _)| k.starts_with(&numbered)))
        .cloned()
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no state `{name}` in {def:#}"))
}

const HEAD: &str = "version: 1\nname: t\nregions: {primary: us-east-1, dr: us-west-2}\ninputs:\n  flag: {type: bool, default: false}\n  ids: {type: list, default: []}\n";

#[test]
fn every_action_has_a_form_or_a_documented_refusal() {
    let mut mapped = Vec::new();
    for a in crate::actions::all() {
        match a.sfn() {
            Ok(form) => {
                // Every output a form gives is one the action declares.
                for (name, _) in &form.outputs {
                    assert!(
                        a.spec().has_output(name),
                        "{}: form output `{name}` is not declared",
                        a.spec().name
                    );
                }
                mapped.push(a.spec().name);
            }
            Err(why) => assert!(
                why != "it has no Step Functions form yet" && why.len() > 30,
                "{}: refuses without saying why: {why}",
                a.spec().name
            ),
        }
    }
    for name in [
        "backup.plan_resources",
        "backup.start_backup_job",
        "backup.wait_backup_job",
        "backup.start_copy_job",
        "backup.wait_copy_job",
        "ec2.wait_image",
        "ec2.create_image",
        "ec2.copy_image",
        "ec2.find_instances",
        "ec2.prune_images",
        "ssm.put_parameter",
        "ssm.get_parameter",
        "cloudformation.deploy_stack",
        "cloudformation.delete_stack",
        "drflow.echo",
        "drflow.fail",
    ] {
        assert!(mapped.contains(&name), "{name} lost its form");
    }
}

#[test]
fn a_call_in_the_state_machines_region_is_an_sdk_task_with_a_token_and_its_retrier() {
    let def = export(&format!(
        "{HEAD}steps:\n  - id: copy\n    action: ec2.copy_image\n    region: dr\n    timeout: 5m\n    retry: {{max_attempts: 4, interval: 3s}}\n    with: {{source_region: us-east-1, source_image_id: ami-1, name: n, tags: {{a: '${{{{ run.id }}}}'}}}}\n"
    ))
    .unwrap();
    let task = state(&def, "copy: CopyImage #2");
    assert_eq!(task["Resource"], "arn:aws:states:::aws-sdk:ec2:copyImage");
    assert_eq!(
        task["Parameters"]["ClientToken.$"],
        "States.Hash(States.Format('{}/{}', $.run.id, 'copy'), 'SHA-1')"
    );
    assert_eq!(task["TimeoutSeconds"], 300);
    assert_eq!(task["Retry"][0]["MaxAttempts"], 4);
    assert_eq!(task["Retry"][0]["IntervalSeconds"], 3);
    assert!(
        task["Retry"][0]["ErrorEquals"]
            .as_array()
            .unwrap()
            .contains(&json!("Ec2.Ec2Exception"))
    );
    assert_eq!(
        task["Parameters"]["TagSpecifications"][0]["Tags"][0],
        json!({"Key": "a", "Value.$": "States.Format('{}', $.run.id)"})
    );
}

#[test]
fn a_call_in_another_region_goes_through_the_function_or_is_refused_single_region() {
    let yaml = format!(
        "{HEAD}steps:\n  - id: get\n    action: ssm.get_parameter\n    region: primary\n    with: {{name: /x}}\n"
    );
    let def = export(&yaml).unwrap();
    let task = state(&def, "get: GetParameter #2");
    assert_eq!(task["Resource"], "arn:aws:states:::lambda:invoke");
    assert_eq!(task["Parameters"]["Payload"]["region"], "us-east-1");
    assert_eq!(task["Parameters"]["Payload"]["action"], "GetParameter");
    assert_eq!(task["Catch"][0]["ErrorEquals"], json!(["ParameterNotFound"]));
    let opts = Options {
        single_region: true,
        ..Options::default()
    };
    let Err(ExportError::Refused(r)) = asl(&wf(&yaml), &[], &[], &opts) else {
        panic!("not refused")
    };
    assert_eq!(r[0].step, "get");
    assert_eq!(r[0].location, "test.yaml:8:5");
    assert!(r[0].reason.contains("--single-region"), "{}", r[0].reason);
}

#[test]
fn control_constructs_map_to_choice_parallel_map_catch_and_finally() {
    let yaml = format!(
        "{HEAD}steps:
  - id: a
    when: ${{{{ inputs.flag }}}}
    action: drflow.echo
    with: {{value: 1}}
  - id: p
    parallel:
      - id: b
        action: drflow.echo
        with: {{value: 2}}
      - id: c
        action: drflow.fail
        continue_on_error: true
        with: {{message: no}}
  - id: each
    for_each: ${{{{ inputs.ids }}}}
    max_concurrency: 3
    tolerated_failure_percentage: 50
    steps:
      - id: d
        action: drflow.echo
        with: {{value: '${{{{ item }}}}'}}
finally:
  - id: e
    when: ${{{{ run.status == 'failed' }}}}
    action: drflow.echo
    with: {{value: 3}}
"
    );
    let def = export(&yaml).unwrap();
    assert_eq!(
        state(&def, "a: when")["Choices"][0],
        // With `finally`, a top-level step is caught where it fails (`a: attempt`), its predecessors' outputs kept.
        json!({"Variable": "$.inputs.flag", "BooleanEquals": true, "Next": "a: attempt"})
    );
    let p = state(&def, "p");
    assert_eq!(p["Type"], "Parallel");
    assert_eq!(p["Branches"].as_array().unwrap().len(), 2);
    assert_eq!(
        state(&def, "c: attempt")["Catch"][0]["ErrorEquals"],
        json!(["States.ALL"])
    );
    let m = state(&def, "each");
    assert_eq!(m["Type"], "Map");
    assert_eq!(m["ItemsPath"], "$.inputs.ids");
    assert_eq!(m["MaxConcurrency"], 3);
    assert_eq!(m["ToleratedFailurePercentage"], json!(50.0));
    assert_eq!(m["ItemProcessor"]["ProcessorConfig"]["Mode"], "DISTRIBUTED");
    assert_eq!(m["ItemSelector"]["item.$"], "$$.Map.Item.Value");
    let main = state(&def, "Main");
    assert_eq!(main["Catch"][0]["Next"], "Main failed");
    assert_eq!(state(&def, "Main done")["Next"], "e: when");
    assert_eq!(state(&def, "Main failed")["Next"], "e: when");
    assert_eq!(state(&def, "Main failed")["Parameters"]["run"]["status"], "failed");
    assert_eq!(
        state(&def, "e: when")["Choices"][0]["StringEquals"],
        "failed",
        "run.status is kept for finally"
    );
}

#[test]
fn a_wait_polls_in_a_counted_loop_and_fails_fast() {
    let yaml = format!(
        "{HEAD}steps:\n  - id: w\n    action: ec2.wait_image\n    region: dr\n    timeout: 10m\n    poll: {{interval: 60s, backoff_rate: 1.0}}\n    with: {{image_id: ami-1}}\n"
    );
    let def = export(&yaml).unwrap();
    let start = state(&def, "w: poll start #2");
    assert_eq!(
        start["Result"]["waits"],
        json!([60, 60, 60, 60, 60, 60, 60, 60, 60, 60])
    );
    let done = state(&def, "w: done? #5");
    assert_eq!(done["Choices"][1]["NumericGreaterThanEquals"], 10);
    assert_eq!(state(&def, "w: timed out #6")["Error"], "States.Timeout");
    assert_eq!(state(&def, "w: wait #3")["SecondsPath"], "$.w.w.loop.seconds");
    assert!(states(&def).iter().any(|(_, s)| s["Error"] == "ImageFailed"));
    assert!(state(&def, "w: DescribeImages #7").get("TimeoutSeconds").is_none());
}

#[test]
fn what_is_not_mapped_is_refused_with_its_location() {
    let cases = [
        (
            "  - id: a\n    action: drflow.echo\n    with: {value: 2h}\n  - id: x\n    action: ssm.image_freshness\n    region: dr\n    with: {name: /p, max_age: '${{ steps.a.outputs.value }}'}\n",
            "must be a literal or one workflow input",
        ),
        (
            "  - id: f\n    action: ssm.image_freshness\n    region: dr\n    with: {name: /p, max_age: 2h}\n  - id: x\n    action: drflow.echo\n    with: {value: '${{ steps.f.outputs.creation_date }}'}\n",
            "gives no `creation_date`",
        ),
        (
            "  - id: x\n    for_each: [a, b]\n    steps:\n      - id: y\n        action: drflow.echo\n",
            "literal `for_each` list",
        ),
        (
            "  - id: a\n    action: drflow.echo\n  - id: x\n    action: drflow.echo\n    with: {value: '${{ steps.a.status }}'}\n",
            "status and error are not kept",
        ),
        (
            "  - id: x\n    for_each: ${{ inputs.ids }}\n    steps:\n      - id: y\n        for_each: ${{ inputs.ids }}\n        steps:\n          - id: z\n            action: drflow.echo\n",
            "inside a `for_each`",
        ),
        (
            "  - id: a\n    action: cloudformation.deploy_stack\n    region: dr\n    with: {stack_name: s, template: tests/fixtures/export/instance-template.yaml, parameters: {Image: ami-1}}\n  - id: x\n    action: drflow.echo\n    with: {value: '${{ steps.a.outputs.outputs }}'}\n",
            "as a whole is not mapped",
        ),
    ];
    for (steps, reason) in cases {
        let yaml = format!("{HEAD}steps:\n{steps}");
        match export(&yaml) {
            Err(ExportError::Refused(r)) => {
                assert!(r.iter().any(|r| r.reason.contains(reason)), "{reason}: {r:?}");
                assert!(r.iter().all(|r| r.location.starts_with("test.yaml:")), "{r:?}");
            }
            other => panic!("{reason}: not refused: {other:?}"),
        }
    }
}

#[test]
fn waits_that_could_overflow_the_history_are_refused() {
    // 15 s polls for 3 days: some 17,000 polls, far past 25,000 events.
    let long = format!(
        "{HEAD}steps:\n  - id: w\n    action: ec2.wait_image\n    region: dr\n    timeout: 3d\n    poll: {{interval: 15s, backoff_rate: 1.0}}\n    with: {{image_id: ami-1}}\n"
    );
    let Err(ExportError::Refused(r)) = export(&long) else {
        panic!("not refused")
    };
    assert_eq!(r[0].step, "w");
    assert!(
        r[0].reason.contains("25,000") && r[0].reason.contains("max_interval"),
        "{}",
        r[0].reason
    );
    // The same wait polled every 10 minutes fits.
    assert!(export(&long.replace("interval: 15s", "interval: 10m, max_interval: 10m")).is_ok());
}

#[test]
fn verify_checks_the_image_and_status_checks_and_a_notification_never_fails_the_run() {
    let yaml = format!(
        "{HEAD}steps:\n  - id: v\n    action: ec2.verify_instance\n    region: dr\n    with: {{instance_id: i-1, image_id: ami-1}}\nfinally:\n  - id: n\n    action: sns.publish\n    region: dr\n    with: {{topic_arn: 'arn:aws:sns:us-east-1:1:t'}}\n"
    );
    let def = export(&yaml).unwrap();
    let text = def.to_string();
    // The expected AMI (a literal) is compared as text; impaired checks and another AMI fail at once.
    assert!(
        text.contains(r#""StringEquals":"ami-1","Variable":"$.w.v.inst.v.ImageId""#),
        "{text}"
    );
    assert!(text.contains("arn:aws:states:::aws-sdk:ec2:describeInstanceStatus"));
    assert!(state(&def, "v: fail StatusCheckImpaired #1")["Type"] == "Fail");
    // The topic's region is checked against the step's; the publish is caught (advisory) and the run goes on.
    assert!(state(&def, "n: check #1")["Choices"][0]["Not"]["StringEquals"] == "us-west-2");
    let attempt = state(&def, "n: attempt");
    assert_eq!(attempt["Catch"][0]["ErrorEquals"], json!(["States.ALL"]));
    assert_eq!(attempt["Catch"][0]["Next"], "Run ended");
    // Without status checks, no DescribeInstanceStatus.
    let off = export(&yaml.replace("image_id: ami-1}", "image_id: ami-1, require_status_checks: false}")).unwrap();
    assert!(!off.to_string().contains("describeInstanceStatus"));
}

#[test]
fn an_approval_is_a_callback_whose_rejection_is_caught_never_retried() {
    let yaml = format!(
        "{HEAD}steps:\n  - id: ok\n    action: drflow.approve\n    region: dr\n    timeout: 2h\n    retry: {{errors: [all], max_attempts: 5}}\n    continue_on_error: true\n    with: {{message: go?}}\n"
    );
    let def = export(&yaml).unwrap();
    let (_, task) = states(&def)
        .into_iter()
        .find(|(_, s)| s["Resource"] == "arn:aws:states:::sns:publish.waitForTaskToken")
        .expect("a callback task");
    assert_eq!(task["TimeoutSeconds"], 7200);
    assert!(task.get("HeartbeatSeconds").is_none());
    assert_eq!(task["Parameters"]["Message"]["task_token.$"], "$$.Task.Token");
    assert_eq!(task["Parameters"]["Message"]["question"], "go?");
    // `errors: all` retries only SNS's transient errors on the task, never a rejection or the timeout.
    let retried = task["Retry"][0]["ErrorEquals"].to_string();
    assert!(
        retried.contains("Sns.ThrottledException") && retried.contains("SNS.ThrottledException"),
        "{retried}"
    );
    assert!(!retried.contains("States.ALL") && !retried.contains("Rejected") && !retried.contains("Timeout"));
    // `continue_on_error` catches it; the wrapper retries nothing.
    let attempt = state(&def, "ok: attempt");
    assert_eq!(attempt["Catch"][0]["ErrorEquals"], json!(["States.ALL"]));
    assert!(attempt.get("Retry").is_none(), "{attempt}");
    // The topic: drflow-approvals in the state machine's partition, region and account, or the one given.
    assert!(
        task["Parameters"]["TopicArn.$"]
            .as_str()
            .unwrap()
            .contains(":drflow-approvals'")
    );
    let opts = Options {
        approval_topic: Some("arn:aws:sns:us-west-2:1:mine".into()),
        ..Options::default()
    };
    let def = asl(&wf(&yaml), &[], &[], &opts).unwrap().definition;
    assert!(def.to_string().contains(r#""TopicArn":"arn:aws:sns:us-west-2:1:mine""#));
}
