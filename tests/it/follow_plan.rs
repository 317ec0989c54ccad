//! `workflows/dr-follow-plan.yaml`: following an AWS Backup plan (and its copy rule) instead of starting jobs. A
//! seeded plan history (recovery points made in the past, their copies completed, failed, still running or
//! absent, and what the replaced Lambda published) → the run publishes exactly the newest available AMIs, never
//! rolls a parameter back, starts no job, reports the instances whose newest point has no DR copy (with the copy
//! job's message, their DR parameter untouched), and a second run changes nothing. On the simulator and over the
//! wire (emulator).

use std::collections::BTreeMap;

use crate::common::emulator::World;
use crate::common::*;
use drflow::cloud::image_id_from_arn;
use drflow::engine::journal::RunStatus;
use drflow::engine::{Outcome, StepStatus};
use serde_json::{Value, json};

const PRIMARY: &str = "us-east-1";
const DR: &str = "us-west-2";
const FAILED_COPY: &str = "Insufficient privileges to perform this action.";

/// The instances of the plan: A three points, all copied; B newest not copied; C newest's copy failed; D newest's
/// copy still running (ends 12 minutes later); E one point older than the AMIs already published (by an on-demand
/// `dr-ami.yaml` run, say). The Lambda published the 2h points (and their copies) of A, B, C and D.
const A: &str = "i-0aaaaaaaaaaaaa001";
const B: &str = "i-0aaaaaaaaaaaaa002";
const C: &str = "i-0aaaaaaaaaaaaa003";
const D: &str = "i-0aaaaaaaaaaaaa004";
const E: &str = "i-0aaaaaaaaaaaaa005";
const NEWER_PRIMARY: &str = "ami-0eeeeeeeeeeeeeee1";
const NEWER_DR: &str = "ami-0eeeeeeeeeeeeeee2";

fn param(id: &str) -> String {
    format!("/drflow/{id}/ami")
}

fn sim_history() -> String {
    let mut yaml = String::from("instances:\n");
    for id in [A, B, C, D, E] {
        yaml.push_str(&format!("  - {{id: {id}, region: us-east-1, tags: {{team: web}}}}\n"));
    }
    yaml.push_str(&format!(
        r#"images:
  - {{id: {NEWER_PRIMARY}, region: us-east-1}}
  - {{id: {NEWER_DR}, region: us-west-2}}
parameters:
  - {{name: "{e}", region: us-east-1, value: {NEWER_PRIMARY}, data_type: "aws:ec2:image"}}
  - {{name: "{e}", region: us-west-2, value: {NEWER_DR}, data_type: "aws:ec2:image"}}
backup_plans:
  - id: plan-hourly
    region: us-east-1
    selections:
      - name: web
        list_of_tags: [{{key: team, value: web}}]
plan_history:
"#,
        e = param(E)
    ));
    let points = [
        (A, "[{age: 3h}, {age: 2h, published_as: P}, {age: 1h}]"),
        (B, "[{age: 2h, published_as: P}, {age: 1h, copy: none}]"),
        (
            C,
            "[{age: 2h, published_as: P}, {age: 1h, copy: failed, message: \"Insufficient privileges to perform this action.\"}]",
        ),
        (
            D,
            "[{age: 2h, published_as: P}, {age: 1h, copy: running, completes_after: 12m}]",
        ),
        (E, "[{age: 1h}]"),
    ];
    for (id, p) in points {
        yaml.push_str(&format!(
            "  - {{instance: {id}, region: us-east-1, dr_region: us-west-2, points: {}}}\n",
            p.replace("P", &format!("\"{}\"", param(id)))
        ));
    }
    yaml
}

/// (value, version) of each instance's parameter in a region.
async fn parameters(sim: &drflow::cloud::sim::Sim, region: &str) -> BTreeMap<&'static str, (String, i64)> {
    let mut out = BTreeMap::new();
    for id in [A, B, C, D, E] {
        if let Some(p) = sim.cloud().ssm.get_parameter(region, &param(id)).await.unwrap() {
            out.insert(id, (p.value, p.version));
        }
    }
    out
}

/// The AMIs of an instance's recovery points in a region's Default vault, oldest first.
async fn amis(sim: &drflow::cloud::sim::Sim, region: &str, id: &str) -> Vec<String> {
    let arn = format!("arn:aws:ec2:{PRIMARY}:123456789012:instance/{id}");
    let points = sim
        .cloud()
        .backup
        .list_recovery_points(region, "Default", &arn, None)
        .await
        .unwrap();
    points
        .iter()
        .map(|p| image_id_from_arn(&p.arn).unwrap().to_string())
        .collect()
}

fn step_out(o: &Outcome, id: &str) -> serde_json::Map<String, Value> {
    match o.state.status(id) {
        Some(StepStatus::Succeeded(out)) => out.clone(),
        other => panic!("{id} is {other:?}"),
    }
}

fn started_jobs(sim: &drflow::cloud::sim::Sim) -> Vec<String> {
    sim.calls()
        .iter()
        .filter(|c| c.operation.starts_with("Start") || c.operation.starts_with("Copy") || c.operation == "CreateImage")
        .map(|c| c.operation.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn follows_a_seeded_plan_history_on_the_simulator() {
    let wf = load("workflows/dr-follow-plan.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), &sim_history());
    let (a_east, a_west) = (amis(&sim, PRIMARY, A).await, amis(&sim, DR, A).await);
    let before_east = parameters(&sim, PRIMARY).await;
    let before_west = parameters(&sim, DR).await;
    assert_eq!(
        before_east[A],
        (a_east[1].clone(), 1),
        "the Lambda published the 2h point"
    );

    let o = run(&wf, &sim, dir.path(), &[("backup_plan_id", "plan-hourly")])
        .await
        .unwrap();
    // B and C are reported: their items fail, so does the run (a schedule's notify: tells someone).
    assert_eq!(o.status, RunStatus::Failed);
    let error = format!("{:?}", o.error);
    assert!(error.contains("2 of 5 items failed"), "{error}");
    assert!(
        error.contains(&format!("{B}: step `fleet[{B}].dr_not_copied`: DR copy missing")),
        "{error}"
    );
    assert!(
        error.contains(&format!("{C}: step `fleet[{C}].dr_not_copied`: DR copy failed")),
        "{error}"
    );
    assert!(error.contains(FAILED_COPY), "{error}");
    assert!(started_jobs(&sim).is_empty(), "{:?}", started_jobs(&sim));

    // Exactly the newest available AMIs, in both regions where copied; B's and C's DR parameters keep the 2h copy.
    let east = parameters(&sim, PRIMARY).await;
    let west = parameters(&sim, DR).await;
    for id in [A, B, C, D] {
        let newest = amis(&sim, PRIMARY, id).await.last().unwrap().clone();
        assert_eq!(east[id], (newest, 2), "{id} primary");
    }
    assert_eq!(west[A], (a_west.last().unwrap().clone(), 2), "A's newest copy");
    assert_eq!(west[D].1, 2, "D's copy, waited for");
    assert_eq!(west[D].0, amis(&sim, DR, D).await.last().unwrap().clone());
    assert_eq!(
        west[B], before_west[B],
        "no DR copy: the DR parameter keeps the previous AMI"
    );
    assert_eq!(
        west[C], before_west[C],
        "failed copy: the DR parameter keeps the previous AMI"
    );
    // E: newer AMIs are published; the plan's older one is never written.
    assert_eq!(
        (east[E].clone(), west[E].clone()),
        (before_east[E].clone(), before_west[E].clone())
    );
    assert_eq!(
        step_out(&o, &format!("fleet[{E}].publish_primary"))["outcome"],
        "kept_newer"
    );
    assert_eq!(step_out(&o, &format!("fleet[{E}].publish_dr"))["outcome"], "kept_newer");
    // D's copy was running: the wait saw it through (12 minutes of simulated time).
    assert_eq!(step_out(&o, &format!("fleet[{D}].dr_copy"))["status"], "copied");
    assert_eq!(step_out(&o, &format!("fleet[{C}].dr_copy"))["status"], "failed");
    assert!(
        step_out(&o, &format!("fleet[{C}].dr_copy"))["message"]
            .as_str()
            .unwrap()
            .contains(FAILED_COPY)
    );
    assert!(matches!(
        o.state.status(&format!("fleet[{B}].publish_dr")),
        Some(StepStatus::Skipped(_))
    ));
    let puts = count_calls(&sim, "PutParameter");
    assert_eq!(puts, 6, "A and D twice, B and C once, E never");

    // A second run changes nothing: no PutParameter, every version as it was, every parameter "up to date".
    let o = run(&wf, &sim, dir.path(), &[("backup_plan_id", "plan-hourly")])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Failed, "B and C are still reported");
    assert_eq!(count_calls(&sim, "PutParameter"), puts);
    assert_eq!(parameters(&sim, PRIMARY).await, east);
    assert_eq!(parameters(&sim, DR).await, west);
    for id in [A, D] {
        for step in ["publish_primary", "publish_dr"] {
            assert_eq!(
                step_out(&o, &format!("fleet[{id}].{step}"))["outcome"],
                "up_to_date",
                "{id} {step}"
            );
        }
    }
    assert!(started_jobs(&sim).is_empty());
    // Only reads, but for the six writes of the first run.
    let writes: Vec<String> = sim
        .calls()
        .iter()
        .filter(|c| c.mutating)
        .map(|c| c.operation.clone())
        .collect();
    assert_eq!(writes, vec!["PutParameter".to_string(); 6]);
}

#[tokio::test(start_paused = true)]
async fn created_after_limits_the_points_and_none_is_a_clear_failure() {
    let wf = parse_at(
        &repo("workflows/latest.yaml"),
        r#"version: 1
name: latest
inputs:
  after: {type: string, default: ""}
regions: {primary: us-east-1}
steps:
  - id: latest
    action: backup.latest_recovery_point
    region: primary
    retry: {max_attempts: 0}
    with:
      resource_arn: arn:aws:ec2:us-east-1:123456789012:instance/i-0aaaaaaaaaaaaa001
      vault: Default
      created_after: ${{ inputs.after }}
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), &sim_history());
    let o = run(&wf, &sim, dir.path(), &[]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let newest = amis(&sim, PRIMARY, A).await.last().unwrap().clone();
    let out = step_out(&o, "latest");
    assert_eq!(out["image_id"], json!(newest));
    assert_eq!(out["count"], 3);
    let age = out["age_seconds"].as_i64().unwrap();
    assert!((3600..3700).contains(&age), "{age}");

    // Nothing made in the last 30 minutes: a clear failure, naming the resource, the vault and the bound.
    let after = (out["creation_date"].as_i64().unwrap() + 1800).to_string();
    let o = run(&wf, &sim, dir.path(), &[("after", &after)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    let error = format!("{:?}", o.error);
    assert!(
        error.contains(&format!("no COMPLETED recovery point of arn:aws:ec2:us-east-1:123456789012:instance/{A} created at or after {after} in vault Default (us-east-1): none listed")),
        "{error}"
    );
    // A bad instant is refused before any call.
    let calls = sim.calls().len();
    let o = run(&wf, &sim, dir.path(), &[("after", "yesterday")]).await.unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    assert!(format!("{:?}", o.error).contains("RFC 3339"), "{:?}", o.error);
    assert_eq!(sim.calls().len(), calls);
}
