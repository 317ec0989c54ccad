//! DR rehearsals (workflows/dr-rehearsal.yaml) on the simulated AWS, on tokio's paused clock: the passing path, a
//! DR instance whose status checks fail, a teardown that fails, `ec2.verify_instance` on its own, and the report
//! built from each run's journal. The last tests run the real binary (`drflow run`, `drflow report`).

mod common;

use common::*;
use drflow::cloud::sim::Sim;
use drflow::engine::journal::RunStatus;
use drflow::engine::{Outcome, StepStatus};
use drflow::report::{self, Report};
use serde_json::Value;

const DR: &str = "us-west-2";
const STACK: &str = "drflow-rehearsal-i-0123456789abcdef0";

fn outputs(o: &Outcome, step: &str) -> serde_json::Map<String, Value> {
    match o.state.status(step) {
        Some(StepStatus::Succeeded(out)) => out.clone(),
        other => panic!("step {step} is {other:?}"),
    }
}

fn report_of(o: &Outcome, wf: &drflow::workflow::Workflow) -> Report {
    report::build(&o.state, &journal(o), Some(wf))
}

fn kinds(list: &[report::model::Resource], kind: &str) -> Vec<String> {
    list.iter().filter(|r| r.kind == kind).map(|r| r.id.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_passing_rehearsal_verifies_the_dr_instance_then_deletes_the_stack() {
    let wf = load("workflows/dr-rehearsal.yaml");
    let sim = Sim::new(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);

    // The DR instance ran the DR AMI and passed its checks.
    let dr_ami = outputs(&o, "dr_ami")["image_id"].as_str().unwrap().to_string();
    let verify = outputs(&o, "verify");
    let instance = verify["instance_id"].as_str().unwrap().to_string();
    assert_eq!(verify["image_id"], dr_ami.as_str());
    assert_eq!(verify["state"], "running");
    assert_eq!(
        (verify["system_status"].as_str(), verify["instance_status"].as_str()),
        (Some("ok"), Some("ok"))
    );
    assert_eq!(outputs(&o, "launch")["outputs"]["InstanceId"], instance.as_str());
    assert!(verify["running_at"].as_i64().unwrap() * 1000 >= o.state.started_ms);

    // Then the stack was deleted: it is gone and its instance terminated.
    let cloud = sim.cloud();
    assert_eq!(count_calls(&sim, "CreateStack"), 1);
    assert_eq!(count_calls(&sim, "DeleteStack"), 1);
    assert!(cloud.cloudformation.describe_stack(DR, STACK).await.unwrap().is_none());
    let found = cloud
        .ec2
        .describe_instances(DR, std::slice::from_ref(&instance))
        .await
        .unwrap();
    assert_eq!(found[0].state, "terminated");
    assert_eq!(outputs(&o, "teardown")["deleted"], true);

    // The report: every field a person and a dashboard need.
    let r = report_of(&o, &wf);
    assert_eq!(r.status, "succeeded");
    let h = r.rehearsal.as_ref().expect("a rehearsal");
    assert_eq!(h.verdict, "passed");
    let verified = o.state.steps["verify"].finished_ms.unwrap();
    assert_eq!(h.rto_ms, Some(verified - o.state.started_ms));
    // Backup 10m, copy 14m, stack 2m, checks 2m: a realistic simulated RTO.
    assert!((20 * 60_000..40 * 60_000).contains(&h.rto_ms.unwrap()), "{h:?}");
    let created = outputs(&o, "dr_ami")["creation_date"].as_i64().unwrap() * 1000;
    let rpo = h.rpo_ms.unwrap();
    assert!(
        (verified - created - rpo).abs() <= 1000,
        "rpo {rpo} vs {}",
        verified - created
    );
    assert!(rpo > 0 && rpo < h.rto_ms.unwrap(), "{h:?}");
    assert_eq!(h.dr_ami.as_deref(), Some(dr_ami.as_str()));
    assert_eq!(h.dr_instance.as_deref(), Some(instance.as_str()));
    assert_eq!(h.dr_region.as_deref(), Some(DR));
    assert_eq!(h.stack.as_deref(), Some(STACK));
    let t = h.teardown.as_ref().unwrap();
    assert_eq!(
        (t.status.as_str(), t.deleted, t.stack.as_deref()),
        ("succeeded", Some(true), Some(STACK))
    );
    assert!(h.running_after_ms.unwrap() <= h.rto_ms.unwrap());

    // Per step: start, end, duration, attempts; in workflow order with `finally` last.
    let ids: Vec<&str> = r.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.first(), Some(&"backup"));
    assert_eq!(ids.last(), Some(&"teardown"));
    for s in &r.steps {
        assert_eq!(s.status, "succeeded", "{s:?}");
        assert!(
            s.started_ms.is_some() && s.ended_ms.is_some() && s.duration_ms.is_some(),
            "{s:?}"
        );
        assert!(s.action.is_none() || s.attempts >= 1, "{s:?}");
    }
    let wait_copy = r.steps.iter().find(|s| s.id == "wait_copy").unwrap();
    assert!(wait_copy.duration_ms.unwrap() >= 12 * 60_000);
    assert_eq!(r.steps.iter().find(|s| s.id == "teardown").unwrap().phase, "finally");
    assert_eq!(r.steps.iter().find(|s| s.id == "publish_dr").unwrap().depth, 1);

    // Created and deleted.
    assert_eq!(kinds(&r.created, "backup job").len(), 1);
    assert_eq!(kinds(&r.created, "copy job").len(), 1);
    let amis = kinds(&r.created, "AMI");
    assert!(amis.contains(&dr_ami) && amis.len() == 2, "{amis:?}");
    assert_eq!(kinds(&r.created, "CloudFormation stack"), [STACK]);
    assert_eq!(kinds(&r.created, "EC2 instance"), std::slice::from_ref(&instance));
    assert_eq!(kinds(&r.deleted, "CloudFormation stack"), [STACK]);
    assert_eq!(kinds(&r.deleted, "EC2 instance"), std::slice::from_ref(&instance));
    assert!(r.left_behind.is_empty());
    assert!(r.failure.is_none());
    let rto = h.rto.clone().unwrap();
    assert_eq!(
        r.summary,
        format!(
            "REHEARSAL PASSED dr-rehearsal run={} rto={rto} rpo={}",
            r.run_id,
            h.rpo.clone().unwrap()
        )
    );

    // Written beside the journal, in three formats.
    let run_dir = o.journal.parent().unwrap();
    let files = report::write_files(run_dir, &r).unwrap();
    assert_eq!(files.len(), 3);
    let json: Report = serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json, r);
    let md = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(
        md.contains("REHEARSAL PASSED") && md.contains(&format!("**{rto}**")) && md.contains("## Timeline"),
        "{md}"
    );
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(html.contains("<svg class=\"timeline\"") && html.contains("rect class=\"bar succeeded\""));
    assert!(
        !html.contains("src=") && !html.contains("href=") && !html.contains("@import"),
        "no external assets"
    );
    assert!(!html.contains("<script"), "no script");
}

#[tokio::test(start_paused = true)]
async fn impaired_status_checks_fail_the_rehearsal_and_the_stack_is_still_deleted() {
    let wf = load("workflows/dr-rehearsal.yaml");
    let sim = Sim::new(scenario("impair_instances: [{nth: 1, check: instance}]"));
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    let err = o.error.clone().unwrap();
    assert!(err.contains("verify") && err.contains("impaired"), "{err}");
    // Failed at once: one attempt, not retried until the timeout.
    assert_eq!(o.state.steps["verify"].attempts, 1);
    // Teardown ran anyway.
    assert_eq!(count_calls(&sim, "DeleteStack"), 1);
    assert!(
        sim.cloud()
            .cloudformation
            .describe_stack(DR, STACK)
            .await
            .unwrap()
            .is_none()
    );

    let r = report_of(&o, &wf);
    let h = r.rehearsal.as_ref().unwrap();
    assert_eq!(h.verdict, "failed");
    assert_eq!(h.rto_ms, None, "never verified");
    assert!(h.rpo_ms.is_some(), "the AMI's age at the end of the run");
    let f = r.failure.as_ref().unwrap();
    assert_eq!((f.step.as_str(), f.code.as_str()), ("verify", "StatusCheckImpaired"));
    assert!(f.message.contains("instance impaired"), "{}", f.message);
    assert_eq!(h.teardown.as_ref().unwrap().status, "succeeded");
    assert!(r.left_behind.is_empty());
    assert!(
        r.summary.starts_with(&format!(
            "REHEARSAL FAILED dr-rehearsal run={} step=verify: instance i-",
            r.run_id
        )),
        "{}",
        r.summary
    );
    let md = drflow::report::markdown::render(&r);
    assert!(
        md.contains("## Why it failed") && md.contains("StatusCheckImpaired"),
        "{md}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_teardown_fails_the_run_and_names_what_is_left() {
    let wf = load("workflows/dr-rehearsal.yaml");
    let sim = Sim::new(scenario(
        "faults: [{operation: 'cloudformation:DeleteStack', count: 100, error: {code: AccessDenied, message: not allowed}}]",
    ));
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    assert!(o.error.as_deref().unwrap().contains("teardown"), "{:?}", o.error);
    let instance = outputs(&o, "verify")["instance_id"].as_str().unwrap().to_string();
    // Still there.
    assert!(
        sim.cloud()
            .cloudformation
            .describe_stack(DR, STACK)
            .await
            .unwrap()
            .is_some()
    );

    let r = report_of(&o, &wf);
    let h = r.rehearsal.as_ref().unwrap();
    assert_eq!(h.verdict, "failed");
    assert!(
        h.rto_ms.is_some(),
        "the instance was verified before the teardown failed"
    );
    assert_eq!(r.failure.as_ref().unwrap().step, "teardown");
    assert_eq!(kinds(&r.left_behind, "CloudFormation stack"), [STACK]);
    assert_eq!(kinds(&r.left_behind, "EC2 instance"), [instance]);
    assert_eq!(r.left_behind[0].region.as_deref(), Some(DR));
    assert!(
        r.summary.contains(&format!("LEFT BEHIND: stack {STACK} in {DR}")),
        "{}",
        r.summary
    );
    let html = drflow::report::html::render(&r);
    assert!(
        html.contains("Left behind") && html.contains("delete-stack --region us-west-2"),
        "no loud box"
    );
}

/// A workflow with one `ec2.verify_instance` step against the default instance (which runs the base AMI).
fn verify_workflow(dir: &std::path::Path, image: &str, checks: bool) -> drflow::workflow::Workflow {
    let path = dir.join("verify.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: verify\nregions: {{dr: {DR}}}\nsteps:\n  - id: verify\n    action: ec2.verify_instance\n    region: dr\n    timeout: 10m\n    poll: {{interval: 10s, backoff_rate: 1.0}}\n    with: {{instance_id: {INSTANCE}, image_id: {image}, require_status_checks: {checks}}}\n"
        ),
    )
    .unwrap();
    drflow::workflow::load(&path).unwrap()
}

async fn base_ami(sim: &Sim) -> String {
    sim.cloud()
        .ec2
        .describe_instances(DR, &[INSTANCE.to_string()])
        .await
        .unwrap()[0]
        .image_id
        .clone()
}

#[tokio::test(start_paused = true)]
async fn verify_instance_fails_at_once_on_another_ami_or_a_stopped_instance() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::new(Default::default());
    let base = base_ami(&sim).await;

    let ok = run(
        &verify_workflow(dir.path(), &base, true),
        &sim,
        &dir.path().join("a"),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(ok.status, RunStatus::Succeeded, "{:?}", ok.error);
    assert_eq!(outputs(&ok, "verify")["instance_status"], "ok");

    let wrong = run(
        &verify_workflow(dir.path(), "ami-0aaaaaaaaaaaaaaaa", true),
        &sim,
        &dir.path().join("b"),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(wrong.status, RunStatus::Failed);
    assert!(
        wrong
            .error
            .as_deref()
            .unwrap()
            .contains(&format!("runs {base}, not the expected AMI")),
        "{:?}",
        wrong.error
    );
    assert_eq!(wrong.state.steps["verify"].attempts, 1);

    let stopped = Sim::new(scenario(
        "instances: [{id: i-0123456789abcdef0, region: us-west-2, state: stopped}]",
    ));
    let base = base_ami(&stopped).await;
    let o = run(
        &verify_workflow(dir.path(), &base, true),
        &stopped,
        &dir.path().join("c"),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    assert!(o.error.as_deref().unwrap().contains("is stopped"), "{:?}", o.error);
}

#[tokio::test(start_paused = true)]
async fn verify_instance_waits_for_initializing_checks_and_can_skip_them() {
    let dir = tempfile::tempdir().unwrap();
    // A stack-launched instance: its checks are `initializing` for 2 minutes.
    let wf = load("workflows/dr-rehearsal.yaml");
    let sim = Sim::new(Default::default());
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    let polled: Vec<String> = journal(&o)
        .iter()
        .filter_map(|e| match &e.event {
            drflow::engine::journal::Event::Polled { step, status, .. } if step == "verify" => Some(status.clone()),
            _ => None,
        })
        .collect();
    assert!(polled.iter().any(|s| s.contains("initializing")), "{polled:?}");

    // Without status checks: no DescribeInstanceStatus at all.
    let sim = Sim::new(Default::default());
    let base = base_ami(&sim).await;
    let o = run(
        &verify_workflow(dir.path(), &base, false),
        &sim,
        &dir.path().join("x"),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    assert_eq!(outputs(&o, "verify")["system_status"], "not-checked");
    assert_eq!(count_calls(&sim, "DescribeInstanceStatus"), 0);
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

#[test]
fn the_binary_ends_with_the_verdict_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = drflow(
        &state,
        &[
            "run",
            "workflows/dr-rehearsal.yaml",
            "--simulate",
            "-i",
            &format!("instance_id={INSTANCE}"),
            "--output",
            "plain",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let verdict = last_line(&stdout);
    let re = regex::Regex::new(r"^REHEARSAL PASSED dr-rehearsal run=(\S+) rto=(\d+m\d*s?|\d+h\S*) rpo=(\S+)$").unwrap();
    let caps = re.captures(verdict).unwrap_or_else(|| panic!("last line: {verdict}"));
    let run_id = caps[1].to_string();
    let run_dir = state.join("runs").join(&run_id);
    for f in ["report.json", "report.md", "report.html"] {
        assert!(run_dir.join(f).exists(), "{f}");
    }
    assert!(
        stdout.contains(&format!("report: {}", run_dir.join("report.html").display())),
        "{stdout}"
    );

    // `drflow report` prints or writes it, in the format asked (or the --out extension's).
    let out = drflow(&state, &["report", &run_id, "--format", "json"]);
    let r: Report = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(r.rehearsal.unwrap().rto.unwrap(), caps[2]);
    let md = drflow(&state, &["report", &run_id]);
    assert!(String::from_utf8_lossy(&md.stdout).starts_with("# Rehearsal report: dr-rehearsal — PASSED"));
    let html = dir.path().join("r.html");
    let out = drflow(&state, &["report", &run_id, "--out", html.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(std::fs::read_to_string(&html).unwrap().starts_with("<!DOCTYPE html>"));
    let out = drflow(&state, &["report", "nope"]);
    assert_eq!(out.status.code(), Some(5), "an unknown run");
}

#[test]
fn a_failing_rehearsal_exits_1_and_says_why_on_its_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let scenario = dir.path().join("impair.yaml");
    std::fs::write(&scenario, "impair_instances: [{nth: 1, check: system}]\n").unwrap();
    let out = drflow(
        &state,
        &[
            "run",
            "workflows/dr-rehearsal.yaml",
            "--scenario",
            scenario.to_str().unwrap(),
            "-i",
            &format!("instance_id={INSTANCE}"),
            "--output",
            "plain",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let verdict = last_line(&stdout);
    assert!(verdict.starts_with("REHEARSAL FAILED dr-rehearsal run="), "{verdict}");
    assert!(
        verdict.contains(" step=verify: ") && verdict.contains("system impaired"),
        "{verdict}"
    );
    assert!(stderr.contains("error: run ") && stderr.contains("failed"), "{stderr}");
    // The teardown still ran.
    assert!(stdout.contains("✓ teardown"), "{stdout}");
}

#[test]
fn a_crashed_rehearsal_resumes_and_its_report_measures_the_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // The process dies (abort, like kill -9) while the verify step polls the status checks.
    let scenario = dir.path().join("crash.yaml");
    std::fs::write(
        &scenario,
        "faults: [{operation: 'ec2:DescribeInstanceStatus', nth: 2, crash: true}]\n",
    )
    .unwrap();
    let scenario = scenario.to_str().unwrap();
    let input = format!("instance_id={INSTANCE}");
    let args = [
        "run",
        "workflows/dr-rehearsal.yaml",
        "--scenario",
        scenario,
        "-i",
        &input,
        "--output",
        "plain",
    ];
    let out = drflow(&state, &args);
    assert_ne!(out.status.code(), Some(0));
    let run_id = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let run_id = run_id.to_str().unwrap().to_string();
    let out = drflow(&state, &["report", &run_id, "--format", "json"]);
    let r: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r.status.as_str(), r.rehearsal.unwrap().verdict.as_str()),
        ("unfinished", "unfinished")
    );
    assert!(
        r.summary.contains("still up until the teardown runs: stack"),
        "{}",
        r.summary
    );

    let out = drflow(
        &state,
        &["resume", &run_id, "--scenario", scenario, "--output", "plain"],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(last_line(&stdout).starts_with(&format!("REHEARSAL PASSED dr-rehearsal run={run_id} rto=")));
    let r: Report =
        serde_json::from_str(&std::fs::read_to_string(state.join("runs").join(&run_id).join("report.json")).unwrap())
            .unwrap();
    assert_eq!(r.resumes, 1);
    let h = r.rehearsal.unwrap();
    // The simulated clock restarted at the wall time on resume; the report still measures the whole rehearsal.
    assert!((20 * 60_000..40 * 60_000).contains(&h.rto_ms.unwrap()), "{h:?}");
    assert!(h.rpo_ms.unwrap() > 60_000, "{h:?}");
    let mut last_end = 0;
    for s in r.steps.iter().filter(|s| s.phase == "steps" && s.depth == 0) {
        assert!(
            s.started_ms.unwrap() >= last_end - 1,
            "{} starts before the step before it ended",
            s.id
        );
        last_end = s.ended_ms.unwrap();
    }
}
