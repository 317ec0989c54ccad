//! The core under the faults real accounts produce every day, on the simulator (paused clock): waits that survive
//! sporadic throttling, start calls whose answers are lost, and the whole pipeline with the DR stack under both.

use crate::common::*;
use drflow::engine::journal::{Event, RunStatus};
use drflow::engine::{Outcome, StepStatus};
use serde_json::Value;

fn output(o: &Outcome, step: &str, name: &str) -> Value {
    match o.state.status(step) {
        Some(StepStatus::Succeeded(out)) => out[name].clone(),
        other => panic!("step {step} is {other:?}"),
    }
}

/// How many records of `kind` (`backup_jobs`, `copy_jobs`, `stacks`) the world holds, over all regions.
fn records(world: &Value, kind: &str) -> usize {
    world["regions"]
        .as_object()
        .unwrap()
        .values()
        .map(|r| match &r[kind] {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        })
        .sum()
}

/// (failed attempts, longest run of failures in a row) of a step, from the journal: a good poll ends a run.
fn failures(o: &Outcome, step: &str) -> (u32, u32) {
    let mut total = 0;
    let mut in_a_row = 0;
    let mut longest = 0;
    for e in journal(o).iter().filter(|e| e.event.step() == Some(step)) {
        match &e.event {
            Event::AttemptFailed { .. } => {
                total += 1;
                in_a_row += 1;
                longest = longest.max(in_a_row);
            }
            Event::Polled { .. } => in_a_row = 0,
            _ => {}
        }
    }
    (total, longest)
}

/// A 3½-hour backup (polled about 100 times at the shipped workflow's 2-minute cap, within its 4-hour timeout) with
/// `share` of its polls throttled. The folder holds the journal.
async fn long_wait(share: f64, seed: u64) -> (Outcome, tempfile::TempDir) {
    let scenario = format!(
        "seed: {seed}\ndurations: {{backup_running: 3h30m}}\nfaults:\n  - {{operation: \"backup:DescribeBackupJob\", probability: {share}, error: {{code: ThrottlingException, message: Rate exceeded}}}}\n"
    );
    let wf = load("workflows/dr-ami.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), &scenario);
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    (o, dir)
}

#[tokio::test(start_paused = true)]
async fn a_long_wait_with_a_tenth_of_its_polls_throttled_succeeds() {
    let (o, _dir) = long_wait(0.1, 11).await;
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let (total, longest) = failures(&o, "wait_backup");
    assert!(
        total >= 6,
        "{total} throttled polls: more than the budget of 5 retries in all"
    );
    assert!(longest <= 5, "{longest} in a row");
}

#[tokio::test(start_paused = true)]
async fn a_long_wait_with_a_third_of_its_polls_throttled_succeeds() {
    let (o, _dir) = long_wait(0.3, 12).await;
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let (total, longest) = failures(&o, "wait_backup");
    // The old budget (every failed poll of the whole wait) would have failed it several times over.
    assert!(total >= 20, "{total} throttled polls");
    assert!((1..=10).contains(&longest), "{longest} in a row");
    // And the wait still took its four hours: it polled on, it did not start over.
    let st = &o.state.steps["wait_backup"];
    assert!(st.finished_ms.unwrap() - st.started_ms.unwrap() >= 3 * 3600 * 1000);
}

#[tokio::test(start_paused = true)]
async fn a_wait_whose_every_poll_is_throttled_fails_after_its_retries_in_a_row() {
    let (o, _dir) = long_wait(1.0, 13).await;
    assert_eq!(o.status, RunStatus::Failed);
    // 1 attempt + max_attempts (10) retries, all throttled, none in between answered.
    assert_eq!(failures(&o, "wait_backup"), (11, 11));
    let Some(StepStatus::Failed { error, .. }) = o.state.status("wait_backup") else {
        panic!("wait_backup did not fail: {:?}", o.state.status("wait_backup"));
    };
    assert_eq!(error.code, "ThrottlingException");
    assert!(error.message.contains("Rate exceeded"), "{}", error.message);
    assert!(error.message.contains("DescribeBackupJob"), "{}", error.message);
    assert!(o.state.status("publish_primary").is_none(), "nothing is published");
}

/// 30% of every start call's answers lost (the work done), and 30% of every call throttled; the first answer of
/// StartBackupJob is lost for sure, so the lost path is always taken.
const CHAOS: &str = r#"
seed: 2026
faults:
  - {operation: "backup:StartBackupJob", nth: 1, count: 1, lose_response: true}
  - {operation: "*:Start*", probability: 0.3, lose_response: true}
  - {operation: "cloudformation:CreateStack", probability: 0.3, lose_response: true}
  - {operation: "cloudformation:UpdateStack", probability: 0.3, lose_response: true}
  - {operation: "ssm:PutParameter", probability: 0.3, lose_response: true}
  - {operation: "*", probability: 0.3, error: {code: ThrottlingException, message: Rate exceeded}}
"#;

#[tokio::test(start_paused = true)]
async fn the_pipeline_with_the_dr_stack_holds_under_throttling_and_lost_answers() {
    // Twenty different draws of the faults: the design holds, not one lucky sequence.
    for seed in 1..=20 {
        chaos_run(seed).await;
    }
}

async fn chaos_run(seed: u64) {
    let wf = load("workflows/dr-ami.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), &CHAOS.replace("seed: 2026", &format!("seed: {seed}")));
    let o = Run::of(&wf)
        .input("instance_id", INSTANCE)
        .input("deploy_stack", "true")
        .on(&sim, dir.path())
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "seed {seed}: {:?}", o.error);

    // The faults did hit: answers were lost and calls throttled.
    let calls = sim.calls();
    let lost: Vec<&str> = calls
        .iter()
        .filter(|c| c.response_lost)
        .map(|c| c.operation.as_str())
        .collect();
    let throttled = calls
        .iter()
        .filter(|c| c.error.as_deref() == Some("ThrottlingException") && !c.response_lost)
        .count();
    assert!(!lost.is_empty(), "seed {seed}: no answer lost");
    assert!(throttled >= 10, "seed {seed}: {throttled} throttled calls");

    // Exactly one backup job, one copy job, one stack, whatever was retried.
    let w = world(dir.path());
    assert_eq!(records(&w, "backup_jobs"), 1, "seed {seed}: lost {lost:?}");
    assert_eq!(records(&w, "copy_jobs"), 1, "seed {seed}: lost {lost:?}");
    assert_eq!(records(&w, "stacks"), 1, "seed {seed}: lost {lost:?}");

    // Each region's parameter holds that region's AMI, and the stack's instance runs the DR AMI (looked at without
    // the faults).
    let cloud = persistent(dir.path(), "{}").cloud();
    let name = format!("/drflow/{INSTANCE}/ami");
    for (region, step) in [("us-east-1", "primary_ami"), ("us-west-2", "dr_ami")] {
        let ami = output(&o, step, "image_id");
        let p = cloud
            .ssm
            .get_parameter(region, &name)
            .await
            .unwrap()
            .expect("parameter");
        assert_eq!(Value::String(p.value), ami, "seed {seed}: {region}");
    }
    let instance = output(&o, "deploy", "outputs")["InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    let found = cloud.ec2.describe_instances("us-west-2", &[instance]).await.unwrap();
    assert_eq!(
        Value::String(found[0].image_id.clone()),
        output(&o, "dr_ami", "image_id"),
        "seed {seed}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_of_a_start_call_is_retried_with_the_same_token() {
    // Every first StartBackupJob and StartCopyJob answer is lost: AWS started the job, drflow was not told.
    let scenario = "faults:\n  - {operation: \"backup:Start*\", lose_response: true}\n";
    let wf = load("workflows/dr-ami.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), scenario);
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    // The first call of each operation the glob matches lost its answer; the retry with the same token answered
    // the first job.
    assert_eq!(count_calls(&sim, "StartBackupJob"), 2);
    assert_eq!(count_calls(&sim, "StartCopyJob"), 2);
    let w = world(dir.path());
    assert_eq!(records(&w, "backup_jobs"), 1, "the retry found the first job");
    assert_eq!(records(&w, "copy_jobs"), 1, "the retry found the first copy");
    assert_eq!(failures(&o, "backup").0, 1);
    assert_eq!(failures(&o, "copy").0, 1);
}
