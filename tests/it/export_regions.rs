//! `drflow export` in its default, two-region form, executed: `workflows/dr-ami.yaml`'s CloudFormation template
//! deployed by the emulator's CloudFormation in us-west-2 (the state machine with its DefinitionSubstitutions, the
//! cross-region Lambda function, their roles, the log group), the primary-region steps going through the function
//! (which the emulator runs as a Python process, its calls made as the function's role), throttled on the way, and
//! the end state compared with `drflow run`'s. The checks are in tests/fixtures/export/execute_regions.py.

use std::process::Command;
use std::sync::OnceLock;

use crate::common::golden::stateless as run;
use crate::common::*;
use serde_json::{Value, json};

/// The driver's results, run once for the tests of this file (it takes about 30 s).
fn execute() -> &'static Value {
    static RESULTS: OnceLock<Value> = OnceLock::new();
    RESULTS.get_or_init(run_driver)
}

fn run_driver() -> Value {
    let (code, template, err) = run(&["export", "workflows/dr-ami.yaml", "--format", "cloudformation"]);
    assert_eq!(code, Some(0), "{err}");
    let t: Value = serde_json::from_str(&template).unwrap();
    assert!(
        t["Resources"]["CrossRegionFunction"].is_object(),
        "the default export uses the function"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dr-ami.cfn.json");
    std::fs::write(&file, &template).unwrap();
    let out = Command::new(venv_bin("python"))
        .arg(repo("tests/fixtures/export/execute_regions.py"))
        .arg(repo("tests/emulator/server.py"))
        .arg(&file)
        .arg(repo("workflows/dr-ami.yaml"))
        .arg(env!("CARGO_BIN_EXE_drflow"))
        .output()
        .expect("python runs");
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}\n{e}");
    let r: Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(r["failures"], json!([]));
    r["results"].clone()
}

#[test]
fn the_two_region_export_executes_through_the_cross_region_function() {
    let r = execute();
    // What the template deploys, as deployed: the function as exported, no placeholder left in the definition.
    assert_eq!(
        r["resources"],
        json!([
            "CrossRegionFunction",
            "CrossRegionFunctionRole",
            "LogGroup",
            "StateMachine",
            "StateMachineRole"
        ])
    );
    assert_eq!(
        r["function"],
        json!({"Runtime": "python3.12", "Handler": "index.handler", "Timeout": 60})
    );
    assert_eq!(r["machine"]["type"], "STANDARD");
    assert_eq!(r["machine"]["role_is_the_stacks"], true);
    assert_eq!(r["machine"]["logging_level"], "ERROR");
    let log_group = r["machine"]["log_group"][0].as_str().unwrap_or_default();
    assert!(
        log_group.starts_with("/aws/vendedlogs/states/drflow-dr-ami"),
        "{}",
        r["machine"]
    );

    // The end state of `drflow run`: one backup job in us-east-1 of the instance, one copy into the us-west-2
    // vault, its recovery point there, each AMI published in its region (version 1, aws:ec2:image).
    let export = &r["export"];
    assert_eq!(
        export, &r["run"],
        "the execution and `drflow run` leave different states"
    );
    assert_eq!(
        export["backup_jobs"],
        json!([{"state": "COMPLETED", "of_the_instance": true, "vault": "Default", "delete_after_days": 7}])
    );
    assert_eq!(
        export["copy_jobs"],
        json!([{"state": "COMPLETED", "destination": "arn:aws:backup:us-west-2:123456789012:backup-vault:Default",
                "delete_after_days": 35}])
    );
    assert_eq!(export["dr_points"], 1);
    assert_eq!(export["primary_ami_is_backup"], true);
    assert_eq!(export["dr_ami_is_copy"], true);
    for region in ["us-east-1", "us-west-2"] {
        assert_eq!(
            export["parameters"][region],
            json!({"version": 1, "data_type": "aws:ec2:image"}),
            "{region}"
        );
    }
    // The parameters read back by the state machine are the ones written, one AMI per region.
    let values = &r["export_values"];
    assert_ne!(values["us-east-1"], values["us-west-2"]);
    assert_eq!(r["outputs"]["publish_primary"]["value"], values["us-east-1"]);
    assert_eq!(r["outputs"]["publish_dr"]["value"], values["us-west-2"]);
    assert_eq!(r["outputs"]["publish_primary"]["outcome"], "written");

    // Retry through the function: StartBackupJob throttled twice in us-east-1 (answered to the function, raised under
    // its AWS code), then done; a throttled DescribeImages; one Invoke refused by Lambda (429). Every Invoke is made in
    // the state machine's region; the function's calls are its role's session, none refused by the role's policies.
    assert_eq!(
        r["start_backup_calls"],
        json!([["us-east-1", 400], ["us-east-1", 400], ["us-east-1", 200]])
    );
    assert_eq!(r["start_backup_accounts"], json!(["123456789012"]));
    assert_eq!(r["invokes"]["regions"], json!(["us-west-2"]));
    assert_eq!(r["invokes"]["throttled"], 1);
    assert!(r["invokes"]["total"].as_u64().unwrap() >= 10, "{}", r["invokes"]);
    assert_eq!(r["invokes"]["function_errors"], json!(["", "Unhandled"]));
    assert_eq!(r["refused"], json!([]));
    for error in [
        "ThrottlingException",
        "RequestLimitExceeded",
        "Lambda.TooManyRequestsException",
        // the first publish: no parameter yet, caught by its AWS code through the function and the SDK integration
        "ParameterNotFound",
        "Ssm.ParameterNotFoundException",
    ] {
        assert!(
            r["task_errors"].as_array().unwrap().contains(&json!(error)),
            "{error}: {}",
            r["task_errors"]
        );
    }
    let cause = &r["parameter_not_found_cause"];
    assert_eq!(cause["errorType"], "ParameterNotFound");
    assert!(
        cause["errorMessage"].as_str().unwrap().ends_with("/ami not found."),
        "{cause}"
    );
}

#[test]
fn a_function_error_reaches_the_state_machine_under_its_aws_error_code() {
    let r = execute();
    // Caught by `ErrorEquals: ["ParameterNotFound"]`; the Cause is Lambda's error payload.
    assert_eq!(r["caught"]["status"], "SUCCEEDED");
    assert_eq!(r["caught"]["caught"], "ParameterNotFound");
    assert_eq!(r["caught"]["cause"]["errorType"], "ParameterNotFound");
    assert_eq!(
        r["caught"]["cause"]["errorMessage"],
        "Parameter /drflow/none not found."
    );
    assert!(
        r["caught"]["cause"]["stackTrace"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
    // The function acts as its role, held to the role's policy (exported least privilege): no DeleteParameter.
    assert_eq!(
        r["outside_the_policy"],
        json!({"function_error": "Unhandled", "error_type": "AccessDeniedException"})
    );
    // Not caught: the execution fails with that error name.
    assert_eq!(r["uncaught"]["status"], "FAILED");
    assert_eq!(r["uncaught"]["error"], "ParameterNotFound");
}
