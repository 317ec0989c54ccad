//! Retention on the AWS Backup path (every recovery point drflow makes carries a lifecycle) and notifications
//! (`sns.publish`, a schedule entry's `notify`), on the simulator and through the real binary.

use std::path::Path;

use crate::common::*;
use drflow::engine::StepStatus;
use drflow::engine::journal::RunStatus;
use serde_json::Value;

const TOPIC: &str = "arn:aws:sns:us-west-2:123456789012:drflow-alerts";

/// The jobs of `kind` (`backup_jobs`, `copy_jobs`) in a region of the saved world.
fn jobs(w: &Value, region: &str, kind: &str) -> Vec<Value> {
    w["regions"][region][kind]
        .as_object()
        .unwrap()
        .values()
        .cloned()
        .collect()
}

/// Messages published to a simulated topic.
fn messages(w: &Value, region: &str, topic: &str) -> Vec<Value> {
    w["regions"][region]["topics"][topic]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn every_recovery_point_carries_its_lifecycle_primary_shorter_than_dr() {
    let wf = load("workflows/dr-ami.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), "{}");
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let w = world(dir.path());
    let backup = jobs(&w, "us-east-1", "backup_jobs");
    let copy = jobs(&w, "us-east-1", "copy_jobs");
    assert_eq!(backup[0]["lifecycle"]["delete_after_days"], 7);
    assert_eq!(copy[0]["lifecycle"]["delete_after_days"], 35);
    assert_eq!(backup[0]["lifecycle"]["move_to_cold_storage_after_days"], Value::Null);

    // Changed by input, for one run.
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), "{}");
    let o = run(
        &wf,
        &sim,
        dir.path(),
        &[
            ("instance_id", INSTANCE),
            ("primary_retention_days", "2"),
            ("dr_retention_days", "90"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let w = world(dir.path());
    assert_eq!(
        jobs(&w, "us-east-1", "backup_jobs")[0]["lifecycle"]["delete_after_days"],
        2
    );
    assert_eq!(
        jobs(&w, "us-east-1", "copy_jobs")[0]["lifecycle"]["delete_after_days"],
        90
    );
}

fn backup_step(extra: &str) -> String {
    format!(
        "version: 1\nname: t\nregions: {{primary: us-east-1}}\nsteps:\n  - id: backup\n    action: backup.start_backup_job\n    region: primary\n    with:\n      instance_id: {INSTANCE}\n      vault: Default\n      iam_role_arn: arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole\n{extra}"
    )
}

#[tokio::test(start_paused = true)]
async fn backup_options_reach_the_backup_job_and_bad_ones_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wf = parse_at(
        &dir.path().join("t.yaml"),
        &backup_step("      backup_options: {WindowsVSS: enabled}\n"),
    );
    let sim = persistent(dir.path(), "{}");
    let o = run(&wf, &sim, dir.path(), &[]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let w = world(dir.path());
    assert_eq!(
        jobs(&w, "us-east-1", "backup_jobs")[0]["backup_options"]["WindowsVSS"],
        "enabled"
    );

    let dir = tempfile::tempdir().unwrap();
    let wf = parse_at(
        &dir.path().join("t.yaml"),
        &backup_step("      backup_options: {WindowsVSS: sometimes}\n"),
    );
    let sim = persistent(dir.path(), "{}");
    let o = run(&wf, &sim, dir.path(), &[]).await.unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    assert!(o.error.as_deref().unwrap().contains("WindowsVSS"), "{:?}", o.error);
    assert_eq!(count_calls(&sim, "StartBackupJob"), 0, "refused before the call");
}

/// `drflow validate` of the backup step with a lifecycle of (cold, delete) days: (exit code, stdout, stderr).
fn validate_lifecycle(dir: &Path, name: &str, cold: u32, delete: u32) -> (Option<i32>, String, String) {
    let file = dir.join(name);
    let lifecycle = format!("      move_to_cold_storage_after_days: {cold}\n      delete_after_days: {delete}\n");
    std::fs::write(&file, backup_step(&lifecycle)).unwrap();
    let out = drflow(dir, &["validate", file.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    (out.status.code(), stdout, stderr)
}

#[test]
fn a_lifecycle_aws_would_refuse_is_a_located_error_and_one_it_would_ignore_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = validate_lifecycle(dir.path(), "bad.yaml", 30, 60);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("drflow::workflow::bad_lifecycle"), "{err}");
    assert!(err.contains("bad.yaml:13:26"), "{err}");
    assert!(
        err.contains("`delete_after_days` (60) must be at least 90 days after `move_to_cold_storage_after_days` (30)"),
        "{err}"
    );
    // Valid for AWS, but AWS ignores cold storage for EC2: a warning, and the workflow is valid.
    let (code, stdout, err) = validate_lifecycle(dir.path(), "ignored.yaml", 30, 120);
    assert_eq!(code, Some(0), "{err}");
    assert!(stdout.contains("ok (1 steps, 1 warning(s))"), "{stdout}");
    assert!(
        err.contains("AWS Backup ignores `move_to_cold_storage_after_days` for EC2"),
        "{err}"
    );
}

#[test]
fn the_plan_says_when_each_recovery_point_expires() {
    let out = drflow(
        Path::new("/nonexistent-state"),
        &[
            "plan",
            "workflows/dr-ami.yaml",
            "-i",
            &format!("instance_id={INSTANCE}"),
            "-i",
            "dr_retention_days=60",
        ],
    );
    let (stdout, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let expires: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("expires"))
        .map(str::trim)
        .collect();
    assert_eq!(
        expires,
        [
            "expires   7 days after it is made (AWS Backup deletes it then)",
            "expires   60 days after it is made (AWS Backup deletes it then)"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_rehearsal_notifies_its_topic_once_and_keeps_its_own_error() {
    let wf = load("workflows/dr-rehearsal.yaml");
    let dir = tempfile::tempdir().unwrap();
    let scenario =
        "topics: [{name: drflow-alerts, region: us-west-2}]\nimpair_instances: [{nth: 1, check: instance}]\n";
    let sim = persistent(dir.path(), scenario);
    let o = run(
        &wf,
        &sim,
        dir.path(),
        &[("instance_id", INSTANCE), ("notify_topic_arn", TOPIC)],
    )
    .await
    .unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    assert!(o.error.as_deref().unwrap().contains("`verify`"), "{:?}", o.error);
    assert!(matches!(o.state.status("teardown"), Some(StepStatus::Succeeded(_))));
    let sent = messages(&world(dir.path()), "us-west-2", TOPIC);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["subject"], format!("drflow rehearsal FAILED: {INSTANCE}"));
    let body = sent[0]["message"].as_str().unwrap();
    assert!(body.contains("FAILED at step `verify`"), "{body}");
    assert!(body.contains("fails its status checks"), "{body}");
    assert!(body.contains(&format!("runs/{}/report.html", o.run_id)), "{body}");

    // A passing rehearsal says nothing.
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), "topics: [{name: drflow-alerts, region: us-west-2}]\n");
    let o = run(
        &wf,
        &sim,
        dir.path(),
        &[("instance_id", INSTANCE), ("notify_topic_arn", TOPIC)],
    )
    .await
    .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    assert!(matches!(o.state.status("notify"), Some(StepStatus::Skipped(_))));
    assert!(messages(&world(dir.path()), "us-west-2", TOPIC).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_notification_that_fails_changes_no_verdict() {
    let dir = tempfile::tempdir().unwrap();
    // No such topic: the publish fails (NotFound), is journaled, and the run still succeeds.
    let wf = parse_at(
        &dir.path().join("t.yaml"),
        &format!(
            "version: 1\nname: t\nregions: {{dr: us-west-2}}\nsteps:\n  - id: work\n    action: drflow.echo\n    with: {{value: 1}}\nfinally:\n  - id: tell\n    action: sns.publish\n    region: dr\n    with: {{topic_arn: \"{TOPIC}\"}}\n"
        ),
    );
    let sim = persistent(dir.path(), "{}");
    let o = run(&wf, &sim, dir.path(), &[]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let Some(StepStatus::Failed { error, route }) = o.state.status("tell") else {
        panic!("{:?}", o.state.status("tell"));
    };
    assert_eq!((error.code.as_str(), route.as_str()), ("NotFound", "continue"));

    // A failed rehearsal whose notification fails keeps the rehearsal's own error.
    let wf = load("workflows/dr-rehearsal.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), "impair_instances: [{nth: 1, check: instance}]\n");
    let o = run(
        &wf,
        &sim,
        dir.path(),
        &[("instance_id", INSTANCE), ("notify_topic_arn", TOPIC)],
    )
    .await
    .unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    assert!(
        o.error.as_deref().unwrap().starts_with("step `verify` failed"),
        "{:?}",
        o.error
    );
    assert!(matches!(o.state.status("notify"), Some(StepStatus::Failed { .. })));
}

#[test]
fn a_schedule_entry_notifies_its_topic_when_a_run_fails() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("impaired.yaml");
    std::fs::write(
        &scenario,
        "topics: [{name: drflow-alerts, region: us-west-2}]\nimpair_instances: [{nth: 1, check: instance}]\n",
    )
    .unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(
        &file,
        format!(
            "entries:\n  - name: nightly\n    workflow: {}\n    cron: \"*/2 * * * * *\"\n    inputs: {{instance_id: {INSTANCE}}}\n    scenario: {}\n    notify: {{topic_arn: \"{TOPIC}\"}}\n",
            repo("workflows/dr-rehearsal.yaml").display(),
            scenario.display()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_drflow"))
        .arg("--state-dir")
        .arg(&state)
        .args(["schedule", file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let done = line.contains(&format!("notified {TOPIC}"));
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains(&format!("[nightly] notified {TOPIC}"))),
        "{}",
        seen.join("\n")
    );
    let sent = messages(&world(&state), "us-west-2", TOPIC);
    // The rehearsal's own finally step has no topic (the input is empty): one message, the schedule's.
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["subject"], "drflow nightly: dr-rehearsal FAILED");
    let body = sent[0]["message"].as_str().unwrap();
    assert!(body.contains("REHEARSAL FAILED dr-rehearsal run="), "{body}");
    assert!(body.contains("error: step `verify` failed"), "{body}");
    assert!(body.contains("report.html"), "{body}");
}

#[test]
fn the_policy_grants_publish_on_the_topic_and_plan_check_looks_for_it() {
    let input = format!("instance_id={INSTANCE}");
    let topic = format!("notify_topic_arn={TOPIC}");
    let out = drflow(
        Path::new("/nonexistent-state"),
        &[
            "policy",
            "workflows/dr-rehearsal.yaml",
            "-i",
            &input,
            "-i",
            &topic,
            "--account",
            "123456789012",
        ],
    );
    let (stdout, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let policy: Value = serde_json::from_str(&stdout).unwrap();
    let publish = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"].as_array().unwrap().iter().any(|a| a == "sns:Publish"))
        .expect("a statement grants sns:Publish");
    assert_eq!(publish["Resource"], serde_json::json!([TOPIC]));

    // Preflight: the topic exists in the simulated account, or the check fails.
    let dir = tempfile::tempdir().unwrap();
    let with_topic = dir.path().join("topic.yaml");
    std::fs::write(&with_topic, "topics: [{name: drflow-alerts, region: us-west-2}]\n").unwrap();
    let check = |scenario: &Path, state: &Path| {
        let out = drflow(
            state,
            &[
                "plan",
                "workflows/dr-rehearsal.yaml",
                "-i",
                &input,
                "-i",
                &topic,
                "--check",
                "--scenario",
                scenario.to_str().unwrap(),
                "--output",
                "json",
            ],
        );
        let (stdout, _) = text(&out);
        let plan: Value = serde_json::from_str(&stdout).unwrap();
        let c = plan["checks"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "sns_topic")
            .cloned()
            .expect("an SNS topic check");
        (
            out.status.code(),
            c["status"].as_str().unwrap().to_string(),
            c["region"].clone(),
        )
    };
    let (code, status, region) = check(&with_topic, &dir.path().join("a"));
    assert_eq!(
        (code, status.as_str(), region),
        (Some(0), "ok", Value::from("us-west-2"))
    );
    let without = dir.path().join("none.yaml");
    std::fs::write(&without, "{}\n").unwrap();
    let (code, status, _) = check(&without, &dir.path().join("b"));
    assert_eq!((code, status.as_str()), (Some(1), "failed"));
}
