//! `drflow run` and `drflow resume`: a session runs the workflow; this prints what happened and its verdict.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::view;
use super::{BackendArgs, Output, ResumeArgs, RunArgs};
use crate::engine::journal::RunStatus;
use crate::engine::{Outcome, StepStatus};
use crate::error::Error;
use crate::session::{Backend, Ended, Job, Session};
use crate::workflow::{self, Workflow, Written, format_duration};

pub fn run(args: RunArgs, state_dir: &Path) -> Result<u8, Error> {
    let wf = load_workflow(&args.workflow)?;
    let bindings = wf.bind(&args.inputs, &args.regions)?;
    let session = Session::new(state_dir, args.backend.backend());
    let wall = Instant::now();
    let observer = view::observer(args.output, &wf);
    let job = Job::Start { bindings, run_id: None };
    let ended = session.run(&wf, job, observer.as_ref(), std::future::pending());
    observer.finish();
    finish(&session, &wf, ended?, wall, args.output)
}

pub fn resume(args: ResumeArgs, state_dir: &Path) -> Result<u8, Error> {
    let (state, entries) = crate::engine::load_run(state_dir, &args.run_id)?;
    let file = args.workflow.clone().unwrap_or_else(|| state.file.clone().into());
    let wf = load_workflow(&file)?;
    // The backend is the one the run started on; the options may only refine it (a scenario, a profile).
    let backend = match (state.backend.as_str(), args.backend.backend()) {
        ("sim", b @ Backend::Simulate { .. }) => b,
        ("sim", Backend::Aws { .. }) => Backend::Simulate { scenario: None },
        (_, Backend::Simulate { .. }) => {
            return Err(Error::Usage(format!(
                "run {} ran against {}; it cannot be resumed on the simulator",
                args.run_id, state.backend
            )));
        }
        (_, b) => b,
    };
    let session = Session::new(state_dir, backend);
    let wall = Instant::now();
    let observer = view::observer(args.output, &wf);
    observer.seed(&entries);
    let job = Job::Resume {
        run_id: args.run_id.clone(),
        force: args.force,
    };
    let ended = session.run(&wf, job, observer.as_ref(), std::future::pending());
    observer.finish();
    finish(&session, &wf, ended?, wall, args.output)
}

impl BackendArgs {
    /// `--simulate` / `--scenario FILE` choose the simulator; otherwise AWS, with `--profile`.
    pub fn backend(&self) -> Backend {
        if self.simulate || self.scenario.is_some() {
            Backend::Simulate {
                scenario: self.scenario.clone(),
            }
        } else {
            Backend::Aws {
                profile: self.profile.clone(),
            }
        }
    }
}

fn finish(session: &Session, wf: &Workflow, ended: Ended, wall: Instant, output: Output) -> Result<u8, Error> {
    let outcome = match ended {
        Ended::Finished(o) => *o,
        // Nothing stops `run` and `resume` but a signal, which ends the process.
        Ended::Interrupted { run_id, .. } => {
            return Err(Error::Environment(format!("run {run_id} was interrupted")));
        }
    };
    let human = output != Output::Json;
    if human {
        summary(session, wf, &outcome, wall);
    }
    let verdict = session.conclude(wf, &outcome);
    if let Some(e) = &verdict.report_error {
        eprintln!("warning: {e}");
    }
    if let (true, Some(html)) = (human, verdict.html()) {
        println!("report: {}", html.display());
    }
    if let Some(r) = verdict.report.as_ref().filter(|r| r.rehearsal.is_some()) {
        super::report::left_behind(r);
    }
    let failed = verdict.error.clone().map(|message| Error::RunFailed {
        run_id: verdict.run_id.clone(),
        message,
    });
    if !verdict.is_rehearsal() {
        return match failed {
            Some(e) => Err(e),
            None => Ok(verdict.exit_code),
        };
    }
    // A rehearsal ends with its verdict line, after the error: the last line a cron mail or CI log shows.
    if let Some(e) = failed {
        e.print();
    }
    if human {
        println!("{}", verdict.line);
    } else {
        eprintln!("{}", verdict.line);
    }
    Ok(verdict.exit_code)
}

/// How long it took, and the AMI IDs it published.
fn summary(session: &Session, wf: &Workflow, outcome: &Outcome, wall: Instant) {
    let state = &outcome.state;
    let took = format_duration(std::time::Duration::from_millis(
        (state.last_ms - state.started_ms).max(0) as u64,
    ));
    let status = match outcome.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
    };
    if session.backend.is_simulated() {
        let wall = format_duration(wall.elapsed());
        println!(
            "run {} {status} after {took} of simulated time ({wall} wall time)",
            outcome.run_id
        );
    } else {
        println!("run {} {status} after {took}", outcome.run_id);
    }
    let mut published = Vec::new();
    // In the order steps started; a step of a `for_each` item is journaled as `GROUP[KEY].STEP`.
    for id in &state.order {
        let plain = id.rsplit('.').next().unwrap_or(id);
        let Some(step) = wf.find(plain) else { continue };
        let Some(a) = step.action() else { continue };
        if a.action.writes.map(|w| w.what) != Some(Written::Parameter) {
            continue;
        }
        if let Some(StepStatus::Succeeded(out)) = state.status(id) {
            let region = a
                .region
                .as_ref()
                .and_then(|r| state.regions.get(r))
                .and_then(Value::as_str)
                .unwrap_or("?");
            let text = |k: &str| out.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
            published.push(format!(
                "  {region:<15} {} = {} (version {}{})",
                text("name"),
                text("value"),
                out.get("version").map(Value::to_string).unwrap_or_default(),
                match out.get("outcome").and_then(Value::as_str) {
                    Some("up_to_date") => ", up to date".to_string(),
                    Some("kept_newer") => ", kept: newer than the AMI offered".to_string(),
                    _ if out.get("changed") == Some(&Value::Bool(false)) => ", unchanged".to_string(),
                    _ => String::new(),
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

/// The workflow file, validated against the actions this drflow has.
pub(super) fn load_workflow(path: &Path) -> Result<Workflow, Error> {
    let wf = workflow::load(path, crate::actions::catalog())?;
    crate::error::print_warnings(&wf.warnings);
    Ok(wf)
}
