//! DR rehearsals end to end over the wire: the real `drflow` binary, the AWS SDK backend and the local AWS
//! emulator (moto extended in tests/emulator/). Every check is made through AWS calls, the emulator's call log,
//! the run's journal and its report files.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::emulator::World;
use crate::common::*;
use drflow::report::Report;
use serde_json::{Value, json};

const PRIMARY: &str = "us-east-1";
const DR: &str = "us-west-2";

/// An emulator with an instance in the primary region, a `Default` vault in both regions, and the shipped
/// rehearsal (polling in seconds instead of minutes) beside the shipped stack.
fn world() -> World {
    World::new(&[PRIMARY, DR], &["dr-rehearsal.yaml"])
}

trait Rehearsal {
    fn workflow(&self) -> String;
    fn stack(&self) -> String;
    fn run_args(&self) -> Vec<String>;
    fn run_dir(&self) -> PathBuf;
    fn journal(&self) -> Vec<Value>;
    fn report(&self) -> Report;
    fn stack_exists(&self) -> bool;
    fn instance_state(&self, id: &str) -> String;
    fn calls_in(&self, operation: &str, region: &str) -> usize;
}

impl Rehearsal for World {
    fn workflow(&self) -> String {
        self.workflow_named("dr-rehearsal.yaml")
    }

    fn stack(&self) -> String {
        format!("drflow-rehearsal-{}", self.instance)
    }

    fn run_args(&self) -> Vec<String> {
        vec![
            "run".into(),
            self.workflow(),
            "-i".into(),
            format!("instance_id={}", self.instance),
            "--output".into(),
            "plain".into(),
        ]
    }

    fn run_dir(&self) -> PathBuf {
        let runs = self.state().join("runs");
        std::fs::read_dir(runs).unwrap().next().unwrap().unwrap().path()
    }

    fn journal(&self) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(self.run_dir().join("journal.jsonl")) else {
            return Vec::new();
        };
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn report(&self) -> Report {
        serde_json::from_str(&std::fs::read_to_string(self.run_dir().join("report.json")).unwrap()).unwrap()
    }

    /// Through drflow's own AWS backend, pointed at the emulator.
    fn stack_exists(&self) -> bool {
        let cloud = drflow::cloud::aws::from_sdk_config(self.emu.sdk(DR));
        self.rt
            .block_on(cloud.cloudformation.describe_stack(DR, &self.stack()))
            .unwrap()
            .is_some()
    }

    fn instance_state(&self, id: &str) -> String {
        let cloud = drflow::cloud::aws::from_sdk_config(self.emu.sdk(DR));
        let found = self
            .rt
            .block_on(cloud.ec2.describe_instances(DR, &[id.to_string()]))
            .unwrap();
        found[0].state.clone()
    }

    fn calls_in(&self, operation: &str, region: &str) -> usize {
        self.emu
            .calls(operation)
            .iter()
            .filter(|c| c["region"] == region)
            .count()
    }
}

/// The time of a step's journal event (`step_started`, `step_succeeded`, ...).
fn ts(journal: &[Value], kind: &str, step: &str) -> i64 {
    journal
        .iter()
        .find(|e| e["type"] == kind && e["step"] == step)
        .and_then(|e| e["ts_ms"].as_i64())
        .unwrap_or_else(|| panic!("no {kind} of step {step} in the journal"))
}

/// A step's outputs, from its `step_succeeded` event.
fn step_outputs(journal: &[Value], step: &str) -> Value {
    journal
        .iter()
        .find(|e| e["type"] == "step_succeeded" && e["step"] == step)
        .map(|e| e["outputs"].clone())
        .unwrap_or_else(|| panic!("step {step} did not succeed"))
}

fn kinds(list: &[drflow::report::model::Resource], kind: &str) -> Vec<String> {
    list.iter()
        .filter(|r| r.kind.label() == kind)
        .map(|r| r.id.clone())
        .collect()
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

#[test]
fn a_passing_rehearsal_launches_verifies_and_deletes_the_dr_stack() {
    let w = world();
    // Jobs stay 3 describes in each state: the backup takes seconds, so the DR copy (dated when it is copied) is
    // younger than the source backup by at least that.
    w.emu.config(2, 3);
    let args = w.run_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.emu.drflow(&w.state(), &args);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let verdict = last_line(&stdout);
    assert!(verdict.starts_with("REHEARSAL PASSED dr-rehearsal run="), "{verdict}");
    assert!(verdict.contains(" rto=") && verdict.contains(" rpo="), "{verdict}");

    // Over the wire: the stack was created, the instance's status checked, the stack deleted, in the DR region.
    assert_eq!(w.calls_in("CreateStack", DR), 1);
    assert!(w.calls_in("DescribeInstanceStatus", DR) >= 1);
    assert_eq!(w.calls_in("DeleteStack", DR), 1);
    assert_eq!(w.emu.calls("DeleteStack").len(), 1);
    assert!(!w.stack_exists(), "the rehearsal stack is gone");

    let r = w.report();
    let h = r.rehearsal.clone().expect("a rehearsal");
    assert_eq!((r.status.as_str(), h.verdict.as_str()), ("succeeded", "passed"));
    let instance = h.dr_instance.clone().unwrap();
    assert_eq!(w.instance_state(&instance), "terminated");
    // The instance ran the DR AMI: the one the copy job made.
    let dr_ami = w
        .journal()
        .iter()
        .find(|e| e["type"] == "step_succeeded" && e["step"] == "dr_ami")
        .map(|e| e["outputs"]["image_id"].as_str().unwrap().to_string())
        .unwrap();
    assert_eq!(h.dr_ami.as_deref(), Some(dr_ami.as_str()));
    assert_eq!(
        (h.system_status.as_deref(), h.instance_status.as_deref()),
        (Some("ok"), Some("ok"))
    );
    // RTO, pipeline and RPO, from the journal's own times and outputs.
    let journal = w.journal();
    let run_started = journal[0]["ts_ms"].as_i64().unwrap();
    let launched = ts(&journal, "step_started", "launch");
    let verified = ts(&journal, "step_succeeded", "verify");
    assert_eq!(r.format, 2);
    assert_eq!(h.rto_ms, Some(verified - launched), "launch start → verified: {h:?}");
    assert_eq!(
        h.pipeline_ms,
        Some(verified - run_started),
        "run start → verified: {h:?}"
    );
    assert_eq!(h.launch_step.as_deref(), Some("launch"));
    assert_eq!(h.launch_offset_ms, Some(launched - run_started));
    assert!(h.rto_ms.unwrap() < h.pipeline_ms.unwrap(), "{h:?}");
    // RPO: the age of the primary AMI (the recovery point the copy job copied), not of the DR copy.
    let backup = step_outputs(&journal, "wait_backup");
    let primary = step_outputs(&journal, "primary_ami");
    let source_created = primary["creation_date"].as_i64().unwrap() * 1000;
    let copy_created = step_outputs(&journal, "dr_ami")["creation_date"].as_i64().unwrap() * 1000;
    assert_eq!(h.source_ami.as_deref(), backup["image_id"].as_str());
    assert_eq!(h.source_ami.as_deref(), primary["image_id"].as_str());
    assert_eq!(
        h.source_recovery_point.as_deref(),
        backup["recovery_point_arn"].as_str()
    );
    assert_eq!(h.source_region.as_deref(), Some(PRIMARY));
    assert_eq!(h.rpo_ms, Some(verified - source_created), "{h:?}");
    assert!(
        copy_created - source_created >= 3000,
        "the copy ({copy_created}) is dated after the backup ({source_created})"
    );
    assert!(h.rpo_ms.unwrap() >= verified - copy_created + 3000, "{h:?}");
    assert_eq!(
        h.source_ami_created_at.as_deref(),
        Some(drflow::report::model::when(source_created).as_str())
    );
    assert_eq!(
        h.dr_ami_created_at.as_deref(),
        Some(drflow::report::model::when(copy_created).as_str())
    );
    assert!(verdict.ends_with(&format!(
        "rto={} rpo={} pipeline={}",
        h.rto.clone().unwrap(),
        h.rpo.clone().unwrap(),
        h.pipeline.clone().unwrap()
    )));
    let t = h.teardown.clone().unwrap();
    assert_eq!((t.status.as_str(), t.deleted), ("succeeded", Some(true)));
    for s in r.steps.iter().filter(|s| s.id != "notify") {
        assert_eq!(s.status, "succeeded", "{s:?}");
        assert!(
            s.duration_ms.is_some() && (s.action.is_none() || s.attempts >= 1),
            "{s:?}"
        );
    }
    // A passing rehearsal notifies nobody.
    let notify = r.steps.iter().find(|s| s.id == "notify").unwrap();
    assert_eq!(notify.status, "skipped");
    assert!(w.emu.calls("Publish").is_empty());
    assert_eq!(kinds(&r.created, "backup job").len(), 1);
    assert_eq!(kinds(&r.created, "copy job").len(), 1);
    assert!(kinds(&r.created, "AMI").contains(&dr_ami));
    assert_eq!(kinds(&r.created, "CloudFormation stack"), [w.stack()]);
    assert_eq!(kinds(&r.created, "EC2 instance"), std::slice::from_ref(&instance));
    assert_eq!(kinds(&r.deleted, "CloudFormation stack"), [w.stack()]);
    assert_eq!(kinds(&r.deleted, "EC2 instance"), [instance]);
    assert!(r.left_behind.is_empty());
    for f in ["report.md", "report.html"] {
        assert!(w.run_dir().join(f).exists(), "{f}");
    }
}

#[test]
fn impaired_status_checks_fail_the_rehearsal_and_the_stack_is_still_deleted() {
    let w = world();
    // Status checks stay `initializing` for 5 describes: time to impair the new instance.
    w.emu
        .control("POST", "/_drflow/config", Some(json!({"status_describes": 5})));
    let out_file = w.dir.path().join("stdout");
    let err_file = w.dir.path().join("stderr");
    let args = w.run_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = w
        .emu
        .drflow_cmd(&w.state(), &args)
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let instance = loop {
        assert!(Instant::now() < deadline, "the stack was never launched");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its instance was impaired"
        );
        let launched = w.state().join("runs").exists().then(|| w.journal()).and_then(|j| {
            j.into_iter()
                .find(|e| e["type"] == "step_succeeded" && e["step"] == "launch")
                .and_then(|e| e["outputs"]["outputs"]["InstanceId"].as_str().map(str::to_string))
        });
        if let Some(id) = launched {
            break id;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    w.emu.control(
        "POST",
        "/_drflow/impair-instance",
        Some(json!({"instance_id": instance, "check": "instance"})),
    );
    let status = child.wait().unwrap();
    let stdout = std::fs::read_to_string(&out_file).unwrap();
    let stderr = std::fs::read_to_string(&err_file).unwrap();
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let verdict = last_line(&stdout);
    assert!(verdict.starts_with("REHEARSAL FAILED dr-rehearsal run="), "{verdict}");
    assert!(
        verdict.contains(" step=verify: ") && verdict.contains("instance impaired"),
        "{verdict}"
    );

    // Teardown still ran, over the wire.
    assert_eq!(w.calls_in("DeleteStack", DR), 1);
    assert!(!w.stack_exists());
    assert_eq!(w.instance_state(&instance), "terminated");

    let r = w.report();
    let h = r.rehearsal.clone().unwrap();
    assert_eq!((r.status.as_str(), h.verdict.as_str()), ("failed", "failed"));
    let f = r.failure.clone().unwrap();
    assert_eq!((f.step.as_str(), f.code.as_str()), ("verify", "StatusCheckImpaired"));
    assert!(
        f.message.contains(&instance) && f.message.contains("instance impaired"),
        "{}",
        f.message
    );
    assert_eq!(h.teardown.unwrap().status, "succeeded");
    assert!(r.left_behind.is_empty());
    assert_eq!((h.rto_ms, h.pipeline_ms), (None, None));
    // Never verified: the source backup's age at the end of the run.
    let primary = step_outputs(&w.journal(), "primary_ami");
    assert_eq!(h.source_ami.as_deref(), primary["image_id"].as_str());
    assert_eq!(
        h.rpo_ms,
        Some(r.ended_ms - primary["creation_date"].as_i64().unwrap() * 1000)
    );
}

#[test]
fn sigterm_checkpoints_a_scheduled_rehearsal_and_resume_finishes_it() {
    let w = world();
    // Jobs stay in each state for 30 describes: the backup wait lasts long enough to be interrupted.
    w.emu.config(2, 30);
    let schedule = w.dir.path().join("schedule.yaml");
    std::fs::write(
        &schedule,
        format!(
            "version: 1\nentries:\n  - name: rehearse\n    workflow: workflows/dr-rehearsal.yaml\n    cron: \"* * * * * *\"\n    inputs: {{instance_id: {}}}\n",
            w.instance
        ),
    )
    .unwrap();
    let mut child = w
        .emu
        .drflow_cmd(&w.state(), &["schedule", schedule.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "the scheduled run never reached the backup wait"
        );
        assert!(child.try_wait().unwrap().is_none(), "drflow schedule ended early");
        let waiting = w.state().join("runs").exists()
            && w.journal()
                .iter()
                .any(|e| e["type"] == "polled" && e["step"] == "wait_backup");
        if waiting {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Fire times pass while the run is going: they are skipped.
    std::thread::sleep(Duration::from_millis(1500));
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < deadline, "drflow schedule did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Every line up to the end of its output (the reader thread ends at EOF), not only those read so far.
    let lines: Vec<String> = rx.iter().collect();
    let all = lines.join("\n");
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("[rehearse] skipped the run due at"), "{all}");
    let resume_line = lines
        .iter()
        .find(|l| l.contains("interrupted and checkpointed; continue it with: drflow --state-dir "))
        .unwrap_or_else(|| panic!("no resume command in\n{all}"));
    assert!(lines.last().unwrap().ends_with("schedule: stopped"), "{all}");
    let journal = w.journal();
    let run_id = journal[0]["run_id"].as_str().unwrap().to_string();
    assert!(resume_line.ends_with(&format!(" resume {run_id}")), "{resume_line}");
    assert!(
        !journal.iter().any(|e| e["type"] == "run_finished"),
        "checkpointed, not finished"
    );
    // The interrupted run's report says so.
    let r = w.report();
    assert_eq!(
        (r.status.as_str(), r.rehearsal.unwrap().verdict.as_str()),
        ("unfinished", "unfinished")
    );

    // `drflow resume` continues it: no second backup job; the rehearsal completes and tears down.
    w.emu.config(2, 1);
    let out = w.emu.drflow(&w.state(), &["resume", &run_id, "--output", "plain"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        last_line(&stdout).starts_with(&format!("REHEARSAL PASSED dr-rehearsal run={run_id} ")),
        "{stdout}"
    );
    assert_eq!(w.emu.calls("StartBackupJob").len(), 1);
    assert_eq!(w.calls_in("CreateStack", DR), 1);
    assert_eq!(w.calls_in("DeleteStack", DR), 1);
    assert!(!w.stack_exists());
    let r = w.report();
    assert_eq!(r.resumes, 1);
    let h = r.rehearsal.unwrap();
    assert_eq!(h.verdict, "passed");
    // After a resume: the RTO is still the launch and the verification; the pipeline includes the interruption.
    let journal = w.journal();
    let verified = ts(&journal, "step_succeeded", "verify");
    assert_eq!(h.rto_ms, Some(verified - ts(&journal, "step_started", "launch")));
    assert_eq!(h.pipeline_ms, Some(verified - r.started_ms));
    let source_created = step_outputs(&journal, "primary_ami")["creation_date"].as_i64().unwrap() * 1000;
    assert_eq!(h.rpo_ms, Some(verified - source_created));
}

#[test]
fn a_failed_rehearsal_notifies_an_sns_topic_and_the_message_reaches_its_sqs_queue() {
    let w = world();
    // An SQS queue subscribed to an SNS topic in the DR region (moto delivers SNS to SQS).
    let queue = w.emu.aws_json(
        "sqs",
        DR,
        "AmazonSQS.CreateQueue",
        json!({"QueueName": "drflow-alerts"}),
    );
    let queue_url = queue["QueueUrl"].as_str().unwrap().to_string();
    let topic = w.rt.block_on(async {
        let sns = aws_sdk_sns::Client::new(&w.emu.sdk(DR));
        let topic = sns.create_topic().name("drflow-alerts").send().await.unwrap();
        let arn = topic.topic_arn().unwrap().to_string();
        sns.subscribe()
            .topic_arn(&arn)
            .protocol("sqs")
            .endpoint(format!("arn:aws:sqs:{DR}:123456789012:drflow-alerts"))
            .send()
            .await
            .unwrap();
        arn
    });
    // The backup job fails: the rehearsal fails at `wait_backup`.
    w.emu.control(
        "POST",
        "/_drflow/fail-next-job",
        Some(json!({"kind": "backup", "message": "Insufficient privileges to perform this action."})),
    );
    let mut args = w.run_args();
    args.extend(["-i".to_string(), format!("notify_topic_arn={topic}")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = w.emu.drflow(&w.state(), &args);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(last_line(&stdout).starts_with("REHEARSAL FAILED"), "{stdout}");

    assert_eq!(w.emu.calls("Publish").len(), 1, "one notification");
    let received = w.emu.aws_json(
        "sqs",
        DR,
        "AmazonSQS.ReceiveMessage",
        json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 10}),
    );
    let messages = received["Messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 1, "{received}");
    let envelope: Value = serde_json::from_str(messages[0]["Body"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["TopicArn"], topic.as_str());
    assert_eq!(envelope["Subject"], format!("drflow rehearsal FAILED: {}", w.instance));
    let body = envelope["Message"].as_str().unwrap();
    assert!(body.contains("FAILED at step `wait_backup`"), "{body}");
    assert!(
        body.contains("Insufficient privileges to perform this action."),
        "{body}"
    );
    assert!(body.contains("report.html"), "{body}");
}
