//! Engine semantics on small inline workflows: parallel, when, failure routing, finally, timeouts, retries,
//! and the guards of ssm.put_parameter.

use crate::common::*;
use drflow::cloud::sim::Sim;
use drflow::engine::journal::{Event, RunStatus};
use drflow::engine::{Outcome, StepStatus};
use drflow::workflow::Workflow;

fn wf(yaml: &str) -> Workflow {
    let text = format!("version: 1\nname: t\nregions:\n  primary: us-east-1\n  dr: us-west-2\n{yaml}");
    parse_at(&repo("workflows/inline.yaml"), &text)
}

async fn go(w: &Workflow, sim: &Sim) -> Outcome {
    // Kept on disk: some tests read the journal afterwards.
    let dir = tempfile::tempdir().unwrap().keep();
    run(w, sim, &dir, &[]).await.unwrap()
}

fn status<'a>(o: &'a Outcome, step: &str) -> &'a str {
    o.state.status(step).map_or("not run", StepStatus::name)
}

#[tokio::test(start_paused = true)]
async fn a_parallel_group_fails_as_a_whole_after_every_branch_ran() {
    let w = wf(r#"
steps:
  - id: group
    parallel:
      - id: bad
        action: drflow.fail
        with: {message: boom}
      - id: good
        steps:
          - id: slow
            action: ec2.wait_image
            region: primary
            with: {image_id: ami-0bbbbbbbbbbbbbbbb}
  - id: after
    action: drflow.echo
"#);
    let sim = Sim::new(scenario(
        "images:\n  - {id: ami-0bbbbbbbbbbbbbbbb, region: us-east-1, available_after: 5m}\n",
    ));
    let o = go(&w, &sim).await;
    assert_eq!(o.status, RunStatus::Failed);
    assert_eq!(status(&o, "bad"), "failed");
    assert_eq!(status(&o, "slow"), "succeeded");
    assert_eq!(status(&o, "good"), "succeeded");
    assert_eq!(status(&o, "group"), "failed");
    assert_eq!(status(&o, "after"), "not run");
    assert!(o.error.unwrap().contains("step `bad` failed: boom"));
}

#[tokio::test(start_paused = true)]
async fn when_skips_and_status_references_work() {
    let w = wf(r#"
inputs:
  go: {type: bool, default: false}
steps:
  - id: maybe
    when: ${{ inputs.go }}
    action: drflow.echo
    with: {value: x}
  - id: report
    when: steps.maybe.status == 'skipped' && !inputs.go
    action: drflow.echo
    with: {value: "maybe was ${{ steps.maybe.status }}"}
"#);
    let o = go(&w, &Sim::new(Default::default())).await;
    assert_eq!(o.status, RunStatus::Succeeded);
    assert_eq!(status(&o, "maybe"), "skipped");
    match o.state.status("report") {
        Some(StepStatus::Succeeded(out)) => assert_eq!(out["value"], "maybe was skipped"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn failure_routing_continue_and_finally() {
    let w = wf(r#"
steps:
  - id: optional
    action: drflow.fail
    continue_on_error: true
  - id: risky
    action: drflow.fail
    with: {message: broken, code: Broken}
    on_failure: {goto: cleanup}
  - id: skipped_over
    action: drflow.echo
  - id: cleanup
    action: drflow.echo
    with: {value: "${{ steps.risky.error }}"}
finally:
  - id: always
    action: drflow.echo
"#);
    let o = go(&w, &Sim::new(Default::default())).await;
    assert_eq!(status(&o, "optional"), "failed");
    assert_eq!(status(&o, "skipped_over"), "not run");
    assert_eq!(status(&o, "cleanup"), "succeeded");
    assert_eq!(status(&o, "always"), "succeeded");
    // A routed failure still fails the run; a continued one does not.
    assert_eq!(o.status, RunStatus::Failed);
    assert!(o.error.unwrap().contains("risky"));
    match o.state.status("cleanup") {
        Some(StepStatus::Succeeded(out)) => assert_eq!(out["value"], "broken"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn finally_runs_after_success_and_its_failure_fails_the_run() {
    let w = wf(
        "steps:\n  - id: a\n    action: drflow.echo\nfinally:\n  - id: teardown\n    action: drflow.fail\n    with: {message: teardown broke}\n",
    );
    let o = go(&w, &Sim::new(Default::default())).await;
    assert_eq!(status(&o, "a"), "succeeded");
    assert_eq!(o.status, RunStatus::Failed);
    assert!(o.error.unwrap().contains("teardown broke"));
}

#[tokio::test(start_paused = true)]
async fn a_wait_times_out_once_its_whole_timeout_is_spent() {
    let image = "images:\n  - {id: ami-0ccccccccccccccccc, region: us-east-1, available_after: 2h}\n";
    let wait = |extra: &str| {
        wf(&format!(
            "steps:\n  - id: w\n    action: ec2.wait_image\n    region: primary\n    timeout: 10m\n{extra}    with: {{image_id: ami-0ccccccccccccccccc}}\n"
        ))
    };
    let o = go(&wait(""), &Sim::new(scenario(image))).await;
    assert_eq!(o.status, RunStatus::Failed);
    assert_eq!(o.state.steps["w"].attempts, 1);
    assert!(o.error.unwrap().contains("the wait did not finish within 10m"));

    // A throttled poll is retried, and the retry re-attaches without restarting the 10 minutes.
    let throttled = format!(
        "{image}faults:\n  - {{operation: \"ec2:DescribeImages\", nth: 3, error: {{code: RequestLimitExceeded}}}}\n"
    );
    let o = go(
        &wait("    retry: {max_attempts: 3, interval: 1m}\n"),
        &Sim::new(scenario(&throttled)),
    )
    .await;
    assert_eq!(o.status, RunStatus::Failed);
    assert_eq!(o.state.steps["w"].attempts, 2);
    let st = &o.state.steps["w"];
    assert_eq!(st.finished_ms.unwrap() - st.started_ms.unwrap(), 10 * 60 * 1000);

    // Retrying a timeout of a wait is pointless: its time is spent.
    let o = go(
        &wait("    retry: {max_attempts: 2, interval: 1m, errors: [timeout]}\n"),
        &Sim::new(scenario(image)),
    )
    .await;
    assert_eq!(o.state.steps["w"].attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_times_out_per_attempt_and_is_retried_only_when_asked() {
    let slow = "faults:\n  - {operation: \"ssm:GetParameter\", count: 10, latency: 5m}\n";
    let call = |extra: &str| {
        wf(&format!(
            "steps:\n  - id: c\n    action: ssm.get_parameter\n    region: primary\n    timeout: 1m\n{extra}    with: {{name: /x}}\n"
        ))
    };
    let o = go(&call(""), &Sim::new(scenario(slow))).await;
    assert_eq!(o.status, RunStatus::Failed);
    assert_eq!(o.state.steps["c"].attempts, 1);
    assert!(o.error.unwrap().contains("attempt 1 did not finish within 1m"));

    let o = go(
        &call("    retry: {max_attempts: 2, interval: 1s, errors: [timeout]}\n"),
        &Sim::new(scenario(slow)),
    )
    .await;
    assert_eq!(o.state.steps["c"].attempts, 3);
    assert_eq!(o.status, RunStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn retry_delays_follow_the_policy() {
    let w = wf(
        "steps:\n  - id: read\n    action: ssm.get_parameter\n    region: primary\n    retry: {max_attempts: 3, interval: 2s, backoff_rate: 3}\n    with: {name: /x}\n",
    );
    let sim = Sim::new(scenario(
        "faults:\n  - operation: ssm:GetParameter\n    count: 3\n    error: {code: ThrottlingException}\n",
    ));
    let o = go(&w, &sim).await;
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let entries = journal(&o);
    let delays: Vec<Option<u64>> = events_of(&entries, "read")
        .into_iter()
        .filter_map(|e| match e {
            Event::AttemptFailed { retry_in_ms, .. } => Some(*retry_in_ms),
            _ => None,
        })
        .collect();
    assert_eq!(delays, vec![Some(2000), Some(6000), Some(18000)]);
    // And the run really waited: 26 s of simulated time between the first and the last attempt.
    let times: Vec<i64> = entries
        .iter()
        .filter(|e| matches!(e.event, Event::AttemptStarted { .. }))
        .map(|e| e.ts_ms)
        .collect();
    assert_eq!(times.last().unwrap() - times.first().unwrap(), 26_000);
}

#[tokio::test(start_paused = true)]
async fn an_ami_that_is_not_available_is_never_published() {
    let w = wf(
        "steps:\n  - id: put\n    action: ssm.put_parameter\n    region: dr\n    with: {name: /p, value: ami-0dddddddddddddddd}\n",
    );
    let sim = Sim::new(scenario(
        "images:\n  - {id: ami-0dddddddddddddddd, region: us-west-2, available_after: 1h}\n",
    ));
    let o = go(&w, &sim).await;
    assert_eq!(o.status, RunStatus::Failed);
    assert!(o.error.unwrap().contains("not available"));
    assert_eq!(count_calls(&sim, "PutParameter"), 0);
    // Nor one from another region.
    let w = wf(
        "steps:\n  - id: put\n    action: ssm.put_parameter\n    region: dr\n    with: {name: /p, value: ami-0eeeeeeeeeeeeeeee}\n",
    );
    let sim = Sim::new(scenario(
        "images:\n  - {id: ami-0eeeeeeeeeeeeeeee, region: us-east-1}\n",
    ));
    let o = go(&w, &sim).await;
    assert!(o.error.unwrap().contains("no such AMI in us-west-2"));
    assert_eq!(count_calls(&sim, "PutParameter"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_newer_ami_is_not_rolled_back_unless_forced() {
    let sim = Sim::new(scenario(
        "images:\n  - {id: ami-0ffffffffffffffff, region: us-west-2}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    // The pipeline publishes a fresh AMI (created now, newer than the scenario's).
    let full = load("workflows/dr-ami.yaml");
    let o = run(&full, &sim, dir.path(), &[("instance_id", INSTANCE)])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded);
    let name = format!("/drflow/{INSTANCE}/ami");
    let before = sim
        .cloud()
        .ssm
        .get_parameter("us-west-2", &name)
        .await
        .unwrap()
        .unwrap();

    let put = |force: bool| {
        wf(&format!(
            "steps:\n  - id: put\n    action: ssm.put_parameter\n    region: dr\n    with: {{name: \"{name}\", value: ami-0ffffffffffffffff, force: {force}}}\n"
        ))
    };
    let o = go(&put(false), &sim).await;
    assert_eq!(o.status, RunStatus::Failed);
    assert!(o.error.unwrap().contains("refusing to replace"));
    let after = sim
        .cloud()
        .ssm
        .get_parameter("us-west-2", &name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, before);

    let o = go(&put(true), &sim).await;
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let forced = sim
        .cloud()
        .ssm
        .get_parameter("us-west-2", &name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(forced.value, "ami-0ffffffffffffffff");
    assert_eq!(forced.version, before.version + 1);
}

#[tokio::test(start_paused = true)]
async fn a_wait_resumed_after_its_time_is_spent_still_finds_a_finished_job() {
    use drflow::engine::{self, Clock, Quiet};
    let w = wf(
        "steps:\n  - id: w\n    action: ec2.wait_image\n    region: primary\n    timeout: 10m\n    with: {image_id: ami-0ccccccccccccccccc}\n",
    );
    // Each DescribeImages takes a second, as a real call would.
    let sim = Sim::new(scenario(
        "images:\n  - {id: ami-0ccccccccccccccccc, region: us-east-1, available_after: 5m}\nfaults:\n  - {operation: \"ec2:DescribeImages\", count: 1000, latency: 1s}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    // The resumed run's clock, on the same (simulated) time line as the first run's.
    let clock = Clock::start();
    // The process dies one minute into the wait ...
    tokio::select! {
        _ = run(&w, &sim, dir.path(), &[]) => panic!("still waiting"),
        _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
    }
    // ... and is resumed an hour later: the image is available by then.
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    let id = engine::list_runs(dir.path()).unwrap()[0].run_id.clone();
    let o = engine::resume(&w, sim.cloud(), dir.path(), &id, false, &Quiet, clock)
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let st = &o.state.steps["w"];
    assert!(
        st.finished_ms.unwrap() - st.started_ms.unwrap() > 60 * 60 * 1000,
        "resumed after the 10 minutes"
    );
}
