//! Approval steps (`drflow.approve`) and the failover runbook (`workflows/dr-failover.yaml`), through the real
//! binary: on a terminal (a pseudo-terminal driven by Python's `pty`, typing the answer), without one (the run stops
//! waiting for approval, exit 7, and `drflow approve` / `drflow reject` from another process continue it),
//! `--auto-approve`, what the journal records, the lock a waiting run keeps; the failover on the simulator (stale AMI
//! refused, override accepted) and against the emulator.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use serde_json::Value;

/// A workflow with a step before the approval, one after it, and a `finally`; `lock` on an input.
const APPROVAL: &str = r#"
version: 1
name: approval-test
inputs:
  key: {type: string, default: a}
regions: {primary: us-east-1}
lock: ${{ inputs.key }}
steps:
  - id: before
    action: drflow.echo
    with: {value: before}
  - id: approve
    action: drflow.approve
    region: primary
    with: {message: "Go on with the after_approval step?"}
  - id: after_approval
    action: drflow.echo
    with: {value: "approved by ${{ steps.approve.outputs.approved_by }}"}
finally:
  - id: cleanup
    action: drflow.echo
    with: {value: cleanup}
"#;

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("approval.yaml"), APPROVAL).unwrap();
        Case { dir }
    }

    fn workflow(&self) -> String {
        self.dir.path().join("approval.yaml").display().to_string()
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `drflow ARGS` with stdin, stdout and stderr not terminals.
    fn drflow(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = drflow(&self.state(), args);
        let (o, e) = text(&out);
        (out.status.code(), o, e)
    }

    fn run(&self, extra: &[&str]) -> (Option<i32>, String, String) {
        let wf = self.workflow();
        let mut args = vec!["run", wf.as_str(), "--simulate", "--output", "plain"];
        args.extend_from_slice(extra);
        self.drflow(&args)
    }

    fn journal(&self, run_id: &str) -> Vec<Value> {
        read_journal(&self.state(), run_id)
    }
}

fn read_journal(state: &Path, run_id: &str) -> Vec<Value> {
    std::fs::read_to_string(state.join("runs").join(run_id).join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The run id `drflow run` named on its "waiting for approval" line.
fn waiting_run(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("run ").filter(|r| r.contains("is waiting for approval")))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no waiting run in: {stdout}"))
        .to_string()
}

fn of_type<'a>(journal: &'a [Value], kind: &str) -> Vec<&'a Value> {
    journal.iter().filter(|e| e["type"] == kind).collect()
}

fn succeeded(journal: &[Value], step: &str) -> bool {
    journal
        .iter()
        .any(|e| e["type"] == "step_succeeded" && e["step"] == step)
}

fn started(journal: &[Value], step: &str) -> usize {
    journal
        .iter()
        .filter(|e| e["type"] == "step_started" && e["step"] == step)
        .count()
}

#[test]
fn without_a_terminal_the_run_waits_and_drflow_approve_from_another_process_finishes_it() {
    let c = Case::new();
    let (code, out, err) = c.run(&[]);
    assert_eq!(code, Some(7), "waiting for approval is its own exit code\n{out}\n{err}");
    let id = waiting_run(&out);
    assert!(
        out.contains(&format!(
            "approve: drflow --state-dir {} approve {id}",
            c.state().display()
        )),
        "{out}"
    );
    let journal = c.journal(&id);
    assert_eq!(journal[0]["v"], "1.4");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(c.state().join("runs").join(&id).join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["status"], "unfinished", "the report says how far it went");
    assert!(succeeded(&journal, "before"));
    assert_eq!(started(&journal, "after_approval"), 0, "nothing after the approval ran");
    assert_eq!(
        started(&journal, "cleanup"),
        0,
        "finally waits for the real end of the run"
    );
    assert!(of_type(&journal, "run_finished").is_empty());
    let requested = of_type(&journal, "approval_requested");
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["message"], "Go on with the after_approval step?");
    let plan = requested[0]["plan"].as_str().unwrap();
    assert!(
        plan.contains("1  after_approval"),
        "the plan of the rest of the run: {plan}"
    );
    assert!(plan.contains("f1  cleanup"), "{plan}");
    assert!(!plan.contains("before"), "only what is left: {plan}");

    // The run's status says so, in `runs` and `show` (text and JSON).
    let (_, runs, _) = c.drflow(&["runs"]);
    assert!(
        runs.lines()
            .any(|l| l.contains(&id) && l.contains("waiting for approval")),
        "{runs}"
    );
    let (_, show, _) = c.drflow(&["show", &id]);
    assert!(
        show.contains("status   waiting for approval at step `approve`"),
        "{show}"
    );
    assert!(
        show.contains("1  after_approval"),
        "show prints the plan that is waiting: {show}"
    );
    let (_, json, _) = c.drflow(&["show", &id, "--output", "json"]);
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["waiting_for_approval"], "approve");

    // From another process: approve, with a reason. It resumes the run to its end, here.
    let (code, out, err) = c.drflow(&["approve", &id, "--reason", "checked the plan", "--output", "plain"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&format!("run {id} succeeded")), "{out}");
    let journal = c.journal(&id);
    let decided = of_type(&journal, "approval_decided");
    assert_eq!(decided.len(), 1);
    let d = decided[0];
    assert_eq!(
        (d["step"].as_str(), d["approved"].as_bool()),
        (Some("approve"), Some(true))
    );
    assert_eq!(
        (d["how"].as_str(), d["reason"].as_str()),
        (Some("command"), Some("checked the plan"))
    );
    // Who: the OS user and the AWS caller identity (the simulator's); when; the plan they saw.
    let user = std::env::var("USER").unwrap_or_default();
    if !user.is_empty() {
        assert_eq!(d["os_user"], user.as_str());
    }
    assert!(!d["os_user"].as_str().unwrap().is_empty());
    assert_eq!(d["aws_arn"], "arn:aws:iam::123456789012:user/drflow-simulated");
    assert_eq!(d["aws_account"], "123456789012");
    assert!(
        humantime::parse_rfc3339(d["decided_at"].as_str().unwrap()).is_ok(),
        "{d}"
    );
    assert!(d["plan"].as_str().unwrap().contains("1  after_approval"), "{d}");
    let resumed = journal.iter().position(|e| e["type"] == "run_resumed").unwrap();
    let decided_at = journal.iter().position(|e| e["type"] == "approval_decided").unwrap();
    assert!(
        resumed < decided_at,
        "the decision is journaled by the run it continues"
    );
    assert!(succeeded(&journal, "after_approval"));
    let after = journal
        .iter()
        .find(|e| e["type"] == "step_succeeded" && e["step"] == "after_approval")
        .unwrap();
    assert!(
        after["outputs"]["value"].as_str().unwrap().contains("drflow-simulated"),
        "later steps see who approved: {after}"
    );
    assert_eq!(started(&journal, "cleanup"), 1, "finally ran once, at the end");
    assert_eq!(of_type(&journal, "run_finished")[0]["status"], "succeeded");

    // Nothing is waiting any more.
    let (code, _, err) = c.drflow(&["approve", &id]);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("is not waiting for approval: it already succeeded"),
        "{err}"
    );
}

#[test]
fn drflow_reject_ends_the_run_failed_with_the_reason_after_its_finally_steps() {
    let c = Case::new();
    let (code, out, _) = c.run(&[]);
    assert_eq!(code, Some(7));
    let id = waiting_run(&out);
    let (code, out, err) = c.drflow(&["reject", &id, "--reason", "the primary is back", "--output", "plain"]);
    assert_eq!(code, Some(1), "a rejected run failed\n{out}\n{err}");
    assert!(
        err.contains("rejected by") && err.contains("the primary is back"),
        "{err}"
    );
    let journal = c.journal(&id);
    let d = of_type(&journal, "approval_decided")[0];
    assert_eq!(
        (d["approved"].as_bool(), d["reason"].as_str()),
        (Some(false), Some("the primary is back"))
    );
    let failed = of_type(&journal, "step_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0]["step"].as_str(), failed[0]["error"]["code"].as_str()),
        (Some("approve"), Some("Rejected"))
    );
    assert_eq!(
        of_type(&journal, "attempt_failed")[0]["retry_in_ms"],
        Value::Null,
        "a rejection is never retried"
    );
    assert_eq!(started(&journal, "after_approval"), 0);
    assert!(succeeded(&journal, "cleanup"), "finally ran");
    let end = of_type(&journal, "run_finished")[0];
    assert_eq!(end["status"], "failed");
    assert!(end["error"].as_str().unwrap().contains("the primary is back"), "{end}");
    // `reject` needs a reason.
    let (code, _, err) = c.drflow(&["reject", &id]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn auto_approve_approves_at_once_and_is_journaled_as_such() {
    let c = Case::new();
    let (code, out, err) = c.run(&["--auto-approve"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split_whitespace().next()))
        .unwrap()
        .to_string();
    let journal = c.journal(&id);
    assert!(
        of_type(&journal, "approval_requested").is_empty(),
        "nobody was waited for"
    );
    let d = of_type(&journal, "approval_decided")[0];
    assert_eq!((d["approved"].as_bool(), d["how"].as_str()), (Some(true), Some("auto")));
    assert!(
        d["plan"].as_str().unwrap().contains("after_approval"),
        "the plan is journaled too"
    );
    assert!(succeeded(&journal, "after_approval"));
}

#[test]
fn a_waiting_run_keeps_its_place_for_its_lock_key_only_and_resume_can_auto_approve() {
    let c = Case::new();
    let (code, out, _) = c.run(&["-i", "key=a"]);
    assert_eq!(code, Some(7));
    let first = waiting_run(&out);
    // Another run of the same workflow and key is refused (exit 4), naming the waiting run.
    let (code, _, err) = c.run(&["-i", "key=a"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains(&format!("run {first}, which waits for approval")), "{err}");
    // Another key is not blocked: it runs (and waits in its turn).
    let (code, out, err) = c.run(&["-i", "key=b"]);
    assert_eq!(code, Some(7), "{out}\n{err}");
    let second = waiting_run(&out);
    // `resume --auto-approve` continues a waiting run too; the key is free again afterwards.
    let (code, _, err) = c.drflow(&["resume", &first, "--auto-approve", "--output", "plain"]);
    assert_eq!(code, Some(0), "{err}");
    let d = c.journal(&first);
    assert_eq!(of_type(&d, "approval_decided")[0]["how"], "auto");
    let (code, _, _) = c.run(&["-i", "key=a", "--auto-approve"]);
    assert_eq!(code, Some(0));
    // A plain resume without a terminal waits again, with the same exit code.
    let (code, out, _) = c.drflow(&["resume", &second, "--output", "plain"]);
    assert_eq!(code, Some(7), "{out}");
}

#[test]
fn an_approval_must_be_a_top_level_step() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("nested.yaml");
    std::fs::write(
        &wf,
        r#"version: 1
name: nested
regions: {primary: us-east-1}
steps:
  - id: group
    parallel:
      - id: approve
        action: drflow.approve
        region: primary
      - id: other
        action: drflow.echo
"#,
    )
    .unwrap();
    let out = drflow(&dir.path().join("state"), &["validate", wf.to_str().unwrap()]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("nested.yaml:8:17") && err.contains("can only be a top-level step"),
        "{err}"
    );
}

/// Runs `drflow ARGS` on a pseudo-terminal (stdin, stdout and stderr), answers `answers` one line at a time, each
/// after the text it follows appeared, and returns the exit code and everything the terminal showed.
fn on_a_terminal(state: &Path, args: &[&str], answers: &[(&str, &str)]) -> (i32, String) {
    const DRIVER: &str = r#"
import json, os, pty, select, subprocess, sys, time
cmd, answers = json.loads(sys.argv[1]), json.loads(sys.argv[2])
master, slave = pty.openpty()
p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
os.close(slave)
seen, deadline = b"", time.time() + 60
def read_some():
    global seen
    r, _, _ = select.select([master], [], [], 0.2)
    if r:
        try:
            seen += os.read(master, 65536)
        except OSError:
            return False
    return True
pos = 0
for after, line in answers:
    while seen.find(after.encode(), pos) < 0:
        if time.time() > deadline or (p.poll() is not None and not read_some()):
            sys.stdout.write(seen.decode(errors="replace")); sys.exit(90)
        read_some()
    pos = seen.find(after.encode(), pos) + len(after)
    os.write(master, (line + "\n").encode())
while p.poll() is None and time.time() < deadline:
    read_some()
while read_some() and select.select([master], [], [], 0.1)[0]:
    pass
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(p.wait(timeout=5))
"#;
    let mut cmd = vec![env!("CARGO_BIN_EXE_drflow").to_string(), "--state-dir".into()];
    cmd.push(state.display().to_string());
    cmd.extend(args.iter().map(|a| a.to_string()));
    let answers: Vec<(String, String)> = answers.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let out = Command::new("python3")
        .arg("-c")
        .arg(DRIVER)
        .arg(serde_json::to_string(&cmd).unwrap())
        .arg(serde_json::to_string(&answers).unwrap())
        .current_dir(repo(""))
        .env("NO_COLOR", "1")
        .output()
        .expect("python3 runs");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), shown)
}

#[test]
fn on_a_terminal_it_shows_the_plan_of_the_rest_and_asks_y_or_n() {
    let c = Case::new();
    let wf = c.workflow();
    // The default output on a terminal: the live view, out of the way while the question is asked.
    let (code, shown) = on_a_terminal(
        &c.state(),
        &["run", &wf, "--simulate"],
        &[("[y/N]", "y"), ("Reason (optional", "looks right")],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("What the rest of this run will do, after `approve`"),
        "{shown}"
    );
    assert!(shown.contains("1  after_approval"), "{shown}");
    assert!(
        shown.contains("[approve] Go on with the after_approval step? [y/N]"),
        "{shown}"
    );
    let id = std::fs::read_dir(c.state().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let journal = read_journal(&c.state(), &id.file_name().to_string_lossy());
    assert!(
        of_type(&journal, "approval_requested").is_empty(),
        "asked, not waited for"
    );
    let d = of_type(&journal, "approval_decided")[0];
    assert_eq!(
        (d["approved"].as_bool(), d["how"].as_str(), d["reason"].as_str()),
        (Some(true), Some("terminal"), Some("looks right"))
    );
    assert!(succeeded(&journal, "after_approval"));

    // Anything but y/yes is a no; the reason is journaled; `finally` runs.
    let c = Case::new();
    let wf = c.workflow();
    let (code, shown) = on_a_terminal(
        &c.state(),
        &["run", &wf, "--simulate", "--output", "plain"],
        &[("[y/N]", "n"), ("Reason (optional", "not during business hours")],
    );
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("rejected by") && shown.contains("not during business hours"),
        "{shown}"
    );
    let id = std::fs::read_dir(c.state().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let journal = read_journal(&c.state(), &id.file_name().to_string_lossy());
    let d = of_type(&journal, "approval_decided")[0];
    assert_eq!(
        (d["approved"].as_bool(), d["how"].as_str()),
        (Some(false), Some("terminal"))
    );
    assert!(succeeded(&journal, "cleanup"));
    assert_eq!(started(&journal, "after_approval"), 0);
}

// --- The failover runbook on the simulator ------------------------------------------------------------------------

const PARAM: &str = "/drflow/i-0123456789abcdef0/ami";

/// A simulated DR region whose published AMI is `age` old.
fn failover_scenario(dir: &Path, age: &str) -> PathBuf {
    let path = dir.join("scenario.yaml");
    std::fs::write(
        &path,
        format!(
            "images:\n  - {{id: ami-0aaaaaaaaaaaaaaa1, region: us-west-2, age: {age}}}\nparameters:\n  - {{name: {PARAM}, region: us-west-2, value: ami-0aaaaaaaaaaaaaaa1, data_type: \"aws:ec2:image\"}}\n"
        ),
    )
    .unwrap();
    path
}

fn sim_calls(state: &Path, operation: &str) -> usize {
    std::fs::read_to_string(state.join("sim/calls.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|c| c["operation"] == operation)
        .count()
}

#[test]
fn failover_on_the_simulator_refuses_a_stale_ami_and_accepts_it_when_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = failover_scenario(dir.path(), "3d");
    let scenario = scenario.to_str().unwrap();
    let state = dir.path().join("state");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "workflows/dr-failover.yaml",
            "--scenario",
            scenario,
            "-i",
            "instance_id=i-0123456789abcdef0",
            "--output",
            "plain",
        ];
        args.extend_from_slice(extra);
        let out = drflow(&state, &args);
        let (o, e) = text(&out);
        (out.status.code(), o, e)
    };
    // Stale: refused before anyone is asked or anything launched.
    let (code, out, err) = run(&["--auto-approve"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("created 3d ago: older than the 1d allowed; refusing it"),
        "{err}"
    );
    assert!(
        out.lines().last().unwrap().starts_with("FAILOVER FAILED dr-failover"),
        "{out}"
    );
    assert_eq!(sim_calls(&state, "CreateStack"), 0);
    assert_eq!(sim_calls(&state, "GetCallerIdentity"), 0, "nobody was asked");

    // Overridden: it waits for approval (no terminal), is approved from another process, launches and verifies.
    let (code, out, err) = run(&["-i", "allow_stale=true"]);
    assert_eq!(code, Some(7), "{out}\n{err}");
    let id = waiting_run(&out);
    let journal = read_journal(&state, &id);
    let message = of_type(&journal, "approval_requested")[0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("from ami-0aaaaaaaaaaaaaaa1 (3d") && message.contains("old)?"),
        "{message}"
    );
    let out = drflow(
        &state,
        &[
            "approve",
            &id,
            "--reason",
            "stale is better than down",
            "--output",
            "plain",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(sim_calls(&state, "CreateStack"), 1);
    let verdict = stdout.lines().last().unwrap();
    assert!(
        verdict.starts_with(&format!("FAILOVER DONE dr-failover run={id} rto=")),
        "{verdict}"
    );
    assert!(!verdict.contains("LEFT BEHIND"), "{verdict}");
    assert!(stdout.contains("Still to do, by a person:"), "{stdout}");
    assert!(
        stdout.contains("1. Point the service's DNS name at the DR instance i-"),
        "{stdout}"
    );
    let journal = read_journal(&state, &id);
    let verified = journal
        .iter()
        .find(|e| e["type"] == "step_succeeded" && e["step"] == "verify")
        .unwrap();
    assert_eq!(verified["outputs"]["image_id"], "ami-0aaaaaaaaaaaaaaa1");
    // The report measures the RTO: launch start → verified.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("runs").join(&id).join("report.json")).unwrap())
            .unwrap();
    let h = &report["rehearsal"];
    assert_eq!(
        (h["failover"].as_bool(), h["verdict"].as_str()),
        (Some(true), Some("passed"))
    );
    let ts = |kind: &str, step: &str| {
        journal
            .iter()
            .find(|e| e["type"] == kind && e["step"] == step)
            .and_then(|e| e["ts_ms"].as_i64())
            .unwrap()
    };
    assert_eq!(
        h["rto_ms"].as_i64(),
        Some(ts("step_succeeded", "verify") - ts("step_started", "launch"))
    );
    assert_eq!(
        report["left_behind"],
        Value::Array(vec![]),
        "a failover keeps its stack"
    );
}

#[test]
fn failover_on_the_simulator_with_a_fresh_ami_and_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = failover_scenario(dir.path(), "2h");
    let state = dir.path().join("state");
    let base = [
        "run",
        "workflows/dr-failover.yaml",
        "--scenario",
        scenario.to_str().unwrap(),
        "-i",
        "instance_id=i-0123456789abcdef0",
        "--output",
        "plain",
    ];
    // A max_age that is no duration: refused before any call (exit 2).
    let mut args = base.to_vec();
    args.extend_from_slice(&["-i", "max_age=yesterday"]);
    let out = drflow(&state, &args);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert_eq!(sim_calls(&state, "GetParameter"), 0);
    // Fresh (2h < 24h): auto-approved, launched, verified.
    let mut args = base.to_vec();
    args.push("--auto-approve");
    let out = drflow(&state, &args);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.lines().last().unwrap().starts_with("FAILOVER DONE"), "{stdout}");
    // A 1h limit makes the same AMI stale.
    let mut args = base.to_vec();
    args.extend_from_slice(&["-i", "max_age=1h", "--auto-approve"]);
    let out = drflow(&state, &args);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("older than the 1h allowed"), "{stderr}");
}

// --- The failover runbook against the emulator (the AWS SDK backend, over the wire) --------------------------------

mod emulator {
    use super::*;
    use crate::common::emulator::World;

    const DR: &str = "us-west-2";

    /// The emulator with the protected instance in us-east-1, and its DR AMI published in us-west-2 (a copy made
    /// just now, or dated `age_seconds` ago).
    fn published(age_seconds: Option<u64>) -> (World, String) {
        let w = World::new(&["us-east-1", DR], &["dr-failover.yaml"]);
        w.emu.config(0, 1);
        let ami = w.publish_dr_ami(DR, age_seconds);
        (w, ami)
    }

    fn run(w: &World, extra: &[&str]) -> (Option<i32>, String, String) {
        let wf = w.workflow_named("dr-failover.yaml");
        let instance = format!("instance_id={}", w.instance);
        let mut args = vec!["run", wf.as_str(), "-i", instance.as_str(), "--output", "plain"];
        args.extend_from_slice(extra);
        let out = w.emu.drflow(&w.state(), &args);
        let (o, e) = text(&out);
        (out.status.code(), o, e)
    }

    fn calls_in(w: &World, operation: &str) -> usize {
        w.emu.calls(operation).iter().filter(|c| c["region"] == DR).count()
    }

    #[test]
    fn failover_waits_for_approval_then_launches_the_published_ami_and_reports_the_rto() {
        let (w, ami) = published(None);
        let (code, out, err) = run(&w, &[]);
        assert_eq!(code, Some(7), "{out}\n{err}");
        let id = waiting_run(&out);
        assert_eq!(calls_in(&w, "CreateStack"), 0, "nothing launched before the approval");
        let journal = read_journal(&w.state(), &id);
        let fresh = journal
            .iter()
            .find(|e| e["type"] == "step_succeeded" && e["step"] == "freshness")
            .unwrap();
        assert_eq!(fresh["outputs"]["image_id"], ami.as_str());
        assert_eq!(fresh["outputs"]["fresh"], true);
        assert!(fresh["outputs"]["age_seconds"].as_u64().unwrap() < 600, "{fresh}");
        let plan = of_type(&journal, "approval_requested")[0]["plan"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            plan.contains(&format!("stack_name                  = drflow-dr-{}", w.instance)),
            "{plan}"
        );
        assert!(
            plan.contains(&format!("image_id              = {ami}")),
            "known outputs are resolved: {plan}"
        );

        // Approved from another process (another shell): the emulator's caller identity is journaled.
        let out = w.emu.drflow(&w.state(), &["approve", &id, "--output", "plain"]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        let journal = read_journal(&w.state(), &id);
        let d = of_type(&journal, "approval_decided")[0];
        assert_eq!(d["aws_account"], "123456789012");
        assert!(d["aws_arn"].as_str().unwrap().starts_with("arn:aws:"), "{d}");
        assert_eq!(calls_in(&w, "CreateStack"), 1);
        assert_eq!(
            w.emu.calls("GetCallerIdentity").len(),
            2,
            "once per process that could be asked"
        );
        let verdict = stdout.lines().last().unwrap();
        assert!(
            verdict.starts_with(&format!("FAILOVER DONE dr-failover run={id} rto=")),
            "{verdict}"
        );
        // The DR instance runs the published AMI, and stays (no teardown).
        let verified = journal
            .iter()
            .find(|e| e["type"] == "step_succeeded" && e["step"] == "verify")
            .unwrap();
        assert_eq!(verified["outputs"]["image_id"], ami.as_str());
        assert_eq!(w.emu.calls("DeleteStack").len(), 0);
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(w.state().join("runs").join(&id).join("report.json")).unwrap(),
        )
        .unwrap();
        assert!(
            report["rehearsal"]["rto_ms"].as_i64().unwrap() > 0,
            "{}",
            report["rehearsal"]
        );
        assert_eq!(report["rehearsal"]["failover"], true);
        assert!(stdout.contains("Still to do, by a person:"), "{stdout}");
    }

    #[test]
    fn failover_refuses_a_stale_ami_and_takes_it_when_overridden() {
        let (w, ami) = published(Some(3 * 86_400));
        let (code, out, err) = run(&w, &["--auto-approve"]);
        assert_eq!(code, Some(1), "{out}\n{err}");
        assert!(
            err.contains(&format!("names {ami}, created 3d"))
                && err.contains("ago: older than the 1d allowed; refusing it"),
            "{err}"
        );
        assert_eq!(calls_in(&w, "CreateStack"), 0);
        assert_eq!(w.emu.calls("GetCallerIdentity").len(), 0, "nobody was asked");
        let (code, out, err) = run(&w, &["--auto-approve", "-i", "allow_stale=true"]);
        assert_eq!(code, Some(0), "{out}\n{err}");
        assert!(out.lines().last().unwrap().starts_with("FAILOVER DONE"), "{out}");
        assert_eq!(calls_in(&w, "CreateStack"), 1);
    }
}
