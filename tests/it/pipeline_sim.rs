//! The DR pipeline (workflows/dr-ami.yaml) on the simulated AWS, on tokio's paused clock.

use crate::common::*;
use drflow::cloud::sim::Sim;
use drflow::engine::journal::{Event, RunStatus};
use drflow::engine::{self, Clock, Quiet, StepStatus};
use serde_json::Value;

fn output(o: &drflow::engine::Outcome, step: &str, name: &str) -> String {
    match o.state.status(step) {
        Some(StepStatus::Succeeded(out)) => out[name].as_str().expect("string output").to_string(),
        other => panic!("step {step} is {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn publishes_an_available_ami_in_each_region() {
    let wf = load("workflows/dr-ami.yaml");
    let sim = Sim::new(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);

    let cloud = sim.cloud();
    let name = format!("/drflow/{INSTANCE}/ami");
    for (region, step) in [("us-east-1", "primary_ami"), ("us-west-2", "dr_ami")] {
        let ami = output(&o, step, "image_id");
        let p = cloud
            .ssm
            .get_parameter(region, &name)
            .await
            .unwrap()
            .expect("parameter exists");
        assert_eq!(p.value, ami, "{region}");
        assert_eq!(p.data_type, "aws:ec2:image");
        let images = cloud
            .ec2
            .describe_images(region, std::slice::from_ref(&ami))
            .await
            .unwrap();
        assert_eq!(images.len(), 1, "{ami} exists in {region}");
        assert_eq!(images[0].state, "available");
    }
    assert_ne!(output(&o, "primary_ami", "image_id"), output(&o, "dr_ami", "image_id"));
    assert_eq!(count_calls(&sim, "StartBackupJob"), 1);
    assert_eq!(count_calls(&sim, "StartCopyJob"), 1);
    // The deploy step is off by default.
    assert!(matches!(o.state.status("deploy"), Some(StepStatus::Skipped(_))));
    // Simulated jobs took realistic minutes.
    assert!(o.state.last_ms - o.state.started_ms > 15 * 60 * 1000);
}

#[tokio::test(start_paused = true)]
async fn a_second_run_overwrites_in_place_with_a_new_version() {
    let wf = load("workflows/dr-ami.yaml");
    let sim = Sim::new(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let first = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    let second = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    let p = sim
        .cloud()
        .ssm
        .get_parameter("us-west-2", &format!("/drflow/{INSTANCE}/ami"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.version, 2);
    assert_eq!(p.value, output(&second, "dr_ami", "image_id"));
    assert_eq!(
        output(&second, "publish_dr", "previous_value"),
        output(&first, "dr_ami", "image_id")
    );
}

#[tokio::test(start_paused = true)]
async fn throttled_polls_are_retried_and_journaled() {
    let wf = load("workflows/dr-ami.yaml");
    let sim = Sim::new(scenario(
        "faults:\n  - operation: backup:DescribeBackupJob\n    nth: 2\n    count: 2\n    error: {code: ThrottlingException, message: Rate exceeded}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let entries = journal(&o);
    let failed: Vec<_> = events_of(&entries, "wait_backup")
        .into_iter()
        .filter_map(|e| match e {
            Event::AttemptFailed {
                attempt,
                error,
                retry_in_ms,
                ..
            } => Some((*attempt, error.code.clone(), *retry_in_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|(_, code, retry)| code == "ThrottlingException" && retry.is_some())
    );
    assert_eq!(failed[0].0, 1);
    assert_eq!(failed[1].0, 2);
    assert_eq!(count_calls(&sim, "StartBackupJob"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_backup_job_fails_the_run_with_the_aws_message_and_writes_nothing() {
    let wf = load("workflows/dr-ami.yaml");
    let sim = Sim::new(scenario(
        "fail_jobs:\n  - kind: backup\n    message: \"Insufficient privileges to perform this action.\"\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    let err = o.error.clone().unwrap();
    assert!(
        err.contains("wait_backup") && err.contains("Insufficient privileges"),
        "{err}"
    );
    assert!(err.contains("FAILED"), "{err}");
    // A job failure is final: one attempt.
    assert_eq!(o.state.steps["wait_backup"].attempts, 1);
    for region in ["us-east-1", "us-west-2"] {
        let p = sim
            .cloud()
            .ssm
            .get_parameter(region, &format!("/drflow/{INSTANCE}/ami"))
            .await
            .unwrap();
        assert!(p.is_none(), "no parameter in {region}");
    }
    assert_eq!(count_calls(&sim, "PutParameter"), 0);
    assert_eq!(count_calls(&sim, "StartCopyJob"), 0);
}

#[tokio::test(start_paused = true)]
async fn access_denied_fails_after_one_attempt() {
    let wf = load("workflows/dr-ami.yaml");
    let sim = Sim::new(scenario(
        "faults:\n  - operation: backup:StartBackupJob\n    error: {code: AccessDeniedException, message: \"User is not authorized to perform: backup:StartBackupJob\"}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    assert_eq!(count_calls(&sim, "StartBackupJob"), 1);
    assert_eq!(o.state.steps["backup"].attempts, 1);
    let err = o.error.unwrap();
    assert!(err.contains("backup:StartBackupJob in us-east-1 was denied"), "{err}");
    assert_eq!(count_calls(&sim, "PutParameter"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_missing_instance_is_a_clear_error() {
    let wf = load("workflows/dr-ami.yaml");
    let sim = Sim::new(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", "i-0fffffffffffffff0")])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    let err = o.error.unwrap();
    assert!(err.contains("i-0fffffffffffffff0"), "{err}");
    assert_eq!(count_calls(&sim, "PutParameter"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_older_ami_in_the_parameter_is_replaced() {
    let wf = load("workflows/dr-ami.yaml");
    // The DR parameter holds an AMI from before this run (scenario images exist from the start).
    let sim = Sim::new(scenario(&format!(
        "images:\n  - {{id: ami-0aaaaaaaaaaaaaaaa, region: us-west-2}}\nparameters:\n  - {{name: /drflow/{INSTANCE}/ami, region: us-west-2, value: ami-0aaaaaaaaaaaaaaaa, data_type: \"aws:ec2:image\"}}\n"
    )));
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(
        o.status,
        RunStatus::Succeeded,
        "an older AMI is replaced: {:?}",
        o.error
    );
    assert_eq!(output(&o, "publish_dr", "previous_value"), "ami-0aaaaaaaaaaaaaaaa");
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_run_resumes_without_a_second_job() {
    let wf = load("workflows/dr-ami.yaml");
    let sim = Sim::new(Default::default());
    let dir = tempfile::tempdir().unwrap();
    // Kill the run 15 simulated minutes in: the backup is done, the copy job is running.
    tokio::select! {
        _ = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]) => panic!("the run should still be waiting"),
        _ = tokio::time::sleep(std::time::Duration::from_secs(15 * 60)) => {}
    }
    let runs = engine::list_runs(dir.path()).unwrap();
    assert_eq!(runs.len(), 1);
    let crashed = &runs[0];
    assert!(crashed.finished.is_none());
    let copy_job = crashed.steps["copy"].recorded["job_id"].clone();
    assert!(matches!(crashed.status("wait_copy"), Some(StepStatus::Running)));

    let o = engine::resume(
        &wf,
        sim.cloud(),
        dir.path(),
        &crashed.run_id,
        false,
        &Quiet,
        Clock::start(),
    )
    .await
    .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    assert_eq!(count_calls(&sim, "StartBackupJob"), 1);
    assert_eq!(count_calls(&sim, "StartCopyJob"), 1);
    match o.state.status("copy") {
        Some(StepStatus::Succeeded(out)) => assert_eq!(out["job_id"], copy_job),
        other => panic!("{other:?}"),
    }
    let p = sim
        .cloud()
        .ssm
        .get_parameter("us-west-2", &format!("/drflow/{INSTANCE}/ami"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Value::String(p.value), Value::String(output(&o, "dr_ami", "image_id")));
}

#[tokio::test(start_paused = true)]
async fn a_second_run_for_the_same_instance_is_locked_out() {
    let wf = load("workflows/dr-ami.yaml");
    let sim = Sim::new(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let first = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]);
    let second = async {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await
    };
    let (a, b) = tokio::join!(first, second);
    assert_eq!(a.unwrap().status, RunStatus::Succeeded);
    let err = b.expect_err("the second run is refused").to_string();
    assert!(
        err.contains("another run holds the lock") && err.contains(INSTANCE),
        "{err}"
    );
    assert_eq!(count_calls(&sim, "StartBackupJob"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_dr_stack_runs_the_published_ami_and_follows_a_new_one() {
    let wf = load("workflows/dr-ami.yaml");
    let sim = Sim::new(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let inputs = [("instance_id", INSTANCE), ("deploy_stack", "true")];
    let mut seen = Vec::new();
    for expected_operation in ["create", "update"] {
        let o = run(&wf, &sim, dir.path(), &inputs).await.unwrap();
        assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
        let dr_ami = output(&o, "dr_ami", "image_id");
        let Some(StepStatus::Succeeded(out)) = o.state.status("deploy") else {
            panic!()
        };
        assert_eq!(out["operation"], expected_operation);
        let instance = out["outputs"]["InstanceId"].as_str().unwrap().to_string();
        let found = sim
            .cloud()
            .ec2
            .describe_instances("us-west-2", std::slice::from_ref(&instance))
            .await
            .unwrap();
        assert_eq!(found[0].image_id, dr_ami, "the DR instance runs the DR AMI");
        assert_eq!(found[0].state, "running");
        seen.push(dr_ami);
    }
    assert_ne!(seen[0], seen[1], "the second run published and deployed a new AMI");
}

#[tokio::test(start_paused = true)]
async fn the_ec2_path_publishes_copies_made_with_copy_image() {
    let wf = load("workflows/dr-ami-ec2.yaml");
    let sim = Sim::new(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    assert_eq!(count_calls(&sim, "CreateImage"), 1);
    assert_eq!(count_calls(&sim, "CopyImage"), 1);
    assert_eq!(count_calls(&sim, "StartBackupJob"), 0);
    // CopyImage is called in the destination region.
    let copy = sim.calls().into_iter().find(|c| c.operation == "CopyImage").unwrap();
    assert_eq!(copy.region, "us-west-2");
    for (region, step) in [("us-east-1", "primary_ami"), ("us-west-2", "dr_ami")] {
        let p = sim
            .cloud()
            .ssm
            .get_parameter(region, &format!("/drflow/{INSTANCE}/ami"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.value, output(&o, step, "image_id"));
    }
}

#[tokio::test(start_paused = true)]
async fn the_backup_role_is_the_callers_accounts_and_no_placeholder() {
    for wf in [
        "workflows/dr-ami.yaml",
        "workflows/dr-rehearsal.yaml",
        "workflows/dr-ami-ec2.yaml",
    ] {
        let text = std::fs::read_to_string(repo(wf)).unwrap();
        assert!(!text.contains("123456789012"), "{wf} names a placeholder account");
    }
    let wf = load("workflows/dr-ami.yaml");
    let sim = Sim::new(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    // Asked once, before the first step, and journaled with the run.
    assert_eq!(o.state.account.as_deref(), Some("123456789012"));
    assert_eq!(count_calls(&sim, "GetCallerIdentity"), 1);
    let started = journal(&o)
        .into_iter()
        .find_map(|e| match e.event {
            Event::StepStarted { step, inputs, .. } if step == "backup" => inputs,
            _ => None,
        })
        .unwrap();
    assert_eq!(
        started["iam_role_arn"],
        "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole"
    );
    // Another role of the same account, by name.
    let o = run(
        &wf,
        &sim,
        dir.path(),
        &[("instance_id", INSTANCE), ("backup_role", "drflow-backup")],
    )
    .await
    .unwrap();
    let started = journal(&o)
        .into_iter()
        .find_map(|e| match e.event {
            Event::StepStarted { step, inputs, .. } if step == "copy" => inputs,
            _ => None,
        })
        .unwrap();
    assert_eq!(started["iam_role_arn"], "arn:aws:iam::123456789012:role/drflow-backup");
}
