//! DR rehearsals (workflows/dr-rehearsal.yaml) on the simulated AWS, on tokio's paused clock: the passing path, a
//! DR instance whose status checks fail, a teardown that fails, `ec2.verify_instance` on its own, and the report
//! built from each run's journal. The last tests run the real binary (`drflow run`, `drflow report`).

use crate::common::*;
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
    list.iter()
        .filter(|r| r.kind.label() == kind)
        .map(|r| r.id.clone())
        .collect()
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
    assert_eq!(r.format, 2);
    let step = |id: &str| &o.state.steps[id];
    let verified = step("verify").finished_ms.unwrap();
    let launched = step("launch").started_ms.unwrap();
    let stack_ms = step("launch").finished_ms.unwrap() - launched;
    let verify_ms = verified - step("verify").started_ms.unwrap();
    // RTO: the launch's start → the DR instance verified = the stack's creation (2m on the simulator, polled
    // every 15s+) + the verification (status checks `initializing` for 2m).
    assert_eq!(h.rto_ms, Some(verified - launched));
    assert!((h.rto_ms.unwrap() - (stack_ms + verify_ms)).abs() <= 1000, "{h:?}");
    assert!(
        (2 * 60_000..3 * 60_000).contains(&stack_ms) && (60_000..3 * 60_000).contains(&verify_ms),
        "stack {stack_ms} ms, verify {verify_ms} ms"
    );
    assert!((4 * 60_000..5 * 60_000).contains(&h.rto_ms.unwrap()), "{h:?}");
    assert_eq!(h.launch_step.as_deref(), Some("launch"));
    assert_eq!(h.launch_offset_ms, Some(launched - o.state.started_ms));
    assert_eq!(
        h.launch_started_at.as_deref(),
        Some(report::model::when(launched).as_str())
    );
    // The pipeline: the whole run up to the verification. Backup 10m, copy 14m, stack 2m, checks 2m.
    assert_eq!(h.pipeline_ms, Some(verified - o.state.started_ms));
    assert!((20 * 60_000..40 * 60_000).contains(&h.pipeline_ms.unwrap()), "{h:?}");
    assert!(h.pipeline_ms.unwrap() - h.rto_ms.unwrap() >= 20 * 60_000, "{h:?}");
    // RPO: verify time − the primary AMI's creation (the source backup), not the DR copy's (made 10m later).
    let primary = outputs(&o, "primary_ami");
    let primary_ami = primary["image_id"].as_str().unwrap();
    let source_created = primary["creation_date"].as_i64().unwrap() * 1000;
    let copy_created = outputs(&o, "dr_ami")["creation_date"].as_i64().unwrap() * 1000;
    let rpo = h.rpo_ms.unwrap();
    assert!(
        (verified - source_created - rpo).abs() <= 1000,
        "rpo {rpo} vs {}",
        verified - source_created
    );
    assert!(
        rpo - (verified - copy_created) >= 8 * 60_000,
        "rpo {rpo} is the DR copy's age {}",
        verified - copy_created
    );
    // The backup started the run: its age at verification is the pipeline's time.
    assert!((rpo - h.pipeline_ms.unwrap()).abs() <= 1000, "{h:?}");
    assert_eq!(h.rpo_unknown, None);
    assert_eq!(h.source_ami.as_deref(), Some(primary_ami));
    assert_eq!(h.source_region.as_deref(), Some("us-east-1"));
    assert_eq!(
        h.source_recovery_point.as_deref(),
        outputs(&o, "wait_backup")["recovery_point_arn"].as_str()
    );
    assert_eq!(
        h.source_ami_created_at.as_deref(),
        Some(report::model::when(source_created).as_str())
    );
    assert_eq!(
        h.dr_ami_created_at.as_deref(),
        Some(report::model::when(copy_created).as_str())
    );
    assert_eq!(h.dr_ami.as_deref(), Some(dr_ami.as_str()));
    assert_eq!(h.dr_instance.as_deref(), Some(instance.as_str()));
    assert_eq!(h.dr_region.as_deref(), Some(DR));
    assert_eq!(h.stack.as_deref(), Some(STACK));
    let t = h.teardown.as_ref().unwrap();
    assert_eq!(
        (t.status.as_str(), t.deleted, t.stack.as_deref()),
        ("succeeded", Some(true), Some(STACK))
    );
    let running = h.running_after_ms.unwrap();
    assert!(h.launch_offset_ms.unwrap() <= running && running <= h.pipeline_ms.unwrap());

    // Per step: start, end, duration, attempts; in workflow order with `finally` last.
    let ids: Vec<&str> = r.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.first(), Some(&"backup"));
    assert_eq!(&ids[ids.len() - 2..], ["teardown", "notify"]);
    // A passing rehearsal notifies nobody.
    assert_eq!(r.steps.last().unwrap().status, "skipped");
    for s in r.steps.iter().filter(|s| s.id != "notify") {
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
            "REHEARSAL PASSED dr-rehearsal run={} rto={rto} rpo={} pipeline={}",
            r.run_id,
            h.rpo.clone().unwrap(),
            h.pipeline.clone().unwrap()
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
    assert!(
        md.contains(&format!(
            "| pipeline (run start → DR instance verified) | {} |",
            h.pipeline.clone().unwrap()
        )) && md.contains(&format!("| source AMI | `{primary_ami}` in us-east-1 created "))
            && md.contains(&format!("RTO {rto} (launch → verified)")),
        "{md}"
    );
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(html.contains("<svg class=\"timeline\"") && html.contains("rect class=\"bar succeeded\""));
    assert!(html.contains("<rect class=\"rto-span\"") && html.contains(&format!("RTO {rto} · launch")));
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
    assert_eq!((h.rto_ms, h.pipeline_ms), (None, None), "never verified");
    // The source backup's age at the end of the run.
    let source_created = outputs(&o, "primary_ami")["creation_date"].as_i64().unwrap() * 1000;
    let rpo = h.rpo_ms.unwrap();
    assert!((o.state.last_ms - source_created - rpo).abs() <= 1000, "{h:?}");
    assert_eq!(h.source_ami.as_deref(), outputs(&o, "primary_ami")["image_id"].as_str());
    assert_eq!(h.launch_step.as_deref(), Some("launch"));
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
    drflow::workflow::load(&path, drflow::actions::catalog()).unwrap()
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
    // Nothing launched and no AMI made by this run: no RTO, and no RPO rather than a guess.
    let r = report::build(&ok.state, &journal(&ok), None);
    let h = r.rehearsal.as_ref().unwrap();
    assert_eq!(h.verdict, "passed");
    assert_eq!((h.rto_ms, h.launch_step.as_deref(), h.rpo_ms), (None, None, None));
    assert!(h.pipeline_ms.is_some());
    assert!(
        h.rpo_unknown
            .as_deref()
            .is_some_and(|w| w.contains(&format!("did not make the DR AMI {base}"))),
        "{h:?}"
    );
    assert!(
        r.summary.contains(" rto=unknown rpo=unknown pipeline="),
        "{}",
        r.summary
    );
    let md = drflow::report::markdown::render(&r);
    assert!(
        md.contains("| **RPO** (age of the source backup) | — unknown: this run did not make"),
        "{md}"
    );

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

/// A rehearsal on the EC2 path (CreateImage + CopyImage, no AWS Backup), like dr-ami-ec2.yaml followed by the
/// rehearsal's launch, verify and teardown. With `source`, it copies that existing AMI instead of imaging the
/// instance, and nothing in the run waits for (or dates) that AMI.
fn ec2_rehearsal(dir: &std::path::Path, source: Option<&str>) -> drflow::workflow::Workflow {
    const IMAGE: &str = r#"
  - id: image
    action: ec2.create_image
    region: primary
    with:
      instance_id: ${{ inputs.instance_id }}
      name: drflow-${{ run.id }}
  - id: primary_ami
    action: ec2.wait_image
    region: primary
    poll: { interval: 30s }
    with:
      image_id: ${{ steps.image.outputs.image_id }}"#;
    const REST: &str = r#"
  - id: copy
    action: ec2.copy_image
    region: dr
    with:
      source_region: ${{ regions.primary }}
      source_image_id: SOURCE
      name: drflow-copy-${{ run.id }}
  - id: dr_ami
    action: ec2.wait_image
    region: dr
    poll: { interval: 30s }
    with:
      image_id: ${{ steps.copy.outputs.image_id }}
  - id: publish_dr
    action: ssm.put_parameter
    region: dr
    with:
      name: /drflow/${{ inputs.instance_id }}/ami
      value: ${{ steps.dr_ami.outputs.image_id }}
  - id: launch
    action: cloudformation.deploy_stack
    region: dr
    poll: { interval: 15s, max_interval: 1m }
    with:
      stack_name: STACK
      template: TEMPLATE
      parameters:
        AmiParameterName: /drflow/${{ inputs.instance_id }}/ami
        AmiVersion: ${{ steps.publish_dr.outputs.version }}
  - id: verify
    action: ec2.verify_instance
    region: dr
    poll: { interval: 15s, backoff_rate: 1.0 }
    with:
      instance_id: ${{ steps.launch.outputs.outputs.InstanceId }}
      image_id: ${{ steps.dr_ami.outputs.image_id }}
finally:
  - id: teardown
    action: cloudformation.delete_stack
    region: dr
    with:
      stack_name: STACK
"#;
    let head = format!(
        "version: 1\nname: ec2-rehearsal\ninputs:\n  instance_id: {{type: string}}\nregions: {{primary: us-east-1, dr: {DR}}}\nsteps:"
    );
    let (image, copied) = match source {
        None => (IMAGE, "${{ steps.primary_ami.outputs.image_id }}"),
        Some(ami) => ("", ami),
    };
    let rest = REST
        .replace("SOURCE", copied)
        .replace("STACK", STACK)
        .replace("TEMPLATE", &repo("stacks/dr-ec2.yaml").display().to_string());
    let path = dir.join("ec2-rehearsal.yaml");
    std::fs::write(&path, format!("{head}{image}{rest}")).unwrap();
    drflow::workflow::load(&path, drflow::actions::catalog()).unwrap_or_else(|e| panic!("{e:?}"))
}

#[tokio::test(start_paused = true)]
async fn an_ec2_path_rehearsal_measures_the_rpo_from_the_image_the_dr_ami_was_copied_from() {
    let dir = tempfile::tempdir().unwrap();
    let wf = ec2_rehearsal(dir.path(), None);
    let sim = Sim::new(Default::default());
    let o = run(&wf, &sim, &dir.path().join("state"), &[("instance_id", INSTANCE)])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let r = report_of(&o, &wf);
    let h = r.rehearsal.as_ref().unwrap();
    assert_eq!(h.verdict, "passed");

    let step = |id: &str| &o.state.steps[id];
    let verified = step("verify").finished_ms.unwrap();
    assert_eq!(h.rto_ms, Some(verified - step("launch").started_ms.unwrap()));
    assert!((4 * 60_000..5 * 60_000).contains(&h.rto_ms.unwrap()), "{h:?}");
    assert_eq!(h.pipeline_ms, Some(verified - o.state.started_ms));

    // The source is the image the run created (CreateImage in the primary region), found through the copy step's
    // source_image_id; the DR copy is dated when it was copied (after the image's 5m wait), so its age is not the RPO.
    let primary = outputs(&o, "primary_ami");
    let source_created = primary["creation_date"].as_i64().unwrap() * 1000;
    let copy_created = outputs(&o, "dr_ami")["creation_date"].as_i64().unwrap() * 1000;
    assert_eq!(h.source_ami.as_deref(), outputs(&o, "image")["image_id"].as_str());
    assert_eq!(h.source_region.as_deref(), Some("us-east-1"));
    assert_eq!(h.source_recovery_point, None);
    assert_eq!(h.dr_ami.as_deref(), outputs(&o, "dr_ami")["image_id"].as_str());
    assert!(copy_created - source_created >= 5 * 60_000, "the copy is dated later");
    let rpo = h.rpo_ms.unwrap();
    assert!(
        (verified - source_created - rpo).abs() <= 1000,
        "rpo {rpo} vs {}",
        verified - source_created
    );
    assert!(rpo >= verified - copy_created + 5 * 60_000, "{h:?}");
    assert!(
        r.summary.ends_with(&format!(
            " rto={} rpo={} pipeline={}",
            h.rto.clone().unwrap(),
            h.rpo.clone().unwrap(),
            h.pipeline.clone().unwrap()
        )),
        "{}",
        r.summary
    );
}

#[tokio::test(start_paused = true)]
async fn a_dr_ami_copied_from_an_undated_image_has_no_rpo_figure() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::new(Default::default());
    let existing = sim
        .cloud()
        .ec2
        .describe_instances("us-east-1", &[INSTANCE.to_string()])
        .await
        .unwrap()[0]
        .image_id
        .clone();
    let wf = ec2_rehearsal(dir.path(), Some(&existing));
    let o = run(&wf, &sim, &dir.path().join("state"), &[("instance_id", INSTANCE)])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let r = report_of(&o, &wf);
    let h = r.rehearsal.as_ref().unwrap();
    assert_eq!(h.verdict, "passed");
    // The source is known (the copy step names it); its creation time is not: no figure, and the report says why.
    assert_eq!(h.source_ami.as_deref(), Some(existing.as_str()));
    assert_eq!(h.source_region.as_deref(), Some("us-east-1"));
    assert_eq!(
        (h.rpo_ms, h.rpo.as_deref(), h.source_ami_created_at.as_deref()),
        (None, None, None)
    );
    assert!(
        h.dr_ami_created_at.is_some(),
        "the DR copy's date is known, and not used"
    );
    let why = h.rpo_unknown.clone().unwrap();
    assert!(
        why.contains(&format!(
            "creation time of the source AMI {existing} in us-east-1 is unknown"
        )),
        "{why}"
    );
    assert!(h.rto_ms.is_some());
    assert!(r.summary.contains(" rpo=unknown pipeline="), "{}", r.summary);
    let md = drflow::report::markdown::render(&r);
    assert!(md.contains(&format!("— unknown: {why}")), "{md}");
    let html = drflow::report::html::render(&r);
    assert!(
        html.contains(&drflow::report::html::esc(&format!("unknown: {why}"))),
        "{html}"
    );
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
    let re = regex::Regex::new(
        r"^REHEARSAL PASSED dr-rehearsal run=(\S+) rto=(\d+m\d*s?|\d+h\S*) rpo=(\d+m\d*s?|\d+h\S*) pipeline=(\d+m\d*s?|\d+h\S*)$",
    )
    .unwrap();
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
    assert_eq!(r.format, 2);
    let h = r.rehearsal.unwrap();
    assert_eq!(
        (h.rto.unwrap(), h.rpo.unwrap(), h.pipeline.unwrap()),
        (caps[2].to_string(), caps[3].to_string(), caps[4].to_string())
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "rto_ms",
        "pipeline_ms",
        "rpo_ms",
        "source_ami",
        "source_ami_created_at",
        "dr_ami_created_at",
    ] {
        assert!(!json["rehearsal"][key].is_null(), "report.json rehearsal.{key}");
    }
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
    let (rto, pipeline, rpo) = (h.rto_ms.unwrap(), h.pipeline_ms.unwrap(), h.rpo_ms.unwrap());
    assert!((20 * 60_000..40 * 60_000).contains(&pipeline), "{h:?}");
    // The RTO is the launch and the verification only; the source backup predates the launch by the backup and
    // the copy, and started the run.
    assert!((2 * 60_000..6 * 60_000).contains(&rto), "{h:?}");
    assert_eq!(h.launch_offset_ms.unwrap() + rto, pipeline, "{h:?}");
    assert!(rpo >= rto + 20 * 60_000 && (rpo - pipeline).abs() < 60_000, "{h:?}");
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
