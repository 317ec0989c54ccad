//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use drflow::cloud::sim::{Scenario, Sim};
use drflow::engine::journal::{Entry, Event};
use drflow::engine::{self, Clock, Outcome, Quiet, RunRequest};
use drflow::workflow::{self, Workflow};

pub const INSTANCE: &str = "i-0123456789abcdef0";

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn load(rel: &str) -> Workflow {
    workflow::load(&repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e:?}"))
}

pub fn scenario(yaml: &str) -> Scenario {
    Scenario::from_yaml_str(yaml, None).expect("valid scenario")
}

/// Runs a workflow on a simulator (call inside a paused-clock test).
pub async fn run(
    wf: &Workflow,
    sim: &Sim,
    state: &Path,
    inputs: &[(&str, &str)],
) -> Result<Outcome, engine::EngineError> {
    let given: Vec<(String, String)> = inputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let inputs = engine::prepare_inputs(wf, &given)?;
    let regions = engine::prepare_regions(wf, &[])?;
    engine::start(
        RunRequest {
            workflow: wf,
            cloud: sim.cloud(),
            state_dir: state.to_path_buf(),
            inputs,
            regions,
            observer: &Quiet,
            clock: Clock::start(),
        },
        None,
    )
    .await
}

pub fn journal(outcome: &Outcome) -> Vec<Entry> {
    engine::journal::read(&outcome.journal).expect("journal reads")
}

/// Journal events of one step.
pub fn events_of<'a>(entries: &'a [Entry], step: &str) -> Vec<&'a Event> {
    entries
        .iter()
        .map(|e| &e.event)
        .filter(|e| e.step() == Some(step))
        .collect()
}

pub fn count_calls(sim: &Sim, operation: &str) -> usize {
    sim.calls().iter().filter(|c| c.operation == operation).count()
}

/// Runs the real binary.
pub fn drflow(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drflow"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .current_dir(repo(""))
        .env("NO_COLOR", "1")
        .output()
        .expect("drflow runs")
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A program from the project's virtualenv (moto, cfn-lint, parliament), installed once per test process by the
/// project's own script.
pub fn venv_bin(name: &str) -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    let python = PYTHON.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo("scripts/emulator-venv"))
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs scripts/emulator-venv");
        assert!(out.status.success(), "scripts/emulator-venv failed");
        let stdout = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("the script prints the venv's python")
                .trim(),
        )
    });
    let bin = python.with_file_name(name);
    assert!(
        bin.exists(),
        "{} is missing: rerun scripts/emulator-venv",
        bin.display()
    );
    bin
}
