//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod accounts;
pub mod emulator;
pub mod golden;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use drflow::cloud::sim::{Scenario, Sim};
use drflow::engine::journal::{Entry, Event};
use drflow::engine::{self, Outcome, Quiet};
use drflow::session::{Backend, Ended, Job, Session, SessionError};
use drflow::workflow::{self, Workflow};

pub const INSTANCE: &str = "i-0123456789abcdef0";

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn load(rel: &str) -> Workflow {
    workflow::load(&repo(rel), drflow::actions::catalog()).unwrap_or_else(|e| panic!("{rel}: {e:?}"))
}

/// A workflow from its text (its file is `dir/name`, for relative template paths).
pub fn parse_at(path: &Path, text: &str) -> Workflow {
    workflow::parse(
        workflow::Source::new(path, text.to_string()),
        drflow::actions::catalog(),
    )
    .unwrap_or_else(|p| panic!("{p:#?}"))
}

/// A simulator whose world is kept in `dir/sim/world.json` (where `drflow --simulate` keeps it), to look at
/// afterwards or to resume on.
pub fn persistent(dir: &Path, yaml: &str) -> Sim {
    Sim::persistent(&dir.join("sim/world.json"), scenario(yaml)).unwrap()
}

/// The world saved in `dir/sim/` (snapshot and change log), as JSON.
pub fn world(dir: &Path) -> serde_json::Value {
    Sim::saved_world(&dir.join("sim/world.json")).unwrap()
}

pub fn scenario(yaml: &str) -> Scenario {
    Scenario::from_yaml_str(yaml, None).expect("valid scenario")
}

/// A run to make: workflow + inputs + regions, then a backend. The same `Session` as `drflow run`.
///
/// ```ignore
/// let outcome = Run::of(&wf).input("instance_id", INSTANCE).region("dr", "eu-west-1").on(&sim, dir).await?;
/// ```
pub struct Run<'a> {
    wf: &'a Workflow,
    inputs: Vec<(String, String)>,
    regions: Vec<(String, String)>,
}

impl<'a> Run<'a> {
    pub fn of(wf: &'a Workflow) -> Run<'a> {
        Run {
            wf,
            inputs: Vec::new(),
            regions: Vec::new(),
        }
    }

    pub fn input(mut self, name: &str, value: &str) -> Self {
        self.inputs.push((name.to_string(), value.to_string()));
        self
    }

    pub fn inputs(mut self, pairs: &[(&str, &str)]) -> Self {
        for (k, v) in pairs {
            self = self.input(k, v);
        }
        self
    }

    pub fn region(mut self, name: &str, code: &str) -> Self {
        self.regions.push((name.to_string(), code.to_string()));
        self
    }

    /// Runs on `sim` (which the test keeps, to look at its calls and world), journaling into `state`. Call inside a
    /// paused-clock test.
    pub async fn on(self, sim: &Sim, state: &Path) -> Result<Outcome, SessionError> {
        let bindings = self.wf.bind(&self.inputs, &self.regions)?;
        let session = Session::new(state, Backend::Simulate { scenario: None }).with_client(sim.cloud());
        match session
            .run_async(
                self.wf,
                Job::Start { bindings, run_id: None },
                &Quiet,
                std::future::pending(),
            )
            .await?
        {
            Ended::Finished(o) => Ok(*o),
            Ended::Interrupted { run_id, .. } => panic!("run {run_id} was interrupted"),
        }
    }
}

/// Resumes a run on `sim` (call inside a paused-clock test).
pub async fn resume(
    wf: &Workflow,
    sim: &Sim,
    state: &Path,
    run_id: &str,
    force: bool,
) -> Result<Outcome, SessionError> {
    let session = Session::new(state, Backend::Simulate { scenario: None }).with_client(sim.cloud());
    match session
        .run_async(
            wf,
            Job::Resume {
                run_id: run_id.to_string(),
                force,
            },
            &Quiet,
            std::future::pending(),
        )
        .await?
    {
        Ended::Finished(o) => Ok(*o),
        Ended::Interrupted { run_id, .. } => panic!("run {run_id} was interrupted"),
    }
}

/// Runs a workflow on a simulator with these inputs (call inside a paused-clock test).
pub async fn run(wf: &Workflow, sim: &Sim, state: &Path, inputs: &[(&str, &str)]) -> Result<Outcome, SessionError> {
    Run::of(wf).inputs(inputs).on(sim, state).await
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
