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

    // A second run changes nothing: no PutParameter, every version as it was, every parameter "up to date". (Its
    // journal goes elsewhere: a process another test forks meanwhile may still share the first run's lock file.)
    let second = dir.path().join("second");
    let o = run(&wf, &sim, &second, &[("backup_plan_id", "plan-hourly")])
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

/// The seeded points of one instance, as `/_drflow/seed-plan-history` answers them (oldest first).
fn seed(w: &World, instance: &str, points: Value) -> Vec<Value> {
    let body = json!({"instance_id": instance, "region": PRIMARY, "dr_region": DR, "points": points});
    match w.emu.control("POST", "/_drflow/seed-plan-history", Some(body))["points"].clone() {
        Value::Array(a) => a,
        other => panic!("{other}"),
    }
}

/// Over the wire: instances and a plan made through the emulator, their history seeded, the previous AMIs
/// published through SSM; the real binary runs the follow workflow twice.
#[test]
fn follows_a_seeded_plan_history_over_the_wire_without_starting_a_job() {
    use aws_sdk_backup::types::{BackupSelection, Condition, ConditionType};

    let w = World::new(&[PRIMARY, DR], &["dr-follow-plan.yaml"]);
    let (plan_id, ids) = w.rt.block_on(async {
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(w.launch(PRIMARY, &[("team", "web")]).await);
        }
        let backup = aws_sdk_backup::Client::new(&w.emu.sdk(PRIMARY));
        let plan_id = w
            .backup_plan(PRIMARY, "hourly-with-copy", "hourly", Some("cron(0 * * * ? *)"))
            .await;
        let selection = BackupSelection::builder()
            .selection_name("web")
            .iam_role_arn("arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole")
            .list_of_tags(
                Condition::builder()
                    .condition_type(ConditionType::Stringequals)
                    .condition_key("team")
                    .condition_value("web")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        backup
            .create_backup_selection()
            .backup_plan_id(&plan_id)
            .backup_selection(selection)
            .send()
            .await
            .expect("selection");
        (plan_id, ids)
    });
    let [a, b, c, d, e] = [&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]];
    let h = 3600;
    let pa = seed(
        &w,
        a,
        json!([{"age_seconds": 3 * h}, {"age_seconds": 2 * h}, {"age_seconds": h}]),
    );
    let pb = seed(
        &w,
        b,
        json!([{"age_seconds": 2 * h}, {"age_seconds": h, "copy": "none"}]),
    );
    let pc = seed(
        &w,
        c,
        json!([{"age_seconds": 2 * h}, {"age_seconds": h, "copy": "failed", "message": FAILED_COPY}]),
    );
    let pd = seed(
        &w,
        d,
        json!([{"age_seconds": 2 * h}, {"age_seconds": h, "copy": "running", "completes_after_seconds": 4}]),
    );
    let pe = seed(&w, e, json!([{"age_seconds": h}]));
    let text = |v: &Value, k: &str| v[k].as_str().unwrap().to_string();

    // What the replaced Lambda published: the 2h points of A–D and their copies; for E, AMIs made now (newer than
    // its plan's newest point, e.g. by an on-demand dr-ami.yaml run).
    w.emu.config(0, 1);
    let (newer_east, newer_west) = w.rt.block_on(async {
        let put = |region: &'static str, name: String, value: String| {
            let sdk = w.emu.sdk(region);
            async move {
                aws_sdk_ssm::Client::new(&sdk)
                    .put_parameter()
                    .name(name)
                    .value(value)
                    .data_type("aws:ec2:image")
                    .r#type(aws_sdk_ssm::types::ParameterType::String)
                    .overwrite(true)
                    .send()
                    .await
                    .expect("put");
            }
        };
        for (id, points) in [(a, &pa), (b, &pb), (c, &pc), (d, &pd)] {
            put(PRIMARY, param(id), text(&points[points.len() - 2], "image_id")).await;
            put(DR, param(id), text(&points[points.len() - 2], "dr_image_id")).await;
        }
        let ec2 = aws_sdk_ec2::Client::new(&w.emu.sdk(PRIMARY));
        let newer = ec2
            .create_image()
            .instance_id(e)
            .name("on-demand")
            .send()
            .await
            .unwrap()
            .image_id()
            .unwrap()
            .to_string();
        let copied = aws_sdk_ec2::Client::new(&w.emu.sdk(DR))
            .copy_image()
            .source_region(PRIMARY)
            .source_image_id(&newer)
            .name("on-demand")
            .send()
            .await
            .unwrap()
            .image_id()
            .unwrap()
            .to_string();
        put(PRIMARY, param(e), newer.clone()).await;
        put(DR, param(e), copied.clone()).await;
        (newer, copied)
    });
    w.emu.config(2, 1);
    let read = |region: &'static str| -> BTreeMap<String, (String, i64)> {
        w.rt.block_on(async {
            let ssm = aws_sdk_ssm::Client::new(&w.emu.sdk(region));
            let mut out = BTreeMap::new();
            for id in &ids {
                let p = ssm.get_parameter().name(param(id)).send().await.expect("parameter");
                let p = p.parameter().unwrap();
                out.insert(id.clone(), (p.value().unwrap().to_string(), p.version()));
            }
            out
        })
    };
    let (before_east, before_west) = (read(PRIMARY), read(DR));
    assert_eq!(before_east[e].0, newer_east);

    let wf = w.workflow_named("dr-follow-plan.yaml");
    let input = format!("backup_plan_id={plan_id}");
    let follow = |state: &str| {
        w.emu.control("DELETE", "/_drflow/calls", None);
        let out = w.emu.drflow(
            &w.dir.path().join(state),
            &["run", &wf, "-i", &input, "--output", "plain"],
        );
        let (stdout, stderr) = text_of(&out);
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) = follow("state");
    let all = format!("{stdout}\n{stderr}");
    assert_eq!(code, Some(1), "B and C are reported: {all}");
    assert!(all.contains("2 of 5 items failed"), "{all}");
    assert!(
        all.contains(&format!("{b}: step `fleet[{b}].dr_not_copied`: DR copy missing")),
        "{all}"
    );
    assert!(
        all.contains(&format!("{c}: step `fleet[{c}].dr_not_copied`: DR copy failed")),
        "{all}"
    );
    assert!(all.contains(FAILED_COPY), "{all}");
    assert!(all.contains("kept: newer than the AMI offered"), "{all}");
    let calls = |op: &str| w.emu.calls(op).len();
    assert_eq!(calls("PutParameter"), 6, "A and D twice, B and C once, E never");
    assert_no_jobs_started(&w);

    let (east, west) = (read(PRIMARY), read(DR));
    for (id, points) in [(a, &pa), (b, &pb), (c, &pc), (d, &pd)] {
        assert_eq!(
            east[id],
            (text(points.last().unwrap(), "image_id"), 2),
            "{id}: the newest point"
        );
    }
    assert_eq!(west[a], (text(pa.last().unwrap(), "dr_image_id"), 2));
    assert_eq!(
        west[d],
        (text(pd.last().unwrap(), "dr_image_id"), 2),
        "the running copy, waited for"
    );
    assert_eq!(west[b], before_west[b], "no DR copy: the previous AMI stays");
    assert_eq!(west[c], before_west[c], "failed copy: the previous AMI stays");
    assert_eq!(
        (&east[e], &west[e]),
        (&before_east[e], &before_west[e]),
        "never rolled back"
    );
    assert_eq!(west[e].0, newer_west);
    assert!(text(&pe[0], "image_id") != east[e].0);
    assert!(
        calls("ListCopyJobs") >= 5 && calls("ListRecoveryPointsByBackupVault") >= 10,
        "lineage over the wire"
    );

    // A second run changes nothing: no PutParameter, no new version, the parameters up to date.
    let (code, stdout, stderr) = follow("state-2");
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert_eq!(calls("PutParameter"), 0, "{stdout}");
    assert_eq!((read(PRIMARY), read(DR)), (east, west));
    assert_eq!(stdout.matches(", up to date)").count(), 6, "{stdout}");
    assert_no_jobs_started(&w);
}

/// No call of the last run started a job or changed anything but SSM parameters.
fn assert_no_jobs_started(w: &World) {
    let calls = match w.emu.control("GET", "/_drflow/calls", None) {
        Value::Array(calls) => calls,
        other => panic!("calls: {other}"),
    };
    let op = |c: &Value| {
        format!(
            "{}:{}",
            c["service"].as_str().unwrap_or("?"),
            c["operation"].as_str().unwrap_or("?")
        )
    };
    let jobs: Vec<String> = calls
        .iter()
        .map(op)
        .filter(|o| o.contains(":Start") || o.contains(":Copy") || o.ends_with(":CreateImage"))
        .collect();
    assert!(jobs.is_empty(), "{jobs:?}");
    let writes: Vec<String> = calls
        .iter()
        .map(op)
        .filter(|o| drflow::cloud::operations::mutates(o) && o != "ssm:PutParameter")
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert!(!calls.is_empty());
}

fn text_of(o: &std::process::Output) -> (String, String) {
    text(o)
}

/// The same through the binary (`drflow run --scenario`, the simulated world persisted between the two runs): the
/// second run reports every parameter up to date, and the world's call log holds the first run's writes only.
#[test]
fn the_binary_follows_the_plan_on_a_persisted_simulated_world() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("plan-history.yaml");
    std::fs::write(&scenario, sim_history()).unwrap();
    let state = dir.path().join("state");
    let args = [
        "run",
        "workflows/dr-follow-plan.yaml",
        "--scenario",
        scenario.to_str().unwrap(),
        "-i",
        "backup_plan_id=plan-hourly",
        "--output",
        "plain",
    ];
    let first = drflow(&state, &args);
    let (stdout, stderr) = text(&first);
    assert_eq!(first.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains(FAILED_COPY), "{stderr}");
    assert_eq!(
        stdout.matches(", kept: newer than the AMI offered)").count(),
        2,
        "{stdout}"
    );
    let second = drflow(&state, &args);
    let (stdout, stderr) = text(&second);
    assert_eq!(second.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches(", up to date)").count(), 6, "{stdout}");
    let calls = std::fs::read_to_string(state.join("sim/calls.jsonl")).unwrap();
    let ops: Vec<Value> = calls.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let writes: Vec<&str> = ops
        .iter()
        .filter(|c| c["mutating"] == true)
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    assert_eq!(writes, ["PutParameter"; 6], "the first run's six writes, none since");
}

/// `if_older` takes `fail` or `keep`: another literal is refused by validation, located, before any call.
#[test]
fn if_older_is_checked_before_the_run() {
    let text = r#"version: 1
name: bad
regions: {primary: us-east-1}
steps:
  - id: publish
    action: ssm.put_parameter
    region: primary
    with: {name: /drflow/x/ami, value: ami-0123456789abcdef0, if_older: sometimes}
"#;
    let path = repo("workflows/bad.yaml");
    let err = drflow::workflow::parse(
        drflow::workflow::Source::new(&path, text.to_string()),
        drflow::actions::catalog(),
    )
    .expect_err("refused");
    let shown = format!("{err:?}");
    assert!(
        shown.contains("input `if_older` of `ssm.put_parameter` is `sometimes`, not one of fail, keep"),
        "{shown}"
    );
    assert!(shown.contains("bad_type"), "{shown}");
}
