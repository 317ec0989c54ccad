//! The cross-account export executed: `drflow export workflows/dr-ami-cross-account.yaml` in single-region form (both
//! regions overridden to one, so every call is an SDK task and no cross-region function is needed) runs on the
//! emulator's Step Functions. Its DR steps are Tasks with `Credentials` naming the DR role: the emulator has the
//! execution role assume it (trust enforced) and calls as it, in the DR account, held to its identity policy, which
//! is exactly what `drflow policy` prints for the role (as tests/it/cross_account.rs sets it up for `drflow run`).
//! The end state is `drflow run`'s there: the DR recovery point, its AMI and the DR parameter in the DR account, the
//! primary parameter in the caller's. A role that does not trust the execution role fails the execution with STS's
//! refusal.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::accounts::{self, CALLER, DR_ACCOUNT, ROLE, create_key, create_role, dr_vault};
use crate::common::emulator::World;
use crate::common::text;

const REGION: &str = "us-east-1";
const EXECUTION_ROLE: &str = "arn:aws:iam::123456789012:role/drflow-sfn-execution";
const WORKFLOW: &str = "dr-ami-cross-account.yaml";

fn drflow(w: &World, args: &[&str]) -> (Option<i32>, String, String) {
    let out = w.emu.drflow(&w.state(), args);
    let (stdout, stderr) = text(&out);
    (out.status.code(), stdout, stderr)
}

/// `drflow ARGS WORKFLOW` with both regions in `REGION` and the instance as input; its output as JSON.
fn single_region(w: &World, args: &[&str]) -> Value {
    let wf = w.workflow_named(WORKFLOW);
    let instance = format!("instance_id={}", w.instance);
    let mut all = args.to_vec();
    let regions = [
        wf.as_str(),
        "--region",
        "primary=us-east-1",
        "--region",
        "dr=us-east-1",
        "-i",
        instance.as_str(),
    ];
    all.extend(regions);
    let (code, out, err) = drflow(w, &all);
    assert_eq!(code, Some(0), "drflow {}: {err}", all.join(" "));
    serde_json::from_str(&out).unwrap()
}

fn iam(w: &World, key: &str, params: &[(&str, &str)]) {
    let mut all = vec![("Version", "2010-05-08")];
    all.extend_from_slice(params);
    w.emu.aws_query_as("iam", REGION, key, &all);
}

/// The shipped workflow as it is (its real poll intervals: the exported waits must fit an execution's history; the
/// emulator's time scale makes them short), but with both region names allowed on one code (different accounts).
fn allow_shared_regions(w: &World) {
    let path = w.workflow_named(WORKFLOW);
    let text = std::fs::read_to_string(crate::common::repo(&format!("workflows/{WORKFLOW}"))).unwrap();
    std::fs::write(
        &path,
        text.replacen("\nregions:\n", "\nallow_shared_regions: true\nregions:\n", 1),
    )
    .unwrap();
}

/// The DR account: the role (trusting `trusted`, holding `drflow policy`'s policy for it), a KMS key and the
/// `Default` vault that accepts copies from the caller's account; cross-account backup on.
fn dr_account(w: &World, trusted: &str) {
    create_role(w, REGION, trusted);
    let policy = single_region(w, &["policy", "--account", CALLER]);
    assert_eq!(policy["policies"][1]["for"], ROLE, "{policy}");
    accounts::put_role_policy(w, REGION, "drflow", &policy["policies"][1]["policy"].to_string());
    let key = create_key(w, REGION);
    dr_vault(w, (REGION, REGION), &key, Some(CALLER));
}

/// The state machine's execution role in the caller's account, allowed what the exported template's execution role
/// is allowed of the cross-account part (its `CrossAccountTasks` statement: sts:AssumeRole on the DR role).
fn execution_role(w: &World) {
    let template = single_region(w, &["export", "--format", "cloudformation"]);
    let policies = template["Resources"]["StateMachineRole"]["Properties"]["Policies"]
        .as_array()
        .unwrap();
    let statements: Vec<Value> = policies
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
        .filter(|s| s["Sid"] == "CrossAccountTasks")
        .collect();
    assert_eq!(statements.len(), 1, "{template}");
    assert_eq!(statements[0]["Action"], json!(["sts:AssumeRole"]));
    assert_eq!(statements[0]["Resource"], json!([ROLE]));
    assert!(
        template["Outputs"]["RoleDrTrust"]["Value"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .contains("${StateMachineRole.Arn}"),
        "{template}"
    );
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let name = EXECUTION_ROLE.rsplit('/').next().unwrap();
    iam(
        w,
        CALLER,
        &[
            ("Action", "CreateRole"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", &trust.to_string()),
        ],
    );
    let policy = json!({"Version": "2012-10-17", "Statement": statements});
    iam(
        w,
        CALLER,
        &[
            ("Action", "PutRolePolicy"),
            ("RoleName", name),
            ("PolicyName", "step-functions"),
            ("PolicyDocument", &policy.to_string()),
        ],
    );
}

/// Restores the emulator's Step Functions time scale when dropped.
struct TimeScale<'a>(&'a World, Value);

impl Drop for TimeScale<'_> {
    fn drop(&mut self) {
        self.0
            .emu
            .control("POST", "/_drflow/sfn", Some(json!({"time_scale": self.1})));
    }
}

/// Exports the state machine, creates it with the execution role and runs one execution to its end; its
/// description.
fn execute(w: &World) -> Value {
    let previous = w.emu.control("GET", "/_drflow/sfn", None)["time_scale"].clone();
    let _restore = TimeScale(w, previous);
    w.emu.control("POST", "/_drflow/sfn", Some(json!({"time_scale": 0.01})));
    let definition = single_region(w, &["export"]);
    let text = definition.to_string();
    assert!(
        text.contains(&format!(r#""Credentials":{{"RoleArn":"{ROLE}"}}"#)) && !text.contains("lambda:invoke"),
        "{definition:#}"
    );
    run_machine(w, ("drflow-xa", "xa-1"), &text, "{}", Duration::from_secs(180))
}

async fn parameter(w: &World, account_key: &str) -> Option<String> {
    accounts::parameter(w, REGION, account_key).await
}

#[test]
fn the_exported_cross_account_backup_pipeline_runs_its_dr_steps_as_the_dr_role() {
    let w = World::new(&[REGION], &[WORKFLOW]);
    allow_shared_regions(&w);
    dr_account(&w, EXECUTION_ROLE);
    execution_role(&w);
    let done = execute(&w);
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let output: Value = serde_json::from_str(done["output"].as_str().unwrap()).unwrap();
    let steps = &output["steps"];
    // The copy went into the DR account's vault, started by the caller's account.
    let copies = w.emu.calls("StartCopyJob");
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["account"], CALLER);
    assert_eq!(
        copies[0]["request"]["DestinationBackupVaultArn"],
        "arn:aws:backup:us-east-1:222222222222:backup-vault:Default"
    );
    // Each parameter was written in its own account.
    let writers: Vec<Value> = w
        .emu
        .calls("PutParameter")
        .iter()
        .map(|c| c["account"].clone())
        .collect();
    assert!(
        writers.contains(&json!(CALLER)) && writers.contains(&json!(DR_ACCOUNT)),
        "{writers:?}"
    );
    w.rt.block_on(async {
        let dr_ami = parameter(&w, DR_ACCOUNT).await.expect("DR parameter in the DR account");
        let primary_ami = parameter(&w, "test")
            .await
            .expect("primary parameter in the caller's account");
        assert_ne!(dr_ami, primary_ami);
        assert_eq!(steps["publish_dr"]["value"], json!(dr_ami), "{steps}");
        assert_eq!(steps["publish_primary"]["value"], json!(primary_ami), "{steps}");
        // The DR vault of the DR account holds the copy, and its AMI is the DR account's.
        accounts::assert_dr_copy(&w, REGION, &dr_ami).await;
        let primary = aws_sdk_ec2::Client::new(&w.emu.sdk(REGION));
        let image = primary.describe_images().image_ids(&primary_ami).send().await.unwrap();
        assert_eq!(image.images()[0].owner_id(), Some(CALLER));
    });
}

#[test]
fn a_role_that_does_not_trust_the_execution_role_fails_the_execution_with_stss_refusal() {
    let w = World::new(&[REGION], &[WORKFLOW]);
    allow_shared_regions(&w);
    dr_account(&w, "arn:aws:iam::123456789012:role/someone-else");
    execution_role(&w);
    let done = execute(&w);
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["error"], "States.TaskFailed", "{done}");
    let cause = done["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains(&format!(
            "assumed-role/drflow-sfn-execution/xa-1 is not authorized to perform: sts:AssumeRole on resource: {ROLE}"
        )),
        "{done}"
    );
    // Nothing was written in the DR account; the caller's steps before the first DR step ran.
    w.rt.block_on(async { assert_eq!(parameter(&w, DR_ACCOUNT).await, None) });
    assert_eq!(w.emu.calls("StartCopyJob").len(), 1);
}

/// Exports a workflow written in the test's folder (one region, no role) and runs one execution with `input`.
fn execute_yaml(w: &World, name: &str, yaml: &str, input: Value) -> Value {
    let path = w.dir.path().join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    let (code, definition, err) = drflow(w, &["export", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    run_machine(
        w,
        (name, &format!("{name}-1")),
        &definition,
        &input.to_string(),
        Duration::from_secs(60),
    )
}

/// Creates the state machine (machine name, definition) with the execution role, starts one execution of that name
/// with `input` and waits (at most `within`) until it ends: its description.
fn run_machine(
    w: &World,
    (machine, execution): (&str, &str),
    definition: &str,
    input: &str,
    within: Duration,
) -> Value {
    let sfn = |target: &str, body: Value| w.emu.aws_json_as("states", REGION, "test", target, body);
    let created = sfn(
        "AWSStepFunctions.CreateStateMachine",
        json!({"name": machine, "definition": definition, "roleArn": EXECUTION_ROLE}),
    );
    let started = sfn(
        "AWSStepFunctions.StartExecution",
        json!({"stateMachineArn": created["stateMachineArn"], "name": execution, "input": input}),
    );
    let deadline = Instant::now() + within;
    loop {
        let d = sfn(
            "AWSStepFunctions.DescribeExecution",
            json!({"executionArn": started["executionArn"]}),
        );
        if d["status"] != "RUNNING" {
            return d;
        }
        assert!(Instant::now() < deadline, "still running: {d}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn exported_share_and_unshare_grant_and_remove_launch_and_create_volume_permission() {
    use aws_sdk_ec2::types::{ImageAttributeName, SnapshotAttributeName};
    let w = World::new(&[], &[]);
    let ec2 = aws_sdk_ec2::Client::new(&w.emu.sdk(REGION));
    let (image, snapshots) = w.rt.block_on(async {
        let image = ec2
            .create_image()
            .instance_id(&w.instance)
            .name("drflow-share")
            .send()
            .await
            .unwrap()
            .image_id()
            .unwrap()
            .to_string();
        let described = ec2.describe_images().image_ids(&image).send().await.unwrap();
        let snapshots: Vec<String> = described.images()[0]
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
            .collect();
        (image, snapshots)
    });
    assert!(!snapshots.is_empty());
    let step = |action: &str| {
        format!(
            "version: 1\nname: {action}\nregions: {{primary: us-east-1}}\ninputs:\n  image_id: {{type: string}}\nsteps:\n  - id: s\n    action: ec2.{action}\n    region: primary\n    with: {{image_id: '${{{{ inputs.image_id }}}}', account_id: '333333333333'}}\n"
        )
    };
    let permitted = || {
        w.rt.block_on(async {
            let launch = ec2
                .describe_image_attribute()
                .image_id(&image)
                .attribute(ImageAttributeName::LaunchPermission)
                .send()
                .await
                .unwrap();
            let users: Vec<String> = launch
                .launch_permissions()
                .iter()
                .filter_map(|p| p.user_id().map(str::to_string))
                .collect();
            let mut volumes = Vec::new();
            for s in &snapshots {
                let a = ec2
                    .describe_snapshot_attribute()
                    .snapshot_id(s)
                    .attribute(SnapshotAttributeName::CreateVolumePermission)
                    .send()
                    .await
                    .unwrap();
                volumes.push(
                    a.create_volume_permissions()
                        .iter()
                        .filter_map(|p| p.user_id().map(str::to_string))
                        .collect::<Vec<_>>(),
                );
            }
            (users, volumes)
        })
    };
    let shared = execute_yaml(&w, "share_image", &step("share_image"), json!({"image_id": image}));
    assert_eq!(shared["status"], "SUCCEEDED", "{shared}");
    let output: Value = serde_json::from_str(shared["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["steps"]["s"]["snapshot_ids"], json!(snapshots));
    let (users, volumes) = permitted();
    assert_eq!(users, ["333333333333"]);
    assert!(volumes.iter().all(|v| v == &["333333333333"]), "{volumes:?}");
    let unshared = execute_yaml(&w, "unshare_image", &step("unshare_image"), json!({"image_id": image}));
    assert_eq!(unshared["status"], "SUCCEEDED", "{unshared}");
    let (users, volumes) = permitted();
    assert!(
        users.is_empty() && volumes.iter().all(Vec::is_empty),
        "{users:?} {volumes:?}"
    );
    // An image that is gone has nothing to unshare; one to share fails the step.
    let gone = json!({"image_id": "ami-0123456789abcdef0"});
    let nothing = execute_yaml(&w, "unshare_gone", &step("unshare_image"), gone.clone());
    assert_eq!(nothing["status"], "SUCCEEDED", "{nothing}");
    let output: Value = serde_json::from_str(nothing["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["steps"]["s"]["snapshot_ids"], json!([]));
    let failed = execute_yaml(&w, "share_gone", &step("share_image"), gone);
    assert_eq!(failed["status"], "FAILED", "{failed}");
}
