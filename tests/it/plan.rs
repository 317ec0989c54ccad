//! `drflow plan`, `drflow policy` and `drflow graph` through the real binary: golden outputs of the listed workflows
//! (tests/golden/plans.list), the IAM policy linted by `parliament`, and preflight checks on the simulator.
//! The same checks against the AWS emulator, with its call log, are in tests/plan_emulator.rs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use drflow::cloud::sim::{Scenario, Sim};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";

use crate::common::golden::{Golden, compare, stateless as run};

fn golden_list() -> Vec<Golden> {
    crate::common::golden::list("plans.list")
}

fn outputs(g: &Golden) -> Vec<(String, String)> {
    let args: Vec<&str> = g.args.iter().map(String::as_str).collect();
    let wf = g.workflow.as_str();
    let mut out = Vec::new();
    for (suffix, cmd) in [
        ("plan.txt", [&["plan", wf][..], &args].concat()),
        ("plan.json", [&["plan", wf, "--output", "json"][..], &args].concat()),
        (
            "policy.json",
            [&["policy", wf, "--account", ACCOUNT][..], &args].concat(),
        ),
        ("graph.mmd", vec!["graph", wf]),
        ("graph.dot", vec!["graph", wf, "--format", "dot"]),
    ] {
        let (code, stdout, stderr) = run(&cmd);
        assert_eq!(
            code,
            Some(0),
            "{}: drflow {}\n{stdout}\n{stderr}",
            g.name,
            cmd.join(" ")
        );
        out.push((format!("{}.{suffix}", g.name), stdout));
    }
    out
}

#[test]
fn golden_plans_policies_and_graphs() {
    let mut problems = Vec::new();
    for g in golden_list() {
        for (file, actual) in outputs(&g) {
            problems.extend(compare(&file, &actual));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(if the change is intended: DRFLOW_UPDATE_GOLDEN=1 cargo test --test plan golden)",
        problems.join("\n")
    );
    // Workflows that are not in the list are not failed on, only pointed out.
    let listed: Vec<String> = golden_list().into_iter().map(|g| g.workflow).collect();
    for e in std::fs::read_dir(repo("workflows")).unwrap().flatten() {
        let rel = format!("workflows/{}", e.file_name().to_string_lossy());
        if rel.ends_with(".yaml") && !listed.contains(&rel) {
            eprintln!("note: {rel} has no golden plan: add it to tests/golden/plans.list");
        }
    }
}

#[test]
fn the_json_plan_has_its_format_and_resolves_what_it_can() {
    let (code, out, err) = run(&[
        "plan",
        "workflows/dr-ami.yaml",
        "-i",
        "instance_id=i-0123456789abcdef0",
        "--output",
        "json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["format"], "drflow-plan/1");
    assert_eq!(plan["checks"], Value::Null);
    let steps = plan["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "backup",
            "wait_backup",
            "primary_ami",
            "copy",
            "wait_copy",
            "dr_ami",
            "publish",
            "deploy"
        ]
    );
    assert_eq!(steps[0]["inputs"]["instance_id"]["value"], "i-0123456789abcdef0");
    assert_eq!(
        steps[1]["inputs"]["job_id"]["known_after"],
        serde_json::json!(["backup"])
    );
    assert_eq!(steps[3]["inputs"]["destination_region"]["value"], "us-west-2");
    assert_eq!(steps[6]["type"], "parallel");
    assert_eq!(steps[6]["branches"][1]["region"]["code"], "us-west-2");
    assert_eq!(steps[7]["when"]["decision"], "skip");
    assert!(steps[7]["skipped"].as_str().unwrap().contains("is false"));
    // The bound: the sum of the steps' bounds; the parallel group counts its longest branch; skipped counts 0.
    let sum: u64 = steps.iter().map(|s| s["max_duration_ms"].as_u64().unwrap()).sum();
    assert_eq!(plan["max_duration_ms"].as_u64().unwrap(), sum);
    assert_eq!(steps[7]["max_duration_ms"], 0);
    // backup: 11 attempts × 2 min + 2+4+8+16+32 s + 5 × 1 min (capped) of delays.
    assert_eq!(steps[0]["max_duration_ms"], 11 * 120_000 + 62_000 + 5 * 60_000);
}

#[test]
fn plan_needs_its_inputs_and_does_not_simulate_without_check() {
    let (code, _, err) = run(&["plan", "workflows/dr-ami.yaml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("input `instance_id` is required"), "{err}");
    let (code, _, err) = run(&[
        "plan",
        "workflows/dr-ami.yaml",
        "-i",
        "instance_id=i-0123456789abcdef0",
        "--simulate",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("add --check"), "{err}");
    assert!(
        !Path::new("/nonexistent-drflow-state").exists(),
        "a plan writes no state"
    );
}

#[test]
fn policy_without_an_account_asks_for_one_and_missing_inputs_become_wildcards() {
    let (code, _, err) = run(&[
        "policy",
        "workflows/dr-ami-ec2.yaml",
        "-i",
        "instance_id=i-0123456789abcdef0",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pass --account ID"), "{err}");
    // The shipped workflows pass the standard Backup role of the caller's account (`account.id`): the policy asks
    // for the account too.
    let (code, _, err) = run(&["policy", "workflows/dr-ami.yaml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pass --account ID"), "{err}");
    let (code, out, err) = run(&["policy", "workflows/dr-ami.yaml", "--account", ACCOUNT]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("input `instance_id` is not given"), "{err}");
    assert!(err.contains("step `deploy` is left out"), "{err}");
    let policy: Value = serde_json::from_str(&out).unwrap();
    let resources: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Resource"].as_array().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        resources.contains(&"arn:aws:ssm:us-west-2:123456789012:parameter/drflow/*/ami"),
        "{resources:?}"
    );
    assert!(
        resources.contains(&"arn:aws:ec2:us-east-1:123456789012:instance/*"),
        "{resources:?}"
    );
}

// ---------------------------------------------------------------- parliament

/// The `parliament` linter from the project's virtualenv (scripts/emulator-venv installs it).
fn parliament() -> PathBuf {
    venv_bin("parliament")
}

/// Lints a policy with every auditor parliament runs by default, down to INFO; returns its findings.
pub(crate) fn lint(policy: &str) -> Result<(), String> {
    let mut child = Command::new(parliament())
        .args(["--minimum_severity", "INFO"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("parliament runs");
    child.stdin.take().unwrap().write_all(policy.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && findings.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("exit {:?}: {findings}", out.status.code()))
    }
}

#[test]
fn parliament_finds_nothing_in_the_policies() {
    // The harness notices findings at all: a policy with an unnecessary `*`.
    let bad = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:PutParameter", "Resource": "*"}]}"#;
    assert!(lint(bad).is_err(), "parliament reported nothing for Resource *");
    let mut linted = 0;
    for g in golden_list() {
        let args: Vec<&str> = g.args.iter().map(String::as_str).collect();
        let cmd = [&["policy", g.workflow.as_str(), "--account", ACCOUNT][..], &args].concat();
        let (code, policy, err) = run(&cmd);
        assert_eq!(code, Some(0), "{}: {err}", g.name);
        if let Err(findings) = lint(&policy) {
            panic!("{}: parliament reports\n{findings}\nfor\n{policy}", g.name);
        }
        linted += 1;
    }
    // And without the optional steps left out: the DR stack's permissions too.
    let (_, policy, _) = run(&[
        "policy",
        "workflows/dr-ami.yaml",
        "-i",
        "deploy_stack=true",
        "--account",
        ACCOUNT,
    ]);
    lint(&policy).unwrap_or_else(|f| panic!("parliament reports\n{f}\nfor\n{policy}"));
    assert!(linted >= 2);
}

// ---------------------------------------------------------------- checks on the simulator

/// The simulated account a `--simulate` run in `state` uses, to read its call log.
fn sim_calls(state: &Path) -> Vec<drflow::cloud::sim::Call> {
    Sim::persistent(&state.join("sim/world.json"), Scenario::default())
        .expect("the simulated world")
        .calls()
}

#[test]
fn plan_check_on_the_simulator_reports_every_check_ok_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = drflow(
        &state,
        &[
            "plan",
            "workflows/dr-ami.yaml",
            "-i",
            &format!("instance_id={INSTANCE}"),
            "-i",
            "deploy_stack=true",
            "--check",
            "--simulate",
            "--output",
            "json",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let checks = &plan["checks"];
    assert_eq!(checks["backend"], "sim");
    assert_eq!(checks["failed"], 0);
    let results = checks["results"].as_array().unwrap();
    let kinds: Vec<(&str, &str, &str)> = results
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap(),
                c["region"].as_str().unwrap_or(""),
                c["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("caller_identity", "us-east-1", "ok"),
            ("instance", "us-east-1", "ok"),
            ("backup_vault", "us-east-1", "ok"),
            ("backup_vault", "us-west-2", "ok"),
            ("ssm_parameter", "us-east-1", "note"),
            ("ssm_parameter", "us-west-2", "note"),
            ("template", "us-west-2", "ok"),
            ("stack", "us-west-2", "ok"),
        ],
        "{results:#?}"
    );
    assert_eq!(results[2]["steps"], serde_json::json!(["backup", "copy"]));
    // What preflight learnt (the caller's account) is known to the plan: the Backup role of that account.
    assert_eq!(checks["account"], "123456789012");
    assert_eq!(
        plan["steps"][0]["inputs"]["iam_role_arn"]["value"],
        "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole"
    );
    assert!(results[4]["reason"].as_str().unwrap().contains("does not exist yet"));
    let calls = sim_calls(&state);
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| !c.mutating),
        "mutating calls: {:?}",
        calls.iter().filter(|c| c.mutating).collect::<Vec<_>>()
    );

    // After a real (simulated) run, the checks see what it published, and still change nothing.
    let run = drflow(
        &state,
        &[
            "run",
            "workflows/dr-ami.yaml",
            "-i",
            &format!("instance_id={INSTANCE}"),
            "--simulate",
            "--output",
            "plain",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{:?}", text(&run));
    let before = sim_calls(&state).len();
    let out = drflow(
        &state,
        &[
            "plan",
            "workflows/dr-ami.yaml",
            "-i",
            &format!("instance_id={INSTANCE}"),
            "--check",
            "--simulate",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Preflight checks (read-only, against the simulator)"),
        "{stdout}"
    );
    let parameter = stdout
        .lines()
        .find(|l| l.contains("SSM parameter /drflow/i-0123456789abcdef0/ami in us-west-2"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(parameter.contains("(version 1"), "{parameter}");
    assert!(parameter.contains("the AMI is available, created"), "{parameter}");
    assert!(stdout.contains("skipped  template ../stacks/dr-ec2.yaml"), "{stdout}");
    let after = sim_calls(&state);
    assert!(after[before..].iter().all(|c| !c.mutating), "{:?}", &after[before..]);
}

#[test]
fn a_missing_dr_vault_fails_the_check_on_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.yaml");
    std::fs::write(
        &scenario,
        format!(
            "default_world: false\nregions: [us-east-1, us-west-2]\ninstances:\n  - {{id: {INSTANCE}, region: us-east-1}}\nvaults:\n  - {{name: Default, region: us-east-1}}\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let out = drflow(
        &state,
        &[
            "plan",
            "workflows/dr-ami.yaml",
            "-i",
            &format!("instance_id={INSTANCE}"),
            "--check",
            "--scenario",
            scenario.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout
            .contains("FAILED   backup vault Default in us-west-2 (for copy): no backup vault `Default` in us-west-2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Checks: 3 ok, 2 notes, 1 failed, 2 skipped"),
        "{stdout}"
    );
    assert!(stderr.contains("error: 1 of 8 preflight checks failed:"), "{stderr}");
    assert!(
        stderr.contains("backup vault Default in us-west-2 (for copy): no backup vault `Default` in us-west-2"),
        "{stderr}"
    );
    assert!(sim_calls(&state).iter().all(|c| !c.mutating));

    // A terminated instance cannot be backed up.
    std::fs::write(
        &scenario,
        "instances:\n  - {id: i-0aaaaaaaaaaaaaaaa, region: us-east-1, state: terminated}\n",
    )
    .unwrap();
    let out = drflow(
        &dir.path().join("state2"),
        &[
            "plan",
            "workflows/dr-ami.yaml",
            "-i",
            "instance_id=i-0aaaaaaaaaaaaaaaa",
            "--check",
            "--scenario",
            scenario.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("instance i-0aaaaaaaaaaaaaaaa in us-east-1 (for backup): the instance is terminated"),
        "{stderr}"
    );
}

#[test]
fn plan_check_runs_the_fleets_discovery_and_bounds_the_run_by_its_items() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.yaml");
    // The default world's tagged instance, and 12 more.
    let mut y = String::from("instances:\n");
    for i in 1..=12 {
        y.push_str(&format!(
            "  - {{id: i-0aaaaaaaaaaaaa{i:03}, region: us-east-1, tags: {{drflow:protect: \"true\"}}}}\n"
        ));
    }
    std::fs::write(&scenario, y).unwrap();
    let state = dir.path().join("state");
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "workflows/dr-fleet.yaml",
            "--check",
            "--scenario",
            scenario.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = drflow(&state, &args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        stdout
    };

    let out = plan(&[]);
    for line in [
        "     items     13 (found by discover, run by --check): i-0123456789abcdef0, i-0aaaaaaaaaaaaa001, ",
        "i-0aaaaaaaaaaaaa009 and 3 more\n",
        "     for each  13 items, 10 at a time; no item may fail\n",
        "     budget    2 waves × 17h6m24s per item = 1d10h12m48s at most (13 items, up to 10 at once)\n",
        "     api calls 13 items × 9752 per item = 126776 at most\n",
        "  ok       discovery step discover in us-east-1 (for fleet): instance_ids: 13 (i-0123456789abcdef0, ",
        // discover (1h52m22s) + 2 waves of one item.
        "Upper bound on the run's duration: 1d12h5m10s\n",
        "Upper bound on its AWS API calls: 126952\n",
        "  backup:StartBackupJob        143\n",
    ] {
        assert!(out.contains(line), "missing `{line}` in\n{out}");
    }

    let json: Value = serde_json::from_str(&plan(&["--output", "json"])).unwrap();
    let fleet = &json["steps"][1]["for_each"];
    assert_eq!(fleet["count"], 13);
    assert_eq!(fleet["waves"], 2);
    assert_eq!(fleet["discovered_by"], serde_json::json!(["discover"]));
    assert_eq!(fleet["items"]["value"].as_array().unwrap().len(), 13);
    assert_eq!(
        json["max_duration_ms"],
        json["steps"][0]["max_duration_ms"].as_u64().unwrap() + 2 * fleet["max_item_duration_ms"].as_u64().unwrap()
    );
    assert_eq!(json["max_api_calls_by_operation"]["backup:StartBackupJob"], 13 * 11);
    let discovery = json["checks"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "discovery")
        .expect("a discovery check");
    assert_eq!(discovery["status"], "ok");
    assert_eq!(discovery["subject"], "discover");

    // Without --check, the items are known only after discovery: unbounded.
    let (code, out, err) = run(&["plan", "workflows/dr-fleet.yaml", "--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["max_duration_ms"], Value::Null);
    assert_eq!(json["max_api_calls"], Value::Null);
    assert_eq!(json["steps"][1]["for_each"]["count"], Value::Null);
    assert!(json["steps"][1]["for_each"]["max_item_duration_ms"].as_u64().unwrap() > 0);

    let calls = sim_calls(&state);
    assert!(calls.iter().any(|c| c.operation == "DescribeInstances"), "{calls:?}");
    assert!(calls.iter().all(|c| !c.mutating), "{calls:?}");
}
