//! End to end over the wire: the real `drflow` binary, the AWS SDK backend, and the local AWS emulator
//! (moto extended in tests/emulator/). Every check is made through AWS calls or the emulator's call log.

use std::time::{Duration, Instant};

use crate::common::emulator::World;
use crate::common::*;
use serde_json::{Value, json};

const PRIMARY: &str = "us-east-1";
const DR: &str = "us-west-2";

/// A world with an instance in the primary region and a `Default` vault in both regions.
fn world() -> World {
    World::new(&[PRIMARY, DR], &["dr-ami.yaml", "dr-ami-ec2.yaml"])
}

trait DrAmi {
    fn workflow(&self) -> String;
    fn run(&self, extra: &[&str]) -> (Option<i32>, String, String);
    fn run_workflow(&self, name: &str, extra: &[&str]) -> (Option<i32>, String, String);
    fn parameter(&self, region: &str) -> Option<(String, i64)>;
    fn image_state(&self, region: &str, ami: &str) -> Option<String>;
    fn journal(&self) -> Vec<Value>;
}

impl DrAmi for World {
    fn workflow(&self) -> String {
        self.workflow_named("dr-ami.yaml")
    }

    fn run(&self, extra: &[&str]) -> (Option<i32>, String, String) {
        self.run_workflow("dr-ami.yaml", extra)
    }

    fn run_workflow(&self, name: &str, extra: &[&str]) -> (Option<i32>, String, String) {
        let input = format!("instance_id={}", self.instance);
        let wf = self.workflow_named(name);
        let mut args = vec!["run", wf.as_str(), "-i", input.as_str(), "--output", "plain"];
        args.extend_from_slice(extra);
        let out = self.emu.drflow(&self.state(), &args);
        let (o, e) = text(&out);
        (out.status.code(), o, e)
    }

    fn parameter(&self, region: &str) -> Option<(String, i64)> {
        let name = format!("/drflow/{}/ami", self.instance);
        self.rt.block_on(async {
            let ssm = aws_sdk_ssm::Client::new(&self.emu.sdk(region));
            match ssm.get_parameter().name(name).send().await {
                Ok(r) => r.parameter().map(|p| (p.value().unwrap().to_string(), p.version())),
                Err(e) if format!("{e:?}").contains("ParameterNotFound") => None,
                Err(e) => panic!("{e:?}"),
            }
        })
    }

    fn image_state(&self, region: &str, ami: &str) -> Option<String> {
        self.rt.block_on(async {
            let ec2 = aws_sdk_ec2::Client::new(&self.emu.sdk(region));
            let r = ec2.describe_images().image_ids(ami).send().await.ok()?;
            r.images()
                .first()
                .and_then(|i| i.state())
                .map(|s| s.as_str().to_string())
        })
    }

    fn journal(&self) -> Vec<Value> {
        let runs = self.state().join("runs");
        let run = std::fs::read_dir(runs).unwrap().next().unwrap().unwrap().path();
        std::fs::read_to_string(run.join("journal.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn published_ami(stdout: &str, region: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(region) && l.contains("= ami-"))
        .unwrap_or_else(|| panic!("no AMI for {region} in\n{stdout}"));
    line.split("= ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_pipeline_publishes_each_regions_ami_over_the_wire() {
    let w = world();
    let (code, out, err) = w.run(&[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    // Every recovery point carries its lifecycle: the primary's shorter than the DR copy's.
    let backup = &w.emu.calls("StartBackupJob")[0]["request"];
    assert_eq!(backup["Lifecycle"]["DeleteAfterDays"], 7, "{backup}");
    let copy = &w.emu.calls("StartCopyJob")[0]["request"];
    assert_eq!(copy["Lifecycle"]["DeleteAfterDays"], 35, "{copy}");
    for region in [PRIMARY, DR] {
        let ami = published_ami(&out, region);
        let (value, version) = w.parameter(region).expect("parameter written");
        assert_eq!(value, ami, "{region}");
        assert_eq!(version, 1);
        assert_eq!(
            w.image_state(region, &ami).as_deref(),
            Some("available"),
            "{ami} exists in {region}"
        );
    }
    assert_ne!(published_ami(&out, PRIMARY), published_ami(&out, DR));
    assert_eq!(w.emu.calls("StartBackupJob").len(), 1);
    assert_eq!(w.emu.calls("StartCopyJob").len(), 1);
    // The copy was started in the primary region (AWS Backup copies from the source region).
    assert_eq!(w.emu.calls("StartCopyJob")[0]["region"], PRIMARY);
}

#[test]
fn the_dr_stack_runs_the_dr_ami() {
    let w = world();
    let (code, out, err) = w.run(&["-i", "deploy_stack=true"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let dr_ami = published_ami(&out, DR);
    let (stacks, running) = dr_stacks(&w);
    assert_eq!(stacks, [format!("drflow-dr-{}", w.instance)]);
    assert_eq!(running, dr_ami);
}

/// The stacks in the DR region, and the AMI the first one's `InstanceId` runs.
fn dr_stacks(w: &World) -> (Vec<String>, String) {
    w.rt.block_on(async {
        let cfn = aws_sdk_cloudformation::Client::new(&w.emu.sdk(DR));
        let stacks = cfn.describe_stacks().send().await.expect("stacks");
        let names = stacks
            .stacks()
            .iter()
            .filter_map(|s| s.stack_name().map(str::to_string))
            .collect();
        let outputs = stacks.stacks()[0].outputs().to_vec();
        let id = outputs
            .iter()
            .find(|o| o.output_key() == Some("InstanceId"))
            .and_then(|o| o.output_value())
            .expect("InstanceId output")
            .to_string();
        let ec2 = aws_sdk_ec2::Client::new(&w.emu.sdk(DR));
        let r = ec2.describe_instances().instance_ids(id).send().await.unwrap();
        (
            names,
            r.reservations()[0].instances()[0].image_id().unwrap().to_string(),
        )
    })
}

#[test]
fn a_failed_backup_job_fails_the_run_and_changes_no_parameter() {
    let w = world();
    w.emu.control(
        "POST",
        "/_drflow/fail-next-job",
        Some(json!({"kind": "backup", "message": "Insufficient privileges to perform this action."})),
    );
    let (code, out, err) = w.run(&[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("Insufficient privileges to perform this action."), "{err}");
    assert!(err.contains("wait_backup"), "{err}");
    assert_eq!(w.parameter(PRIMARY), None);
    assert_eq!(w.parameter(DR), None);
    assert!(w.emu.calls("PutParameter").is_empty());
}

#[test]
fn throttled_waits_are_retried_and_every_attempt_is_journaled() {
    let w = world();
    w.emu.fault(
        json!({"service": "backup", "operation": "DescribeBackupJob", "nth": 1, "count": 2,
                        "code": "ThrottlingException", "message": "Rate exceeded"}),
    );
    let (code, out, err) = w.run(&[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let throttled: Vec<Value> = w
        .journal()
        .into_iter()
        .filter(|e| e["type"] == "attempt_failed" && e["step"] == "wait_backup")
        .collect();
    assert_eq!(throttled.len(), 2, "{throttled:?}");
    for e in &throttled {
        assert_eq!(e["error"]["code"], "ThrottlingException");
        assert!(e["retry_in_ms"].is_u64());
    }
    assert!(w.parameter(DR).is_some());
}

#[test]
fn access_denied_fails_after_one_attempt_with_a_clear_message() {
    let w = world();
    w.emu.fault(
        json!({"service": "backup", "operation": "StartBackupJob", "code": "AccessDeniedException",
                        "status": 403, "message": "User is not authorized to perform: backup:StartBackupJob"}),
    );
    let (code, out, err) = w.run(&[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("backup:StartBackupJob in us-east-1 was denied"), "{err}");
    assert_eq!(w.emu.calls("StartBackupJob").len(), 1);
    assert!(w.emu.calls("PutParameter").is_empty());
}

#[test]
fn kill_9_during_the_copy_wait_then_resume_makes_no_second_job() {
    let w = world();
    // Jobs stay in each state for 4 describes, so the copy wait lasts a few seconds.
    w.emu.config(2, 4);
    let input = format!("instance_id={}", w.instance);
    let wf = w.workflow();
    let mut child = w
        .emu
        .drflow_cmd(&w.state(), &["run", &wf, "-i", &input, "--output", "plain"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the run never reached the copy wait");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        let polled = w.state().join("runs").exists()
            && w.journal()
                .iter()
                .any(|e| e["type"] == "polled" && e["step"] == "wait_copy");
        if polled {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let journal = w.journal();
    let copy_job = journal
        .iter()
        .find(|e| e["type"] == "recorded" && e["step"] == "copy")
        .map(|e| e["value"].clone())
        .expect("copy job journaled");
    let run_id = journal[0]["run_id"].as_str().unwrap().to_string();

    let out = w.emu.drflow(&w.state(), &["resume", &run_id, "--output", "plain"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(w.emu.calls("StartBackupJob").len(), 1);
    assert_eq!(w.emu.calls("StartCopyJob").len(), 1);
    let after = w.journal();
    let finished_copy = after
        .iter()
        .find(|e| e["type"] == "step_succeeded" && e["step"] == "copy")
        .expect("copy finished");
    assert_eq!(finished_copy["outputs"]["job_id"], copy_job);
    let dr = published_ami(&stdout, DR);
    assert_eq!(w.parameter(DR).unwrap().0, dr);
    assert_eq!(w.image_state(DR, &dr).as_deref(), Some("available"));
}

#[test]
fn a_parameter_holding_a_newer_ami_is_not_rolled_back() {
    let w = world();
    let (code, out, err) = w.run(&[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let old_dr = published_ami(&out, DR);
    // A newer AMI appears in the DR region and is published by someone else.
    std::thread::sleep(Duration::from_millis(1100));
    let newer = w.rt.block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&w.emu.sdk(DR));
        let images = ec2.describe_images().send().await.unwrap();
        let base = images
            .images()
            .iter()
            .find(|i| i.image_id() != Some(old_dr.as_str()))
            .unwrap();
        let run = ec2
            .run_instances()
            .image_id(base.image_id().unwrap())
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .unwrap();
        let id = run.instances()[0].instance_id().unwrap().to_string();
        let img = ec2.create_image().instance_id(id).name("newer").send().await.unwrap();
        let ami = img.image_id().unwrap().to_string();
        for _ in 0..10 {
            let d = ec2.describe_images().image_ids(&ami).send().await.unwrap();
            if d.images()[0].state().map(|s| s.as_str()) == Some("available") {
                break;
            }
        }
        let ssm = aws_sdk_ssm::Client::new(&w.emu.sdk(DR));
        ssm.put_parameter()
            .name(format!("/drflow/{}/ami", w.instance))
            .value(&ami)
            .data_type("aws:ec2:image")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .unwrap();
        ami
    });
    assert_eq!(w.parameter(DR).unwrap().0, newer);
    // Publishing the older AMI again is refused and changes nothing.
    let publish = w.dir.path().join("workflows/publish.yaml");
    std::fs::write(
        &publish,
        format!(
            "version: 1\nname: publish\nregions: {{dr: {DR}}}\nsteps:\n  - id: put\n    action: ssm.put_parameter\n    region: dr\n    with: {{name: /drflow/{}/ami, value: {old_dr}}}\n",
            w.instance
        ),
    )
    .unwrap();
    let out = w
        .emu
        .drflow(&w.state(), &["run", publish.to_str().unwrap(), "--output", "plain"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("refusing to replace"), "{stderr}");
    let (value, _) = w.parameter(DR).unwrap();
    assert_eq!(value, newer);
}

/// The SDK backend's answers to the awkward cases, over the wire.
#[test]
fn the_aws_backend_maps_the_awkward_answers() {
    use drflow::cloud::{CopyImage, ErrorKind};
    let w = world();
    let cloud = drflow::cloud::aws::from_sdk_config(w.emu.sdk(PRIMARY));
    w.rt.block_on(async {
        let found = cloud
            .ec2
            .describe_instances(PRIMARY, std::slice::from_ref(&w.instance))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].state, "running");

        let base = found[0].image_id.clone();
        let missing = "ami-00000000deadbeef".to_string();
        assert!(
            cloud
                .ec2
                .describe_images(PRIMARY, std::slice::from_ref(&missing))
                .await
                .unwrap()
                .is_empty()
        );
        let both = cloud
            .ec2
            .describe_images(PRIMARY, &[missing.clone(), base.clone()])
            .await
            .unwrap();
        assert_eq!(
            both.iter().map(|i| i.image_id.as_str()).collect::<Vec<_>>(),
            [base.as_str()]
        );
        let malformed = cloud
            .ec2
            .describe_images(PRIMARY, &["not-an-ami".to_string()])
            .await
            .unwrap_err();
        assert_eq!(malformed.code, "InvalidAMIID.Malformed");

        // CopyImage is called in the destination region.
        let copy = CopyImage {
            source_region: PRIMARY.into(),
            source_image_id: base.clone(),
            name: "wire-copy".into(),
            client_token: "drflow-test-token".into(),
            tags: Default::default(),
            encrypted: false,
            kms_key_id: None,
        };
        let copied = cloud.ec2.copy_image(DR, &copy).await.unwrap();
        assert_eq!(
            cloud
                .ec2
                .describe_images(DR, std::slice::from_ref(&copied))
                .await
                .unwrap()
                .len(),
            1
        );

        assert_eq!(cloud.ssm.get_parameter(PRIMARY, "/drflow/none").await.unwrap(), None);
        assert_eq!(
            cloud.backup.describe_backup_vault(DR, "Default").await.unwrap().name,
            "Default"
        );
        let e = cloud.backup.describe_backup_vault(DR, "Nope").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("backup:DescribeBackupVault in us-west-2"), "{e}");

        let cfn = &cloud.cloudformation;
        assert_eq!(cfn.describe_stack(DR, "drflow-none").await.unwrap(), None);
        cfn.validate_template(DR, &std::fs::read_to_string(repo("stacks/dr-ec2.yaml")).unwrap())
            .await
            .unwrap();
        assert!(cfn.validate_template(DR, "Resources: [").await.is_err());
    });
    // One HTTP call per attempt: the SDK's own retries are off.
    let before = w.emu.calls("GetParameter").len();
    w.emu
        .fault(json!({"service": "ssm", "operation": "GetParameter", "code": "ThrottlingException"}));
    let Err(e) = w.rt.block_on(cloud.ssm.get_parameter(PRIMARY, "/x")) else {
        panic!(
            "not throttled: {} {:?}",
            w.emu.control("GET", "/_drflow/faults", None),
            w.emu.calls("GetParameter")
        );
    };
    assert_eq!(e.kind, ErrorKind::Throttling);
    assert_eq!(w.emu.calls("GetParameter").len(), before + 1);
}

#[test]
fn the_ec2_path_creates_and_copies_one_ami_over_the_wire() {
    let w = world();
    let (code, out, err) = w.run_workflow("dr-ami-ec2.yaml", &[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    for region in [PRIMARY, DR] {
        let ami = published_ami(&out, region);
        assert_eq!(w.parameter(region).unwrap().0, ami, "{region}");
        assert_eq!(
            w.image_state(region, &ami).as_deref(),
            Some("available"),
            "{ami} in {region}"
        );
    }
    let creates = w.emu.calls("CreateImage");
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0]["region"], PRIMARY);
    let copies = w.emu.calls("CopyImage");
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["region"], DR, "CopyImage is called in the destination region");
    assert!(w.emu.calls("StartBackupJob").is_empty());
}

/// The recovery points in a region's `Default` vault, through the emulator's AWS Backup API.
fn recovery_points(w: &World, region: &str) -> Vec<String> {
    w.rt.block_on(async {
        let backup = aws_sdk_backup::Client::new(&w.emu.sdk(region));
        let r = backup
            .list_recovery_points_by_backup_vault()
            .backup_vault_name("Default")
            .send()
            .await
            .expect("recovery points");
        r.recovery_points()
            .iter()
            .filter_map(|p| p.recovery_point_arn().map(str::to_string))
            .collect()
    })
}

#[test]
fn the_pipeline_with_the_dr_stack_holds_under_throttling_and_lost_answers_over_the_wire() {
    let w = world();
    // 30% of the answers of every start call lost after the work was done (a 5xx), and 30% of every call throttled;
    // the first StartBackupJob answer lost for sure.
    w.emu
        .fault(json!({"operation": "StartBackupJob", "lose_response": true}));
    w.emu.fault(json!({
        "operations": ["StartBackupJob", "StartCopyJob", "CreateStack", "UpdateStack", "PutParameter"],
        "lose_response": true, "probability": 0.3, "seed": 5, "count": 0
    }));
    w.emu.fault(json!({
        "code": "ThrottlingException", "message": "Rate exceeded", "probability": 0.3, "seed": 6, "count": 0
    }));
    let (code, out, err) = w.run(&["-i", "deploy_stack=true"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let lost = w.emu.control("GET", "/_drflow/calls?lost=true", None);
    let lost = lost.as_array().unwrap();
    assert!(!lost.is_empty(), "no answer was lost: the test proves nothing");
    let throttled = w
        .journal()
        .iter()
        .filter(|e| e["type"] == "attempt_failed" && e["error"]["code"] == "ThrottlingException")
        .count();
    assert!(throttled >= 5, "{throttled} throttled attempts");

    // One backup, one copy: one recovery point in each vault, whatever was retried.
    assert_eq!(recovery_points(&w, PRIMARY).len(), 1, "{lost:?}");
    assert_eq!(recovery_points(&w, DR).len(), 1, "{lost:?}");
    // Each region's parameter holds that region's AMI; the one DR stack runs the DR AMI.
    for region in [PRIMARY, DR] {
        let ami = published_ami(&out, region);
        assert_eq!(w.parameter(region).map(|p| p.0), Some(ami), "{region}");
    }
    let dr_ami = published_ami(&out, DR);
    let (stacks, running) = dr_stacks(&w);
    assert_eq!(stacks.len(), 1, "{stacks:?}");
    assert_eq!(running, dr_ami);
}

#[test]
fn a_25_instance_fleet_over_the_wire_with_a_fifth_of_calls_throttled() {
    let w = World::new(&[PRIMARY, DR], &["dr-fleet.yaml"]);
    // 25 instances tagged to be protected (the seeded one is not tagged).
    let fleet: Vec<String> = w.rt.block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&w.emu.sdk(PRIMARY));
        let images = ec2.describe_images().send().await.expect("images");
        let ami = images.images()[0].image_id().unwrap().to_string();
        let tag = aws_sdk_ec2::types::Tag::builder()
            .key("drflow:protect")
            .value("true")
            .build();
        let run = ec2
            .run_instances()
            .image_id(ami)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(25)
            .max_count(25)
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .tags(tag)
                    .build(),
            )
            .send()
            .await
            .expect("instances");
        run.instances()
            .iter()
            .map(|i| i.instance_id().unwrap().to_string())
            .collect()
    });
    assert_eq!(fleet.len(), 25);
    w.emu.fault(json!({
        "code": "ThrottlingException", "message": "Rate exceeded", "probability": 0.2, "seed": 25, "count": 0
    }));
    let wf = w.workflow_named("dr-fleet.yaml");
    let out = w.emu.drflow(&w.state(), &["run", wf.as_str(), "--output", "plain"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stderr}",
        stdout.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    let throttled = w
        .journal()
        .iter()
        .filter(|e| e["type"] == "attempt_failed" && e["error"]["code"] == "ThrottlingException")
        .count();
    assert!(throttled >= 20, "{throttled} throttled attempts");
    // Looked at without the faults: every instance published in both regions, from exactly one backup and one copy.
    w.emu.control("DELETE", "/_drflow/faults", None);
    for region in [PRIMARY, DR] {
        assert_eq!(recovery_points(&w, region).len(), 25, "{region}");
    }
    for i in &fleet {
        let name = format!("/drflow/{i}/ami");
        for region in [PRIMARY, DR] {
            let value = w.rt.block_on(async {
                let ssm = aws_sdk_ssm::Client::new(&w.emu.sdk(region));
                ssm.get_parameter()
                    .name(&name)
                    .send()
                    .await
                    .ok()?
                    .parameter()?
                    .value()
                    .map(str::to_string)
            });
            let ami = value.unwrap_or_else(|| panic!("{name} in {region}"));
            assert_eq!(w.image_state(region, &ami).as_deref(), Some("available"), "{ami}");
        }
    }
}

/// Discovery by an AWS Backup plan over the wire: a plan and two selections created through the emulator, then
/// `backup.plan_resources` and dr-fleet's discovery step (`ec2.find_instances` with `backup_plan_id`) run by the
/// real binary. Both find exactly the plan's instances, and nothing but reads is called.
#[test]
fn discovery_by_backup_plan_reads_the_plan_over_the_wire_and_changes_nothing() {
    use aws_sdk_backup::types::{BackupSelection, ConditionParameter, Conditions};

    let w = World::new(&[PRIMARY], &[]);
    let arn = |id: &str| format!("arn:aws:ec2:{PRIMARY}:123456789012:instance/{id}");
    // web, web-test (excluded by a condition), named (selected by its ARN), other (wrong team), gone (web, excluded
    // by NotResources); the seeded instance is in no selection.
    let (plan_id, ids) = w.rt.block_on(async {
        let mut ids = Vec::new();
        for tags in [
            &[("team", "web")][..],
            &[("team", "web"), ("stage", "testing")],
            &[("Name", "named")],
            &[("team", "other")],
            &[("team", "web")],
        ] {
            ids.push(w.launch(PRIMARY, tags).await);
        }
        let backup = aws_sdk_backup::Client::new(&w.emu.sdk(PRIMARY));
        let plan_id = w.backup_plan(PRIMARY, "drflow-fleet", "daily", None).await;
        let role = "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole";
        let condition = |k: &str, v: &str| {
            ConditionParameter::builder()
                .condition_key(k)
                .condition_value(v)
                .build()
        };
        let selections = [
            BackupSelection::builder()
                .selection_name("named")
                .iam_role_arn(role)
                .resources(arn(&ids[2]))
                .build()
                .unwrap(),
            BackupSelection::builder()
                .selection_name("web-not-test")
                .iam_role_arn(role)
                .resources("arn:aws:ec2:*:*:instance/*")
                .not_resources(arn(&ids[4]))
                .conditions(
                    Conditions::builder()
                        .string_equals(condition("aws:ResourceTag/team", "web"))
                        .string_not_like(condition("aws:ResourceTag/stage", "test*"))
                        .build(),
                )
                .build()
                .unwrap(),
        ];
        for s in selections {
            backup
                .create_backup_selection()
                .backup_plan_id(&plan_id)
                .backup_selection(s)
                .send()
                .await
                .expect("selection");
        }
        (plan_id, ids)
    });
    let mut expected = vec![ids[0].clone(), ids[2].clone()];
    expected.sort();

    let wf = w.dir.path().join("discover.yaml");
    std::fs::write(
        &wf,
        r#"version: 1
name: discover
inputs:
  backup_plan_id: {type: string}
regions: {primary: us-east-1}
steps:
  - id: by_plan
    action: backup.plan_resources
    region: primary
    with: {backup_plan_id: "${{ inputs.backup_plan_id }}"}
  - id: fleet_discovery
    action: ec2.find_instances
    region: primary
    with: {tag_key: "drflow:protect", backup_plan_id: "${{ inputs.backup_plan_id }}"}
"#,
    )
    .unwrap();
    w.emu.control("DELETE", "/_drflow/calls", None);
    let input = format!("backup_plan_id={plan_id}");
    let out = w.emu.drflow(
        &w.state(),
        &["run", wf.to_str().unwrap(), "-i", &input, "--output", "plain"],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let journal = w.journal();
    for step in ["by_plan", "fleet_discovery"] {
        let done = journal
            .iter()
            .find(|e| e["type"] == "step_succeeded" && e["step"] == step)
            .unwrap_or_else(|| panic!("{step} did not succeed"));
        assert_eq!(done["outputs"]["instance_ids"], json!(expected), "{step}");
        assert_eq!(done["outputs"]["count"], 2, "{step}");
    }
    // Each step listed the plan once and read each of its two selections.
    assert_eq!(w.emu.calls("ListBackupSelections").len(), 2);
    assert_eq!(w.emu.calls("GetBackupSelection").len(), 4);
    let calls = match w.emu.control("GET", "/_drflow/calls", None) {
        Value::Array(calls) => calls,
        other => panic!("calls: {other}"),
    };
    let writes: Vec<String> = calls
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["service"].as_str().unwrap_or("?"),
                c["operation"].as_str().unwrap_or("?")
            )
        })
        .filter(|c| drflow::cloud::operations::mutates(c))
        .collect();
    assert!(writes.is_empty(), "mutating calls: {writes:?}");
    assert!(!calls.is_empty());

    // A plan that does not exist: the run fails with AWS's error, naming the plan, after one attempt.
    w.emu.control("DELETE", "/_drflow/calls", None);
    let out = w.emu.drflow(
        &w.dir.path().join("state-missing"),
        &[
            "run",
            wf.to_str().unwrap(),
            "-i",
            "backup_plan_id=no-such-plan",
            "--output",
            "plain",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_ne!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let all = format!("{stdout}\n{stderr}");
    assert!(
        all.contains("ResourceNotFoundException") && all.contains("`no-such-plan` does not exist in us-east-1"),
        "{all}"
    );
    assert_eq!(w.emu.calls("ListBackupSelections").len(), 1, "not found is not retried");
}
