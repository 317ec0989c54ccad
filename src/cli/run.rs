//! `drflow run` and `drflow resume`: choose the backend, run the engine, summarise.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::view;
use super::{BackendArgs, ResumeArgs, RunArgs};
use crate::cloud::Cloud;
use crate::cloud::sim::{Scenario, Sim};
use crate::engine::journal::RunStatus;
use crate::engine::{self, Clock, Outcome, RunRequest, StepStatus};
use crate::error::Error;
use crate::workflow::{self, Workflow, format_duration};

pub fn run(args: RunArgs, state_dir: &Path) -> Result<u8, Error> {
    let wf = workflow::load(&args.workflow)?;
    let inputs = engine::prepare_inputs(&wf, &args.inputs)?;
    let regions = engine::prepare_regions(&wf, &args.regions)?;
    let simulate = args.backend.simulate || args.backend.scenario.is_some();
    let codes: Vec<String> = regions.values().filter_map(Value::as_str).map(str::to_string).collect();
    runtime(simulate)?.block_on(async {
        let clock = Clock::start();
        let wall = Instant::now();
        let cloud = backend(&args.backend, simulate, state_dir, &codes).await?;
        let observer = view::observer(args.output);
        let outcome = engine::start(
            RunRequest {
                workflow: &wf,
                cloud,
                state_dir: state_dir.to_path_buf(),
                inputs,
                regions,
                observer: observer.as_ref(),
                clock,
            },
            None,
        )
        .await;
        observer.finish();
        report(&wf, outcome?, simulate, wall, args.output)
    })
}

pub fn resume(args: ResumeArgs, state_dir: &Path) -> Result<u8, Error> {
    let (state, _) = engine::load_run(state_dir, &args.run_id)?;
    let file = args.workflow.clone().unwrap_or_else(|| state.file.clone().into());
    let wf = workflow::load(&file)?;
    let simulate = state.backend == "sim";
    if !simulate && (args.backend.simulate || args.backend.scenario.is_some()) {
        return Err(Error::Usage(format!(
            "run {} ran against {}; it cannot be resumed on the simulator",
            args.run_id, state.backend
        )));
    }
    let codes: Vec<String> = state
        .regions
        .values()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    runtime(simulate)?.block_on(async {
        let clock = Clock::start();
        let wall = Instant::now();
        let cloud = backend(&args.backend, simulate, state_dir, &codes).await?;
        let observer = view::observer(args.output);
        let outcome = engine::resume(
            &wf,
            cloud,
            state_dir,
            &args.run_id,
            args.force,
            observer.as_ref(),
            clock,
        )
        .await;
        observer.finish();
        report(&wf, outcome?, simulate, wall, args.output)
    })
}

/// The simulator runs on tokio's paused clock: simulated hours pass in milliseconds of wall time.
pub(super) fn runtime(simulate: bool) -> Result<tokio::runtime::Runtime, Error> {
    let mut b = if simulate {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    b.enable_all().start_paused(simulate);
    b.build()
        .map_err(|e| Error::Environment(format!("cannot start the async runtime: {e}")))
}

pub(super) async fn backend(
    args: &BackendArgs,
    simulate: bool,
    state_dir: &Path,
    regions: &[String],
) -> Result<Cloud, Error> {
    if simulate {
        let scenario = match &args.scenario {
            Some(path) => Scenario::from_yaml_file(path).map_err(|e| Error::Usage(e.to_string()))?,
            None => Scenario::default(),
        };
        // One simulated account per state directory, persisted so that `resume` finds its jobs again.
        let sim = Sim::persistent(&state_dir.join("sim").join("world.json"), scenario)
            .map_err(|e| Error::Environment(e.to_string()))?;
        sim.ensure_regions(regions);
        return Ok(sim.cloud());
    }
    crate::cloud::aws::connect(args.profile.as_deref())
        .await
        .map_err(|e| Error::Environment(e.to_string()))
}

fn report(wf: &Workflow, outcome: Outcome, simulate: bool, wall: Instant, output: super::Output) -> Result<u8, Error> {
    let state = &outcome.state;
    let took = format_duration(std::time::Duration::from_millis(
        (state.last_ms - state.started_ms).max(0) as u64,
    ));
    let wall = format_duration(wall.elapsed());
    if output != super::Output::Json {
        let status = match outcome.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        };
        if simulate {
            println!(
                "run {} {status} after {took} of simulated time ({wall} wall time)",
                outcome.run_id
            );
        } else {
            println!("run {} {status} after {took}", outcome.run_id);
        }
        let mut published = Vec::new();
        for step in wf.all_steps() {
            let Some(a) = step.action() else { continue };
            if a.action.name != "ssm.put_parameter" {
                continue;
            }
            if let Some(StepStatus::Succeeded(out)) = state.status(&step.id) {
                let region = a
                    .region
                    .as_ref()
                    .and_then(|r| state.regions.get(r))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                published.push(format!(
                    "  {region:<15} {} = {} (version {}{})",
                    out.get("name").and_then(Value::as_str).unwrap_or("?"),
                    out.get("value").and_then(Value::as_str).unwrap_or("?"),
                    out.get("version").map(Value::to_string).unwrap_or_default(),
                    if out.get("changed") == Some(&Value::Bool(false)) {
                        ", unchanged"
                    } else {
                        ""
                    }
                ));
            }
        }
        if !published.is_empty() {
            println!("AMI IDs written to SSM Parameter Store:");
            for p in published {
                println!("{p}");
            }
        }
        println!("journal: {}", outcome.journal.display());
    }
    // Writes STATE_DIR/runs/RUN_ID/report.{json,md,html}; a rehearsal ends with its one-line verdict.
    super::report::conclude(wf, outcome, output)
}
