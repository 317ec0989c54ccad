//! `drflow schedule` through the real binary: `--next`, located errors in the schedule file, and a foreground run
//! on the simulator that fires, writes its report and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn rehearsal() -> String {
    repo("workflows/dr-rehearsal.yaml").display().to_string()
}

#[test]
fn next_prints_fire_times_in_the_entrys_zone_and_utc() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.yaml",
        &format!(
            "version: 1\nentries:\n  - name: mumbai\n    workflow: {}\n    cron: \"30 2 * * *\"\n    timezone: Asia/Kolkata\n    inputs: {{instance_id: {INSTANCE}}}\n    simulate: true\n  - name: utc-hourly\n    workflow: {}\n    cron: \"@hourly\"\n    inputs: {{instance_id: {INSTANCE}}}\n",
            rehearsal(),
            rehearsal()
        ),
    );
    let out = drflow(&dir.path().join("state"), &["schedule", &file, "--next", "3"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 8, "{stdout}");
    assert!(
        lines[0].starts_with("mumbai  cron \"30 2 * * *\"  timezone Asia/Kolkata"),
        "{}",
        lines[0]
    );
    for l in &lines[1..4] {
        // 02:30 in Kolkata is 21:00 UTC the day before.
        assert!(l.contains(" 02:30:00 IST (+05:30)") && l.ends_with("T21:00:00Z"), "{l}");
    }
    assert!(
        lines[4].starts_with("utc-hourly  cron \"@hourly\"  timezone UTC"),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].contains(":00:00 UTC (+00:00)") && lines[5].ends_with(":00:00Z"),
        "{}",
        lines[5]
    );
    // Nothing ran.
    assert!(!dir.path().join("state").exists());
}

#[test]
fn a_bad_cron_expression_or_time_zone_is_reported_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.yaml",
        &format!(
            "entries:\n  - name: a\n    workflow: {}\n    cron: \"0 3 * *\"\n",
            rehearsal()
        ),
    );
    let out = drflow(dir.path(), &["schedule", &file, "--next", "1"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {file}:4:11: entries[0].cron: `0 3 * *` has 4 field(s)"
        )),
        "{stderr}"
    );

    let file = write(
        dir.path(),
        "tz.yaml",
        &format!(
            "entries:\n  - name: a\n    workflow: {}\n    cron: \"0 3 * * *\"\n    timezone: europe/paris\n",
            rehearsal()
        ),
    );
    let out = drflow(dir.path(), &["schedule", &file, "--next", "1"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{file}:5:15: entries[0].timezone: unknown time zone `europe/paris`: did you mean `Europe/Paris`?"
        )),
        "{stderr}"
    );

    let file = write(
        dir.path(),
        "key.yaml",
        "entries:\n  - name: a\n    workflow: x.yaml\n    cron: \"0 3 * * *\"\n    tz: UTC\n",
    );
    let out = drflow(dir.path(), &["schedule", &file, "--next", "1"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("{file}:5:5: entries[0]: unknown field `tz`")),
        "{stderr}"
    );
}

#[test]
fn every_problem_with_inputs_regions_and_workflows_is_listed_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.yaml",
        &format!(
            "version: 1
entries:
  - name: web
    workflow: {wf}
    cron: \"0 3 * * *\"
    inputs:
      instance_id: i-0123456789abcdef0
      instanse_type: t3.small
      require_status_checks: maybe
    regions: {{dr: eu-west-1, backup: eu-central-1}}
    simulate: true
  - name: web
    workflow: {wf}
    cron: \"0 4 * * *\"
    simulate: true
    regions: {{dr: eu-west1}}
  - name: gone
    workflow: missing.yaml
    cron: \"0 5 * * *\"
",
            wf = rehearsal()
        ),
    );
    let out = drflow(dir.path(), &["schedule", &file]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let expect = [
        format!("{file}:8:22: entries[0].inputs.instanse_type: `instanse_type` is not an input of dr-rehearsal"),
        format!("{file}:9:30: entries[0].inputs.require_status_checks: input `require_status_checks` is a bool"),
        format!(
            "{file}:10:38: entries[0].regions.backup: `backup` is not a region of dr-rehearsal (its regions: primary, dr)"
        ),
        format!("{file}:12:11: entries[1].name: another entry is already named `web`"),
        format!(
            "{file}:12:5: entries[1].inputs: input `instance_id` of dr-rehearsal is required: add `instance_id: VALUE` under `inputs`"
        ),
        format!("{file}:16:19: entries[1].regions.dr: `eu-west1` is not an AWS region; did you mean `eu-west-1`?"),
        format!("{file}:18:15: entries[2].workflow: cannot read "),
    ];
    for e in &expect {
        assert!(stderr.contains(e.as_str()), "missing {e}\n---\n{stderr}");
    }
    assert!(
        stderr.trim_end().ends_with("error: 7 problem(s) in the schedule file"),
        "{stderr}"
    );
}

/// Runs `drflow schedule` in the background; its stdout lines arrive on the channel.
fn spawn_schedule(state: &Path, file: &str) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_drflow"))
        .arg("--state-dir")
        .arg(state)
        .args(["schedule", file])
        .current_dir(repo(""))
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("drflow schedule starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits (at most `secs`) for a line containing `needle`; returns every line seen so far.
fn wait_for(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(l) = seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no line with `{needle}` within {secs}s:\n{}",
            seen.join("\n")
        );
        if let Ok(l) = rx.recv_timeout(left) {
            seen.push(l);
        }
    }
}

fn sigterm(pid: u32) {
    let ok = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(ok.success());
}

/// Waits for the process to exit (killing it after `secs`).
fn wait_exit(child: &mut std::process::Child, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("drflow schedule did not exit within {secs}s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn runs_on_schedule_on_the_simulator_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.yaml",
        &format!(
            "entries:\n  - name: rehearse\n    workflow: {}\n    cron: \"*/2 * * * * *\"\n    inputs: {{instance_id: {INSTANCE}}}\n    simulate: true\n",
            rehearsal()
        ),
    );
    let state = dir.path().join("state");
    let (mut child, rx) = spawn_schedule(&state, &file);
    let mut seen = Vec::new();
    wait_for(&rx, &mut seen, "schedule: 1 entry from", 30);
    let verdict = wait_for(&rx, &mut seen, "REHEARSAL PASSED dr-rehearsal run=", 60);
    assert!(verdict.contains("[rehearse] REHEARSAL PASSED"), "{verdict}");
    let run_id = verdict
        .split("run=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let report = state.join("runs").join(&run_id).join("report.json");
    assert!(report.exists(), "{}", report.display());
    sigterm(child.id());
    assert_eq!(wait_exit(&mut child, 30), Some(0));
    // Every line up to the end of its output (the reader thread ends at EOF), not only those read so far.
    seen.extend(rx.iter());
    assert!(
        seen.iter()
            .any(|l| l.contains("schedule: SIGTERM: starting no more runs")),
        "{}",
        seen.join("\n")
    );
    assert!(
        seen.last().unwrap().ends_with("schedule: stopped"),
        "{}",
        seen.join("\n")
    );
    assert!(
        seen.iter().any(|l| l.contains("[rehearse] fired for ")),
        "{}",
        seen.join("\n")
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("[rehearse]   ✓ verify") || l.contains("✓ verify done")),
        "{}",
        seen.join("\n")
    );
}

#[test]
fn a_restarted_scheduler_resumes_its_unfinished_rehearsal_and_tears_it_down() {
    let dir = tempfile::tempdir().unwrap();
    // The process dies (abort, like kill -9) while the rehearsal verifies its DR instance: the stack is up.
    let scenario = write(
        dir.path(),
        "crash.yaml",
        "faults:\n  - {operation: \"ec2:DescribeInstanceStatus\", nth: 1, crash: true}\n",
    );
    let entry = |cron: &str| {
        format!(
            "entries:\n  - name: rehearse\n    workflow: {}\n    cron: \"{cron}\"\n    inputs: {{instance_id: {INSTANCE}}}\n    scenario: {scenario}\n",
            rehearsal()
        )
    };
    let state = dir.path().join("state");
    let file = write(dir.path(), "s.yaml", &entry("*/2 * * * * *"));
    let (mut child, rx) = spawn_schedule(&state, &file);
    let mut seen = Vec::new();
    let started = wait_for(&rx, &mut seen, "[rehearse] run ", 60);
    let run_id = started
        .split("run ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        wait_exit(&mut child, 60),
        None,
        "the scheduler died with its run:\n{}",
        seen.join("\n")
    );
    let journal = state.join("runs").join(&run_id).join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(!text.contains("run_finished"), "the run was left unfinished");
    assert!(!text.contains("\"step\":\"teardown\""), "and its teardown did not run");

    // Restarted (with no fire time in the next hours), it resumes that run first, once, and finishes it.
    let file = write(dir.path(), "s.yaml", &entry("0 0 1 1 *"));
    let (mut child, rx) = spawn_schedule(&state, &file);
    let mut seen = Vec::new();
    wait_for(&rx, &mut seen, &format!("[rehearse] resuming run {run_id}"), 30);
    let verdict = wait_for(&rx, &mut seen, "REHEARSAL PASSED dr-rehearsal run=", 60);
    assert!(verdict.contains(&format!("run={run_id}")), "{verdict}");
    sigterm(child.id());
    assert_eq!(wait_exit(&mut child, 30), Some(0));
    let entries: Vec<serde_json::Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let deleted = entries
        .iter()
        .any(|e| e["type"] == "step_succeeded" && e["step"] == "teardown" && e["outputs"]["deleted"] == true);
    assert!(deleted, "the resumed run deleted its stack");
    assert_eq!(
        entries.iter().filter(|e| e["type"] == "run_resumed").count(),
        1,
        "resumed once"
    );
    assert!(entries.last().unwrap()["type"] == "run_finished");
}
