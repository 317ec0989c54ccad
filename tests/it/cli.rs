//! The real binary on the simulator: validation diagnostics, exit codes, crash and resume, listing.

use std::path::Path;

use crate::common::*;
use drflow::cloud::sim::Sim;
use serde_json::Value;

#[test]
fn every_invalid_fixture_reports_its_problem_with_location_and_hint() {
    let dir = repo("tests/fixtures/invalid");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# expect: ")
            .expect("an expect line");
        let mut parts = expect.splitn(3, ' ');
        let (code, at, message) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let rel = format!("tests/fixtures/invalid/{}", path.file_name().unwrap().to_str().unwrap());
        let out = drflow(Path::new("/nonexistent-state"), &["validate", &rel]);
        let (_, err) = text_of(&out);
        assert_eq!(out.status.code(), Some(3), "{rel}: {err}");
        assert!(
            err.contains(&format!("drflow::workflow::{code}")),
            "{rel}: code {code} in\n{err}"
        );
        assert!(err.contains(&format!("{rel}:{at}")), "{rel}: location {at} in\n{err}");
        assert!(err.contains(message), "{rel}: message `{message}` in\n{err}");
        assert!(err.contains("help:"), "{rel}: a hint in\n{err}");
        assert!(err.contains("1 problem(s)"), "{rel}: exactly one problem in\n{err}");
        seen += 1;
    }
    assert_eq!(
        seen, 27,
        "a fixture per problem class (and per kind of region and file problem)"
    );
}

fn text_of(o: &std::process::Output) -> (String, String) {
    text(o)
}

#[test]
fn all_problems_are_reported_at_once() {
    let out = drflow(
        Path::new("/nonexistent-state"),
        &["validate", "tests/fixtures/many-problems.yaml"],
    );
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(3));
    for needle in [
        "`strng` is not an input type",
        "`mars-1` is not an AWS region",
        "unknown action `backup.start_backup_jobs`",
        "`drr` is not a region of this workflow",
        "unknown key `max_attemps`",
        "`some` is not a jitter strategy",
        "`5 minutes` is not a duration",
        "there is no step `bakup`",
        "has no input `extra`",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in\n{err}");
    }
    assert!(err.contains("9 problem(s)"), "{err}");
}

#[test]
fn shipped_workflows_are_valid() {
    let mut files: Vec<String> = std::fs::read_dir(repo("workflows"))
        .unwrap()
        .map(|e| format!("workflows/{}", e.unwrap().file_name().to_str().unwrap()))
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = drflow(Path::new("/nonexistent-state"), &args);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
}

#[test]
fn schema_describes_the_format() {
    let out = drflow(Path::new("/nonexistent-state"), &["schema"]);
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["properties"]["steps"].is_object(), "{schema}");
    let step = serde_json::to_string(&schema).unwrap();
    for key in ["max_attempts", "backoff_rate", "on_failure", "parallel", "when"] {
        assert!(step.contains(key), "{key}");
    }
}

#[test]
fn simulated_run_prints_the_amis_and_lists_the_run() {
    let state = tempfile::tempdir().unwrap();
    let out = drflow(
        state.path(),
        &[
            "run",
            "workflows/dr-ami.yaml",
            "--simulate",
            "--input",
            &format!("instance_id={INSTANCE}"),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("succeeded after"), "{stdout}");
    assert!(stdout.contains("of simulated time"), "{stdout}");
    let published: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("/drflow/") && l.contains("= ami-"))
        .collect();
    assert_eq!(published.len(), 2, "{stdout}");
    assert!(
        published[0].contains("us-east-1") && published[1].contains("us-west-2"),
        "{stdout}"
    );

    let runs = drflow(state.path(), &["runs"]);
    let (list, _) = text(&runs);
    assert!(list.contains("dr-ami") && list.contains("succeeded"), "{list}");
    let id = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let show = drflow(state.path(), &["show", &id, "--output", "json"]);
    let doc: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(doc["status"], "succeeded");
    let steps = doc["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["id"] == "wait_copy" && s["status"] == "succeeded")
    );
}

#[test]
fn a_missing_input_is_a_usage_error() {
    let state = tempfile::tempdir().unwrap();
    let out = drflow(state.path(), &["run", "workflows/dr-ami.yaml", "--simulate"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("input `instance_id` is required"), "{err}");
    let out = drflow(
        state.path(),
        &["run", "workflows/dr-ami.yaml", "--simulate", "-i", "instance_id=web-1"],
    );
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("does not match the pattern"), "{err}");
}

/// Simulated calls saved beside the persisted world (one JSON line each).
fn world_calls(state: &Path, operation: &str) -> usize {
    std::fs::read_to_string(state.join("sim/calls.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|c| c["operation"] == operation)
        .count()
}

fn unfinished_run(state: &Path) -> String {
    let (list, _) = text(&drflow(state, &["runs"]));
    let line = list
        .lines()
        .find(|l| l.contains("unfinished"))
        .unwrap_or_else(|| panic!("{list}"));
    line.split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_killed_run_resumes_without_a_second_copy_job() {
    let state = tempfile::tempdir().unwrap();
    let scenario = state.path().join("crash.yaml");
    std::fs::write(
        &scenario,
        "faults:\n  - operation: backup:DescribeCopyJob\n    nth: 3\n    crash: true\n",
    )
    .unwrap();
    let out = drflow(
        state.path(),
        &[
            "run",
            "workflows/dr-ami.yaml",
            "--scenario",
            scenario.to_str().unwrap(),
            "-i",
            &format!("instance_id={INSTANCE}"),
            "--output",
            "plain",
        ],
    );
    assert_eq!(out.status.code(), None, "killed by a signal: {:?}", text(&out));
    let run_id = unfinished_run(state.path());
    assert_eq!(world_calls(state.path(), "StartCopyJob"), 1);

    let out = drflow(state.path(), &["resume", &run_id, "--output", "plain"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("resuming from the journal"), "{stdout}");
    assert!(!stdout.contains("✓ copy"), "the copy step is not run again: {stdout}");
    assert_eq!(world_calls(state.path(), "StartBackupJob"), 1);
    assert_eq!(world_calls(state.path(), "StartCopyJob"), 1);
    let published: Vec<&str> = stdout.lines().filter(|l| l.contains("= ami-")).collect();
    assert_eq!(published.len(), 2, "{stdout}");

    // A finished run is not resumed again.
    let again = drflow(state.path(), &["resume", &run_id]);
    assert_eq!(again.status.code(), Some(5));
}

#[test]
fn resuming_with_a_changed_workflow_needs_force() {
    let state = tempfile::tempdir().unwrap();
    // The workflow's template path (`../stacks/dr-ec2.yaml`) must hold beside the copy too.
    std::fs::create_dir_all(state.path().join("workflows")).unwrap();
    std::fs::create_dir_all(state.path().join("stacks")).unwrap();
    std::fs::copy(repo("stacks/dr-ec2.yaml"), state.path().join("stacks/dr-ec2.yaml")).unwrap();
    let wf = state.path().join("workflows/dr-ami.yaml");
    std::fs::copy(repo("workflows/dr-ami.yaml"), &wf).unwrap();
    let scenario = state.path().join("crash.yaml");
    std::fs::write(
        &scenario,
        "faults:\n  - operation: backup:DescribeBackupJob\n    nth: 2\n    crash: true\n",
    )
    .unwrap();
    let out = drflow(
        state.path(),
        &[
            "run",
            wf.to_str().unwrap(),
            "--scenario",
            scenario.to_str().unwrap(),
            "-i",
            &format!("instance_id={INSTANCE}"),
        ],
    );
    assert_eq!(out.status.code(), None);
    let run_id = unfinished_run(state.path());
    let text_now = std::fs::read_to_string(&wf)
        .unwrap()
        .replace("max_attempts: 10", "max_attempts: 11");
    std::fs::write(&wf, text_now).unwrap();

    let refused = drflow(state.path(), &["resume", &run_id]);
    let (_, err) = text(&refused);
    assert_eq!(refused.status.code(), Some(5), "{err}");
    assert!(err.contains("changed since run") && err.contains("--force"), "{err}");
    let forced = drflow(state.path(), &["resume", &run_id, "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{:?}", text(&forced));
    assert_eq!(world_calls(state.path(), "StartBackupJob"), 1);
}

/// Objects anywhere in a JSON document whose `name` is `name`.
fn named(v: &Value, name: &str) -> usize {
    match v {
        Value::Object(m) => {
            usize::from(m.get("name").and_then(Value::as_str) == Some(name))
                + m.values().map(|x| named(x, name)).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(|x| named(x, name)).sum(),
        _ => 0,
    }
}

#[test]
fn a_crash_right_after_create_image_does_not_make_a_second_ami() {
    let state = tempfile::tempdir().unwrap();
    let scenario = state.path().join("crash.yaml");
    // The call is carried out, then the process dies before it hears the answer.
    std::fs::write(&scenario, "faults:\n  - operation: ec2:CreateImage\n    crash: true\n").unwrap();
    let out = drflow(
        state.path(),
        &[
            "run",
            "workflows/dr-ami-ec2.yaml",
            "--scenario",
            scenario.to_str().unwrap(),
            "-i",
            &format!("instance_id={INSTANCE}"),
        ],
    );
    assert_eq!(out.status.code(), None, "killed: {:?}", text(&out));
    let run_id = unfinished_run(state.path());
    let out = drflow(state.path(), &["resume", &run_id, "--output", "plain"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let world: Value = Sim::saved_world(&state.path().join("sim/world.json")).unwrap();
    let name = format!("drflow-{INSTANCE}-{run_id}");
    // One AMI of that name in the primary region and its copy in the DR region: no second image.
    assert_eq!(named(&world, &name), 2, "{name}");
    assert_eq!(
        world_calls(state.path(), "CreateImage"),
        2,
        "the second CreateImage found the name taken"
    );
}

#[test]
fn a_region_typo_on_the_command_line_is_refused_before_any_call() {
    let state = tempfile::tempdir().unwrap();
    let input = format!("instance_id={INSTANCE}");
    let run = |region: &str| {
        drflow(
            state.path(),
            &[
                "run",
                "workflows/dr-ami.yaml",
                "--simulate",
                "-i",
                &input,
                "--region",
                region,
            ],
        )
    };
    let out = run("dr=ap-southeast1");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--region dr=ap-southeast1: `ap-southeast1` is not an AWS region; did you mean `ap-southeast-1`?"),
        "{err}"
    );
    // Two names on one code would write one parameter twice, with two AMIs.
    let out = run("dr=us-east-1");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("regions `primary` and `dr` are both us-east-1"), "{err}");
    // Nothing ran: no simulated account was even opened.
    assert!(!state.path().join("sim").exists());
    assert!(!state.path().join("runs").exists());
    // `plan` refuses it the same way.
    let out = drflow(
        state.path(),
        &["plan", "workflows/dr-ami.yaml", "-i", &input, "--region", "dr=mars-1"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("`mars-1` is not an AWS region"));
}

#[test]
fn completions_come_from_clap_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_drflow()"),
        ("zsh", "#compdef drflow"),
        ("fish", "complete -c drflow"),
    ] {
        let out = drflow(Path::new("/nonexistent-state"), &["completions", shell]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shell}: {stderr}");
        assert!(stdout.contains(marker), "{shell}: {marker} in\n{stdout}");
        assert!(stdout.contains("schedule") && stdout.contains("completions"), "{shell}");
    }
}

#[test]
fn every_command_ends_quietly_when_its_output_pipe_closes() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    for args in [&["actions"][..], &["schema"][..], &["completions", "bash"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_drflow"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read a little, then close the pipe (as `| head -1` does) while drflow still has lines to write.
        let mut first = [0u8; 16];
        child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
        drop(child.stdout.take());
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let status = child.wait().unwrap();
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert!(
                status.success() || status.signal() == Some(13),
                "{args:?}: {status:?} (exit 0, or the default SIGPIPE end)"
            );
        }
    }
}

#[test]
fn a_journal_whose_events_do_not_fit_is_refused_with_its_line() {
    let state = tempfile::tempdir().unwrap();
    let run = state.path().join("runs/20261128-000000-abcd");
    std::fs::create_dir_all(&run).unwrap();
    let digest = "0".repeat(64);
    std::fs::write(
        run.join("journal.jsonl"),
        [
            format!(
                r#"{{"v":"1.1","seq":1,"ts_ms":1,"type":"run_started","run_id":"20261128-000000-abcd","workflow":"dr-ami","file":"workflows/dr-ami.yaml","digest":"{digest}","inputs":{{}},"regions":{{}},"backend":"sim","lock":"x"}}"#
            ),
            r#"{"v":"1.1","seq":2,"ts_ms":2,"type":"step_started","step":"backup"}"#.to_string(),
            r#"{"v":"1.1","seq":3,"ts_ms":3,"type":"step_succeeded","step":"backup","outputs":{}}"#.to_string(),
            r#"{"v":"1.1","seq":4,"ts_ms":4,"type":"attempt_started","step":"backup","attempt":2}"#.to_string(),
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    for args in [
        &["resume", "20261128-000000-abcd", "--force"][..],
        &["show", "20261128-000000-abcd"][..],
    ] {
        let out = drflow(state.path(), args);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {err}");
        assert!(
            err.contains("journal line 4: `attempt_started` of step `backup`, which already succeeded"),
            "{args:?}: {err}"
        );
    }
}
