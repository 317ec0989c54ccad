//! `drflow export` through the real binary: golden state machines of the shipped workflows
//! (tests/golden/exports.list), every exported definition checked by `statelint` and `asl-validator`, and the
//! workflows that cannot be exported refused with located errors naming their steps.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::text as text_of;
use crate::common::*;
use serde_json::Value;

use crate::common::golden::{Golden, compare, stateless as run};

fn golden_list() -> Vec<Golden> {
    crate::common::golden::list("exports.list")
}

fn export(g: &Golden, format: &str) -> String {
    let args: Vec<&str> = g.args.iter().map(String::as_str).collect();
    let cmd = [&["export", g.workflow.as_str(), "--format", format][..], &args].concat();
    let (code, stdout, stderr) = run(&cmd);
    assert_eq!(code, Some(0), "{}: drflow {}\n{stderr}", g.name, cmd.join(" "));
    stdout
}

#[test]
fn golden_state_machines() {
    let mut problems: Vec<String> = golden_list()
        .iter()
        .filter_map(|g| compare(&format!("{}.asl.json", g.name), &export(g, "asl")))
        .collect();
    problems.extend(
        golden_list()
            .iter()
            .filter_map(|g| compare(&format!("{}.cfn.json", g.name), &export(g, "cloudformation"))),
    );
    assert!(
        problems.is_empty(),
        "{}\n(if the change is intended: DRFLOW_UPDATE_GOLDEN=1 cargo test --test it export::golden)",
        problems.join("\n")
    );
}

/// The project's virtualenv's npm folder (asl-validator is installed there, beside statelint in the venv).
fn asl_validator() -> PathBuf {
    let python = venv_bin("python");
    let venv = python.parent().and_then(Path::parent).expect("the venv's folder");
    let bin = venv.join("npm/node_modules/.bin/asl-validator");
    assert!(
        bin.exists(),
        "{} is missing: rerun scripts/emulator-venv",
        bin.display()
    );
    bin
}

#[test]
fn every_exported_state_machine_passes_statelint_and_asl_validator() {
    let statelint = venv_bin("statelint");
    let validator = asl_validator();
    let dir = tempfile::tempdir().unwrap();
    let mut linted = 0;
    for g in golden_list() {
        let asl = export(&g, "asl");
        let def: Value = serde_json::from_str(&asl).unwrap();
        // Not a trivial machine: more than 10 states, those of its Map item processors included.
        let states = def.to_string().matches("\"Type\":").count();
        assert!(states > 10, "{}: {states} states", g.name);
        let file = dir.path().join(format!("{}.asl.json", g.name));
        std::fs::write(&file, &asl).unwrap();
        let out = Command::new(&statelint).arg(&file).output().expect("statelint runs");
        let (o, e) = text(&out);
        assert!(
            out.status.success() && o.trim().is_empty(),
            "{}: statelint:\n{o}{e}",
            g.name
        );
        let out = Command::new(&validator)
            .arg("--json-path")
            .arg(&file)
            .output()
            .expect("asl-validator runs");
        let (o, e) = text(&out);
        assert!(out.status.success(), "{}: asl-validator:\n{o}{e}", g.name);
        linted += 1;
    }
    assert!(linted >= 3);
}

#[test]
fn the_linters_catch_a_broken_state_machine() {
    // The lint test above can fail: a definition whose state goes nowhere is refused by both.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.asl.json");
    std::fs::write(
        &file,
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}"#,
    )
    .unwrap();
    assert!(
        !Command::new(venv_bin("statelint"))
            .arg(&file)
            .output()
            .unwrap()
            .stdout
            .is_empty()
    );
    assert!(
        !Command::new(asl_validator())
            .arg("--json-path")
            .arg(&file)
            .output()
            .unwrap()
            .status
            .success()
    );
}

#[test]
fn every_shipped_workflow_exports_and_a_refusal_is_located() {
    // The issue's "every shipped workflow exports": each is listed in exports.list, so the goldens, the linters and
    // the template checks above hold it.
    let listed: Vec<String> = golden_list().into_iter().map(|g| g.workflow).collect();
    let mut shipped = 0;
    for e in std::fs::read_dir(repo("workflows")).unwrap().flatten() {
        let rel = format!("workflows/{}", e.file_name().to_string_lossy());
        if rel.ends_with(".yaml") {
            assert!(
                listed.contains(&rel),
                "{rel} is shipped but not exported (tests/golden/exports.list)"
            );
            shipped += 1;
        }
    }
    assert!(shipped >= 8, "{shipped} workflows");
    // What cannot be exported is refused, each step named with its place: the failover run from the primary region
    // without the cross-region function names its DR steps and says why.
    let rel = "workflows/dr-failover.yaml";
    let (code, out, err) = run(&["export", rel, "--single-region", "--state-machine-region", "primary"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty(), "a refused export prints no definition");
    assert!(err.contains("step `freshness`: it calls AWS in region `dr`"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(lines.len() >= 3, "{err}");
    let located = regex::Regex::new(&format!(r"^  {}:\d+:\d+: step `[a-z_0-9-]+`: .+", regex::escape(rel))).unwrap();
    for l in lines {
        assert!(located.is_match(l), "not located: {l}");
    }
}

#[test]
fn single_region_refuses_steps_in_other_regions_and_names_them() {
    let (code, out, err) = run(&["export", "workflows/dr-ami.yaml", "--single-region"]);
    assert_eq!(code, Some(2), "{out}");
    for step in [
        "backup",
        "wait_backup",
        "copy",
        "wait_copy",
        "primary_ami",
        "publish_primary",
    ] {
        assert!(
            err.contains(&format!("step `{step}`: it calls AWS in region `primary`")),
            "{step}: {err}"
        );
    }
    assert!(!err.contains("step `dr_ami`"), "{err}");
    // Run from the primary region, the DR steps are the ones refused.
    let (code, _, err) = run(&[
        "export",
        "workflows/dr-ami.yaml",
        "--single-region",
        "--state-machine-region",
        "primary",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("step `dr_ami`") && !err.contains("step `backup`"), "{err}");
}

#[test]
fn execution_input_overrides_exported_inputs_and_cli_values_are_defaults() {
    let (code, out, err) = run(&[
        "export",
        "workflows/dr-ami.yaml",
        "-i",
        "instance_id=i-0123456789abcdef0",
        "-i",
        "dr_vault=Vault2",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let def: Value = serde_json::from_str(&out).unwrap();
    let defaults = &def["States"]["Start"]["Parameters"]["defaults"];
    assert_eq!(defaults["instance_id"], "i-0123456789abcdef0");
    assert_eq!(defaults["dr_vault"], "Vault2");
    assert_eq!(defaults["primary_retention_days"], 7);
    assert_eq!(
        def["States"]["Layout"]["Parameters"]["inputs.$"],
        "States.JsonMerge($.defaults, $.given, false)"
    );
    // Without instance_id, the export says each execution must give it.
    let (code, _, err) = run(&["export", "workflows/dr-ami.yaml"]);
    assert_eq!(code, Some(0));
    assert!(err.contains("input `instance_id` has no value"), "{err}");
}

#[test]
fn every_exported_template_passes_cfn_lint_and_deploys_what_the_definition_needs() {
    let cfn_lint = venv_bin("cfn-lint");
    let dir = tempfile::tempdir().unwrap();
    let re = regex::Regex::new(r"\$\{((Region|Input)[A-Za-z0-9]+|CrossRegionFunctionArn)\}").unwrap();

    for g in golden_list() {
        let text = export(&g, "cloudformation");
        let file = dir.path().join(format!("{}.cfn.json", g.name));
        std::fs::write(&file, &text).unwrap();
        let out = Command::new(&cfn_lint).arg(&file).output().expect("cfn-lint runs");
        let (o, e) = text_of(&out);
        assert!(out.status.success(), "{}: cfn-lint:\n{o}{e}", g.name);
        let t: Value = serde_json::from_str(&text).unwrap();
        let machine = &t["Resources"]["StateMachine"]["Properties"];
        let def: Value = serde_json::from_str(machine["DefinitionString"].as_str().unwrap()).unwrap();
        // Every placeholder of the definition that the template means is substituted: regions, inputs, the function.
        let subs = machine["DefinitionSubstitutions"].as_object().unwrap();
        for c in re.captures_iter(machine["DefinitionString"].as_str().unwrap()) {
            assert!(
                subs.contains_key(&c[1]),
                "{}: ${{{}}} has no substitution",
                g.name,
                &c[1]
            );
        }
        let uses_function = def.to_string().contains("lambda:invoke");
        assert_eq!(
            t["Resources"].get("CrossRegionFunction").is_some(),
            uses_function,
            "{}",
            g.name
        );
        // Least privilege: each role holds the calls of the steps it makes (dr-ami from the DR region: the
        // function starts the backup in the primary region, the state machine waits for the DR AMI itself).
        if g.name == "dr-ami" {
            let function = t["Resources"]["CrossRegionFunctionRole"]["Properties"]["Policies"].to_string();
            let machine = t["Resources"]["StateMachineRole"]["Properties"]["Policies"].to_string();
            assert!(function.contains("backup:StartBackupJob") && !machine.contains("backup:StartBackupJob"));
            assert!(machine.contains("ec2:DescribeImages") && machine.contains("ssm:PutParameter"));
        }
        let role = t["Resources"]["StateMachineRole"]["Properties"]["Policies"].to_string();
        assert!(
            role.contains("logs:CreateLogDelivery") && role.contains("states:StartExecution"),
            "{}",
            g.name
        );
        assert_eq!(uses_function, role.contains("lambda:InvokeFunction"), "{}", g.name);
        if uses_function {
            let code = t["Resources"]["CrossRegionFunction"]["Properties"]["Code"]["ZipFile"]
                .as_str()
                .unwrap();
            assert!(code.contains("def handler(event"), "{}", g.name);
        }
    }
}

#[test]
fn exported_state_machines_execute_on_the_emulator() {
    // moto's Step Functions engine runs the exported single-region definitions (its SDK tasks call the emulator):
    // an AMI waited for and published with throttled GetParameter calls retried, published again (up to date, no
    // write), a rollback to an older AMI refused; a fleet Map of AMI copies with tokens and tags; a failure routed
    // with `on_failure: goto`, then `finally` (run.status failed), then the execution failed with the step's error;
    // a stack created, deployed again with no updates, deleted, and deleted again when gone; a rehearsal in small
    // (an instance launched by a stack verified, the stack torn down; another AMI expected: WrongImage, torn down
    // all the same, the failure published to SNS). The checks are in
    // tests/fixtures/export/execute.py (which also lower-cases moto's SDK error names, a known moto difference).
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in ["publish", "fleet", "finally", "stacks", "rehearse"] {
        let (code, out, err) = run(&["export", &format!("tests/fixtures/export/{name}.yaml")]);
        assert_eq!(code, Some(0), "{err}");
        let file = dir.path().join(format!("{name}.asl.json"));
        std::fs::write(&file, out).unwrap();
        files.push(file);
    }
    let out = Command::new(venv_bin("python"))
        .arg(repo("tests/fixtures/export/execute.py"))
        .arg(repo("tests/emulator/server.py"))
        .args(&files)
        .output()
        .expect("python runs");
    let (o, e) = text_of(&out);
    assert!(out.status.success(), "{o}\n{e}");
    let r: Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(r["failures"], serde_json::json!([]));
    assert_eq!(r["results"]["first"]["outcome"], "written");
    assert_eq!(r["results"]["rollback"]["error"], "WouldRollBack");
    assert_eq!(r["results"]["fleet"]["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(r["results"]["finally"]["error"], "Boom");
    assert_eq!(r["results"]["stacks"]["deploy"]["operation"], "create");
    let rehearse = &r["results"]["rehearse"];
    assert_eq!(
        rehearse["ok"]["verify"]["instance_id"],
        rehearse["ok"]["launch"]["outputs"]["InstanceId"]
    );
    assert_eq!(rehearse["ok"]["verify"]["system_status"], "ok");
    assert_eq!(rehearse["error"], "WrongImage");
    assert_eq!(rehearse["notified"], "rehearsal FAILED");
}

#[test]
fn a_schedule_entry_becomes_the_templates_eventbridge_schedule() {
    let (code, out, err) = run(&[
        "export",
        "workflows/dr-ami.yaml",
        "--format",
        "cloudformation",
        "--schedule",
        "tests/fixtures/export/schedule.yaml",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    let p = &t["Parameters"];
    // cron "0 3 * * 1-5" (Monday to Friday, cron numbering from Sunday = 0) in EventBridge's numbering.
    assert_eq!(p["ScheduleExpression"]["Default"], "cron(0 3 ? * 2-6 *)");
    assert_eq!(p["ScheduleTimezone"]["Default"], "Europe/Berlin");
    let input: Value = serde_json::from_str(p["ScheduleInput"]["Default"].as_str().unwrap()).unwrap();
    assert_eq!(
        input,
        serde_json::json!({"instance_id": "i-0123456789abcdef0", "dr_retention_days": 40})
    );
    assert_eq!(
        t["Resources"]["Schedule"]["Properties"]["ScheduleExpressionTimezone"],
        serde_json::json!({"Ref": "ScheduleTimezone"})
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scheduled.cfn.json");
    std::fs::write(&file, &out).unwrap();
    let lint = Command::new(venv_bin("cfn-lint")).arg(&file).output().unwrap();
    assert!(lint.status.success(), "{}", text_of(&lint).0);
    // An entry EventBridge cannot express is refused, naming it.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "version: 1\nentries:\n  - name: odd\n    workflow: {}\n    cron: \"0 3 1 * 1\"\n    inputs: {{instance_id: i-0123456789abcdef0}}\n    simulate: true\n",
            repo("workflows/dr-ami.yaml").display()
        ),
    )
    .unwrap();
    let (code, _, err) = run(&[
        "export",
        "workflows/dr-ami.yaml",
        "--format",
        "cloudformation",
        "--schedule",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("entry `odd`") && err.contains("day of the week"), "{err}");
}
