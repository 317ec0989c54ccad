//! Fleets: `for_each` runs a group's steps once per item, `max_concurrency` at a time, each item journaled under
//! its key; the group fails only when more items fail than it tolerates, after the others finish.

use std::path::Path;

use crate::common::*;
use drflow::engine::journal::{Event, RunStatus};
use drflow::engine::{Outcome, StepStatus};
use serde_json::Value;

const FLEET: [&str; 3] = ["i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0aaaaaaaaaaaaaaa3"];

/// A world with the three fleet instances in us-east-1, tagged to be protected, and an untagged one.
fn scenario() -> String {
    let mut y = String::from("instances:\n");
    for i in FLEET {
        y.push_str(&format!(
            "  - {{id: {i}, region: us-east-1, tags: {{team: web, drflow:protect: \"true\"}}}}\n"
        ));
    }
    y.push_str("  - {id: i-0ddddddddddddddd4, region: us-east-1, tags: {team: web}}\n");
    y
}

fn outputs(o: &Outcome, id: &str) -> serde_json::Map<String, Value> {
    match o.state.status(id) {
        Some(StepStatus::Succeeded(out)) => out.clone(),
        other => panic!("{id} is {other:?}"),
    }
}

/// The fleet workflow with other limits.
fn fleet_with(dir: &Path, concurrency: u32, tolerated: u32) -> drflow::workflow::Workflow {
    let text = std::fs::read_to_string(repo("workflows/dr-fleet.yaml"))
        .unwrap()
        .replace("max_concurrency: 10", &format!("max_concurrency: {concurrency}"))
        .replace("tolerated_failures: 0", &format!("tolerated_failures: {tolerated}"));
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    parse_at(&dir.join("workflows/dr-fleet.yaml"), &text)
}

#[tokio::test(start_paused = true)]
async fn every_instance_of_the_fleet_is_published_under_its_own_key() {
    let wf = load("workflows/dr-fleet.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), &scenario());
    let o = run(&wf, &sim, dir.path(), &[("instance_ids", &FLEET.join(","))])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    assert_eq!(count_calls(&sim, "StartBackupJob"), 3);
    assert_eq!(count_calls(&sim, "StartCopyJob"), 3);
    let fleet = outputs(&o, "fleet");
    assert_eq!(
        (fleet["succeeded"].clone(), fleet["failed"].clone()),
        (Value::from(3), Value::from(0))
    );
    let cloud = sim.cloud();
    for i in FLEET {
        // Each item's steps are journaled under its key.
        let dr = outputs(&o, &format!("fleet[{i}].publish_dr"));
        assert_eq!(fleet["items"][i]["publish_dr"]["value"], dr["value"], "{i}");
        let p = cloud
            .ssm
            .get_parameter("us-west-2", &format!("/drflow/{i}/ami"))
            .await
            .unwrap()
            .expect("published");
        assert_eq!(Value::String(p.value), dr["value"]);
        let primary = outputs(&o, &format!("fleet[{i}].publish_primary"));
        assert_ne!(primary["value"], dr["value"]);
    }
}

#[tokio::test(start_paused = true)]
async fn max_concurrency_bounds_the_items_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let wf = fleet_with(dir.path(), 1, 0);
    let sim = persistent(dir.path(), &scenario());
    let o = run(&wf, &sim, dir.path(), &[("instance_ids", &FLEET.join(","))])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    // One at a time: each item starts after the one before it finished.
    let span = |i: &str| {
        let st = &o.state.steps[&format!("fleet[{i}].backup")];
        let end = o.state.steps[&format!("fleet[{i}].publish")].finished_ms.unwrap();
        (st.started_ms.unwrap(), end)
    };
    let spans: Vec<(i64, i64)> = FLEET.iter().map(|i| span(i)).collect();
    assert!(spans[0].1 <= spans[1].0 && spans[1].1 <= spans[2].0, "{spans:?}");

    // Three at a time: they overlap.
    let dir = tempfile::tempdir().unwrap();
    let wf = fleet_with(dir.path(), 3, 0);
    let sim = persistent(dir.path(), &scenario());
    let o = run(&wf, &sim, dir.path(), &[("instance_ids", &FLEET.join(","))])
        .await
        .unwrap();
    let starts: Vec<i64> = FLEET
        .iter()
        .map(|i| o.state.steps[&format!("fleet[{i}].backup")].started_ms.unwrap())
        .collect();
    assert!(starts.iter().all(|s| *s == starts[0]), "{starts:?}");
}

#[tokio::test(start_paused = true)]
async fn the_fleet_fails_only_beyond_its_tolerance_and_after_the_others_finish() {
    // The second backup job fails (the items start in order): FLEET[1] fails, the others do not.
    let failing = format!(
        "{}fail_jobs: [{{kind: backup, nth: 2, message: Insufficient privileges}}]\n",
        scenario()
    );
    let items = FLEET.join(",");
    let dir = tempfile::tempdir().unwrap();
    let wf = fleet_with(dir.path(), 10, 1);
    let sim = persistent(dir.path(), &failing);
    let o = run(&wf, &sim, dir.path(), &[("instance_ids", &items)]).await.unwrap();
    assert_eq!(
        o.status,
        RunStatus::Succeeded,
        "one failure is tolerated: {:?}",
        o.error
    );
    let fleet = outputs(&o, "fleet");
    assert_eq!(fleet["failed"], 1);
    let why = fleet["failed_items"][FLEET[1]].as_str().unwrap();
    assert!(why.contains(&format!("fleet[{}].wait_backup", FLEET[1])), "{why}");
    assert!(why.contains("Insufficient privileges"), "{why}");

    // Tolerating none: the run fails, but only after the other instances were published.
    let dir = tempfile::tempdir().unwrap();
    let wf = fleet_with(dir.path(), 10, 0);
    let sim = persistent(dir.path(), &failing);
    let o = run(&wf, &sim, dir.path(), &[("instance_ids", &items)]).await.unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    let error = o.error.clone().unwrap();
    assert!(
        error.contains("1 of 3 items failed, more than tolerated (0)"),
        "{error}"
    );
    for i in [FLEET[0], FLEET[2]] {
        assert!(matches!(
            o.state.status(&format!("fleet[{i}].publish")),
            Some(StepStatus::Succeeded(_))
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn discovery_finds_the_tagged_instances_that_still_run() {
    let wf = load("workflows/dr-fleet.yaml");
    let dir = tempfile::tempdir().unwrap();
    let world = format!(
        "{}  - {{id: i-0eeeeeeeeeeeeeee5, region: us-east-1, state: terminated, tags: {{drflow:protect: \"true\"}}}}\n",
        scenario()
    );
    let sim = persistent(dir.path(), &world);
    // No list given: every running instance with drflow:protect = true (the default world's one too).
    let o = run(&wf, &sim, dir.path(), &[]).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let found = outputs(&o, "discover")["instance_ids"].clone();
    let mut expected: Vec<&str> = FLEET.to_vec();
    expected.push("i-0123456789abcdef0");
    expected.sort();
    assert_eq!(found, serde_json::json!(expected));
    assert_eq!(outputs(&o, "fleet")["succeeded"], 4);
    // Another tag.
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), &world);
    let o = run(&wf, &sim, dir.path(), &[("tag_key", "team"), ("tag_value", "web")])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    assert_eq!(
        outputs(&o, "discover")["count"],
        4,
        "the three of the fleet and the untagged-for-drflow one"
    );
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_fleet_resumes_every_item_where_it_was_without_a_second_job() {
    let wf = load("workflows/dr-fleet.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), &scenario());
    // Stop the run (as a crash would) once two copy jobs have started.
    let started = Run::of(&wf).input("instance_ids", &FLEET.join(","));
    let interrupted = tokio::time::timeout(std::time::Duration::from_secs(9 * 60), started.on(&sim, dir.path())).await;
    assert!(interrupted.is_err(), "the fleet finished before it was interrupted");
    let run_id = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .to_string();
    let backups_before = count_calls(&sim, "StartBackupJob");
    assert_eq!(backups_before, 3, "every item had started its backup");
    let o = resume(&wf, &sim, dir.path(), &run_id, false).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    assert_eq!(count_calls(&sim, "StartBackupJob"), 3, "no second backup job");
    assert_eq!(count_calls(&sim, "StartCopyJob"), 3, "no second copy job");
    let resumed = journal(&o)
        .iter()
        .filter(|e| matches!(e.event, Event::RunResumed { .. }))
        .count();
    assert_eq!(resumed, 1);
}

#[test]
fn item_exists_only_inside_a_for_each_and_its_steps_only_through_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.yaml");
    std::fs::write(
        &file,
        "version: 1\nname: t\ninputs: {ids: {type: list}}\nsteps:\n  - id: outside\n    action: drflow.echo\n    with: {value: \"${{ item }}\"}\n  - id: fleet\n    for_each: ${{ inputs.ids }}\n    max_concurrency: 0\n    steps:\n      - id: each\n        action: drflow.echo\n        with: {value: \"${{ item }}\"}\n  - id: after\n    action: drflow.echo\n    with: {value: \"${{ steps.each.outputs.value }}\"}\n",
    )
    .unwrap();
    let out = drflow(dir.path(), &["validate", file.to_str().unwrap()]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("`item` is only defined inside a `for_each`"), "{err}");
    assert!(err.contains("`max_concurrency` must be at least 1"), "{err}");
    assert!(
        err.contains("step `each` runs once per item of a `for_each`: it has no one value here"),
        "{err}"
    );
    assert!(err.contains("3 problem(s)"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn two_fleet_runs_never_work_on_one_instance_at_once() {
    let wf = load("workflows/dr-fleet.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), &scenario());
    // A protects FLEET[0..2], B FLEET[1..3], at the same time: FLEET[1] belongs to whichever locks it first.
    let a_items = [FLEET[0], FLEET[1]].join(",");
    let b_items = [FLEET[1], FLEET[2]].join(",");
    let a = Run::of(&wf).input("instance_ids", &a_items);
    let b = Run::of(&wf).input("instance_ids", &b_items);
    let (a, b) = tokio::join!(a.on(&sim, dir.path()), b.on(&sim, dir.path()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.status, b.status),
        (RunStatus::Succeeded, RunStatus::Succeeded),
        "{:?} {:?}",
        a.error,
        b.error
    );
    let shared = FLEET[1];
    let did = |o: &Outcome| {
        matches!(
            o.state.status(&format!("fleet[{shared}].publish")),
            Some(StepStatus::Succeeded(_))
        )
    };
    let (winner, loser) = if did(&a) { (&a, &b) } else { (&b, &a) };
    assert!(did(winner) && !did(loser), "exactly one run protected {shared}");
    // The other says so: the item is skipped, with the run that holds it.
    let Some(StepStatus::Skipped(reason)) = loser.state.status(&format!("fleet[{shared}]")) else {
        panic!("{:?}", loser.state.status(&format!("fleet[{shared}]")));
    };
    assert!(reason.contains(&format!("run {}", winner.run_id)), "{reason}");
    let fleet = outputs(loser, "fleet");
    assert_eq!(fleet["succeeded"], 1);
    assert!(fleet["skipped_items"][shared].as_str().is_some());
    // Three instances, three backup jobs: none twice.
    assert_eq!(count_calls(&sim, "StartBackupJob"), 3);
}

#[tokio::test(start_paused = true)]
async fn with_when_locked_wait_a_run_waits_for_the_items_another_run_holds_then_does_them() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo("workflows/dr-fleet.yaml"))
        .unwrap()
        .replace(
            "    tolerated_failures: 0\n",
            "    tolerated_failures: 0\n    when_locked: wait\n",
        );
    std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
    let wf = parse_at(&dir.path().join("workflows/dr-fleet.yaml"), &text);
    let sim = persistent(dir.path(), &scenario());
    let shared = FLEET[1];
    let a = Run::of(&wf).input("instance_ids", &[FLEET[0], FLEET[1]].join(","));
    let b = Run::of(&wf).input("instance_ids", &[FLEET[1], FLEET[2]].join(","));
    let (a, b) = tokio::join!(a.on(&sim, dir.path()), b.on(&sim, dir.path()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.status, b.status), (RunStatus::Succeeded, RunStatus::Succeeded));
    // Both protected the shared instance, one after the other: never at once.
    let span = |o: &Outcome| {
        let st = &o.state.steps[&format!("fleet[{shared}].backup")];
        let end = o.state.steps[&format!("fleet[{shared}].publish")].finished_ms.unwrap();
        (st.started_ms.unwrap(), end)
    };
    let (sa, sb) = (span(&a), span(&b));
    assert!(sa.1 <= sb.0 || sb.1 <= sa.0, "{sa:?} {sb:?}");
    let (first, later) = if sa.0 < sb.0 { (&a, &b) } else { (&b, &a) };
    // The later one said it waited, and for which run.
    let waited = journal(later).into_iter().any(
        |e| matches!(&e.event, Event::Queued { quota, .. } if quota.contains(shared) && quota.contains(&first.run_id)),
    );
    assert!(waited, "the later run journals its wait for {shared}");
    assert_eq!(outputs(later, "fleet")["succeeded"], 2);
    assert_eq!(count_calls(&sim, "StartBackupJob"), 4);
}

#[tokio::test(start_paused = true)]
async fn a_backup_job_is_noticed_soon_after_it_completes_with_few_polls() {
    // 10 s created, then 490 s running: the poll policy alone (30 s × 1.5, at most 2 m) noticed it at 603 s (23% of
    // the job late); paced by the job's PercentDone, the wait notices it within 5% and averages under one call
    // per 45 s.
    let wf = load("workflows/dr-ami.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), "durations: {backup_created: 10s, backup_running: 490s}\n");
    let o = run(&wf, &sim, dir.path(), &[("instance_id", "i-0123456789abcdef0")])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let started = o.state.steps["backup"].finished_ms.unwrap();
    let noticed = o.state.steps["wait_backup"].finished_ms.unwrap();
    let job_ms = 500_000;
    let lag = noticed - started - job_ms;
    assert!((0..=job_ms / 20).contains(&lag), "noticed {lag} ms after completion");
    let polls = count_calls(&sim, "DescribeBackupJob") as i64;
    assert!(
        polls * 45_000 <= noticed - started,
        "{polls} polls in {} ms",
        noticed - started
    );
}

#[tokio::test(start_paused = true)]
async fn the_report_summarises_the_fleet_per_item_and_failures_by_cause() {
    let failing = format!(
        "{}fail_jobs: [{{kind: backup, nth: 2, message: Insufficient privileges}}]\n",
        scenario()
    );
    let dir = tempfile::tempdir().unwrap();
    let wf = fleet_with(dir.path(), 10, 1);
    let sim = persistent(dir.path(), &failing);
    let o = run(&wf, &sim, dir.path(), &[("instance_ids", &FLEET.join(","))])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let r = drflow::report::load(dir.path(), &o.run_id, Some(&wf)).unwrap();
    let fleet = r.fleet.expect("a fleet summary");
    let keys: Vec<&str> = fleet.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, FLEET);
    let ok = &fleet.items[0];
    assert_eq!(ok.status, "succeeded");
    assert_eq!(ok.amis.len(), 2, "{:?}", ok.amis);
    assert_eq!(ok.parameters.len(), 2, "{:?}", ok.parameters);
    assert!(
        ok.parameters[0].starts_with(&format!("/drflow/{}/ami = ami-", FLEET[0])),
        "{:?}",
        ok.parameters
    );
    assert!(ok.duration_ms.unwrap() > 15 * 60 * 1000);
    let bad = &fleet.items[1];
    assert_eq!(bad.status, "failed");
    assert!(
        bad.error.as_deref().unwrap().starts_with("wait_backup: "),
        "{:?}",
        bad.error
    );
    assert_eq!(fleet.failures.len(), 1);
    assert_eq!(fleet.failures[0].cause, "wait_backup: BackupJobFailed");
    assert_eq!(fleet.failures[0].items, [FLEET[1]]);
    let md = drflow::report::render(
        &drflow::report::load(dir.path(), &o.run_id, Some(&wf)).unwrap(),
        drflow::report::Format::Markdown,
    );
    assert!(
        md.contains("3 items: 2 succeeded, 1 failed, 0 skipped, 0 unfinished."),
        "{md}"
    );
    assert!(
        md.contains(&format!("- 1 × wait_backup: BackupJobFailed: {}", FLEET[1])),
        "{md}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_shared_rate_limiter_keeps_a_burst_of_starts_within_a_tight_throttle() {
    // 40 instances started at once against a StartBackupJob bucket of 4 calls, refilled at 1 per second: without
    // the client-side limiter 36 of the first 40 calls are throttled, and items run out of retries (22 of 40
    // failed with a limiter that did not adapt).
    let ids: Vec<String> = (0..40).map(|n| format!("i-0b{n:015x}")).collect();
    let mut y = String::from(
        "throttling: [{operation: \"backup:StartBackupJob\", capacity: 4, refill_per_second: 1}]\ninstances:\n",
    );
    for i in &ids {
        y.push_str(&format!("  - {{id: {i}, region: us-east-1}}\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let wf = fleet_with(dir.path(), 40, 0);
    let sim = persistent(dir.path(), &y);
    let o = run(&wf, &sim, dir.path(), &[("instance_ids", &ids.join(","))])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let answered = |throttled: bool| {
        sim.calls()
            .iter()
            .filter(|c| {
                c.operation == "StartBackupJob" && (c.error.as_deref() == Some("ThrottlingException")) == throttled
            })
            .count()
    };
    // One job per instance; the limiter counted the throttling answers the simulator gave.
    assert_eq!(answered(false), 40);
    let r = drflow::report::load(dir.path(), &o.run_id, Some(&wf)).unwrap();
    let starts = &r.rate_limits["backup:StartBackupJob"];
    eprintln!("StartBackupJob through the limiter: {starts:?}");
    assert_eq!(starts.throttled as usize, answered(true));
    // Fewer throttling answers than instances, and none failed an item.
    assert!(starts.throttled < 40, "{starts:?}");
    assert!(starts.waited_ms > 10_000, "{starts:?}");
    let md = drflow::report::render(&r, drflow::report::Format::Markdown);
    assert!(md.contains("| `backup:StartBackupJob` | "), "{md}");
    let show = drflow(dir.path(), &["show", &o.run_id]);
    let out = String::from_utf8_lossy(&show.stdout);
    assert!(
        out.contains(&format!(
            "  backup:StartBackupJob: {} calls, {} throttled, waited ",
            starts.calls, starts.throttled
        )),
        "{out}"
    );
}

/// Six instances, all at once, with two slots for copies into the DR region.
fn six_with_two_copy_slots(dir: &Path) -> (drflow::cloud::sim::Sim, drflow::workflow::Workflow, Vec<String>) {
    let ids: Vec<String> = (1..=6).map(|n| format!("i-0bbbbbbbbbbbbbbb{n}")).collect();
    let mut yaml = String::from("instances:\n");
    for i in &ids {
        yaml.push_str(&format!("  - {{id: {i}, region: us-east-1}}\n"));
    }
    let sim = persistent(dir, &yaml);
    let text = std::fs::read_to_string(repo("workflows/dr-fleet.yaml"))
        .unwrap()
        .replace("max_concurrency: 10", "max_concurrency: 6")
        .replace("\nsteps:\n", "\nquotas:\n  backup_copies: 2\n\nsteps:\n");
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    let wf = parse_at(&dir.join("workflows/dr-fleet.yaml"), &text);
    (sim, wf, ids)
}

/// The most copy jobs running at once: a copy runs from its start call to the end of its wait.
fn most_copies_at_once(o: &Outcome, ids: &[String]) -> i32 {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for i in ids {
        let started = o.state.steps[&format!("fleet[{i}].copy")].finished_ms.unwrap();
        let ended = o.state.steps[&format!("fleet[{i}].wait_copy")].finished_ms.unwrap();
        edges.push((started, 1));
        edges.push((ended, -1));
    }
    edges.sort();
    let mut running = 0;
    let mut most = 0;
    for (_, d) in edges {
        running += d;
        most = most.max(running);
    }
    most
}

#[tokio::test(start_paused = true)]
async fn copies_wait_for_a_free_slot_of_the_destination_quota() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, wf, ids) = six_with_two_copy_slots(dir.path());
    let o = run(&wf, &sim, dir.path(), &[("instance_ids", &ids.join(","))])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    assert_eq!(count_calls(&sim, "StartCopyJob"), 6);
    // Never more than two at once, and two at times.
    assert_eq!(most_copies_at_once(&o, &ids), 2);
    // The others waited in line, and the journal says so.
    let entries = journal(&o);
    let queued: Vec<&str> = entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Queued { step, quota } => {
                assert!(quota.contains("(us-west-2): 2 at a time"), "{quota}");
                Some(step.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(queued.len(), 4, "{queued:?}");
    assert!(queued.iter().all(|s| s.ends_with("].copy")), "{queued:?}");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_fleet_counts_the_copies_its_predecessor_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, wf, ids) = six_with_two_copy_slots(dir.path());
    // Stopped (as a crash would) while two copies run and four wait for a slot.
    let started = Run::of(&wf).input("instance_ids", &ids.join(","));
    let interrupted = tokio::time::timeout(std::time::Duration::from_secs(12 * 60), started.on(&sim, dir.path())).await;
    assert!(interrupted.is_err(), "the fleet finished before it was interrupted");
    assert_eq!(count_calls(&sim, "StartCopyJob"), 2, "two copies had started");
    let run_id = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .to_string();
    let o = resume(&wf, &sim, dir.path(), &run_id, false).await.unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    assert_eq!(count_calls(&sim, "StartCopyJob"), 6, "one copy per instance");
    // The two copies left running still held their slots: the resumed run started the others as they ended.
    assert_eq!(most_copies_at_once(&o, &ids), 2);
}

#[test]
fn a_quota_override_is_checked_against_what_aws_allows() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo("workflows/dr-fleet.yaml")).unwrap();
    for (quotas, expected) in [
        ("  backup_copys: 5\n", "unknown quota `backup_copys`"),
        ("  snapshot_copies: 50\n", "limited to 20 by AWS"),
        ("  backup_copies: 0\n", "must be at least 1"),
    ] {
        let text = text.replace("\nsteps:\n", &format!("\nquotas:\n{quotas}\nsteps:\n"));
        let path = dir.path().join("dr-fleet.yaml");
        std::fs::write(&path, &text).unwrap();
        let problems = drflow::workflow::load(&path, drflow::actions::catalog()).unwrap_err();
        let shown = format!("{problems:?}");
        assert!(shown.contains(expected), "{quotas}: {shown}");
    }
}

/// The fleet's instances plus one tagged `stage: testing` and a terminated one, all `team: web`, and a backup plan
/// whose two selections name instances by ARN, by tag conditions and exclude some (`NotResources`).
fn plan_world() -> String {
    format!(
        r#"{}  - {{id: i-0fffffffffffffff6, region: us-east-1, tags: {{team: web, stage: testing}}}}
  - {{id: i-0eeeeeeeeeeeeeee5, region: us-east-1, state: terminated, tags: {{team: web}}}}
backup_plans:
  - id: plan-web
    region: us-east-1
    selections:
      - name: by-arn
        resources:
          - "arn:aws:ec2:us-east-1:123456789012:instance/{}"
          - "arn:aws:ec2:us-west-2:123456789012:instance/{}"
          - "arn:aws:ec2:*:*:instance/i-0eeeeeeeeeeeeeee5"
      - name: web-but-not-test
        resources: ["arn:aws:ec2:*:*:instance/*"]
        not_resources: ["arn:aws:ec2:*:*:instance/{}"]
        conditions:
          string_equals: [{{key: "aws:ResourceTag/team", value: web}}]
          string_not_like: [{{key: "aws:ResourceTag/stage", value: "test*"}}]
"#,
        scenario(),
        FLEET[0],
        FLEET[2],
        FLEET[2]
    )
}

#[tokio::test(start_paused = true)]
async fn discovery_by_backup_plan_protects_exactly_the_plans_instances() {
    let wf = load("workflows/dr-fleet.yaml");
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), &plan_world());
    let o = run(&wf, &sim, dir.path(), &[("backup_plan_id", "plan-web")])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    // FLEET[0] by its ARN; FLEET[1] and the untagged-for-drflow i-..4 by their team tag. Not FLEET[2] (excluded by
    // `not_resources`, and named by ARN only in another region), not i-..6 (stage testing), not the terminated one,
    // not the default instance (tagged drflow:protect, but the plan does not select it).
    let expected = [FLEET[0], FLEET[1], "i-0ddddddddddddddd4"];
    assert_eq!(outputs(&o, "discover")["instance_ids"], serde_json::json!(expected));
    assert_eq!(outputs(&o, "discover")["count"], 3);
    let fleet = outputs(&o, "fleet");
    let mut items: Vec<&String> = fleet["items"].as_object().unwrap().keys().collect();
    items.sort();
    assert_eq!(items, expected);
    assert_eq!(count_calls(&sim, "StartBackupJob"), 3);
    // The plan was read once, each selection once.
    assert_eq!(count_calls(&sim, "ListBackupSelections"), 1);
    assert_eq!(count_calls(&sim, "GetBackupSelection"), 2);

    // A plan that does not exist fails the discovery, naming the plan; nothing is backed up.
    let dir = tempfile::tempdir().unwrap();
    let sim = persistent(dir.path(), &plan_world());
    let o = run(&wf, &sim, dir.path(), &[("backup_plan_id", "plan-gone")])
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Failed);
    let error = format!("{:?}", o.error);
    assert!(
        error.contains("ResourceNotFoundException") && error.contains("`plan-gone` does not exist in us-east-1"),
        "{error}"
    );
    assert_eq!(count_calls(&sim, "StartBackupJob"), 0);
    assert_eq!(count_calls(&sim, "ListBackupSelections"), 1, "not found is not retried");
}

/// A fleet of six whose copies wait for two slots, for the binary: the workflow file, the scenario file and the
/// `instance_ids` input (the simulator's default world has a tagged instance of its own).
fn queued_fleet_files(dir: &Path) -> (String, String, String) {
    let ids: Vec<String> = (1..=6).map(|n| format!("i-0bbbbbbbbbbbbbbb{n}")).collect();
    let mut yaml = String::from("instances:\n");
    for i in &ids {
        yaml.push_str(&format!(
            "  - {{id: {i}, region: us-east-1, tags: {{drflow:protect: \"true\"}}}}\n"
        ));
    }
    let scenario = dir.join("fleet.scenario.yaml");
    std::fs::write(&scenario, yaml).unwrap();
    let text = std::fs::read_to_string(repo("workflows/dr-fleet.yaml"))
        .unwrap()
        .replace("max_concurrency: 10", "max_concurrency: 6")
        .replace("\nsteps:\n", "\nquotas:\n  backup_copies: 2\n\nsteps:\n");
    let wf = dir.join("dr-fleet.yaml");
    std::fs::write(&wf, text).unwrap();
    (
        wf.to_str().unwrap().to_string(),
        scenario.to_str().unwrap().to_string(),
        format!("instance_ids={}", ids.join(",")),
    )
}

#[test]
fn a_fleet_runs_json_output_is_its_journal_one_entry_per_line_waits_included() {
    let dir = tempfile::tempdir().unwrap();
    let (wf, scenario, ids) = queued_fleet_files(dir.path());
    let state = dir.path().join("state");
    let out = drflow(
        &state,
        &["run", &wf, "--scenario", &scenario, "-i", &ids, "--output", "json"],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let printed: Vec<drflow::engine::journal::Entry> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let run_id = match &printed[0].event {
        Event::RunStarted { run_id, .. } => run_id.clone(),
        other => panic!("{other:?}"),
    };
    let journal = drflow::engine::journal::read(&drflow::engine::journal_path(&state, &run_id)).unwrap();
    assert_eq!(printed, journal, "stdout is the journal, entry for entry");
    // Copies waited for one of two slots, and each wait is its own line.
    let queued: Vec<&str> = printed
        .iter()
        .filter(|e| e.event.kind() == "queued")
        .filter_map(|e| e.event.step())
        .collect();
    assert!(queued.len() >= 2, "{queued:?}");
    assert!(queued.iter().all(|s| s.ends_with("].copy")), "{queued:?}");
    // The group's start counts its items.
    let count = printed.iter().find_map(|e| match &e.event {
        Event::StepStarted {
            step, inputs: Some(i), ..
        } if step == "fleet" => i.get(drflow::engine::ITEM_COUNT).cloned(),
        _ => None,
    });
    assert_eq!(count, Some(Value::from(6)));
}

#[test]
fn a_fleet_runs_plain_output_is_a_line_per_item_event_named_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (wf, scenario, ids) = queued_fleet_files(dir.path());
    let out = drflow(
        &dir.path().join("state"),
        &["run", &wf, "--scenario", &scenario, "-i", &ids, "--output", "plain"],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for n in 1..=6 {
        let key = format!("fleet[i-0bbbbbbbbbbbbbbb{n}]");
        for step in ["backup", "wait_copy", "publish_dr"] {
            assert!(
                stdout.contains(&format!("✓ {key}.{step} ")),
                "no line for {key}.{step}: {stdout}"
            );
        }
    }
    let waits = stdout
        .lines()
        .filter(|l| {
            l.starts_with("… fleet[i-0bbbbbbbbbbbbbbb") && l.contains(".copy") && l.contains("waiting for a free slot")
        })
        .count();
    assert!(waits >= 2, "{stdout}");
}

#[test]
fn when_locked_is_skip_or_wait() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo("workflows/dr-fleet.yaml"))
        .unwrap()
        .replace(
            "    tolerated_failures: 0\n",
            "    tolerated_failures: 0\n    when_locked: queue\n",
        );
    let path = dir.path().join("dr-fleet.yaml");
    std::fs::write(&path, &text).unwrap();
    let problems = format!(
        "{:?}",
        drflow::workflow::load(&path, drflow::actions::catalog()).unwrap_err()
    );
    assert!(
        problems.contains("`when_locked` is `skip` or `wait`, not `queue`"),
        "{problems}"
    );
}
