//! `ec2.prune_images` (keep the newest N AMIs of an instance per region; never the published one nor one AWS Backup
//! manages) and SSM's 100-version limit, on the simulator, through the binary and over the wire (the emulator).

use std::path::Path;

use serde_json::{Value, json};

use crate::common::emulator::World;
use crate::common::*;
use drflow::engine::StepStatus;
use drflow::engine::journal::RunStatus;

const INSTANCE: &str = "i-0123456789abcdef0";
const PARAM: &str = "/drflow/i-0123456789abcdef0/ami";

/// A workflow with only the prune step, in us-east-1.
const PRUNE_ONLY: &str = r#"
version: 1
name: prune-only
inputs:
  instance_id: {type: string}
  keep: {type: int, default: 2, pattern: "[0-9]+"}
regions: {primary: us-east-1}
steps:
  - id: prune
    action: ec2.prune_images
    region: primary
    retry: {max_attempts: 3, interval: 1s}
    with:
      instance_id: ${{ inputs.instance_id }}
      keep: ${{ inputs.keep }}
      parameters: ["/drflow/${{ inputs.instance_id }}/ami"]
"#;

/// Four AMIs drflow made of the instance (names in creation order: scenario images share a creation date, and the
/// name decides between equal dates), one AWS Backup made (tagged as AWS Backup tags its AMIs), another instance's,
/// and the parameter naming the oldest.
const SEEDED: &str = r#"
images:
  - {id: ami-0aaaaaaaaaaaaaaa1, region: us-east-1, name: drflow-1, tags: {drflow:instance: i-0123456789abcdef0}}
  - {id: ami-0aaaaaaaaaaaaaaa2, region: us-east-1, name: drflow-2, tags: {drflow:instance: i-0123456789abcdef0}}
  - {id: ami-0aaaaaaaaaaaaaaa3, region: us-east-1, name: drflow-3, tags: {drflow:instance: i-0123456789abcdef0}}
  - {id: ami-0aaaaaaaaaaaaaaa4, region: us-east-1, name: drflow-4, tags: {drflow:instance: i-0123456789abcdef0}}
  - {id: ami-0bbbbbbbbbbbbbbb1, region: us-east-1, name: awsbackup, tags: {drflow:instance: i-0123456789abcdef0, aws:backup:source-resource: i-0123456789abcdef0}}
  - {id: ami-0ccccccccccccccc1, region: us-east-1, name: other, tags: {drflow:instance: i-0fffffffffffffff0}}
parameters:
  - {name: /drflow/i-0123456789abcdef0/ami, region: us-east-1, value: ami-0aaaaaaaaaaaaaaa1, data_type: "aws:ec2:image"}
"#;

fn outputs(o: &drflow::engine::Outcome, step: &str) -> Value {
    match o.state.status(step) {
        Some(StepStatus::Succeeded(out)) => Value::Object(out.clone()),
        other => panic!("step {step} is {other:?}"),
    }
}

fn images(dir: &Path, region: &str) -> Vec<String> {
    let w = world(dir);
    let mut ids: Vec<String> = w["regions"][region]["images"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    ids.sort();
    ids
}

fn snapshots(dir: &Path, region: &str) -> Vec<String> {
    let w = world(dir);
    let mut ids: Vec<String> = w["regions"][region]["snapshots"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(start_paused = true)]
async fn keeps_the_newest_the_published_and_the_backup_managed_and_deregisters_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), SEEDED);
    let wf = parse_at(&dir.path().join("prune.yaml"), PRUNE_ONLY);
    let snaps_before = snapshots(dir.path(), "us-east-1");
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let out = outputs(&o, "prune");
    assert_eq!(out["deregistered"], json!(["ami-0aaaaaaaaaaaaaaa2"]));
    assert_eq!(out["count"], json!(1));
    assert_eq!(
        out["kept"],
        json!([
            "ami-0aaaaaaaaaaaaaaa4",
            "ami-0aaaaaaaaaaaaaaa3",
            "ami-0aaaaaaaaaaaaaaa1",
            "ami-0bbbbbbbbbbbbbbb1"
        ])
    );
    let left = images(dir.path(), "us-east-1");
    assert!(!left.contains(&"ami-0aaaaaaaaaaaaaaa2".to_string()), "{left:?}");
    for kept in [
        "ami-0aaaaaaaaaaaaaaa1",
        "ami-0aaaaaaaaaaaaaaa3",
        "ami-0aaaaaaaaaaaaaaa4",
        "ami-0bbbbbbbbbbbbbbb1",
        "ami-0ccccccccccccccc1",
    ] {
        assert!(left.contains(&kept.to_string()), "{kept} was kept: {left:?}");
    }
    // Its snapshot went with it, and only it.
    let deleted = out["snapshots_deleted"].as_array().unwrap();
    assert_eq!(deleted.len(), 1);
    let snaps_after = snapshots(dir.path(), "us-east-1");
    assert_eq!(snaps_after.len(), snaps_before.len() - 1);
    assert!(!snaps_after.contains(&deleted[0].as_str().unwrap().to_string()));
    assert_eq!(count_calls(&sim, "DeregisterImage"), 1);
    // A second run has nothing left to do.
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE)]).await.unwrap();
    assert_eq!(outputs(&o, "prune")["count"], json!(0));
    assert_eq!(count_calls(&sim, "DeregisterImage"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_deregistration_whose_answer_was_lost_is_finished_not_redone() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{SEEDED}faults: [{{operation: 'ec2:DeregisterImage', nth: 1, lose_response: true, error: {{code: InternalError}}}}]\n"
    );
    let sim = persistent(dir.path(), &yaml);
    let wf = parse_at(&dir.path().join("prune.yaml"), PRUNE_ONLY);
    let o = run(&wf, &sim, dir.path(), &[("instance_id", INSTANCE), ("keep", "1")])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let out = outputs(&o, "prune");
    // keep 1: ami-…4 stays, …1 is published; …2 and …3 go, …2 first (its answer lost, then finished).
    assert_eq!(
        out["deregistered"],
        json!(["ami-0aaaaaaaaaaaaaaa2", "ami-0aaaaaaaaaaaaaaa3"])
    );
    assert_eq!(out["snapshots_deleted"].as_array().unwrap().len(), 2);
    let calls: Vec<(String, Option<String>)> = sim
        .calls()
        .into_iter()
        .filter(|c| c.mutating)
        .map(|c| (c.operation, c.error))
        .collect();
    // The retry found …2 gone: it deregistered nothing twice and asked only for its snapshot (already deleted).
    assert_eq!(
        calls,
        [
            ("DeregisterImage".to_string(), Some("InternalError".to_string())),
            (
                "DeleteSnapshot".to_string(),
                Some("InvalidSnapshot.NotFound".to_string())
            ),
            ("DeregisterImage".to_string(), None),
        ]
    );
}

#[test]
fn the_workflow_prunes_after_publishing_and_never_the_published_ami() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let wf = "workflows/dr-ami-ec2.yaml";
    let mut published = Vec::new();
    for _ in 0..4 {
        let o = drflow(
            state,
            &[
                "run",
                wf,
                "--simulate",
                "-i",
                &format!("instance_id={INSTANCE}"),
                "-i",
                "keep_images=2",
            ],
        );
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
        published.push(out);
    }
    let w = world(state);
    for region in ["us-east-1", "us-west-2"] {
        let imgs = w["regions"][region]["images"].as_object().unwrap();
        let ours: Vec<&Value> = imgs
            .values()
            .filter(|i| i["tags"]["drflow:instance"] == json!(INSTANCE))
            .collect();
        assert_eq!(ours.len(), 2, "{region}: the newest two remain: {imgs:?}");
        let param = &w["regions"][region]["parameters"][PARAM]["versions"];
        let current = param.as_array().unwrap().last().unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            imgs.contains_key(&current),
            "{region}: the published AMI {current} remains"
        );
        // Every AMI left has its snapshot; the pruned ones' are gone.
        let snaps = w["regions"][region]["snapshots"].as_object().unwrap();
        assert_eq!(snaps.len(), 2, "{region}: {snaps:?}");
    }
    // The reports list what was deregistered, with its snapshots.
    let mut deleted = Vec::new();
    for run in std::fs::read_dir(state.join("runs")).unwrap() {
        let report = std::fs::read_to_string(run.unwrap().path().join("report.json")).unwrap();
        let report: Value = serde_json::from_str(&report).unwrap();
        deleted.extend(report["deleted"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(deleted.len(), 4, "two runs pruned one AMI in each region: {deleted:?}");
    assert!(
        deleted.iter().all(|d| d["kind"] == "AMI"
            && d["detail"]
                .as_str()
                .unwrap()
                .starts_with("deregistered; snapshots deleted: snap-")),
        "{deleted:?}"
    );
    // keep_images=0 turns pruning off (the step is skipped); a negative count is refused before anything runs.
    let o = drflow(
        state,
        &[
            "run",
            wf,
            "--simulate",
            "-i",
            &format!("instance_id={INSTANCE}"),
            "-i",
            "keep_images=0",
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("prune") && out.contains("skipped"), "{out}");
    let o = drflow(
        state,
        &[
            "run",
            wf,
            "--simulate",
            "-i",
            &format!("instance_id={INSTANCE}"),
            "-i",
            "keep_images=-1",
        ],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("keep_images"), "{err}");
}

#[test]
fn plan_says_known_after_discovery_and_check_lists_what_would_go() {
    let dir = tempfile::tempdir().unwrap();
    let wf_path = dir.path().join("prune.yaml");
    std::fs::write(&wf_path, PRUNE_ONLY).unwrap();
    let scenario = dir.path().join("seeded.yaml");
    std::fs::write(&scenario, SEEDED).unwrap();
    let wf = wf_path.display().to_string();
    let input = format!("instance_id={INSTANCE}");
    let o = drflow(dir.path(), &["plan", &wf, "-i", &input]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        out.contains("changes   the AMIs it deregisters: known after discovery (`drflow plan --check` lists them)"),
        "{out}"
    );
    let scenario = scenario.display().to_string();
    let o = drflow(
        dir.path(),
        &["plan", &wf, "-i", &input, "--check", "--scenario", &scenario],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let want = "would deregister 1 of 5 AMI(s) of i-0123456789abcdef0 and their snapshots: ami-0aaaaaaaaaaaaaaa2; \
                keeps ami-0aaaaaaaaaaaaaaa4 (among the newest), ami-0aaaaaaaaaaaaaaa3 (among the newest), \
                ami-0aaaaaaaaaaaaaaa1 (named by /drflow/i-0123456789abcdef0/ami), ami-0bbbbbbbbbbbbbbb1 (managed by \
                AWS Backup)";
    assert!(out.contains(&format!("changes   {want}")), "{out}");
    assert!(
        out.contains(&format!(
            "ok       preview of step prune in us-east-1 (for prune): {want}"
        )),
        "{out}"
    );
    // The plan deregistered nothing: its calls were all read-only.
    let calls = std::fs::read_to_string(dir.path().join("sim/calls.jsonl")).unwrap_or_default();
    assert!(!calls.contains("DeregisterImage"), "{calls}");
    let json_out = drflow(
        dir.path(),
        &[
            "plan",
            &wf,
            "-i",
            &input,
            "--check",
            "--scenario",
            &scenario,
            "--output",
            "json",
        ],
    );
    let doc: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(doc["steps"][0]["preview"], json!(want));
    let check = doc["checks"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "preview")
        .unwrap();
    assert_eq!((&check["subject"], &check["status"]), (&json!("prune"), &json!("ok")));
}

#[test]
fn the_policy_grants_deregistering_and_reading_the_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let o = drflow(
        dir.path(),
        &[
            "policy",
            "workflows/dr-ami-ec2.yaml",
            "-i",
            &format!("instance_id={INSTANCE}"),
            "--account",
            "123456789012",
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let statements = doc["Statement"].as_array().unwrap();
    let with = |action: &str| -> Vec<String> {
        statements
            .iter()
            .filter(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
            .flat_map(|s| {
                s["Resource"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
            })
            .collect()
    };
    let dereg = with("ec2:DeregisterImage");
    assert!(
        dereg.contains(&"arn:aws:ec2:us-east-1::image/*".to_string()),
        "{dereg:?}"
    );
    assert!(
        dereg.contains(&"arn:aws:ec2:us-west-2::image/*".to_string()),
        "{dereg:?}"
    );
    assert!(with("ec2:DeleteSnapshot").contains(&"arn:aws:ec2:us-west-2::snapshot/*".to_string()));
    let get = with("ssm:GetParameter");
    for region in ["us-east-1", "us-west-2"] {
        let arn = format!("arn:aws:ssm:{region}:123456789012:parameter/drflow/{INSTANCE}/ami");
        assert!(get.contains(&arn), "{get:?}");
    }
}

/// SSM keeps 100 versions: the 101st write drops the oldest; a label on the oldest stops the write with a clear
/// message, exit 1, and the parameter still holds its AMI (nothing half-written).
#[test]
fn the_parameter_version_limit() {
    let scenario_of = |labels: &str| {
        format!(
            "images:\n  - {{id: ami-0aaaaaaaaaaaaaaa1, region: us-east-1, name: old}}\n\
             parameters:\n  - {{name: {PARAM}, region: us-east-1, value: ami-0aaaaaaaaaaaaaaa1, \
             data_type: \"aws:ec2:image\", versions: 100, labels: [{labels}]}}\n"
        )
    };
    // Unlabelled: the write works, version 101, and SSM still keeps 100.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::write(&scenario, scenario_of("")).unwrap();
    let args = |s: &Path| {
        vec![
            "run".to_string(),
            "workflows/dr-ami-ec2.yaml".into(),
            "--scenario".into(),
            s.display().to_string(),
            "-i".into(),
            format!("instance_id={INSTANCE}"),
        ]
    };
    let a = args(&scenario);
    let o = drflow(dir.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains(&format!("{PARAM} = ami-")) && out.contains("(version 101)"),
        "{out}"
    );
    let versions = world(dir.path())["regions"]["us-east-1"]["parameters"][PARAM]["versions"].clone();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 100);
    assert_eq!(
        (versions[0]["version"].as_i64(), versions[99]["version"].as_i64()),
        (Some(2), Some(101))
    );

    // Labelled oldest: `plan --check` says so before any run (GetParameterHistory, read-only), exit 1 ...
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::write(&scenario, scenario_of("golden")).unwrap();
    let s = scenario.display().to_string();
    let input = format!("instance_id={INSTANCE}");
    let o = drflow(
        dir.path(),
        &[
            "plan",
            "workflows/dr-ami-ec2.yaml",
            "-i",
            &input,
            "--check",
            "--scenario",
            &s,
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    let want = format!(
        "FAILED   SSM parameter {PARAM} in us-east-1 (for publish_primary): ami-0aaaaaaaaaaaaaaa1 (version 100, written"
    );
    assert!(out.contains(&want), "{out}");
    assert!(
        out.contains("the oldest (version 1) carries the label golden: SSM would refuse the run's write"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "aws ssm unlabel-parameter-version --region us-east-1 --name {PARAM} --parameter-version 1 --labels golden"
        )),
        "{out}"
    );
    let calls = std::fs::read_to_string(dir.path().join("sim/calls.jsonl")).unwrap();
    assert!(
        calls.contains("GetParameterHistory") && !calls.contains("PutParameter"),
        "{calls}"
    );
    std::fs::remove_dir_all(dir.path().join("sim")).unwrap();
    // ... and the run fails with a clear error and the way out; the parameter is untouched.
    let a = args(&scenario);
    let o = drflow(dir.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    for needle in [
        "publish_primary",
        "ParameterMaxVersionLimitExceeded",
        "its oldest (version 1) carries a label",
        "the parameter still holds ami-0aaaaaaaaaaaaaaa1",
        &format!("aws ssm unlabel-parameter-version --region us-east-1 --name {PARAM} --parameter-version 1"),
        &format!("aws ssm label-parameter-version --region us-east-1 --name {PARAM}"),
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    // Not retried: one PutParameter in us-east-1.
    let calls = std::fs::read_to_string(dir.path().join("sim/calls.jsonl")).unwrap();
    let puts = calls
        .lines()
        .filter(|l| l.contains("\"PutParameter\"") && l.contains("us-east-1"))
        .count();
    assert_eq!(puts, 1, "{calls}");
    let p = &world(dir.path())["regions"]["us-east-1"]["parameters"][PARAM]["versions"];
    let p = p.as_array().unwrap();
    assert_eq!(p.len(), 100);
    assert_eq!(
        (p[99]["value"].as_str(), p[99]["version"].as_i64()),
        (Some("ami-0aaaaaaaaaaaaaaa1"), Some(100))
    );
    // Nor did the run prune anything after the failure.
    assert!(!calls.contains("DeregisterImage"), "{calls}");
}

/// Over the wire: AMIs made through the emulator's EC2, the parameter naming the oldest, one tagged as AWS Backup
/// tags its AMIs; the binary prunes what it should and deletes the snapshots.
#[test]
fn prunes_over_the_wire() {
    let w = World::new(&[], &[]);
    let ec2 = aws_sdk_ec2::Client::new(&w.emu.sdk("us-east-1"));
    let ssm = aws_sdk_ssm::Client::new(&w.emu.sdk("us-east-1"));
    w.emu.config(0, 1);
    let instance = w.instance.clone();
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    let made: Vec<String> = w.rt.block_on(async {
        let mut made = Vec::new();
        for i in 1..=4 {
            let spec = aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Image)
                .tags(tag("drflow:instance", &instance))
                .build();
            let out = ec2
                .create_image()
                .instance_id(&instance)
                .name(format!("drflow-{i}"))
                .tag_specifications(spec)
                .send()
                .await
                .unwrap();
            made.push(out.image_id().unwrap().to_string());
        }
        // AWS Backup's AMI (the tag is AWS Backup's own: set here as the service would).
        let out = ec2
            .create_image()
            .instance_id(&instance)
            .name("drflow-0-backup")
            .send()
            .await
            .unwrap();
        let backup = out.image_id().unwrap().to_string();
        ec2.create_tags()
            .resources(&backup)
            .tags(tag("drflow:instance", &instance))
            .tags(tag("aws:backup:source-resource", &instance))
            .send()
            .await
            .unwrap();
        made.push(backup);
        ssm.put_parameter()
            .name(format!("/drflow/{instance}/ami"))
            .value(&made[0])
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .data_type("aws:ec2:image")
            .send()
            .await
            .unwrap();
        made
    });
    let snapshot_of = |ami: &str| -> String {
        w.rt.block_on(async {
            let out = ec2.describe_images().image_ids(ami).send().await.unwrap();
            let img = &out.images()[0];
            img.block_device_mappings()[0]
                .ebs()
                .unwrap()
                .snapshot_id()
                .unwrap()
                .to_string()
        })
    };
    let doomed_snapshot = snapshot_of(&made[1]);
    let wf = w.dir.path().join("prune.yaml");
    std::fs::write(&wf, PRUNE_ONLY).unwrap();
    let wf = wf.display().to_string();
    let input = format!("instance_id={instance}");
    // plan --check against the emulator names the AMI that would go, and deregisters nothing.
    let o = w.emu.drflow(&w.state(), &["plan", &wf, "-i", &input, "--check"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "would deregister 1 of 5 AMI(s) of {instance} and their snapshots: {}",
            made[1]
        )),
        "{out}"
    );
    assert!(w.emu.calls("DeregisterImage").is_empty());

    let o = w.emu.drflow(&w.state(), &["run", &wf, "-i", &input]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let deregs = w.emu.calls("DeregisterImage");
    assert_eq!(deregs.len(), 1, "{deregs:?}");
    assert_eq!(deregs[0]["request"]["ImageId"], json!(made[1]));
    assert_eq!(deregs[0]["request"]["DeleteAssociatedSnapshots"], json!("true"));
    w.rt.block_on(async {
        let left = ec2.describe_images().owners("self").send().await.unwrap();
        let mut left: Vec<String> = left
            .images()
            .iter()
            .map(|i| i.image_id().unwrap().to_string())
            .collect();
        left.sort();
        let mut want = vec![made[0].clone(), made[2].clone(), made[3].clone(), made[4].clone()];
        want.sort();
        assert_eq!(left, want);
        let gone = ec2.describe_snapshots().snapshot_ids(&doomed_snapshot).send().await;
        let e = gone.unwrap_err();
        let code = aws_sdk_ec2::error::ProvideErrorMetadata::code(&e).map(str::to_string);
        assert_eq!(code.as_deref(), Some("InvalidSnapshot.NotFound"));
    });
}

fn calls_of(state: &Path) -> Vec<Value> {
    std::fs::read_to_string(state.join("sim/calls.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect()
}

/// Killed (like kill -9) right after AWS deregistered the first AMI, before its answer reached the journal: the
/// resumed run deregisters no AMI twice, finishes the first from the journal and prunes the second.
#[test]
fn a_run_killed_mid_prune_resumes_without_a_second_deregistration() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let wf = state.join("prune.yaml");
    std::fs::write(&wf, PRUNE_ONLY).unwrap();
    let scenario = state.join("crash.yaml");
    let crash = "faults:\n  - {operation: 'ec2:DeregisterImage', nth: 1, crash: true}\n";
    std::fs::write(&scenario, format!("{SEEDED}{crash}")).unwrap();
    let (wf, scenario) = (wf.display().to_string(), scenario.display().to_string());
    let input = format!("instance_id={INSTANCE}");
    let o = drflow(
        state,
        &[
            "run",
            &wf,
            "--scenario",
            &scenario,
            "-i",
            &input,
            "-i",
            "keep=1",
            "--output",
            "plain",
        ],
    );
    assert_eq!(o.status.code(), None, "killed by a signal: {:?}", text(&o));
    let (list, _) = text(&drflow(state, &["runs"]));
    let run_id = list
        .lines()
        .find(|l| l.contains("unfinished"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{list}"))
        .to_string();
    assert!(!images(state, "us-east-1").contains(&"ami-0aaaaaaaaaaaaaaa2".to_string()));

    let o = drflow(state, &["resume", &run_id, "--output", "plain"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let deregistrations: Vec<String> = calls_of(state)
        .iter()
        .filter(|c| c["operation"] == "DeregisterImage")
        .map(|c| c["error"].as_str().unwrap_or("ok").to_string())
        .collect();
    // The killed call did its work (answered ok, never journaled); the resumed run found that AMI gone and did
    // not deregister it again.
    let dereg_ok = deregistrations.iter().filter(|e| *e == "ok").count();
    assert_eq!(dereg_ok, 2, "each AMI deregistered once: {deregistrations:?}");
    assert_eq!(deregistrations.len(), 2, "and none again: {deregistrations:?}");
    // Its journaled snapshot was asked for (already deleted along with it).
    let snapshot_calls: Vec<String> = calls_of(state)
        .iter()
        .filter(|c| c["operation"] == "DeleteSnapshot")
        .map(|c| c["error"].as_str().unwrap_or("ok").to_string())
        .collect();
    assert_eq!(snapshot_calls, ["InvalidSnapshot.NotFound"]);
    let left = images(state, "us-east-1");
    for gone in ["ami-0aaaaaaaaaaaaaaa2", "ami-0aaaaaaaaaaaaaaa3"] {
        assert!(!left.contains(&gone.to_string()), "{gone}: {left:?}");
    }
    for kept in [
        "ami-0aaaaaaaaaaaaaaa1",
        "ami-0aaaaaaaaaaaaaaa4",
        "ami-0bbbbbbbbbbbbbbb1",
    ] {
        assert!(left.contains(&kept.to_string()), "{kept}: {left:?}");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("runs").join(&run_id).join("report.json")).unwrap())
            .unwrap();
    let deleted: Vec<&str> = report["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(deleted, ["ami-0aaaaaaaaaaaaaaa2", "ami-0aaaaaaaaaaaaaaa3"]);
}

/// drflow never labels a parameter version (a label on the oldest is what stops SSM's writes).
#[test]
fn drflow_never_labels_parameter_versions() {
    for op in ["LabelParameterVersion", "UnlabelParameterVersion"] {
        assert!(drflow::cloud::operations::find(&format!("ssm:{op}")).is_none(), "{op}");
    }
    for a in drflow::actions::all() {
        assert!(!a.spec().calls.iter().any(|c| c.contains("Label")), "{}", a.spec().name);
    }
}

/// Over the wire: 100 versions of the parameter, the oldest labelled: the run fails with the way out and the
/// parameter is untouched; without the label the run writes version 101 and SSM keeps 100.
#[test]
fn the_parameter_version_limit_over_the_wire() {
    let w = World::new(&[], &["dr-ami-ec2.yaml"]);
    w.emu.config(0, 1);
    let ssm = aws_sdk_ssm::Client::new(&w.emu.sdk("us-east-1"));
    let ec2 = aws_sdk_ec2::Client::new(&w.emu.sdk("us-east-1"));
    let name = format!("/drflow/{}/ami", w.instance);
    let old = w.rt.block_on(async {
        let out = ec2
            .create_image()
            .instance_id(&w.instance)
            .name("old")
            .send()
            .await
            .unwrap();
        let old = out.image_id().unwrap().to_string();
        for i in 1..=100 {
            ssm.put_parameter()
                .name(&name)
                .value(&old)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .data_type("aws:ec2:image")
                .overwrite(i > 1)
                .send()
                .await
                .unwrap();
        }
        ssm.label_parameter_version()
            .name(&name)
            .parameter_version(1)
            .labels("golden")
            .send()
            .await
            .unwrap();
        old
    });
    let wf = w.workflow_named("dr-ami-ec2.yaml");
    let input = format!("instance_id={}", w.instance);
    // `plan --check` sees the label through GetParameterHistory (all pages) before any run.
    let o = w.emu.drflow(&w.state(), &["plan", &wf, "-i", &input, "--check"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("the oldest (version 1) carries the label golden"), "{out}");
    assert_eq!(w.emu.calls("GetParameterHistory").len(), 2, "two pages of 50");
    let o = w
        .emu
        .drflow(&w.state(), &["run", &wf, "-i", &input, "--output", "plain"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("its oldest (version 1) carries a label"), "{err}");
    assert!(err.contains(&format!("the parameter still holds {old}")), "{err}");
    assert!(err.contains("aws ssm unlabel-parameter-version"), "{err}");
    let puts: Vec<Value> = w
        .emu
        .calls("PutParameter")
        .into_iter()
        .filter(|c| c["region"] == "us-east-1")
        .collect();
    assert_eq!(puts.len(), 101, "100 by the test, one by the run: not retried");
    let current = |ssm: &aws_sdk_ssm::Client| {
        w.rt.block_on(async {
            let p = ssm.get_parameter().name(&name).send().await.unwrap();
            let p = p.parameter().unwrap();
            (p.value().unwrap().to_string(), p.version())
        })
    };
    assert_eq!(current(&ssm), (old.clone(), 100));
    assert!(
        w.emu.calls("DeregisterImage").is_empty(),
        "nothing pruned after the failure"
    );

    // The documented way out: remove the label (here through the SDK), run again.
    w.rt.block_on(async {
        ssm.unlabel_parameter_version()
            .name(&name)
            .parameter_version(1)
            .labels("golden")
            .send()
            .await
            .unwrap();
    });
    let o = w
        .emu
        .drflow(&w.state(), &["run", &wf, "-i", &input, "--output", "plain"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let (value, version) = current(&ssm);
    assert_ne!(value, old);
    assert_eq!(version, 101);
    let kept = w.rt.block_on(async {
        let mut n = 0;
        let mut next = None;
        loop {
            let page = ssm
                .get_parameter_history()
                .name(&name)
                .max_results(50)
                .set_next_token(next)
                .send()
                .await
                .unwrap();
            n += page.parameters().len();
            match page.next_token() {
                Some(t) => next = Some(t.to_string()),
                None => return n,
            }
        }
    });
    assert_eq!(kept, 100);
}
