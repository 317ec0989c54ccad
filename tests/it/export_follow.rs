//! `drflow export` of a workflow that follows an AWS Backup plan (tests/fixtures/export/follow.yaml:
//! workflows/dr-follow-plan.yaml with the instances as an input): its state machine
//! EXECUTED on the emulator in one region (the copy rule's vault another vault there), with a plan history seeded
//! as tests/it/follow_plan.rs seeds it, ending as `drflow run` ends (tests/fixtures/export/execute_follow.py
//! checks each parameter); the template's optional EventBridge rule on completed copies; and dr-follow-plan itself
//! exported, its discovery included (executed by tests/it/export_discover.rs).

use std::process::Command;

use crate::common::golden::{compare, stateless as run};
use crate::common::text as text_of;
use crate::common::*;
use serde_json::{Value, json};

const FIXTURE: &str = "tests/fixtures/export/follow.yaml";

#[test]
fn the_followed_plan_executes_on_the_emulator_as_drflow_run_ends() {
    // One region: no cross-region function (the emulator runs SDK tasks only).
    let (code, asl, err) = run(&[
        "export",
        FIXTURE,
        "--region",
        "primary=us-west-2",
        "-i",
        "backup_vault=Main",
        "-i",
        "dr_vault=Dr",
        "-i",
        "dr_parameter_prefix=/drflow-dr",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !asl.contains("lambda:invoke"),
        "a single-region export calls no function"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("follow.asl.json");
    std::fs::write(&file, &asl).unwrap();
    let out = Command::new(venv_bin("python"))
        .arg(repo("tests/fixtures/export/execute_follow.py"))
        .arg(repo("tests/emulator/server.py"))
        .arg(&file)
        .output()
        .expect("python runs");
    let (o, e) = text_of(&out);
    assert!(out.status.success(), "{o}\n{e}");
    let r: Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(r["failures"], json!([]));
    let r = &r["results"];
    // B's and C's items fail (no DR copy; a failed copy), so the Map and the execution fail, as `drflow run` exits 1
    // with "2 of 5 items failed"; every other item published.
    assert_eq!(r["first"]["status"], "FAILED");
    assert_eq!(r["first"]["error"], "States.ExceedToleratedFailureThreshold");
    assert_eq!(r["put_parameter"], 6, "A and D twice, B and C once, E never");
    assert_eq!(r["list_points"], 6, "A's 103 points on two pages, the others on one");
    assert_eq!(r["items"]["B"]["error"], "DrCopyNotAvailable");
    assert!(
        r["items"]["C"]["cause"]
            .as_str()
            .is_some_and(|c| c.contains("ended FAILED: Insufficient privileges")),
        "{}",
        r["items"]["C"]
    );
    assert_eq!(r["second"]["put_parameter"], 0, "the second execution is up to date");
}

#[test]
fn the_follow_forms_scan_bounded_pages_and_wait_on_copy_jobs() {
    let (code, asl, err) = run(&["export", FIXTURE, "-i", "backup_vault=Main", "-i", "dr_vault=Dr"]);
    assert_eq!(code, Some(0), "{err}");
    let def: Value = serde_json::from_str(&asl).unwrap();
    let states = def["States"]["fleet"]["ItemProcessor"]["States"].as_object().unwrap();
    let find = |prefix: &str| -> Vec<&Value> {
        states
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .collect()
    };
    // The newest COMPLETED point: a Choice comparing timestamps, pages of 100 at most 10 (TooManyItems past them).
    let newer = find("latest: newest newer?");
    assert_eq!(newer.len(), 1);
    let rule = newer[0]["Choices"][0].to_string();
    assert!(
        rule.contains("TimestampGreaterThanPath") && rule.contains("COMPLETED"),
        "{rule}"
    );
    let pages = find("latest: newest more pages?")[0]["Choices"][0].to_string();
    assert!(pages.contains("\"NumericGreaterThanEquals\":10"), "{pages}");
    assert!(find("latest: newest too many")[0]["Error"] == "TooManyItems");
    // The DR copy: ListCopyJobs by state, in a polled loop with the step's waits (50m, 30s growing by 1.5 to 2m).
    let by_state: Vec<String> = states
        .values()
        .filter_map(|s| {
            s["Parameters"]["Payload"]["parameters"]["ByState"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    for s in ["COMPLETED", "RUNNING", "CREATED"] {
        assert!(by_state.iter().any(|b| b == s), "{by_state:?}");
    }
    let start = find("dr_copy: poll start")[0];
    assert_eq!(
        start["Result"]["waits"].as_array().unwrap()[..5],
        json!([30, 45, 68, 102, 120]).as_array().unwrap()[..]
    );
}

#[test]
fn dr_follow_plan_exports_its_discovery_too() {
    let (code, out, err) = run(&["export", "workflows/dr-follow-plan.yaml", "-i", "backup_plan_id=p"]);
    assert_eq!(code, Some(0), "{err}");
    let def: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(def["States"]["discover"]["Type"], "Pass", "{out}");
    assert!(out.contains("ListBackupSelections") && out.contains("DescribeInstances"));
}

#[test]
fn the_template_starts_an_execution_when_a_copy_into_the_dr_vault_completes() {
    let args = [
        "export",
        FIXTURE,
        "--format",
        "cloudformation",
        "--state-machine-region",
        "primary",
        "-i",
        "backup_vault=Main",
        "-i",
        "dr_vault=Dr",
        "--on-copy-completed",
    ];
    let (code, text, err) = run(&args);
    assert_eq!(code, Some(0), "{err}");
    if let Some(problem) = compare("follow-on-copy.cfn.json", &text) {
        panic!("{problem}\n(if intended: DRFLOW_UPDATE_GOLDEN=1 cargo test --test it export_follow)");
    }
    let t: Value = serde_json::from_str(&text).unwrap();
    let rule = &t["Resources"]["CopyCompletedRule"]["Properties"];
    let pattern = &rule["EventPattern"];
    assert_eq!(pattern["source"], json!(["aws.backup"]));
    assert_eq!(pattern["detail-type"], json!(["Copy Job State Change"]));
    assert_eq!(pattern["detail"]["state"], json!(["COMPLETED"]));
    assert_eq!(
        pattern["detail"]["destinationBackupVaultArn"][0]["Fn::Sub"],
        "arn:${AWS::Partition}:backup:${RegionDr}:${AWS::AccountId}:backup-vault:${InputDrVault}"
    );
    assert_eq!(rule["Targets"][0]["Arn"], json!({"Ref": "StateMachine"}));
    let role = t["Resources"]["CopyCompletedRole"]["Properties"].to_string();
    assert!(
        role.contains("events.amazonaws.com") && role.contains("states:StartExecution"),
        "{role}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("follow-on-copy.cfn.json");
    std::fs::write(&file, &text).unwrap();
    let lint = Command::new(venv_bin("cfn-lint")).arg(&file).output().unwrap();
    assert!(lint.status.success(), "{}", text_of(&lint).0);
    // Without the flag, no rule; from the DR region, refused (the events are the primary region's).
    let (code, text, _) = run(&args[..args.len() - 1]);
    assert_eq!(code, Some(0));
    assert!(!text.contains("CopyCompletedRule"));
    let (code, _, err) = run(&["export", FIXTURE, "--format", "cloudformation", "--on-copy-completed"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--state-machine-region primary"), "{err}");
    let (code, _, err) = run(&["export", FIXTURE, "--on-copy-completed"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is for --format cloudformation"), "{err}");
}
